"""SSH signatures (OpenSSH's ``SSHSIG`` format, what ``ssh-keygen -Y sign`` and git write), in Python.

Verifying needs no ``ssh-keygen``: an auditor re-checks every decision offline with the public keys
pinned in ``principals.yaml``. Supported keys: ``ssh-ed25519`` and ``ecdsa-sha2-nistp256`` (the
form an AWS KMS ``ECC_NIST_P256`` key takes), plus ``ssh-rsa`` keys signing with ``rsa-sha2-256/512``.

Format (OpenSSH ``PROTOCOL.sshsig``)::

    "SSHSIG" uint32(1) string(public key) string(namespace) string(reserved) string(hash) string(signature)

and the signature is taken over::

    "SSHSIG" string(namespace) string(reserved) string(hash) string(H(message))
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

MAGIC = b"SSHSIG"
VERSION = 1
BEGIN = "-----BEGIN SSH SIGNATURE-----"
END = "-----END SSH SIGNATURE-----"
#: Upper bound of an armored signature we parse (an RSA-16384 one is ~5 KB): input is hostile.
MAX_ARMORED = 16_384
_HASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha512": lambda data: hashlib.sha512(data).digest(),
    "sha256": lambda data: hashlib.sha256(data).digest(),
}


class SignatureError(ValueError):
    """A signature or key that cannot be read or does not verify (the message says which)."""


# --------------------------------------------------------------------------- wire format


def _string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.at + n > len(self.data):
            raise SignatureError("truncated SSH data")
        chunk = self.data[self.at:self.at + n]
        self.at += n
        return chunk

    def uint32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def string(self) -> bytes:
        return self.take(self.uint32())

    def mpint(self) -> int:
        return int.from_bytes(self.string(), "big", signed=True)

    def done(self) -> bool:
        return self.at == len(self.data)


def _mpint(value: int) -> bytes:
    raw = value.to_bytes((value.bit_length() + 8) // 8 or 1, "big", signed=True)
    return _string(raw)


# --------------------------------------------------------------------------- public keys


@dataclass(frozen=True)
class PublicKey:
    """An SSH public key: its type and wire blob (comment dropped)."""

    kind: str
    blob: bytes

    @classmethod
    def parse(cls, line: str) -> PublicKey:
        """``ssh-ed25519 AAAA… comment`` (an allowed-signers or authorized_keys line without options)."""
        parts = line.strip().split()
        if len(parts) < 2:
            raise SignatureError("an SSH public key is '<type> <base64> [comment]'")
        try:
            blob = base64.b64decode(parts[1], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SignatureError("the key's base64 is not valid") from exc
        key = cls(kind=parts[0], blob=blob)
        inner = _Reader(blob).string().decode("ascii", "replace")
        if inner != key.kind:
            raise SignatureError(f"key says {inner!r} inside but {key.kind!r} outside")
        key.crypto()  # refuse keys we cannot use, now rather than at verification
        return key

    @property
    def line(self) -> str:
        """The key as one OpenSSH line (no comment)."""
        return f"{self.kind} {base64.b64encode(self.blob).decode()}"

    @property
    def fingerprint(self) -> str:
        """``SHA256:…`` as ``ssh-keygen -l`` shows it."""
        digest = base64.b64encode(hashlib.sha256(self.blob).digest()).decode().rstrip("=")
        return f"SHA256:{digest}"

    def crypto(self) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey:
        """The key as a ``cryptography`` object."""
        reader = _Reader(self.blob)
        kind = reader.string().decode("ascii", "replace")
        if kind == "ssh-ed25519":
            raw = reader.string()
            if len(raw) != 32:
                raise SignatureError("an ed25519 key has 32 bytes")
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        if kind == "ecdsa-sha2-nistp256":
            if reader.string() != b"nistp256":
                raise SignatureError("ecdsa key on an unexpected curve")
            return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), reader.string())
        if kind == "ssh-rsa":
            e, n = reader.mpint(), reader.mpint()
            if n.bit_length() < 2048:
                raise SignatureError("RSA keys under 2048 bits are refused")
            return rsa.RSAPublicNumbers(e, n).public_key()
        raise SignatureError(f"unsupported SSH key type {kind!r} (use ssh-ed25519 or ecdsa-sha2-nistp256)")


def public_key_of(private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> PublicKey:
    """The SSH public key of a private key held in Python (the service key, tests)."""
    if isinstance(private, ed25519.Ed25519PrivateKey):
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return PublicKey("ssh-ed25519", _string(b"ssh-ed25519") + _string(raw))
    return ecdsa_public_key(private.public_key())


def ecdsa_public_key(key: ec.EllipticCurvePublicKey) -> PublicKey:
    """An ECDSA P-256 key (e.g. from KMS ``GetPublicKey``) as an SSH public key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    point = key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    kind = b"ecdsa-sha2-nistp256"
    return PublicKey(kind.decode(), _string(kind) + _string(b"nistp256") + _string(point))


