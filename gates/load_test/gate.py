"""The ``load_test`` gate as the registry sees it: id, version, config model and ``evaluate``.

It reads the generator's report from ``extra["load_run"]`` (a LoadRun, as JSON or as a model), judges it
(:mod:`gates.load_test.judge`), records the generator's evidence files and writes ``load_test.json``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from clearance.core.digests import sha256_json
from gates.base import CheckResult, EvidenceFile, GateInputs, GateResult, Status, register_gate
from gates.evidence import evidence_directory
from gates.load_test.config import LoadTestConfig
from gates.load_test.evidence import generator_files, write_run
from gates.load_test.judge import (
    LoadRun,
    check_errors,
    check_generator,
    check_knee,
    check_latencies,
    check_target,
    check_throughput,
    echo,
    judged_step,
    metrics,
    saturation,
)

#: Every check id, in the order they are reported.
CHECK_IDS = ("target", "generator", "latency:p50", "latency:p95", "latency:p99", "latency:max", "errors",
             "throughput", "knee")
_JUDGED = CHECK_IDS[1:]


def _skipped_all(why: str) -> list[CheckResult]:
    return [CheckResult(id=check_id, status=Status.SKIPPED, message=why) for check_id in _JUDGED]


def _as_json(raw: Any) -> Any:
    return raw.model_dump(mode="json") if isinstance(raw, BaseModel) else raw


@register_gate
class LoadTestGate:
    """The serving endpoint under an open-model load, judged against the tier's latency, error and throughput SLO."""

    id: ClassVar[str] = "load_test"
    version: ClassVar[str] = "1.0.0"
    config_model: ClassVar[type[BaseModel]] = LoadTestConfig

    def evaluate(self, inputs: GateInputs, config: BaseModel) -> GateResult:
        assert isinstance(config, LoadTestConfig)
        raw = _as_json(inputs.extra.get("load_run"))
        if raw is None:
            if inputs.extra.get("preflight"):
                why = "pre-flight without --endpoint: no load run (clearance gate run load_test --endpoint URL)"
                checks = [CheckResult(id="target", status=Status.SKIPPED, message=why), *_skipped_all(why)]
                return GateResult.from_checks(self.id, self.version, checks, message=why)
            checks = [CheckResult(id="target", status=Status.ERROR, message="the flow gave no load run"),
                      *_skipped_all("no load run")]
            return GateResult.from_checks(self.id, self.version, checks, message="the flow gave no load run")
        try:
            run = LoadRun.model_validate(raw)
        except ValidationError as exc:
            why = f"the load run could not be read: {echo(exc, 300)}"
            checks = [CheckResult(id="target", status=Status.ERROR, message=why), *_skipped_all("no readable load run")]
            return GateResult.from_checks(self.id, self.version, checks, message=why)

        evidence: list[EvidenceFile] = generator_files(run.evidence)
        directory = evidence_directory(inputs, self.id)
        evidence.append(write_run(directory, raw))
        digests = {"load_run": sha256_json(raw)}

        target = check_target(run)
        if target.status is not Status.PASS:
            why = "the target was refused: nothing was loaded" if run.refused is not None else "no measured step"
            checks = [target, *_skipped_all(why)]
            return GateResult.from_checks(self.id, self.version, checks, evidence=evidence, input_digests=digests,
                                          message=target.message)
        step = judged_step(run, config)
        saturated = bool(saturation(step, config))
        checks = [target, check_generator(run, config), *check_latencies(step, config, saturated),
                  check_errors(step, config, saturated), check_throughput(step, config, saturated),
                  check_knee(run, config)]
        found = metrics(run, config)
        return GateResult.from_checks(self.id, self.version, checks, metrics=found, evidence=evidence,
                                      input_digests=digests, message=_message(found, checks, saturated))


def _message(m: dict[str, float], checks: list[CheckResult], saturated: bool) -> str:
    """One line: the judged step's rates, latencies, errors and the sustainable rate."""
    parts = [f"{m['load_test.offered_rps']:g} req/s offered"]
    if "load_test.achieved_rps" in m:
        parts[0] += f", {m['load_test.achieved_rps']:g} achieved"
    latency = ", ".join(f"{name} {m[f'load_test.{name}_ms']:g} ms" for name in ("p50", "p95", "p99", "max")
                        if f"load_test.{name}_ms" in m)
    if latency:
        parts.append(latency)
    if "load_test.error_rate" in m:
        parts.append(f"errors {m['load_test.error_rate']:.2%}")
    if saturated:
        parts.append("generator saturated: not a server result")
    sustainable = m.get("load_test.sustainable_rps")
    parts.append(f"sustainable {sustainable:g} req/s" if sustainable is not None
                 else "no sustainable rate (the SLO fail levels did not hold)")
    bad = [c.id for c in checks if c.status in (Status.FAIL, Status.ERROR)]
    if bad:
        parts.append(f"not met: {', '.join(bad)}")
    return "; ".join(parts)
