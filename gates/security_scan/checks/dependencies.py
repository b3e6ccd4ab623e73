"""Checks ``dependencies``, ``requirement:<file>:<line>``, ``advisory_db``, ``advisory_db_age``,
``advisory:<package>:<id>`` and ``advisory_check:<package>:<kind>``: the model's pinned requirements
against an offline OSV advisory database.

Inputs: ``extra["requirements"]`` (local path of the requirements file the manifest names; with
``extra["requirements_key"]`` its object key and ``extra["requirements_error"]`` why it could not be
read), ``extra["bundle_root"]`` (the folder ``-r``/``-c`` includes must stay in),
``extra["advisory_db"]`` (the database: a folder of OSV JSON records or OSV's zip;
``CLEARANCE_ADVISORY_DB``) and ``extra["advisory_max_age"]`` (seconds, ``CLEARANCE_ADVISORY_MAX_AGE``:
the stricter of it and the tier's ``advisory_max_age`` applies). Parsing is
:mod:`gates.security_scan.requirements`, matching :mod:`gates.security_scan.advisories`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from gates.base import CheckResult, Status
from gates.security_scan.advisories import AdvisoryDatabaseError, AdvisoryHit, AdvisoryNote, open_advisory_db
from gates.security_scan.config import Action, AdvisorySeverity
from gates.security_scan.context import Scan
from gates.security_scan.findings import Severity
from gates.security_scan.requirements import ParsedRequirements, RequirementIssue, parse_requirements

CHECKS = {
    "dependencies": "The requirements file the manifest names is read (required by the tier, or not)",
    "requirement:<file>:<line>": "A requirement line is a clean pin (unpinned, another index, invalid, include, "
                                 "conflict)",
    "advisory_db": "The advisory database is configured and readable",
    "advisory_db_age": "The advisory database is younger than the tier's advisory_max_age",
    "advisory:<package>:<id>": "No advisory affects a pinned requirement (fail at the tier's severity, warn below)",
    "advisory_check:<package>:<kind>": "Every pinned version could be judged against the advisories",
}
#: How the severity labels of OSV records (GitHub's) and CVSS ratings map onto the config's scale.
SEVERITY_LABELS = {"low": AdvisorySeverity.LOW, "moderate": AdvisorySeverity.MODERATE,
                   "medium": AdvisorySeverity.MODERATE, "high": AdvisorySeverity.HIGH,
                   "critical": AdvisorySeverity.CRITICAL, "none": AdvisorySeverity.LOW}
_SEVERITY_STATUS = {Severity.WARN: Status.WARN, Severity.FAIL: Status.FAIL, Severity.ERROR: Status.ERROR}


def run(scan: Scan) -> list[CheckResult]:
    parsed, checks = _requirements(scan)
    if parsed is None:
        return checks
    pinned = parsed.pinned
    return checks + _advisories(scan, parsed, pinned)


# --------------------------------------------------------------------------- the requirements file


def _requirements(scan: Scan) -> tuple[ParsedRequirements | None, list[CheckResult]]:
    config = scan.config.dependencies
    key = scan.extra.get("requirements_key")
    path = scan.path("requirements")
    required = "the tier requires one (dependencies.required)"
    if path is None:
        error = scan.extra.get("requirements_error")
        if key and error:
            status = Status.FAIL if error == "not found" else Status.ERROR
            return None, [CheckResult(id="dependencies", status=status, observed=error, threshold="readable",
                                      message=f"the manifest names {key}: {error}")]
        if config.required:
            return None, [CheckResult(id="dependencies", status=Status.FAIL, observed=None, threshold="present",
                                      message=f"the manifest names no requirements file (requirements:); {required}")]
        return None, [CheckResult(id="dependencies", status=Status.SKIPPED, observed=None,
                                  message="no requirements file given (a manifest names it with `requirements:`): "
                                          "dependencies not checked")]
    shown = key or path.name
    if not path.is_file():
        return None, [CheckResult(id="dependencies", status=Status.ERROR, observed="missing", threshold="readable",
                                  message=f"{shown}: the local copy {path} is missing")]
    root = scan.path("bundle_root")
    if root is not None and not path.resolve().is_relative_to(root.resolve()):
        root = None
    parsed = parse_requirements(path, root=root)
    scan.table["requirements"] = [_row(r) for r in parsed.requirements]
    scan.table["requirement_issues"] = [_issue_row(i) for i in parsed.issues]
    scan.count("requirements", len(parsed.requirements))
    scan.count("requirements.pinned", len(parsed.pinned))
    included = f" (with {', '.join(parsed.files[1:])})" if len(parsed.files) > 1 else ""
    checks = [CheckResult(
        id="dependencies", status=Status.PASS,
        observed=f"{len(parsed.pinned)} of {len(parsed.requirements)} pinned",
        threshold=f"unpinned: {config.unpinned.value}",
        message=f"{shown}{included}: {len(parsed.requirements)} requirement(s), {len(parsed.pinned)} pinned and "
                "applicable")]
    checks += [_issue_check(issue, config.unpinned) for issue in parsed.issues]
    return parsed, _unique(checks)


def _issue_check(issue: RequirementIssue, unpinned: Action) -> CheckResult:
    status = _SEVERITY_STATUS[issue.severity]
    if issue.kind == "unpinned":
        status = Status(unpinned.value)
    threshold = {"unpinned": unpinned.value} if issue.kind == "unpinned" else None
    return CheckResult(id=f"requirement:{issue.where}", status=status, observed=issue.kind, threshold=threshold,
                       message=issue.message)


def _unique(checks: list[CheckResult]) -> list[CheckResult]:
    """Check ids are unique within a gate: a second finding on the same line gets ``#2``."""
    seen: dict[str, int] = {}
    out = []
    for check in checks:
        n = seen.get(check.id, 0) + 1
        seen[check.id] = n
        out.append(check if n == 1 else check.model_copy(update={"id": f"{check.id}#{n}"}))
    return out


