"""Checks ``model_files``, ``model_file:<key>``, ``model_format:<file>`` and ``callables:<file>``: the
pinned artifacts read as bytes — never unpickled, never imported.

Inputs: the manifest's artifact entries of the version and ``extra["artifact_files"]`` (artifact
key → local path of the pinned bytes, prepared by ``tasks/candidate_files.py`` or, in a pre-flight,
the local file itself); ``extra["artifact_errors"]`` names the artifacts that could not be brought
there. Each file goes through :func:`gates.security_scan.model_files.scan_path` (every format,
containers and their members), which returns one report per file or archive member
(``outer.zip!inner/data.pkl``):

- ``model_file:<key>`` — the artifact was read and its format (declared in the manifest, else
  detected; joblib and pickle are one family) is on the tier's ``allowed_formats``;
- ``model_format:<file>`` — what is wrong with a file or member that is not a callable: truncated,
  corrupt, over a limit, unsafe layout (the worst problem decides: ``error`` when the scan could not
  read on, never a pass);
- ``callables:<file>`` — every callable its pickle stream imports or calls, judged by the
  allowlists of the tier's frameworks and the denylist: any denied one fails, one on no list warns
  (or fails with ``unknown_callable: fail``); the message names each with its byte offset.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from gates.base import CheckResult, Status
from gates.security_scan.context import Scan
from gates.security_scan.findings import CallableFinding, FileReport, Severity, Verdict
from gates.security_scan.model_files import scan_path

CHECKS = {
    "model_files": "The artifacts were given to the scan as local files",
    "model_file:<key>": "A pinned artifact is readable and in a format the tier accepts",
    "model_format:<file>": "A file or archive member is well formed and within the scan's limits",
    "callables:<file>": "Every callable a pickle stream can import or call is on the allowlist",
}
#: Formats whose files are pickle streams (a joblib file is a pickle stream with raw arrays between).
PICKLE_FAMILY = {"pickle", "joblib"}
#: How many callables of one verdict a message names (the evidence table has them all).
LISTED = 10
_PROBLEM_STATUS = {Severity.WARN: Status.WARN, Severity.FAIL: Status.FAIL, Severity.ERROR: Status.ERROR}


def run(scan: Scan) -> list[CheckResult]:
    pinned = scan.pinned_artifacts()
    files: dict[str, str] | None = scan.extra.get("artifact_files")
    errors: dict[str, str] = scan.extra.get("artifact_errors") or {}
    if files is None and not errors:
        return [CheckResult(id="model_files", status=Status.SKIPPED,
                            message="no local copies of the artifacts were given: model files not scanned")]
    if not pinned:
        return [CheckResult(id="model_files", status=Status.SKIPPED, message="the manifest lists no artifacts")]
    config = scan.config
    policy = config.callable_policy()
    limits = config.limits.to_scan_limits()
    checks: list[CheckResult] = []
    for ref in pinned:
        key = ref["key"]
        if key in errors:
            why = errors[key]
            status = Status.FAIL if why == "not found" or why.startswith("content differs") else Status.ERROR
            checks.append(CheckResult(id=f"model_file:{key}", status=status, observed=why, threshold="readable",
                                      message=f"{key}: not scanned: {why}"))
            continue
        local = (files or {}).get(key)
        if local is None or not Path(local).is_file():
            checks.append(CheckResult(
                id=f"model_file:{key}", status=Status.ERROR, observed="missing", threshold="readable",
                message=f"{key}: not scanned: no local copy" + (f" ({local} is missing)" if local else "")))
            continue
        try:
            reports = scan_path(Path(local), key, policy, limits, known_sha256=ref.get("sha256"))
        except Exception as exc:  # noqa: BLE001 — a scanner crash is this artifact's error, never a pass
            checks.append(CheckResult(id=f"model_file:{key}", status=Status.ERROR, observed=type(exc).__name__,
                                      threshold="readable", message=f"{key}: the scan failed: {exc}"))
            continue
        checks += _artifact_checks(scan, ref, reports)
    return checks


def effective_format(key: str, declared: str | None, detected: str) -> tuple[str, str | None]:
    """The artifact's format, and why it cannot be trusted (``None`` when it can).

    A declared format wins when the content agrees with it (joblib and pickle are one family: a
    joblib file of an object without arrays is a plain pickle stream); a pickle stream named
    ``.joblib`` is a joblib file.
    """
    if detected in PICKLE_FAMILY:
        if declared in PICKLE_FAMILY:
            return declared, None
        if declared is None:
            return ("joblib" if key.lower().endswith(".joblib") else detected), None
    if declared is None or declared == detected:
        return detected, None
    return declared, f"declared {declared!r} but the content looks like {detected!r}"


def _artifact_checks(scan: Scan, ref: dict[str, Any], reports: list[FileReport]) -> list[CheckResult]:
    key = ref["key"]
    top = next((r for r in reports if r.file == key), reports[0] if reports else None)
    checks: list[CheckResult] = []
    if top is None:
        return [CheckResult(id=f"model_file:{key}", status=Status.ERROR, observed=None, threshold="readable",
                            message=f"{key}: the scan reported nothing")]
    fmt, mismatch = effective_format(key, ref.get("format"), top.format)
    allowed = scan.config.allowed_formats
    seen = f"{top.size} bytes, sha256 {(top.sha256 or '?')[:12]}…" + (
        f", {len(top.members)} member(s) scanned" if top.members else "")
    if mismatch:
        status, message = Status.FAIL, f"{key}: {mismatch}"
    elif fmt not in allowed:
        status, message = Status.FAIL, f"{key}: format {fmt!r} is not allowed for this tier ({seen})"
    else:
        status, message = Status.PASS, f"{key}: {seen}"
    checks.append(CheckResult(id=f"model_file:{key}", status=status, observed=fmt, threshold=allowed,
                              message=message))
    if top.sha256:
        scan.digests[key] = top.sha256
    scan.count("files", len(reports))
    scan.count("bytes", float(top.size))
    for report in reports:
        scan.table["files"].append(_file_row(report, fmt if report is top else report.format))
        scan.table["callables"] += [_callable_row(c) for c in report.callables]
        if report.problems:
            checks.append(_format_check(report))
        if report.callables or report.format in PICKLE_FAMILY:
            checks.append(_callables_check(report, scan))
    return checks


def _format_check(report: FileReport) -> CheckResult:
    worst = max((p.severity for p in report.problems), key=list(Severity).index)
    listed = "; ".join(f"{p.kind}{f' at byte {p.offset}' if p.offset is not None else ''}: {p.message}"
                       for p in report.problems[:LISTED])
    more = f"; and {len(report.problems) - LISTED} more" if len(report.problems) > LISTED else ""
    return CheckResult(id=f"model_format:{report.file}", status=_PROBLEM_STATUS[worst],
                       observed=[p.kind for p in report.problems], threshold="well formed, within limits",
                       message=f"{report.file} ({report.format}): {listed}{more}")


def _callables_check(report: FileReport, scan: Scan) -> CheckResult:
    by_verdict: dict[Verdict, list[CallableFinding]] = defaultdict(list)
    for finding in report.callables:
        by_verdict[finding.verdict].append(finding)
    denied, unknown = by_verdict[Verdict.DENIED], by_verdict[Verdict.UNKNOWN]
    distinct = {v: len({f.callable for f in found}) for v, found in by_verdict.items()}  # names, not uses
    scan.count("callables", sum(distinct.values()))
    scan.count("callables.denied", distinct.get(Verdict.DENIED, 0))
    scan.count("callables.unknown", distinct.get(Verdict.UNKNOWN, 0))
    on_unknown = scan.config.unknown_callable.value
    if denied:
        status = Status.FAIL
    elif unknown:
        status = Status(on_unknown)
    else:
        status = Status.PASS
    parts = []
    if denied:
        parts.append("denied: " + _listing(denied))
    if unknown:
        parts.append("not on the allowlist: " + _listing(unknown))
    allowed = distinct.get(Verdict.ALLOWED, 0)
    if not parts:
        parts.append(f"{allowed} distinct callable(s), all on the allowlist" if allowed else "no callables")
    return CheckResult(
        id=f"callables:{report.file}", status=status,
        observed=f"{distinct.get(Verdict.DENIED, 0)} denied, {distinct.get(Verdict.UNKNOWN, 0)} unknown, "
                 f"{allowed} allowed",
        threshold=f"denied: fail, unknown: {on_unknown}",
        message=f"{report.file}: " + "; ".join(parts))


def _listing(findings: list[CallableFinding]) -> str:
    """``posix.system at byte 305 (STACK_GLOBAL; REDUCE at 322) — why``: each distinct callable once, at its
    first offset, with the opcodes that use it later."""
    grouped: dict[str, list[CallableFinding]] = defaultdict(list)
    for finding in sorted(findings, key=lambda f: f.offset):
        grouped[finding.callable].append(finding)
    items = []
    for name, found in list(grouped.items())[:LISTED]:
        first, later = found[0], found[1:]
        uses = "; ".join(f"{f.opcode} at {f.offset}" for f in later[:3])
        uses += f"; {len(later) - 3} more" if len(later) > 3 else ""
        reason = f" — {first.reason}" if first.reason else ""
        items.append(f"{name} at byte {first.offset} ({first.opcode}{'; ' + uses if uses else ''}){reason}")
    more = f", and {len(grouped) - LISTED} more" if len(grouped) > LISTED else ""
    return ", ".join(items) + more


def _file_row(report: FileReport, fmt: str) -> dict[str, Any]:
    return {"file": report.file, "format": fmt, "size": report.size, "sha256": report.sha256,
            "members": list(report.members),
            "problems": [{"kind": p.kind, "severity": p.severity.value, "offset": p.offset, "message": p.message}
                         for p in report.problems]}


def _callable_row(finding: CallableFinding) -> dict[str, Any]:
    return {"file": finding.file, "offset": finding.offset, "callable": finding.callable, "opcode": finding.opcode,
            "verdict": finding.verdict.value, "reason": finding.reason}
