"""A candidate's files on local disk, for gates that read bytes (``security_scan``): the impure part.

What comes down from the store, into one folder per run (:func:`candidate_folder`):

- every pinned artifact, streamed to disk while its SHA-256 is computed and compared with the
  manifest's pin: a file whose bytes differ is deleted and named in ``artifact_errors`` (the gate
  never scans anything but the pinned bytes);
- the requirements file the manifest names (``requirements:``), if any;
- the bundle's other text files under ``candidates/<model>/<version>/`` (configs, notebooks, scripts,
  a ``.env``…), for the secrets check: each at most :data:`MAX_TEXT_BYTES`, together at most
  :data:`MAX_TEXT_TOTAL`; what is left out is named in ``bundle_skipped`` with why.

Apart from that folder, :func:`fetch_model_card` reads the version's Markdown model card
(``versions.<v>.model_card``, an object key) into memory for ``compliance_review``, bounded by the
gate's own limit (:data:`gates.compliance_review.model_card.MAX_CARD_BYTES`).

Artifacts are stored as an index and a sanitised base name (``artifacts/001-model.joblib``); text
files keep their place below the candidate prefix (``bundle/conf/app.yaml``), so a requirements
file's ``-r base.txt`` finds its neighbour, and a key no safe local path can mirror (``..``, empty
segments) is skipped and named. Nothing here judges a file: a failure to read one is
recorded for the gate to report (``error``, never ``pass``).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from clearance.config.schema import ModelVersion
from clearance.core.keys import candidate_prefix
from clearance.settings import get_settings
from gates.compliance_review.model_card import MAX_CARD_BYTES
from tasks.caching import per_run_key
from tasks.prefect_tasks import task
from tasks.store import ChecksumMismatch, ObjectNotFound, Store
from tasks.wiring import object_store

#: Largest text file of the bundle scanned for secrets, and largest total of them.
MAX_TEXT_BYTES = 1 << 20
MAX_TEXT_TOTAL = 16 << 20
#: Largest requirements file read (a longer one is not a requirements file).
MAX_REQUIREMENTS_BYTES = 1 << 20
#: File name endings of the bundle's text files (files without an ending — ``Dockerfile``, ``MLmodel``,
#: ``.env`` — are text too).
TEXT_SUFFIXES = (".txt", ".in", ".md", ".rst", ".json", ".yaml", ".yml", ".toml", ".cfg", ".ini", ".conf", ".env",
                 ".properties", ".py", ".sh", ".ipynb", ".pem", ".key", ".xml", ".sql", ".r", ".js", ".tf", ".lock")
COMPLETE = "complete.json"  # written last: what was fetched, for people looking


class CandidateFiles(BaseModel):
    """Where a candidate's files are on local disk, and which could not be brought there (and why)."""

    folder: str
    bundle_root: str | None = Field(None, description="Local folder mirroring candidates/<model>/<version>/.")
    artifacts: dict[str, str] = Field(default_factory=dict, description="Artifact key → local path (pinned bytes).")
    artifact_errors: dict[str, str] = Field(default_factory=dict, description="Artifact key → why it is not here.")
    requirements_key: str | None = None
    requirements: str | None = Field(None, description="Local path of the requirements file.")
    requirements_error: str | None = None
    bundle: dict[str, str] = Field(default_factory=dict, description="Text file key → local path.")
    bundle_skipped: dict[str, str] = Field(default_factory=dict, description="Text file key → why it was not read.")

    def gate_extra(self, advisory_db: str | None = None, advisory_max_age: float | None = None) -> dict[str, Any]:
        """The ``GateInputs.extra`` entries ``security_scan`` reads (with the worker's advisory database and the
        age past which it warns, in seconds)."""
        extra: dict[str, Any] = {"artifact_files": dict(self.artifacts), "artifact_errors": dict(self.artifact_errors),
                                 "bundle_files": dict(self.bundle), "bundle_skipped": dict(self.bundle_skipped)}
        if self.bundle_root is not None:
            extra["bundle_root"] = self.bundle_root
        if self.requirements_key is not None:
            extra["requirements_key"] = self.requirements_key
            if self.requirements is not None:
                extra["requirements"] = self.requirements
            else:
                extra["requirements_error"] = self.requirements_error or "not read"
        if advisory_db:
            extra["advisory_db"] = advisory_db
        if advisory_max_age:
            extra["advisory_max_age"] = advisory_max_age
        return extra


