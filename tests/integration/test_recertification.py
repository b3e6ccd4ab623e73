"""Re-certification of production models on the real servers (SeaweedFS, Prefect; flows called in-process).

One model goes through its certification's life: promoted (certified for the policy's validity), re-certified
with a clean production sample (extended), expired (one ``lapsed`` entry however often the sweep runs, and an
alert), re-certified again, then a drifted production sample fails data_check — ``on_failure: notify`` alerts
and leaves the certification running, ``lapse`` lapses it. A second model with two versions promoted is
rolled back by a failed re-certification (``on_failure: rollback``).
"""

from __future__ import annotations

import copy
import io
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.fakes.slack_server import FakeSlack
from tests.integration.promotion_kit import PRINCIPALS, Candidate, make_candidate, slack_for_principals

pytestmark = pytest.mark.integration

CHANNEL = "C0RECERT001"
POLICY: dict[str, Any] = {
    "tier": "high",
    "gates": [{"id": "artifact_integrity", "mode": "blocking", "config": {"allowed_formats": ["joblib"]}}],
    "approvals": {"roles": {}, "channels": ["cli"], "timeout": "1h", "timeout_outcome": "reject"},
    "recertification": {
        "validity": "30d", "on_failure": "notify",
        "gates": [{"id": "artifact_integrity", "config": {"allowed_formats": ["joblib"]}},
                  {"id": "data_check", "config": {"require_reference": True}}]},
}


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = slack_for_principals(CHANNEL)
    yield fake
    fake.stop()


def parquet(values: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table({"id": np.arange(len(values)), "score": values}), buffer)
    return buffer.getvalue()


def sample_key(cand: Candidate) -> str:
    return f"monitoring/{cand.model}/latest/sample.parquet"


def with_data(s3, cand: Candidate, policy: dict[str, Any], monkeypatch) -> None:
    """A pinned reference dataset for every version, the manifest's production sample (clean for now), and the
    process pointed at the candidate's configs."""
    from clearance.settings import get_settings

    reference = f"candidates/{cand.model}/data/reference.parquet"
    s3.put_if_absent(reference, parquet(np.random.default_rng(1).normal(0, 1, 3000)))
    set_sample(s3, cand, drift=0.0)
    path = cand.config_dir / "models" / f"{cand.model}.yaml"
    manifest = yaml.safe_load(path.read_text())
    for version in manifest["versions"].values():
        version["datasets"] = [{"role": "reference", "uri": reference}]
    manifest["recertification"] = {"production_sample": {"role": "production_sample",
                                                         "uri": f"monitoring/{cand.model}/latest/"}}
    path.write_text(yaml.safe_dump(manifest))
    write_policy(cand, policy)
    # nobody signs off here (approvals.roles is empty), so nobody holds a role no policy asks for
    people = [person | {"roles": []} for person in PRINCIPALS]
    (cand.config_dir / "principals.yaml").write_text(yaml.safe_dump({"principals": people}))
    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(cand.config_dir))
    get_settings.cache_clear()


def write_policy(cand: Candidate, policy: dict[str, Any]) -> None:
    (cand.config_dir / "policies" / "high.yaml").write_text(yaml.safe_dump(policy))


def set_sample(s3, cand: Candidate, drift: float) -> None:
    """The latest production sample: like the reference, or shifted by ``drift`` standard deviations."""
    s3.delete(sample_key(cand))
    s3.put_if_absent(sample_key(cand), parquet(np.random.default_rng(2).normal(drift, 1, 3000)))


def ledger(s3, model: str, kind: str) -> list:
    from tasks.ledger import read_ledger

    return [e for e in read_ledger(s3, model) if e.kind == kind]


def state_object(s3, model: str) -> dict[str, Any]:
    from clearance.core.keys import certification_key

    return s3.get_json(certification_key(model))