def _row(requirement: Any) -> dict[str, Any]:
    return {"name": requirement.name, "version": requirement.version, "specifier": requirement.specifier,
            "where": requirement.where, "applies": requirement.applies, "marker": requirement.marker,
            "hashes": len(requirement.hashes), "url": requirement.url, "pinned_by": requirement.pinned_by}


def _issue_row(issue: RequirementIssue) -> dict[str, Any]:
    return {"where": issue.where, "kind": issue.kind, "severity": issue.severity.value, "message": issue.message,
            "package": issue.name}


# --------------------------------------------------------------------------- advisories


def _advisories(scan: Scan, parsed: ParsedRequirements, pinned: list[Any]) -> list[CheckResult]:
    config = scan.config.dependencies
    db_path = scan.path("advisory_db")
    if db_path is None:
        return [CheckResult(id="advisory_db", status=Status.SKIPPED, observed=None,
                            message="no advisory database configured (CLEARANCE_ADVISORY_DB: a folder of OSV JSON "
                                    "records or the zip OSV publishes per ecosystem): advisories not checked")]
    if not pinned:
        return [CheckResult(id="advisory_db", status=Status.SKIPPED, observed=str(db_path),
                            message="no pinned requirement to check against the advisory database")]
    try:
        db = open_advisory_db(db_path, packages=[r.name for r in pinned])
    except AdvisoryDatabaseError as exc:
        return [CheckResult(id="advisory_db", status=Status.ERROR, observed=str(db_path), threshold="readable",
                            message=str(exc))]
    except OSError as exc:
        return [CheckResult(id="advisory_db", status=Status.ERROR, observed=str(db_path), threshold="readable",
                            message=f"advisory database {db_path} cannot be read: {exc}")]
    report = db.check(parsed.requirements)
    max_age = advisory_max_age(scan)
    evidence = db.evidence(scan.now, max_age)
    scan.table["advisory_db"] = evidence
    scan.table["advisories"] = [_hit_row(hit) for hit in report.hits]
    scan.count("advisories", len(report.hits))
    db_notes = [n for n in db.notes if n.kind in ("empty", "unreadable")]
    db_status = Status.ERROR if any(n.kind == "empty" for n in db_notes) else (
        Status.WARN if db_notes else Status.PASS)
    checks = [CheckResult(
        id="advisory_db", status=db_status, observed=f"{evidence['advisories']} advisories", threshold="readable",
        message="; ".join(n.message for n in db_notes[:5]) or
                f"{evidence['path']} ({evidence['format']}): {len(report.checked)} pinned requirement(s) checked")]
    stale = db.older_than(max_age, scan.now)
    age = evidence["age_seconds"]
    updated = db.updated_at.isoformat() if db.updated_at else "never"
    checks.append(CheckResult(
        id="advisory_db_age", status=Status.WARN if stale else Status.PASS,
        observed=days(age), threshold=days(evidence["max_age_seconds"]),
        message=stale.message if stale else f"newest record {updated}"))
    checks += [_hit_check(hit, config.fail_at, config.unknown_severity) for hit in report.hits]
    checks += [_note_check(note) for note in report.notes if note.severity is not None and note.kind != "stale"]
    return _unique(checks)