def candidate_folder(run_id: str) -> Path:
    """The local folder of one run's candidate files (the same path when the run resumes)."""
    return Path(tempfile.gettempdir()) / "clearance-candidate" / run_id


def local_name(index: int, key: str) -> str:
    """``003-model.joblib``: an index and the key's base name with anything unusual replaced."""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", posixpath.basename(key)).lstrip(".") or "file"
    return f"{index:03d}-{base[:100]}"


class TooBig(ValueError):
    """A file is larger than what is read of it."""


def download(store: Store, key: str, dest: Path, *, expected_sha256: str | None = None,
             max_bytes: int | None = None) -> tuple[str, int]:
    """Stream ``key`` to ``dest`` (constant memory), hashing it; returns (sha256, size).

    Raises :class:`ChecksumMismatch` when ``expected_sha256`` is given and differs, :class:`TooBig`
    past ``max_bytes``; ``dest`` exists only after a complete, verified download.
    """
    partial = dest.with_name(dest.name + ".part")
    digest, size = hashlib.sha256(), 0
    try:
        with open(partial, "wb") as out:
            for chunk in store.iter_chunks(key):
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise TooBig(f"larger than {max_bytes} bytes")
                digest.update(chunk)
                out.write(chunk)
        actual = digest.hexdigest()
        if expected_sha256 is not None and actual != expected_sha256:
            raise ChecksumMismatch(f"{store.url(key)}: content has sha256 {actual}, the manifest pins "
                                   f"{expected_sha256}", key=key, bucket=store.bucket)
        partial.replace(dest)
        return actual, size
    finally:
        partial.unlink(missing_ok=True)


def _why(exc: Exception) -> str:
    if isinstance(exc, ObjectNotFound):
        return "not found"
    if isinstance(exc, ChecksumMismatch):
        return f"content differs from the pinned sha256: {exc}"
    return f"could not read: {type(exc).__name__}: {exc}"


def _is_text(key: str) -> bool:
    name = posixpath.basename(key).lower()
    return name.endswith(TEXT_SUFFIXES) or "." not in name.lstrip(".") or name.startswith(".env")


def bundle_path(root: Path, prefix: str, key: str) -> Path | None:
    """Where a key under the candidate ``prefix`` goes below ``root``, keeping its sub-folders (so a
    requirements file's ``-r other.txt`` finds its neighbour); ``None`` for a key no safe path can mirror
    (``..``, empty or odd segments, backslashes, control characters)."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix):].split("/")
    if not parts or len(parts) > 16 or any(
            part in ("", ".", "..") or len(part) > 200 or "\\" in part or any(ord(c) < 32 for c in part)
            for part in parts):
        return None
    return root.joinpath(*parts)


def fetch_candidate_files(store: Store, model: str, version: str, entry: ModelVersion, folder: Path) -> CandidateFiles:
    """Bring the candidate's artifacts, requirements file and bundle text files into ``folder``."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "artifacts").mkdir(parents=True)
    bundle_root = folder / "bundle"
    bundle_root.mkdir()
    prefix = candidate_prefix(model, version)
    files = CandidateFiles(folder=str(folder), bundle_root=str(bundle_root))
    for index, ref in enumerate(entry.artifacts, start=1):
        dest = folder / "artifacts" / local_name(index, ref.key)
        try:
            download(store, ref.key, dest, expected_sha256=ref.sha256)
            files.artifacts[ref.key] = str(dest)
        except Exception as exc:  # noqa: BLE001 — the gate reports what could not be read, as error or fail
            files.artifact_errors[ref.key] = _why(exc)
    if entry.requirements:
        files.requirements_key = entry.requirements
        req = bundle_path(bundle_root, prefix, entry.requirements) or (
            folder / "requirements" / local_name(1, entry.requirements))
        req.parent.mkdir(parents=True, exist_ok=True)
        try:
            download(store, entry.requirements, req, max_bytes=MAX_REQUIREMENTS_BYTES)
            files.requirements = str(req)
        except Exception as exc:  # noqa: BLE001 — reported by the gate's dependencies check
            files.requirements_error = _why(exc)
    taken = {ref.key for ref in entry.artifacts} | {ref.uri for ref in entry.datasets}
    try:
        listed = [key for key in store.list_keys(prefix) if key not in taken]
    except Exception as exc:  # noqa: BLE001 — the secrets check says the bundle could not be listed
        files.bundle_skipped[prefix] = _why(exc)
        listed = []
    total = 0
    for key in listed:
        if not _is_text(key):
            continue
        mirrored = bundle_path(bundle_root, prefix, key)
        if mirrored is None:
            files.bundle_skipped[key] = "a key no local path can mirror safely (.., empty or odd segments)"
            continue
        if key == entry.requirements and files.requirements is not None:
            files.bundle[key] = files.requirements  # already here
            total += Path(files.requirements).stat().st_size
            continue
        info = store.head(key)
        if info is None:
            continue  # deleted since the listing
        if info.size > MAX_TEXT_BYTES:
            files.bundle_skipped[key] = f"{info.size} bytes, over the {MAX_TEXT_BYTES}-byte limit of a text file"
            continue
        if total + info.size > MAX_TEXT_TOTAL:
            files.bundle_skipped[key] = f"the bundle's text files are over {MAX_TEXT_TOTAL} bytes together"
            continue
        mirrored.parent.mkdir(parents=True, exist_ok=True)
        try:
            _, size = download(store, key, mirrored, max_bytes=MAX_TEXT_BYTES)
        except Exception as exc:  # noqa: BLE001 — named as not scanned
            files.bundle_skipped[key] = _why(exc)
            continue
        total += size
        files.bundle[key] = str(mirrored)
    (folder / COMPLETE).write_text(json.dumps(files.model_dump(mode="json")))
    return files


