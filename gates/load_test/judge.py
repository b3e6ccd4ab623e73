"""The verdicts of ``load_test``: one load run (the generator's ``LoadRun`` JSON) against the tier's SLO.

Pure functions on plain data. The run is read into the small models below (extra keys ignored, so the
generator may report more than the gate reads); every decision is made here:

- a step is **saturated** when any generator process used more than ``generator.max_cpu`` of a core or the
  99th percentile of send lateness is above ``generator.max_lateness_p99_ms``: its timings are the
  generator's, not the server's, so nothing timing-related is judged on it (the task that runs the load offers
  it again, up to ``generator.attempts`` runs, and names the runs it discarded in ``LoadRun.discarded``; the
  ``generator`` check repeats them);
- a step **meets the fail levels** when it is not saturated, has ok responses, every configured latency
  fail level (p50, p95, p99, max) and the error-rate fail level are not reached (value ``<`` level), and
  the achieved / offered ratio is at least its fail level (``>=``);
- the **knee** of a ramp is the highest offered rate whose step meets the fail levels;
- the **judged step** (latency, errors, throughput) is the step offered at the config's ``rate``, else the
  first step;
- the **sustainable rate** is the knee with a ramp (several steps), else the achieved rate of the judged
  step when it meets the fail levels; none otherwise.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from gates.base import CheckResult, Status
from gates.load_test.config import LoadTestConfig, RateLevels, RatioLevels, UpperLevels

LATENCIES = ("p50", "p95", "p99", "max")
REPORTED_LATENCIES = ("p50", "p90", "p95", "p99", "max", "mean")
ERROR_CLASSES = ("timeout", "4xx", "5xx", "connection")
MAX_ECHO = 300


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GeneratorStats(_Loose):
    """What the generator measured of itself during a step."""

    processes: int | None = None
    cpu: list[float] = Field(default_factory=list)
    lateness_ms: dict[str, float | None] = Field(default_factory=dict)


class Step(_Loose):
    """One step of the run: a constant offered rate held for ``duration_s``."""

    offered_rps: float
    duration_s: float | None = None
    sent: int = 0
    ok: int = 0
    achieved_rps: float | None = None
    errors: dict[str, int] = Field(default_factory=dict)
    latency_ms: dict[str, float | None] = Field(default_factory=dict)
    generator: GeneratorStats | None = None

    def latency(self, name: str) -> float | None:
        """A latency percentile in ms (None when not measured: no ok response)."""
        value = self.latency_ms.get(name)
        return float(value) if value is not None and math.isfinite(value) else None

    @property
    def error_count(self) -> int:
        return sum(max(0, n) for n in self.errors.values())

    @property
    def error_rate(self) -> float | None:
        """Errors of every class / requests sent (None when nothing was sent)."""
        return self.error_count / self.sent if self.sent > 0 else None

    @property
    def achieved_ratio(self) -> float | None:
        if self.achieved_rps is None or self.offered_rps <= 0:
            return None
        return self.achieved_rps / self.offered_rps


class EvidenceEntry(_Loose):
    """A file the generator wrote as evidence (its digest and where it is)."""

    name: str
    sha256: str
    path: str | None = None
    uri: str | None = None


class LoadRun(_Loose):
    """The generator's report, as far as the gate reads it."""

    target: str = ""
    refused: str | None = None
    error: str | None = None
    steps: list[Step] = Field(default_factory=list)
    evidence: list[EvidenceEntry] = Field(default_factory=list)
    discarded: list[str] = Field(default_factory=list)


def echo(value: Any, limit: int = MAX_ECHO) -> str:
    """Untrusted text on one line, cut to ``limit`` characters."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "…"


def host_of(target: str) -> str:
    """The host (and port) a target names: ``http://a:8081/p`` → ``a:8081``; a SageMaker target as is."""
    if "://" in target:
        return urlsplit(target).netloc or target
    return target


# --------------------------------------------------------------------------- levels


def upper_status(value: float, levels: UpperLevels) -> Status:
    """``fail`` / ``warn`` when the value reaches (``>=``) that level, else ``pass``."""
    if levels.fail is not None and value >= levels.fail:
        return Status.FAIL
    if levels.warn is not None and value >= levels.warn:
        return Status.WARN
    return Status.PASS


