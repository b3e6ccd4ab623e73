"""Pinned requirements checked against an OSV advisory database read offline.

The database is a folder of OSV ``*.json`` records (searched recursively) or the zip OSV
publishes per ecosystem (``https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip``).
:func:`open_advisory_db` reads it once, one record at a time (a zip is streamed member by
member, never extracted, each member read up to ``max_record_bytes``), and keeps only an index:
PEP 503 package name → where its records are, plus the newest ``modified`` time. Records are
read again, one package at a time, when requirements are checked; ``packages=`` keeps the
parsed records of the packages named, so the check needs no second read. Withdrawn records are
skipped.

The database's age is its newest ``modified`` (the file's, or the newest file's, mtime when no
record has one); :meth:`AdvisoryDB.older_than` turns a database older than a limit into a
``stale`` warning, and :meth:`AdvisoryDB.evidence` reports it.

Matching is the OSV schema's evaluation (https://ossf.github.io/osv-schema/#evaluation): a version
is affected when ``affected[].versions`` lists it or it lies in any range. ``ECOSYSTEM`` ranges of
PyPI compare PEP 440 versions (:class:`packaging.version.Version`: ``1.0rc1 < 1.0 < 1.0.post1``,
``1!0.1 > 2.0``); events are sorted (``introduced: "0"`` first, on a tie ``introduced`` before
``last_affected`` before ``fixed``), then an ``introduced`` at or below the version makes it
affected, a ``fixed`` at or below it unaffected, a ``last_affected`` below it unaffected; with
``limit`` events the version must be below one of them (``"*"`` is infinity). ``SEMVER`` ranges
use SemVer 2.0 precedence (a version that is no SemVer, after padding ``1.2`` to ``1.2.0``, leaves
the range undecided: an ``unevaluable`` note). ``GIT`` ranges need the repository and are not
evaluated (a ``git-range`` note when the record has nothing else for the package). A version
or bound that is not PEP 440 never crashes the check: it is a note naming package and advisory.

Each hit names the package, its version and where it is pinned, the advisory id and aliases
(CVE, GHSA, PYSEC), the summary, the severity — ``database_specific.severity`` (GitHub: LOW,
MODERATE, HIGH, CRITICAL), every CVSS vector, and the CVSS v3 base score computed from the vector
(:func:`cvss3_base_score`) — and the first fixed version (the lowest ``fixed`` above it).
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cmp_to_key
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from gates.security_scan.findings import Severity
from gates.security_scan.requirements import Requirement, normalize_name

#: What the gate says when no database is configured (the dependency check is then ``skipped``).
NO_DATABASE_MESSAGE = (
    "no advisory database: set CLEARANCE_ADVISORY_DB to a folder of OSV JSON records or to the zip OSV "
    "publishes per ecosystem (e.g. https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip), "
    "refreshed at least every CLEARANCE_ADVISORY_MAX_AGE")

MAX_RECORD_BYTES = 16 * 1024 * 1024
MAX_RECORDS = 1_000_000


class AdvisoryDatabaseError(Exception):
    """The advisory database cannot be read at all (missing, not a folder or zip, over a bound)."""


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AdvisoryHit:
    """A pinned requirement an advisory affects."""

    package: str  # normalised name
    version: str  # the pinned version
    advisory_id: str
    aliases: tuple[str, ...] = ()  # CVE-…, GHSA-…, PYSEC-…
    summary: str = ""
    severity: str | None = None  # database_specific.severity (e.g. HIGH), else the CVSS v3 rating
    cvss_vectors: tuple[str, ...] = ()  # every CVSS vector of the record ("CVSS:3.1/AV:N/…", "CVSS:4.0/…")
    cvss_score: float | None = None  # CVSS v3 base score computed from the highest-scoring v3 vector
    fixed_in: str | None = None  # the lowest ``fixed`` above the version; None: no fix known
    file: str = ""  # where the requirement is pinned
    line: int = 0
    modified: str | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def level(self) -> str | None:
        """The severity as one ranked word: low, moderate, high, critical (CVSS MEDIUM → moderate); None:
        the advisory states none (NONE counts as low)."""
        if self.severity is None:
            return None
        word = self.severity.lower()
        return {"medium": "moderate", "none": "low", "moderate": "moderate"}.get(word, word) \
            if word in ("low", "medium", "moderate", "high", "critical", "none") else None


@dataclass(frozen=True)
class AdvisoryNote:
    """Something the check could not decide or wants said.

    ``kind``: ``invalid-version`` (the pinned version is no PEP 440 version: ranges cannot be
    judged; error), ``unevaluable`` (a range bound the check cannot order; warn), ``git-range``
    (a record matched only by GIT ranges, which are not evaluated; no severity), ``unreadable``
    (a record of the database could not be read: warn at load time, error when a record indexed for a
    checked package cannot be read again), ``empty`` (no record for the ecosystem;
    error), ``stale`` (the database is older than the limit; warn).
    """

    kind: str
    message: str
    severity: Severity | None
    package: str | None = None
    version: str | None = None
    advisory_id: str | None = None
    file: str | None = None
    line: int | None = None


@dataclass
class AdvisoryReport:
    """The result of checking requirements: hits, notes and how many requirements were checked."""

    hits: list[AdvisoryHit] = field(default_factory=list)
    notes: list[AdvisoryNote] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # "name==version" of every requirement checked


@dataclass(frozen=True)
class Advisory:
    """The parts of one OSV record the check uses (its ``affected`` entries of one ecosystem only)."""

    id: str
    aliases: tuple[str, ...]
    summary: str
    modified: str | None
    severity: tuple[tuple[str, str], ...]  # (type, score) at the top level
    database_severity: str | None
    affected: tuple[dict[str, Any], ...]


# --------------------------------------------------------------------------- versions


class _Min:
    """Sorts before every version (``introduced: "0"``)."""


class _Max:
    """Sorts after every version (``limit: "*"``)."""


_MIN, _MAX = _Min(), _Max()
_SEMVER = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


@dataclass(frozen=True)
class SemVer:
    """A SemVer 2.0 version ordered by its precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> SemVer:
        match = _SEMVER.match(text.strip())
        if not match:
            raise ValueError(f"not a SemVer version: {text!r}")
        pre: tuple[int | str, ...] = ()
        if match.group(4):
            pre = tuple(int(p) if p.isdigit() else p for p in match.group(4).split("."))
        return cls(int(match.group(1)), int(match.group(2) or 0), int(match.group(3) or 0), pre)

    def key(self) -> tuple[Any, ...]:
        pre = (1,) if not self.pre else (0, tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.pre))
        return (self.major, self.minor, self.patch, pre)

    def __lt__(self, other: SemVer) -> bool:
        return self.key() < other.key()

    def __le__(self, other: SemVer) -> bool:
        return self.key() <= other.key()