@task(name="fetch-candidate-files", persist_result=True, cache_key_fn=per_run_key)
def fetch_candidate_files_task(model: str, version: str, entry: ModelVersion, run_id: str) -> dict[str, Any]:
    """The candidate's files on this worker, as the ``GateInputs.extra`` entries of ``security_scan``
    (with the advisory database of the settings, ``CLEARANCE_ADVISORY_DB``, and ``CLEARANCE_ADVISORY_MAX_AGE``).

    Cached per run like the gates: a resumed run, whose gates return their stored results, does not
    download the candidate again. (Should a gate be evaluated again on a worker without this folder,
    it reports the missing local copies as errors, never as a pass.)"""
    settings = get_settings()
    files = fetch_candidate_files(object_store(settings), model, version, entry, candidate_folder(run_id))
    return files.gate_extra(str(settings.advisory_db) if settings.advisory_db else None,
                            settings.advisory_max_age.total_seconds())


@task(name="discard-candidate-files", persist_result=True, cache_key_fn=per_run_key)
def discard_candidate_files(run_id: str) -> None:
    """Remove the run's local copy of the candidate (the gates that read it have decided); once per run, like
    the fetch: a resumed pass fetches nothing, so it has nothing to remove."""
    shutil.rmtree(candidate_folder(run_id), ignore_errors=True)


def fetch_model_card(store: Store, key: str | None) -> dict[str, Any]:
    """The ``GateInputs.extra`` entries of the version's Markdown model card (``compliance_review``).

    ``{}`` when the version names no card; else ``model_card_key``, ``model_card_markdown`` (the text,
    or ``None``) and, when the text could not be read, ``model_card_error``: not found, over
    :data:`MAX_CARD_BYTES` (the gate's limit: nothing past it is read), not UTF-8, or the store's
    error. Never raises: the gate reports a card that could not be read.
    """
    if not key:
        return {}
    extra: dict[str, Any] = {"model_card_key": key, "model_card_markdown": None}
    try:
        info = store.head(key)
        if info is None:
            return extra | {"model_card_error": f"{key}: not found"}
        if info.size > MAX_CARD_BYTES:
            return extra | {"model_card_error": f"{key}: {info.size} bytes, over the {MAX_CARD_BYTES}-byte limit "
                                                "of a model card"}
        body = bytearray()
        for chunk in store.iter_chunks(key):
            body += chunk
            if len(body) > MAX_CARD_BYTES:  # grew since the head: still bounded
                return extra | {"model_card_error": f"{key}: over the {MAX_CARD_BYTES}-byte limit of a model card"}
    except Exception as exc:  # noqa: BLE001 — the gate reports the card as unreadable
        return extra | {"model_card_error": f"{key}: {_why(exc)}"}
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as exc:
        return extra | {"model_card_error": f"{key}: not UTF-8 text (byte {exc.start})"}
    return extra | {"model_card_markdown": text, "model_card_sha256": hashlib.sha256(body).hexdigest()}


@task(name="fetch-model-card", persist_result=True, cache_key_fn=per_run_key)
def fetch_model_card_task(entry: ModelVersion) -> dict[str, Any]:
    """Prefect task around :func:`fetch_model_card` for the version's ``model_card`` key (cached per run)."""
    return fetch_model_card(object_store(), entry.model_card)
