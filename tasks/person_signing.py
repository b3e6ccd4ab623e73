"""Signing a statement with a person's SSH key, as git signs commits: ``ssh-keygen -Y sign``.

The key is a private key file (``--key ~/.ssh/id_ed25519``) or, with ssh-agent holding the private
key, its public key file (``--key ~/.ssh/id_ed25519.pub``); ``CLEARANCE_SSH_KEY`` names it when
``--key`` is not given. The principal is the one whose ``ssh_keys`` in ``principals.yaml`` hold
that public key — a typed name plays no part.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

from clearance.config.schema import Principal, Principals
from clearance.core.clock import utcnow
from clearance.identity.sshsig import PublicKey, SignatureError
from clearance.identity.statements import PERSON_NAMESPACE, DecisionStatement
from clearance.settings import get_settings

SIGN_TIMEOUT_SECONDS = 60  # a hardware key may wait for a touch


class SigningError(RuntimeError):
    """The statement could not be signed (the message says what to do)."""


def key_path(given: Path | None) -> Path | None:
    """``--key``, else ``CLEARANCE_SSH_KEY``, else ``None`` (no signature: a claimed identity)."""
    if given is not None:
        return given.expanduser()
    configured = get_settings().ssh_key
    return configured.expanduser() if configured else None


def public_key_for(path: Path) -> PublicKey:
    """The public key of a key file: the file itself if public, else ``<file>.pub``, else ``ssh-keygen -y``."""
    candidates = [path] if path.suffix == ".pub" else [path.with_name(path.name + ".pub")]
    for candidate in candidates:
        if candidate.is_file():
            try:
                return PublicKey.parse(candidate.read_text())
            except (OSError, SignatureError) as exc:
                raise SigningError(f"{candidate}: not a usable SSH public key ({exc})") from None
    done = _ssh_keygen(["-y", "-f", str(path)], b"")
    return PublicKey.parse(done.decode())


def principal_for_key(principals: Principals, key: PublicKey) -> Principal | None:
    """The principal whose ``ssh_keys`` hold ``key``."""
    for person in principals.principals:
        if any(k.blob == key.blob for k in person.public_keys()):
            return person
    return None


def new_statement(**fields: object) -> DecisionStatement:
    """A statement signed now, with a fresh nonce."""
    return DecisionStatement.model_validate({"signed_at": utcnow(), "nonce": secrets.token_hex(16), **fields})


def sign(statement: DecisionStatement, path: Path) -> str:
    """The armored SSHSIG of ``statement`` made by ``ssh-keygen -Y sign`` with the key at ``path``."""
    if not path.exists():
        raise SigningError(f"SSH key {path} does not exist")
    return _ssh_keygen(["-Y", "sign", "-n", PERSON_NAMESPACE, "-f", str(path)], statement.payload()).decode()


def _ssh_keygen(args: list[str], data: bytes) -> bytes:
    binary = shutil.which("ssh-keygen")
    if binary is None:
        raise SigningError("ssh-keygen (OpenSSH 8.1 or later) is needed to sign; install the openssh client")
    try:
        done = subprocess.run([binary, *args], input=data, capture_output=True, timeout=SIGN_TIMEOUT_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        raise SigningError(f"ssh-keygen did not finish within {SIGN_TIMEOUT_SECONDS} s") from None
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise SigningError(f"ssh-keygen {args[0]} {args[1] if len(args) > 1 else ''}: "
                           f"{reason[-1] if reason else 'failed'}")
    return done.stdout
