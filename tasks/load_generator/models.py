"""What a load run is asked to do (:class:`LoadTarget`, :class:`LoadPlan`) and what it found (:class:`LoadRun`).

:class:`LoadRun` is JSON-able and is what the ``load_test`` gate reads (``extra["load_run"]``), in the shape of
the issue-15 contract::

    {"target": "http://127.0.0.1:8081/predict", "refused": null, "error": null,
     "steps": [{"offered_rps": 50, "duration_s": 20.0, "sent": 1000, "ok": 998, "achieved_rps": 49.9,
                "errors": {"timeout": 0, "4xx": 0, "5xx": 2, "connection": 0},
                "latency_ms": {"p50": 3.1, "p90": …, "p95": …, "p99": …, "max": …, "mean": …},
                "hdr": "<base64 compressed HdrHistogram of microseconds, ok responses>",
                "generator": {"processes": 2, "cpu": [0.21, 0.19], "lateness_ms": {"p50": 0.1, "p99": 0.8, "max": 4}},
                "timeline": [{"t": 1, "sent": 50, "p50_ms": 3, "p99_ms": 9, "errors": 0}, …]}],
     "evidence": [{"name": "load_test_latency_over_time.png", "sha256": …, "path": …}, …]}

Counting rules: every request whose *intended* send time falls in a step belongs to that step, whenever its answer
comes; ``sent == ok + sum(errors.values())``; ``achieved_rps = ok / duration_s``; latency percentiles are over ok
(2xx/3xx) answers, measured from the intended send time, and are ``null`` when there were none.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clearance.core.types import parse_duration

ERROR_CLASSES: tuple[str, ...] = ("timeout", "4xx", "5xx", "connection")
MAX_DURATION_S = 600.0  # a step, and the warm-up: at most 10 minutes each
MAX_RATE = 1_000_000.0
MAX_STEPS = 20
MAX_CONNECTIONS = 10_000
MAX_HEADERS = 64
MAX_HEADER_BYTES = 16 * 1024


def _seconds(value: Any) -> Any:
    value = parse_duration(value)
    return value.total_seconds() if isinstance(value, timedelta) else value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoadTarget(_Model):
    """Where the load goes: an HTTP(S) URL or an AWS SageMaker endpoint.

    ``headers`` hold resolved secret values (``Authorization``…): they are sent, never logged, never shown in a
    ``repr`` and never written into a :class:`LoadRun`. ``endpoint_url`` points the SageMaker client at another
    endpoint (tests, VPC endpoints); its host must be allowlisted as well.
    """

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # an error never echoes a header value

    kind: Literal["http", "sagemaker"] = "http"
    url: str | None = Field(None, max_length=2048)
    endpoint_name: str | None = Field(None, max_length=63)
    region: str | None = Field(None, max_length=32)
    endpoint_url: str | None = Field(None, max_length=2048)
    method: Literal["GET", "POST", "PUT"] = "POST"
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    content_type: str = Field("application/json", max_length=256)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _bounded_headers(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        size = sum(len(k) + len(v) for k, v in value.items())
        if size > MAX_HEADER_BYTES:
            raise ValueError(f"headers over {MAX_HEADER_BYTES} bytes")
        for name, val in value.items():  # never echo a value: it may be a secret
            if not name or any(c in name for c in ":\r\n\0 \t") or not name.isascii():
                raise ValueError(f"invalid header name {name[:64]!r}")
            if any(c in val for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: the value holds a line break or NUL")
            try:
                val.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(f"header {name!r}: the value is not Latin-1 text") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> LoadTarget:
        if self.kind == "http" and not self.url:
            raise ValueError("an http target needs url")
        if self.kind == "sagemaker" and not (self.endpoint_name and self.region):
            raise ValueError("a sagemaker target needs endpoint_name and region")
        return self

    def label(self) -> str:
        """How the target is named in results and messages (no header, no credential)."""
        if self.kind == "sagemaker":
            return f"sagemaker:{self.endpoint_name}"
        return self.url or ""


class LoadPlan(_Model):
    """How hard and how long: ``rate`` (or each of ``ramp``) requests/s, each held ``duration`` after ``warmup``.

    Durations accept seconds or ``"20s"``/``"1m"``. ``processes`` defaults to ``os.cpu_count()``;
    ``connections`` is per process. The warm-up runs once, at the first step's rate. ``max_requests`` bounds the
    whole run, warm-up included: the step that would pass it is cut short (its ``duration_s`` says how long it
    was), later steps are dropped.
    """

    rate: float = Field(50.0, gt=0, le=MAX_RATE)
    duration: float = Field(20.0, gt=0, le=MAX_DURATION_S)
    warmup: float = Field(3.0, ge=0, le=MAX_DURATION_S)
    ramp: list[float] = Field(default_factory=list, max_length=MAX_STEPS)
    timeout: float = Field(2.0, gt=0, le=120.0)
    max_requests: int = Field(200_000, gt=0, le=10_000_000)
    connections: int = Field(64, gt=0, le=MAX_CONNECTIONS)
    processes: int | None = Field(None, gt=0, le=256)

    @field_validator("duration", "warmup", "timeout", mode="before")
    @classmethod
    def _secs(cls, value: Any) -> Any:
        return _seconds(value)

    @field_validator("ramp")
    @classmethod
    def _positive_rates(cls, value: list[float]) -> list[float]:
        if any(not (0 < r <= MAX_RATE) for r in value):
            raise ValueError(f"every ramp rate must be > 0 and ≤ {MAX_RATE:g}")
        return value

    def rates(self) -> list[float]:
        """The offered rate of each step: the ramp, else ``[rate]``."""
        return list(self.ramp) or [self.rate]


class LatencyMs(_Model):
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None


class LatenessMs(_Model):
    p50: float | None = None
    p99: float | None = None
    max: float | None = None


class GeneratorStats(_Model):
    """The generator measuring itself: per process, the share of a core it used and how late sends left."""

    processes: int
    cpu: list[float]
    lateness_ms: LatenessMs


class TimelinePoint(_Model):
    """One second of a step (``t`` = 1 for its first second), by intended send time."""

    t: int
    sent: int
    p50_ms: float | None = None
    p99_ms: float | None = None
    errors: int = 0


class StepResult(_Model):
    offered_rps: float
    duration_s: float
    sent: int
    ok: int
    achieved_rps: float
    errors: dict[str, int]
    latency_ms: LatencyMs
    hdr: str
    generator: GeneratorStats
    timeline: list[TimelinePoint]

    @field_validator("errors")
    @classmethod
    def _all_classes(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = set(value) - set(ERROR_CLASSES)
        if unknown:
            raise ValueError(f"unknown error classes {sorted(unknown)}")
        return {k: int(value.get(k, 0)) for k in ERROR_CLASSES}


class EvidenceItem(_Model):
    name: str
    sha256: str
    path: str


class LoadRun(_Model):
    """A load run's result. ``refused``: the target was not allowlisted (nothing was sent); ``error``: the run
    could not be carried out (bad input, the generator failed)."""

    target: str
    refused: str | None = None
    error: str | None = None
    steps: list[StepResult] = Field(default_factory=list)
    evidence: list[EvidenceItem] = Field(default_factory=list)
    #: Earlier runs of the same load that were discarded because the generator was saturated, and why
    #: (``run 1: at 20 req/s sends left 1358.85 ms late at p99 …``); set by :func:`tasks.load_test.run_load_test`.
    discarded: list[str] = Field(default_factory=list)
