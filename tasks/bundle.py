"""The evidence bundle of a run, and the audit of every bundle and gate result against the ledger.

When a run ends, ``bundle.json`` is written under the run's evidence prefix: the name, SHA-256 and
size of every immutable evidence object there (gate results and their files, reports, the dry-run
document, and ``approvals-at-seal.json``, a frozen copy of the approvals record), the names of the
few objects that keep changing by compare-and-swap (the approvals record itself, which records
later refusals, and the Slack/Jira message state), and this run's ledger entries so far. The run's
final ledger entry then records the bundle's own SHA-256, so the hash chain anchors the bundle and
the bundle anchors every file: altering, removing or adding evidence afterwards is found by
:func:`audit_evidence` (``clearance audit verify``). :func:`audit_approvals` re-checks every
decision of every run's approvals record (the sealed one and the living one) against the configs'
principals and the trusted service keys, so an invented decision is named even where the digests
cannot see it (the living record is not in the bundle).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from clearance.approvals import ApprovalRecord, Outcome
from clearance.approvals.trust import trusted_record
from clearance.config.schema import Principals
from clearance.core.digests import canonical_json
from clearance.core.keys import APPROVALS, APPROVALS_AT_SEAL, BUNDLE, JIRA_STATE, SLACK_STATE, run_prefix
from clearance.core.ledger_kinds import LedgerKind
from clearance.identity.sshsig import PublicKey
from clearance.ledger import LedgerEntry
from gates.base import GateResult
from tasks.store import ObjectExists, ObjectNotFound, Store

#: Objects of a run prefix that are updated after the run ends (compare-and-swap state).
LIVING = (APPROVALS, SLACK_STATE, JIRA_STATE)
#: The approvals record as it was when the run sealed its evidence (immutable, so in the bundle).
RECORD_SNAPSHOT = APPROVALS_AT_SEAL


def bundle_document(store: Store, prefix: str, *, model: str, version: str, run_id: str,
                    ledger: list[LedgerEntry]) -> dict[str, Any]:
    """What ``bundle.json`` holds for the run whose evidence is under ``prefix``."""
    files, living = [], []
    for key in store.list_keys(prefix):
        name = key[len(prefix):]
        if name == BUNDLE:
            continue
        if name in LIVING:
            living.append(name)
            continue
        digest, size = store.sha256_of(key)
        files.append({"name": name, "sha256": digest, "size": size})
    entries = [{"seq": e.seq, "kind": e.kind, "hash": e.hash} for e in ledger if e.payload.get("run") == run_id]
    return {"model": model, "version": version, "run_id": run_id, "files": files, "living": living,
            "ledger": entries}


def seal(store: Store, prefix: str, *, model: str, version: str, run_id: str,
         ledger: list[LedgerEntry]) -> dict[str, str]:
    """Write the run's ``bundle.json`` (immutable); returns ``{"bundle": key, "bundle_sha256": digest}``
    for the run's final ledger entry. Sealing the same evidence again is a no-op."""
    _snapshot_record(store, prefix)
    body = canonical_json(bundle_document(store, prefix, model=model, version=version, run_id=run_id,
                                          ledger=ledger))
    key = prefix + BUNDLE
    try:
        store.put_if_absent(key, body, content_type="application/json")
    except ObjectExists:
        if store.get_bytes(key)[0] != body:
            raise ValueError(
                f"{key} exists with other content: the run's evidence changed after it was sealed") from None
    return {"bundle": key, "bundle_sha256": hashlib.sha256(body).hexdigest()}


def _snapshot_record(store: Store, prefix: str) -> None:
    """Freeze the approvals record as it is now (a later refusal changes ``approvals.json``, not this)."""
    try:
        body = store.get_bytes(prefix + APPROVALS)[0]
    except ObjectNotFound:
        return  # a run stopped by its gates never opened a request
    try:
        store.put_if_absent(prefix + RECORD_SNAPSHOT, body, content_type="application/json")
    except ObjectExists:
        pass  # sealed before (a retry): the first snapshot stands


def audit_evidence(store: Store, entries: list[LedgerEntry]) -> tuple[int, list[str]]:
    """Check every bundle and every gate result the ledger points at; returns (bundles checked, problems).

    Problems name the object and what is wrong: a bundle whose digest differs from the ledger's, an
    evidence file altered, removed or added after sealing, a bundle whose ledger references do not
    match the chain, a gate result whose digest differs from the one its ledger entry recorded.
    """
    by_seq = {e.seq: e for e in entries}
    problems: list[str] = []
    bundles = 0
    for entry in entries:
        payload = entry.payload
        if entry.kind == LedgerKind.GATE and payload.get("evidence") and payload.get("digest"):
            problems += _check_gate(store, entry)
        if payload.get("bundle"):
            bundles += 1
            problems += _check_bundle(store, entry, by_seq)
    return bundles, problems


