"""The ``security_scan`` config: what a tier accepts, and how strictly each finding is judged.

Every field a manifest may change carries its ``tighten`` rule (``clearance/config/tighten.py``):
``lower`` / ``higher`` on ranked choices (``warn`` < ``fail``; ``low`` < ``moderate`` < ``high`` <
``critical``), ``subset`` on what is accepted (frameworks, extra allowed callables, formats),
``superset`` on what is demanded (extra denied callables, required storage aspects). A field without
a rule cannot be changed by a manifest.
"""

from __future__ import annotations

from datetime import timedelta
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from clearance.core.types import Duration
from gates.artifact_integrity import known_formats
from gates.security_scan.callables import DEFAULT_FRAMEWORKS, FRAMEWORKS, CallablePolicy
from gates.security_scan.model_files import ScanLimits
from gates.security_scan.posture import ASPECTS


class Ranked(str, Enum):
    """A choice whose values are ordered by strictness (declaration order): ``<`` compares the rank, so the
    tighten rules ``lower`` and ``higher`` apply to it as to numbers."""

    def _rank(self) -> int:
        return list(type(self)).index(self)

    def __lt__(self, other: object) -> bool:
        if isinstance(other, type(self)):
            return self._rank() < other._rank()
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, type(self)):
            return self._rank() > other._rank()
        return NotImplemented

    def __le__(self, other: object) -> bool:
        return self == other or self < other

    def __ge__(self, other: object) -> bool:
        return self == other or self > other


class Action(Ranked):
    """What a finding does to the verdict: ``warn`` asks a human to look, ``fail`` stops the promotion."""

    WARN = "warn"
    FAIL = "fail"


class AdvisorySeverity(Ranked):
    """An advisory's severity, least to most severe (``unknown``: the advisory gives none)."""

    UNKNOWN = "unknown"
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"
    CRITICAL = "critical"


_LIMITS = ScanLimits()


def _limit(default: float, description: str) -> Any:
    return Field(default, gt=0, json_schema_extra={"tighten": "lower"}, description=description)


class LimitsConfig(BaseModel):
    """Bounds of one scan (the fields of ``model_files.ScanLimits``); a manifest may only lower them.

    Past a bound the content is not judged: an ``error`` check names the bound (never a pass).
    """

    model_config = ConfigDict(extra="forbid")

    max_depth: int = _limit(_LIMITS.max_depth, "Container layers opened to reach a file (compression counts).")
    max_members: int = _limit(_LIMITS.max_members, "Archive members scanned in one artifact.")
    max_total_bytes: int = _limit(_LIMITS.max_total_bytes, "Decompressed bytes over one artifact (bomb guard).")
    max_ratio: float = _limit(_LIMITS.max_ratio, "Compressed → decompressed ratio of a member (past 1 MiB out).")
    max_safetensors_header: int = _limit(_LIMITS.max_safetensors_header, "Largest safetensors JSON header.")
    max_file_bytes: int = _limit(_LIMITS.max_file_bytes, "Largest file or archive member scanned.")

    def to_scan_limits(self) -> ScanLimits:
        """The scanner's limits."""
        return ScanLimits(**self.model_dump())


class DependenciesConfig(BaseModel):
    """The model's requirements file against the advisory database."""

    model_config = ConfigDict(extra="forbid")

    required: bool = Field(False, json_schema_extra={"tighten": "higher"},
                           description="The manifest must name a requirements file (`requirements:`).")
    fail_at: AdvisorySeverity = Field(
        AdvisorySeverity.HIGH, json_schema_extra={"tighten": "lower"},
        description="An advisory this severe or worse fails the gate; a less severe one warns.")
    unknown_severity: Action = Field(
        Action.WARN, json_schema_extra={"tighten": "higher"},
        description="An advisory that states no severity: warn or fail.")
    unpinned: Action = Field(Action.WARN, json_schema_extra={"tighten": "higher"},
                             description="A requirement not pinned with == (not checked against advisories).")
    advisory_max_age: Duration = Field(
        timedelta(days=7), json_schema_extra={"tighten": "lower"},
        description="An advisory database older than this warns (its age is always shown).")

    @field_validator("advisory_max_age")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be a positive duration")
        return value


class StorageConfig(BaseModel):
    """The posture of the buckets the promotion uses."""

    model_config = ConfigDict(extra="forbid")

    unknown: Action = Field(Action.WARN, json_schema_extra={"tighten": "higher"},
                            description="An aspect the server does not report (not implemented, refused): warn or "
                                        "fail — never pass.")
    require: list[str] = Field(
        default_factory=list, json_schema_extra={"tighten": "superset"},
        description=f"Aspects that fail when off (the others warn): {', '.join(ASPECTS)}. A manifest may only "
                    "add aspects.")

    @field_validator("require")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        strange = [a for a in value if a not in ASPECTS]
        if strange:
            raise ValueError(f"unknown aspect(s) {', '.join(strange)}; known: {', '.join(ASPECTS)}")
        return value


class SecurityScanConfig(BaseModel):
    """Config of ``security_scan`` in a policy; a manifest may only tighten it."""

    model_config = ConfigDict(extra="forbid")

    frameworks: list[str] = Field(
        default_factory=lambda: sorted(DEFAULT_FRAMEWORKS), json_schema_extra={"tighten": "subset"},
        description=f"Frameworks whose callables a pickle may use ({', '.join(sorted(FRAMEWORKS))}; allowlists in "
                    "gates/security_scan/callables.py); a manifest may only remove frameworks.")
    allow: list[str] = Field(
        default_factory=list, json_schema_extra={"tighten": "subset"},
        description="Extra allowed callables, full dotted names (module.qualname); they never lift a built-in "
                    "denial. A manifest may only remove names.")
    deny: list[str] = Field(
        default_factory=list, json_schema_extra={"tighten": "superset"},
        description="Extra denied callables: a dotted name, or a module (everything under it is denied). A manifest "
                    "may only add names.")
    unknown_callable: Action = Field(
        Action.WARN, json_schema_extra={"tighten": "higher"},
        description="A callable on no list: warn (a human looks) or fail.")
    allowed_formats: list[str] = Field(
        default_factory=lambda: ["joblib", "onnx", "safetensors"], min_length=1,
        json_schema_extra={"tighten": "subset"},
        description="Formats of the pinned artifacts this tier accepts (as artifact_integrity's allowed_formats); "
                    "a manifest may only remove formats.")
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    dependencies: DependenciesConfig = Field(default_factory=DependenciesConfig)
    secrets: Action = Field(Action.FAIL, json_schema_extra={"tighten": "higher"},
                            description="A secret in the bundle's text files: fail (default) or warn.")
    storage: StorageConfig = Field(default_factory=StorageConfig)

    @field_validator("allowed_formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        return known_formats(value)

    @field_validator("frameworks")
    @classmethod
    def _known_frameworks(cls, value: list[str]) -> list[str]:
        strange = [f for f in value if f not in FRAMEWORKS]
        if strange:
            raise ValueError(f"unknown framework(s) {', '.join(strange)}; known: {', '.join(sorted(FRAMEWORKS))}")
        return value

    @field_validator("allow", "deny")
    @classmethod
    def _dotted(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not name or any(not part.isidentifier() for part in name.split("."))]
        if bad:
            raise ValueError(f"not a dotted name: {', '.join(map(repr, bad))} (e.g. mypkg.model.Scaler)")
        return value

    def callable_policy(self) -> CallablePolicy:
        """The pickle scanner's allow/deny policy of this config."""
        return CallablePolicy(frozenset(self.frameworks), frozenset(self.allow), frozenset(self.deny))
