"""The evidence of ``load_test``: the generator's files, and the load run itself as ``load_test.json``.

The PNGs (latency over time, latency distribution) and the timeline JSONL were written by the generator
(``tasks/load_generator``) into the run's evidence folder; the gate does not read them: it records each
as an :class:`~gates.base.EvidenceFile` with the sha256 and location the run reports (the flow uploads
them and checks the digests). ``load_test.json`` is the LoadRun as canonical JSON, written by the gate.
"""

from __future__ import annotations

from pathlib import Path, PurePath
from typing import Any

from gates.base import EvidenceFile
from gates.evidence import write_json
from gates.load_test.judge import EvidenceEntry

RUN_NAME = "load_test.json"

_MEDIA_TYPES = {".png": "image/png", ".jsonl": "application/x-ndjson", ".json": "application/json",
                ".svg": "image/svg+xml", ".csv": "text/csv", ".txt": "text/plain"}


def media_type(name: str) -> str:
    """The media type of an evidence file, by its suffix."""
    return _MEDIA_TYPES.get(PurePath(name).suffix.lower(), "application/octet-stream")


def _uri(entry: EvidenceEntry) -> str | None:
    if entry.uri:
        return entry.uri
    if entry.path and PurePath(entry.path).is_absolute():
        return Path(entry.path).as_uri()
    return None


def generator_files(entries: list[EvidenceEntry]) -> list[EvidenceFile]:
    """The generator's files as evidence (digest and URI as the run reports them; nothing is read)."""
    return [EvidenceFile(name=PurePath(e.name).name, sha256=e.sha256.lower(), media_type=media_type(e.name),
                         uri=_uri(e)) for e in entries]


def write_run(directory: Path, run: dict[str, Any]) -> EvidenceFile:
    """Write the load run as canonical JSON into ``directory``; its :class:`EvidenceFile`."""
    return write_json(directory, RUN_NAME, run)
