"""Registering clearance's flows as Prefect deployments on a process work pool.

Two kinds: the fixed ones (``promote-model``, ``rollback-model`` and the on-demand
``recertify-model/recertify-model``; the sweep is none, ``clearance worker`` runs it in-process), and one
``recertify-model/<model>`` per production model, whose
cron comes from the configs (:func:`sync_recertification_deployments`). The per-model set is
reconciled, not re-written: with 1,000 models and nothing changed, a sync is a few paged reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prefect import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
from prefect.client.schemas.filters import FlowFilter, FlowFilterName
from prefect.client.schemas.schedules import CronSchedule
from prefect.client.schemas.sorting import DeploymentSort
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from clearance.core.keys import pointer_key
from clearance.settings import get_settings

if TYPE_CHECKING:
    import httpx
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.responses import DeploymentResponse

    from clearance.config import ConfigSet
    from tasks.store import Store

REPO_ROOT = Path(__file__).resolve().parents[2]
# Non-secret settings travel with the deployment; credentials stay in the worker's environment.
# The service key's *path* travels (the key file itself must be on the worker, like credentials).
_FORWARDED = ("CLEARANCE_CONFIG_DIR", "CLEARANCE_S3_ENDPOINT_URL", "CLEARANCE_BUCKET", "CLEARANCE_S3_REGION",
              "CLEARANCE_APPROVAL_POLL_SECONDS", "CLEARANCE_SERVICE_KEY_FILE")

RECERTIFY_FLOW = "recertify-model"
RECERTIFY_ENTRYPOINT = "flows/recertify.py:recertify_model"
#: The unscheduled deployment for re-certifying any model on demand (also in deploy/prefect.yaml); the sync
#: leaves it alone (a model of that very name would share it).
RECERTIFY_ON_DEMAND = "recertify-model"
ROLLBACK_ENTRYPOINT = "flows/rollback.py:rollback_model"
TAGS = ["clearance"]
RECERTIFICATION_TAGS = ["clearance", "recertification"]
#: The largest page Prefect's server serves (PREFECT_SERVER_API_DEFAULT_LIMIT).
PAGE = 200
#: Concurrent pointer HEADs (boto3's default pool has 10 connections).
POINTER_READERS = 8
#: What ``flow.from_source(source=REPO_ROOT, ...)`` stores: a worker runs the flow from this checkout.
PULL_STEPS = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}]
#: The schema of ``recertify_model(model: str)`` while flows/recertify.py is not there to read it from.
_FALLBACK_SCHEMA: dict[str, Any] = {
    "title": "Parameters", "type": "object",
    "properties": {"model": {"position": 0, "title": "model", "type": "string"}}, "required": ["model"],
}


def ensure_work_pool(name: str) -> None:
    """Create a process work pool called ``name`` unless it exists."""
    with get_client(sync_client=True) as client:
        _ensure_pool(client, name)


def _ensure_pool(client: SyncPrefectClient, name: str) -> None:
    try:
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))
    except ObjectAlreadyExists:
        pass


def forwarded_env(config_dir: Path | None = None) -> dict[str, str]:
    """The environment a deployment's runs get: the forwarded settings, and the config dir as an absolute path."""
    env = {name: os.environ[name] for name in _FORWARDED if name in os.environ}
    if config_dir is not None:
        env["CLEARANCE_CONFIG_DIR"] = str(Path(config_dir).resolve())
    else:
        env.setdefault("CLEARANCE_CONFIG_DIR", str(Path(get_settings().config_dir).resolve()))
    return env


#: The deployment older versions registered for the sweep (a new Python process and a flow run every minute);
#: ``clearance worker`` (or ``clearance sweep --every``) sweeps in-process now, so ``clearance deploy`` removes it.
RETIRED_SWEEP = "approval-deadlines/every-minute"


def _deploy(flow, entrypoint: str, name: str, pool: str, env: dict[str, str], description: str,
            tags: list[str] | None = None, **schedule) -> str:
    """Register one flow of this source tree as a deployment on ``pool``; returns its full name."""
    flow.from_source(source=str(REPO_ROOT), entrypoint=entrypoint).deploy(
        name=name, work_pool_name=pool, job_variables={"env": env, "working_dir": str(REPO_ROOT)},
        description=description, tags=tags or TAGS, build=False, push=False, print_next_steps=False, **schedule,
    )
    return f"{flow.name}/{name}"


