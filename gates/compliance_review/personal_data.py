"""Personal-data detectors over Arrow columns, and the verdict on what a dataset declares.

Pure and vectorised: one RE2 pass of ``pyarrow.compute`` (``match_substring_regex``) with the union
of every detector's pattern picks the candidate rows, then each detector is one RE2 pass over those
rows only (slices of 1M rows run on a few threads; Arrow releases the GIL). The checksum detectors
(payment cards: issuer prefix and Luhn; IBANs: mod-97) extract their candidate only on the rows their
regex matched and check it with numpy over a digit matrix.
There is no Python loop per value; the only per-value Python work is masking the (at most three)
examples kept per detector.

Bounds: values longer than :data:`MAX_CHARS` characters are truncated to their first
``MAX_CHARS`` characters before matching (personal data further into a long text is not seen);
``sample=N`` scans a deterministic stride sample (every ``ceil(rows / N)``-th row, from row 0).
Only the first candidate of a row is checksum-checked for cards and IBANs.

Dates of birth are a column heuristic: a column whose *name* suggests birth (a ``dob`` or
``born`` token, or ``birth`` anywhere: ``dob``, ``date_of_birth``, ``BirthDate``, ``born_on``)
and whose values are dates (a date or timestamp type: every non-null value is a hit; a string
column: values that look like a date, e.g. ``1980-04-12``, ``12/04/1980``, ``12.04.1980``).
A date column with any other name is not flagged.

Examples are masked (``j***@e***.com``, ``****-****-****-1234``, ``***-**-6789``,
``GB** **** … 1234``); a result never holds a raw value.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field

from gates.base import CheckResult, Status

MAX_CHARS = 1024
"""Values are truncated to this many characters before matching (bounded work per value)."""

EXAMPLES = 3
"""Masked examples kept per detector."""

DETECTORS = ("email", "phone", "ssn", "payment_card", "iban", "ipv4", "ipv6", "date_of_birth")

# RE2 syntax (no look-around): boundaries are spelled as "start or a non-X character".
_NO_DIGIT_BEFORE = r"(?:^|[^0-9])"
_NO_DIGIT_AFTER = r"(?:$|[^0-9])"

_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}"
_PHONE = (
    r"(?:^|[^0-9A-Za-z+])(?:"
    r"\+[1-9](?:[ .-]?[0-9]){7,14}"  # E.164, optionally grouped: +44 20 7946 0958, +15551234567
    r"|\([0-9]{3}\) ?[0-9]{3}[-. ][0-9]{4}"  # North American: (555) 123-4567
    r"|[2-9][0-9]{2}[-.][0-9]{3}[-.][0-9]{4}"  # North American: 555-123-4567, 555.123.4567
    r"|0[1-9][0-9]{1,3} [0-9]{3,4} [0-9]{3,4}"  # trunk-prefixed national: 020 7946 0958, 0161 496 0000
    r")" + _NO_DIGIT_AFTER
)
# Area 001-899 except 666, group 01-99, serial 0001-9999.
_SSN = (
    _NO_DIGIT_BEFORE
    + r"(?:00[1-9]|0[1-9][0-9]|[1-578][0-9]{2}|6[0-57-9][0-9]|66[0-57-9])"
    + r"-(?:0[1-9]|[1-9][0-9])-(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
    + _NO_DIGIT_AFTER
)
_CARD_CORE = r"(?:[3-6][0-9]|2[2-7])(?:[ -]?[0-9]){11,17}"  # 13–19 digits, issuer prefix 2[2-7] or 3–6
_CARD = _NO_DIGIT_BEFORE + _CARD_CORE + _NO_DIGIT_AFTER
_IBAN_CORE = r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11,30}"
_IBAN = r"(?:^|[^A-Za-z0-9])" + _IBAN_CORE + r"(?:$|[^A-Za-z0-9])"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = r"(?:^|[^0-9.])" + _OCTET + r"(?:\." + _OCTET + r"){3}(?:$|[^0-9.])"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = (
    r"(?:^|[^0-9A-Fa-f:])(?:"
    rf"(?:{_H}:){{7}}{_H}"
    rf"|(?:{_H}:){{1,7}}:"
    rf"|(?:{_H}:){{1,6}}:{_H}"
    rf"|(?:{_H}:){{1,5}}(?::{_H}){{1,2}}"
    rf"|(?:{_H}:){{1,4}}(?::{_H}){{1,3}}"
    rf"|(?:{_H}:){{1,3}}(?::{_H}){{1,4}}"
    rf"|(?:{_H}:){{1,2}}(?::{_H}){{1,5}}"
    rf"|{_H}:(?::{_H}){{1,6}}"
    rf"|:(?::{_H}){{1,7}}"
    r")(?:$|[^0-9A-Fa-f:])"
)
_DATE = (
    _NO_DIGIT_BEFORE
    + r"(?:(?:19|20)[0-9]{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12][0-9]|3[01])"
    + r"|(?:0?[1-9]|[12][0-9]|3[01])[-/.](?:0?[1-9]|[12][0-9]|3[01])[-/.](?:19|20)?[0-9]{2})"
    + _NO_DIGIT_AFTER
)
_BIRTH_NAME = re.compile(r"birth|(?:^|[^a-z])(?:dob|born)(?:[^a-z]|$)", re.IGNORECASE)

_SIMPLE = {"email": _EMAIL, "phone": _PHONE, "ssn": _SSN, "ipv4": _IPV4, "ipv6": _IPV6}


class DetectorHits(BaseModel):
    """What one detector found in one column (examples are masked, never raw)."""

    model_config = ConfigDict(extra="forbid")

    detector: str
    hits: int = Field(description="Rows with at least one match.")
    rate: float = Field(description="hits / non-null rows scanned.")
    examples: list[str] = Field(default_factory=list, description="Up to three masked examples.")


class ColumnPII(BaseModel):
    """The personal-data scan of one column."""

    model_config = ConfigDict(extra="forbid")

    column: str
    rows: int = Field(description="Rows in the column.")
    scanned: int = Field(description="Rows scanned (all of them, or the stride sample).")
    non_null: int = Field(description="Non-null rows scanned: the denominator of every rate.")
    stride: int = 1
    truncated: int = Field(0, description=f"Values longer than {MAX_CHARS} characters, matched on their head.")
    skipped: str | None = Field(None, description="Why the column was not scanned (its type), if it was not.")
    detections: list[DetectorHits] = Field(default_factory=list, description="Detectors with at least one hit.")

    def found(self, min_rate: float = 0.0) -> list[DetectorHits]:
        """Detections whose rate is at least ``min_rate`` (and which have a hit)."""
        return [d for d in self.detections if d.hits and d.rate >= min_rate]


class Declaration(BaseModel):
    """What the manifest declares about a personal-data column."""

    model_config = ConfigDict(extra="forbid")

    lawful_basis: str | None = None
    retention: str | None = None


# --------------------------------------------------------------------------- masking (examples only)


def _mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    host, _, tld = domain.rpartition(".")
    return f"{local[:1]}***@{host[:1]}***.{tld}"


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _mask_phone(value: str) -> str:
    digits = _digits(value)
    return ("+" if value.lstrip().startswith("+") else "") + "*" * max(len(digits) - 2, 0) + digits[-2:]


def _mask_ssn(value: str) -> str:
    return "***-**-" + _digits(value)[-4:]


def _mask_card(value: str) -> str:
    return "****-****-****-" + _digits(value)[-4:]


def _mask_iban(value: str) -> str:
    compact = value.replace(" ", "")
    return f"{compact[:2]}** **** … {compact[-4:]}"


def _mask_ipv4(value: str) -> str:
    return value.split(".")[0] + ".*.*.*"


def _mask_ipv6(value: str) -> str:
    head = value.split(":")[0]
    return (head or ":") + ":****:…"


def _mask_date(value: str) -> str:
    return re.sub(r"[0-9]", "*", value)


_MASKS = {
    "email": _mask_email, "phone": _mask_phone, "ssn": _mask_ssn, "payment_card": _mask_card,
    "iban": _mask_iban, "ipv4": _mask_ipv4, "ipv6": _mask_ipv6, "date_of_birth": _mask_date,
}
_EXTRACT = {
    "email": f"(?P<m>{_EMAIL})",
    "phone": r"(?P<m>\+?[0-9][0-9 ().-]{6,}[0-9])",
    "ssn": r"(?P<m>[0-9]{3}-[0-9]{2}-[0-9]{4})",
    "payment_card": f"(?P<m>{_CARD_CORE})",
    "iban": f"(?P<m>{_IBAN_CORE})",
    "ipv4": r"(?P<m>[0-9]{1,3}(?:\.[0-9]{1,3}){3})",
    "ipv6": r"(?P<m>[0-9A-Fa-f:]*::?[0-9A-Fa-f:]*)",
    "date_of_birth": r"(?P<m>[0-9]{1,4}[-/.][0-9]{1,2}[-/.][0-9]{2,4})",
}


def _examples(detector: str, texts: pa.Array) -> list[str]:
    """Masked examples from (at most three) matching texts."""
    pattern = _EXTRACT.get(detector)
    found = texts.to_pylist()
    if pattern is not None:
        found = pc.struct_field(pc.extract_regex(texts, pattern), "m").to_pylist()
    return [_MASKS[detector](v) for v in found if v]


# --------------------------------------------------------------------------- the vectorised checks


def _padded_matrix(texts: pa.Array | pa.ChunkedArray, width: int) -> np.ndarray:
    """ASCII strings of at most ``width`` characters, left-padded with ``0`` to a ``(rows, width)`` uint8 matrix.

    The padding is Arrow's (``utf8_lpad``), so the matrix is a view of one buffer: no per-value Python.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    padded = pc.utf8_lpad(pc.fill_null(texts.cast(pa.large_string()), ""), width=width, padding="0")
    if len(padded) == 0:
        return np.zeros((0, width), dtype=np.uint8)
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int64)[padded.offset: padded.offset + len(padded) + 1]
    data = np.frombuffer(padded.buffers()[2], dtype=np.uint8)[offsets[0]: offsets[-1]]
    return data.reshape(len(padded), width)


