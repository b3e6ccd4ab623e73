"""Secrets in a bundle's text files and configs, reported with file and line and never shown.

The caller passes the files (a task has them locally). A file is read up to ``max_file_bytes``
(default 1 MiB; a longer one is scanned that far and listed as ``truncated``), at most
``max_total_bytes`` in all (default 64 MiB; files past it are listed as ``budget``, not scanned).
A file with a NUL byte in its first 8 KiB, or that is not UTF-8, is binary: listed as skipped,
not scanned (model files are the model scanner's business).

What is found (``kind``):

====================================  ==========================================================
``aws-access-key-id``                 ``AKIA…`` / ``ASIA…`` (and ABIA, ACCA) + 16 upper-case letters or digits
``aws-secret-access-key``             40 base64 characters assigned to ``aws_secret_access_key`` (or
                                      ``secret_access_key``, ``SecretAccessKey``)
``gcp-service-account-key``           the ``"private_key": "-----BEGIN … PRIVATE KEY-----…"`` of a service-account JSON
``azure-storage-key``                 ``AccountKey=…`` / ``SharedAccessKey=…`` of an Azure connection string
``slack-token``                       ``xoxb-``, ``xoxp-``, ``xoxa-``, ``xoxr-``, ``xoxs-``, ``xapp-`` tokens
``slack-webhook``                     ``https://hooks.slack.com/services/T…/B…/…`` (and workflows, triggers)
``github-token``                      ``ghp_``, ``gho_``, ``ghu_``, ``ghs_``, ``ghr_`` + 36 or more, ``github_pat_…``
``gitlab-token``                      ``glpat-`` + 20 or more
``private-key``                       ``-----BEGIN [RSA|DSA|EC|OPENSSH|ENCRYPTED|PGP] PRIVATE KEY[ BLOCK]-----``
                                      followed by key material (a header alone, as in docs, is not one)
``jwt``                               three base64url parts, the first two JSON objects (``eyJ…``)
``high-entropy``                      a value of 20 or more base64/hex characters whose Shannon entropy is at
                                      least 4.0 bits/char (base64; with two of lower case, upper case, digits) or
                                      3.0 (hex), and only when it is assigned to a name with key, secret, token
                                      (not tokenizer), password, passwd, pwd, api_key, auth (not author) or
                                      credential in it (``name = value``, ``name: value``, ``"name": "value"``);
                                      paths and names made of words (``org/model-name-v2``) are not secrets
====================================  ==========================================================

Placeholders are not secrets: a value containing ``example``, ``xxxx``, ``changeme``,
``change_me``, ``placeholder``, ``dummy``, ``redacted``, ``your_``/``your-``, ``****``, or shaped
as ``<…>``, ``${…}``, ``{{…}}``, ``%(…)s`` is left alone.

Each :class:`SecretFinding` carries the masked value only (first 4 characters, ``…``, last 2; a
value under 16 characters and every private key fully masked): the raw value is in no field,
message, ``repr`` or exception this module makes.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PRIVATE_KEY_MASK = "[masked private key]"
MAX_FILE_BYTES = 1024 * 1024
MAX_TOTAL_BYTES = 64 * 1024 * 1024
SNIFF_BYTES = 8192

BASE64_THRESHOLD = 4.0
HEX_THRESHOLD = 3.0
MIN_GENERIC_LENGTH = 20

_PLACEHOLDER = re.compile(
    r"example|xxxx|changeme|change_me|placeholder|dummy|redacted|your[_-]|\*\*\*\*|^<.*>$|\$\{|\{\{|%\(",
    re.IGNORECASE)


@dataclass(frozen=True)
class SecretFinding:
    """A secret found in a file: where, what kind, and the value masked (never the value)."""

    file: str
    line: int
    kind: str
    masked: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.kind} {self.masked}"


@dataclass(frozen=True)
class SkippedFile:
    """A file not scanned, or not to its end: ``binary``, ``undecodable``, ``truncated`` (scanned up to
    ``max_file_bytes``), ``budget`` (over ``max_total_bytes``), ``unreadable`` (missing, a folder, no access)."""

    file: str
    reason: str
    detail: str = ""


@dataclass
class SecretScan:
    """The result of a scan: findings, the files scanned, the files skipped (with why)."""

    findings: list[SecretFinding] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    bytes_scanned: int = 0


def mask(value: str, *, full: bool = False) -> str:
    """``value`` shown safely: first 4 characters, ``…``, last 2 — or ``[masked N chars]`` when it is
    short (under 16 characters) or ``full`` is asked (private keys)."""
    if full or len(value) < 16:
        return f"[masked {len(value)} chars]"
    return f"{value[:4]}…{value[-2:]}"


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s character distribution."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def is_placeholder(value: str) -> bool:
    """Whether ``value`` is an obvious placeholder (EXAMPLE, xxxx, changeme, <…>, ${…}, …)."""
    return bool(_PLACEHOLDER.search(value)) or len(set(value)) <= 2


# --------------------------------------------------------------------------- detectors

# (kind, pattern, group of the value), most specific first (private keys, which span lines, are found
# before these). None of them crosses a line end.
_DETECTORS: list[tuple[str, re.Pattern[str], int]] = [
    ("azure-storage-key",
     re.compile(r"(?i)\b(?:AccountKey|SharedAccessKey)[ \t]*=[ \t]*([A-Za-z0-9+/]{20,}={0,2})"), 1),
    ("aws-secret-access-key",
     re.compile(r"(?i)(?:aws_?)?secret_?access_?key[\"']?[ \t]*(?:=|:|=>)[ \t]*[\"']?([A-Za-z0-9/+]{40})"
                r"(?![A-Za-z0-9/+=])"), 1),
    ("aws-access-key-id", re.compile(r"((?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16})(?![A-Z0-9])"), 1),
    ("slack-webhook",
     re.compile(r"(https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_]+/[A-Za-z0-9_]+"
                r"/[A-Za-z0-9_/]+)"), 1),
    ("slack-token", re.compile(r"(xox[abprs]-[0-9A-Za-z-]{10,}|xapp-[0-9A-Za-z-]{10,})"), 1),
    ("github-token", re.compile(r"(gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])"), 1),
    ("gitlab-token", re.compile(r"(glpat-[A-Za-z0-9_-]{20,})"), 1),
]
#: Substrings (of the text, or of its lower-case copy for the case-insensitive ones) without which a
#: detector cannot match: most files skip most detectors at memory speed.
_PREFILTER: dict[str, tuple[bool, tuple[str, ...]]] = {
    "azure-storage-key": (True, ("accountkey", "sharedaccesskey")),
    "aws-secret-access-key": (True, ("secret",)),
    "aws-access-key-id": (False, ("AKIA", "ASIA", "ABIA", "ACCA")),
    "slack-webhook": (False, ("hooks.slack.com",)),
    "slack-token": (False, ("xox", "xapp-")),
    "github-token": (False, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_")),
    "gitlab-token": (False, ("glpat-",)),
}
#: JWTs are looked for in runs of base64url characters and dots, split at the dots (a regex would go
#: quadratic on a long run of ``eyJeyJ…``): three parts, the first two JSON objects (``eyJ…``).
_JWT_RUN = re.compile(r"[A-Za-z0-9_.-]*eyJ[A-Za-z0-9_.-]*")
#: A token must not continue a longer word on its left (``xAKIA…`` is not a key id).
_LEFT_BOUNDARY = re.compile(r"[A-Za-z0-9_-]")

_PRIVATE_KEY = re.compile(r"-----BEGIN ((?:RSA |DSA |EC |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?)-----")
_KEY_MATERIAL = re.compile(r"[A-Za-z0-9+/=]{32,}")

_KEYWORD = re.compile(r"key|secret|token(?!iz)|passw(?:or)?d|pwd|auth(?!or)|credential", re.IGNORECASE)
# a value after a separator; the name before the separator is looked up afterwards (cheap on long lines)
_ASSIGNED_VALUE = re.compile(
    rf"(?:=>|:=|=|:)[ \t]*[\"']?(?P<value>[A-Za-z0-9+/_-]{{{MIN_GENERIC_LENGTH},1024}}+={{0,2}}+)(?![A-Za-z0-9+/=_-])")
_NAME_BEFORE_REVERSED = re.compile(r"[ \t]*[\"']?([A-Za-z0-9_.-]{1,64})")


def _name_before(text: str, separator: int) -> str:
    """The name assigned to (``name = …``, ``"name": …``): the identifier ending just before ``separator``."""
    window = text[max(0, separator - 72): separator][::-1]
    match = _NAME_BEFORE_REVERSED.match(window)
    return match.group(1)[::-1] if match else ""
_HEX = re.compile(r"^[0-9a-fA-F]+$")


_SEGMENT = re.compile(r"[-_/.+]")
_WORD = re.compile(r"[a-z]{3,}|[A-Z][a-z]{2,}")


def _looks_like_words(value: str) -> bool:
    """A path or a name made of words (``/run/secrets/db_file``, ``sentence-transformers/all-MiniLM-L6-v2``):
    three or more segments and at least half its characters in all-letter words of three or more (a
    random value almost never has such runs)."""
    segments = _SEGMENT.split(value)
    if len(segments) < 3:
        return False
    return sum(len(seg) for seg in segments if _WORD.fullmatch(seg)) * 2 >= len(value)


def _high_entropy(value: str) -> bool:
    if _looks_like_words(value):
        return False
    if _HEX.match(value):
        return shannon_entropy(value) >= HEX_THRESHOLD
    classes = sum(1 for pattern in (r"[a-z]", r"[A-Z]", r"[0-9]") if re.search(pattern, value))
    return classes >= 2 and shannon_entropy(value) >= BASE64_THRESHOLD


def _line_starts(text: str) -> list[int]:
    starts = [0]
    starts += [m.end() for m in re.finditer(r"\n", text)]
    return starts


def scan_text(text: str, file: str) -> list[SecretFinding]:
    """Every secret in ``text`` (the content of ``file``), in order of position."""
    found: list[tuple[int, SecretFinding]] = []
    starts = _line_starts(text)
    key_spans: list[tuple[int, int]] = []  # private keys (they span lines)

    def line_of(offset: int) -> int:
        return bisect_right(starts, offset)

    # private keys: the header, then key material within the next few lines (or \n-escaped in JSON)
    for match in _PRIVATE_KEY.finditer(text):
        following = text[match.end(): match.end() + 400].replace("\\n", "\n")
        if not _KEY_MATERIAL.search(following):
            continue
        end = text.find("-----END", match.end(), match.end() + 65536)
        end = end if end != -1 else match.end()
        key_line = line_of(match.start())
        before = text[starts[key_line - 1]: match.start()]
        kind = "gcp-service-account-key" if re.search(r'"private_key"\s*:\s*"$', before) else "private-key"
        key_spans.append((match.start(), end))
        found.append((match.start(), SecretFinding(file, key_line, kind, PRIVATE_KEY_MASK)))

    key_starts = [start for start, _ in key_spans]
    # spans already reported: disjoint, so sorted by start they are sorted by end too
    claimed_starts: list[int] = []
    claimed_ends: list[int] = []

    def free(start: int, end: int) -> bool:
        i = bisect_right(key_starts, start) - 1
        for j in (i, i + 1):  # the private key starting at or before the value, and one starting inside it
            if 0 <= j < len(key_spans) and start < key_spans[j][1] and key_spans[j][0] < end:
                return False
        k = bisect_left(claimed_starts, end)  # the last span starting before ``end`` is the only candidate
        return k == 0 or claimed_ends[k - 1] <= start

    def claim(kind: str, start: int, end: int, value: str) -> None:
        k = bisect_left(claimed_starts, start)
        claimed_starts.insert(k, start)
        claimed_ends.insert(k, end)
        found.append((start, SecretFinding(file, line_of(start), kind, mask(value))))

    lower = text.lower()
    for kind, pattern, group in _DETECTORS:
        folded, needles = _PREFILTER[kind]
        if not any(needle in (lower if folded else text) for needle in needles):
            continue
        for match in pattern.finditer(text):
            start, end = match.span(group)
            value = match.group(group)
            if not folded and start > 0 and _LEFT_BOUNDARY.match(text, start - 1):
                continue
            if free(start, end) and not is_placeholder(value):
                claim(kind, start, end, value)
    if "eyJ" in text:
        for start, end in _jwts(text):
            if free(start, end) and not is_placeholder(text[start:end]):
                claim("jwt", start, end, text[start:end])
    for match in _ASSIGNED_VALUE.finditer(text):
        value = match.group("value")
        start, end = match.span("value")
        if not _KEYWORD.search(_name_before(text, match.start())):
            continue
        if free(start, end) and not is_placeholder(value) and _high_entropy(value):
            claim("high-entropy", start, end, value)
    return [finding for _, finding in sorted(found, key=lambda item: item[0])]


def _jwts(text: str) -> list[tuple[int, int]]:
    """Spans of JWT-shaped tokens: ``eyJ…`` (8 more) ``.eyJ…`` (8 more) ``.`` signature (10 or more)."""
    spans = []
    for run in _JWT_RUN.finditer(text):
        parts = run.group().split(".")
        offsets = [run.start()]
        for part in parts[:-1]:
            offsets.append(offsets[-1] + len(part) + 1)
        i = 0
        while i + 2 < len(parts):
            head, body, signature = parts[i], parts[i + 1], parts[i + 2]
            if head.startswith("eyJ") and body.startswith("eyJ") and len(head) >= 11 and len(body) >= 11 \
                    and len(signature) >= 10:
                spans.append((offsets[i], offsets[i + 2] + len(signature)))
                i += 3
            else:
                i += 1
    return spans


def scan_bytes(data: bytes, file: str) -> tuple[list[SecretFinding], SkippedFile | None]:
    """Secrets in ``data`` (``file``'s bytes); binary or non-UTF-8 data is skipped (returned as why)."""
    if b"\0" in data[:SNIFF_BYTES]:
        return [], SkippedFile(file, "binary", "NUL byte in the first 8 KiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(data) - 3:  # a cut multi-byte character at the very end is no reason to skip
            return [], SkippedFile(file, "undecodable", f"not UTF-8 at byte {exc.start}")
        text = data[: exc.start].decode("utf-8-sig")
    return scan_text(text, file), None


def scan_files(paths: Iterable[Path], *, root: Path | None = None, max_file_bytes: int = MAX_FILE_BYTES,
               max_total_bytes: int = MAX_TOTAL_BYTES) -> SecretScan:
    """Scan each file of ``paths`` (named relative to ``root`` when given) within the byte bounds."""
    result = SecretScan()
    for path in paths:
        name = display_name(path, root)
        budget = max_total_bytes - result.bytes_scanned
        if budget <= 0:
            result.skipped.append(SkippedFile(name, "budget", f"over {max_total_bytes} bytes scanned in all"))
            continue
        try:
            size = path.stat().st_size
            with path.open("rb") as fh:
                data = fh.read(min(max_file_bytes, budget))
        except OSError as exc:
            result.skipped.append(SkippedFile(name, "unreadable", exc.strerror or type(exc).__name__))
            continue
        result.bytes_scanned += len(data)
        findings, skipped = scan_bytes(data, name)
        if skipped is not None:
            result.skipped.append(skipped)
            continue
        result.scanned.append(name)
        result.findings += findings
        if size > len(data):
            reason = "truncated" if len(data) == max_file_bytes else "budget"
            result.skipped.append(SkippedFile(name, reason, f"scanned the first {len(data)} of {size} bytes"))
    return result


def display_name(path: Path, root: Path | None) -> str:
    """How a scanned file is named: relative to ``root`` when inside it, else as given."""
    if root is not None:
        try:
            return path.relative_to(root).as_posix()
        except ValueError:
            pass
    return path.as_posix()
