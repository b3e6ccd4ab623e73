"""Evidence files of data_check: the per-column table (JSON) and the drift picture (PNG)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from gates.base import EvidenceFile, canonical_json

TABLE_NAME = "data_check_columns.json"
PLOT_NAME = "data_check_drift.png"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _file(path: Path, media_type: str) -> EvidenceFile:
    return EvidenceFile(name=path.name, sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
                        media_type=media_type, uri=path.resolve().as_uri())


def write_table(directory: Path, rows: list[dict[str, Any]], offenders: dict[str, list[Any]],
                summary: dict[str, Any]) -> EvidenceFile:
    """``data_check_columns.json``: {"columns": [row…], "offending_keys": {check id: [key…]}, "summary": …}."""
    path = directory / TABLE_NAME
    path.write_bytes(canonical_json(_clean({"columns": rows, "offending_keys": offenders, "summary": summary})))
    return _file(path, "application/json")


def write_plot(directory: Path, plots: dict[tuple[str, str], dict[str, Any]], count: int) -> EvidenceFile | None:
    """Reference vs current shares for the ``count`` columns with the highest PSI."""
    ranked = sorted(((k, v) for k, v in plots.items() if v.get("psi") is not None and math.isfinite(v["psi"])),
                    key=lambda kv: -kv[1]["psi"])[:count]
    if not ranked:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    cols = min(3, len(ranked))
    rows = math.ceil(len(ranked) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(ranked):]:
        ax.set_visible(False)
    for ax, ((role, name), data) in zip(axes.flat, ranked):
        if data["kind"] == "numeric":
            edges = data["edges"]
            widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
            ax.bar(edges[:-1], data["reference"], width=widths, align="edge", alpha=0.5, label="reference")
            ax.bar(edges[:-1], data["current"], width=widths, align="edge", alpha=0.5, label=role)
        else:
            xs = range(len(data["labels"]))
            ax.bar([x - 0.2 for x in xs], data["reference"], width=0.4, label="reference")
            ax.bar([x + 0.2 for x in xs], data["current"], width=0.4, label=role)
            ax.set_xticks(list(xs), data["labels"], rotation=45, ha="right", fontsize=7)
        ax.set_title(f"{role}.{name}  PSI={data['psi']:.3f}", fontsize=9)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = directory / PLOT_NAME
    # Fixed metadata so the same data gives the same bytes (and the same digest).
    fig.savefig(path, dpi=80, metadata={"Software": None})
    plt.close(fig)
    return _file(path, "image/png")
