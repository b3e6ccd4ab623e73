"""The KMS service signer, against moto's KMS server on 127.0.0.1 (a real HTTP server, signing with real
ECC_NIST_P256 keys): SSH signatures OpenSSH accepts, ledger entries and decisions signed through the same
interface as the key file, and clear errors for keys that cannot sign."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key

from clearance.core.keys import ledger_key
from clearance.identity import sshsig
from clearance.identity.statements import SERVICE_NAMESPACE
from clearance.ledger import verify_chain
from clearance.settings import get_settings
from tasks import signing
from tasks.signing import KmsSigner, ServiceKeyError, ServiceSigner, kms_region, service_signer
from tests.fakes.memory_store import MemoryStore


@pytest.fixture(scope="module")
def kms_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def kms(kms_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """A KMS client on the emulator; the process's settings point at it (and not at the key file)."""
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "CLEARANCE_KMS_ENDPOINT_URL": kms_endpoint}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CLEARANCE_SERVICE_KEY_FILE", raising=False)
    get_settings.cache_clear()
    signing._kms_signer_for.cache_clear()
    yield boto3.client("kms", endpoint_url=kms_endpoint, region_name="us-east-1")
    monkeypatch.undo()
    get_settings.cache_clear()
    signing._kms_signer_for.cache_clear()


def new_key(kms, spec: str = "ECC_NIST_P256", usage: str = "SIGN_VERIFY") -> str:
    return kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]


def use_key(monkeypatch: pytest.MonkeyPatch, key_id: str) -> None:
    monkeypatch.setenv("CLEARANCE_SERVICE_KMS_KEY_ID", key_id)
    get_settings.cache_clear()


def test_the_kms_key_signs_ssh_signatures_that_verify(kms, monkeypatch):
    key_id = new_key(kms)
    use_key(monkeypatch, key_id)
    signer = service_signer()
    assert isinstance(signer, KmsSigner) and isinstance(signer, ServiceSigner)
    der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    assert signer.public_key == sshsig.ecdsa_public_key(load_der_public_key(der))  # type: ignore[arg-type]
    assert signer.public_key.kind == "ecdsa-sha2-nistp256"
    armored = signer.sign(b"entry 7 of churn")
    assert sshsig.verify(armored, b"entry 7 of churn", SERVICE_NAMESPACE, [signer.public_key]) == signer.public_key
    with pytest.raises(sshsig.SignatureError, match="does not match"):
        sshsig.verify(armored, b"entry 8 of churn", SERVICE_NAMESPACE, [signer.public_key])
    assert signer.sign(b"x") != signer.sign(b"x")  # ECDSA: a fresh nonce per signature, made inside KMS


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="OpenSSH's ssh-keygen is not installed")
def test_openssh_accepts_the_kms_signature(kms, monkeypatch, tmp_path: Path):
    use_key(monkeypatch, new_key(kms))
    signer = service_signer()
    assert signer is not None
    message = b'{"hash":"ab","ledger":"churn","purpose":"ledger-entry","seq":1}'
    (tmp_path / "allowed").write_text(f"clearance-service {signer.public_key.line}\n")
    (tmp_path / "sig").write_text(signer.sign(message))
    checked = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(tmp_path / "allowed"), "-I",
                              "clearance-service", "-n", SERVICE_NAMESPACE, "-s", str(tmp_path / "sig")],
                             input=message, capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    tampered = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(tmp_path / "allowed"), "-I",
                               "clearance-service", "-n", SERVICE_NAMESPACE, "-s", str(tmp_path / "sig")],
                              input=message + b" ", capture_output=True, timeout=30)
    assert tampered.returncode != 0


def test_the_ledger_is_signed_through_kms(kms, monkeypatch):
    from tasks.ledger import append_entry

    use_key(monkeypatch, new_key(kms))
    store = MemoryStore()
    for kind in ("started", "gate", "approved"):
        append_entry(store, "churn", kind, {"run": "r"}, witnesses=[])
    signer = service_signer()
    assert signer is not None
    assert verify_chain("churn", store.objects, trusted_keys=[signer.public_key]) == []
    # a file key is not the KMS key: every entry is named
    from cryptography.hazmat.primitives.asymmetric import ed25519

    other = sshsig.public_key_of(ed25519.Ed25519PrivateKey.generate())
    problems = verify_chain("churn", store.objects, trusted_keys=[other])
    assert [p.key for p in problems] == [ledger_key("churn", n) for n in (1, 2, 3)]