def ratio_status(value: float, levels: RatioLevels) -> Status:
    """``fail`` / ``warn`` when the ratio is below (``<``) that minimum, else ``pass``."""
    if levels.fail is not None and value < levels.fail:
        return Status.FAIL
    if levels.warn is not None and value < levels.warn:
        return Status.WARN
    return Status.PASS


def _levels(levels: UpperLevels | RatioLevels) -> dict[str, float | None]:
    return {"warn": levels.warn, "fail": levels.fail}


# --------------------------------------------------------------------------- the generator


def saturation(step: Step, config: LoadTestConfig) -> list[str] | None:
    """Why the generator was the bottleneck in ``step`` (empty: it was not; None: the step does not say)."""
    gen = step.generator
    if gen is None or (not gen.cpu and gen.lateness_ms.get("p99") is None):
        return None
    why = []
    limit = config.generator
    busy = [c for c in gen.cpu if c > limit.max_cpu]
    if busy:
        why.append(f"a process used {max(busy):.0%} of a core (limit {limit.max_cpu:.0%})")
    late = gen.lateness_ms.get("p99")
    if late is not None and late > limit.max_lateness_p99_ms:
        why.append(f"sends left {late:g} ms late at p99 (limit {limit.max_lateness_p99_ms:g} ms)")
    return why


def saturated_steps(run: LoadRun, config: LoadTestConfig) -> list[str]:
    """Each saturated step of ``run`` and why (``at 20 req/s sends left 1358 ms late at p99 …``); empty: the
    generator kept up wherever the run says (a step that reports nothing of it is not counted here)."""
    found = []
    for step in run.steps:
        why = saturation(step, config)
        if why:
            found.append(f"at {step.offered_rps:g} req/s {' and '.join(why)}")
    return found


def meets_fail_levels(step: Step, config: LoadTestConfig) -> bool:
    """Whether the step's server results hold every SLO fail level (see the module docstring)."""
    if saturation(step, config) or step.ok <= 0:
        return False
    slo = config.slo
    for name in LATENCIES:
        level = getattr(slo, f"{name}_ms").fail
        value = step.latency(name)
        if level is not None and (value is None or value >= level):
            return False
    rate = step.error_rate
    if rate is None or (slo.error_rate.fail is not None and rate >= slo.error_rate.fail):
        return False
    ratio = step.achieved_ratio
    return not (slo.min_achieved_ratio.fail is not None and (ratio is None or ratio < slo.min_achieved_ratio.fail))


def judged_step(run: LoadRun, config: LoadTestConfig) -> Step:
    """The step offered at the config's ``rate``, else the first one (the run has at least one step)."""
    for step in run.steps:
        if math.isclose(step.offered_rps, config.rate, rel_tol=1e-6, abs_tol=1e-9):
            return step
    return run.steps[0]


def knee(run: LoadRun, config: LoadTestConfig) -> Step | None:
    """The step of the highest offered rate that meets the fail levels (None: no step does)."""
    good = [s for s in run.steps if meets_fail_levels(s, config)]
    return max(good, key=lambda s: s.offered_rps) if good else None


def sustainable_rps(run: LoadRun, config: LoadTestConfig) -> float | None:
    """The knee's offered rate with a ramp, else the judged step's achieved rate when it meets the fail levels."""
    if len(run.steps) > 1:
        found = knee(run, config)
        return found.offered_rps if found is not None else None
    step = run.steps[0]
    if meets_fail_levels(step, config) and step.achieved_rps is not None and step.achieved_rps > 0:
        return step.achieved_rps
    return None


# --------------------------------------------------------------------------- checks


def check_target(run: LoadRun) -> CheckResult:
    """``target``: refused (fail, naming the host), the run failed (error), no step (error), else pass."""
    target = echo(run.target or "(no target)", 200)
    if run.refused is not None:
        return CheckResult(id="target", status=Status.FAIL, observed={"target": target, "refused": echo(run.refused)},
                           threshold="CLEARANCE_LOAD_TEST_ALLOWED_HOSTS",
                           message=f"the generator refused to load {echo(host_of(run.target), 200)}: "
                                   f"{echo(run.refused)} (only hosts on CLEARANCE_LOAD_TEST_ALLOWED_HOSTS are "
                                   f"ever loaded)")
    if run.error is not None:
        return CheckResult(id="target", status=Status.ERROR, observed={"target": target, "error": echo(run.error)},
                           message=f"the load run against {target} failed: {echo(run.error)}")
    if not run.steps:
        return CheckResult(id="target", status=Status.ERROR, observed={"target": target},
                           message=f"the load run against {target} has no step: nothing was measured")
    sent = sum(s.sent for s in run.steps)
    rates = ", ".join(f"{s.offered_rps:g}" for s in run.steps)
    return CheckResult(id="target", status=Status.PASS, observed={"target": target, "steps": len(run.steps),
                                                                  "sent": sent},
                       message=f"loaded {target}: {len(run.steps)} step(s) at {rates} req/s, {sent:,} request(s) "
                               f"measured")


