"""Model files and their containers scanned as bytes — never unpickled, never imported, never extracted.

:func:`scan_path` is the entry point: one file on disk in, one :class:`FileReport` per file and per
scanned archive member out (nested members named ``outer.tar.gz!inner.zip!archive/data.pkl``;
the top-level report first, every container before its members).

How a file is read: it is mapped read-only (``mmap``) and every scanner gets a ``memoryview`` of
it, so a 1 GB pickle is never copied into memory. The format comes from the magic bytes first and
the name second (:func:`sniff_format`, which agrees with ``artifact_integrity.detect_format`` where
that knows the format), then:

- pickle, joblib → the pickle engine (:func:`gates.security_scan.pickle_scan.scan_pickle`), every
  stream in the file; a legacy (non-zip) ``torch.save`` file → its five pickles (what ``torch.load``
  unpickles), not the raw storage bytes after them;
- ``.npy`` → its header is checked; an object array's payload is a pickle and is scanned;
- zip (PyTorch, Keras, npz, any zip) → every entry: stored entries are zero-copy slices, compressed
  ones are streamed into a bounded spool. In a PyTorch archive (``<name>/data.pkl``) the tensor
  storages ``<name>/data/<key>`` are raw bytes and are skipped unread; every other member — the
  ``data.pkl``, any other ``*.pkl``, anything that starts like a pickle — is scanned by its format;
- tar → every regular entry (zero-copy); links, devices and FIFOs are never followed;
- gzip, bz2, xz, lzma, zlib, joblib's legacy ``ZF`` and lz4 (if ``lz4`` is installed) →
  decompressed as a stream (every concatenated stream, as the readers do) within the limits, then
  scanned by the format of what came out. Compression is transparent in the report: its
  ``format`` is the inner format (a ``joblib.dump(..., compress=3)`` file is ``joblib``), its size
  and sha256 those of the stored bytes, and offsets of findings inside it are offsets in the
  decompressed stream;
- safetensors → :func:`gates.security_scan.safetensors_check.check_safetensors`;
- ONNX → :func:`gates.security_scan.onnx_check.check_onnx` (for the file on disk, its directory
  is the bundle its external data must stay in, symlinks resolved).

Problems of an archive *entry* (its name, its type, encryption, a read that failed or hit a limit)
are reported on the container's report with the member's nested name as ``Problem.file``; problems
of a member's *content* on the member's own report.

Decisions:

- every limit (:class:`ScanLimits`) is ``Problem(kind="limit", severity=ERROR)``: past a limit the
  content was not judged, and an unjudged file is never a pass — whether it is hostile (a bomb) or
  merely big, a human decides (or the tier raises the limit);
- ``max_depth`` counts container layers opened to reach a file, compression included: a pickle in
  a zip in a tar in a gzip sits under 3 layers (allowed by the default 3); a fourth container is
  not opened;
- the ratio limit applies once a member has produced more than 1 MiB (``containers.RATIO_FLOOR``):
  small, highly compressible files (configs, all-zero arrays) are not bombs;
- entry names with ``..``, absolute or drive paths, tar symlinks/hardlinks/devices and zip symlink
  entries → ``Problem(kind="path", FAIL)``; encrypted zip entries and sparse tar entries →
  ``ERROR`` (cannot be scanned); overlapping zip entries → ``Problem(kind="format", FAIL)``; a
  repeated entry name → ``WARN`` (every entry is scanned); a stored entry whose local header names
  another file than the central directory, or whose CRC-32 does not match → ``corrupt``, ``ERROR``;
- a top-level file that cannot be read is one report with ``Problem(kind="unreadable", ERROR)``
  (never an exception); any other exception inside a scanner becomes ``Problem(kind="scanner",
  ERROR)`` on the file it was scanning, and the scan goes on with the next member.
"""

from __future__ import annotations

import ast
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from gates.artifact_integrity import detect_format
from gates.security_scan.callables import CallablePolicy
from gates.security_scan.containers import (
    CODECS,
    Blob,
    Budget,
    ContainerError,
    Entry,
    LimitExceeded,
    TarArchive,
    ZipArchive,
    decompress,
    open_path,
    sha256_path,
    sha256_view,
)
from gates.security_scan.findings import FileReport, Problem, Severity
from gates.security_scan.onnx_check import check_onnx
from gates.security_scan.pickle_scan import scan_pickle
from gates.security_scan.safetensors_check import check_safetensors