def alerts(fake: FakeSlack, model: str) -> list[dict[str, Any]]:
    """Top-level messages about the model's certification (not the promotion threads)."""
    return [m for (channel, _), m in fake.messages.items() if channel == CHANNEL and not m.get("thread_ts")
            and any(f"{what} of {model} " in str(m.get("text", "")) for what in ("Certification", "Re-certification"))]


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_pass_expiry_notify_and_lapse(s3, tmp_path, fake_slack, monkeypatch) -> None:
    from flows.promote import promote_model
    from flows.recertify import RecertificationFailed, recertify_model
    from tasks.certification import lapse_expired

    for name, value in fake_slack.env(CHANNEL).items():
        monkeypatch.setenv(name, value)
    cand = make_candidate(tmp_path, s3, policy=POLICY)
    with_data(s3, cand, POLICY, monkeypatch)
    model = cand.model
    assert promote_model(model=model, version="1.0.0").status == "promoted"
    [promoted] = ledger(s3, model, "promoted")
    first_until = moment(promoted.payload["certified_until"])

    # (a) a pass extends the certification: ledger, state object, evidence; no `started` entry. Both ends are
    # read on the store's clock, which has a 1-s grain: a fast machine promotes and re-certifies within one
    # second, and "extends" is then "equals" — so the re-certification starts at least a second later.
    time.sleep(1.1)
    result = recertify_model(model=model)
    assert result.status == "recertified", result
    assert result.gates == {"artifact_integrity": "pass", "data_check": "pass"}
    [passed] = ledger(s3, model, "recertified")
    until = moment(passed.payload["certified_until"])
    assert until > first_until and until == result.certified_until
    assert passed.payload["run"] == result.run_id and passed.payload["gates"]["data_check"] == "pass"
    assert s3.head(passed.payload["bundle"]) is not None
    assert s3.head(f"evidence/{model}/1.0.0/{result.run_id}/gate-data_check.json") is not None
    assert len(ledger(s3, model, "started")) == 1
    state = state_object(s3, model)
    assert (state["version"], state["status"], moment(state["certified_until"])) == ("1.0.0", "valid", until)
    assert state["last_run"] == result.run_id

    # (c) expiry: one `lapsed` entry however often the sweep looks, and one alert
    assert lapse_expired(s3, models=[model], now=until - timedelta(seconds=1)) == []
    [lapse] = lapse_expired(s3, models=[model], now=until + timedelta(seconds=1))
    assert lapse.kind == "lapsed" and "run" not in lapse.payload
    assert (lapse.payload["version"], lapse.payload["about_run"]) == ("1.0.0", result.run_id)
    assert moment(lapse.payload["certified_until"]) == until
    assert lapse_expired(s3, models=[model], now=until + timedelta(seconds=2)) == []
    assert len(ledger(s3, model, "lapsed")) == 1
    assert state_object(s3, model)["status"] == "lapsed"
    assert len(alerts(fake_slack, model)) == 1, [m.get("text") for m in fake_slack.messages.values()]

    # a pass after the lapse certifies it again
    assert recertify_model(model=model).status == "recertified"
    assert state_object(s3, model)["status"] == "valid"

    # (b) a drifted production sample fails data_check; notify: alerted, still certified
    set_sample(s3, cand, drift=1.5)
    with pytest.raises(RecertificationFailed, match="data_check fail"):
        recertify_model(model=model)
    [failed] = ledger(s3, model, "recertification-failed")
    assert (failed.payload["action"], failed.payload["lapsed"], failed.payload["failed_gates"]) == \
        ("notify", False, ["data_check"])
    assert state_object(s3, model)["status"] == "valid"
    from tasks.ledger import read_ledger

    assert [e.kind for e in read_ledger(s3, model) if e.payload.get("run") == failed.payload["run"]] == \
        ["recertification-failed"]  # the failure hook found the run recorded and added nothing
    assert len(alerts(fake_slack, model)) == 2
    assert any("data_check" in json.dumps(m) for m in alerts(fake_slack, model))

    # lapse: the certification lapses at once
    write_policy(cand, copy.deepcopy(POLICY) | {"recertification": POLICY["recertification"] | {"on_failure": "lapse"}})
    with pytest.raises(RecertificationFailed):
        recertify_model(model=model)
    last = ledger(s3, model, "recertification-failed")[-1]
    assert (last.payload["action"], last.payload["lapsed"]) == ("lapse", True)
    state = state_object(s3, model)
    assert (state["status"], state["lapse_recorded"]) == ("lapsed", True)
    # the sweep does not lapse it a second time
    assert lapse_expired(s3, models=[model], now=until + timedelta(days=400)) == []


def test_failed_recertification_rolls_back(s3, tmp_path, monkeypatch) -> None:
    pytest.importorskip("flows.rollback")
    from flows.promote import promote_model
    from flows.recertify import RecertificationFailed, recertify_model
    from tasks.promotion import read_pointer

    policy = copy.deepcopy(POLICY)
    policy["recertification"]["on_failure"] = "rollback"
    cand = make_candidate(tmp_path, s3, versions=("1.0.0", "2.0.0"), policy=policy)
    with_data(s3, cand, policy, monkeypatch)
    model = cand.model
    assert promote_model(model=model, version="1.0.0").status == "promoted"
    assert promote_model(model=model, version="2.0.0").status == "promoted"
    set_sample(s3, cand, drift=1.5)
    with pytest.raises(RecertificationFailed, match="rolled back from 2.0.0 to 1.0.0"):
        recertify_model(model=model)
    pointer = read_pointer(s3, "production", model).pointer
    assert pointer is not None and pointer.version == "1.0.0"
    [failed] = ledger(s3, model, "recertification-failed")
    assert (failed.payload["version"], failed.payload["action"], failed.payload["lapsed"]) == ("2.0.0", "rollback",
                                                                                               True)
    [back] = ledger(s3, model, "rolled-back")
    assert back.payload["trigger_run"] == failed.payload["run"] and back.payload["automatic"] is True
    from clearance.ledger.certification import certification_timeline
    from tasks.ledger import read_ledger

    intervals = certification_timeline(read_ledger(s3, model))
    assert [(i.version, i.end_reason) for i in intervals] == [("1.0.0", "replaced"),
                                                             ("2.0.0", "recertification-failed"), ("1.0.0", "")]
    state = state_object(s3, model)
    assert (state["version"], state["status"], moment(state["certified_until"])) == \
        ("1.0.0", "valid", moment(ledger(s3, model, "promoted")[0].payload["certified_until"]))

    # as `clearance status --model` / `history` show it
    import io

    from rich.console import Console

    from clearance.app.certification_view import print_certification

    out = io.StringIO()
    print_certification(Console(file=out, width=200), s3, model)
    shown = out.getvalue()
    assert f"{model} 1.0.0: certified until" in shown
    assert "lapsed (re-certification failed)" in shown and "replaced by a promotion" in shown
    assert "Rollbacks" in shown and "clearance (automatic, re-certification" in shown
