"""`clearance deploy` keeps one `recertify-model/<model>` deployment per production model, with the cron of
its policy (or manifest), on a real Prefect server; pointers in the session's SeaweedFS.

Each test uses its own work pool and model-name prefix, and deletes what it created: the server is shared
with the session's other tests (the sync only removes deployments on its own pool).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.promotion_kit import write_recertification_configs

pytestmark = pytest.mark.integration

RECERTIFICATION = {"schedule": "0 6 * * 1", "timezone": "Europe/Berlin", "validity": "90d",
                   "gates": [{"id": "artifact_integrity", "config": {"allowed_formats": ["joblib"]}}]}


def write_configs(root: Path, models: list[str], recertification: dict[str, Any] | None = None,
                  own: dict[str, dict[str, Any]] | None = None) -> Path:
    """The config dir of exactly these models (tier ``high`` re-certifying as :data:`RECERTIFICATION` unless
    ``recertification`` says otherwise; {}: not at all)."""
    return write_recertification_configs(root, models, RECERTIFICATION if recertification is None else
                                         recertification, own)


def put_pointer(store, model: str) -> None:
    from clearance.core.keys import pointer_key
    from tasks.promotion import ProductionPointer

    pointer = ProductionPointer(model=model, version="1.0.0", artifact_digest="0" * 64,
                                artifacts={f"production/{model}/1.0.0/model.joblib": "0" * 64}, run_id="r-test")
    store.put_if_match(pointer_key(model), pointer.model_dump_json().encode(), None)


@pytest.fixture
def scope(s3) -> Iterator[tuple[str, str]]:
    """A pool and a model-name prefix of this test; its deployments and pointers are deleted afterwards."""
    from prefect import get_client

    from clearance.app.deployments import read_recertify_deployments

    tag = uuid.uuid4().hex[:8]
    pool, prefix = f"recert-{tag}", f"rs-{tag}-"
    yield pool, prefix
    with get_client(sync_client=True) as client:
        for deployment in read_recertify_deployments(client):
            if deployment.name.startswith(prefix) or deployment.work_pool_name == pool:
                client.delete_deployment(deployment.id)
        client.delete_work_pool(pool)
    for key in s3.list_keys("production/"):
        if key.startswith(f"production/{prefix}") and key.endswith("/CURRENT.json"):
            s3.delete(key)


def deployments(pool: str) -> dict[str, Any]:
    from prefect import get_client

    from clearance.app.deployments import read_recertify_deployments

    with get_client(sync_client=True) as client:
        return {d.name: d for d in read_recertify_deployments(client) if d.work_pool_name == pool}


def sync(pool: str, config_dir: Path, store):
    from clearance.app.deployments import sync_recertification_deployments
    from clearance.config import load_config_dir

    return sync_recertification_deployments(pool, load_config_dir(config_dir), store)


def test_schedules_follow_the_configs(s3, scope, tmp_path):
    from prefect.client.schemas.schedules import CronSchedule

    from clearance.app.deployments import REPO_ROOT

    pool, prefix = scope
    a, b, c, idle = (f"{prefix}{x}" for x in ("a", "b", "c", "idle"))
    for model in (a, b, c):
        put_pointer(s3, model)
    configs = write_configs(tmp_path / "configs", [a, b, c, idle], own={b: {"schedule": "30 5 * * *"}})

    first = sync(pool, configs, s3)
    assert sorted(first.created) == [a, b, c] and not first.updated and not first.removed
    assert first.store_reads == 4  # idle has no pointer: not in production, no schedule
    got = deployments(pool)
    assert sorted(got) == [a, b, c]
    for model, cron in ((a, "0 6 * * 1"), (b, "30 5 * * *"), (c, "0 6 * * 1")):
        deployment = got[model]
        assert deployment.parameters == {"model": model}
        assert deployment.entrypoint == "flows/recertify.py:recertify_model"
        assert deployment.work_pool_name == pool and not deployment.paused
        assert deployment.pull_steps == [
            {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO_ROOT)}}]
        assert deployment.job_variables["env"]["CLEARANCE_CONFIG_DIR"] == str(configs.resolve())
        assert deployment.parameter_openapi_schema["required"] == ["model"]
        [schedule] = deployment.schedules
        assert isinstance(schedule.schedule, CronSchedule) and schedule.active
        assert (schedule.schedule.cron, schedule.schedule.timezone) == (cron, "Europe/Berlin")

    # A run of the deployment (as its schedule would start it) re-certifies that model.
    from prefect import get_client

    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(got[a].id)
        assert run.parameters == {"model": a}
        client.delete_flow_run(run.id)

    # The tier's cron changes, c leaves the configs, b's pointer is gone: one update, two removals.
    s3.delete(f"production/{b}/CURRENT.json")
    write_configs(configs, [a, b, idle], recertification={**RECERTIFICATION, "schedule": "15 4 * * 2"},
                  own={b: {"schedule": "30 5 * * *"}})
    second = sync(pool, configs, s3)
    assert (second.created, second.updated, sorted(second.removed), second.unchanged) == ([], [a], [b, c], [])
    got = deployments(pool)
    assert list(got) == [a]
    assert got[a].schedules[0].schedule.cron == "15 4 * * 2"

    # Nothing changed: no write, only the paged read.
    third = sync(pool, configs, s3)
    assert (third.created, third.updated, third.removed, third.unchanged) == ([], [], [], [a])

    # The tier stops re-certifying: the last schedule goes.
    write_configs(configs, [a, b, idle], recertification={})
    fourth = sync(pool, configs, s3)
    assert (fourth.removed, fourth.store_reads) == ([a], 0)
    assert deployments(pool) == {}


def test_a_sync_without_changes_costs_the_same_for_5_and_50_models(s3, scope, tmp_path):
    pool, prefix = scope
    models = [f"{prefix}{i:03d}" for i in range(50)]
    for model in models:
        put_pointer(s3, model)
    costs = {}
    for count in (5, 50):
        configs = write_configs(tmp_path / "configs", models[:count])  # same dir: same job env
        created = sync(pool, configs, s3)
        assert len(created.created) + len(created.unchanged) == count
        again = sync(pool, configs, s3)
        assert again.writes == 0 and len(again.unchanged) == count
        costs[count] = again.api_calls
    assert costs[5] == costs[50] <= 2, costs  # one page of deployments (and Prefect's CSRF probe at most)
    # A paused deployment is resumed: the configs say it runs.
    from prefect import get_client

    with get_client(sync_client=True) as client:
        client.pause_deployment(deployments(pool)[models[7]].id)
    resumed = sync(pool, tmp_path / "configs", s3)
    assert resumed.updated == [models[7]] and not deployments(pool)[models[7]].paused