_LUHN_DOUBLE = np.array([0, 2, 4, 6, 8, 1, 3, 5, 7, 9], dtype=np.uint8)


def luhn_valid(digits: np.ndarray) -> np.ndarray:
    """Luhn check of each row of a ``(rows, length)`` matrix of digit values (0–9); leading zeros are neutral."""
    if digits.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    rev = digits[:, ::-1]
    total = rev[:, 0::2].sum(axis=1, dtype=np.int32) + _LUHN_DOUBLE[rev[:, 1::2]].sum(axis=1, dtype=np.int32)
    return np.asarray(total % 10 == 0)


def _card_hits(texts: pa.Array, idx: np.ndarray) -> np.ndarray:
    """Of the candidate rows ``idx``, those whose first 13–19 digit run is a plausible card (IIN and Luhn)."""
    cand = pc.take(texts, pa.array(idx))
    token = pc.extract_regex(cand, _NO_DIGIT_BEFORE + f"(?P<n>{_CARD_CORE})" + _NO_DIGIT_AFTER)
    number = pc.replace_substring_regex(pc.struct_field(token, "n"), r"[ -]", "")
    lengths = np.asarray(pc.utf8_length(number).to_numpy(zero_copy_only=False), dtype=np.int64)
    digits = _padded_matrix(number, 19) - np.uint8(ord("0"))
    rows = np.arange(len(idx))
    lead = 19 - lengths
    first = digits[rows, lead].astype(np.int32)
    first4 = first * 1000 + digits[rows, lead + 1] * 100 + digits[rows, lead + 2] * 10 + digits[rows, lead + 3]
    # Issuer ranges: 3 (Amex, Diners, JCB), 4 (Visa), 5 (Mastercard, Maestro), 6 (Discover, Maestro),
    # 2221–2720 (Mastercard); this keeps timestamps (1…, 20…) and most ids from being cards.
    issuer = ((first >= 3) & (first <= 6)) | ((first4 >= 2221) & (first4 <= 2720))
    return np.asarray(issuer & luhn_valid(digits))


