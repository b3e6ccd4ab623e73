"""The object-key layout of the bucket: every key clearance reads or writes is built here.

::

    candidates/<model>/<version>/<file>            written by data scientists; read-only to clearance
    <target>/<model>/<version>/<file>               immutable production copies (target: "production")
    <target>/<model>/CURRENT.json                   the live-version pointer (compare-and-swap)
    <target>/<model>/CERTIFICATION.json             its certification, cached from the ledger (compare-and-swap)
    <target>/<model>/<version>/NOT-LIVE.json        marks a copy whose pointer move lost or never happened
    evidence/<model>/ledger/<seq:012d>.json         one object per ledger entry (create-only)
    evidence/<model>/<version>/<run>/               one run's evidence:
        gate-<gate id>.json, <evidence files>, approvals.json, approvals-at-seal.json,
        slack.json, jira.json, report.md, report.html, bundle.json
    evidence/runs/<run>.json                        run id → its approvals record (written when sign-off opens)
    evidence/jira/pending/<run>.json                runs whose Jira outbox is not empty
    evidence/_probe/<id>.json                       the store probe's object, deleted after the probe

In the witness bucket (``CLEARANCE_WITNESS_BUCKET``, its own credentials)::

    ledger-heads/<model>/<seq:012d>.json            the ledger head after entry <seq> (create-only)

docs/architecture.md ("Object keys") shows the same layout; ``tests/unit/test_keys.py`` pins it.
"""

from __future__ import annotations

import posixpath

CANDIDATES = "candidates"
PRODUCTION = "production"
EVIDENCE = "evidence"

#: Ledger entry keys are zero-padded so that listing them returns chain order.
LEDGER_KEY_WIDTH = 12

# File names inside a run's evidence prefix.
APPROVALS = "approvals.json"
APPROVALS_AT_SEAL = "approvals-at-seal.json"
SLACK_STATE = "slack.json"
JIRA_STATE = "jira.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
BUNDLE = "bundle.json"
GATE_RESULT_PREFIX = "gate-"
#: File name, next to a version's production copy, of the marker saying that copy is not live.
NOT_LIVE = "NOT-LIVE.json"


# --------------------------------------------------------------------------- candidates and production


def candidate_prefix(model: str, version: str | None = None) -> str:
    """``candidates/<model>/`` or ``candidates/<model>/<version>/``."""
    return f"{CANDIDATES}/{model}/" + (f"{version}/" if version else "")


def candidate_key(model: str, version: str, file_name: str) -> str:
    """A candidate artifact: ``candidates/<model>/<version>/<file>``."""
    return f"{candidate_prefix(model, version)}{file_name}"


def production_key(model: str, version: str, source_key: str, target: str = PRODUCTION) -> str:
    """Where a candidate artifact lands: the same file name under ``<target>/<model>/<version>/``."""
    return f"{target}/{model}/{version}/{posixpath.basename(source_key)}"


def pointer_key(model: str, target: str = PRODUCTION) -> str:
    """The live-version pointer: ``<target>/<model>/CURRENT.json``."""
    return f"{target}/{model}/CURRENT.json"


def certification_key(model: str, target: str = PRODUCTION) -> str:
    """``<target>/<model>/CERTIFICATION.json``: the live version's certification as last derived from the
    ledger (a cache the expiry sweep reads; the ledger is the truth, tasks/certification.py)."""
    return f"{target}/{model}/CERTIFICATION.json"


def not_live_key(model: str, version: str, target: str = PRODUCTION) -> str:
    """``<target>/<model>/<version>/NOT-LIVE.json``: the runs whose copy of this version did not go live
    (their pointer move lost, or they ended before it). Only ``CURRENT.json`` says what is live; a
    promotion of the version removes the marker when its pointer move succeeds."""
    return f"{target}/{model}/{version}/{NOT_LIVE}"


# --------------------------------------------------------------------------- the ledger


def ledger_prefix(model: str) -> str:
    """Object-key prefix of a model's ledger."""
    return f"{EVIDENCE}/{model}/ledger/"


def ledger_key(model: str, seq: int) -> str:
    """Object key of ledger entry ``seq``."""
    return f"{ledger_prefix(model)}{seq:0{LEDGER_KEY_WIDTH}d}.json"


# --------------------------------------------------------------------------- one run's evidence


def run_prefix(model: str, version: str, run_id: str) -> str:
    """The only prefix a run (and every dry run) writes its own evidence under."""
    return f"{EVIDENCE}/{model}/{version}/{run_id}/"


def run_file(model: str, version: str, run_id: str, name: str) -> str:
    """A named file of a run's evidence (``approvals.json``, ``report.html``…)."""
    return run_prefix(model, version, run_id) + name


def gate_result_name(gate_id: str) -> str:
    """File name of a gate's result document inside a run's prefix."""
    return f"{GATE_RESULT_PREFIX}{gate_id}.json"


def approvals_key(model: str, version: str, run_id: str) -> str:
    """The run's approvals record."""
    return run_file(model, version, run_id, APPROVALS)


def slack_state_key(model: str, version: str, run_id: str) -> str:
    """Where a run's Slack message ids live."""
    return run_file(model, version, run_id, SLACK_STATE)


def jira_state_key(model: str, version: str, run_id: str) -> str:
    """Where a run's ticket key and Jira outbox live."""
    return run_file(model, version, run_id, JIRA_STATE)


# --------------------------------------------------------------------------- indexes across runs


def run_index_key(run_id: str) -> str:
    """Run id → where its approvals record is (written when the request opens)."""
    return f"{EVIDENCE}/runs/{run_id}.json"


JIRA_PENDING_PREFIX = f"{EVIDENCE}/jira/pending/"


def jira_pending_key(run_id: str) -> str:
    """Index entry of a run whose Jira outbox is not empty (the poller flushes these)."""
    return f"{JIRA_PENDING_PREFIX}{run_id}.json"


def start_nonce_key(model: str, nonce: str) -> str:
    """Marks a signed start statement as used (create-only), so it starts one run only."""
    return f"{EVIDENCE}/{model}/starts/{nonce}.json"


#: Where the store probe (``tasks/store_probe.py``) writes, then deletes, its object. Model names start
#: with a letter or digit, so no model's evidence can live here.
STORE_PROBE_PREFIX = f"{EVIDENCE}/_probe/"


def store_probe_key(probe_id: str) -> str:
    """The object one store probe writes twice create-only and swaps with a stale ETag, then deletes."""
    return f"{STORE_PROBE_PREFIX}{probe_id}.json"


# --------------------------------------------------------------------------- witnesses (outside the bucket)

#: Top-level prefix of the witness bucket (``CLEARANCE_WITNESS_BUCKET``), a bucket apart from this one.
WITNESS_HEADS = "ledger-heads"


def witness_prefix(model: str) -> str:
    """In the witness bucket: where a model's ledger heads are, ``ledger-heads/<model>/``."""
    return f"{WITNESS_HEADS}/{model}/"


def witness_head_key(model: str, seq: int) -> str:
    """In the witness bucket: the head after ledger entry ``seq`` (create-only, one per entry)."""
    return f"{witness_prefix(model)}{seq:0{LEDGER_KEY_WIDTH}d}.json"


def ledger_head_artifact_key(model: str) -> str:
    """The Prefect artifact key under which runs publish a model's ledger head (``ledger-head-<model>``;
    artifact keys allow only lower-case letters, digits and dashes)."""
    return "ledger-head-" + "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in model.lower())