def _parse_bound(value: str, kind: str, parse: Any) -> Any:
    if kind == "introduced" and value == "0":
        return _MIN
    if kind == "limit" and value == "*":
        return _MAX
    return parse(value)


def _lt(a: Any, b: Any) -> bool:
    """``a < b`` where either may be the ``_MIN`` / ``_MAX`` sentinel."""
    if a is b:
        return False
    if a is _MIN or b is _MAX:
        return True
    if a is _MAX or b is _MIN:
        return False
    return bool(a < b)


_EVENT_ORDER = {"introduced": 0, "last_affected": 1, "fixed": 2}


def _compare_events(a: tuple[str, Any], b: tuple[str, Any]) -> int:
    """Order events by bound, then introduced < last_affected < fixed on a tie."""
    if _lt(a[1], b[1]):
        return -1
    if _lt(b[1], a[1]):
        return 1
    return _EVENT_ORDER[a[0]] - _EVENT_ORDER[b[0]]


def range_affects(version: Any, events: list[tuple[str, Any]]) -> bool:
    """The OSV evaluation of one range: ``events`` are (kind, parsed bound) pairs."""
    limits = [b for kind, b in events if kind == "limit"]
    if limits and not any(_lt(version, b) for b in limits):
        return False
    vulnerable = False
    for kind, bound in sorted((e for e in events if e[0] in _EVENT_ORDER), key=cmp_to_key(_compare_events)):
        if kind == "introduced" and not _lt(version, bound):
            vulnerable = True
        elif kind == "fixed" and not _lt(version, bound):
            vulnerable = False
        elif kind == "last_affected" and _lt(bound, version):
            vulnerable = False
    return vulnerable


