"""`deploy/prefect.yaml` registers the same deployments as `clearance deploy`, and a worker runs them.

The yaml path is what a platform team uses with `prefect deploy`; without this test it could drift from
the Python registration (entrypoints, parameters, schedules) unnoticed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.promotion_kit import REPO, make_candidate, stop_worker, wait_state

pytestmark = pytest.mark.integration
YAML_POOL = "clearance"  # the pool named in deploy/prefect.yaml


def _prefect(*args: str, env: dict[str, str], log: Path, cwd: Path = REPO) -> subprocess.CompletedProcess:
    with open(log, "ab") as out:
        return subprocess.run([str(Path(sys.executable).parent / "prefect"), *args], cwd=cwd, env=env,
                              stdout=out, stderr=subprocess.STDOUT, timeout=300, check=False)


def _deployment(client, name: str):
    return client.read_deployment_by_name(name)


def test_prefect_yaml_registers_and_runs_the_promotion(s3, tmp_path, monkeypatch):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName
    from prefect.deployments import run_deployment

    from clearance.app.deployments import ensure_work_pool, register_deployments

    log = tmp_path / "prefect.log"
    env = dict(os.environ) | {"CLEARANCE_HOME": str(REPO), "PREFECT_WORKER_QUERY_SECONDS": "1"}

    # What `clearance deploy` registers (but the per-model re-certifications, which come from the configs),
    # read back as the reference.
    registered = register_deployments("clearance-yaml-reference")
    assert set(registered.names) == {"promote-model/promote-model", "rollback-model/rollback-model",
                                     "recertify-model/recertify-model"}  # the sweep runs in `clearance worker`
    with get_client(sync_client=True) as client:
        reference = {name: _deployment(client, name) for name in registered.names}
    # prefect.yaml names the same deployments, no more (each entry's flow is checked below, by the ids).
    listed = yaml.safe_load((REPO / "deploy" / "prefect.yaml").read_text())["deployments"]
    assert sorted(entry["name"] for entry in listed) == sorted(name.split("/")[1] for name in registered.names)
    assert not any("schedules" in entry for entry in listed if entry["name"] == "recertify-model")

    ensure_work_pool(YAML_POOL)
    done = _prefect("--no-prompt", "deploy", "--all", "--prefect-file", "deploy/prefect.yaml", env=env, log=log)
    assert done.returncode == 0, log.read_text()[-4000:]

    with get_client(sync_client=True) as client:
        for name, ref in reference.items():
            got = _deployment(client, name)
            assert got.id == ref.id  # the yaml updated the same deployment, did not make a second one
            assert got.work_pool_name == YAML_POOL
            assert got.entrypoint == ref.entrypoint
            assert got.parameter_openapi_schema == ref.parameter_openapi_schema
            assert got.job_variables["env"]["CLEARANCE_CONFIG_DIR"] == f"{REPO}/configs"
            assert got.pull_steps == [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
            assert got.tags == ref.tags and got.description == ref.description
            assert (got.global_concurrency_limit and got.global_concurrency_limit.limit) == \
                (ref.global_concurrency_limit and ref.global_concurrency_limit.limit)
            assert (got.concurrency_options and got.concurrency_options.collision_strategy) == \
                (ref.concurrency_options and ref.concurrency_options.collision_strategy)
        on_demand = _deployment(client, "recertify-model/recertify-model")
        assert client.read_deployment_schedules(on_demand.id) == [] and on_demand.parameters == {}
        # No sweep deployment: `clearance worker` sweeps in-process (tests/integration/test_sweeper_loop.py).
        sweep_flow = FlowFilter(name=FlowFilterName(any_=["approval-deadlines"]))
        assert client.read_deployments(flow_filter=sweep_flow) == []

    # Run the yaml's promote-model as a dry run of a test candidate; the worker supplies S3 credentials.
    cand = make_candidate(tmp_path, s3)
    run = run_deployment("promote-model/promote-model", timeout=0,
                         parameters={"model": cand.model, "version": "1.0.0", "initiator": "dana", "dry_run": True},
                         job_variables={"env": {"CLEARANCE_CONFIG_DIR": str(cand.config_dir)}})
    with open(log, "ab") as out:
        worker = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool",
                                   YAML_POOL], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            final = wait_state(str(run.id), {"COMPLETED", "FAILED", "CRASHED"}, timeout=240)
        finally:
            stop_worker(worker)
    assert final == "COMPLETED", log.read_text()[-4000:]
    dry = json.loads(s3.get_bytes(f"evidence/{cand.model}/1.0.0/{run.id}/dry-run.json")[0])
    assert dry["eligible"] == {"business": ["bea"], "security": ["sam", "sol"]}
    assert s3.head(f"production/{cand.model}/CURRENT.json") is None
