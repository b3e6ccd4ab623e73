"""Personal-data detectors of the compliance_review gate: positives, look-alikes, masking, verdicts."""

from __future__ import annotations

import datetime
import time

import numpy as np
import pyarrow as pa
import pytest

from gates.base import Status
from gates.compliance_review.personal_data import (
    MAX_CHARS,
    ColumnPII,
    Declaration,
    birth_named,
    judge_personal_data,
    luhn_valid,
    scan_column,
)


def detectors(values: list[str | None], name: str = "text") -> dict[str, int]:
    result = scan_column(pa.array(values, pa.string()), name)
    return {d.detector: d.hits for d in result.detections}


@pytest.mark.parametrize(("value", "detector"), [
    ("john.doe@example.com", "email"),
    ("contact: a.b+tag@mail.example.co.uk today", "email"),
    ("+15551234567", "phone"),
    ("call +44 20 7946 0958", "phone"),
    ("(555) 123-4567", "phone"),
    ("555-123-4567", "phone"),
    ("020 7946 0958", "phone"),
    ("123-45-6789", "ssn"),
    ("4111 1111 1111 1111", "payment_card"),
    ("5500-0000-0000-0004", "payment_card"),
    ("378282246310005", "payment_card"),
    ("GB82 WEST 1234 5698 7654 32", "iban"),
    ("DE89370400440532013000", "iban"),
    ("10.0.0.1", "ipv4"),
    ("from 192.168.1.254:8080", "ipv4"),
    ("2001:db8::1", "ipv6"),
    ("fe80:0000:0000:0000:0202:b3ff:fe1e:8329", "ipv6"),
])
def test_each_detector_finds_its_positive(value: str, detector: str) -> None:
    assert detector in detectors([value])


@pytest.mark.parametrize(("value", "detector"), [
    ("john.doe at example dot com", "email"),
    ("order 20240115103000", "phone"),
    ("15551234567", "phone"),  # bare digits: no +, no national form
    ("2024-01-15 10:30:00", "phone"),
    ("000-12-3456", "ssn"),
    ("666-12-3456", "ssn"),
    ("912-12-3456", "ssn"),
    ("123-00-4567", "ssn"),
    ("123-45-0000", "ssn"),
    ("4111 1111 1111 1112", "payment_card"),  # Luhn fails
    ("order 20240115103000", "payment_card"),  # timestamp-like id
    ("1700000000000", "payment_card"),  # epoch milliseconds
    ("ORD-123456789012", "payment_card"),  # 12 digits
    ("12345678901234567890123", "payment_card"),  # too long
    ("GB83 WEST 1234 5698 7654 32", "iban"),  # check digits wrong
    ("DE88370400440532013000", "iban"),
    ("256.1.1.1", "ipv4"),
    ("version 1.2.3", "ipv4"),
    ("10:30:00", "ipv6"),
    ("hello", "email"),
])
def test_look_alikes_and_invalid_values_are_not_flagged(value: str, detector: str) -> None:
    assert detector not in detectors([value])


def test_luhn_on_a_digit_matrix() -> None:
    digits = np.array([[int(c) for c in "4111111111111111"], [int(c) for c in "4111111111111112"]])
    assert luhn_valid(digits).tolist() == [True, False]


def test_luhn_and_iban_checks_are_per_row_in_a_mixed_column() -> None:
    values = ["4111 1111 1111 1111", "4111 1111 1111 1112", "GB82 WEST 1234 5698 7654 32",
              "GB83 WEST 1234 5698 7654 32", "pay 4012888888881881 now", None]
    assert detectors(values) == {"payment_card": 2, "iban": 1}


