"""The cached certification and the expiry sweep (tasks/certification.py) on an in-memory store, and the
certification shown by ``clearance status --model`` / ``history`` (clearance/app/certification_view.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519

from clearance.config import load_config_dir
from clearance.core import keys
from clearance.core.ledger_kinds import LedgerKind
from clearance.events import PromotionEvent
from clearance.ledger.certification import certification_timeline
from clearance.render import text
from tasks.certification import (
    CertificationRecord,
    in_slice,
    lapse_alert_id,
    lapse_expired,
    read_certification,
    refresh_certification,
    write_certification,
)
from tasks.ledger import append_entry, read_ledger
from tasks.promotion import ProductionPointer
from tasks.signing import FileSigner
from tests.fakes.memory_store import MemoryStore

SIGNER = FileSigner(ed25519.Ed25519PrivateKey.generate())
T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SHA = "a" * 64
POLICY = {"tier": "high", "gates": [{"id": "artifact_integrity"}],
          "approvals": {"roles": {}, "channels": ["cli"], "timeout": "1h", "timeout_outcome": "reject"},
          "recertification": {"validity": "30d", "on_failure": "notify", "gates": [{"id": "artifact_integrity"}]}}
POLICY_LOW = {**POLICY, "tier": "low"}
POLICY_LOW.pop("recertification")


def configs(tmp_path: Path, models: list[str], low: tuple[str, ...] = ()):
    root = tmp_path / "configs"
    (root / "policies").mkdir(parents=True)
    (root / "models").mkdir()
    (root / "policies" / "high.yaml").write_text(yaml.safe_dump(POLICY))
    (root / "policies" / "low.yaml").write_text(yaml.safe_dump(POLICY_LOW))
    (root / "principals.yaml").write_text(yaml.safe_dump({"principals": [{"id": "dana", "roles": []}]}))
    for name in [*models, *low]:
        manifest = {"name": name, "owner": "dana", "authors": ["dana"], "risk_tier": "low" if name in low else "high",
                    "notify": {"slack_channel": "C0MODELCH01"},
                    "versions": {"1.0.0": {"artifacts": [{"key": f"candidates/{name}/1.0.0/m.joblib", "sha256": SHA}]}}}
        (root / "models" / f"{name}.yaml").write_text(yaml.safe_dump(manifest))
    return load_config_dir(root)


def append(store: MemoryStore, model: str, kind: str, **payload: Any):
    return append_entry(store, model, LedgerKind(kind), payload, signer=SIGNER, witnesses=[])


def go_live(store: MemoryStore, model: str, run: str = "r1", version: str = "1.0.0",
            until: datetime | None = T0 + 30 * DAY) -> None:
    """The ledger and pointer a promotion leaves."""
    store.objects.pop(keys.pointer_key(model), None)
    store.put_if_absent(keys.pointer_key(model), ProductionPointer(
        model=model, version=version, artifact_digest=SHA, artifacts={}, run_id=run).model_dump_json().encode())
    append(store, model, "promoted", run=run, version=version,
           **({"certified_until": until.isoformat()} if until else {}))


def cached_certification(store: MemoryStore, model: str) -> CertificationRecord:
    from tasks.certification import cached_certification as cached

    record = cached(store, model)
    assert record is not None
    return record


class CountingStore(MemoryStore):
    """Counts the store calls that reach the server (reads and listings)."""

    def __init__(self) -> None:
        super().__init__(now=T0)
        self.reads = 0

    def get_bytes(self, key: str):
        self.reads += 1
        return super().get_bytes(key)

    def head(self, key: str):
        self.reads += 1
        return super().head(key)

    def list_keys(self, prefix: str):
        self.reads += 1
        return super().list_keys(prefix)


def sweep(store, config_set, now, models=None, sent=None):
    return lapse_expired(store, models, now, configs=config_set, publish=(sent.append if sent is not None else
                                                                         lambda event: None),
                         signer=SIGNER, witnesses=[])


def test_the_slice_is_stable_and_covers_every_model_once_in_ten_minutes() -> None:
    names = [f"model-{i}" for i in range(1000)]
    per_minute = [sum(in_slice(n, minute) for n in names) for minute in range(10)]
    assert sum(per_minute) == 1000 and all(60 <= count <= 140 for count in per_minute)
    assert all(sum(in_slice(n, minute) for minute in range(10)) == 1 for n in names[:50])
    assert [in_slice("churn", m) for m in range(60)] == [in_slice("churn", m) for m in range(60)]
    assert in_slice("churn", 3) == in_slice("churn", 13)


def test_an_expired_certification_lapses_once_with_one_alert(tmp_path: Path) -> None:
    store = MemoryStore(now=T0)
    config_set = configs(tmp_path, ["churn"])
    go_live(store, "churn")
    sent: list[PromotionEvent] = []
    assert sweep(store, config_set, T0 + 30 * DAY - timedelta(seconds=1), ["churn"], sent) == []
    assert cached_certification(store, "churn").status == "valid"
    [entry] = sweep(store, config_set, T0 + 30 * DAY, ["churn"], sent)
    assert entry.kind == "lapsed" and "run" not in entry.payload
    assert entry.payload | {"reason": ""} == {"version": "1.0.0", "certified_until": (T0 + 30 * DAY).isoformat(),
                                              "about_run": "r1", "reason": ""}
    assert sweep(store, config_set, T0 + 31 * DAY, ["churn"], sent) == []
    assert [e.kind for e in read_ledger(store, "churn")] == ["promoted", "lapsed"]
    [alert] = sent
    assert (alert.kind, alert.action, alert.status, alert.model, alert.version, alert.tier, alert.initiator) == \
        ("alert", "recertification", "lapsed", "churn", "1.0.0", "high", "clearance")
    assert alert.run_id == lapse_alert_id("churn", "1.0.0", T0 + 30 * DAY) == \
        f"lapse-churn-1.0.0-{int((T0 + 30 * DAY).timestamp())}"
    assert alert.notify.slack_channel == "C0MODELCH01"
    cached = cached_certification(store, "churn")
    assert (cached.status, cached.lapse_recorded) == ("lapsed", True)


def test_two_sweeps_racing_append_one_lapse(tmp_path: Path) -> None:
    store = MemoryStore(now=T0)
    config_set = configs(tmp_path, ["churn"])
    go_live(store, "churn")
    found: list[list] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        barrier.wait()
        found.append(sweep(store, config_set, T0 + 40 * DAY, ["churn"]))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(len(f) for f in found) == 1
    assert [e.kind for e in read_ledger(store, "churn")] == ["promoted", "lapsed"]


def test_the_sweep_reads_two_objects_per_model_of_its_slice(tmp_path: Path) -> None:
    names = [f"m{i:03d}" for i in range(60)]
    store = CountingStore()
    config_set = configs(tmp_path, names, low=("lowtier",))
    for name in names:
        go_live(store, name)
        refresh_certification(store, name, now=T0)
    store.reads = 0
    now = T0 + DAY  # nothing due
    assert sweep(store, config_set, now) == []
    in_this_minute = sum(in_slice(n, now.minute) for n in names)
    assert store.reads == 2 * in_this_minute
    # the same models, due: each of the slice lapses (the others wait for their minute)
    lapsed = sweep(store, config_set, T0 + 31 * DAY)
    assert len(lapsed) == sum(in_slice(n, (T0 + 31 * DAY).minute) for n in names)


def test_models_without_recertification_or_production_are_left_alone(tmp_path: Path) -> None:
    store = MemoryStore(now=T0)
    config_set = configs(tmp_path, ["churn", "idle"], low=("lowtier",))
    go_live(store, "lowtier")
    go_live(store, "churn", until=None)  # promoted before its tier re-certified: no expiry known
    assert sweep(store, config_set, T0 + 1000 * DAY, ["churn", "idle", "lowtier"]) == []
    assert read_ledger(store, "idle") == [] and len(read_ledger(store, "lowtier")) == 1


def test_the_cache_follows_the_pointer_and_the_ledger(tmp_path: Path) -> None:
    store = MemoryStore(now=T0)
    go_live(store, "churn")
    first = read_certification(store, "churn")
    assert (first.version, first.status, first.ledger_seq) == ("1.0.0", "valid", 1)
    append(store, "churn", "recertified", run="c1", version="1.0.0", certified_until=(T0 + 60 * DAY).isoformat())
    renewed = read_certification(store, "churn")  # the ledger moved on: derived again
    assert (renewed.certified_until, renewed.last_run, renewed.ledger_seq) == (T0 + 60 * DAY, "c1", 2)
    go_live(store, "churn", run="r2", version="2.0.0", until=T0 + 90 * DAY)
    assert read_certification(store, "churn").version == "2.0.0"
    # an older derivation never replaces a newer one
    stale = CertificationRecord(model="churn", version="1.0.0", status="valid", ledger_seq=1)
    assert write_certification(store, stale).version == "2.0.0"
    assert cached_certification(store, "churn").ledger_seq == 3


def test_a_stale_cache_after_a_renewal_is_not_lapsed(tmp_path: Path) -> None:
    store = MemoryStore(now=T0)
    config_set = configs(tmp_path, ["churn"])
    go_live(store, "churn")
    refresh_certification(store, "churn", now=T0)
    # a re-certification whose state write did not happen: the cache still says until T0+30d
    append(store, "churn", "recertified", run="c1", version="1.0.0", certified_until=(T0 + 60 * DAY).isoformat())
    assert sweep(store, config_set, T0 + 31 * DAY, ["churn"]) == []
    assert cached_certification(store, "churn").certified_until == T0 + 60 * DAY


def test_certification_as_the_cli_shows_it_keeps_user_text_text() -> None:
    from clearance.app.certification_view import certification_blocks

    store = MemoryStore(now=T0)
    evil = "1.0\x1b[31m[red]x[/red]"
    go_live(store, "churn", version=evil)
    append(store, "churn", "promoted", run="r2", version="2.0.0", certified_until=(T0 + 30 * DAY).isoformat(),
           replaces_run="r1")
    append(store, "churn", "recertification-failed", run="c1", version="2.0.0", action="rollback", lapsed=True,
           reason="drift\x07 <!here>")
    append(store, "churn", "rollback-requested", run="b1", version=evil, from_version="2.0.0", initiator="clearance",
           reason="re-certification c1 failed", automatic=True, trigger_run="c1")
    append(store, "churn", "rolled-back", run="b1", version=evil, from_version="2.0.0", automatic=True,
           trigger_run="c1", reason="re-certification c1 failed")
    entries = read_ledger(store, "churn")
    assert len(certification_timeline(entries)) == 3
    shown = text.render(certification_blocks("churn", entries, evil, T0 + DAY))
    assert "\x1b" not in shown and "\x07" not in shown
    assert "[red]x[/red]" in shown  # printed with markup off: the brackets stay text
    assert "churn 1.0[31m[red]x[/red]: certified until 2026-04-01 06:00 UTC" in shown
    assert "lapsed (re-certification failed)" in shown and "replaced by a promotion" in shown
    assert "Rollbacks" in shown and "clearance (automatic, re-certification c1)" in shown
    lapsed = text.render(certification_blocks("churn", entries, evil, T0 + 40 * DAY))
    assert "EXPIRED" in lapsed and "expired (lapse due)" in lapsed
    assert "not in production" in text.render(certification_blocks("churn", [], None, T0))


@pytest.fixture(autouse=True)
def _no_prefect_witness(monkeypatch):
    """The ledger appends here publish to no witness (the settings' witnesses would ask Prefect)."""
    monkeypatch.setattr("tasks.ledger.configured_witnesses", lambda: [])