def _check_gate(store: Store, entry: LedgerEntry) -> list[str]:
    key = entry.payload["evidence"]
    try:
        result = GateResult.model_validate_json(store.get_bytes(key)[0])
    except ObjectNotFound:
        return [f"{key}: gate evidence of ledger entry {entry.seq} is missing"]
    except ValueError as exc:
        return [f"{key}: gate evidence of ledger entry {entry.seq} is unreadable ({str(exc).splitlines()[0]})"]
    if result.digest() != entry.payload["digest"]:
        return [f"{key}: gate result differs from the digest ledger entry {entry.seq} recorded"]
    return []


def _check_bundle(store: Store, entry: LedgerEntry, by_seq: dict[int, LedgerEntry]) -> list[str]:
    key = entry.payload["bundle"]
    prefix = key[: -len(BUNDLE)]
    try:
        body = store.get_bytes(key)[0]
    except ObjectNotFound:
        return [f"{key}: evidence bundle of ledger entry {entry.seq} is missing"]
    if hashlib.sha256(body).hexdigest() != entry.payload.get("bundle_sha256"):
        return [f"{key}: bundle differs from the digest ledger entry {entry.seq} recorded"]
    bundle = json.loads(body)
    problems = []
    listed = {f["name"]: f for f in bundle["files"]}
    for name, item in sorted(listed.items()):
        try:
            digest, size = store.sha256_of(prefix + name)
        except ObjectNotFound:
            problems.append(f"{prefix}{name}: removed after the run sealed its evidence")
            continue
        if (digest, size) != (item["sha256"], item["size"]):
            problems.append(f"{prefix}{name}: altered after the run sealed its evidence")
    for found in store.list_keys(prefix):
        name = found[len(prefix):]
        if name not in listed and name != BUNDLE and name not in LIVING:
            problems.append(f"{found}: added after the run sealed its evidence")
    for ref in bundle["ledger"]:
        chained = by_seq.get(ref["seq"])
        if chained is None or chained.hash != ref["hash"]:
            problems.append(f"{key}: names ledger entry {ref['seq']} ({ref['kind']}) that the chain does not hold")
    return problems


def audit_approvals(store: Store, model: str, entries: Sequence[LedgerEntry], principals: Principals,
                    trusted_keys: list[PublicKey], now: datetime) -> tuple[int, list[str]]:
    """Re-check the proof of every decision in every run's approvals records; returns (records checked, problems).

    The runs are those the ledger names (``run`` and ``version`` of their entries). For each, the
    record frozen at the seal (``approvals-at-seal.json``) and the living record (``approvals.json``)
    are read and passed through :func:`clearance.approvals.trust.trusted_record`: every decision whose
    proof does not verify (no proof, a signature by an untrusted key, a statement for another run…) or
    that the configs no longer let count is named, and so is a closed record whose outcome its
    verified decisions do not give.
    """
    runs: dict[str, str] = {}
    for entry in entries:
        run, version = entry.payload.get("run"), entry.payload.get("version")
        if isinstance(run, str) and isinstance(version, str):
            runs.setdefault(run, version)
    checked, problems = 0, []
    for run, version in runs.items():
        prefix = run_prefix(model, version, run)
        for name in (RECORD_SNAPSHOT, APPROVALS):
            key = prefix + name
            try:
                stored = ApprovalRecord.model_validate_json(store.get_bytes(key)[0])
            except ObjectNotFound:
                continue  # a run stopped by its gates never opened a request; an unsealed run has no snapshot
            except ValueError as exc:
                problems.append(f"{key}: unreadable approvals record ({str(exc).splitlines()[0]})")
                continue
            checked += 1
            problems += [f"{key}: {problem}" for problem in _record_problems(stored, model, version, run,
                                                                              principals, trusted_keys, now)]
    return checked, problems


def _record_problems(stored: ApprovalRecord, model: str, version: str, run: str, principals: Principals,
                     trusted_keys: list[PublicKey], now: datetime) -> list[str]:
    request = stored.request
    if (request.model, request.version, request.run_id) != (model, version, run):
        return [f"the record is for {request.model} {request.version} run {request.run_id}, not {model} "
                f"{version} run {run}"]
    at = stored.closed_at or now
    verified, problems = trusted_record(stored, request, principals, trusted_keys, at)
    if stored.outcome is not Outcome.PENDING and verified.outcome is not stored.outcome:
        problems.append(f"the record says {stored.outcome.value}, but its verified decisions make it "
                        f"{verified.outcome.value}")
    return problems
