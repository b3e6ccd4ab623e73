"""Checks ``secrets``, ``secrets:<file>`` and ``not_scanned:<file>``: keys and tokens in the bundle's
text files (configs, scripts, notebooks, the requirements file), never shown unmasked.

Inputs: ``extra["bundle_files"]`` (object key, or a name, → local path), ``extra["bundle_root"]``
(the local folder mirroring the candidate prefix) and ``extra["bundle_skipped"]`` (key → why the
task did not bring it). Scanning is :func:`gates.security_scan.secrets.scan_files`: every finding
carries only the masked value (first 4 characters, ``…``, last 2; short values and private keys fully
masked), which is all this gate ever writes.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from gates.base import CheckResult, Status
from gates.security_scan.context import Scan
from gates.security_scan.secrets import SecretFinding, display_name, scan_files

CHECKS = {
    "secrets": "The bundle's text files were scanned for secrets",
    "secrets:<file>": "A text file holds no cloud key, token, private key or high-entropy secret",
    "not_scanned:<file>": "A text file of the bundle that was not scanned (too big, binary, unreadable), and why",
}
LISTED = 10


def run(scan: Scan) -> list[CheckResult]:
    given: dict[str, str] | None = scan.extra.get("bundle_files")
    skipped_by_task: dict[str, str] = scan.extra.get("bundle_skipped") or {}
    if given is None:
        return [CheckResult(id="secrets", status=Status.SKIPPED,
                            message="no text files of the bundle were given: secrets not looked for")]
    root = scan.path("bundle_root")
    paths = [Path(p) for p in given.values()]
    names = {display_name(Path(p), root): key for key, p in given.items()}
    result = scan_files(paths, root=root)
    checks: list[CheckResult] = []
    by_file: dict[str, list[SecretFinding]] = defaultdict(list)
    for finding in result.findings:
        by_file[names.get(finding.file, finding.file)].append(finding)
    scan.table["secrets"] = [{"file": names.get(f.file, f.file), "line": f.line, "kind": f.kind, "masked": f.masked}
                             for f in result.findings]
    scan.count("text_files", len(result.scanned))
    scan.count("secrets", len(result.findings))
    action = Status(scan.config.secrets.value)
    for file, findings in by_file.items():
        listed = ", ".join(f"line {f.line}: {f.kind} {f.masked}" for f in findings[:LISTED])
        more = f", and {len(findings) - LISTED} more" if len(findings) > LISTED else ""
        checks.append(CheckResult(
            id=f"secrets:{file}", status=action, observed=sorted({f.kind for f in findings}),
            threshold={"secrets": scan.config.secrets.value},
            message=f"{file}: {len(findings)} secret(s) — {listed}{more}. Remove them from the bundle and rotate "
                    "them: they were uploaded"))
    not_scanned = list(skipped_by_task.items())
    not_scanned += [(names.get(s.file, s.file), f"{s.reason}{': ' + s.detail if s.detail else ''}")
                    for s in result.skipped]
    for file, why in not_scanned:
        scan.table["not_scanned"].append({"file": file, "why": why})
        checks.append(CheckResult(id=f"not_scanned:{file}", status=Status.SKIPPED, observed=why,
                                  message=f"{file}: not scanned for secrets (or not to its end): {why}"))
    if given:
        summary = (f"{len(result.scanned)} text file(s), {result.bytes_scanned} bytes: "
                   f"{len(result.findings)} secret(s) in {len(by_file)} file(s)")
        checks.insert(0, CheckResult(id="secrets", status=Status.PASS, observed=len(result.scanned), message=summary))
    else:
        checks.insert(0, CheckResult(id="secrets", status=Status.SKIPPED, observed=0,
                                     message="the bundle has no text files besides the artifacts"))
    return checks
