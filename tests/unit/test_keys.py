"""The object-key layout (docs/architecture.md, "Object keys") is what clearance/core/keys.py builds."""

from __future__ import annotations

import re
from pathlib import Path

from clearance.core import keys

ARCHITECTURE = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()


def test_every_key_has_its_documented_shape() -> None:
    assert keys.candidate_key("churn", "1.2.0", "model.joblib") == "candidates/churn/1.2.0/model.joblib"
    assert keys.candidate_prefix("churn") == "candidates/churn/"
    assert keys.production_key("churn", "1.2.0", "candidates/churn/1.2.0/sub/model.joblib") == \
        "production/churn/1.2.0/model.joblib"
    assert keys.production_key("churn", "1.2.0", "a/m.onnx", target="prod-eu") == "prod-eu/churn/1.2.0/m.onnx"
    assert keys.pointer_key("churn") == "production/churn/CURRENT.json"
    assert keys.ledger_key("churn", 7) == "evidence/churn/ledger/000000000007.json"
    assert keys.run_prefix("churn", "1.2.0", "r1") == "evidence/churn/1.2.0/r1/"
    assert keys.approvals_key("churn", "1.2.0", "r1") == "evidence/churn/1.2.0/r1/approvals.json"
    assert keys.slack_state_key("churn", "1.2.0", "r1") == "evidence/churn/1.2.0/r1/slack.json"
    assert keys.jira_state_key("churn", "1.2.0", "r1") == "evidence/churn/1.2.0/r1/jira.json"
    assert keys.run_file("churn", "1.2.0", "r1", keys.gate_result_name("data_check")) == \
        "evidence/churn/1.2.0/r1/gate-data_check.json"
    assert keys.run_index_key("r1") == "evidence/runs/r1.json"
    assert keys.jira_pending_key("r1") == "evidence/jira/pending/r1.json"
    assert keys.start_nonce_key("churn", "ab12") == "evidence/churn/starts/ab12.json"
    assert keys.not_live_key("churn", "1.2.0") == "production/churn/1.2.0/NOT-LIVE.json"
    assert keys.witness_head_key("churn", 7) == "ledger-heads/churn/000000000007.json"
    assert keys.ledger_head_artifact_key("Churn_Model.v2") == "ledger-head-churn-model-v2"


def test_ledger_keys_list_in_chain_order() -> None:
    listed = sorted(keys.ledger_key("m", seq) for seq in (1, 2, 10, 99, 100, 12345))
    assert [int(k.rsplit("/", 1)[1].split(".")[0]) for k in listed] == [1, 2, 10, 99, 100, 12345]


def test_the_documented_layout_names_every_file_the_code_writes() -> None:
    for name in (keys.APPROVALS, keys.APPROVALS_AT_SEAL, keys.SLACK_STATE, keys.JIRA_STATE, keys.REPORT_MD,
                 keys.REPORT_HTML, keys.BUNDLE):
        assert name in ARCHITECTURE, f"docs/architecture.md does not show {name}"


def test_no_product_module_spells_a_key_by_hand() -> None:
    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"""f?["'](candidates|production|evidence)/""")
    offenders = []
    for package in ("clearance", "gates", "tasks", "flows"):
        for path in (root / package).rglob("*.py"):
            if path == root / "clearance" / "core" / "keys.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert not offenders, "object keys spelled outside clearance/core/keys.py:\n" + "\n".join(offenders)


def test_the_ledger_takes_only_known_kinds() -> None:
    import pytest

    from clearance.core.ledger_kinds import TERMINAL, LedgerKind
    from tasks.ledger import append_entry
    from tests.fakes.memory_store import MemoryStore

    store = MemoryStore()
    entry = append_entry(store, "m", LedgerKind.STARTED, {"run": "r"})
    assert entry.kind == "started" and store.head("evidence/m/ledger/000000000001.json") is not None
    with pytest.raises(ValueError, match="not a valid LedgerKind"):
        append_entry(store, "m", "made-up", {})  # type: ignore[arg-type]
    assert LedgerKind.PROMOTED in TERMINAL and LedgerKind.STARTED not in TERMINAL