def test_dates_of_birth_need_a_birth_name() -> None:
    for name in ("dob", "date_of_birth", "BirthDate", "born_on", "customer_dob"):
        assert birth_named(name), name
    for name in ("doberman", "created_at", "date", "reborn"):
        assert not birth_named(name), name
    assert detectors(["1980-04-12", "12/04/1980", None], name="date_of_birth") == {"date_of_birth": 2}
    assert detectors(["1980-04-12", "12/04/1980"], name="created") == {}
    dates = pa.array([datetime.date(1980, 4, 12), None, datetime.date(1975, 1, 2)])
    dob = scan_column(dates, "dob")
    assert [(d.detector, d.hits, d.rate) for d in dob.detections] == [("date_of_birth", 2, 1.0)]
    assert dob.detections[0].examples == ["****-**-**", "****-**-**"]
    assert scan_column(dates, "signup_date").detections == []


RAW = ["john.doe@example.com", "+44 20 7946 0958", "123-45-6789", "4111 1111 1111 1111",
       "GB82 WEST 1234 5698 7654 32", "192.168.1.254", "2001:db8::1", "1980-04-12"]
EXPECTED_MASKS = {"email": "j***@e***.com", "ssn": "***-**-6789", "payment_card": "****-****-****-1111",
                  "iban": "GB** **** … 5432", "ipv4": "192.*.*.*"}


def test_examples_are_masked_everywhere() -> None:
    result = scan_column(pa.array(RAW * 5, pa.string()), "date_of_birth")
    by_detector = {d.detector: d for d in result.detections}
    for detector, mask in EXPECTED_MASKS.items():
        assert by_detector[detector].examples[0] == mask
        assert len(by_detector[detector].examples) == 3
    checks = judge_personal_data({"training": [result]}, {})
    texts = [str(result), repr(result), result.model_dump_json()]
    texts += [c.model_dump_json() for c in checks] + [str(c) for c in checks] + [c.message for c in checks]
    for raw in RAW:
        compact = raw.replace(" ", "")
        for text in texts:
            assert raw not in text and compact not in text, (raw, text)
    for needle in ("john", "doe@", "7946", "WEST", "168", "db8", "1980"):
        assert all(needle not in text for text in texts), needle


def test_nulls_are_neither_hits_nor_in_the_rate() -> None:
    result = scan_column(pa.array(["a@b.example.com", None, None, "nothing"], pa.string()), "c")
    assert result.non_null == 2
    assert [(d.detector, d.hits, d.rate) for d in result.detections] == [("email", 1, 0.5)]
    empty = scan_column(pa.array([None, None], pa.string()), "c")
    assert empty.non_null == 0 and empty.detections == []
    chunked = scan_column(pa.chunked_array([pa.array(["x@y.example.org", None]), pa.array([None, "z"])]), "c")
    assert chunked.non_null == 2 and chunked.detections[0].hits == 1


def test_non_text_columns_are_skipped_and_integers_are_scanned() -> None:
    assert scan_column(pa.array([1.5, 2.5]), "f").skipped
    cards = scan_column(pa.array([4111111111111111, 4111111111111112, None]), "card_number")
    assert [(d.detector, d.hits) for d in cards.detections] == [("payment_card", 1)]


def test_long_values_are_truncated_before_matching() -> None:
    late = "x" * (MAX_CHARS + 10) + " a@b.example.com"
    early = "a@b.example.com " + "x" * (MAX_CHARS + 10)
    result = scan_column(pa.array([late, early], pa.string()), "c")
    assert result.truncated == 2
    assert [(d.detector, d.hits) for d in result.detections] == [("email", 1)]


def test_sample_is_a_deterministic_stride() -> None:
    values = ["a@b.example.com" if i % 10 == 0 else "none" for i in range(1000)]
    result = scan_column(pa.array(values, pa.string()), "c", sample=100)
    assert (result.rows, result.scanned, result.stride) == (1000, 100, 10)
    assert result.detections[0].hits == 100 and result.detections[0].rate == 1.0
    assert scan_column(pa.array(values, pa.string()), "c", sample=100) == result


def _scan(name: str, values: list[str | None]) -> ColumnPII:
    return scan_column(pa.array(values, pa.string()), name)


