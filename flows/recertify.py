"""The re-certification flow: the live version checked again, on a schedule, by its tier's ``recertification``.

Reads like the business process: the policy and the pointer → the live version's context with its
artifacts at their production copies and its data as of now (the manifest's fresh production sample)
→ the ``recertification.gates`` (flows/promote.py ``run_gates``: evidence under the run's prefix, a
ledger ``gate`` entry each, waivers as of now) → ``recertified`` (certified for ``validity`` more, by the
store's clock) or ``recertification-failed`` and the policy's ``on_failure``: an alert (Slack in the
model's channel, a Jira ticket) always, the certification lapsed for ``lapse`` and ``rollback``, and
for ``rollback`` the rollback flow (flows/rollback.py) as a subflow, authorised by this run's entry.
The cached certification (tasks/certification.py) is refreshed after either ending.

A re-certification writes no ``started`` entry (``clearance status --model`` keeps showing the latest
promotion); its one ``run`` entry is its terminal one. Passes tell nobody (the ledger, the evidence and
``clearance status --model`` show them); failures and lapses are what people must hear about.
A failed re-certification fails the Prefect run (after recording it), as a stopped promotion does.
"""

from __future__ import annotations

import logging
import posixpath
from datetime import datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from pydantic import BaseModel, Field

from clearance.config.schema import ArtifactRef, DatasetRef, OnFailure, Policy, Recertification
from clearance.core.keys import production_key, run_prefix
from clearance.core.ledger_kinds import LedgerKind
from clearance.events import PromotionEvent
from clearance.render.report import build_report
from flows.promote import (
    check_object_store,
    close_run,
    compliance_inputs,
    cost_inputs,
    load_inputs,
    read_production_pointer,
    run_gates,
    scan_inputs,
)
from gates.base import GateInputs, GateResult, Status
from tasks.candidate import PromotionContext, load_promotion_context, observe_candidate
from tasks.candidate_files import discard_candidate_files
from tasks.certification import close_failed_recertification, refresh_certification
from tasks.channels import announce
from tasks.datasets import locate_datasets_task
from tasks.evidence import evidence_dir, seal_evidence, store, store_time
from tasks.prefect_runs import run_url
from tasks.prefect_tasks import task
from tasks.promotion import ProductionPointer
from tasks.recovery import configured_prefixes
from tasks.run_artifacts import flushed
from tasks.wiring import config_set

RecertificationStatus = Literal["recertified", "failed", "not-in-production", "not-configured"]
#: Dataset roles of the live version that a re-certification does not judge again: its evaluation data was
#: judged at promotion; the production sample is the manifest's fresh one. ``predictions`` is kept only for
#: compliance_review, which reads it.
NOT_REJUDGED = frozenset({"eval", "production_sample", "predictions"})
INITIATOR = "clearance"


class RecertificationFailed(RuntimeError):
    """A blocking re-certification gate failed or could not decide; recorded, alerted, on_failure applied."""


class RecertificationResult(BaseModel):
    """What a re-certification run did (the flow's return value; a failure raises after recording)."""

    run_id: str
    model: str
    version: str | None = None
    status: RecertificationStatus
    gates: dict[str, Status] = Field(default_factory=dict)
    certified_until: datetime | None = None
    action: OnFailure | None = None
    lapsed: bool = False
    evidence_prefix: str = ""
    message: str = ""


@flushed
def _record_crash(flow, flow_run, state) -> None:
    """Failure hook: a run that began gating and ended without its terminal entry gets ``recertification-failed``
    (action ``none``: the certification is untouched); a recorded failure is left as it is."""
    try:
        close_failed_recertification(store(), flow_run.parameters["model"], str(flow_run.id),
                                     state.message or "failed", configured_prefixes())
    except Exception as exc:  # noqa: BLE001 — the hook must not mask the original failure
        logging.getLogger("clearance.flows").warning("could not record the failure in the ledger: %s", exc)