def test_decisions_are_attested_through_kms(kms, monkeypatch):
    from datetime import timedelta

    from clearance.approvals import ApprovalRequest, Vote
    from clearance.approvals.trust import trusted_record
    from clearance.config.schema import Assurance, Channel, Principals
    from clearance.core.clock import utcnow
    from tasks.approvals_record import open_record, read_record, submit_decision

    use_key(monkeypatch, new_key(kms))
    signer = service_signer()
    assert signer is not None
    people = Principals.model_validate({"principals": [{"id": "dana", "roles": []},
                                                       {"id": "sam", "roles": ["security"]}],
                                        "service_keys": [signer.public_key.line]})
    now = utcnow()
    request = ApprovalRequest(run_id="run-1", model="m", version="1", tier="high", artifact_digest="a" * 64,
                              evidence_digest="e" * 64, required_roles={"security": 1}, excluded_principals=["dana"],
                              initiator="dana", channels=list(Channel), opened_at=now,
                              deadline=now + timedelta(hours=1))
    store = MemoryStore()
    open_record(store, request)
    key = "evidence/m/1/run-1/approvals.json"
    result = submit_decision(store, key, principal=people.by_id("sam"), identity="slack:T1/sam",
                             channel=Channel.SLACK, vote=Vote.APPROVE, artifact_digest="a" * 64,
                             assurance=Assurance.VERIFIED, principals=people)  # signer: from the settings
    assert result.accepted, result.refusal
    verified, problems = trusted_record(read_record(store, key)[0], request, people, [signer.public_key], utcnow())
    assert problems == [] and verified.outcome.value == "approved"


@pytest.mark.parametrize("spec,usage", [("RSA_2048", "SIGN_VERIFY"), ("ECC_NIST_P384", "SIGN_VERIFY"),
                                        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")])
def test_a_key_that_cannot_make_ssh_signatures_is_refused_by_name(kms, monkeypatch, spec, usage):
    key_id = new_key(kms, spec, usage)
    use_key(monkeypatch, key_id)
    with pytest.raises(ServiceKeyError, match=f"CLEARANCE_SERVICE_KMS_KEY_ID {key_id}: ") as raised:
        service_signer()
    assert "ECC_NIST_P256" in str(raised.value) or "GetPublicKey failed" in str(raised.value)


def test_an_unknown_key_is_refused_by_name(kms, monkeypatch):
    use_key(monkeypatch, "alias/nope")
    with pytest.raises(ServiceKeyError, match=r"CLEARANCE_SERVICE_KMS_KEY_ID alias/nope: KMS GetPublicKey failed \("):
        service_signer()


def test_a_failed_sign_call_is_an_error_naming_the_key(kms, monkeypatch):
    """(moto still signs with a disabled key, so the failure here is a key that is gone.)"""
    use_key(monkeypatch, new_key(kms))
    signer = service_signer()
    assert isinstance(signer, KmsSigner)
    gone = KmsSigner(client=signer.client, key_id="alias/gone", public_key=signer.public_key)
    with pytest.raises(ServiceKeyError, match="CLEARANCE_SERVICE_KMS_KEY_ID alias/gone: KMS Sign failed"):
        gone.sign(b"x")


def test_a_key_swapped_behind_the_id_is_caught_before_its_signature_is_used(kms, monkeypatch):
    use_key(monkeypatch, new_key(kms))
    signer = service_signer()
    assert isinstance(signer, KmsSigner)
    swapped = KmsSigner(client=signer.client, key_id=new_key(kms), public_key=signer.public_key)
    with pytest.raises(ServiceKeyError, match="KMS signed with another key than the one it reported"):
        swapped.sign(b"x")


def test_key_file_and_kms_key_together_are_refused(kms, monkeypatch, service_key):
    use_key(monkeypatch, new_key(kms))
    monkeypatch.setenv("CLEARANCE_SERVICE_KEY_FILE", str(service_key))
    get_settings.cache_clear()
    with pytest.raises(ServiceKeyError, match="not both"):
        service_signer()


def test_the_region_comes_from_a_key_arn():
    assert kms_region("arn:aws:kms:eu-west-3:111122223333:key/abcd", "us-east-1") == "eu-west-3"
    assert kms_region("alias/clearance", "us-east-1") == "us-east-1"
    assert kms_region("1234abcd-12ab-34cd-56ef-1234567890ab", "eu-central-1") == "eu-central-1"
