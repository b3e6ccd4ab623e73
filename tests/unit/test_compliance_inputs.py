"""What the flow's tasks hand ``compliance_review`` besides the manifest and the datasets: the champion (the
model in production, from its own evidence: tasks/champion.py) and the version's Markdown model card
(tasks/candidate_files.py), each never raising — a problem is an entry the gate reports."""

from __future__ import annotations

import json

from clearance.core.digests import canonical_json
from clearance.core.keys import gate_result_name, pointer_key, run_prefix
from gates.base import CheckResult, GateResult, Status
from gates.compliance_review.model_card import MAX_CARD_BYTES
from tasks.candidate_files import fetch_model_card
from tasks.champion import read_champion
from tasks.promotion import PointerState, ProductionPointer
from tests.fakes.memory_store import MemoryStore

MODEL = "churn"
PREFIX = "production"


def live(store: MemoryStore, version: str, run_id: str) -> None:
    pointer = ProductionPointer(model=MODEL, version=version, artifact_digest="a" * 64, artifacts={}, run_id=run_id)
    store.put_if_absent(pointer_key(MODEL, PREFIX), pointer.model_dump_json().encode())


def store_result(store: MemoryStore, version: str, run_id: str, result: GateResult) -> None:
    store.put_if_absent(run_prefix(MODEL, version, run_id) + gate_result_name(result.gate_id),
                        canonical_json(result.model_dump(mode="json")))


def review(metrics: dict[str, float], digests: dict[str, str]) -> GateResult:
    return GateResult.from_checks("compliance_review", "1.0.0", [CheckResult(id="kpi", status=Status.PASS)],
                                  metrics=metrics, input_digests=digests)


def test_no_model_in_production_is_none():
    assert read_champion(MemoryStore(), PREFIX, MODEL, "2.0.0") is None


def test_the_candidates_own_version_live_is_none():
    store = MemoryStore()
    live(store, "2.0.0", "run-1")
    assert read_champion(store, PREFIX, MODEL, "2.0.0") is None


def test_the_champion_is_read_from_the_live_runs_compliance_review_evidence():
    store = MemoryStore()
    live(store, "1.0.0", "run-1")
    store_result(store, "1.0.0", "run-1", GateResult.from_checks("data_check", "1", [], metrics={"evaluation.auc": 0}))
    store_result(store, "1.0.0", "run-1", review(
        {"evaluation.auc": 0.81, "evaluation.ece": 0.03, "fairness.gender.demographic_parity_difference": 0.05},
        {"dataset:predictions": "b" * 64, "dataset:train": "c" * 64}))
    champion = read_champion(store, PREFIX, MODEL, "2.0.0")
    assert champion == {"version": "1.0.0", "run_id": "run-1",
                        "metrics": {"evaluation.auc": 0.81, "evaluation.ece": 0.03}, "predictions_sha256": "b" * 64}
    json.dumps(champion)  # plain JSON: it goes into GateInputs.extra and the per-run cache key


def test_the_pointer_the_run_already_read_is_used():
    store = MemoryStore()
    store_result(store, "1.0.0", "run-1", review({"evaluation.auc": 0.8}, {}))
    seen = PointerState(etag="x", pointer=ProductionPointer(model=MODEL, version="1.0.0", artifact_digest="a" * 64,
                                                            artifacts={}, run_id="run-1"))
    champion = read_champion(store, PREFIX, MODEL, "2.0.0", seen)
    assert champion is not None and champion["predictions_sha256"] is None and champion["run_id"] == "run-1"


def test_a_live_run_without_compliance_review_evidence_is_unjudged_not_an_error():
    store = MemoryStore()
    live(store, "1.0.0", "run-1")
    store_result(store, "1.0.0", "run-1", GateResult.from_checks("data_check", "1", []))
    champion = read_champion(store, PREFIX, MODEL, "2.0.0")
    assert champion is not None and "error" not in champion and "metrics" not in champion
    assert champion["version"] == "1.0.0" and champion["run_id"] == "run-1"
    assert "has no compliance_review evidence" in champion["unjudged"]


def test_a_store_that_cannot_answer_is_an_error_entry_not_a_raise():
    class Broken(MemoryStore):
        def get_json(self, key: str):
            raise ConnectionError("store down")

    store = Broken()
    live(store, "1.0.0", "run-1")
    store_result(store, "1.0.0", "run-1", review({"evaluation.auc": 0.8}, {}))
    champion = read_champion(store, PREFIX, MODEL, "2.0.0")
    assert champion is not None and "store down" in champion["error"] and "run-1" in champion["error"]

    class NoPointer(MemoryStore):
        def head(self, key: str):
            raise ConnectionError("no route")

    assert "no route" in read_champion(NoPointer(), PREFIX, MODEL, "2.0.0")["error"]
    # a stored result that is not a GateResult is an error too, named
    store = MemoryStore()
    live(store, "1.0.0", "run-1")
    store.put_if_absent(run_prefix(MODEL, "1.0.0", "run-1") + gate_result_name("compliance_review"), b"[]")
    assert "ValidationError" in read_champion(store, PREFIX, MODEL, "2.0.0")["error"]


# --------------------------------------------------------------------------- the model card


KEY = "candidates/churn/2.0.0/MODEL_CARD.md"


def test_no_card_named_is_nothing():
    assert fetch_model_card(MemoryStore(), None) == {}


def test_the_card_is_read_as_text():
    store = MemoryStore()
    store.put_if_absent(KEY, "# Intended use\n\nScoring churn risk — für alle.\n".encode())
    extra = fetch_model_card(store, KEY)
    assert extra["model_card_markdown"].startswith("# Intended use") and "für" in extra["model_card_markdown"]
    assert extra["model_card_key"] == KEY and "model_card_error" not in extra
    assert len(extra["model_card_sha256"]) == 64


def test_a_missing_oversize_or_binary_card_is_none_and_says_why():
    store = MemoryStore()
    assert fetch_model_card(store, KEY) == {"model_card_key": KEY, "model_card_markdown": None,
                                            "model_card_error": f"{KEY}: not found"}
    big = "candidates/churn/2.0.0/BIG.md"
    store.put_if_absent(big, b"a" * (MAX_CARD_BYTES + 1))
    extra = fetch_model_card(store, big)
    assert extra["model_card_markdown"] is None and f"over the {MAX_CARD_BYTES}-byte limit" in extra["model_card_error"]
    binary = "candidates/churn/2.0.0/BIN.md"
    store.put_if_absent(binary, b"# Card\n\xff\xfe")
    extra = fetch_model_card(store, binary)
    assert extra["model_card_markdown"] is None and "not UTF-8" in extra["model_card_error"]
    store.put_if_absent("exact.md", b"a" * MAX_CARD_BYTES)
    assert len(fetch_model_card(store, "exact.md")["model_card_markdown"]) == MAX_CARD_BYTES