def check_generator(run: LoadRun, config: LoadTestConfig) -> CheckResult:
    """``generator``: error when any step was saturated or does not report the generator's own load."""
    limits = {"max_cpu": config.generator.max_cpu, "max_lateness_p99_ms": config.generator.max_lateness_p99_ms}
    unknown, observed = [], []
    for step in run.steps:
        why = saturation(step, config)
        gen = step.generator
        observed.append({"offered_rps": step.offered_rps, "cpu": gen.cpu if gen else None,
                         "lateness_p99_ms": gen.lateness_ms.get("p99") if gen else None,
                         "saturated": bool(why)})
        if why is None:
            unknown.append(step)
    discarded = [echo(d) for d in run.discarded[:10]]
    runs = {"steps": observed, "discarded_runs": discarded}
    before = (f" (judged on the last of {len(discarded) + 1} runs; discarded, their generator the bottleneck: "
              + "; ".join(discarded) + ")") if discarded else ""
    saturated = saturated_steps(run, config)
    if saturated:
        return CheckResult(id="generator", status=Status.ERROR, observed=runs, threshold=limits,
                           message="the generator, not the server, was the bottleneck: " + "; ".join(saturated)
                                   + " — not a server result (fewer connections per process, a lower rate or "
                                     "more cores)" + before)
    if unknown:
        rates = ", ".join(f"{s.offered_rps:g}" for s in unknown)
        return CheckResult(id="generator", status=Status.ERROR, observed=runs, threshold=limits,
                           message=f"the run does not report the generator's CPU and lateness at {rates} req/s: "
                                   f"whether it was the bottleneck cannot be told" + before)
    return CheckResult(id="generator", status=Status.PASS, observed=runs, threshold=limits,
                       message="the generator kept up: every process under "
                               f"{config.generator.max_cpu:.0%} of a core, sends late by at most "
                               f"{config.generator.max_lateness_p99_ms:g} ms at p99" + before)


def _at(step: Step) -> str:
    return f"at {step.offered_rps:g} req/s"


def check_latencies(step: Step, config: LoadTestConfig, saturated: bool) -> list[CheckResult]:
    """``latency:p50|p95|p99|max`` of the judged step against the SLO (skipped on a saturated generator)."""
    checks = []
    for name in LATENCIES:
        levels: UpperLevels = getattr(config.slo, f"{name}_ms")
        value = step.latency(name)
        check_id = f"latency:{name}"
        if saturated:
            checks.append(CheckResult(id=check_id, status=Status.SKIPPED, observed=value, threshold=_levels(levels),
                                      message=f"{name} not judged {_at(step)}: not a server result (the generator "
                                              f"was saturated)"))
        elif value is None:
            checks.append(CheckResult(id=check_id, status=Status.SKIPPED, threshold=_levels(levels),
                                      message=f"{name} not measured {_at(step)}: no successful response"))
        elif not levels.judged:
            checks.append(CheckResult(id=check_id, status=Status.PASS, observed=value,
                                      message=f"{name} {value:g} ms {_at(step)} (no level set: reported only)"))
        else:
            status = upper_status(value, levels)
            checks.append(CheckResult(id=check_id, status=status, observed=value, threshold=_levels(levels),
                                      message=f"{name} {value:g} ms {_at(step)} "
                                              f"(warn at {_fmt(levels.warn)} ms, fail at {_fmt(levels.fail)} ms)"))
    return checks


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def check_errors(step: Step, config: LoadTestConfig, saturated: bool) -> CheckResult:
    """``errors``: the error rate of the judged step (every class) against its levels; counts by class observed."""
    levels: RateLevels = config.slo.error_rate
    counts = {k: step.errors.get(k, 0) for k in ERROR_CLASSES} | {k: v for k, v in step.errors.items()
                                                                 if k not in ERROR_CLASSES}
    rate = step.error_rate
    observed = {"rate": rate, "sent": step.sent, "ok": step.ok, **counts}
    by_class = ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "none"
    if rate is None:
        return CheckResult(id="errors", status=Status.ERROR, observed=observed, threshold=_levels(levels),
                           message=f"no request was sent {_at(step)}: the error rate cannot be measured")
    if saturated:
        return CheckResult(id="errors", status=Status.SKIPPED, observed=observed, threshold=_levels(levels),
                           message=f"error rate {rate:.4%} {_at(step)} ({by_class}) not judged: not a server result "
                                   f"(the generator was saturated; timeouts count from the intended send time)")
    status = upper_status(rate, levels) if levels.judged else Status.PASS
    return CheckResult(id="errors", status=status, observed=observed, threshold=_levels(levels),
                       message=f"error rate {rate:.4%} of {step.sent:,} request(s) {_at(step)} — {by_class} "
                               f"(warn at {_pct(levels.warn)}, fail at {_pct(levels.fail)})")


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.4%}"