# ----------------------------------------------------------------------------- counting Prefect calls


class _RequestCounter:
    """An httpx request hook: one count per HTTP request the client sends (retries included)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, request: httpx.Request) -> None:
        self.calls += 1


@contextmanager
def counted_client() -> Iterator[tuple[SyncPrefectClient, _RequestCounter]]:
    """A Prefect client of its own (not a flow's context client) whose HTTP requests are counted."""
    counter = _RequestCounter()
    with get_client(httpx_settings={"event_hooks": {"request": [counter]}}, sync_client=True) as client:
        yield client, counter


# ----------------------------------------------------------------------------- what the configs want


@dataclass(frozen=True)
class Recertification:
    """One production model's wanted schedule."""

    model: str
    cron: str
    timezone: str


def _schedule_of(configs: ConfigSet, model: str) -> tuple[str, str] | None:
    """Cron and time zone of ``model``'s re-certification (its manifest's over its tier's), or None."""
    manifest = configs.manifests[model]
    # Only the tier sets recertification (policy_overrides cannot), the manifest only its schedule.
    tier = configs.policies[manifest.risk_tier].recertification
    if tier is None:
        return None
    own = manifest.recertification
    cron = own.schedule if own is not None and own.schedule else tier.schedule
    timezone = own.timezone if own is not None and own.timezone else tier.timezone
    return cron, timezone


def wanted_recertifications(configs: ConfigSet, store: Store) -> tuple[dict[str, Recertification], int]:
    """The models that should have a re-certification schedule, and the store reads it took.

    A model needs one when its tier has ``recertification`` and it is in production: its
    ``CURRENT.json`` exists under the effective policy's promotion prefix (the check
    ``tasks.promotion.read_pointer`` starts with; a HEAD is enough, the pointer's body is not needed).
    The HEADs run a few at a time. A store error propagates: nothing is removed on an outage.
    """
    scheduled: dict[str, tuple[str, str, str]] = {}
    for model in sorted(configs.manifests):
        when = _schedule_of(configs, model)
        if when is not None:
            scheduled[model] = (configs.effective_policy(model).promotion.prefix, *when)

    def live(model: str) -> bool:
        return store.head(pointer_key(model, scheduled[model][0])) is not None

    with ThreadPoolExecutor(max_workers=POINTER_READERS) as pool:
        in_production = dict(zip(scheduled, pool.map(live, scheduled), strict=True))
    wanted = {model: Recertification(model, cron, timezone)
              for model, (_prefix, cron, timezone) in scheduled.items() if in_production[model]}
    return wanted, len(scheduled)


# ----------------------------------------------------------------------------- the deployment of one model


def recertify_parameter_schema() -> dict[str, Any]:
    """The parameter schema of ``recertify_model``, read from its source without importing it (or the
    known one, ``model: str``, while flows/recertify.py does not exist)."""
    from prefect.utilities.callables import parameter_schema_from_entrypoint

    path = REPO_ROOT / RECERTIFY_ENTRYPOINT.split(":")[0]
    if not path.exists():
        return dict(_FALLBACK_SCHEMA)
    schema = parameter_schema_from_entrypoint(f"{path}:{RECERTIFY_ENTRYPOINT.split(':')[1]}")
    return schema.model_dump(exclude_unset=True)


def deployment_spec(name: str, pool: str, env: dict[str, str], schema: dict[str, Any],
                    want: Recertification | None) -> dict[str, Any]:
    """Everything a recertify-model deployment is created with (``want`` None: the on-demand one)."""
    return {
        "name": name,
        "work_pool_name": pool,
        "entrypoint": RECERTIFY_ENTRYPOINT,
        "path": None,
        "pull_steps": PULL_STEPS,
        "job_variables": {"env": env, "working_dir": str(REPO_ROOT)},
        "parameters": {"model": want.model} if want else {},
        "parameter_openapi_schema": schema,
        "enforce_parameter_schema": True,
        "paused": False,
        "tags": RECERTIFICATION_TAGS if want else TAGS,
        "description": (f"Re-certify {want.model} on its policy's schedule (from the configs, by `clearance "
                        "deploy`)." if want else "Re-certify one production model now (clearance)."),
        "schedules": [DeploymentScheduleCreate(schedule=CronSchedule(cron=want.cron, timezone=want.timezone),
                                               active=True)] if want else [],
    }


def differences(existing: DeploymentResponse, spec: dict[str, Any]) -> list[str]:
    """The fields in which a stored deployment is not what ``spec`` would create (empty: leave it)."""
    found = [name for name in ("work_pool_name", "entrypoint", "path", "pull_steps", "job_variables",
                               "parameters", "parameter_openapi_schema", "enforce_parameter_schema", "paused",
                               "description")
             if getattr(existing, name) != spec[name]]
    if sorted(existing.tags) != sorted(spec["tags"]):
        found.append("tags")
    if _schedules(existing) != [_wanted_schedule(s) for s in spec["schedules"]]:
        found.append("schedules")
    return found


def _wanted_schedule(create: DeploymentScheduleCreate) -> tuple[Any, ...]:
    schedule = create.schedule
    assert isinstance(schedule, CronSchedule)
    return (schedule.cron, schedule.timezone, schedule.day_or, create.active, create.parameters,
            create.max_scheduled_runs)


def _schedules(existing: DeploymentResponse) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for item in existing.schedules:
        schedule = item.schedule
        if not isinstance(schedule, CronSchedule):
            return [("not a cron schedule", type(schedule).__name__)]
        out.append((schedule.cron, schedule.timezone, schedule.day_or, item.active, item.parameters,
                    item.max_scheduled_runs))
    return out


def _put(client: SyncPrefectClient, flow_id: Any, spec: dict[str, Any]) -> None:
    """Create the deployment, or replace it whole: Prefect's POST /deployments/ upserts by flow and name
    (same id; its schedules and not-yet-started scheduled runs are replaced)."""
    client.create_deployment(flow_id=flow_id, **spec)


# ----------------------------------------------------------------------------- the sync


@dataclass
class SyncReport:
    """What a sync did, per model, and what it cost."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    #: HTTP requests to the Prefect API (reads included).
    api_calls: int = 0
    #: Pointer HEADs against the object store (one per model whose tier re-certifies).
    store_reads: int = 0

    @property
    def writes(self) -> int:
        return len(self.created) + len(self.updated) + len(self.removed)

    def summary(self) -> str:
        return (f"recertification schedules: {len(self.created)} created, {len(self.updated)} updated, "
                f"{len(self.removed)} removed, {len(self.unchanged)} unchanged ({self.api_calls} Prefect API "
                f"call{'s' if self.api_calls != 1 else ''}, {self.store_reads} pointer read"
                f"{'s' if self.store_reads != 1 else ''})")


def read_recertify_deployments(client: SyncPrefectClient) -> list[DeploymentResponse]:
    """Every deployment of the recertify-model flow (any pool), in pages of :data:`PAGE`, by name."""
    found: list[DeploymentResponse] = []
    flows = FlowFilter(name=FlowFilterName(any_=[RECERTIFY_FLOW]))
    while True:
        page = client.read_deployments(flow_filter=flows, limit=PAGE, offset=len(found),
                                       sort=DeploymentSort.NAME_ASC)
        found += page
        if len(page) < PAGE:
            return found


def sync_recertification_deployments(pool: str, configs: ConfigSet | None = None, store: Store | None = None
                                     ) -> SyncReport:
    """Give each production model of a re-certifying tier a ``recertify-model/<model>`` deployment on
    ``pool`` with its cron, and remove the ones nobody wants any more.

    The configs are the truth: a deployment that differs in anything the sync sets (schedule, time zone,
    active, parameters, pool, entrypoint, job variables, paused, ...) is replaced; one on ``pool`` for a
    model that left the configs or production, or whose tier stopped re-certifying, is deleted.
    Deployments of the flow on other pools belong to another installation and are left alone, unless
    this one wants that model (then it moves here). Existing deployments are read in a few paged
    requests, so a sync with nothing to change costs about ``n / 200 + 1`` calls, not one per model.
    """
    if configs is None:
        from tasks.wiring import config_set

        configs = config_set()
    if store is None:
        from tasks.wiring import object_store

        store = object_store()
    wanted, store_reads = wanted_recertifications(configs, store)
    env = forwarded_env(configs.root)
    schema = recertify_parameter_schema()
    report = SyncReport(store_reads=store_reads)
    with counted_client() as (client, counter):
        existing = {d.name: d for d in read_recertify_deployments(client)}
        to_put: list[tuple[str, dict[str, Any]]] = []
        for model, want in wanted.items():
            spec = deployment_spec(model, pool, env, schema, want)
            have = existing.get(model)
            if have is None:
                to_put.append(("created", spec))
            elif differences(have, spec):
                to_put.append(("updated", spec))
            else:
                report.unchanged.append(model)
        stale = [d for name, d in existing.items()
                 if name not in wanted and name != RECERTIFY_ON_DEMAND and d.work_pool_name == pool]
        if to_put:
            _ensure_pool(client, pool)
            flow_id = client.create_flow_from_name(RECERTIFY_FLOW)
            for outcome, spec in to_put:
                _put(client, flow_id, spec)
                getattr(report, outcome).append(spec["name"])
        for deployment in stale:
            client.delete_deployment(deployment.id)
            report.removed.append(deployment.name)
        report.api_calls = counter.calls
    return report


def register_on_demand_recertification(pool: str, env: dict[str, str]) -> str:
    """``recertify-model/recertify-model``: no schedule, no default model (re-certify any model now)."""
    with counted_client() as (client, _counter):
        _ensure_pool(client, pool)
        _put(client, client.create_flow_from_name(RECERTIFY_FLOW),
             deployment_spec(RECERTIFY_ON_DEMAND, pool, env, recertify_parameter_schema(), None))
    return f"{RECERTIFY_FLOW}/{RECERTIFY_ON_DEMAND}"


# ----------------------------------------------------------------------------- everything


@dataclass
class Registration:
    """What ``clearance deploy`` registered: the fixed deployments, the per-model sync, what it skipped."""

    names: list[str]
    schedules: SyncReport
    skipped: list[str] = field(default_factory=list)
    #: Deployments an older deploy left that this one removed (the every-minute sweep).
    removed: list[str] = field(default_factory=list)


def register_deployments(pool: str = "clearance") -> Registration:
    """Register the fixed deployments from this source tree, then sync the per-model re-certifications.

    Fixed: ``promote-model/promote-model``, ``rollback-model/rollback-model`` (skipped, and said so, while
    flows/rollback.py is not in the tree) and the on-demand ``recertify-model/recertify-model`` (registered
    without importing flows/recertify.py). The sweep is no deployment: ``clearance worker`` runs it in-process;
    the ``approval-deadlines/every-minute`` deployment an older deploy registered is removed.
    """
    from flows.promote import promote_model

    ensure_work_pool(pool)
    env = forwarded_env()
    names = [
        _deploy(promote_model, "flows/promote.py:promote_model", "promote-model", pool, env,
                "Gate, sign off and promote one model version (clearance)."),
    ]
    skipped = []
    if (REPO_ROOT / ROLLBACK_ENTRYPOINT.split(":")[0]).exists():
        from flows.rollback import rollback_model

        names.append(_deploy(rollback_model, ROLLBACK_ENTRYPOINT, "rollback-model", pool, env,
                             "Move a model's CURRENT.json back to an earlier certified version (clearance)."))
    else:
        skipped.append(f"rollback-model/rollback-model ({ROLLBACK_ENTRYPOINT.split(':')[0]} is not in this tree)")
    names.append(register_on_demand_recertification(pool, env))
    return Registration(names=names, schedules=sync_recertification_deployments(pool), skipped=skipped,
                        removed=remove_retired_sweep())


def remove_retired_sweep() -> list[str]:
    """Delete ``approval-deadlines/every-minute`` if an older ``clearance deploy`` left it (its scheduled runs go
    with it); returns what was removed. A worker that still runs one only sweeps once more: harmless."""
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(RETIRED_SWEEP)
        except ObjectNotFound:
            return []
        client.delete_deployment(deployment.id)
    return [RETIRED_SWEEP]
