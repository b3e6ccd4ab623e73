"""What every gate shares: the result models, the Gate protocol and the registry.

A gate is pure: it gets everything it needs in :class:`GateInputs` (prepared by a
task in ``tasks/``) plus its validated config, and returns a :class:`GateResult`.
It never talks to Prefect, S3, Slack or Jira, so it can be tested on plain data
and rerun by an auditor on the recorded inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from enum import Enum
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clearance.core.clock import utcnow
from clearance.core.digests import canonical_json, sha256_json

ENTRY_POINT_GROUP = "clearance.gates"


class Status(str, Enum):
    """Outcome of a check or a gate. ``error`` means the gate could not decide: never a pass."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"
    SKIPPED = "skipped"
    WAIVED = "waived"


# Worst first: a gate is as bad as its worst check.
_SEVERITY = [Status.ERROR, Status.FAIL, Status.WARN, Status.WAIVED, Status.PASS, Status.SKIPPED]


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status; ``skipped`` when there is nothing to judge."""
    present = set(statuses)
    return next((s for s in _SEVERITY if s in present), Status.SKIPPED)


class CheckResult(BaseModel):
    """One check of a gate: what was observed against what was allowed."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Stable within its gate, e.g. sha256_matches.")
    status: Status
    observed: Any = None
    threshold: Any = None
    message: str = ""
    waiver: str | None = Field(None, description="Reason of the waiver that turned a failure into waived.")
    original_status: Status | None = Field(None, description="Status before a waiver applied.")


class EvidenceFile(BaseModel):
    """A file a gate produced as evidence (the flow uploads it; the digest binds it)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    sha256: str
    media_type: str = "application/octet-stream"
    uri: str | None = None


class GateResult(BaseModel):
    """A gate's verdict with everything needed to review and reproduce it."""

    model_config = ConfigDict(extra="forbid")

    gate_id: str
    gate_version: str
    status: Status
    blocking: bool = True
    checks: list[CheckResult] = Field(default_factory=list)
    metrics: dict[str, float] = Field(default_factory=dict)
    evidence: list[EvidenceFile] = Field(default_factory=list)
    input_digests: dict[str, str] = Field(default_factory=dict)
    message: str = ""
    started_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime = Field(default_factory=utcnow)

    @classmethod
    def from_checks(cls, gate_id: str, gate_version: str, checks: list[CheckResult], **fields: Any) -> GateResult:
        """Aggregate checks into a result whose status is the worst check's."""
        return cls(gate_id=gate_id, gate_version=gate_version, status=worst(c.status for c in checks),
                   checks=checks, **fields)

    @property
    def stops_promotion(self) -> bool:
        """A blocking gate that failed or could not decide stops the promotion."""
        return self.blocking and self.status in (Status.FAIL, Status.ERROR)

    def problems(self) -> list[CheckResult]:
        """Checks that did not pass cleanly (the ones a reviewer must read)."""
        return [c for c in self.checks if c.status not in (Status.PASS, Status.SKIPPED)]

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of this result (what approvers sign off on)."""
        return sha256_json(self.model_dump(mode="json"))

    def to_evidence_json(self) -> bytes:
        """The canonical JSON evidence document of this result."""
        return canonical_json(self.model_dump(mode="json"))


# --------------------------------------------------------------------------- inputs


class ArtifactObservation(BaseModel):
    """What a task observed of one artifact in the object store."""

    # Sniffed bytes are binary: base64 in JSON so evidence and cache keys can hold them.
    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    key: str
    exists: bool
    size: int | None = None
    sha256: str | None = None
    head: bytes = Field(b"", description="The first bytes of the object, for format sniffing.")
    error: str | None = Field(None, description="Why the artifact could not be observed, if it could not.")


class GateInputs(BaseModel):
    """Everything a gate may look at, prepared by the flow's tasks."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str
    version: str
    manifest: dict[str, Any] = Field(description="The ModelManifest, as JSON.")
    artifacts: list[ArtifactObservation] = Field(default_factory=list)
    datasets: dict[str, Any] = Field(default_factory=dict, description="Dataset role → locator (see data gates).")
    extra: dict[str, Any] = Field(default_factory=dict)


# --------------------------------------------------------------------------- protocol and registry


@runtime_checkable
class Gate(Protocol):
    """A gate: a stable id, a version, a config model, and a pure ``evaluate``."""

    id: ClassVar[str]
    version: ClassVar[str]
    config_model: ClassVar[type[BaseModel]]

    def evaluate(self, inputs: GateInputs, config: BaseModel) -> GateResult:
        """Decide from inputs and config alone."""
        ...


class GateConfigError(ValueError):
    """A gate's config in a policy or manifest is invalid (names gate and field)."""


class UnknownGateError(KeyError):
    """A policy names a gate that no built-in or installed plugin provides."""


_REGISTRY: dict[str, type[Gate]] = {}
_PLUGINS_LOADED = False


def register_gate(cls: type[Gate]) -> type[Gate]:
    """Class decorator registering a gate under its ``id`` (ids are unique)."""
    existing = _REGISTRY.get(cls.id)
    if existing is not None and existing is not cls:
        raise ValueError(f"gate id {cls.id!r} registered twice ({existing.__module__} and {cls.__module__})")
    _REGISTRY[cls.id] = cls
    return cls


def _load_plugins() -> None:
    """Import the built-in gates and every ``clearance.gates`` entry point, once."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    import gates.builtin  # noqa: F401  (registers the built-in gates)

    for entry in entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        if isinstance(loaded, type) and loaded.__dict__.get("id"):
            register_gate(loaded)


def registered_gates() -> dict[str, type[Gate]]:
    """All gates known to this process: built-in and installed plugins."""
    _load_plugins()
    return dict(_REGISTRY)


def get_gate(gate_id: str) -> Gate:
    """An instance of the gate registered as ``gate_id``."""
    gates = registered_gates()
    if gate_id not in gates:
        raise UnknownGateError(f"unknown gate {gate_id!r}; known: {', '.join(sorted(gates)) or 'none'}")
    return gates[gate_id]()


def parse_gate_config(gate_id: str, raw: dict[str, Any]) -> BaseModel:
    """Validate ``raw`` against the gate's config model; errors name the gate and field."""
    gate = get_gate(gate_id)
    try:
        return gate.config_model.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(config)'}: {err['msg']}" for err in exc.errors()
        )
        raise GateConfigError(f"gate {gate_id}: {details}") from exc


def run_gate(gate_id: str, inputs: GateInputs, raw_config: dict[str, Any], *, blocking: bool = True,
             clock: Callable[[], datetime] = utcnow) -> GateResult:
    """Evaluate a gate, turning any crash into an ``error`` result (a crash is never a pass)."""
    started = clock()
    try:
        config = parse_gate_config(gate_id, raw_config)
        result = get_gate(gate_id).evaluate(inputs, config)
    except Exception as exc:  # noqa: BLE001 — any crash must become evidence, not a traceback
        version = getattr(_REGISTRY.get(gate_id), "version", "?")
        result = GateResult(gate_id=gate_id, gate_version=version, status=Status.ERROR,
                            message=f"gate could not decide: {type(exc).__name__}: {exc}")
    return result.model_copy(update={"blocking": blocking, "started_at": started, "finished_at": clock()})
