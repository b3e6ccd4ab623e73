"""The ``load_test`` config: the load to offer (open model) and the tier's SLO with ``warn`` / ``fail`` levels.

Every field a manifest may change carries its ``tighten`` rule (``clearance/config/tighten.py``): the SLO
levels of latency and error rate may only be lowered (``lower``), the minimum achieved ratio only raised
(``higher``); the offered ``rate`` and the measured ``duration`` may only grow, ``ramp`` may only gain rates,
``timeout`` may only shrink, the generator's saturation limits may only be lowered. ``warmup``,
``max_requests``, ``connections`` and ``generator.attempts`` shape the run, not the verdict: a manifest cannot
change them.

When a level is reached (the convention of ``data_check``'s drift levels: a level is the first value that
triggers it): an upper level (latency in ms, error rate) is reached when the value is ``>=`` it; the minimum
achieved ratio is a minimum, met by equality, so it is reached when the ratio is ``<`` it. Bounds keep every
run small: ``duration`` ≤ 10 min, ``rate`` and each ramp rate ≤ 100,000 requests/s, ``max_requests`` ≤
10,000,000, and the whole plan (warm-up included) must fit in ``max_requests``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clearance.core.types import Duration

MAX_RATE = 100_000.0
MAX_DURATION = timedelta(minutes=10)
MAX_TIMEOUT = timedelta(minutes=1)
MAX_REQUESTS = 10_000_000
MAX_RAMP_STEPS = 20


class UpperLevels(BaseModel):
    """Levels of a value that must stay low (latency, error rate): reached when the value is ``>=`` them.

    Either may be unset (never reached); a manifest may lower them or set one the tier left unset.
    """

    model_config = ConfigDict(extra="forbid")

    warn: float | None = Field(None, gt=0, json_schema_extra={"tighten": "lower"})
    fail: float | None = Field(None, gt=0, json_schema_extra={"tighten": "lower"})

    @model_validator(mode="after")
    def _ordered(self) -> UpperLevels:
        if self.warn is not None and self.fail is not None and self.warn > self.fail:
            raise ValueError(f"warn ({self.warn}) must not be above fail ({self.fail})")
        return self

    @property
    def judged(self) -> bool:
        """Whether any level is set."""
        return self.warn is not None or self.fail is not None


class RateLevels(UpperLevels):
    """Upper levels of a share (error rate, 0–1)."""

    warn: float | None = Field(None, gt=0, le=1, json_schema_extra={"tighten": "lower"})
    fail: float | None = Field(None, gt=0, le=1, json_schema_extra={"tighten": "lower"})


class RatioLevels(BaseModel):
    """Minimums of the achieved / offered ratio: reached when the ratio is ``<`` them (equality meets them).

    A manifest may raise them.
    """

    model_config = ConfigDict(extra="forbid")

    warn: float | None = Field(None, gt=0, le=1, json_schema_extra={"tighten": "higher"})
    fail: float | None = Field(None, gt=0, le=1, json_schema_extra={"tighten": "higher"})

    @model_validator(mode="after")
    def _ordered(self) -> RatioLevels:
        if self.warn is not None and self.fail is not None and self.warn < self.fail:
            raise ValueError(f"warn ({self.warn}) must not be below fail ({self.fail})")
        return self


def _none_is_unset(value: Any) -> Any:
    return {} if value is None else value


def nullable(schema: dict[str, Any]) -> None:
    """JSON Schema of a levels field that YAML may write as ``null`` (read as "no level set")."""
    ref = {k: schema.pop(k) for k in list(schema) if k not in ("default", "description", "title")}
    schema["anyOf"] = [ref, {"type": "null"}]


def _levels_field(factory: Any, description: str) -> Any:
    return Field(default_factory=factory, description=description, json_schema_extra=nullable)


class SloConfig(BaseModel):
    """The service level the endpoint must meet at the offered rate (latency in milliseconds)."""

    model_config = ConfigDict(extra="forbid")

    p50_ms: UpperLevels = _levels_field(lambda: UpperLevels(warn=100, fail=200),
                                        "Median latency of ok responses (ms).")
    p95_ms: UpperLevels = _levels_field(lambda: UpperLevels(warn=250, fail=500),
                                        "95th percentile latency of ok responses (ms).")
    p99_ms: UpperLevels = _levels_field(lambda: UpperLevels(warn=500, fail=1000),
                                        "99th percentile latency of ok responses (ms).")
    max_ms: UpperLevels = _levels_field(UpperLevels,
                                        "Slowest ok response (ms); null or unset levels: reported, not judged.")
    error_rate: RateLevels = _levels_field(lambda: RateLevels(warn=0.001, fail=0.01),
                                           "Errors of every class (timeout, 4xx, 5xx, connection) / requests sent.")
    min_achieved_ratio: RatioLevels = _levels_field(lambda: RatioLevels(warn=0.98, fail=0.9),
                                                    "Achieved / offered request rate.")

    _unset = field_validator("p50_ms", "p95_ms", "p99_ms", "max_ms", "error_rate", "min_achieved_ratio",
                             mode="before")(_none_is_unset)


class GeneratorConfig(BaseModel):
    """When the generator, not the server, is the bottleneck: the run is "saturated" and judges nothing."""

    model_config = ConfigDict(extra="forbid")

    # 0.75, not 0.9: the generator's own client queues requests inside its pool well before a process
    # reaches a whole core (bench/RESULTS.md: latency p99 of 87–506 ms at CPU 0.83–0.89 against a server
    # that answers 126k/s), and that queueing is counted as latency, so CPU is the signal that catches it.
    max_cpu: float = Field(0.75, gt=0, le=1, json_schema_extra={"tighten": "lower"},
                           description="Share of a core a generator process may use; above it the run is saturated.")
    max_lateness_p99_ms: float = Field(
        10.0, gt=0, json_schema_extra={"tighten": "lower"},
        description="99th percentile of how late sends left vs their intended time (ms); above it: saturated.")
    # A busy runner (a CI machine, a laptop building something) can stall the generator for a second, which says
    # nothing of the server: such a run is discarded and the load offered again, and the discarded runs are
    # named in the verdict. Not a manifest's to change: it shapes the run, not the verdict.
    attempts: int = Field(2, ge=1, le=5,
                          description="Load runs made at most: a run whose generator was saturated is discarded "
                                      "and the load offered again; the last run is judged either way.")


class LoadTestConfig(BaseModel):
    """Config of ``load_test`` in a policy; a manifest may only tighten it."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(50.0, gt=0, le=MAX_RATE, json_schema_extra={"tighten": "higher"},
                        description="Offered requests/s (open model: a constant arrival rate, whatever the answers).")
    duration: Duration = Field(timedelta(seconds=20), json_schema_extra={"tighten": "higher"},
                               description="Measured phase of each step, after the warm-up (at most 10m).")
    warmup: Duration = Field(timedelta(seconds=3), description="Excluded from the results (at most the duration).")
    ramp: list[float] = Field(
        default_factory=list, max_length=MAX_RAMP_STEPS, json_schema_extra={"tighten": "superset"},
        description="Rates (increasing), each held `duration`, to find the knee: the highest rate whose results "
                    "meet the SLO fail levels is the sustainable rate. Empty: one step at `rate`.")
    timeout: Duration = Field(timedelta(seconds=2), json_schema_extra={"tighten": "lower"},
                              description="A request not answered by then is a timeout error (at most 1m).")
    max_requests: int = Field(200_000, ge=1, le=MAX_REQUESTS, description="Hard bound over the whole run.")
    connections: int = Field(64, ge=1, le=10_000, description="Most open connections per generator process.")
    slo: SloConfig = Field(default_factory=SloConfig)
    generator: GeneratorConfig = Field(default_factory=GeneratorConfig)

    @field_validator("duration")
    @classmethod
    def _duration_bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= MAX_DURATION:
            raise ValueError("must be a positive duration of at most 10m")
        return value

    @field_validator("warmup")
    @classmethod
    def _warmup_bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= MAX_DURATION:
            raise ValueError("must be a duration of at most 10m (0s: no warm-up)")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout_bounded(cls, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= MAX_TIMEOUT:
            raise ValueError("must be a positive duration of at most 1m")
        return value

    @field_validator("ramp")
    @classmethod
    def _ramp_increasing(cls, value: list[float]) -> list[float]:
        bad = [r for r in value if not 0 < r <= MAX_RATE]
        if bad:
            raise ValueError(f"every rate must be above 0 and at most {MAX_RATE:,.0f} requests/s (got {bad[0]})")
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError("rates must be strictly increasing")
        return value

    @model_validator(mode="after")
    def _fits_in_max_requests(self) -> LoadTestConfig:
        planned = self.planned_requests()
        if planned > self.max_requests:
            raise ValueError(f"the plan sends about {planned:,} requests (rate × (warmup + duration) per step), "
                             f"more than max_requests ({self.max_requests:,})")
        return self

    def rates(self) -> list[float]:
        """The offered rate of each step: the ramp, else ``rate`` alone."""
        return list(self.ramp) or [self.rate]

    def planned_requests(self) -> int:
        """Requests the plan offers, warm-up included (what ``max_requests`` must cover)."""
        seconds = (self.warmup + self.duration).total_seconds()
        return int(sum(rate * seconds for rate in self.rates()) + 0.5)
