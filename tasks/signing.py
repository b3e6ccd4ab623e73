"""The clearance service key: signing what the service verified, so it can be re-checked offline.

Two kinds of key sign behind one interface (:class:`ServiceSigner`: ``.public_key`` and
``.sign(message, namespace)``):

- an ed25519 SSH private key file (``CLEARANCE_SERVICE_KEY_FILE``, :class:`FileSigner`);
  ``clearance keygen`` writes a new key pair;
- an AWS KMS asymmetric key (``CLEARANCE_SERVICE_KMS_KEY_ID``, key spec ``ECC_NIST_P256``,
  ``ECDSA_SHA_256``; :class:`KmsSigner`): the private key never leaves KMS, which signs the SSHSIG
  signed-data (``MessageType=RAW``); its public key is an ``ecdsa-sha2-nistp256`` SSH key.

Either public key is pinned in ``principals.yaml`` (``service_keys``), which is where verifiers take
it from — never from the bucket. Signatures are SSHSIG (namespace ``clearance-service``), so
``ssh-keygen -Y verify`` can check them too. The service signs the decisions it verified and every
ledger entry; appending to the ledger needs a key (:func:`require_signer`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_public_key,
    load_pem_private_key,
    load_ssh_private_key,
)

from clearance.identity import sshsig
from clearance.identity.sshsig import PublicKey, SignatureError
from clearance.identity.statements import SERVICE_NAMESPACE
from clearance.settings import Settings, get_settings

#: The only KMS key spec and algorithm that make an SSH signature (``ecdsa-sha2-nistp256``).
KMS_KEY_SPEC = "ECC_NIST_P256"
KMS_ALGORITHM = "ECDSA_SHA_256"


class ServiceKeyError(RuntimeError):
    """The service key is missing or unusable (the message names the setting and the file or key)."""


@runtime_checkable
class ServiceSigner(Protocol):
    """What signs as the clearance service: a key file or a KMS key."""

    @property
    def public_key(self) -> PublicKey:
        """The SSH public key verifiers pin (``principals.yaml`` ``service_keys``)."""
        ...

    def sign(self, message: bytes, namespace: str = SERVICE_NAMESPACE) -> str:
        """The armored SSHSIG of ``message`` in ``namespace``."""
        ...


@dataclass(frozen=True)
class FileSigner:
    """Signs with an ed25519 service key held in this process (``CLEARANCE_SERVICE_KEY_FILE``)."""

    private: ed25519.Ed25519PrivateKey

    @property
    def public_key(self) -> PublicKey:
        return sshsig.public_key_of(self.private)

    def sign(self, message: bytes, namespace: str = SERVICE_NAMESPACE) -> str:
        """The armored SSHSIG of ``message``."""
        return sshsig.sign(self.private, message, namespace)


@dataclass(frozen=True)
class KmsSigner:
    """Signs with an AWS KMS ``ECC_NIST_P256`` key (``CLEARANCE_SERVICE_KMS_KEY_ID``); the key stays in KMS."""

    client: Any = field(repr=False)
    key_id: str
    public_key: PublicKey

    @classmethod
    def connect(cls, key_id: str, client: Any) -> KmsSigner:
        """Read the key's public half from KMS (``GetPublicKey``) and check it can make SSH signatures."""
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"CLEARANCE_SERVICE_KMS_KEY_ID {key_id}"
        try:
            answer = client.get_public_key(KeyId=key_id)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise ServiceKeyError(f"{where}: KMS GetPublicKey failed ({code})") from None
        except BotoCoreError as exc:
            raise ServiceKeyError(f"{where}: KMS GetPublicKey failed ({type(exc).__name__})") from None
        spec = answer.get("KeySpec") or answer.get("CustomerMasterKeySpec")
        if spec != KMS_KEY_SPEC or answer.get("KeyUsage", "SIGN_VERIFY") != "SIGN_VERIFY":
            raise ServiceKeyError(f"{where}: must be a SIGN_VERIFY key with key spec {KMS_KEY_SPEC} "
                                  f"(it is {spec}, {answer.get('KeyUsage')})")
        if KMS_ALGORITHM not in answer.get("SigningAlgorithms", [KMS_ALGORITHM]):
            raise ServiceKeyError(f"{where}: the key does not offer {KMS_ALGORITHM}")
        public = load_der_public_key(answer["PublicKey"])
        if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP256R1):
            raise ServiceKeyError(f"{where}: KMS returned a public key that is not on NIST P-256")
        return cls(client=client, key_id=key_id, public_key=sshsig.ecdsa_public_key(public))

    def sign(self, message: bytes, namespace: str = SERVICE_NAMESPACE) -> str:
        """KMS signs the SSHSIG signed-data (``RAW``: KMS hashes it with SHA-256); checked before it is used."""
        from botocore.exceptions import BotoCoreError, ClientError

        data = sshsig.signed_data(message, namespace)
        try:
            der = self.client.sign(KeyId=self.key_id, Message=data, MessageType="RAW",
                                   SigningAlgorithm=KMS_ALGORITHM)["Signature"]
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise ServiceKeyError(f"CLEARANCE_SERVICE_KMS_KEY_ID {self.key_id}: KMS Sign failed ({code})") from None
        except BotoCoreError as exc:
            raise ServiceKeyError(f"CLEARANCE_SERVICE_KMS_KEY_ID {self.key_id}: KMS Sign failed "
                                  f"({type(exc).__name__})") from None
        armored = sshsig.armor(self.public_key, namespace, sshsig.ecdsa_signature_blob(der))
        try:  # a key replaced behind an alias must not leave signatures nobody can verify
            sshsig.verify(armored, message, namespace, [self.public_key])
        except SignatureError as exc:
            raise ServiceKeyError(f"CLEARANCE_SERVICE_KMS_KEY_ID {self.key_id}: KMS signed with another key "
                                  f"than the one it reported ({exc})") from None
        return armored


