"""The evidence bundle: sealing a run's evidence, and the audit that finds any change to it."""

from __future__ import annotations

import json

import pytest

from gates.base import CheckResult, GateResult, Status
from tasks.bundle import audit_evidence, seal
from tasks.ledger import append_entry, read_ledger
from tests.fakes.memory_store import MemoryStore

PREFIX = "evidence/m/1.0.0/run-1/"


def sealed_run() -> MemoryStore:
    """A run with a gate result, reports and living state, sealed and recorded as promoted."""
    store = MemoryStore()
    append_entry(store, "m", "started", {"run": "run-1", "version": "1.0.0"})
    result = GateResult.from_checks("g", "1", [CheckResult(id="c", status=Status.PASS, observed=1)])
    store.put_if_absent(PREFIX + "gate-g.json", result.to_evidence_json())
    append_entry(store, "m", "gate", {"run": "run-1", "gate": "g", "status": "pass", "digest": result.digest(),
                                      "evidence": PREFIX + "gate-g.json"})
    store.put_if_absent(PREFIX + "drift.png", b"\x89PNG fake")
    store.put_if_absent(PREFIX + "report.md", b"# m 1.0.0: PROMOTED\n")
    store.put_if_absent(PREFIX + "report.html", b"<!DOCTYPE html><title>m</title>")
    store.put_if_absent(PREFIX + "approvals.json", b'{"decisions": []}')
    sealed = seal(store, PREFIX, model="m", version="1.0.0", run_id="run-1", ledger=read_ledger(store, "m"))
    append_entry(store, "m", "promoted", {"run": "run-1", "version": "1.0.0", **sealed})
    return store


def audit(store: MemoryStore) -> tuple[int, list[str]]:
    return audit_evidence(store, read_ledger(store, "m"))


def test_an_intact_run_passes_and_the_bundle_lists_what_it_anchors() -> None:
    store = sealed_run()
    assert audit(store) == (1, [])
    bundle = json.loads(store.objects[PREFIX + "bundle.json"])
    assert [f["name"] for f in bundle["files"]] == ["approvals-at-seal.json", "drift.png", "gate-g.json",
                                                    "report.html", "report.md"]
    assert bundle["living"] == ["approvals.json"]
    assert store.objects[PREFIX + "approvals-at-seal.json"] == store.objects[PREFIX + "approvals.json"]
    assert [e["kind"] for e in bundle["ledger"]] == ["started", "gate"]


def test_living_state_may_change_after_sealing() -> None:
    store = sealed_run()
    store.objects[PREFIX + "approvals.json"] = b'{"decisions": [], "refusals": ["late click"]}'
    store.objects[PREFIX + "slack.json"] = b"{}"
    assert audit(store) == (1, [])
    assert store.objects[PREFIX + "approvals-at-seal.json"] == b'{"decisions": []}'  # the record at the end


@pytest.mark.parametrize("change,expected", [
    (lambda o: o.__setitem__(PREFIX + "report.html", b"<p>all fine</p>"), f"{PREFIX}report.html: altered"),
    (lambda o: o.pop(PREFIX + "drift.png"), f"{PREFIX}drift.png: removed"),
    (lambda o: o.__setitem__(PREFIX + "approvals-at-seal.json", b'{"decisions": ["forged"]}'),
     f"{PREFIX}approvals-at-seal.json: altered"),
    (lambda o: o.__setitem__(PREFIX + "waiver.json", b"{}"), f"{PREFIX}waiver.json: added after"),
    (lambda o: o.__setitem__(PREFIX + "bundle.json", o[PREFIX + "bundle.json"].replace(b"drift", b"drift2")),
     f"{PREFIX}bundle.json: bundle differs from the digest ledger entry 3 recorded"),
    (lambda o: o.__setitem__(PREFIX + "gate-g.json", o[PREFIX + "gate-g.json"].replace(b'"pass"', b'"fail"')),
     f"{PREFIX}gate-g.json: gate result differs from the digest ledger entry 2 recorded"),
    (lambda o: o.pop(PREFIX + "bundle.json"), f"{PREFIX}bundle.json: evidence bundle of ledger entry 3 is missing"),
])
def test_every_change_to_sealed_evidence_is_named(change, expected: str) -> None:
    store = sealed_run()
    change(store.objects)
    _, problems = audit(store)
    assert any(p.startswith(expected) for p in problems), problems


def test_sealing_is_idempotent_and_refuses_changed_evidence() -> None:
    store = sealed_run()
    first = json.loads(store.objects[PREFIX + "bundle.json"])
    ledger = [e for e in read_ledger(store, "m") if e.kind != "promoted"]
    again = seal(store, PREFIX, model="m", version="1.0.0", run_id="run-1", ledger=ledger)
    assert again == {k: v for k, v in read_ledger(store, "m")[-1].payload.items() if k.startswith("bundle")}
    assert json.loads(store.objects[PREFIX + "bundle.json"]) == first
    store.objects[PREFIX + "late.json"] = b"{}"
    with pytest.raises(ValueError, match="changed after it was sealed"):
        seal(store, PREFIX, model="m", version="1.0.0", run_id="run-1", ledger=ledger)


def test_a_rewritten_chain_no_longer_holds_the_entries_the_bundle_names() -> None:
    """Someone rewrites the run's start (and re-hashes every later entry so the chain looks intact):
    the sealed bundle still names the original hashes."""
    from clearance.ledger import LedgerEntry
    from tasks.ledger import ledger_key

    store = sealed_run()
    previous = None
    for entry in read_ledger(store, "m"):
        payload = entry.payload | ({"version": "9.9.9"} if entry.seq == 1 else {})
        previous = LedgerEntry.next_after(previous, entry.kind, payload, at=entry.at)
        store.objects[ledger_key("m", entry.seq)] = previous.model_dump_json().encode()
    _, problems = audit(store)
    assert f"{PREFIX}bundle.json: names ledger entry 1 (started) that the chain does not hold" in problems