def check_throughput(step: Step, config: LoadTestConfig, saturated: bool) -> CheckResult:
    """``throughput``: achieved / offered rate of the judged step against its minimums."""
    levels = config.slo.min_achieved_ratio
    ratio = step.achieved_ratio
    observed = {"offered_rps": step.offered_rps, "achieved_rps": step.achieved_rps, "ratio": ratio}
    if ratio is None:
        return CheckResult(id="throughput", status=Status.ERROR, observed=observed, threshold=_levels(levels),
                           message=f"the run does not report the achieved rate {_at(step)}")
    if saturated:
        return CheckResult(id="throughput", status=Status.SKIPPED, observed=observed, threshold=_levels(levels),
                           message=f"achieved {step.achieved_rps:g} of {step.offered_rps:g} req/s not judged: not a "
                                   f"server result (the generator was saturated)")
    status = ratio_status(ratio, levels)
    return CheckResult(id="throughput", status=status, observed=observed, threshold=_levels(levels),
                       message=f"achieved {step.achieved_rps:g} of {step.offered_rps:g} req/s offered ({ratio:.1%}; "
                               f"warn below {_pct1(levels.warn)}, fail below {_pct1(levels.fail)})")


def _pct1(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def check_knee(run: LoadRun, config: LoadTestConfig) -> CheckResult:
    """``knee``: with a ramp, the highest offered rate meeting the fail levels (pass), or none (fail)."""
    if len(run.steps) < 2:
        return CheckResult(id="knee", status=Status.SKIPPED,
                           message="no ramp (one step): the sustainable rate is the judged step's achieved rate")
    rows = [{"offered_rps": s.offered_rps, "achieved_rps": s.achieved_rps, "p99_ms": s.latency("p99"),
             "error_rate": s.error_rate, "meets": meets_fail_levels(s, config)} for s in run.steps]
    found = knee(run, config)
    if found is None:
        return CheckResult(id="knee", status=Status.FAIL, observed={"knee_rps": None, "steps": rows},
                           message="no step of the ramp met the SLO fail levels: no sustainable rate")
    return CheckResult(id="knee", status=Status.PASS, observed={"knee_rps": found.offered_rps, "steps": rows},
                       message=f"sustainable rate (knee) {found.offered_rps:g} req/s: the highest of "
                               f"{len(run.steps)} ramp step(s) whose p99, error rate and achieved rate meet the "
                               f"SLO fail levels")


def metrics(run: LoadRun, config: LoadTestConfig) -> dict[str, float]:
    """``load_test.*`` metrics of the judged step, and ``load_test.sustainable_rps`` when there is one."""
    step = judged_step(run, config)
    out: dict[str, float] = {}
    for name in REPORTED_LATENCIES:
        value = step.latency(name)
        if value is not None:
            out[f"load_test.{name}_ms"] = value
    if step.error_rate is not None:
        out["load_test.error_rate"] = step.error_rate
    out["load_test.offered_rps"] = step.offered_rps
    if step.achieved_rps is not None and math.isfinite(step.achieved_rps):
        out["load_test.achieved_rps"] = step.achieved_rps
    sustainable = sustainable_rps(run, config)
    if sustainable is not None:
        out["load_test.sustainable_rps"] = sustainable
    return out