def test_undeclared_personal_data_fails_naming_detector_rate_and_examples() -> None:
    checks = judge_personal_data({"training": [_scan("contact", ["john.doe@example.com", "x"]),
                                               _scan("notes", ["nothing here", "at all"])]}, {})
    assert [(c.id, c.status) for c in checks] == [("personal_data:training:contact", Status.FAIL)]
    assert "email" in checks[0].message and "50.00%" in checks[0].message and "j***@e***.com" in checks[0].message


def test_declared_with_basis_and_retention_passes_without_retention_fails() -> None:
    scans = {"training": [_scan("contact", ["john.doe@example.com"]), _scan("phone", ["+15551234567"])]}
    declared = {"contact": Declaration(lawful_basis="contract", retention="P2Y"),
                "phone": Declaration(lawful_basis="consent")}
    checks = {c.id: c for c in judge_personal_data(scans, declared)}
    assert checks["personal_data:training:contact"].status == Status.PASS
    assert checks["personal_data:training:phone"].status == Status.FAIL
    assert "retention" in checks["personal_data:training:phone"].message
    no_basis = judge_personal_data(scans, {"contact": Declaration(retention="P2Y"),
                                           "phone": Declaration(lawful_basis="consent", retention="P1Y")})
    assert [c.status for c in no_basis] == [Status.FAIL, Status.PASS]


def test_stray_hits_below_min_rate_warn() -> None:
    values = ["a@b.example.com"] + ["plain"] * 999
    checks = judge_personal_data({"eval": [_scan("notes", values)]}, {}, min_rate=0.01)
    assert [(c.id, c.status) for c in checks] == [("personal_data:eval:notes", Status.WARN)]
    assert judge_personal_data({"eval": [_scan("notes", values)]}, {}, min_rate=0.0)[0].status == Status.FAIL


def test_speed_sanity_on_a_million_strings() -> None:
    base = ["john.doe@example.com", "order 20240115103000", "4111 1111 1111 1111", "hello world",
            "2024-01-15 10:30:00", None, "GB82 WEST 1234 5698 7654 32", "10.0.0.1", "free text", "ORD-1234567890"]
    idx = np.random.default_rng(0).integers(0, len(base), 1_000_000)
    column = pa.array(base, pa.string()).take(pa.array(idx))
    started = time.perf_counter()
    result = scan_column(column, "c")
    print(f"scan_column over 1M strings: {time.perf_counter() - started:.2f}s")
    hits = {d.detector: d.hits for d in result.detections}
    assert hits["email"] == int((idx == 0).sum()) and hits["payment_card"] == int((idx == 2).sum())
    assert hits["iban"] == int((idx == 6).sum()) and "phone" not in hits


def test_dictionary_chunks_scan_like_the_decoded_strings() -> None:
    values = ["john.doe@example.com", "plain text", None, "4111 1111 1111 1111", "jane@example.org"] * 50
    chunks = [pa.array(values[:100]).dictionary_encode(), pa.array(values[100:]).dictionary_encode()]
    as_dictionary = scan_column(pa.chunked_array(chunks), "contact")
    as_strings = scan_column(pa.chunked_array([pa.array(values[:100]), pa.array(values[100:])]), "contact")
    assert as_dictionary == as_strings
    assert {d.detector: d.hits for d in as_strings.detections} == {"email": 100, "payment_card": 50}


@pytest.mark.parametrize(("data_type", "name", "expected"), [
    (pa.string(), "notes", True), (pa.large_string(), "notes", True), (pa.int64(), "phone", True),
    (pa.dictionary(pa.int32(), pa.string()), "plan", True), (pa.float64(), "spend", False),
    (pa.bool_(), "autopay", False), (pa.date32(), "signup", False), (pa.date32(), "date_of_birth", True),
    (pa.timestamp("us"), "born_at", True),
])
def test_scannable_says_which_columns_a_scan_reads(data_type: pa.DataType, name: str, expected: bool) -> None:
    from gates.compliance_review.personal_data import scannable

    assert scannable(data_type, name) is expected
