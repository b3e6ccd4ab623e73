"""Issue 10, finding 7: what ``clearance audit verify`` sees beyond the entry the production pointer anchors.

Two real promotions run once for the module on the session's SeaweedFS and Prefect server (one promoted,
one rejected: a model that was never promoted has no anchor at all), with a witness bucket on a second
SeaweedFS whose credentials the evidence bucket's writers do not have. Each test then tampers with the
evidence bucket as someone holding its credentials could — plain S3 writes and deletes — runs the real CLI,
and checks that the break is named. The evidence is restored after every test.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clearance.core.keys import ledger_key, pointer_key, run_prefix
from clearance.dev import devservers
from clearance.ledger import LedgerEntry
from tests.integration.promotion_kit import (
    REPO,
    Candidate,
    cli_env,
    decide,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
    wait_for_request,
)

pytestmark = pytest.mark.integration

WITNESS_BUCKET = "clearance-witness"
BUCKET_WITNESS = f"s3://{WITNESS_BUCKET}"
PREFECT_WITNESS = "prefect-artifacts"


# --------------------------------------------------------------------------- servers, runs, restoring


def _clear_caches() -> None:
    from clearance.settings import get_settings
    from tasks import witness

    get_settings.cache_clear()
    witness._bucket_store.cache_clear()


@pytest.fixture(scope="module")
def witness_s3(s3_service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[devservers.S3Service]:
    """A second SeaweedFS holding the witness bucket, with its own generated credentials."""
    service = devservers.start_s3(tmp_path_factory.mktemp("witness-s3"), bucket=WITNESS_BUCKET)
    patch = pytest.MonkeyPatch()
    for name, value in {"CLEARANCE_WITNESS_BUCKET": WITNESS_BUCKET,
                        "CLEARANCE_WITNESS_S3_ENDPOINT_URL": service.endpoint_url,
                        "CLEARANCE_WITNESS_S3_ACCESS_KEY_ID": service.access_key_id,
                        "CLEARANCE_WITNESS_S3_SECRET_ACCESS_KEY": service.secret_access_key}.items():
        patch.setenv(name, value)
    _clear_caches()
    try:
        yield service
    finally:
        patch.undo()
        _clear_caches()
        devservers.stop(service)


@dataclass
class History:
    """A model whose one run ended (promoted or rejected), and a copy of everything it wrote to the bucket."""

    cand: Candidate
    run_id: str
    snapshot: dict[str, bytes]

    @property
    def model(self) -> str:
        return self.cand.model

    @property
    def prefix(self) -> str:
        return run_prefix(self.model, "1.0.0", self.run_id)


@dataclass
class Histories:
    promoted: History
    rejected: History


def _owned_keys(s3, model: str) -> list[str]:
    return s3.list_keys(f"evidence/{model}/") + s3.list_keys(f"production/{model}/")


def _restore(s3, history: History) -> None:
    """Put the bucket back as the run left it (the witnesses were never touched)."""
    for key in _owned_keys(s3, history.model):
        if key not in history.snapshot:
            s3.delete(key)
    for key, body in history.snapshot.items():
        try:
            if s3.get_bytes(key)[0] == body:
                continue
        except Exception:
            pass
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body)


@pytest.fixture(scope="module")
def histories(witness_s3, prefect_service, tmp_path_factory: pytest.TempPathFactory) -> Histories:
    """One promotion approved and one rejected, run at the same time by the real flow in subprocesses."""
    from clearance.settings import get_settings
    from tasks.object_store import ObjectStore

    s3 = ObjectStore.from_settings(get_settings())
    approved = make_candidate(tmp_path_factory.mktemp("promoted"), s3)
    refused = make_candidate(tmp_path_factory.mktemp("rejected"), s3)
    logs = tmp_path_factory.mktemp("logs")
    runs = {c.model: start_direct_run(c, "1.0.0", log=logs / f"{c.model}.log") for c in (approved, refused)}
    ids = {c.model: find_run(c.model, "1.0.0") for c in (approved, refused)}
    for cand in (approved, refused):
        wait_for_request(s3, ids[cand.model])
    assert decide(s3, approved, ids[approved.model], "sam").accepted
    assert decide(s3, approved, ids[approved.model], "bea", comment="KPI reviewed").accepted
    assert decide(s3, refused, ids[refused.model], "sam", vote="reject", comment="no KPI baseline").accepted
    assert finish(runs[approved.model]) == 0, (logs / f"{approved.model}.log").read_text()[-3000:]
    assert finish(runs[refused.model]) != 0

    def history(cand: Candidate) -> History:
        snapshot = {key: s3.get_bytes(key)[0] for key in _owned_keys(s3, cand.model)}
        return History(cand=cand, run_id=ids[cand.model], snapshot=snapshot)

    return Histories(promoted=history(approved), rejected=history(refused))


@pytest.fixture
def runs(histories: Histories, s3) -> Histories:
    """The two histories, as the runs left them."""
    _restore(s3, histories.promoted)
    _restore(s3, histories.rejected)
    return histories


def audit(history: History, *, without: tuple[str, ...] = (), **env: str) -> subprocess.CompletedProcess:
    """``clearance audit verify MODEL`` in a subprocess (``without``: settings removed from its environment)."""
    environment = {k: v for k, v in cli_env(history.cand, "dana").items() if k not in without} | env
    return subprocess.run([sys.executable, "-m", "clearance", "audit", "verify", history.model], env=environment,
                          cwd=REPO, text=True, capture_output=True, timeout=120)


def entries(s3, history: History) -> dict[int, LedgerEntry]:
    from tasks.ledger import read_ledger

    return {e.seq: e for e in read_ledger(s3, history.model)}


def rewrite(s3, history: History, from_seq: int, change, signer) -> None:
    """Replace entry ``from_seq`` by ``change(entry)`` and re-hash (and re-sign, with ``signer``) every later one,
    so the stored chain is consistent — written with plain S3 puts, as a bucket writer could."""
    from tasks.ledger import sign_entry

    stored = entries(s3, history)
    previous = stored.get(from_seq - 1)
    for seq in range(from_seq, max(stored) + 1):
        old = stored[seq]
        kind, payload = change(old) if seq == from_seq else (old.kind, old.payload)
        entry = LedgerEntry.next_after(previous, kind, payload, at=old.at)
        if signer is not None:
            entry = sign_entry(history.model, entry, signer)
        s3.client.put_object(Bucket=s3.bucket, Key=ledger_key(history.model, seq), Body=entry.model_dump_json())
        previous = entry


def intruder():
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from tasks.signing import FileSigner

    return FileSigner(ed25519.Ed25519PrivateKey.generate())


def insider(service_key: Path):
    """Someone who holds the service key itself (a compromised worker): signatures verify."""
    from tasks.signing import FileSigner, load_private_key

    return FileSigner(load_private_key(service_key))


# --------------------------------------------------------------------------- the intact runs


def test_intact_runs_verify_and_both_witnesses_hold_every_head(runs: Histories, s3, witness_s3):
    from tasks.witness import read_witnesses

    for history, last in ((runs.promoted, 6), (runs.rejected, 4)):
        assert sorted(entries(s3, history)) == list(range(1, last + 1))
        readings, notes = read_witnesses(history.model)
        assert notes == []
        assert {r.witness: [h.seq for h in r.heads] for r in readings} == {
            BUCKET_WITNESS: list(range(1, last + 1)), PREFECT_WITNESS: list(range(1, last + 1))}
        ok = audit(history)
        assert ok.returncode == 0, ok.stderr
        assert f"its head (entry {last}) is witnessed" in ok.stdout and "chain intact and signed" in ok.stdout
        assert "approvals records re-verified" in ok.stdout and "TAMPERED" not in ok.stderr
        assert witness_s3.secret_access_key not in ok.stdout + ok.stderr
    # the pointer anchors the approval, not the last entry: the gap this finding is about
    pointer = json.loads(s3.get_bytes(pointer_key(runs.promoted.model))[0])
    assert (pointer["ledger_seq"], entries(s3, runs.promoted)[4].kind) == (4, "approved")
    assert s3.head(pointer_key(runs.rejected.model)) is None


def test_the_evidence_bucket_credentials_cannot_write_the_witness(witness_s3, s3_service):
    from botocore.exceptions import ClientError

    client = devservers._s3_client(witness_s3.endpoint_url, s3_service.access_key_id, s3_service.secret_access_key)
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        client.put_object(Bucket=WITNESS_BUCKET, Key="ledger-heads/x/000000000001.json", Body=b"{}")
    with pytest.raises(ClientError, match="InvalidAccessKeyId"):
        client.delete_object(Bucket=WITNESS_BUCKET, Key="ledger-heads/x/000000000001.json")


def test_an_unreadable_witness_fails_the_audit_instead_of_passing_it(runs: Histories):
    result = audit(runs.promoted, CLEARANCE_WITNESS_S3_SECRET_ACCESS_KEY="wrong")
    assert result.returncode == 1
    assert f"witness {BUCKET_WITNESS}: could not be read" in result.stderr and "the tail is unchecked" in result.stderr


# --------------------------------------------------------------------------- a cut tail


def test_a_cut_tail_after_the_anchor_is_named_by_each_witness(runs: Histories, s3):
    from tasks.ledger import verify_ledger
    from tasks.signing import own_public_keys

    history = runs.promoted
    s3.delete(ledger_key(history.model, 6))  # the `promoted` entry: the anchor (entry 4) is still there
    # what the audit could see before this change: nothing
    pointer = json.loads(s3.get_bytes(pointer_key(history.model))[0])
    assert verify_ledger(s3, history.model, (pointer["ledger_seq"], pointer["ledger_hash"]),
                         trusted_keys=own_public_keys())[1] == []

    named = {witness: (f"{ledger_key(history.model, 6)}: entry 6 removed from the end of the ledger: witness "
                       f"{witness} saw entry 6, the stored ledger ends at entry 5")
             for witness in (BUCKET_WITNESS, PREFECT_WITNESS)}
    both = audit(history)
    assert both.returncode == 1 and all(line in both.stderr for line in named.values()), both.stderr
    # each witness alone is enough
    bucket_only = audit(history, without=("PREFECT_API_URL",))
    assert bucket_only.returncode == 1 and named[BUCKET_WITNESS] in bucket_only.stderr
    assert "no Prefect API is configured" in bucket_only.stderr
    prefect_only = audit(history, without=("CLEARANCE_WITNESS_BUCKET",))
    assert prefect_only.returncode == 1 and named[PREFECT_WITNESS] in prefect_only.stderr


def test_a_cut_tail_of_a_never_promoted_model_is_named(runs: Histories, s3):
    history = runs.rejected
    for seq in (3, 4):  # approval-requested and rejected: what remains looks like a run still at its gates
        s3.delete(ledger_key(history.model, seq))
    result = audit(history)
    assert result.returncode == 1
    assert (f"{ledger_key(history.model, 4)}: entries 3–4 removed from the end of the ledger: witness "
            f"{BUCKET_WITNESS} saw entry 4, the stored ledger ends at entry 2") in result.stderr, result.stderr


def test_a_ledger_deleted_whole_is_named(runs: Histories, s3):
    history = runs.rejected
    for seq in range(1, 5):
        s3.delete(ledger_key(history.model, seq))
    result = audit(history)
    assert result.returncode == 1
    assert "entries 1–4 removed from the end of the ledger" in result.stderr and "ends at nothing" in result.stderr


# --------------------------------------------------------------------------- consistent rewrites


@pytest.mark.parametrize("who", ["intruder", "insider"])
def test_a_consistent_rewrite_after_the_anchor_is_named(runs: Histories, s3, service_key, who):
    """Entry 6 (`promoted`) rewritten as a failed promotion, chain re-hashed; signed by another key, or by the
    service key itself."""
    history = runs.promoted
    signer = intruder() if who == "intruder" else insider(service_key)
    rewrite(s3, history, 6, lambda e: ("promotion-failed", {"run": e.payload["run"], "version": "1.0.0",
                                                            "reason": "never happened"}), signer)
    result = audit(history)
    assert result.returncode == 1
    key = ledger_key(history.model, 6)
    for witness in (BUCKET_WITNESS, PREFECT_WITNESS):
        assert (f"{key}: entry 6 differs from the one witness {witness} saw: the ledger was rewritten from entry 6 "
                "on (1 witnessed entry differs)") in result.stderr, result.stderr
    unsigned = f"{key}: entry 6 is signed by {signer.public_key.fingerprint}, which is not a trusted service key"
    assert (unsigned in result.stderr) is (who == "intruder")  # the insider's signature verifies: only witnesses see it


@pytest.mark.parametrize("who", ["intruder", "unsigned"])
def test_a_never_promoted_model_rewritten_from_its_start_is_named(runs: Histories, s3, who):
    """No pointer anchors anything of this model; its first entry is rewritten and the chain re-hashed."""
    history = runs.rejected
    signer = intruder() if who == "intruder" else None
    rewrite(s3, history, 1, lambda e: (e.kind, e.payload | {"initiator": "mallory"}), signer)
    result = audit(history)
    assert result.returncode == 1
    key = ledger_key(history.model, 1)
    assert (f"{key}: entry 1 differs from the one witness {BUCKET_WITNESS} saw: the ledger was rewritten from "
            "entry 1 on (4 witnessed entries differ)") in result.stderr, result.stderr
    for seq in range(1, 5):
        if signer is None:
            assert f"{ledger_key(history.model, seq)}: entry {seq} is not signed by the clearance service" \
                in result.stderr
        else:
            assert f"{ledger_key(history.model, seq)}: entry {seq} is signed by {signer.public_key.fingerprint}" \
                in result.stderr


# --------------------------------------------------------------------------- evidence and decisions


@pytest.mark.parametrize("how", ["bundle-only", "bundle-and-entry-re-signed-by-insider"])
def test_a_replaced_bundle_is_named(runs: Histories, s3, service_key, how):
    history = runs.promoted
    key = history.prefix + "bundle.json"
    bundle = json.loads(s3.get_bytes(key)[0])
    bundle["files"] = [f for f in bundle["files"] if f["name"] != "report.html"]  # hide an edited report
    body = json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode()
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=body)
    s3.client.put_object(Bucket=s3.bucket, Key=history.prefix + "report.html", Body=b"<p>all fine</p>")
    if how != "bundle-only":
        import hashlib

        rewrite(s3, history, 6, lambda e: (e.kind, e.payload | {"bundle_sha256": hashlib.sha256(body).hexdigest()}),
                insider(service_key))
    result = audit(history)
    assert result.returncode == 1
    if how == "bundle-only":
        assert f"{key}: bundle differs from the digest ledger entry 6 recorded" in result.stderr, result.stderr
    else:  # the bundle now matches its (rewritten) ledger entry; the witnesses still hold the original
        assert "bundle differs" not in result.stderr
        assert f"entry 6 differs from the one witness {BUCKET_WITNESS} saw" in result.stderr, result.stderr
        assert f"{history.prefix}report.html: added after the run sealed its evidence" in result.stderr


def test_an_invented_decision_is_named_in_each_record(runs: Histories, s3):
    """The rejected run's records are edited to read 'approved': sam's rejection replaced by approvals that
    no channel recorded (one without a proof, one 'attested' by a key the configs do not trust)."""
    from clearance.approvals import ApprovalRecord, Decision, Outcome, Proof, Vote
    from clearance.config.schema import Channel
    from clearance.identity.statements import decision_payload

    history = runs.rejected
    forger = intruder()
    for name in ("approvals-at-seal.json", "approvals.json"):
        key = history.prefix + name
        record = ApprovalRecord.model_validate_json(s3.get_bytes(key)[0])
        assert [(d.principal, d.vote.value) for d in record.decisions] == [("sam", "reject")]
        sam = Decision(id="5a" * 16, principal="sam", channel=Channel.CLI, vote=Vote.APPROVE, roles=["security"],
                       artifact_digest=record.request.artifact_digest, evidence_digest=record.request.evidence_digest)
        bea = Decision(id="be" * 16, principal="bea", channel=Channel.SLACK, vote=Vote.APPROVE, roles=["business"],
                       artifact_digest=record.request.artifact_digest, evidence_digest=record.request.evidence_digest)
        bea = bea.model_copy(update={"proof": Proof(kind="service", signature=forger.sign(
            decision_payload(bea.model_dump(mode="json"))))})
        forged = record.model_copy(update={"decisions": [sam, bea], "outcome": Outcome.APPROVED,
                                           "closed_by": ["bea", "sam"]})
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=forged.model_dump_json())
    result = audit(history)
    assert result.returncode == 1
    for name in ("approvals-at-seal.json", "approvals.json"):
        key = history.prefix + name
        assert (f"{key}: decision 5a5a5a5a (approve by sam via cli) not counted: it carries no proof (written "
                "outside clearance?)") in result.stderr, result.stderr
        assert (f"{key}: decision bebebebe (approve by bea via slack) not counted: service signature: signed by "
                f"{forger.public_key.fingerprint}") in result.stderr
        assert f"{key}: the record says approved, but its verified decisions make it" in result.stderr
    assert f"{history.prefix}approvals-at-seal.json: altered after the run sealed its evidence" in result.stderr


# --------------------------------------------------------------------------- witness outages


def test_a_witness_outage_never_fails_an_append_and_the_next_append_catches_up(witness_s3, s3, caplog):
    from clearance.core.ledger_kinds import LedgerKind
    from clearance.ledger import check_heads
    from clearance.settings import get_settings
    from tasks.ledger import append_entry, read_ledger
    from tasks.object_store import ObjectStore
    from tasks.signing import own_public_keys
    from tasks.witness import BucketWitness, witness_store

    model = f"m-{uuid.uuid4().hex[:8]}"
    closed = devservers.free_ports(1)[0]  # nothing listens there: the connection is refused
    down = BucketWitness(ObjectStore(devservers._s3_client(f"http://127.0.0.1:{closed}", "k", "s"), WITNESS_BUCKET))
    with caplog.at_level("WARNING"):
        for kind in (LedgerKind.STARTED, LedgerKind.GATE):
            append_entry(s3, model, kind, {"run": "r"}, witnesses=[down])
    assert [e.seq for e in read_ledger(s3, model)] == [1, 2]
    assert f"witness {down.name} did not record entry 2 of the {model} ledger" in caplog.text
    store = witness_store(get_settings())
    assert store is not None and store.list_keys(f"ledger-heads/{model}/") == []
    append_entry(s3, model, LedgerKind.GATE, {"run": "r"})  # the configured witnesses
    reading = BucketWitness(store).read(model)
    assert [h.seq for h in reading.heads] == [1, 2, 3]
    assert check_heads(model, read_ledger(s3, model), [reading], own_public_keys()) == []


def test_object_lock_probe(witness_s3):
    """What SeaweedFS 4.48 does with Object Lock (docs/ledger.md reports it): a COMPLIANCE-locked version cannot
    be deleted, but a plain PUT still makes a newer version on top — retention guards versions, not the key."""
    import datetime
    import hashlib
    from base64 import b64encode

    from botocore.exceptions import ClientError

    client = devservers._s3_client(witness_s3.endpoint_url, witness_s3.access_key_id, witness_s3.secret_access_key)
    bucket = f"lock-probe-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    until = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    version = client.put_object(Bucket=bucket, Key="head", Body=b"1", ObjectLockMode="COMPLIANCE",
                                ObjectLockRetainUntilDate=until,
                                ChecksumSHA256=b64encode(hashlib.sha256(b"1").digest()).decode())["VersionId"]
    assert client.get_object_retention(Bucket=bucket, Key="head", VersionId=version)["Retention"]["Mode"] == \
        "COMPLIANCE"
    with pytest.raises(ClientError, match="AccessDenied"):
        client.delete_object(Bucket=bucket, Key="head", VersionId=version)
    client.put_object(Bucket=bucket, Key="head", Body=b"2")  # not refused: a newer version
    assert client.get_object(Bucket=bucket, Key="head")["Body"].read() == b"2"
    assert client.get_object(Bucket=bucket, Key="head", VersionId=version)["Body"].read() == b"1"

