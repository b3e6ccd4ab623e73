"""The promotion flow: configs → gates → sign-off → production, with evidence at every step.

Reads like the business process (docs/architecture.md, "The promotion path"); every side effect is a task in ``tasks/``
and every verdict comes from ``gates/`` or the approval rules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, NotRequired, TypedDict

from prefect import flow, get_run_logger
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from pydantic import BaseModel, Field

from clearance.approvals import ApprovalRecord, ApprovalRequest, Outcome
from clearance.approvals.request import build_request, eligible_approvers
from clearance.approvals.rules import downgrade_refusal
from clearance.config.schema import GateMode, OnWarn
from clearance.core.digests import sha256_json
from clearance.core.keys import pointer_key, run_prefix
from clearance.core.ledger_kinds import LedgerKind
from clearance.core.versions import compare_versions
from clearance.events import PromotionEvent
from clearance.ledger import LedgerEntry
from clearance.render.report import RunFacts, build_report
from clearance.settings import get_settings
from flows.signoff import wait_for_sign_off
from gates.base import GateInputs, GateResult, Status
from gates.waivers import apply_waivers
from tasks.caching import per_run_key
from tasks.candidate import PromotionContext, artifact_digest, load_promotion_context, observe_candidate
from tasks.candidate_files import discard_candidate_files, fetch_candidate_files_task, fetch_model_card_task
from tasks.champion import read_champion_task
from tasks.channels import announce
from tasks.datasets import locate_datasets_task
from tasks.evidence import (
    evidence_dir,
    publish_gate_result,
    record_event,
    seal_evidence,
    store,
    store_time,
    write_evidence,
)
from tasks.gate_runner import evaluate_gate
from tasks.initiator import establish_initiator
from tasks.load_test import load_test_task
from tasks.prefect_runs import run_url
from tasks.prefect_tasks import task
from tasks.promotion import (
    PointerState,
    PromotionOutcomeUnknown,
    is_live,
    planned_production,
    promote_to_production,
    read_pointer,
)
from tasks.recovery import append_closing, close_after_failure, configured_prefixes, recover_model
from tasks.run_artifacts import flushed
from tasks.signoff import open_approval, opened_request, refresh_record, sign_off_opens_at
from tasks.storage_posture import read_storage_postures
from tasks.store_probe import require_conditional_writes, trust_earlier_pass
from tasks.supersede import supersede_older

RunStatus = Literal["promoted", "dry-run", "gate-failed", "rejected", "timed-out", "superseded", "promotion-failed"]


class PromotionStopped(RuntimeError):
    """The promotion ended without a production move; the run is marked failed with this message."""


class ReportFields(TypedDict):
    """The :func:`~clearance.render.report.build_report` arguments every ending of a run shares."""

    model: str
    version: str
    tier: str
    run_id: str
    initiator: str
    artifact_digest: str
    results: list[GateResult]
    record: NotRequired[ApprovalRecord]
    facts: NotRequired[RunFacts]


class PromotionResult(BaseModel):
    """What a promotion run did (the flow's return value)."""

    run_id: str
    model: str
    version: str
    status: RunStatus
    gates: dict[str, Status] = Field(default_factory=dict)
    artifact_digest: str
    approvals: Outcome | None = None
    would_need: dict[str, list[str]] = Field(default_factory=dict, description="Dry run: role → eligible people.")
    production: dict[str, str] = Field(default_factory=dict)
    evidence_prefix: str
    message: str = ""


@flushed
def _record_crash(flow, flow_run, state) -> None:
    """Failure hook: make sure the ledger says how the run ended, even after an unexpected error."""
    params = flow_run.parameters
    if params.get("dry_run"):
        return  # a dry run writes no ledger entry
    try:  # `promoted` (recovered) if the pointer already names this run, else `failed`: tasks/recovery.py
        close_after_failure(store(), params["model"], str(flow_run.id), state.message or "failed",
                            configured_prefixes())
    except Exception as exc:  # noqa: BLE001 — the hook must not mask the original failure
        logging.getLogger("clearance.flows").warning("could not record the failure in the ledger: %s", exc)


@flow(name="promote-model", persist_result=True, on_failure=[_record_crash], on_crashed=[_record_crash])
@flushed  # the run's artifacts are on the server when it ends (tasks/run_artifacts.py)
def promote_model(model: str, version: str, dry_run: bool = False, initiator: str | None = None,
                  initiator_proof: dict[str, str] | None = None, allow_downgrade: bool = False) -> PromotionResult:
    """Promote ``model`` ``version`` to production if its policy's gates and approvers clear it.

    ``dry_run`` evaluates every gate and names who would have to approve, writing nothing
    outside this run's own evidence prefix. ``initiator_proof`` is the start statement the person
    signed with their SSH key (``clearance promote --key``): it makes the initiator verified. Without
    it ``initiator`` is only a claimed name, and a tier that counts only verified decisions opens no
    sign-off anyone could pass. The initiator may never approve their own promotion. A version lower than
    the live one is refused unless the tier allows downgrades and ``allow_downgrade`` is set (recorded). Once
    approved, the sign-offs of older versions of the model still waiting are closed as superseded
    (tasks/supersede.py); a run whose own sign-off is superseded stops as ``superseded``.

    Args:
        model: The model's name, as in configs/models/<model>.yaml.
        version: The version to promote, as pinned in the model's manifest (e.g. 1.0.4).
        dry_run: Run every gate and name who would have to approve; write nothing outside this run's evidence.
        initiator: Who starts the promotion (a principal id). Typed here it is only a claimed identity; the
            CLI signs it with `clearance promote --key`.
        initiator_proof: The signed start statement `clearance promote --key` makes; leave empty in the UI.
        allow_downgrade: Promote although the version is lower than the live one (only where the tier's
            promotion.downgrades is explicit; recorded in the ledger).
    """
    log = get_run_logger()
    run_context = FlowRunContext.get()
    if run_context is None or run_context.flow_run is None:
        raise RuntimeError("promote_model needs a Prefect flow run context: call it as a flow, not its .fn")
    run_id = str(run_context.flow_run.id)
    check_object_store()  # before anything is written: a store ignoring conditional writes fails the run here
    ctx = load_promotion_context(model, version)
    if not dry_run:  # close what earlier runs left open (the pointer ahead of the ledger, runs that ended silently)
        recover_open_runs(model, ctx.policy.promotion.prefix)
    prefix = run_prefix(model, version, run_id)
    seen_pointer = read_production_pointer(ctx.policy.promotion.prefix, model)
    live = seen_pointer.pointer.version if seen_pointer.pointer else None
    refusal = downgrade_refusal(model, version, live, ctx.policy.promotion.downgrades, allow_downgrade)
    if refusal is not None:  # before anything is written: a refused downgrade leaves no trace but the run's state
        raise PromotionStopped(f"{model} {version}: {refusal}")
    downgrade = {"downgrade_from": live} if live is not None and compare_versions(version, live) == -1 else {}
    starter = establish_initiator(initiator_proof, initiator, model, version, run_id, ctx.principals)
    who = starter.principal
    if not dry_run:
        record_event(model, LedgerKind.STARTED, {"run": run_id, "version": version, "initiator": who,
                                                 "initiator_assurance": starter.assurance.value,
                                                 "tier": ctx.policy.tier, "config_digest": ctx.config_digest,
                                                 **downgrade})

    observations = observe_candidate(ctx.model_version)
    digest = artifact_digest(observations)
    starter = starter.for_candidate(digest)
    if starter.problem:
        log.warning("start proof not accepted (%s); initiator %r is only claimed", starter.problem, who)

    tell = _announcer(ctx, run_id, who, digest, dry_run)
    tell("opened")
    datasets = locate_datasets_task(ctx.model_version) if ctx.model_version.datasets else {}
    inputs = GateInputs(model=model, version=version, manifest=ctx.manifest.model_dump(mode="json"),
                        artifacts=observations, datasets=datasets,
                        extra={"evidence_dir": evidence_dir(run_id), **scan_inputs(ctx, run_id),
                               **compliance_inputs(ctx, seen_pointer), **cost_inputs(ctx)})
    try:
        results = run_gates(ctx, inputs, run_id, prefix, dry_run, tell, before={"load_test": load_inputs})
    finally:
        if ctx.policy.gate("security_scan"):
            discard_candidate_files(run_id)  # the gates decided: the local copy of the candidate goes
    summary = dict(run_id=run_id, model=model, version=version, artifact_digest=digest,
                   gates={r.gate_id: r.status for r in results}, evidence_prefix=prefix)
    report = ReportFields(model=model, version=version, tier=ctx.policy.tier, run_id=run_id, initiator=who,
                          artifact_digest=digest, results=results,
                          facts=run_facts(ctx, run_context.flow_run.start_time, starter.assurance.value, seen_pointer))

    stopper = next((r for r in results if r.stops_promotion), None)
    if stopper is None and _warnings_need_people(ctx, results):
        stopper = results[-1]
    if stopper is not None:
        message = f"gate {stopper.gate_id} {stopper.status.value}: promotion stopped"
        if stopper.status is Status.WARN:
            message = "gates warned and the policy requires approval, but it names no approver roles"
        return _stop(ctx, "gate-failed", message, summary, report, dry_run, tell)

    request = build_request(run_id=run_id, manifest=ctx.manifest, version=version, policy=ctx.policy,
                            initiator=who, artifact_digest=digest,
                            evidence_digest=sha256_json([r.digest() for r in results]),
                            opened_at=sign_off_opens_at(),  # once per run: the resumed pass builds the same request
                            initiator_assurance=starter.assurance)
    eligible = eligible_approvers(request, ctx.principals)
    if dry_run:
        write_evidence(prefix, "dry-run.json", {"request": request.model_dump(mode="json"), "eligible": eligible})
        seal_evidence(prefix, build_report(**report, outcome="dry-run", request=request, eligible=eligible),
                      f"dry run of {model} {version}", model=model, version=version, run_id=run_id, dry_run=True)
        log.info("Dry run: gates %s; would need %s", summary["gates"], eligible)
        return PromotionResult(**summary, status="dry-run", would_need=eligible)

    record = sign_off(ctx, request, eligible, lambda rec: tell("approval-requested", record=rec, gates=results))
    report["record"] = record
    if record.outcome is Outcome.SUPERSEDED:  # a newer version was approved (tasks/supersede.py told the channels)
        reason = record.closed_by[0] if record.closed_by else "superseded by a newer version"
        return _stop(ctx, "superseded", reason, summary | {"approvals": record.outcome}, report, dry_run, tell)
    if record.outcome is not Outcome.APPROVED:
        tell("closed", record=record, gates=results)
        status: RunStatus = "rejected" if record.outcome is Outcome.REJECTED else "timed-out"
        return _stop(ctx, status, f"sign-off {record.outcome.value}", summary | {"approvals": record.outcome},
                     report, dry_run, tell)

    decisions = [d.model_dump(mode="json") for d in record.decisions]
    approval_entry = record_event(model, LedgerKind.APPROVED, {"run": run_id, "version": version,
                                                               "artifact_digest": digest, "decisions": decisions})
    tell("closed", record=record, gates=results)
    supersede_older_requests(model, version, run_id)
    # Intent before effect: if the run cannot record the move (store down, process gone), recovery finds
    # this entry and the pointer, and closes the run (tasks/recovery.py).
    target = ctx.policy.promotion.prefix
    planned = planned_production(target, model, version, ctx.model_version)
    replaces = seen_pointer.pointer.run_id if seen_pointer.pointer else None
    intent = record_event(model, LedgerKind.PROMOTING, {
        "run": run_id, "version": version, "artifact_digest": digest, "production": planned, "prefix": target,
        "pointer": pointer_key(model, target), "pointer_etag": seen_pointer.etag, "replaces_run": replaces})
    try:
        production = promote_candidate(ctx, digest, seen_pointer, run_id, approval_entry.seq, approval_entry.hash)
    except PromotionOutcomeUnknown:
        raise  # live or not is unknown: never recorded as failed; recovery reads the pointer once the store answers
    except Exception as exc:  # noqa: BLE001 — recorded, then re-raised as the run's failure
        if not went_live(target, model, run_id):  # (a store that cannot say fails the run unrecorded: recovery)
            return _stop(ctx, "promotion-failed", str(exc), summary | {"approvals": record.outcome}, report,
                         dry_run, tell)
        production = planned  # the move landed although the step failed after it
    sealed = seal_evidence(prefix, build_report(**report, outcome="promoted", production=production),
                           f"{model} {version} promoted", model=model, version=version, run_id=run_id, dry_run=False)
    close_run(model, run_id, LedgerKind.PROMOTED, {"run": run_id, "version": version, "artifact_digest": digest,
                                                   "production": production, "replaces_run": replaces, **sealed,
                                                   **certification_terms(ctx)},
              intent.seq)
    tell("promoted", status="promoted", record=record, message=", ".join(production))
    log.info("%s %s promoted: %s", model, version, ", ".join(production))
    return PromotionResult(**summary, status="promoted", approvals=record.outcome, production=production)


GateInputsHook = Callable[[PromotionContext, str, dict[str, Any]], dict[str, Any]]


def run_gates(ctx: PromotionContext, inputs: GateInputs, run_id: str, prefix: str, dry_run: bool,
              tell: Callable[..., object], before: dict[str, GateInputsHook] | None = None) -> list[GateResult]:
    """The policy's gates in order; a blocking failure stops the sequence (later gates are not run).

    Each gate sees the results of the gates before it in this run (``extra["earlier_gates"]``: gate id →
    status, message, blocking and metrics; after waivers), e.g. for the readiness scorecard of
    ``compliance_review`` and for ``cost``, which prices what ``load_test`` measured.
    ``before[gate id](ctx, run_id, gate config)`` adds inputs made just before that gate runs (the load
    test: only a candidate every earlier blocking gate let through is ever loaded).
    Waivers apply as of when the gate decided (its ``finished_at``), so a resumed run, which gets
    the stored result back, waives exactly what the first pass waived — and so hands the later gates
    the same earlier results, which keeps their per-run cache keys (tasks/caching.py) the same.
    """
    results: list[GateResult] = []
    for spec in ctx.policy.gates:
        earlier = {r.gate_id: {"status": r.status.value, "message": r.message, "blocking": r.blocking,
                               "metrics": dict(r.metrics)}
                   for r in results}
        made = before[spec.id](ctx, run_id, dict(spec.config)) if before and spec.id in before else {}
        gate_inputs = inputs.model_copy(update={"extra": {**inputs.extra, **made, "earlier_gates": earlier}})
        result = evaluate_gate(spec.id, gate_inputs, spec.config, spec.mode is GateMode.BLOCKING)
        result = apply_waivers(result, ctx.waivers, ctx.model, ctx.version, now=result.finished_at)
        publish_gate_result(prefix, result, ctx.model, run_id, dry_run)
        tell("gate", gate=result)
        results.append(result)
        if result.stops_promotion:
            break
    return results


def scan_inputs(ctx: PromotionContext, run_id: str) -> dict[str, object]:
    """What ``security_scan`` reads besides the observations, when the policy runs it: the candidate's
    files on this worker (pinned bytes, requirements, bundle text files) and the buckets' posture."""
    if ctx.policy.gate("security_scan") is None:
        return {}
    extra = fetch_candidate_files_task(ctx.model, ctx.version, ctx.model_version, run_id)
    postures = read_storage_postures()
    return extra | {"storage_posture": [posture.model_dump(mode="json") for posture in postures]}


def compliance_inputs(ctx: PromotionContext, seen_pointer: PointerState) -> dict[str, Any]:
    """What ``compliance_review`` reads besides the manifest and the datasets, when the policy runs it: the
    tier's regulatory tags, the config set's regulatory mapping, the model in production (from its own
    evidence, tasks/champion.py) and the version's Markdown model card (tasks/candidate_files.py)."""
    if ctx.policy.gate("compliance_review") is None:
        return {}
    extra: dict[str, Any] = {"regulatory_tags": list(ctx.policy.regulatory_tags)}
    if ctx.regulatory is not None:
        extra["regulatory_map"] = ctx.regulatory
    extra["champion"] = read_champion_task(ctx.policy.promotion.prefix, ctx.model, ctx.version, seen_pointer)
    return extra | fetch_model_card_task(ctx.model_version)


def load_inputs(ctx: PromotionContext, run_id: str, config: dict[str, Any]) -> dict[str, Any]:
    """What ``load_test`` judges: the load run on the candidate's serving endpoint (tasks/load_test.py), made
    just before the gate, so a candidate an earlier blocking gate stopped is never loaded. Cached per run: a
    resumed run gets the same run back and does not load the endpoint again."""
    return {"load_run": load_test_task(ctx.manifest, ctx.version, config, evidence_dir(run_id), run_id)}


def cost_inputs(ctx: PromotionContext) -> dict[str, Any]:
    """What ``cost`` reads besides the manifest's ``serving`` prices and load_test's metrics, when the policy
    runs it: the config set's price table (configs/prices.yaml, instance type → USD per hour)."""
    if ctx.policy.gate("cost") is None or ctx.prices is None:
        return {}
    return {"price_table": ctx.prices}


def sign_off(ctx: PromotionContext, request: ApprovalRequest, eligible: dict[str, list[str]],
             on_open: Callable[[ApprovalRecord], object]) -> ApprovalRecord:
    """Open the approval request (once per run), tell the channels, and wait until it closes."""
    if not request.required_roles:
        return ApprovalRecord(request=request, outcome=Outcome.APPROVED, closed_by=["policy: no sign-off"])
    impossible = [role for role, people in eligible.items() if len(people) < request.required_roles[role]]
    if impossible:
        get_run_logger().warning("Quorum cannot be met for roles %s with the current principals", impossible)
    key = open_approval(request)
    stored = opened_request(key, request)  # a resumed run keeps the request (and deadline) it first opened
    record_event(ctx.model, LedgerKind.APPROVAL_REQUESTED, {"run": stored.run_id, "required": stored.required_roles,
                                                    "deadline": stored.deadline.isoformat(),
                                                    "artifact_digest": stored.artifact_digest})
    on_open(refresh_record(key, stored, ctx.principals))
    return wait_for_sign_off(key, stored, ctx.principals)


def check_object_store() -> None:
    """The store must enforce If-None-Match / If-Match (tasks/store_probe.py), or the run fails with why.

    Once per run for as long as a process trusts a passed check (``CLEARANCE_S3_PROBE_TTL_SECONDS``): the
    pass of a deployment run resumed within it reuses the check, one resumed later probes the store again.
    """
    ttl = timedelta(seconds=get_settings().s3_probe_ttl_seconds)
    passed_at = _probe_object_store.with_options(cache_expiration=ttl)()
    if isinstance(passed_at, float):  # a resumed pass (result cached): no new probe before its ledger appends
        trust_earlier_pass(store(), passed_at)


@task(name="check-object-store", persist_result=True, cache_key_fn=per_run_key)
def _probe_object_store() -> float:
    """The probe; the wall-clock time it passed (a resumed pass of the run trusts it, within the TTL)."""
    require_conditional_writes(store())
    return time.time()


@task(name="supersede-older-requests", cache_policy=NO_CACHE)
def supersede_older_requests(model: str, version: str, run_id: str) -> list[str]:
    """Close the pending sign-offs of older versions of ``model`` as superseded (tasks/supersede.py); never fails
    this run: what could not be done is logged, and those runs keep waiting for their own outcome."""
    log = get_run_logger()
    try:
        superseded = supersede_older(store(), model, version, run_id)
    except Exception as exc:  # noqa: BLE001 — Prefect or the store down: this approved run still promotes
        log.warning("could not supersede older requests of %s: %s: %s", model, type(exc).__name__, exc)
        return []
    if superseded:
        log.info("superseded the waiting promotion(s) of older versions: %s", ", ".join(superseded))
    return superseded


@task(name="read-production-pointer", persist_result=True, cache_key_fn=per_run_key)
def read_production_pointer(prefix: str, model: str) -> PointerState:
    """The pointer as this run first saw it: the final move is compare-and-swap against it."""
    return read_pointer(store(), prefix, model)


@task(name="promote-to-production", persist_result=True, cache_key_fn=per_run_key)
def promote_candidate(ctx: PromotionContext, approved_digest: str, seen: PointerState, run_id: str,
                      ledger_seq: int, ledger_hash: str) -> dict[str, str]:
    """Re-check the digest, copy with checksums, then move the pointer (compare-and-swap); a copy that
    does not go live is marked ``NOT-LIVE.json`` (tasks/promotion.py)."""
    return promote_to_production(store(), ctx.policy.promotion.prefix, ctx.model, ctx.version, ctx.model_version,
                                 approved_digest, seen, run_id, ledger_seq, ledger_hash)


@task(name="went-live", cache_policy=NO_CACHE)
def went_live(prefix: str, model: str, run_id: str) -> bool:
    """Whether the pointer names this run after its promote step failed (raises when the store cannot say)."""
    return is_live(store(), prefix, model, run_id)


@task(name="close-run", cache_policy=NO_CACHE)
def close_run(model: str, run_id: str, kind: LedgerKind, payload: dict, after: int) -> LedgerEntry | None:
    """The run's closing ledger entry, unless recovery closed the run first (then ``None``)."""
    entry = append_closing(store(), model, run_id, kind, payload, after=after)
    if entry is None:
        get_run_logger().warning("run %s was already closed in the ledger (by recovery); nothing appended", run_id)
    return entry


@task(name="recover-open-runs", persist_result=True, cache_key_fn=per_run_key)
def recover_open_runs(model: str, prefix: str) -> list[int]:
    """Close what earlier runs of ``model`` left open (tasks/recovery.py); never fails this run. Once per run:
    a resumed pass leaves it to the sweep (``clearance sweep``), which closes the same runs."""
    log = get_run_logger()
    try:
        closed = recover_model(store(), model, prefixes=(prefix,))
    except Exception as exc:  # noqa: BLE001 — this run goes on; the sweep and the next touch try again
        log.warning("could not close the runs %s left open in its ledger: %s: %s", model, type(exc).__name__, exc)
        return []
    for entry in closed:
        log.warning("ledger entry %d closes run %s left open: %s (%s)", entry.seq, entry.payload.get("run"),
                    entry.kind, entry.payload.get("reason", ""))
    return [entry.seq for entry in closed]


def _announcer(ctx: PromotionContext, run_id: str, initiator: str, digest: str, dry_run: bool
               ) -> Callable[..., object]:
    """``tell(kind, **details)``: publish a PromotionEvent of this run (dry runs tell nobody)."""
    url = run_url(run_id)
    links = {"prefect_run": url} if url else {}
    notify = ctx.manifest.notify.over(ctx.policy.notify)

    def tell(kind: str, **details: object) -> object:
        if dry_run:
            return None
        return announce(PromotionEvent(kind=kind, run_id=run_id, model=ctx.model, version=ctx.version,
                                       tier=ctx.policy.tier, initiator=initiator, artifact_digest=digest,
                                       links=links, notify=notify, **details))

    return tell


def run_facts(ctx: PromotionContext, started_at: datetime | None, assurance: str, seen: PointerState) -> RunFacts:
    """What the report tells an auditor besides gates and sign-off: start, configs, what was live, the model."""
    kpi = ctx.manifest.kpi
    live = seen.pointer
    return RunFacts(started_at=started_at, initiator_assurance=assurance, config_digest=ctx.config_digest,
                    previous_version=live.version if live else None, previous_run=live.run_id if live else None,
                    owner=ctx.manifest.owner, intended_use=ctx.manifest.intended_use,
                    kpi=f"{kpi.metric}: {kpi.baseline} → {kpi.target}" + (f" (owner {kpi.owner})" if kpi.owner else "")
                    if kpi else "")


def certification_terms(ctx: PromotionContext) -> dict[str, str]:
    """``certified_until`` of a version going live now, when its tier re-certifies (flows/recertify.py): the
    promotion certifies it for the policy's ``validity``, by the store's clock (the clock of every deadline)."""
    terms = ctx.policy.recertification
    return {"certified_until": (store_time() + terms.validity).isoformat()} if terms else {}


def _warnings_need_people(ctx: PromotionContext, results: list[GateResult]) -> bool:
    warned = any(r.status is Status.WARN for r in results)
    return warned and ctx.policy.on_warn is OnWarn.REQUIRE_APPROVAL and not ctx.policy.approvals.roles


def _stop(ctx: PromotionContext, status: RunStatus, message: str, summary: dict, report: ReportFields,
          dry_run: bool, tell: Callable[..., object]) -> PromotionResult:
    """Record why the promotion stopped, publish the report, tell the channels, and fail the run."""
    where = dict(model=ctx.model, version=ctx.version, run_id=summary["run_id"], dry_run=dry_run)
    if dry_run:
        seal_evidence(summary["evidence_prefix"], build_report(**report, outcome=f"dry-run: {status}"),
                      f"dry run of {ctx.model} {ctx.version}", **where)
        return PromotionResult(**summary, status="dry-run", message=message)
    sealed = seal_evidence(summary["evidence_prefix"], build_report(**report, outcome=status, note=message),
                           f"{ctx.model} {ctx.version}: {status}", **where)
    record_event(ctx.model, LedgerKind(status), {"run": summary["run_id"], "version": ctx.version, "reason": message,
                                                 **sealed})
    # After the report, so channels that attach it (Jira) find it.
    tell("stopped", status=status, message=message, record=report.get("record"), gates=report["results"])
    raise PromotionStopped(f"{ctx.model} {ctx.version}: {message}")