def mod97(chars: np.ndarray) -> np.ndarray:
    """``int(rearranged) % 97`` of each row of a matrix of ASCII digits and capitals (ISO 7064)."""
    rem = np.zeros(chars.shape[0], dtype=np.int32)
    letters = chars >= ord("A")
    values = np.where(letters, chars.astype(np.int32) - (ord("A") - 10), chars.astype(np.int32) - ord("0"))
    scale = np.where(letters, 100, 10).astype(np.int32)
    for j in range(chars.shape[1]):  # one vectorised step per character position (bounded by 34)
        rem = (rem * scale[:, j] + values[:, j]) % 97
    return rem


def _iban_hits(texts: pa.Array, idx: np.ndarray) -> np.ndarray:
    """Of the candidate rows ``idx``, those whose first IBAN-shaped token has a valid mod-97 check."""
    cand = pc.take(texts, pa.array(idx))
    token = pc.extract_regex(cand, r"(?:^|[^A-Za-z0-9])" + f"(?P<i>{_IBAN_CORE})" + r"(?:$|[^A-Za-z0-9])")
    iban = pc.replace_substring(pc.struct_field(token, "i"), " ", "")
    iban = pc.utf8_slice_codeunits(iban, 0, 34)
    rearranged = pc.binary_join_element_wise(pc.utf8_slice_codeunits(iban, 4, 34),
                                             pc.utf8_slice_codeunits(iban, 0, 4),
                                             pa.scalar("", pa.large_string()))
    return np.asarray(mod97(_padded_matrix(rearranged, 34)) == 1)