def load_private_key(path: Path) -> ed25519.Ed25519PrivateKey:
    """An ed25519 private key from an OpenSSH or PEM file (unencrypted: it is a service credential)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ServiceKeyError(f"CLEARANCE_SERVICE_KEY_FILE {path}: {exc.strerror or exc}") from None
    try:
        key = load_ssh_private_key(data, None) if b"OPENSSH PRIVATE KEY" in data else load_pem_private_key(data, None)
    except (ValueError, TypeError) as exc:
        raise ServiceKeyError(f"CLEARANCE_SERVICE_KEY_FILE {path}: not an unencrypted private key ({exc})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ServiceKeyError(f"CLEARANCE_SERVICE_KEY_FILE {path}: must be an ed25519 key")
    return key


@lru_cache(maxsize=4)
def _signer_for(path: str, mtime_ns: int) -> FileSigner:
    return FileSigner(load_private_key(Path(path)))


def kms_region(key_id: str, default: str) -> str:
    """The region of a KMS key ARN (``arn:aws:kms:<region>:…``), else ``default``."""
    parts = key_id.split(":")
    return parts[3] if key_id.startswith("arn:") and len(parts) > 3 and parts[3] else default


@lru_cache(maxsize=4)
def _kms_signer_for(key_id: str, endpoint_url: str | None, region: str) -> KmsSigner:
    import boto3
    from botocore.config import Config

    client = boto3.session.Session().client(
        "kms", endpoint_url=endpoint_url, region_name=region,
        config=Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30))
    return KmsSigner.connect(key_id, client)


def service_signer(settings: Settings | None = None) -> ServiceSigner | None:
    """The service signer of ``settings`` (the KMS key or the key file), or ``None`` when neither is set."""
    settings = settings or get_settings()
    path, kms_key = settings.service_key_file, settings.service_kms_key_id
    if path is not None and kms_key:
        raise ServiceKeyError("set one of CLEARANCE_SERVICE_KEY_FILE and CLEARANCE_SERVICE_KMS_KEY_ID, not both")
    if kms_key:
        return _kms_signer_for(kms_key, settings.kms_endpoint_url, kms_region(kms_key, settings.s3_region))
    if path is None:
        return None
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ServiceKeyError(f"CLEARANCE_SERVICE_KEY_FILE {path}: {exc.strerror or exc}") from None
    return _signer_for(str(path), mtime)


def require_signer(settings: Settings | None = None, *, purpose: str = "sign") -> ServiceSigner:
    """The service signer; raises :class:`ServiceKeyError` naming the settings when none is configured."""
    signer = service_signer(settings)
    if signer is None:
        raise ServiceKeyError(f"no clearance service key to {purpose} with: set CLEARANCE_SERVICE_KEY_FILE "
                              "(an ed25519 key; `clearance keygen` writes one) or CLEARANCE_SERVICE_KMS_KEY_ID "
                              "(an AWS KMS ECC_NIST_P256 key)")
    return signer


def own_public_keys(settings: Settings | None = None) -> list[PublicKey]:
    """The public key of this process's own service key (trusted besides those in principals.yaml)."""
    signer = service_signer(settings)
    return [signer.public_key] if signer else []


def write_key_pair(path: Path) -> PublicKey:
    """A new ed25519 service key at ``path`` (mode 0600, OpenSSH format) and ``path``.pub; returns the public key."""
    private = ed25519.Ed25519PrivateKey.generate()
    body = private.private_bytes(Encoding.PEM, PrivateFormat.OpenSSH, NoEncryption())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)
    public = sshsig.public_key_of(private)
    path.with_name(path.name + ".pub").write_text(public.line + " clearance-service\n")
    return public