@dataclass
class _Evaluation:
    affected: bool = False
    fixed: dict[str, list[tuple[Any, str]]] = field(default_factory=dict)  # range type → fixed bounds above
    problems: list[str] = field(default_factory=list)
    git_only: bool = False


def _event_pairs(raw_events: Any) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for event in raw_events if isinstance(raw_events, list) else []:
        if isinstance(event, dict):
            for kind in ("introduced", "fixed", "last_affected", "limit"):
                if isinstance(event.get(kind), str):
                    pairs.append((kind, event[kind]))
    return pairs


def _listed(entry: dict[str, Any], version: str, pep440: Version | None) -> bool:
    """Whether ``affected[].versions`` lists ``version`` (PEP 440 equality, else the same string)."""
    for listed in entry.get("versions") or []:
        if not isinstance(listed, str):
            continue
        if listed == version:
            return True
        if pep440 is not None:
            try:
                if Version(listed) == pep440:
                    return True
            except InvalidVersion:
                continue  # a listed version that is no PEP 440 matches only the same string
    return False


def evaluate_affected(entry: dict[str, Any], version: str) -> _Evaluation:
    """Whether one ``affected`` entry covers ``version`` (PyPI), with the fixed versions above it."""
    result = _Evaluation()
    pep440: Version | None
    try:
        pep440 = Version(version)
    except InvalidVersion:
        pep440 = None
    result.affected = _listed(entry, version, pep440)
    ranges = [r for r in entry.get("ranges") or [] if isinstance(r, dict)]
    for rng in ranges:
        kind = rng.get("type")
        if kind == "GIT":
            continue
        if kind not in ("ECOSYSTEM", "SEMVER"):
            result.problems.append(f"range type {kind!r} is not evaluated")
            continue
        parse: Any = Version if kind == "ECOSYSTEM" else SemVer.parse
        pairs = _event_pairs(rng.get("events"))
        try:
            current: Any = pep440 if kind == "ECOSYSTEM" else SemVer.parse(version)
            if current is None:
                raise InvalidVersion(f"{version!r} is not a PEP 440 version")
            events = [(k, _parse_bound(v, k, parse)) for k, v in pairs]
        except (InvalidVersion, ValueError) as exc:
            result.problems.append(f"{kind} range cannot be ordered: {exc}")
            continue
        if range_affects(current, events):
            result.affected = True
        result.fixed.setdefault(kind, []).extend(
            (bound, raw) for (k, bound), (_, raw) in zip(events, pairs, strict=True) if k == "fixed"
            and _lt(current, bound))
    result.git_only = bool(ranges) and not entry.get("versions") and all(r.get("type") == "GIT" for r in ranges)
    return result


# --------------------------------------------------------------------------- CVSS


_CVSS3_WEIGHTS: dict[str, dict[str, float]] = {
    "AV": {"N": 0.85, "A": 0.62, "L": 0.55, "P": 0.2},
    "AC": {"L": 0.77, "H": 0.44},
    "UI": {"N": 0.85, "R": 0.62},
    "C": {"H": 0.56, "L": 0.22, "N": 0.0},
    "I": {"H": 0.56, "L": 0.22, "N": 0.0},
    "A": {"H": 0.56, "L": 0.22, "N": 0.0},
}
_CVSS3_PR = {"U": {"N": 0.85, "L": 0.62, "H": 0.27}, "C": {"N": 0.85, "L": 0.68, "H": 0.5}}


def _roundup(value: float) -> float:
    """CVSS v3.1 Roundup: the smallest number with one decimal at or above ``value``."""
    integer = round(value * 100_000)
    if integer % 10_000 == 0:
        return integer / 100_000.0
    return (math.floor(integer / 10_000) + 1) / 10.0