@flow(name="recertify-model", persist_result=True, on_failure=[_record_crash], on_crashed=[_record_crash])
@flushed  # the run's artifacts are on the server when it ends (tasks/run_artifacts.py)
def recertify_model(model: str) -> RecertificationResult:
    """Re-certify ``model``'s live version with its tier's ``recertification`` gates; apply ``on_failure``.

    Args:
        model: The model whose live version (production/<model>/CURRENT.json) is re-certified.
    """
    log = get_run_logger()
    run_context = FlowRunContext.get()
    if run_context is None or run_context.flow_run is None:
        raise RuntimeError("recertify_model needs a Prefect flow run context: call it as a flow, not its .fn")
    run_id = str(run_context.flow_run.id)
    policy = read_policy(model)
    if policy is None or policy.recertification is None:
        message = f"{model}: " + ("not in the configs" if policy is None else
                                  f"tier {policy.tier} has no recertification section")
        log.info("%s: nothing to re-certify", message)
        return RecertificationResult(run_id=run_id, model=model, status="not-configured", message=message)
    terms = policy.recertification
    seen = read_production_pointer(policy.promotion.prefix, model)
    if seen.pointer is None:
        message = f"{model} is not in production ({policy.promotion.prefix}): nothing to re-certify"
        log.info(message)
        return RecertificationResult(run_id=run_id, model=model, status="not-in-production", message=message)
    check_object_store()
    pointer = seen.pointer
    version = pointer.version
    ctx = recertification_context(load_promotion_context(model, version), terms, pointer)
    prefix = run_prefix(model, version, run_id)

    observations = observe_candidate(ctx.model_version)
    datasets = locate_datasets_task(ctx.model_version) if ctx.model_version.datasets else {}
    inputs = GateInputs(model=model, version=version, manifest=ctx.manifest.model_dump(mode="json"),
                        artifacts=observations, datasets=datasets,
                        extra={"evidence_dir": evidence_dir(run_id), **scan_inputs(ctx, run_id),
                               **compliance_inputs(ctx, seen), **cost_inputs(ctx)})
    try:  # passes tell nobody: the gates go to the evidence and the ledger only
        results = run_gates(ctx, inputs, run_id, prefix, False, lambda *_, **__: None,
                            before={"load_test": load_inputs})
    finally:
        if ctx.policy.gate("security_scan"):
            discard_candidate_files(run_id)
    gates = {r.gate_id: r.status for r in results}
    fields: dict[str, Any] = dict(model=model, version=version, tier=policy.tier, run_id=run_id,
                                  initiator=INITIATOR, artifact_digest=pointer.artifact_digest, results=results)
    failed = [r for r in results if r.stops_promotion]
    target = policy.promotion.prefix

    if not failed:
        until = store_time() + terms.validity
        note = f"Re-certified: {model} {version} is certified until {until.isoformat()}."
        sealed = seal_evidence(prefix, build_report(**fields, outcome="recertified", note=note),
                               f"{model} {version} re-certified", model=model, version=version, run_id=run_id,
                               dry_run=False)
        close_run(model, run_id, LedgerKind.RECERTIFIED, {
            "run": run_id, "version": version, "certified_until": until.isoformat(),
            "gates": {gate: status.value for gate, status in gates.items()}, **sealed}, 0)
        refresh_state(model, target)
        log.info("%s %s re-certified until %s", model, version, until.isoformat())
        return RecertificationResult(run_id=run_id, model=model, version=version, status="recertified", gates=gates,
                                     certified_until=until, evidence_prefix=prefix, message=note)

    action = terms.on_failure
    lapses = action in (OnFailure.LAPSE, OnFailure.ROLLBACK)
    reason = failure_reason(model, version, failed, action)
    sealed = seal_evidence(prefix, build_report(**fields, outcome="recertification-failed", note=reason),
                           f"{model} {version}: re-certification failed", model=model, version=version,
                           run_id=run_id, dry_run=False)
    close_run(model, run_id, LedgerKind.RECERTIFICATION_FAILED, {
        "run": run_id, "version": version, "reason": reason, "failed_gates": [r.gate_id for r in failed],
        "gates": {gate: status.value for gate, status in gates.items()}, "action": action.value, "lapsed": lapses,
        **sealed}, 0)
    refresh_state(model, target)
    url = run_url(run_id)
    announce(PromotionEvent(kind="alert", action="recertification", run_id=run_id, model=model, version=version,
                            tier=policy.tier, initiator=INITIATOR, artifact_digest=pointer.artifact_digest,
                            status="recertification-failed", message=reason, gates=results,
                            links={"prefect_run": url} if url else {},
                            notify=ctx.manifest.notify.over(policy.notify)))
    log.warning(reason)
    if action is OnFailure.ROLLBACK:
        reason += roll_back(model, run_id, reason)
        refresh_state(model, target)  # the rolled-back-to version's certification
    raise RecertificationFailed(reason)