@dataclass(frozen=True)
class ScanLimits:
    max_depth: int = 3                 # nested archives
    max_members: int = 10_000
    max_total_bytes: int = 8 << 30     # decompressed bytes over the whole scan (zip bomb guard)
    max_ratio: float = 200.0           # compressed → decompressed ratio per member
    max_safetensors_header: int = 100 << 20
    max_file_bytes: int = 64 << 30     # largest file or member scanned (a decompressed one: spooled at most)


def scan_path(path: Path, name: str, policy: CallablePolicy, limits: ScanLimits = ScanLimits(), *,
              known_sha256: str | None = None) -> list[FileReport]:
    """Scan the file at ``path``, reported as ``name``; ``known_sha256`` (already verified) skips hashing it."""
    return _Scanner(policy, limits).scan_file(path, name, known_sha256)


# --------------------------------------------------------------------------- format detection

_HEAD = 512
_STRONG_MAGIC: list[tuple[bytes, str]] = [
    (b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"),
    (b"\x1f\x8b\x08", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x93NUMPY", "npy"),
    (b"\x89HDF\r\n\x1a\n", "hdf5"),
    (b"PAR1", "parquet"),
    (b"\x80\x02", "pickle"), (b"\x80\x03", "pickle"), (b"\x80\x04", "pickle"), (b"\x80\x05", "pickle"),
]
_BZ2 = re.compile(rb"BZh[1-9]")
# Compressed files are named after what is inside them plus a suffix: the inner name guides detection.
_CODEC_SUFFIXES = re.compile(r"\.(gz|gzip|bz2|xz|lzma|z|zlib|lz4)$", re.IGNORECASE)
_TAR_SHORTHANDS = re.compile(r"\.(tgz|tbz2?|txz)$", re.IGNORECASE)
_PICKLE_FAMILY = {"pickle", "joblib"}
# Legacy (non-zip) ``torch.save``: pickles of this magic number, the protocol version and the system
# info, then the object, then the storage keys; the raw storage bytes follow and are never unpickled.
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\nl\xfc\x9cF\xf9 j\xa8P\x19."
_TORCH_LEGACY_STREAMS = 5


def sniff_format(name: str, head: bytes, size: int) -> str:
    """The format of a file from its first bytes (magic first) and its name (second).

    Compressed streams come out as their codec (``gzip``, ``bz2``, ``xz``, ``lzma``, ``zlib``,
    ``joblib-zf``, ``lz4``); the weak signatures (zlib, lzma, ZF) are not trusted for files named
    ``.safetensors`` or ``.onnx``, whose first bytes are a length or a protobuf tag.
    """
    ext = detect_format(name, b"")  # the name alone, as artifact_integrity reads it
    strong = next((fmt for magic, fmt in _STRONG_MAGIC if head.startswith(magic)), None)
    if strong is None and _BZ2.match(head):
        strong = "bz2"
    if strong is None and head[257:262] == b"ustar":
        strong = "tar"
    if strong == "pickle":
        if head.startswith(_TORCH_LEGACY_MAGIC):
            return "pytorch"
        return ext if ext in _PICKLE_FAMILY else "pickle"
    if strong == "zip":
        return ext if ext in ("pytorch", "keras") else "zip"
    if strong is not None:
        return strong
    if ext == "safetensors" or _looks_safetensors(head, size):
        return "safetensors"
    if ext != "onnx":
        weak = _weak_codec(head)
        if weak is not None:
            return weak
    return ext


def _looks_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 10 or head[8:9] != b"{":
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n <= size - 8


def _weak_codec(head: bytes) -> str | None:
    if head.startswith(b"ZF0x"):
        return "joblib-zf"
    if len(head) >= 2 and head[0] == 0x78 and not head[1] & 0x20 and (head[0] << 8 | head[1]) % 31 == 0:
        return "zlib"
    if len(head) >= 13 and head[0] == 0x5D:  # lzma "alone": properties byte, dictionary size, length
        dict_size = int.from_bytes(head[1:5], "little")
        third = dict_size // 3
        if dict_size >= 4096 and (dict_size & (dict_size - 1) == 0 or dict_size % 3 == 0 and third & (third - 1) == 0):
            return "lzma"
    return None


def _inner_name(name: str) -> str:
    """The name of what a compressed file holds, to guide detection: ``a.tar.gz`` → ``a.tar``."""
    base = name.rsplit("!", 1)[-1]
    if _TAR_SHORTHANDS.search(base):
        return _TAR_SHORTHANDS.sub(".tar", base)
    return _CODEC_SUFFIXES.sub("", base)


def _torch_prefix(names: list[str]) -> str | None:
    """The record prefix of a ``torch.save`` zip (``<prefix>/data.pkl``), ``None`` when it is not one."""
    for name in names:
        parts = name.split("/")
        if len(parts) == 2 and parts[1] == "data.pkl" and parts[0]:
            return parts[0]
    return None


# --------------------------------------------------------------------------- the scanner


class _Scanner:
    def __init__(self, policy: CallablePolicy, limits: ScanLimits) -> None:
        self.policy = policy
        self.limits = limits
        self.budget = Budget(max_members=limits.max_members, max_total_bytes=limits.max_total_bytes,
                             max_ratio=limits.max_ratio, max_file_bytes=limits.max_file_bytes)
        self.reports: list[FileReport] = []

    def scan_file(self, path: Path, name: str, known_sha256: str | None) -> list[FileReport]:
        try:
            size = path.stat().st_size
            if size > self.limits.max_file_bytes:
                report = FileReport(name, detect_format(name, b""), size, known_sha256)
                report.problems.append(Problem(name, "limit", f"{size} bytes: larger than max_file_bytes "
                                               f"({self.limits.max_file_bytes}), not scanned", Severity.ERROR))
                return [report]
            sha256 = known_sha256 or sha256_path(path)
            blob = open_path(path)
        except OSError as exc:
            report = FileReport(name, "unknown", 0, known_sha256)
            report.problems.append(Problem(name, "unreadable", f"cannot read the file: {exc}", Severity.ERROR))
            return [report]
        with blob:
            report = FileReport(name, "unknown", len(blob), sha256)
            self.reports.append(report)
            self._content(report, blob, 0, name, path.parent)
        return self.reports

    def _content(self, report: FileReport, blob: Blob, depth: int, hint: str, model_dir: Path | None) -> None:
        """Detect the format of ``blob`` and scan it into ``report`` (and reports of its members)."""
        head = bytes(blob.view[:_HEAD])
        fmt = sniff_format(hint, head, len(blob))
        report.format = fmt
        try:
            if fmt in CODECS:
                self._codec(fmt, report, blob, depth, hint, model_dir)
            elif fmt == "pytorch" and head.startswith(_TORCH_LEGACY_MAGIC):
                self._pickle(report, blob.view, max_streams=_TORCH_LEGACY_STREAMS)
            elif fmt in _PICKLE_FAMILY or fmt == "pytorch" and not head.startswith(b"PK"):
                self._pickle(report, blob.view)
            elif fmt in ("zip", "pytorch", "keras"):
                self._zip(report, blob, depth)
            elif fmt == "tar":
                self._tar(report, blob, depth)
            elif fmt == "npy":
                self._npy(report, blob.view)
            elif fmt == "safetensors":
                checked = check_safetensors(blob.view, report.file, max_header=self.limits.max_safetensors_header)
                report.problems += checked.problems
            elif fmt == "onnx":
                report.problems += check_onnx(blob.view, report.file, model_dir=model_dir).problems
        except LimitExceeded as exc:
            report.problems.append(Problem(report.file, "limit", f"not scanned further: {exc}", Severity.ERROR))
        except ContainerError as exc:
            report.problems.append(Problem(report.file, "corrupt", str(exc), Severity.ERROR))
        except Exception as exc:  # noqa: BLE001 — a scanner crash must become evidence (error), never a pass
            report.problems.append(Problem(report.file, "scanner", f"the scan failed: {type(exc).__name__}: {exc}",
                                           Severity.ERROR))

    def _too_deep(self, report: FileReport, depth: int, what: str) -> bool:
        if depth < self.limits.max_depth:
            return False
        report.problems.append(Problem(report.file, "limit", f"{what} nested {depth} containers deep: deeper than "
                                       f"max_depth ({self.limits.max_depth}), not opened", Severity.ERROR))
        return True

    def _codec(self, codec: str, report: FileReport, blob: Blob, depth: int, hint: str,
               model_dir: Path | None) -> None:
        if self._too_deep(report, depth, f"{codec} stream"):
            return
        with decompress(codec, blob, self.budget) as inner:
            self._content(report, inner, depth + 1, _inner_name(hint), model_dir)

    def _pickle(self, report: FileReport, view: memoryview, base_offset: int = 0, max_streams: int = 1000) -> None:
        scanned = scan_pickle(view, report.file, self.policy, base_offset=base_offset, max_streams=max_streams)
        report.callables += scanned.callables
        report.problems += scanned.problems

    def _zip(self, report: FileReport, blob: Blob, depth: int) -> None:
        if self._too_deep(report, depth, "zip archive"):
            return
        with ZipArchive(blob, report.file, self.budget) as archive:
            prefix = _torch_prefix(archive.names())
            if prefix is not None and report.format == "zip":
                report.format = "pytorch"
            report.problems += archive.layout_problems()
            storages = f"{prefix}/data/" if prefix is not None else None
            for entry in archive.entries():
                if not self._take_member(report, entry):
                    return
                if storages and entry.name.startswith(storages) and "/" not in entry.name[len(storages):]:
                    continue  # a tensor storage: raw bytes, never unpickled by torch.load
                self._member(report, entry, depth + 1)

    def _tar(self, report: FileReport, blob: Blob, depth: int) -> None:
        if self._too_deep(report, depth, "tar archive"):
            return
        with TarArchive(blob, report.file) as archive:
            for entry in archive.entries():
                if not self._take_member(report, entry):
                    return
                self._member(report, entry, depth + 1)

    def _take_member(self, report: FileReport, entry: Entry) -> bool:
        try:
            self.budget.take_member()
        except LimitExceeded as exc:
            report.problems.append(Problem(report.file, "limit", f"stopped at entry {entry.name!r}: {exc}",
                                           Severity.ERROR))
            return False
        report.problems += entry.problems
        return True

    def _member(self, parent: FileReport, entry: Entry, depth: int) -> None:
        if not entry.readable:
            return
        full = f"{parent.file}!{entry.name}"
        if entry.size > self.limits.max_file_bytes:
            parent.problems.append(Problem(full, "limit", f"{entry.size} bytes: larger than max_file_bytes "
                                           f"({self.limits.max_file_bytes}), not scanned", Severity.ERROR))
            return
        try:
            blob = entry.open()
        except LimitExceeded as exc:
            parent.problems.append(Problem(full, "limit", f"not scanned: {exc}", Severity.ERROR))
            return
        except ContainerError as exc:
            parent.problems.append(Problem(full, "corrupt", f"cannot read the entry: {exc}", Severity.ERROR))
            return
        with blob:
            child = FileReport(full, "unknown", len(blob), blob.sha256 or sha256_view(blob.view))
            self.reports.append(child)
            parent.members.append(entry.name)
            self._content(child, blob, depth, entry.name, None)

    def _npy(self, report: FileReport, view: memoryview) -> None:
        """A NumPy ``.npy``: a header (a Python literal dict), then the data — a pickle for object arrays."""
        major = view[6] if len(view) > 6 else 0
        if major == 1 and len(view) >= 10:
            length, start = struct.unpack_from("<H", view, 8)[0], 10
        elif major in (2, 3) and len(view) >= 12:
            length, start = struct.unpack_from("<I", view, 8)[0], 12
        else:
            report.problems.append(Problem(report.file, "header", f"unknown .npy version {major}", Severity.FAIL, 6))
            return
        if length > 1 << 20 or start + length > len(view):
            report.problems.append(Problem(report.file, "header", f".npy header length {length} is over 1 MiB or "
                                           "past the end of the file", Severity.FAIL, 8))
            return
        text = bytes(view[start:start + length]).decode("utf-8" if major == 3 else "latin-1", errors="replace")
        try:
            header = ast.literal_eval(text)  # literals only: what numpy itself accepts; nothing is executed
        except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
            header = None
        if not isinstance(header, dict) or not {"descr", "fortran_order", "shape"} <= header.keys():
            report.problems.append(Problem(report.file, "header", ".npy header is not a dict with descr, "
                                           "fortran_order and shape", Severity.FAIL, start))
            return
        if _has_object_dtype(header["descr"]):
            with view[start + length:] as payload:
                self._pickle(report, payload, base_offset=start + length)


def _has_object_dtype(descr: object) -> bool:
    """An object dtype (``|O``), alone or as a field of a structured dtype: its payload is a pickle."""
    if isinstance(descr, str):
        return descr.lstrip("|<>=").startswith("O")
    if isinstance(descr, list):  # structured: [(name, dtype[, shape]), ...]
        return any(isinstance(f, tuple) and len(f) >= 2 and _has_object_dtype(f[1]) for f in descr)
    return False
