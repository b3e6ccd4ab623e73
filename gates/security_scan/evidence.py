"""The evidence file of ``security_scan``: one JSON table of everything the scan saw.

``security_scan_files.json`` (canonical JSON)::

    {"files":       [{file, format, size, sha256, members, problems: [{kind, severity, offset, message}]}],
     "callables":   [{file, offset, callable, opcode, verdict, reason}],
     "requirements": [{name, version, specifier, where, applies, marker, hashes, url, pinned_by}],
     "requirement_issues": [{where, kind, severity, message, package}],
     "advisory_db": {path, format, ecosystem, records, advisories, newest_modified, age_seconds, …} | null,
     "advisories":  [{package, version, advisory, aliases, summary, severity, cvss_score, fixed_in, where}],
     "secrets":     [{file, line, kind, masked}],          # values masked: never the secret itself
     "not_scanned": [{file, why}],                         # text files left out (size bounds, odd keys)
     "storage":     [BucketPosture…],
     "summary":     {checks, failed, warned, …}}

Every file and archive member the scan read is a row of ``files``; every callable of every pickle
stream a row of ``callables``, with the byte offset of its opcode in that file's (or member's) stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gates.base import EvidenceFile
from gates.evidence import write_json

TABLE_NAME = "security_scan_files.json"


def write_table(directory: Path, table: dict[str, Any], summary: dict[str, Any]) -> EvidenceFile:
    """Write the table into ``directory``; its :class:`EvidenceFile` (name, digest, media type, file URI)."""
    return write_json(directory, TABLE_NAME, {**table, "summary": summary})
