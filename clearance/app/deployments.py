"""Registering clearance's flows as Prefect deployments on a process work pool."""

from __future__ import annotations

import os
from pathlib import Path

from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists

from clearance.settings import get_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
# Non-secret settings travel with the deployment; credentials stay in the worker's environment.
# The service key's *path* travels (the key file itself must be on the worker, like credentials).
_FORWARDED = ("CLEARANCE_CONFIG_DIR", "CLEARANCE_S3_ENDPOINT_URL", "CLEARANCE_BUCKET", "CLEARANCE_S3_REGION",
              "CLEARANCE_APPROVAL_POLL_SECONDS", "CLEARANCE_SERVICE_KEY_FILE")


def ensure_work_pool(name: str) -> None:
    """Create a process work pool called ``name`` unless it exists."""
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def _deploy(flow, entrypoint: str, name: str, pool: str, env: dict[str, str], description: str,
            **schedule) -> str:
    """Register one flow of this source tree as a deployment on ``pool``; returns its full name."""
    flow.from_source(source=str(REPO_ROOT), entrypoint=entrypoint).deploy(
        name=name, work_pool_name=pool, job_variables={"env": env, "working_dir": str(REPO_ROOT)},
        description=description, tags=["clearance"], build=False, push=False, print_next_steps=False, **schedule,
    )
    return f"{flow.name}/{name}"


def register_deployments(pool: str = "clearance") -> list[str]:
    """Register ``promote-model/promote-model`` and the deadline sweep from this source tree.

    Returns the deployment names.
    """
    from flows.deadlines import approval_deadlines
    from flows.promote import promote_model

    ensure_work_pool(pool)
    settings = get_settings()
    env = {name: os.environ[name] for name in _FORWARDED if name in os.environ}
    env.setdefault("CLEARANCE_CONFIG_DIR", str(Path(settings.config_dir).resolve()))
    return [
        _deploy(promote_model, "flows/promote.py:promote_model", "promote-model", pool, env,
                "Gate, sign off and promote one model version (clearance)."),
        _deploy(approval_deadlines, "flows/deadlines.py:approval_deadlines", "every-minute", pool, env,
                "Applies approval deadlines to suspended promotions (they hold no process).", interval=60),
    ]
