"""Gate ``artifact_integrity``: the candidate artifact is exactly the one the manifest pins.

Checks, per artifact: it exists, its SHA-256 and size match the manifest, and its
format (declared, else sniffed from magic bytes and extension) is on the tier's allowlist.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gates.base import ArtifactObservation, CheckResult, GateInputs, GateResult, Status, register_gate

# Magic bytes first (they cannot lie about the container), extension second.
_MAGIC: list[tuple[bytes, str]] = [
    (b"\x80\x02", "pickle"), (b"\x80\x03", "pickle"), (b"\x80\x04", "pickle"), (b"\x80\x05", "pickle"),
    (b"PK\x03\x04", "zip"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"PAR1", "parquet"),
]
_EXTENSIONS = {
    ".joblib": "joblib", ".pkl": "pickle", ".pickle": "pickle", ".onnx": "onnx",
    ".safetensors": "safetensors", ".pt": "pytorch", ".pth": "pytorch", ".h5": "hdf5",
    ".keras": "keras", ".json": "json", ".ubj": "xgboost", ".txt": "text", ".parquet": "parquet",
}
# Formats whose container is pickle: a joblib file *is* a pickle stream.
_PICKLE_FAMILY = {"joblib", "pickle"}
#: Every format name clearance can detect or be told: an allowlist naming another one is a typo, not a format.
KNOWN_FORMATS = frozenset({fmt for _, fmt in _MAGIC} | set(_EXTENSIONS.values()))


def known_formats(value: list[str]) -> list[str]:
    """``value`` if every format in it is one clearance knows (a typo like 'jobilb' would allow nothing)."""
    strange = [fmt for fmt in value if fmt not in KNOWN_FORMATS]
    if strange:
        raise ValueError(f"unknown format(s) {', '.join(map(repr, strange))} "
                         f"(known: {', '.join(sorted(KNOWN_FORMATS))})")
    return value


def detect_format(key: str, head: bytes) -> str:
    """Best guess of an artifact's format from its first bytes and its name."""
    ext_format = next((fmt for ext, fmt in _EXTENSIONS.items() if key.lower().endswith(ext)), None)
    magic_format = next((fmt for magic, fmt in _MAGIC if head.startswith(magic)), None)
    if magic_format == "pickle" and ext_format in _PICKLE_FAMILY:
        return ext_format
    if magic_format == "zip" and ext_format in {"pytorch", "keras"}:
        return ext_format
    if head[8:9] == b"{" and ext_format == "safetensors":  # 8-byte header length, then JSON
        return "safetensors"
    return magic_format or ext_format or "unknown"


class ArtifactIntegrityConfig(BaseModel):
    """Config of ``artifact_integrity``."""

    model_config = ConfigDict(extra="forbid")

    allowed_formats: list[str] = Field(
        default_factory=lambda: ["joblib", "onnx", "safetensors"],
        min_length=1,
        json_schema_extra={"tighten": "subset"},
        description="Formats this tier accepts; a manifest may only remove formats.",
    )
    max_size_bytes: int | None = Field(
        None, gt=0, json_schema_extra={"tighten": "lower"}, description="Largest artifact accepted."
    )

    @field_validator("allowed_formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        return known_formats(value)


@register_gate
class ArtifactIntegrityGate:
    """The candidate artifact exists, matches its pinned digest and size, and has an allowed format."""

    id: ClassVar[str] = "artifact_integrity"
    version: ClassVar[str] = "1.0.0"
    config_model: ClassVar[type[BaseModel]] = ArtifactIntegrityConfig

    def evaluate(self, inputs: GateInputs, config: BaseModel) -> GateResult:
        """One set of checks per artifact listed for the version in the manifest."""
        assert isinstance(config, ArtifactIntegrityConfig)
        pinned = inputs.manifest["versions"][inputs.version]["artifacts"]
        observed = {o.key: o for o in inputs.artifacts}
        checks: list[CheckResult] = []
        digests: dict[str, str] = {}
        for ref in pinned:
            obs = observed.get(ref["key"]) or ArtifactObservation(key=ref["key"], exists=False,
                                                                  error="not observed by the flow")
            checks.extend(_checks_for(ref, obs, config))
            if obs.sha256:
                digests[ref["key"]] = obs.sha256
        return GateResult.from_checks(
            self.id, self.version, checks, input_digests=digests,
            metrics={"artifacts": float(len(pinned)),
                     "total_bytes": float(sum(o.size or 0 for o in inputs.artifacts))},
        )


def _checks_for(ref: dict, obs: ArtifactObservation, config: ArtifactIntegrityConfig) -> list[CheckResult]:
    key = ref["key"]
    if obs.error and not obs.exists:
        status = Status.FAIL if obs.error == "not found" else Status.ERROR
        return [CheckResult(id=f"exists:{key}", status=status, observed=obs.error, threshold="present",
                            message=f"{key}: {obs.error}")]
    if not obs.exists:
        return [CheckResult(id=f"exists:{key}", status=Status.FAIL, observed="missing", threshold="present",
                            message=f"{key} does not exist")]
    checks = [CheckResult(id=f"exists:{key}", status=Status.PASS, observed="present", threshold="present")]
    sha_ok = obs.sha256 == ref["sha256"]
    checks.append(CheckResult(
        id=f"sha256:{key}", status=Status.PASS if sha_ok else Status.FAIL, observed=obs.sha256,
        threshold=ref["sha256"], message="" if sha_ok else "content differs from the pinned digest",
    ))
    if ref.get("size") is not None:
        size_ok = obs.size == ref["size"]
        checks.append(CheckResult(id=f"size:{key}", status=Status.PASS if size_ok else Status.FAIL,
                                  observed=obs.size, threshold=ref["size"],
                                  message="" if size_ok else "size differs from the manifest"))
    if config.max_size_bytes is not None:
        small = (obs.size or 0) <= config.max_size_bytes
        checks.append(CheckResult(id=f"max_size:{key}", status=Status.PASS if small else Status.FAIL,
                                  observed=obs.size, threshold=config.max_size_bytes,
                                  message="" if small else "larger than this tier allows"))
    detected = detect_format(key, obs.head)
    declared = ref.get("format")
    fmt = declared or detected
    allowed = fmt in config.allowed_formats
    message = "" if allowed else f"format {fmt!r} is not allowed for this tier"
    if declared and detected not in ("unknown", declared) and not (
            declared in _PICKLE_FAMILY and detected in _PICKLE_FAMILY):
        allowed, message = False, f"declared {declared!r} but the content looks like {detected!r}"
    checks.append(CheckResult(id=f"format:{key}", status=Status.PASS if allowed else Status.FAIL,
                              observed=fmt, threshold=config.allowed_formats, message=message))
    return checks
