"""Which models get a re-certification schedule, and when a stored deployment counts as changed (no servers)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import yaml

from clearance.app.deployments import (
    Recertification,
    SyncReport,
    deployment_spec,
    differences,
    forwarded_env,
    recertify_parameter_schema,
    wanted_recertifications,
)
from clearance.config import load_config_dir
from tests.fakes.memory_store import MemoryStore

GATES = [{"id": "artifact_integrity", "config": {"allowed_formats": ["joblib"]}}]
PRINCIPALS = [{"id": "dana", "email": "dana@example.com", "local_users": ["dana"], "roles": []}]


def write(root: Path, tiers: dict[str, dict[str, Any]], models: dict[str, dict[str, Any]]) -> Path:
    (root / "policies").mkdir(parents=True)
    (root / "models").mkdir()
    for tier, extra in tiers.items():
        (root / "policies" / f"{tier}.yaml").write_text(yaml.safe_dump({"tier": tier, "gates": GATES, **extra}))
    (root / "principals.yaml").write_text(yaml.safe_dump({"principals": PRINCIPALS}))
    for name, extra in models.items():
        manifest = {"name": name, "owner": "dana", "risk_tier": "high",
                    "versions": {"1.0.0": {"artifacts": [{"key": f"candidates/{name}/1.0.0/m.joblib",
                                                          "sha256": "0" * 64, "size": 1, "format": "joblib"}]}},
                    **extra}
        (root / "models" / f"{name}.yaml").write_text(yaml.safe_dump(manifest))
    return root


def test_production_models_of_recertifying_tiers_get_their_schedule(tmp_path: Path) -> None:
    recert = {"schedule": "0 6 * * 1", "timezone": "Europe/Berlin", "gates": GATES}
    configs = load_config_dir(write(
        tmp_path / "configs",
        {"high": {"recertification": recert, "promotion": {"prefix": "prod-eu"}}, "low": {}},
        {"tiered": {}, "own": {"recertification": {"schedule": "30 5 * * *"}},
         "own-zone": {"recertification": {"timezone": "UTC"}}, "not-live": {},
         "untiered": {"risk_tier": "low"}, "wrong-prefix": {}}))
    store = MemoryStore()
    for model in ("tiered", "own", "own-zone", "untiered"):
        store.put_if_absent(f"prod-eu/{model}/CURRENT.json", b"{}")
    store.put_if_absent("production/wrong-prefix/CURRENT.json", b"{}")  # not the tier's promotion prefix

    wanted, reads = wanted_recertifications(configs, store)

    assert wanted == {"tiered": Recertification("tiered", "0 6 * * 1", "Europe/Berlin"),
                      "own": Recertification("own", "30 5 * * *", "Europe/Berlin"),
                      "own-zone": Recertification("own-zone", "0 6 * * 1", "UTC")}
    assert reads == 5  # the low tier does not re-certify: its model's pointer is not even read


def _stored(spec: dict[str, Any]) -> Any:
    """What the server returns for a deployment created from ``spec``."""
    from prefect.client.schemas.responses import DeploymentResponse

    schedules = [{"id": str(uuid.uuid4()), "deployment_id": None, "schedule": s.schedule.model_dump(mode="json"),
                  "active": s.active, "parameters": s.parameters, "max_scheduled_runs": s.max_scheduled_runs}
                 for s in spec["schedules"]]
    fields = {k: v for k, v in spec.items() if k != "schedules"}
    return DeploymentResponse.model_validate({"id": str(uuid.uuid4()), "flow_id": str(uuid.uuid4()),
                                              "schedules": schedules, **fields})


def test_a_deployment_differs_in_what_the_sync_sets() -> None:
    schema = recertify_parameter_schema()
    env = forwarded_env(Path("configs"))

    def spec_of(cron: str = "0 6 * * 1", timezone: str = "UTC", job_env: dict[str, str] = env) -> dict[str, Any]:
        return deployment_spec("m", "pool", job_env, schema, Recertification("m", cron, timezone))

    spec = spec_of()
    assert differences(_stored(spec), spec) == []
    for other, field in ((spec_of(job_env={}), "job_variables"), (spec_of(cron="0 7 * * 1"), "schedules"),
                         (spec_of(timezone="Asia/Tokyo"), "schedules"),
                         ({**spec, "work_pool_name": "elsewhere"}, "work_pool_name"),
                         ({**spec, "paused": True}, "paused"),
                         ({**spec, "parameters": {"model": "n"}}, "parameters")):
        assert differences(_stored(other), spec) == [field]
    stored = _stored(spec)
    stored.schedules[0].active = False
    assert differences(stored, spec) == ["schedules"]


def test_the_summary_counts() -> None:
    report = SyncReport(created=["a", "b", "c"], updated=["d"], unchanged=["e"] * 996, api_calls=12, store_reads=1000)
    assert report.writes == 4
    assert report.summary() == ("recertification schedules: 3 created, 1 updated, 0 removed, 996 unchanged "
                                "(12 Prefect API calls, 1000 pointer reads)")
