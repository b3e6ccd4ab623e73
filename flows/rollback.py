"""The rollback flow: the live version back to an earlier certified one, after the sign-off the policy asks for.

Reads like the business process: configs → the pointer and the ledger → the target (refused before any ledger
entry when it was never certified, is the live one, or its production copies no longer verify) →
``rollback-requested`` → sign-off (the policy's ``rollback`` section; none for an automatic rollback or a
verified emergency role) → ``rolling-back`` (intent) → compare-and-swap of ``CURRENT.json`` → report and
``rolled-back``. Recovery (tasks/recovery.py) closes a rollback the run could not close, as it does a promotion.
Every side effect is a task in ``tasks/``; which target and which sign-off are decided in
``clearance/ledger/rollback.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal, NoReturn

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from pydantic import BaseModel, Field

from clearance.approvals import ApprovalRecord, Outcome
from clearance.approvals.request import build_request, eligible_approvers
from clearance.config.schema import Assurance, OnFailure
from clearance.core.digests import sha256_json
from clearance.core.keys import pointer_key, run_prefix
from clearance.core.ledger_kinds import LedgerKind
from clearance.events import PromotionEvent
from clearance.ledger.rollback import (
    Target,
    automatic_problem,
    certified_targets,
    choose_target,
    rollback_authority,
)
from clearance.render.report import build_report
from flows.promote import (
    check_object_store,
    close_run,
    read_production_pointer,
    recover_open_runs,
    sign_off,
    went_live,
)
from tasks.candidate import PromotionContext
from tasks.channels import announce
from tasks.evidence import record_event, seal_evidence, store, store_time
from tasks.initiator import establish_initiator
from tasks.prefect_runs import run_url
from tasks.promotion import PromotionOutcomeUnknown
from tasks.recovery import close_after_failure, configured_prefixes
from tasks.rollback import (
    for_rollback,
    is_subflow_of,
    load_rollback_context,
    move_back_task,
    read_ledger_task,
    verify_targets,
)
from tasks.run_artifacts import flushed

StopStatus = Literal["rejected", "timed-out", "failed"]


class RollbackRefused(RuntimeError):
    """The rollback cannot go ahead (no target, or no authority); nothing was written to the ledger."""


class RollbackStopped(RuntimeError):
    """The rollback ended without moving the pointer (rejected, timed out, the move failed); recorded."""


class RollbackResult(BaseModel):
    """What a rollback run did (the flow's return value)."""

    run_id: str
    model: str
    version: str = Field(description="The version rolled back to.")
    from_version: str
    status: Literal["rolled-back"] = "rolled-back"
    approvals: Outcome | None = None
    closed_by: list[str] = Field(default_factory=list)
    production: dict[str, str] = Field(default_factory=dict)
    evidence_prefix: str
    automatic: bool = False
    message: str = ""


@flushed
def _record_crash(flow, flow_run, state) -> None:
    """Failure hook: the ledger says how the run ended (``rolled-back`` if the pointer names it, else ``failed``)."""
    try:
        close_after_failure(store(), flow_run.parameters["model"], str(flow_run.id), state.message or "failed",
                            configured_prefixes())
    except Exception as exc:  # noqa: BLE001 — the hook must not mask the original failure
        logging.getLogger("clearance.flows").warning("could not record the failure in the ledger: %s", exc)


@flow(name="rollback-model", persist_result=True, on_failure=[_record_crash], on_crashed=[_record_crash])
@flushed  # the run's artifacts are on the server when it ends (tasks/run_artifacts.py)
def rollback_model(model: str, to_version: str | None = None, reason: str = "", initiator: str | None = None,
                   initiator_proof: dict[str, str] | None = None, automatic: bool = False,
                   trigger_run: str | None = None) -> RollbackResult:
    """Move ``model``'s production pointer back to ``to_version`` (default: the newest earlier certified version
    whose production copies still verify), after the rollback sign-off of its policy.

    ``initiator_proof``: a start statement signed for this rollback (``clearance rollback --key``); a verified
    initiator holding one of the policy's ``emergency_roles`` needs no sign-off. ``automatic``: started by the
    failed re-certification run ``trigger_run`` whose policy says ``on_failure: rollback`` — that is the authority,
    no person signs off.

    Args:
        model: The model to roll back, as in configs/models/<model>.yaml.
        to_version: The earlier certified version to go back to (empty: the newest one whose copy verifies).
        reason: Why (shown to the approvers, recorded in the ledger).
        initiator: Who asks for the rollback (a principal id; typed here it is only a claimed identity).
        initiator_proof: The signed start statement `clearance rollback --key` makes; leave empty in the UI.
        automatic: Set only by a failed re-certification run (checked against its ledger entry).
        trigger_run: The re-certification run that failed, for an automatic rollback.
    """
    log = get_run_logger()
    run_context = FlowRunContext.get()
    if run_context is None or run_context.flow_run is None:
        raise RuntimeError("rollback_model needs a Prefect flow run context: call it as a flow, not its .fn")
    run_id = str(run_context.flow_run.id)
    check_object_store()
    ctx = load_rollback_context(model, to_version)
    target_prefix = ctx.policy.promotion.prefix
    recover_open_runs(model, target_prefix)
    seen = read_production_pointer(target_prefix, model)
    entries = read_ledger_task(model)
    live = seen.pointer.version if seen.pointer else None

    # The target, or a refusal before anything is written.
    candidates = certified_targets(entries, live)
    if to_version is not None:
        candidates = [t for t in candidates if t.version == to_version]
    problems = verify_targets(candidates, first_good=to_version is None) if candidates else {}
    choice = choose_target(entries, live, to_version, problems)
    if isinstance(choice, str):
        raise RollbackRefused(f"{model}: rollback refused: {choice}")
    target: Target = choice
    assert seen.pointer is not None  # choose_target refuses when nothing is live
    if automatic:
        terms = ctx.policy.recertification
        problem = automatic_problem(
            entries, trigger_run, live, policy_rolls_back=terms is not None and terms.on_failure is OnFailure.ROLLBACK,
            subflow_of_trigger=is_subflow_of(_parent_task_run(run_context), trigger_run))
        if problem:
            raise RollbackRefused(f"{model}: automatic rollback refused: {problem}")
    ctx = ctx.model_copy(update={"version": target.version})
    claimed = initiator or ("clearance" if automatic else None)
    starter = establish_initiator(initiator_proof, claimed, model, target.version, run_id, ctx.principals)
    starter = for_rollback(starter, initiator_proof, target)
    who = starter.principal
    if starter.problem:
        log.warning("start proof not accepted (%s); initiator %r is only claimed", starter.problem, who)
    note = "" if target.version in ctx.manifest.versions else (
        f"{target.version} is no longer in the manifest of {model}: its production copies, recorded in the ledger, "
        "go live again; the model's current policy and principals apply")
    if note:
        log.warning(note)

    record_event(model, LedgerKind.ROLLBACK_REQUESTED, {
        "run": run_id, "version": target.version, "from_version": live, "from_run": seen.pointer.run_id,
        "initiator": who, "initiator_assurance": starter.assurance.value, "reason": reason, "automatic": automatic,
        "trigger_run": trigger_run, "tier": ctx.policy.tier, "config_digest": ctx.config_digest,
        "certified_run": target.certified_run})
    prefix = run_prefix(model, target.version, run_id)
    tell = _announcer(ctx, run_id, who, target.artifact_digest)
    headline = f"rollback of {model} from {live} to {target.version}" + (f": {reason}" if reason else "")
    tell("opened", message=headline)
    summary: dict[str, Any] = dict(run_id=run_id, model=model, version=target.version, from_version=live,
                                   evidence_prefix=prefix, automatic=automatic)
    fields: dict[str, Any] = dict(model=model, version=target.version, tier=ctx.policy.tier, run_id=run_id,
                                  initiator=who, artifact_digest=target.artifact_digest, results=[])

    # The sign-off the rollback policy asks for (or why none).
    authority = rollback_authority(ctx.policy.rollback, ctx.policy.approvals, ctx.principals, initiator=who,
                                   verified=starter.assurance is Assurance.VERIFIED, automatic=automatic,
                                   trigger_run=trigger_run)
    approvals = authority.approvals if authority.closed_by is None else authority.approvals.model_copy(
        update={"roles": {}})
    request = build_request(run_id=run_id, manifest=ctx.manifest, version=target.version,
                            policy=ctx.policy.model_copy(update={"approvals": approvals}), initiator=who,
                            artifact_digest=target.artifact_digest,
                            evidence_digest=sha256_json(target.model_dump(mode="json")), opened_at=store_time(),
                            initiator_assurance=starter.assurance).model_copy(update={"action": "rollback"})
    if authority.closed_by is not None:
        record = ApprovalRecord(request=request, outcome=Outcome.APPROVED, closed_by=[authority.closed_by])
    else:
        eligible = eligible_approvers(request, ctx.principals)
        record = sign_off(ctx, request, eligible, lambda rec: tell("approval-requested", record=rec))
    if record.outcome is not Outcome.APPROVED:
        tell("closed", record=record)
        status: StopStatus = "rejected" if record.outcome is Outcome.REJECTED else "timed-out"
        _stop(ctx, status, f"sign-off {record.outcome.value}: not rolled back", fields | {"record": record}, prefix,
              tell)
    approval = record_event(model, LedgerKind.APPROVED, {
        "run": run_id, "version": target.version, "artifact_digest": target.artifact_digest,
        "decisions": [d.model_dump(mode="json") for d in record.decisions], "closed_by": list(record.closed_by)})
    tell("closed", record=record)

    # Intent before effect: recovery closes the run from this entry and the pointer if the run cannot.
    replaces = seen.pointer.run_id
    certified_until = target.certified_until.isoformat() if target.certified_until else None
    intent = record_event(model, LedgerKind.ROLLING_BACK, {
        "run": run_id, "version": target.version, "from_version": live, "artifact_digest": target.artifact_digest,
        "production": target.production, "prefix": target_prefix, "pointer": pointer_key(model, target_prefix),
        "pointer_etag": seen.etag, "replaces_run": replaces, "certified_until": certified_until})
    try:
        move_back_task(target_prefix, seen, target, run_id, approval.seq, approval.hash)
    except PromotionOutcomeUnknown:
        raise  # live or not is unknown: recovery reads the pointer once the store answers
    except Exception as exc:  # noqa: BLE001 — recorded, then re-raised as the run's failure
        if not went_live(target_prefix, model, run_id):
            _stop(ctx, "failed", str(exc), fields | {"record": record}, prefix, tell)
    production = dict(target.production)
    done = f"rolled back from {live} (run {replaces}) to {target.version}" + (f": {reason}" if reason else "")
    report = build_report(**fields, record=record, outcome="rolled-back", production=production,
                          note=" ".join(x for x in (done[0].upper() + done[1:] + ".", note) if x))
    sealed = seal_evidence(prefix, report, f"{model} rolled back to {target.version}", model=model,
                           version=target.version, run_id=run_id, dry_run=False)
    close_run(model, run_id, LedgerKind.ROLLED_BACK, {
        "run": run_id, "version": target.version, "from_version": live, "artifact_digest": target.artifact_digest,
        "production": production, "replaces_run": replaces, "certified_until": certified_until, "reason": reason,
        "automatic": automatic, "trigger_run": trigger_run, **sealed}, intent.seq)
    tell("promoted", status="rolled-back", record=record, message=done)
    log.info("%s %s", model, done)
    return RollbackResult(**summary, approvals=record.outcome, closed_by=list(record.closed_by),
                          production=production, message=done)


def _parent_task_run(context: FlowRunContext) -> str | None:
    parent = context.flow_run.parent_task_run_id if context.flow_run else None
    return str(parent) if parent else None


def _announcer(ctx: PromotionContext, run_id: str, initiator: str, digest: str) -> Callable[..., object]:
    """``tell(kind, **details)``: publish a rollback event of this run (``action="rollback"``)."""
    url = run_url(run_id)
    links = {"prefect_run": url} if url else {}
    notify = ctx.manifest.notify.over(ctx.policy.notify)

    def tell(kind: str, **details: object) -> object:
        return announce(PromotionEvent(kind=kind, action="rollback", run_id=run_id, model=ctx.model,
                                       version=ctx.version, tier=ctx.policy.tier, initiator=initiator,
                                       artifact_digest=digest, links=links, notify=notify, **details))

    return tell


def _stop(ctx: PromotionContext, status: StopStatus, message: str, fields: dict[str, Any], prefix: str,
          tell: Callable[..., object]) -> NoReturn:
    """Record why the rollback stopped, publish the report, tell the channels, and fail the run."""
    run_id = fields["run_id"]
    sealed = seal_evidence(prefix, build_report(**fields, outcome=f"rollback {status}", note=message),
                           f"{ctx.model} rollback to {ctx.version}: {status}", model=ctx.model, version=ctx.version,
                           run_id=run_id, dry_run=False)
    record_event(ctx.model, LedgerKind(status), {"run": run_id, "version": ctx.version, "reason": message, **sealed})
    tell("stopped", status=status, message=message, record=fields.get("record"))
    raise RollbackStopped(f"{ctx.model} rollback to {ctx.version}: {message}")