_SLICE = 1 << 20
_THREADS = max(1, min(8, os.cpu_count() or 1))


def _match(texts: pa.Array, pattern: str) -> pa.Array:
    """``match_substring_regex`` (nulls as false), slice by slice on a few threads (Arrow releases the GIL)."""
    if len(texts) <= _SLICE or _THREADS == 1:
        return pc.fill_null(pc.match_substring_regex(texts, pattern), False)
    slices = [texts.slice(start, _SLICE) for start in range(0, len(texts), _SLICE)]
    with ThreadPoolExecutor(_THREADS) as pool:
        parts = list(pool.map(lambda part: pc.fill_null(pc.match_substring_regex(part, pattern), False), slices))
    return pa.concat_arrays(parts)


def _count_true(mask: pa.Array) -> int:
    return int(pc.sum(mask).as_py() or 0)


def _as_text(column: pa.Array) -> pa.Array | None:
    t = column.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return column
    if pa.types.is_string_view(t):
        return column.cast(pa.large_string())
    if pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
        return column.cast(t.value_type)
    if pa.types.is_integer(t):  # card numbers and phone numbers are often stored as integers
        return column.cast(pa.large_string())
    return None


def _stride_sample(column: pa.Array, sample: int | None) -> tuple[pa.Array, int]:
    n = len(column)
    if sample is None or sample <= 0 or n <= sample:
        return column, 1
    stride = math.ceil(n / sample)
    return pc.take(column, pa.array(np.arange(0, n, stride, dtype=np.int64))), stride


def scannable(data_type: pa.DataType, name: str) -> bool:
    """Whether :func:`scan_column` looks at a column of this type and name (text, integers, and dates or
    timestamps whose name suggests a birth date); a caller can skip reading the others."""
    t = data_type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return birth_named(name)
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
            or pa.types.is_integer(t))


def birth_named(name: str) -> bool:
    """Whether a column name suggests a date of birth (see the module doc)."""
    return bool(_BIRTH_NAME.search(name))


def scan_column(column: pa.ChunkedArray | pa.Array, name: str, *, sample: int | None = None) -> ColumnPII:
    """Run every detector over one column; see the module doc for the bounds and the heuristics."""
    if isinstance(column, pa.ChunkedArray):
        t = column.type
        if pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
            # decoded chunk by chunk: combining dictionary chunks first unifies their dictionaries, which
            # took 20 s of a 10M-row column (bench/RESULTS.md) against under 1 s for the decoded strings
            column = column.cast(pa.large_string())
        elif pa.types.is_string(t):  # 32-bit offsets could overflow once the chunks are combined
            column = column.cast(pa.large_string())
        array = column.combine_chunks()
    else:
        array = column
    rows = len(array)
    array, stride = _stride_sample(array, sample)
    scanned = len(array)
    non_null = scanned - array.null_count
    result = ColumnPII(column=name, rows=rows, scanned=scanned, non_null=non_null, stride=stride)
    if non_null == 0:
        return result

    def add(detector: str, mask: np.ndarray | pa.Array, texts: pa.Array | None) -> None:
        hits = _count_true(mask) if isinstance(mask, pa.Array | pa.ChunkedArray) else int(mask.sum())
        if not hits:
            return
        examples: list[str] = []
        if texts is not None:
            where = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False) if isinstance(mask, pa.Array)
                                              else mask, dtype=bool))[:EXAMPLES]
            examples = _examples(detector, pc.take(texts, pa.array(where)))
        result.detections.append(DetectorHits(detector=detector, hits=hits, rate=hits / non_null, examples=examples))

    t = array.type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        if birth_named(name):
            shown = pc.strftime(pc.cast(array, pa.timestamp("s")), format="%Y-%m-%d")
            add("date_of_birth", pc.is_valid(array), shown)
        return result
    texts = _as_text(array)
    if texts is None:
        return result.model_copy(update={"skipped": f"type {t} is not scanned"})
    texts = texts.cast(pa.large_string())
    lengths = pc.utf8_length(texts)
    longest = pc.max(lengths).as_py() or 0
    if longest > MAX_CHARS:
        result.truncated = _count_true(pc.greater(lengths, MAX_CHARS))
        texts = pc.utf8_slice_codeunits(texts, 0, MAX_CHARS)

    birth = birth_named(name)
    # One pass of every detector's pattern at once picks the candidate rows; each detector then runs on
    # those rows only (a row any detector matches also matches the union, so no hit is lost).
    patterns = [*_SIMPLE.values(), _CARD, _IBAN] + ([_DATE] if birth else [])
    candidates = pc.indices_nonzero(_match(texts, "|".join(f"(?:{p})" for p in patterns)))
    if len(candidates) == 0:
        return result
    if len(candidates) < scanned:
        texts = pc.take(texts, candidates)
    for detector, pattern in _SIMPLE.items():
        add(detector, _match(texts, pattern), texts)
    for detector, pattern, check in (("payment_card", _CARD, _card_hits), ("iban", _IBAN, _iban_hits)):
        idx = np.asarray(pc.indices_nonzero(_match(texts, pattern)).to_numpy(zero_copy_only=False), dtype=np.int64)
        if not idx.size:
            continue
        ok = check(texts, idx)
        mask = np.zeros(len(texts), dtype=bool)
        mask[idx[ok]] = True
        add(detector, mask, texts)
    if birth:
        add("date_of_birth", _match(texts, _DATE), texts)
    return result