def advisory_max_age(scan: Scan) -> timedelta:
    """The stricter of the tier's ``advisory_max_age`` and the worker's (``extra["advisory_max_age"]``, seconds,
    from ``CLEARANCE_ADVISORY_MAX_AGE``)."""
    limit = scan.config.dependencies.advisory_max_age
    worker = scan.extra.get("advisory_max_age")
    if isinstance(worker, (int, float)) and worker > 0:
        limit = min(limit, timedelta(seconds=worker))
    return limit


def hit_severity(hit: AdvisoryHit) -> AdvisorySeverity:
    """The hit's severity on the config's scale (``unknown`` when the record gives none)."""
    return SEVERITY_LABELS.get((hit.severity or "").lower(), AdvisorySeverity.UNKNOWN)


def _hit_check(hit: AdvisoryHit, fail_at: AdvisorySeverity, unknown: Action) -> CheckResult:
    severity = hit_severity(hit)
    if severity is AdvisorySeverity.UNKNOWN:
        status = Status(unknown.value)
    else:
        status = Status.FAIL if severity >= fail_at else Status.WARN
    aliases = f" ({', '.join(hit.aliases)})" if hit.aliases else ""
    score = f", CVSS {hit.cvss_score:g}" if hit.cvss_score is not None else ""
    fix = f"fixed in {hit.fixed_in}" if hit.fixed_in else "no fixed version known"
    summary = f": {hit.summary}" if hit.summary else ""
    return CheckResult(
        id=f"advisory:{hit.package}:{hit.advisory_id}", status=status,
        observed=f"{hit.package}=={hit.version}: {severity.value}", threshold=f"fail at {fail_at.value}",
        message=f"{hit.package}=={hit.version} ({hit.where}) is affected by {hit.advisory_id}{aliases}{summary}; "
                f"severity {severity.value}{score}; {fix}")


def _note_check(note: AdvisoryNote) -> CheckResult:
    assert note.severity is not None
    return CheckResult(id=f"advisory_check:{note.package or '-'}:{note.advisory_id or note.kind}",
                       status=_SEVERITY_STATUS[note.severity], observed=note.kind, message=note.message)


def days(seconds: float | None) -> str | None:
    """``"7d"``, ``"742.9d"``: an age or a limit in days, as people read them."""
    if seconds is None:
        return None
    value = seconds / 86400
    return f"{value:g}d" if value == int(value) else f"{value:.1f}d"


def _hit_row(hit: AdvisoryHit) -> dict[str, Any]:
    return {"package": hit.package, "version": hit.version, "advisory": hit.advisory_id, "aliases": list(hit.aliases),
            "summary": hit.summary, "severity": hit.severity, "cvss_score": hit.cvss_score,
            "cvss_vectors": list(hit.cvss_vectors), "fixed_in": hit.fixed_in, "where": hit.where}