def cvss3_base_score(vector: str) -> float | None:
    """The CVSS v3.0/v3.1 base score of a vector (``CVSS:3.1/AV:N/AC:L/…``); None if it is not one."""
    parts = vector.strip().split("/")
    if not parts or not re.fullmatch(r"CVSS:3\.[01]", parts[0]):
        return None
    metrics: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition(":")
        if not sep or key in metrics:
            return None
        metrics[key] = value
    try:
        scope = metrics["S"]
        weights = {k: _CVSS3_WEIGHTS[k][metrics[k]] for k in _CVSS3_WEIGHTS}
        pr = _CVSS3_PR[scope][metrics["PR"]]
    except KeyError:
        return None
    iss = 1 - (1 - weights["C"]) * (1 - weights["I"]) * (1 - weights["A"])
    impact = 6.42 * iss if scope == "U" else 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15
    exploitability = 8.22 * weights["AV"] * weights["AC"] * pr * weights["UI"]
    if impact <= 0:
        return 0.0
    if scope == "U":
        return _roundup(min(impact + exploitability, 10))
    return _roundup(min(1.08 * (impact + exploitability), 10))


def cvss_rating(score: float) -> str:
    """The qualitative rating of a CVSS score: NONE, LOW, MEDIUM, HIGH, CRITICAL."""
    if score == 0:
        return "NONE"
    if score < 4.0:
        return "LOW"
    if score < 7.0:
        return "MEDIUM"
    if score < 9.0:
        return "HIGH"
    return "CRITICAL"


