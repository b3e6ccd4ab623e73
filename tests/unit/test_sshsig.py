"""SSH signatures in Python agree with OpenSSH's ssh-keygen both ways, and refuse what they must."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from clearance.identity import sshsig
from clearance.identity.sshsig import PublicKey, SignatureError

needs_ssh_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="OpenSSH client not installed")


def keygen(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"id_{kind}"
    extra = ["-b", "256"] if kind == "ecdsa" else []
    subprocess.run(["ssh-keygen", "-q", "-t", kind, *extra, "-N", "", "-C", "t", "-f", str(path)], check=True)
    return path


def ssh_sign(key: Path, data: bytes, namespace: str = "clearance") -> str:
    return subprocess.run(["ssh-keygen", "-Y", "sign", "-n", namespace, "-f", str(key)], input=data,
                          capture_output=True, check=True).stdout.decode()


@needs_ssh_keygen
@pytest.mark.parametrize("kind", ["ed25519", "ecdsa"])
def test_signatures_made_by_ssh_keygen_verify_here(tmp_path: Path, kind: str) -> None:
    key = keygen(tmp_path, kind)
    public = PublicKey.parse(Path(f"{key}.pub").read_text())
    signature = ssh_sign(key, b"approve run-1")
    assert sshsig.verify(signature, b"approve run-1", "clearance", [public]) == public
    fingerprint = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True, text=True,
                                 check=True).stdout.split()[1]
    assert public.fingerprint == fingerprint
    with pytest.raises(SignatureError, match="does not match"):
        sshsig.verify(signature, b"approve run-2", "clearance", [public])
    with pytest.raises(SignatureError, match="namespace"):
        sshsig.verify(signature, b"approve run-1", "git", [public])


@needs_ssh_keygen
def test_signatures_made_here_verify_with_ssh_keygen(tmp_path: Path) -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    public = sshsig.public_key_of(private)
    (tmp_path / "allowed").write_text(f"svc {public.line}\n")
    (tmp_path / "sig").write_text(sshsig.sign(private, b"entry 7", "clearance-service"))
    done = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(tmp_path / "allowed"), "-I", "svc", "-n",
                           "clearance-service", "-s", str(tmp_path / "sig")], input=b"entry 7", capture_output=True)
    assert done.returncode == 0, done.stderr


def test_a_signature_by_another_key_is_named() -> None:
    signer, other = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    signature = sshsig.sign(signer, b"m", "clearance")
    with pytest.raises(SignatureError, match="not a key of this person"):
        sshsig.verify(signature, b"m", "clearance", [sshsig.public_key_of(other)])


def test_an_ecdsa_der_signature_becomes_an_ssh_one() -> None:
    """The path a KMS ECC_NIST_P256 key takes: DER signature over the SSHSIG signed data."""
    from cryptography.hazmat.primitives import hashes

    private = ec.generate_private_key(ec.SECP256R1())
    public = sshsig.ecdsa_public_key(private.public_key())
    data = sshsig.signed_data(b"head 12", "clearance-service")
    armored = sshsig.armor(public, "clearance-service",
                           sshsig.ecdsa_signature_blob(private.sign(data, ec.ECDSA(hashes.SHA256()))))
    assert sshsig.verify(armored, b"head 12", "clearance-service", [public]) == public


@pytest.mark.parametrize("garbage", [
    "", "x" * 20_000, "-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----",
    "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----",
    "-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----",
])
def test_hostile_signatures_are_refused_with_a_reason(garbage: str) -> None:
    with pytest.raises(SignatureError):
        sshsig.verify(garbage, b"m", "clearance", [sshsig.public_key_of(ed25519.Ed25519PrivateKey.generate())])


@pytest.mark.parametrize("line", ["ssh-ed25519", "ssh-ed25519 !!!", "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
                                  "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGg="])
def test_unusable_public_keys_are_refused(line: str) -> None:
    with pytest.raises(SignatureError):
        PublicKey.parse(line)
