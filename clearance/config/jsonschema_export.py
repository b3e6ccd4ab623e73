"""JSON Schemas of the config files, for editors (yaml-language-server, IntelliJ, VS Code).

The pydantic models stay the source of truth; this only adapts their schema to how the
YAML is written: durations as ``"24h"``, and each gate's ``config`` checked against that
gate's own config model (one ``if id == … then config: …`` branch per registered gate).

Regenerate after changing ``schema.py`` or adding a gate::

    python -c 'from clearance.config import write_schemas; write_schemas("configs/schemas")'
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter

from clearance.config.schema import ModelManifest, Policy, PriceTable, Principals, Waivers
from clearance.config.tighten import fmt_duration
from gates.base import registered_gates
from gates.compliance_review.regulatory import RegulatoryMap

SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "policy.schema.json": Policy,
    "model.schema.json": ModelManifest,
    "principals.schema.json": Principals,
    "waivers.schema.json": Waivers,
    "regulatory.schema.json": RegulatoryMap,
    "prices.schema.json": PriceTable,
}

# What schema.py's Duration accepts: "30m" / "24h" / "7d" style, ISO 8601 (P1D, PT30M) or seconds.
_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[smhdw]\s*$"},
        {"type": "string", "pattern": r"^-?P"},
        {"type": "number", "exclusiveMinimum": 0},
    ],
    "description": "A duration: 30m, 24h, 7d, 2w, ISO 8601 (PT30M) or seconds.",
}


def build_schema(model: type[BaseModel], *, title: str | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of ``model`` as its YAML is written."""
    schema = model.model_json_schema()
    schema = _patch_durations(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    if title:
        schema["title"] = title
    defs = schema.setdefault("$defs", {})
    if "GateSpec" in defs:
        _add_gate_configs(defs)
    return schema


def _patch_durations(node: Any) -> Any:
    """Replace pydantic's ``{"type": "string", "format": "duration"}`` (ISO only) by what we accept."""
    if isinstance(node, dict):
        if node.get("format") == "duration" and node.get("type") == "string":
            extra = {k: v for k, v in node.items() if k not in ("type", "format")}
            if isinstance(extra.get("default"), str):  # "P1D" → "24h", as the YAML examples write it
                extra["default"] = fmt_duration(TypeAdapter(timedelta).validate_python(extra["default"]))
            return {**_DURATION_SCHEMA, **extra}
        return {key: _patch_durations(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_patch_durations(item) for item in node]
    return node


def _add_gate_configs(defs: dict[str, Any]) -> None:
    """Check each known gate's ``config`` with that gate's config model (ids stay open for plugins)."""
    branches = []
    for gate_id, gate in sorted(registered_gates().items()):
        prefix = f"gate_{gate_id}__"
        config_schema = gate.config_model.model_json_schema(ref_template=f"#/$defs/{prefix}{{model}}")
        for name, sub in config_schema.pop("$defs", {}).items():
            defs[prefix + name] = sub
        branches.append({
            "if": {"properties": {"id": {"const": gate_id}}, "required": ["id"]},
            "then": {"properties": {"config": config_schema}},
        })
    if branches:
        defs["GateSpec"]["allOf"] = branches


def write_schemas(out_dir: Path | str) -> list[Path]:
    """Write policy, model, principals, waivers, regulatory and prices ``.schema.json`` files to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, model in SCHEMA_FILES.items():
        path = out / filename
        title = f"clearance {model.__name__} ({filename.split('.')[0]} YAML)"
        path.write_text(json.dumps(build_schema(model, title=title), indent=2, sort_keys=True) + "\n",
                        encoding="utf-8")
        written.append(path)
    return written