def recertification_context(ctx: PromotionContext, terms: Recertification, pointer: ProductionPointer
                            ) -> PromotionContext:
    """The live version as a re-certification judges it: the policy's gates replaced by ``terms.gates``, the
    artifacts at their production copies (the pointer's keys, by file name; the pinned digests), the pinned
    datasets it does not re-judge left out (:data:`NOT_REJUDGED`) and the manifest's production sample
    added, unpinned (it is read fresh)."""
    runs_compliance = any(spec.id == "compliance_review" for spec in terms.gates)
    by_name = {posixpath.basename(key): key for key in pointer.artifacts}
    version = ctx.model_version
    artifacts = [ArtifactRef(key=by_name.get(posixpath.basename(ref.key))
                             or production_key(ctx.model, ctx.version, ref.key, ctx.policy.promotion.prefix),
                             sha256=ref.sha256, size=ref.size, format=ref.format) for ref in version.artifacts]
    datasets = [ref for ref in version.datasets
                if ref.role not in NOT_REJUDGED or (ref.role == "predictions" and runs_compliance)]
    sample = ctx.manifest.recertification.production_sample if ctx.manifest.recertification else None
    if sample is not None:
        datasets.append(DatasetRef(role="production_sample", uri=sample.uri, sha256=None, contract=sample.contract))
    live = version.model_copy(update={"artifacts": artifacts, "datasets": datasets})
    manifest = ctx.manifest.model_copy(update={"versions": {**ctx.manifest.versions, ctx.version: live}})
    policy = ctx.policy.model_copy(update={"gates": list(terms.gates)})
    return ctx.model_copy(update={"manifest": manifest, "policy": policy})


def failure_reason(model: str, version: str, failed: list[GateResult], action: OnFailure) -> str:
    """One line: which gates failed, and what the policy does about it."""
    names = ", ".join(f"{r.gate_id} {r.status.value}" for r in failed)
    then = {OnFailure.NOTIFY: "alerted; the certification runs until it expires",
            OnFailure.LAPSE: "alerted; the certification lapsed",
            OnFailure.ROLLBACK: "alerted; the certification lapsed; rolling back to the last certified version"}
    return f"re-certification of {model} {version} failed ({names}): on_failure {action.value}: {then[action]}"


def roll_back(model: str, run_id: str, reason: str) -> str:
    """The rollback flow as a subflow, authorised by this run's ``recertification-failed``; what became of it."""
    from flows.rollback import rollback_model

    try:
        result = rollback_model(model=model, automatic=True, trigger_run=run_id, reason=reason)
    except Exception as exc:  # noqa: BLE001 — recorded by the rollback run; this run says so and fails anyway
        get_run_logger().error("automatic rollback of %s failed: %s", model, exc)
        return f"; the automatic rollback failed: {exc}"
    return f"; rolled back from {result.from_version} to {result.version} (run {result.run_id})"


@task(name="read-policy", cache_policy=NO_CACHE)
def read_policy(model: str) -> Policy | None:
    """The model's effective policy (``None`` when the model left the configs)."""
    configs = config_set()
    return configs.effective_policy(model) if model in configs.manifests else None


@task(name="refresh-certification", cache_policy=NO_CACHE)
def refresh_state(model: str, prefix: str) -> None:
    """Store the certification as the ledger now says it (tasks/certification.py); never fails the run."""
    try:
        refresh_certification(store(), model, prefix)
    except Exception as exc:  # noqa: BLE001 — a stale cache is rebuilt from the ledger by its next reader
        get_run_logger().warning("could not store the certification of %s: %s", model, exc)
