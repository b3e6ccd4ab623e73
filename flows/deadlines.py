"""The deadline sweep: suspended promotions past their approval deadline get the policy's outcome."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.deadlines import expire_overdue
from tasks.evidence import store


@task(name="expire-overdue-approvals", cache_policy=NO_CACHE)
def expire_overdue_task() -> list[str]:
    """Close overdue sign-offs in the approvals records and wake their runs."""
    return expire_overdue(store())


@flow(name="approval-deadlines")
def approval_deadlines() -> list[str]:
    """Run every minute (deployment ``approval-deadlines/every-minute``): wake runs whose deadline passed."""
    woken = expire_overdue_task()
    if woken:
        get_run_logger().info("Deadline passed for %d run(s): %s", len(woken), ", ".join(woken))
    return woken
