"""Locating the datasets of a model version for the ``data_check`` gate (the impure part).

A manifest ``DatasetRef.uri`` is one of:

- ``s3://bucket/key`` — an object, or a prefix of many objects (every ``.parquet`` / ``.csv`` below it);
- a local path (absolute, ``file://…``, or relative and existing) — a file or a folder of files;
- anything else: an object key (or prefix) in the clearance bucket (``CLEARANCE_BUCKET``).

S3 is read through ``pyarrow.fs.S3FileSystem`` with the endpoint and keys of the settings
(``CLEARANCE_S3_ENDPOINT_URL``, ``CLEARANCE_S3_ACCESS_KEY_ID``, ``CLEARANCE_S3_SECRET_ACCESS_KEY``),
so SeaweedFS and AWS work the same. Each file is streamed once to compute its SHA-256; the
dataset digest is :func:`gates.data_check.models.dataset_digest` of them. Nothing here raises
for a bad dataset: the locator carries ``error`` and ``error_kind`` and the gate reports it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from clearance.config.schema import DatasetRef, ModelVersion
from clearance.settings import Settings, get_settings
from gates.data_check.models import DatasetLocator, FilesystemSpec, dataset_digest
from tasks.caching import per_run_key
from tasks.prefect_tasks import task

DATA_SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz")
CHUNK = 8 << 20


def filesystem_spec(settings: Settings) -> FilesystemSpec:
    """The S3 filesystem of the settings, as a serialisable spec."""
    endpoint = settings.s3_endpoint_url
    return FilesystemSpec(
        kind="s3",
        endpoint_override=endpoint,
        scheme="http" if endpoint and endpoint.startswith("http://") else "https",
        region=settings.s3_region,
        access_key=settings.s3_access_key_id,
        secret_key=settings.s3_secret_access_key,
    )


def split_uri(uri: str, settings: Settings) -> tuple[str, str]:
    """("local", path) or ("s3", "bucket/key") for a manifest URI."""
    if uri.startswith("s3://"):
        return "s3", uri[len("s3://"):]
    if uri.startswith("file://"):
        return "local", uri[len("file://"):]
    if Path(uri).is_absolute() or Path(uri).exists():
        return "local", uri
    return "s3", f"{settings.bucket}/{uri.lstrip('/')}"


def _format_of(path: str) -> str:
    return "csv" if path.lower().endswith((".csv", ".csv.gz")) else "parquet"


def _sha256(fs: Any, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open_input_stream(path) as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def locate_dataset(ref: DatasetRef, settings: Settings | None = None, *, compute_digest: bool = True) -> DatasetLocator:
    """Resolve one dataset: its files, their digests, and the filesystem the gate reads them from."""
    import pyarrow.fs as pafs

    settings = settings or get_settings()
    kind, path = split_uri(ref.uri, settings)
    spec = FilesystemSpec() if kind == "local" else filesystem_spec(settings)
    base = DatasetLocator(role=ref.role, uri=ref.uri, filesystem=spec, format=_format_of(path))
    fs = None
    try:
        fs = spec.to_pyarrow()
        if kind == "local":
            path = str(Path(path).resolve())
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            files = {Path(path).name: path}
        else:
            selector = pafs.FileSelector(path.rstrip("/"), recursive=True, allow_not_found=True)
            found = sorted(i.path for i in fs.get_file_info(selector)
                            if i.type == pafs.FileType.File and i.path.lower().endswith(DATA_SUFFIXES)
                            and not Path(i.path).name.startswith(("_", ".")))
            if not found:
                return base.model_copy(update={"error": f"{ref.role} ({ref.uri}): no such file or prefix",
                                               "error_kind": "not_found"})
            root = path.rstrip("/") + "/"
            files = {p[len(root):] if p.startswith(root) else p: p for p in found}
        formats = {_format_of(p) for p in files.values()}
        if len(formats) > 1:
            return base.model_copy(update={"error": f"{ref.role} ({ref.uri}): mixes CSV and Parquet files",
                                           "error_kind": "unreadable"})
        file_sha = {name: _sha256(fs, p) for name, p in files.items()} if compute_digest else {}
        return base.model_copy(update={
            "files": list(files.values()), "format": formats.pop(), "file_sha256": file_sha,
            "sha256": dataset_digest(file_sha) if file_sha else None,
        })
    except Exception as exc:  # noqa: BLE001 — an unreachable store is an error check, not a crash
        from gates.data_check.reader import classify

        # By the exception's type (and, for a bare OSError, by asking the store), never its text.
        kind_ = classify(exc, fs, [path]) if fs is not None else "unreachable"
        return base.model_copy(update={"error": f"{ref.role} ({ref.uri}): {kind_}: {type(exc).__name__}: {exc}",
                                       "error_kind": kind_})


def locate_datasets(version: ModelVersion, settings: Settings | None = None) -> dict[str, DatasetLocator]:
    """Role → locator for every dataset of a model version (what ``GateInputs.datasets`` takes)."""
    return {ref.role: locate_dataset(ref, settings) for ref in version.datasets}


@task(name="locate-datasets", persist_result=True, cache_key_fn=per_run_key)
def located_datasets_task(version: ModelVersion) -> dict[str, DatasetLocator]:
    """Prefect task around :func:`locate_datasets` with the process settings, persisted without the store's
    keys (:func:`without_keys`): a resumed run gets the same locators back instead of hashing every file again."""
    return {role: without_keys(locator) for role, locator in locate_datasets(version, get_settings()).items()}


def locate_datasets_task(version: ModelVersion) -> dict[str, DatasetLocator]:
    """The version's datasets located once per run (:func:`located_datasets_task`), with the keys of the
    process's settings put back on the S3 ones for the gate that reads them."""
    return {role: with_keys(locator, get_settings()) for role, locator in located_datasets_task(version).items()}


def without_keys(locator: DatasetLocator) -> DatasetLocator:
    """The locator without S3 credentials (what may be persisted as a task result)."""
    spec = locator.filesystem.model_copy(update={"access_key": None, "secret_key": None})
    return locator.model_copy(update={"filesystem": spec})


def with_keys(locator: DatasetLocator, settings: Settings) -> DatasetLocator:
    """The locator with the settings' S3 credentials back: every S3 dataset is read with them
    (:func:`filesystem_spec`), so they are what :func:`without_keys` took."""
    if locator.filesystem.kind != "s3":
        return locator
    keys = filesystem_spec(settings)
    spec = locator.filesystem.model_copy(update={"access_key": keys.access_key, "secret_key": keys.secret_key})
    return locator.model_copy(update={"filesystem": spec})