# --------------------------------------------------------------------------- the database


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 time (OSV ``modified``), fractions beyond microseconds dropped; None if it is not one."""
    if not isinstance(value, str):
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())
    text = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _advisory(record: dict[str, Any], ecosystem: str) -> Advisory:
    summary = record.get("summary") if isinstance(record.get("summary"), str) else ""
    if not summary and isinstance(record.get("details"), str):
        summary = record["details"].strip().splitlines()[0][:200] if record["details"].strip() else ""
    severity = tuple((s.get("type", ""), s.get("score", "")) for s in record.get("severity") or []
                     if isinstance(s, dict) and isinstance(s.get("score"), str))
    db_specific = record.get("database_specific")
    db_severity = db_specific.get("severity") if isinstance(db_specific, dict) else None
    return Advisory(
        id=str(record.get("id", "?")),
        aliases=tuple(a for a in record.get("aliases") or [] if isinstance(a, str)),
        summary=summary or "",
        modified=record.get("modified") if isinstance(record.get("modified"), str) else None,
        severity=severity,
        database_severity=db_severity.upper() if isinstance(db_severity, str) else None,
        affected=tuple(a for a in record.get("affected") or [] if _entry_package(a, ecosystem) is not None),
    )


def _entry_package(entry: Any, ecosystem: str) -> str | None:
    """The normalised package name of an ``affected`` entry of ``ecosystem``, else None."""
    if not isinstance(entry, dict) or not isinstance(entry.get("package"), dict):
        return None
    package = entry["package"]
    if package.get("ecosystem") != ecosystem or not isinstance(package.get("name"), str):
        return None
    return normalize_name(package["name"])


class AdvisoryDB:
    """An OSV database indexed by package name; records are read again per package when needed."""

    def __init__(self, path: Path, ecosystem: str = "PyPI", *, packages: Iterable[str] | None = None,
                 max_record_bytes: int = MAX_RECORD_BYTES, max_records: int = MAX_RECORDS) -> None:
        self.path = path
        self.ecosystem = ecosystem
        self.max_record_bytes = max_record_bytes
        self.max_records = max_records
        self.records = 0  # records read (any ecosystem, withdrawn included)
        self.advisories = 0  # records with an entry for the ecosystem, not withdrawn
        self.withdrawn = 0
        self.newest_modified: datetime | None = None
        self.source_mtime: datetime | None = None
        self.notes: list[AdvisoryNote] = []
        self._index: dict[str, list[str]] = {}
        self._wanted = {normalize_name(p) for p in packages} if packages is not None else None
        self._cache: dict[str, list[Advisory]] = {}
        self._archive: zipfile.ZipFile | None = None
        self.lost: list[str] = []  # records indexed at load time that could not be read again
        if not path.exists():
            raise AdvisoryDatabaseError(f"advisory database {path} does not exist")
        if path.is_dir():
            self.format = "dir"
        elif zipfile.is_zipfile(path):
            self.format = "zip"
        else:
            raise AdvisoryDatabaseError(f"advisory database {path} is neither a folder nor a zip file")
        self._load()

    # ---------------------------------------------------------------- reading

    def _members(self) -> Iterator[tuple[str, bytes | None, str | None]]:
        """(member name, bytes or None, why not) for every JSON record, one at a time."""
        if self.format == "dir":
            newest = 0.0
            for file in sorted(self.path.rglob("*.json")):
                if not file.is_file():
                    continue
                stat = file.stat()
                newest = max(newest, stat.st_mtime)
                name = file.relative_to(self.path).as_posix()
                if stat.st_size > self.max_record_bytes:
                    yield name, None, f"{stat.st_size} bytes, over {self.max_record_bytes}"
                    continue
                with file.open("rb") as fh:
                    yield name, fh.read(self.max_record_bytes + 1), None
            self.source_mtime = datetime.fromtimestamp(newest or self.path.stat().st_mtime, UTC)
            return
        self.source_mtime = datetime.fromtimestamp(os.stat(self.path).st_mtime, UTC)
        with zipfile.ZipFile(self.path) as archive:
            for info in archive.infolist():
                if info.is_dir() or not info.filename.endswith(".json"):
                    continue
                if info.file_size > self.max_record_bytes:
                    yield info.filename, None, f"{info.file_size} bytes, over {self.max_record_bytes}"
                    continue
                try:
                    with archive.open(info) as fh:
                        yield info.filename, fh.read(self.max_record_bytes + 1), None
                except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                    yield info.filename, None, f"{type(exc).__name__}: {exc}"

    def _read(self, name: str) -> dict[str, Any] | None:
        """One record again, by member name (None if it cannot be read: noted at load time)."""
        try:
            if self.format == "dir":
                data = (self.path / name).read_bytes()
            elif self._archive is not None:
                with self._archive.open(name) as fh:
                    data = fh.read(self.max_record_bytes + 1)
            else:
                with zipfile.ZipFile(self.path) as archive, archive.open(name) as fh:
                    data = fh.read(self.max_record_bytes + 1)
            record = json.loads(data)
        except (OSError, KeyError, zipfile.BadZipFile, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _load(self) -> None:
        for name, data, why in self._members():
            self.records += 1
            if self.records > self.max_records:
                raise AdvisoryDatabaseError(f"advisory database {self.path} has more than {self.max_records} records")
            if data is None or len(data) > self.max_record_bytes:
                self._unreadable(name, why or f"over {self.max_record_bytes} bytes")
                continue
            try:
                record = json.loads(data)
            except ValueError as exc:
                self._unreadable(name, f"not JSON: {exc}")
                continue
            if not isinstance(record, dict):
                self._unreadable(name, "not a JSON object")
                continue
            modified = _parse_time(record.get("modified"))
            if modified is not None and (self.newest_modified is None or modified > self.newest_modified):
                self.newest_modified = modified
            names = {n for n in (_entry_package(a, self.ecosystem) for a in record.get("affected") or []) if n}
            if not names:
                continue
            if record.get("withdrawn"):
                self.withdrawn += 1
                continue
            self.advisories += 1
            for package in names:
                self._index.setdefault(package, []).append(name)
            if self._wanted is not None and names & self._wanted:
                advisory = _advisory(record, self.ecosystem)
                for package in names & self._wanted:
                    self._cache.setdefault(package, []).append(advisory)
        if self.advisories == 0:
            self.notes.append(AdvisoryNote(
                "empty", f"advisory database {self.path} has no {self.ecosystem} advisory ({self.records} records "
                         "read): it cannot clear any dependency", Severity.ERROR))

    def _unreadable(self, name: str, why: str) -> None:
        self.notes.append(AdvisoryNote("unreadable", f"advisory record {name} of {self.path} not read: {why}",
                                       Severity.WARN))

    def advisories_for(self, package: str) -> list[Advisory]:
        """The advisories (not withdrawn) with an ``affected`` entry for ``package`` in this ecosystem."""
        name = normalize_name(package)
        if name in self._cache or (self._wanted is not None and name in self._wanted):
            return list(self._cache.get(name, []))
        found = []
        for member in self._index.get(name, []):
            record = self._read(member)
            if record is None:
                self.lost.append(member)
            elif not record.get("withdrawn"):
                found.append(_advisory(record, self.ecosystem))
        self._cache[name] = found
        return list(found)

    @property
    def packages(self) -> int:
        """How many packages of the ecosystem have an advisory."""
        return len(self._index)

    # ---------------------------------------------------------------- age

    @property
    def updated_at(self) -> datetime | None:
        """The newest ``modified`` of its records, else the newest file mtime."""
        return self.newest_modified or self.source_mtime

    def age(self, now: datetime) -> timedelta:
        """How old the database is at ``now`` (never negative)."""
        updated = self.updated_at
        return max(now - updated, timedelta(0)) if updated else timedelta.max

    def older_than(self, limit: timedelta, now: datetime) -> AdvisoryNote | None:
        """A ``stale`` warning when the database is older than ``limit`` at ``now``, else None."""
        age = self.age(now)
        if age <= limit:
            return None
        source = "newest record modified" if self.newest_modified else "file modified"
        updated = self.updated_at.isoformat() if self.updated_at else "never"
        return AdvisoryNote("stale", f"advisory database is {_human(age)} old ({source} {updated}); the limit is "
                                     f"{_human(limit)}: refresh it", Severity.WARN)

    def evidence(self, now: datetime, max_age: timedelta | None = None) -> dict[str, Any]:
        """What the evidence says about the database: where, how big, how old."""
        age = self.age(now)
        return {
            "path": str(self.path), "format": self.format, "ecosystem": self.ecosystem,
            "records": self.records, "advisories": self.advisories, "withdrawn": self.withdrawn,
            "newest_modified": self.newest_modified.isoformat() if self.newest_modified else None,
            "source_mtime": self.source_mtime.isoformat() if self.source_mtime else None,
            "age_seconds": None if age == timedelta.max else round(age.total_seconds()),
            "max_age_seconds": None if max_age is None else round(max_age.total_seconds()),
            "unreadable_records": sum(1 for n in self.notes if n.kind == "unreadable"),
        }

    # ---------------------------------------------------------------- matching

    def check(self, requirements: Iterable[Requirement]) -> AdvisoryReport:
        """Every applicable pinned requirement against this database."""
        report = AdvisoryReport()
        with self._opened():
            for requirement in requirements:
                if not requirement.applies or requirement.version is None or not requirement.name:
                    continue
                report.checked.append(f"{requirement.name}=={requirement.version}")
                lost = len(self.lost)
                self._check_one(requirement, requirement.version, report)
                if len(self.lost) > lost:
                    names = ", ".join(self.lost[lost:][:3])
                    report.notes.append(AdvisoryNote(
                        "unreadable", f"{requirement.where}: {len(self.lost) - lost} advisory record(s) of "
                                      f"{requirement.name} could not be read again ({names}): its check is "
                                      "incomplete", Severity.ERROR, requirement.name, requirement.version, None,
                        requirement.file, requirement.line))
        return report

    @contextmanager
    def _opened(self) -> Iterator[None]:
        """Keep a zip database open while records are re-read (its directory is parsed once)."""
        if self.format != "zip" or self._archive is not None:
            yield
            return
        try:
            self._archive = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile):
            yield  # each read then fails on its own and the record counts as not found
            return
        try:
            yield
        finally:
            self._archive.close()
            self._archive = None

    def _check_one(self, req: Requirement, version: str, report: AdvisoryReport) -> None:
        try:
            Version(version)
            valid = True
        except InvalidVersion:
            valid = False
        undecided_version = False
        for advisory in self.advisories_for(req.name):
            entries = [e for e in advisory.affected if _entry_package(e, self.ecosystem) == req.name]
            evaluations = [evaluate_affected(e, version) for e in entries]
            problems = list(dict.fromkeys(p for e in evaluations for p in e.problems))
            if any(e.affected for e in evaluations):
                fixed: dict[str, list[tuple[Any, str]]] = {}
                for e in evaluations:
                    for kind, bounds in e.fixed.items():
                        fixed.setdefault(kind, []).extend(bounds)
                report.hits.append(self._hit(req, version, advisory, fixed))
            elif problems and not valid:
                undecided_version = True
            elif problems:
                report.notes.append(AdvisoryNote(
                    "unevaluable", f"{req.name}=={version} ({req.where}) against {advisory.id}: "
                                   f"{'; '.join(problems)}", Severity.WARN,
                    req.name, version, advisory.id, req.file, req.line))
            elif evaluations and all(e.git_only for e in evaluations):
                report.notes.append(AdvisoryNote(
                    "git-range", f"{advisory.id} describes {req.name} by GIT commit ranges only: not evaluated",
                    None, req.name, version, advisory.id, req.file, req.line))
        if undecided_version:
            report.notes.append(AdvisoryNote(
                "invalid-version", f"{req.where}: {req.name}=={version} is not a PEP 440 version: the advisory "
                                   "ranges for it cannot be judged", Severity.ERROR, req.name, version, None,
                req.file, req.line))

    def _hit(self, req: Requirement, version: str, advisory: Advisory,
             fixed: dict[str, list[tuple[Any, str]]]) -> AdvisoryHit:
        severity = entry_severity(advisory, req.name, self.ecosystem)
        vectors = tuple(dict.fromkeys(score for _, score in severity if score.startswith("CVSS:")))
        scores = [s for s in (cvss3_base_score(v) for v in vectors) if s is not None]
        score = max(scores) if scores else None
        label = advisory.database_severity or (cvss_rating(score) if score is not None else None)
        first_fixed: tuple[Any, str] | None = None
        for bound, raw in fixed.get("ECOSYSTEM") or fixed.get("SEMVER") or []:
            if first_fixed is None or _lt(bound, first_fixed[0]):
                first_fixed = (bound, raw)
        return AdvisoryHit(
            package=req.name, version=version, advisory_id=advisory.id, aliases=advisory.aliases,
            summary=advisory.summary, severity=label, cvss_vectors=vectors, cvss_score=score,
            fixed_in=first_fixed[1] if first_fixed else None, file=req.file, line=req.line,
            modified=advisory.modified)


def entry_severity(advisory: Advisory, package: str, ecosystem: str) -> tuple[tuple[str, str], ...]:
    """The record's severities: top level, plus those of the package's ``affected`` entries."""
    found = list(advisory.severity)
    for entry in advisory.affected:
        if _entry_package(entry, ecosystem) == package:
            found += [(s.get("type", ""), s["score"]) for s in entry.get("severity") or []
                      if isinstance(s, dict) and isinstance(s.get("score"), str)]
    return tuple(found)


def _human(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds:.0f} seconds"


def open_advisory_db(path: Path, *, ecosystem: str = "PyPI", packages: Iterable[str] | None = None,
                     max_record_bytes: int = MAX_RECORD_BYTES, max_records: int = MAX_RECORDS) -> AdvisoryDB:
    """Read the OSV database at ``path`` (folder or zip) once and index it by package name.

    ``packages``: keep the parsed advisories of these packages in memory (checking them re-reads
    nothing); every other package is only indexed and its records re-read when it is checked.
    Raises :class:`AdvisoryDatabaseError` when the database cannot be read at all.
    """
    return AdvisoryDB(path, ecosystem, packages=packages, max_record_bytes=max_record_bytes, max_records=max_records)


def check_requirements(db: AdvisoryDB, requirements: Iterable[Requirement]) -> AdvisoryReport:
    """Every applicable pinned requirement against ``db`` (hits and notes)."""
    return db.check(requirements)
