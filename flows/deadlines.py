"""The sweep as a Prefect flow: promotions whose process died are noticed (tasks/crashes.py), and suspended
promotions past their approval deadline get the policy's outcome. `clearance worker` runs the same steps
in-process every minute (clearance/app/sweeper.py: no process or flow run per minute); this flow is for running
the sweep by hand, or on a schedule of one's own, as a visible Prefect run."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.cache_policies import NO_CACHE

from clearance.core.clock import utcnow
from tasks.certification import lapse_expired
from tasks.crashes import sweep_crashes
from tasks.deadlines import expire_overdue, recover_ended_runs, waiting_promotion_runs
from tasks.evidence import store
from tasks.prefect_tasks import task
from tasks.reminders import send_due_reminders
from tasks.run_artifacts import flushed


@task(name="read-waiting-promotions", cache_policy=NO_CACHE)
def waiting_runs_task() -> list[str]:
    """The paused promote-model runs, read once per sweep for the deadlines and the reminders."""
    return waiting_promotion_runs()


@task(name="expire-overdue-approvals", cache_policy=NO_CACHE)
def expire_overdue_task(run_ids: list[str]) -> list[str]:
    """Close overdue sign-offs in the approvals records and wake their runs."""
    return expire_overdue(store(), run_ids=run_ids)


@task(name="sweep-crashed-runs", cache_policy=NO_CACHE)
def sweep_crashes_task() -> list[str]:
    """Crash promotions whose process is gone, close crashed runs' ledgers, abort the uploads they left."""
    swept = sweep_crashes(store())
    logger = get_run_logger()
    for verdict in swept.crashed:
        logger.warning("Run %s crashed: %s", verdict.run_id, verdict.reason)
    for entry in swept.closed:
        logger.info("Ledger entry %d closes crashed run %s", entry.seq, entry.payload.get("run"))
    for upload in swept.aborted:
        logger.info("Aborted the unfinished upload of %s", upload.key)
    for problem in swept.problems:
        logger.error("Crash sweep: %s", problem)
    return [verdict.run_id for verdict in swept.crashed]


@task(name="close-ended-runs", cache_policy=NO_CACHE)
def recover_ended_runs_task() -> list[int]:
    """Close the ledgers of promotions that ended without saying so; record versions live without a record."""
    closed = recover_ended_runs(store())
    for entry in closed:
        get_run_logger().warning("Ledger entry %d closes run %s left open: %s (%s)", entry.seq,
                                 entry.payload.get("run"), entry.kind, entry.payload.get("reason", ""))
    return [entry.seq for entry in closed]


@task(name="send-due-reminders", cache_policy=NO_CACHE)
def send_due_reminders_task(run_ids: list[str]) -> int:
    """Remind the people waiting sign-offs still need, and escalate those nobody answered (tasks/reminders.py)."""
    sent = send_due_reminders(store(), run_ids=run_ids)
    for nudge in sent:
        get_run_logger().info("Sent %s %d of run %s (%s %s) to %s", nudge.kind, nudge.number, nudge.run_id,
                              nudge.model, nudge.version, ", ".join(nudge.to))
    return len(sent)


@task(name="lapse-expired-certifications", cache_policy=NO_CACHE)
def lapse_expired_task() -> int:
    """Record the lapse of certifications past their certified_until, with an alert (tasks/certification.py:
    a tenth of the re-certified models each minute)."""
    lapsed = lapse_expired(store())
    for entry in lapsed:
        get_run_logger().warning("Certification lapsed: %s", entry.payload.get("reason", ""))
    return len(lapsed)


def _sweep_name() -> str:
    """``sweep 14:07 UTC``: one run a minute, named so a person scanning the run list knows it at a glance."""
    return f"sweep {utcnow():%H:%M} UTC"


@flow(name="approval-deadlines", flow_run_name=_sweep_name)
@flushed  # the run's artifacts are on the server when it ends (tasks/run_artifacts.py)
def approval_deadlines() -> list[str]:
    """Crash promotions whose process is gone (tasks/crashes.py), then wake runs whose deadline passed."""
    sweep_crashes_task(return_state=True)  # its failure (Prefect or the store down) must not stop the rest
    waiting = waiting_runs_task()
    woken = expire_overdue_task(waiting)
    recover_ended_runs_task()  # after the crash sweep, which sets Crashed the runs this then closes
    send_due_reminders_task(waiting, return_state=True)  # a channel or ledger problem must not fail the sweep
    lapse_expired_task(return_state=True)  # likewise
    if woken:
        get_run_logger().info("Deadline passed for %d run(s): %s", len(woken), ", ".join(woken))
    return woken
