"""security_scan dependencies: pinned requirements parsed as pip reads them, matched against OSV records
exactly as the OSV schema evaluates them. Every OSV record here is written in the test, nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gates.security_scan.advisories import (
    NO_DATABASE_MESSAGE,
    AdvisoryDatabaseError,
    AdvisoryDB,
    cvss3_base_score,
    cvss_rating,
    open_advisory_db,
)
from gates.security_scan.findings import Severity
from gates.security_scan.requirements import (
    Requirement,
    normalize_name,
    parse_requirements,
    parse_requirements_text,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
CRITICAL_VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"  # 9.8
XSS_VECTOR = "CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N"  # 6.1
V4_VECTOR = "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"


# --------------------------------------------------------------------------- fixtures


def osv(id: str, package: str = "demo", *, ranges: list[dict[str, Any]] | None = None,
        versions: list[str] | None = None, ecosystem: str = "PyPI", modified: str | None = "2026-11-30T00:00:00Z",
        **extra: Any) -> dict[str, Any]:
    affected: dict[str, Any] = {"package": {"ecosystem": ecosystem, "name": package}}
    if ranges is not None:
        affected["ranges"] = ranges
    if versions is not None:
        affected["versions"] = versions
    record: dict[str, Any] = {"schema_version": "1.6.0", "id": id, "affected": [affected], **extra}
    if modified is not None:
        record["modified"] = modified
    return record


def eco(*events: dict[str, str], kind: str = "ECOSYSTEM") -> dict[str, Any]:
    return {"type": kind, "events": list(events)}


def write_dir(root: Path, records: list[dict[str, Any]]) -> Path:
    folder = root / "osv"
    folder.mkdir()
    for i, record in enumerate(records):
        sub = folder / ("nested" if i % 2 else "")
        sub.mkdir(exist_ok=True)
        (sub / f"{record['id']}.json").write_text(json.dumps(record))
    return folder


def write_zip(root: Path, records: list[dict[str, Any]]) -> Path:
    path = root / "all.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for record in records:
            archive.writestr(f"{record['id']}.json", json.dumps(record))
    return path


def req(name: str, version: str | None, line: int = 1) -> Requirement:
    return Requirement(name=normalize_name(name), file="requirements.txt", line=line, version=version)


def affected_ids(tmp_path: Path, records: list[dict[str, Any]], version: str, name: str = "demo") -> list[str]:
    db = open_advisory_db(write_zip(tmp_path, records))
    return [hit.advisory_id for hit in db.check([req(name, version)]).hits]


def check_one(tmp_path: Path, record: dict[str, Any], version: str) -> bool:
    folder = tmp_path / f"case-{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    return affected_ids(folder, [record], version) == [record["id"]]


# --------------------------------------------------------------------------- ranges


@pytest.mark.parametrize(("version", "expected"), [
    ("0.9", False), ("1.0.dev1", False), ("1.0rc1", False), ("1.0", True), ("1.0.0", True), ("1.5", True),
    ("2.0rc1", True), ("2.0.dev0", True), ("2.0", False), ("2.0.0", False), ("2.0.post1", False), ("2.1", False),
])
def test_introduced_is_inclusive_and_fixed_exclusive(tmp_path: Path, version: str, expected: bool) -> None:
    record = osv("GHSA-edge", ranges=[eco({"introduced": "1.0"}, {"fixed": "2.0"})])
    assert check_one(tmp_path, record, version) is expected


@pytest.mark.parametrize(("version", "expected"), [
    ("0.0.1", True), ("1.4", True), ("1.4.0", True), ("1.4rc1", True), ("1.4.post1", False), ("1.4.1", False),
    ("1.5rc1", False),
    ("1.4+local", False),  # PEP 440 orders a local version above its public one: past last_affected
])
def test_last_affected_is_inclusive(tmp_path: Path, version: str, expected: bool) -> None:
    record = osv("PYSEC-last", ranges=[eco({"introduced": "0"}, {"last_affected": "1.4"})])
    assert check_one(tmp_path, record, version) is expected


@pytest.mark.parametrize("version", ["0", "0.0.0", "0.dev0", "0a1", "1!0.0", "99.0"])
def test_introduced_zero_means_from_the_start(tmp_path: Path, version: str) -> None:
    assert check_one(tmp_path, osv("GHSA-zero", ranges=[eco({"introduced": "0"})]), version)


@pytest.mark.parametrize(("version", "expected", "fixed_in"), [
    ("0.9", False, None), ("1.0", True, "1.2"), ("1.1.9", True, "1.2"), ("1.2", False, None),
    ("1.9", False, None), ("2.0", True, "2.3"), ("2.2.9", True, "2.3"), ("2.3", False, None), ("3.0", True, None),
])
def test_several_introduced_fixed_pairs_in_one_range(tmp_path: Path, version: str, expected: bool,
                                                     fixed_in: str | None) -> None:
    # events deliberately out of order: they are sorted before being walked
    record = osv("GHSA-pairs", ranges=[eco({"fixed": "2.3"}, {"introduced": "3.0"}, {"introduced": "1.0"},
                                           {"fixed": "1.2"}, {"introduced": "2.0"})])
    db = open_advisory_db(write_zip(tmp_path, [record]))
    hits = db.check([req("demo", version)]).hits
    assert bool(hits) is expected
    if hits:
        assert hits[0].fixed_in == fixed_in


def test_several_ranges_and_entries_any_one_suffices(tmp_path: Path) -> None:
    record = osv("GHSA-multi", ranges=[eco({"introduced": "1.0"}, {"fixed": "1.1"}),
                                       eco({"introduced": "3.0"}, {"fixed": "3.0.5"})])
    record["affected"].append({"package": {"ecosystem": "PyPI", "name": "demo"}, "versions": ["5.0"]})
    db = open_advisory_db(write_zip(tmp_path, [record]))
    for version, expected in [("1.0", True), ("2.0", False), ("3.0.4", True), ("3.0.5", False), ("5.0", True),
                              ("5.0.0", True), ("5.0.1", False)]:
        assert bool(db.check([req("demo", version)]).hits) is expected, version


def test_fixed_in_is_the_lowest_fix_above_the_version_across_ranges(tmp_path: Path) -> None:
    record = osv("GHSA-fix", ranges=[eco({"introduced": "0"}, {"fixed": "2.5"}),
                                     eco({"introduced": "1.0"}, {"fixed": "1.8"}, {"introduced": "1.9"},
                                         {"fixed": "2.1"})])
    db = open_advisory_db(write_zip(tmp_path, [record]))
    assert db.check([req("demo", "1.5")]).hits[0].fixed_in == "1.8"
    assert db.check([req("demo", "1.8.5")]).hits[0].fixed_in == "2.1"  # 1.8 is below: not a fix for it
    assert db.check([req("demo", "2.2")]).hits[0].fixed_in == "2.5"


@pytest.mark.parametrize(("version", "expected"), [("1.0", True), ("1.0.0", True), ("1.1", True), ("1.0.1", False),
                                                   ("1.2", False)])
def test_versions_list_only(tmp_path: Path, version: str, expected: bool) -> None:
    assert check_one(tmp_path, osv("PYSEC-list", versions=["1.0", "1.1"]), version) is expected


def test_pep440_ordering_of_pre_post_dev_and_local(tmp_path: Path) -> None:
    record = osv("GHSA-pep440", ranges=[eco({"introduced": "1.0"}, {"fixed": "1.0.post1"})])
    assert [v for v in ["1.0.dev1", "1.0rc1", "1.0", "1.0+cpu", "1.0.post1", "1.0.post1.dev0", "1.1"]
            if check_one(tmp_path, record, v)] == ["1.0", "1.0+cpu", "1.0.post1.dev0"]
    before_final = osv("GHSA-pre", ranges=[eco({"introduced": "0"}, {"fixed": "1.0"})])
    assert check_one(tmp_path, before_final, "1.0rc1") and check_one(tmp_path, before_final, "1.0.dev5")
    assert not check_one(tmp_path, before_final, "1.0+local")


def test_epoch_orders_above_any_release_without_one(tmp_path: Path) -> None:
    record = osv("GHSA-epoch", ranges=[eco({"introduced": "0"}, {"fixed": "2.0"})])
    assert check_one(tmp_path, record, "1.9") and not check_one(tmp_path, record, "1!0.1")
    epoch = osv("GHSA-epoch1", ranges=[eco({"introduced": "1!0"}, {"fixed": "1!1.0"})])
    assert check_one(tmp_path, epoch, "1!0.5") and not check_one(tmp_path, epoch, "3.0")


def test_limit_bounds_the_range_and_star_is_infinity(tmp_path: Path) -> None:
    record = osv("GHSA-limit", ranges=[eco({"introduced": "0"}, {"limit": "2.0"})])
    assert check_one(tmp_path, record, "1.9") and not check_one(tmp_path, record, "2.0")
    star = osv("GHSA-star", ranges=[eco({"introduced": "1.0"}, {"limit": "*"})])
    assert check_one(tmp_path, star, "100") and not check_one(tmp_path, star, "0.9")


def test_introduced_and_fixed_at_the_same_version_affect_nothing_there(tmp_path: Path) -> None:
    record = osv("GHSA-tie", ranges=[eco({"fixed": "1.0"}, {"introduced": "1.0"})])
    assert not check_one(tmp_path, record, "1.0")


def test_semver_ranges_use_semver_precedence(tmp_path: Path) -> None:
    record = osv("GHSA-semver", ranges=[eco({"introduced": "1.0.0-alpha"}, {"fixed": "1.0.0"}, kind="SEMVER")])
    db = open_advisory_db(write_zip(tmp_path, [record]))
    assert db.check([req("demo", "1.0.0-rc.1")]).hits  # a SemVer pre-release, below 1.0.0
    assert not db.check([req("demo", "1.0.0")]).hits
    assert not db.check([req("demo", "1.0")]).hits  # 1.0 pads to 1.0.0
    report = db.check([req("demo", "1.0rc1")])  # PEP 440 but no SemVer: undecided, said so
    assert not report.hits and [n.kind for n in report.notes] == ["unevaluable"]


def test_git_ranges_are_noted_not_evaluated(tmp_path: Path) -> None:
    record = osv("OSV-git", ranges=[{"type": "GIT", "repo": "https://example.com/r.git",
                                     "events": [{"introduced": "0"}, {"fixed": "a" * 40}]}])
    report = open_advisory_db(write_zip(tmp_path, [record])).check([req("demo", "1.0")])
    assert not report.hits
    assert [(n.kind, n.severity, n.advisory_id) for n in report.notes] == [("git-range", None, "OSV-git")]


def test_invalid_versions_are_findings_never_crashes(tmp_path: Path) -> None:
    records = [osv("GHSA-a", ranges=[eco({"introduced": "0"}, {"fixed": "2.0"})]),
               osv("GHSA-b", package="other", ranges=[eco({"introduced": "not a version!"}, {"fixed": "2.0"})]),
               osv("GHSA-c", package="listed", versions=["weird-1"])]
    db = open_advisory_db(write_zip(tmp_path, records))
    report = db.check([req("demo", "weird-1"), req("other", "1.0"), req("listed", "weird-1")])
    kinds = {(n.kind, n.package): n.severity for n in report.notes}
    assert kinds == {("invalid-version", "demo"): Severity.ERROR, ("unevaluable", "other"): Severity.WARN}
    assert [h.advisory_id for h in report.hits] == ["GHSA-c"]  # a non-PEP 440 version still matches versions[]


def test_withdrawn_records_are_skipped(tmp_path: Path) -> None:
    records = [osv("GHSA-withdrawn", ranges=[eco({"introduced": "0"})], withdrawn="2026-01-01T00:00:00Z"),
               osv("GHSA-live", ranges=[eco({"introduced": "0"})])]
    db = open_advisory_db(write_zip(tmp_path, records))
    assert [h.advisory_id for h in db.check([req("demo", "1.0")]).hits] == ["GHSA-live"]
    assert (db.withdrawn, db.advisories) == (1, 1)


def test_other_ecosystems_and_packages_do_not_match(tmp_path: Path) -> None:
    records = [osv("GHSA-npm", ecosystem="npm", ranges=[eco({"introduced": "0"})]),
               osv("GHSA-other", package="demo-extra", ranges=[eco({"introduced": "0"})])]
    assert affected_ids(tmp_path, records, "1.0") == []


def test_names_are_normalised_both_ways(tmp_path: Path) -> None:
    record = osv("GHSA-name", package="Foo_Bar", ranges=[eco({"introduced": "0"}, {"fixed": "2"})])
    db = open_advisory_db(write_zip(tmp_path, [record]))
    for name in ("foo-bar", "FOO.bar", "foo__bar", "Foo_Bar"):
        hits = db.check([req(name, "1.0")]).hits
        assert [(h.package, h.advisory_id) for h in hits] == [("foo-bar", "GHSA-name")], name
    parsed = parse_requirements_text("Foo_Bar==1.0\n")
    assert [h.advisory_id for h in db.check(parsed.pinned).hits] == ["GHSA-name"]


# --------------------------------------------------------------------------- what a hit says


def test_a_hit_names_everything_a_reviewer_needs(tmp_path: Path) -> None:
    record = osv("GHSA-full", package="torch", ranges=[eco({"introduced": "0"}, {"fixed": "2.6.0"})],
                 aliases=["CVE-2025-32434", "PYSEC-2025-41"], summary="torch.load with weights_only=True runs code",
                 severity=[{"type": "CVSS_V3", "score": CRITICAL_VECTOR}, {"type": "CVSS_V4", "score": V4_VECTOR}],
                 database_specific={"severity": "CRITICAL", "cwe_ids": ["CWE-502"]})
    parsed = parse_requirements_text("numpy==2.0.0\n\ntorch==2.5.1  # pinned\n")
    hit = open_advisory_db(write_zip(tmp_path, [record])).check(parsed.pinned).hits[0]
    assert (hit.package, hit.version, hit.advisory_id, hit.fixed_in) == ("torch", "2.5.1", "GHSA-full", "2.6.0")
    assert hit.aliases == ("CVE-2025-32434", "PYSEC-2025-41")
    assert hit.summary == "torch.load with weights_only=True runs code"
    assert (hit.severity, hit.level, hit.cvss_score) == ("CRITICAL", "critical", 9.8)
    assert hit.cvss_vectors[0] == CRITICAL_VECTOR and hit.cvss_vectors[1].startswith("CVSS:4.0/")
    assert (hit.file, hit.line, hit.where) == ("requirements.txt", 3, "requirements.txt:3")


def test_severity_from_the_cvss_vector_when_the_database_gives_none(tmp_path: Path) -> None:
    records = [osv("PYSEC-cvss", ranges=[eco({"introduced": "0"})],
                   affected_severity=None, severity=[{"type": "CVSS_V3", "score": XSS_VECTOR}]),
               osv("PYSEC-none", ranges=[eco({"introduced": "0"})], details="Line one.\nMore.")]
    records[0].pop("affected_severity")
    hits = {h.advisory_id: h for h in open_advisory_db(write_zip(tmp_path, records)).check([req("demo", "1")]).hits}
    assert (hits["PYSEC-cvss"].cvss_score, hits["PYSEC-cvss"].severity, hits["PYSEC-cvss"].level) == \
        (6.1, "MEDIUM", "moderate")
    assert (hits["PYSEC-none"].severity, hits["PYSEC-none"].level, hits["PYSEC-none"].summary) == \
        (None, None, "Line one.")


def test_severity_of_an_affected_entry_counts(tmp_path: Path) -> None:
    record = osv("GHSA-entry", ranges=[eco({"introduced": "0"})])
    record["affected"][0]["severity"] = [{"type": "CVSS_V3", "score": CRITICAL_VECTOR}]
    hit = open_advisory_db(write_zip(tmp_path, [record])).check([req("demo", "1")]).hits[0]
    assert (hit.cvss_score, hit.severity) == (9.8, "CRITICAL")


@pytest.mark.parametrize(("vector", "score"), [
    (CRITICAL_VECTOR, 9.8), (XSS_VECTOR, 6.1),
    ("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:C/C:H/I:N/A:N", 6.8),
    ("CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:H/A:H", 7.8),
    ("CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:C/C:H/I:H/A:H", 9.1),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:U/C:L/I:N/A:N", 4.3),
    ("CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O", 9.8),  # temporal metrics do not change the base
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", None), ("CVSS:2.0/AV:N", None), ("AV:N/AC:L/Au:N/C:P/I:P/A:P", None),
    ("CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", None),
])
def test_cvss3_base_score(vector: str, score: float | None) -> None:
    assert cvss3_base_score(vector) == score


def test_cvss_rating_bands() -> None:
    assert [cvss_rating(s) for s in (0, 0.1, 3.9, 4.0, 6.9, 7.0, 8.9, 9.0, 10)] == [
        "NONE", "LOW", "LOW", "MEDIUM", "MEDIUM", "HIGH", "HIGH", "CRITICAL", "CRITICAL"]


# --------------------------------------------------------------------------- the database


def sample_records() -> list[dict[str, Any]]:
    return [
        osv("GHSA-1", package="numpy", ranges=[eco({"introduced": "0"}, {"fixed": "1.22.0"})],
            aliases=["CVE-2021-41495"], modified="2026-11-20T10:00:00.123456789Z"),
        osv("GHSA-2", package="Pillow", ranges=[eco({"introduced": "9.0"}, {"fixed": "10.0.1"})],
            database_specific={"severity": "HIGH"}, modified="2026-11-29T08:30:00Z"),
        osv("PYSEC-3", package="pyyaml", versions=["5.3", "5.3.1"], modified="2026-10-01T00:00:00Z"),
        osv("GHSA-4", package="numpy", ranges=[eco({"introduced": "0"})], withdrawn="2026-11-01T00:00:00Z",
            modified="2026-11-01T00:00:00Z"),
        osv("RUSTSEC-5", package="numpy", ecosystem="crates.io", ranges=[eco({"introduced": "0"})],
            modified="2026-11-02T00:00:00Z"),
    ]


def test_zip_and_directory_load_the_same(tmp_path: Path) -> None:
    records = sample_records()
    requirements = [req("numpy", "1.21.0"), req("pillow", "9.5.0"), req("PyYAML", "5.3.1"), req("requests", "2.0")]
    by_dir = open_advisory_db(write_dir(tmp_path, records))
    by_zip = open_advisory_db(write_zip(tmp_path, records))
    eager = open_advisory_db(write_zip(tmp_path, records), packages=["NumPy", "pillow", "pyyaml", "requests"])
    assert (by_dir.format, by_zip.format) == ("dir", "zip")
    reports = [db.check(requirements) for db in (by_dir, by_zip, eager)]
    assert reports[0] == reports[1] == reports[2]
    assert sorted(h.advisory_id for h in reports[0].hits) == ["GHSA-1", "GHSA-2", "PYSEC-3"]
    assert reports[0].checked == ["numpy==1.21.0", "pillow==9.5.0", "pyyaml==5.3.1", "requests==2.0"]
    for db in (by_dir, by_zip):
        assert (db.records, db.advisories, db.withdrawn, db.packages) == (5, 3, 1, 3)
        assert db.newest_modified == datetime(2026, 11, 29, 8, 30, tzinfo=UTC)


def test_database_age_is_its_newest_modified_and_warns_past_the_limit(tmp_path: Path) -> None:
    db = open_advisory_db(write_zip(tmp_path, sample_records()))
    assert db.updated_at == datetime(2026, 11, 29, 8, 30, tzinfo=UTC)
    assert db.older_than(timedelta(days=7), NOW) is None
    stale = db.older_than(timedelta(days=1), NOW)
    assert stale is not None and stale.kind == "stale" and stale.severity is Severity.WARN
    assert "2.1 days" in stale.message and "2026-11-29T08:30:00+00:00" in stale.message
    evidence = db.evidence(NOW, timedelta(days=7))
    assert evidence["newest_modified"] == "2026-11-29T08:30:00+00:00"
    assert evidence["age_seconds"] == round((NOW - datetime(2026, 11, 29, 8, 30, tzinfo=UTC)).total_seconds())
    assert evidence["max_age_seconds"] == 7 * 86400 and evidence["format"] == "zip"
    assert (evidence["advisories"], evidence["withdrawn"]) == (3, 1)


def test_database_age_falls_back_to_the_file_mtime(tmp_path: Path) -> None:
    records = [osv("GHSA-x", ranges=[eco({"introduced": "0"})], modified=None)]
    path = write_zip(tmp_path, records)
    ten_days_ago = (NOW - timedelta(days=10)).timestamp()
    os.utime(path, (ten_days_ago, ten_days_ago))
    db = open_advisory_db(path)
    assert db.newest_modified is None and db.updated_at == NOW - timedelta(days=10)
    stale = db.older_than(timedelta(days=7), NOW)
    assert stale is not None and "file modified" in stale.message
    folder = write_dir(tmp_path, records)
    for file in folder.rglob("*.json"):
        os.utime(file, (ten_days_ago, ten_days_ago))
    assert open_advisory_db(folder).updated_at == NOW - timedelta(days=10)


def test_unreadable_records_are_noted_and_the_rest_is_used(tmp_path: Path) -> None:
    path = tmp_path / "all.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("broken.json", "{not json")
        archive.writestr("list.json", "[]")
        huge = osv("GHSA-huge", summary="x" * 5000, ranges=[eco({"introduced": "0"})])
        archive.writestr("huge.json", json.dumps(huge))
        archive.writestr("GHSA-ok.json", json.dumps(osv("GHSA-ok", ranges=[eco({"introduced": "0"})])))
        archive.writestr("README.md", "not a record")
    db = open_advisory_db(path, max_record_bytes=2000)
    assert sorted((n.kind, n.message.split()[2]) for n in db.notes) == [
        ("unreadable", "broken.json"), ("unreadable", "huge.json"), ("unreadable", "list.json")]
    assert all(n.severity is Severity.WARN for n in db.notes)
    assert [h.advisory_id for h in db.check([req("demo", "1")]).hits] == ["GHSA-ok"]


def test_a_database_without_the_ecosystem_is_an_error_note(tmp_path: Path) -> None:
    db = open_advisory_db(write_zip(tmp_path, [osv("GO-1", ecosystem="Go", ranges=[eco({"introduced": "0"})])]))
    assert [(n.kind, n.severity) for n in db.notes] == [("empty", Severity.ERROR)]


def test_a_database_that_cannot_be_read_raises_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(AdvisoryDatabaseError, match="does not exist"):
        open_advisory_db(tmp_path / "nowhere.zip")
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(AdvisoryDatabaseError, match="neither a folder nor a zip"):
        open_advisory_db(tmp_path / "plain.txt")
    with pytest.raises(AdvisoryDatabaseError, match="more than 2 records"):
        open_advisory_db(write_zip(tmp_path, sample_records()), max_records=2)
    assert "CLEARANCE_ADVISORY_DB" in NO_DATABASE_MESSAGE


def test_records_are_reread_per_package_not_kept(tmp_path: Path) -> None:
    db = open_advisory_db(write_zip(tmp_path, sample_records()))
    assert isinstance(db, AdvisoryDB) and db._cache == {}  # only the index after loading
    assert [a.id for a in db.advisories_for("NumPy")] == ["GHSA-1"]
    assert list(db._cache) == ["numpy"]


def test_a_record_that_cannot_be_read_again_makes_the_check_an_error(tmp_path: Path) -> None:
    folder = write_dir(tmp_path, sample_records())
    db = open_advisory_db(folder)
    next(folder.rglob("GHSA-2.json")).unlink()  # gone between loading and checking
    report = db.check([req("pillow", "9.5.0"), req("numpy", "1.21.0")])
    assert [h.advisory_id for h in report.hits] == ["GHSA-1"]
    assert [(n.kind, n.severity, n.package) for n in report.notes] == [("unreadable", Severity.ERROR, "pillow")]


# --------------------------------------------------------------------------- requirements


def test_pins_extras_markers_comments_continuations_and_hashes() -> None:
    digest = "a" * 64
    text = "\n".join([
        "# the model's runtime",  # 1
        "Foo_Bar[extra,Other]==1.2.3  # trailing comment",  # 2
        "numpy==2.0.0 \\",  # 3
        f"    --hash=sha256:{digest} \\",  # 4
        f"    --hash sha256:{digest.upper()}",  # 5
        "",  # 6
        'backports.zoneinfo==0.2.1; python_version < "3.9"',  # 7
        'tomli==2.0.1 ; python_version < "3.11" and sys_platform == "linux"',  # 8
        "exact===1.0-custom",  # 9
        "url-frag==1.0 #not-a-comment-without-space",  # 10
    ])
    parsed = parse_requirements_text(text, environment={"python_version": "3.10", "sys_platform": "linux"})
    by_name = {r.name: r for r in parsed.requirements}
    assert parsed.issues == []
    assert [(r.name, r.line) for r in parsed.requirements] == [
        ("foo-bar", 2), ("numpy", 3), ("backports-zoneinfo", 7), ("tomli", 8), ("exact", 9), ("url-frag", 10)]
    assert by_name["foo-bar"].extras == ("Other", "extra") and by_name["foo-bar"].version == "1.2.3"
    assert by_name["numpy"].hashes == (f"sha256:{digest}", f"sha256:{digest}")
    assert (by_name["backports-zoneinfo"].applies, by_name["tomli"].applies) == (False, True)
    assert by_name["exact"].version == "1.0-custom"
    assert [r.name for r in parsed.pinned] == ["foo-bar", "numpy", "tomli", "exact", "url-frag"]
    other = parse_requirements_text(text, environment={"python_version": "3.12", "sys_platform": "darwin"})
    assert [r.name for r in other.pinned] == ["foo-bar", "numpy", "exact", "url-frag"]


def test_markers_default_to_the_running_interpreter() -> None:
    parsed = parse_requirements_text('a==1; python_version >= "3.0"\nb==1; python_version < "3.0"\n')
    assert [r.name for r in parsed.pinned] == ["a"]
    assert parsed.environment["python_version"].startswith("3.")


def test_markers_decide_which_requirement_is_checked(tmp_path: Path) -> None:
    records = [osv("GHSA-old", ranges=[eco({"introduced": "0"}, {"fixed": "2.0"})])]
    db = open_advisory_db(write_zip(tmp_path, records))
    text = 'demo==1.0; python_version < "3.12"\ndemo==2.0; python_version >= "3.12"\n'
    old = parse_requirements_text(text, environment={"python_version": "3.11"})
    new = parse_requirements_text(text, environment={"python_version": "3.12"})
    assert [h.line for h in db.check(old.requirements).hits] == [1]
    assert db.check(new.requirements).hits == []
    assert old.issues == new.issues == []  # one pin per environment is no conflict


@pytest.mark.parametrize(("line", "kind", "severity"), [
    ("requests>=2", "unpinned", Severity.WARN),
    ("requests", "unpinned", Severity.WARN),
    ("requests==2.*", "unpinned", Severity.WARN),
    ("requests>=2,<3", "unpinned", Severity.WARN),
    ("pkg @ https://example.com/pkg-1.0.whl", "unpinned", Severity.WARN),
    ("https://example.com/pkg-1.0.tar.gz", "unpinned", Severity.WARN),
    ("./vendor/pkg", "unpinned", Severity.WARN),
    ("-e git+https://example.com/repo.git#egg=thing", "unpinned", Severity.WARN),
    ("--extra-index-url https://mirror.example/simple", "index", Severity.WARN),
    ("-i https://mirror.example/simple", "index", Severity.WARN),
    ("this is not a requirement", "invalid", Severity.ERROR),
    ("numpy==", "invalid", Severity.ERROR),
    ("numpy==1.0 --hash=md5:abc", "invalid", Severity.ERROR),
    ("numpy==1.0 --hash=sha256:abc", "invalid", Severity.ERROR),
    ("numpy==1.0 --frobnicate", "invalid", Severity.ERROR),
    ("--frobnicate", "invalid", Severity.ERROR),
    ('numpy==1.0; nonsense_var == "1"', "invalid", Severity.ERROR),
    ("-r other.txt", "include", Severity.ERROR),  # text has no folder to read from
])
def test_each_problem_is_a_finding_naming_file_and_line(line: str, kind: str, severity: Severity) -> None:
    parsed = parse_requirements_text(f"ok==1.0\n\n{line}\n", file="bundle/requirements.txt")
    assert [(i.file, i.line, i.kind, i.severity) for i in parsed.issues] == [
        ("bundle/requirements.txt", 3, kind, severity)]
    assert "bundle/requirements.txt:3" in parsed.issues[0].message
    assert [r.name for r in parsed.pinned] == ["ok"]


def test_unpinned_requirements_are_not_checked(tmp_path: Path) -> None:
    db = open_advisory_db(write_zip(tmp_path, [osv("GHSA-x", ranges=[eco({"introduced": "0"})])]))
    parsed = parse_requirements_text("demo>=1\n")
    assert db.check(parsed.requirements).hits == [] and db.check(parsed.requirements).checked == []


def test_credentials_in_urls_are_never_repeated() -> None:
    parsed = parse_requirements_text("-i https://bot:s3cr3t-token@pypi.example/simple\n"
                                     "pkg @ https://bot:s3cr3t-token@files.example/pkg.whl\n"
                                     "https://files.example/other.whl?x=1&access_token=s3cr3t-token#egg=other\n")
    assert "s3cr3t-token" not in repr(parsed)
    assert [r.url for r in parsed.requirements] == [
        "https://***@files.example/pkg.whl", "https://files.example/other.whl?x=1&access_token=***#egg=other"]
    assert "https://***@pypi.example/simple" in parsed.issues[0].message


def test_conflicting_pins_are_an_error() -> None:
    parsed = parse_requirements_text("a==1.0\nA==1.0.0\nb==1\nb==2\n")
    assert [(i.line, i.kind, i.name) for i in parsed.issues] == [(4, "conflict", "b")]


def test_includes_resolve_inside_the_bundle_only(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    (bundle / "reqs").mkdir(parents=True)
    (bundle / "requirements.txt").write_text("-r reqs/base.txt\n--constraint reqs/constraints.txt\nscipy\n"
                                             "-r ../outside.txt\n-r /etc/passwd\n-r https://example.com/r.txt\n"
                                             "-r requirements.txt\n-r reqs/missing.txt\n")
    (bundle / "reqs" / "base.txt").write_text("numpy==2.0.0\n\nrequests\n")
    (bundle / "reqs" / "constraints.txt").write_text("scipy==1.13.0\nunrelated==9.9\n")
    (tmp_path / "outside.txt").write_text("evil==1.0\n")
    parsed = parse_requirements(bundle / "requirements.txt")
    assert parsed.files == ["requirements.txt", "reqs/base.txt", "reqs/constraints.txt"]
    assert [(r.name, r.version, r.where, r.pinned_by) for r in parsed.requirements] == [
        ("numpy", "2.0.0", "reqs/base.txt:1", None),
        ("requests", None, "reqs/base.txt:3", None),
        ("scipy", "1.13.0", "requirements.txt:3", "reqs/constraints.txt:1"),
    ]
    issues = [(i.where, i.kind) for i in parsed.issues]
    assert issues == [("requirements.txt:4", "include"), ("requirements.txt:5", "include"),
                      ("requirements.txt:6", "include"), ("requirements.txt:7", "include"),
                      ("requirements.txt:8", "include"), ("reqs/base.txt:3", "unpinned")]
    assert "leaves the bundle" in parsed.issues[0].message and "cycle" in parsed.issues[3].message


def test_a_missing_or_binary_requirements_file_is_an_error(tmp_path: Path) -> None:
    assert [(i.kind, i.severity) for i in parse_requirements(tmp_path / "none.txt").issues] == [
        ("missing", Severity.ERROR)]
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00junk")
    assert [i.kind for i in parse_requirements(tmp_path / "bin.txt").issues] == ["unreadable"]


def test_size_and_line_bounds_stop_parsing_with_an_error(tmp_path: Path) -> None:
    big = tmp_path / "requirements.txt"
    big.write_text("numpy==1.0\n" * 200)
    parsed = parse_requirements(big, max_bytes=1000)
    assert [(i.kind, i.severity) for i in parsed.issues] == [("limit", Severity.ERROR)] and parsed.requirements == []
    parsed = parse_requirements(big, max_lines=50)
    assert [(i.kind, i.line) for i in parsed.issues] == [("limit", 51)]
    assert len(parsed.requirements) == 50
    text = parse_requirements_text("numpy==1.0\n" * 200, max_bytes=1000)
    assert [i.kind for i in text.issues] == ["limit"]


def test_normalize_name() -> None:
    assert {normalize_name(n) for n in ("Foo_Bar", "foo-bar", "FOO.BAR", "foo__-.bar")} == {"foo-bar"}