# --------------------------------------------------------------------------- signing


def signed_data(message: bytes, namespace: str, hash_name: str = "sha512") -> bytes:
    """What an SSHSIG signature covers for ``message`` in ``namespace``."""
    return (MAGIC + _string(namespace.encode()) + _string(b"") + _string(hash_name.encode())
            + _string(_HASHES[hash_name](message)))


def ed25519_signature_blob(private: ed25519.Ed25519PrivateKey, data: bytes) -> bytes:
    """An ``ssh-ed25519`` signature blob over ``data``."""
    return _string(b"ssh-ed25519") + _string(private.sign(data))


def ecdsa_signature_blob(der_signature: bytes) -> bytes:
    """An ``ecdsa-sha2-nistp256`` signature blob from a DER signature (what KMS ``Sign`` returns)."""
    r, s = decode_dss_signature(der_signature)
    return _string(b"ecdsa-sha2-nistp256") + _string(_mpint(r) + _mpint(s))


def armor(public_key: PublicKey, namespace: str, signature_blob: bytes, hash_name: str = "sha512") -> str:
    """The armored signature ``ssh-keygen -Y sign`` would write."""
    body = (MAGIC + struct.pack(">I", VERSION) + _string(public_key.blob) + _string(namespace.encode())
            + _string(b"") + _string(hash_name.encode()) + _string(signature_blob))
    text = base64.b64encode(body).decode()
    lines = [text[i:i + 76] for i in range(0, len(text), 76)]
    return "\n".join([BEGIN, *lines, END]) + "\n"


def sign(private: ed25519.Ed25519PrivateKey, message: bytes, namespace: str) -> str:
    """Sign ``message`` with an ed25519 key held in Python; the armored SSHSIG."""
    blob = ed25519_signature_blob(private, signed_data(message, namespace))
    return armor(public_key_of(private), namespace, blob)


# --------------------------------------------------------------------------- verifying


@dataclass(frozen=True)
class Signature:
    """A parsed SSHSIG."""

    public_key: PublicKey
    namespace: str
    hash_name: str
    blob: bytes


def parse(armored: str) -> Signature:
    """Read an armored SSHSIG; :class:`SignatureError` names what is wrong."""
    if not isinstance(armored, str) or len(armored) > MAX_ARMORED:
        raise SignatureError("not an SSH signature (missing or too large)")
    text = armored.strip()
    if not (text.startswith(BEGIN) and text.endswith(END)):
        raise SignatureError("not an armored SSH signature")
    try:
        raw = base64.b64decode("".join(text[len(BEGIN):-len(END)].split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("the signature's base64 is not valid") from exc
    reader = _Reader(raw)
    if reader.take(6) != MAGIC or reader.uint32() != VERSION:
        raise SignatureError("not an SSHSIG version 1 signature")
    key_blob = reader.string()
    namespace = reader.string().decode("utf-8", "replace")
    reader.string()  # reserved
    hash_name = reader.string().decode("ascii", "replace")
    blob = reader.string()
    if not reader.done():
        raise SignatureError("trailing bytes after the signature")
    if hash_name not in _HASHES:
        raise SignatureError(f"unsupported hash {hash_name!r}")
    kind = _Reader(key_blob).string().decode("ascii", "replace")
    return Signature(PublicKey(kind, key_blob), namespace, hash_name, blob)


def verify(armored: str, message: bytes, namespace: str, allowed: Iterable[PublicKey]) -> PublicKey:
    """The allowed key that made this signature over ``message`` in ``namespace``; raises otherwise."""
    signature = parse(armored)
    if signature.namespace != namespace:
        raise SignatureError(f"signed for namespace {signature.namespace!r}, not {namespace!r}")
    key = next((k for k in allowed if k.blob == signature.public_key.blob), None)
    if key is None:
        raise SignatureError(f"signed by {signature.public_key.fingerprint}, which is not a key of this person")
    data = signed_data(message, namespace, signature.hash_name)
    reader = _Reader(signature.blob)
    algorithm = reader.string().decode("ascii", "replace")
    raw = reader.string()
    public = key.crypto()
    try:
        if isinstance(public, ed25519.Ed25519PublicKey) and algorithm == "ssh-ed25519":
            public.verify(raw, data)
        elif isinstance(public, ec.EllipticCurvePublicKey) and algorithm == "ecdsa-sha2-nistp256":
            inner = _Reader(raw)
            public.verify(encode_dss_signature(inner.mpint(), inner.mpint()), data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, rsa.RSAPublicKey) and algorithm in ("rsa-sha2-256", "rsa-sha2-512"):
            digest = hashes.SHA256() if algorithm == "rsa-sha2-256" else hashes.SHA512()
            public.verify(raw, data, padding.PKCS1v15(), digest)
        else:
            raise SignatureError(f"signature algorithm {algorithm!r} does not fit key {key.kind}")
    except InvalidSignature as exc:
        raise SignatureError("the signature does not match what was signed") from exc
    return key
