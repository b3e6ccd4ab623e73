"""The clearance service key: signing what the service verified, so it can be re-checked offline.

The key is an ed25519 SSH private key file (``CLEARANCE_SERVICE_KEY_FILE``); its public key is
pinned in ``principals.yaml`` (``service_keys``), which is where verifiers take it from — never
from the bucket. Signatures are SSHSIG (namespace ``clearance-service``), so ``ssh-keygen -Y
verify`` can check them too. ``clearance keygen`` writes a new key pair.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
    load_ssh_private_key,
)

from clearance.identity import sshsig
from clearance.identity.sshsig import PublicKey
from clearance.identity.statements import SERVICE_NAMESPACE
from clearance.settings import Settings, get_settings


class ServiceKeyError(RuntimeError):
    """The service key is missing or unusable (the message names the setting and the file)."""


@dataclass(frozen=True)
class ServiceSigner:
    """Signs with the service key held in this process."""

    private: ed25519.Ed25519PrivateKey

    @property
    def public_key(self) -> PublicKey:
        return sshsig.public_key_of(self.private)

    def sign(self, message: bytes, namespace: str = SERVICE_NAMESPACE) -> str:
        """The armored SSHSIG of ``message``."""
        return sshsig.sign(self.private, message, namespace)


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
def _signer_for(path: str, mtime_ns: int) -> ServiceSigner:
    return ServiceSigner(load_private_key(Path(path)))


def service_signer(settings: Settings | None = None) -> ServiceSigner | None:
    """The service signer of ``settings``, or ``None`` when no key is configured."""
    settings = settings or get_settings()
    path = settings.service_key_file
    if path is None:
        return None
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise ServiceKeyError(f"CLEARANCE_SERVICE_KEY_FILE {path}: {exc.strerror or exc}") from None
    return _signer_for(str(path), mtime)


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