def scan_table(table: pa.Table, *, sample: int | None = None) -> list[ColumnPII]:
    """:func:`scan_column` over every column of a table."""
    return [scan_column(table.column(i), table.column_names[i], sample=sample) for i in range(table.num_columns)]


# --------------------------------------------------------------------------- the verdict


def _describe(found: Iterable[DetectorHits]) -> str:
    return "; ".join(f"{d.detector} in {d.hits} rows ({d.rate:.2%}), e.g. {', '.join(d.examples) or '—'}"
                     for d in found)


def judge_personal_data(results: Mapping[str, Iterable[ColumnPII]], declared: Mapping[str, Declaration], *,
                        min_rate: float = 0.01) -> list[CheckResult]:
    """One check per column that holds personal data or is declared as such, per dataset role.

    ``results`` maps a dataset role to its column scans; ``declared`` maps a column name to its
    declaration (the same column name in every role). A detector counts when its hit rate is at
    least ``min_rate``; an undeclared column with hits below it warns (a few stray values in free
    text). Undeclared personal data fails; a declaration needs a lawful basis and a retention
    period to pass. Check ids are ``personal_data:<role>:<column>``.
    """
    checks: list[CheckResult] = []
    for role, scans in results.items():
        for scan in scans:
            check_id = f"personal_data:{role}:{scan.column}"
            found, stray = scan.found(min_rate), [d for d in scan.detections if d.hits and d.rate < min_rate]
            observed: dict[str, Any] = {
                "detections": [d.model_dump() for d in scan.detections],
                "scanned": scan.scanned, "non_null": scan.non_null, "stride": scan.stride,
            }
            declaration = declared.get(scan.column)
            if declaration is not None:
                observed["declared"] = declaration.model_dump()
                missing = [f for f in ("lawful_basis", "retention") if not (getattr(declaration, f) or "").strip()]
                if missing:
                    checks.append(CheckResult(
                        id=check_id, status=Status.FAIL, observed=observed, threshold="lawful_basis and retention",
                        message=f"declared personal data without {' and '.join(missing)}"
                        + (f": {_describe(found + stray)}" if found or stray else "")))
                else:
                    checks.append(CheckResult(
                        id=check_id, status=Status.PASS, observed=observed, threshold="lawful_basis and retention",
                        message=f"declared personal data (lawful basis {declaration.lawful_basis}, "
                        f"retention {declaration.retention})"))
            elif found:
                checks.append(CheckResult(
                    id=check_id, status=Status.FAIL, observed=observed, threshold={"min_rate": min_rate},
                    message=f"undeclared personal data: {_describe(found)}"))
            elif stray:
                checks.append(CheckResult(
                    id=check_id, status=Status.WARN, observed=observed, threshold={"min_rate": min_rate},
                    message=f"possible personal data below the rate of {min_rate:.2%}: {_describe(stray)}"))
    return checks
