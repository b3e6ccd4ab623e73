"""Containers of model files, read as bytes: zip and tar archives and compressed streams.

Nothing is ever extracted to disk under a member's name. A member is either a zero-copy slice of
its container's bytes (zip members stored without compression, tar members) or streamed through
its decompressor into a :class:`Spool` — memory while small, then an anonymous temporary file
(``tempfile.TemporaryFile``: unlinked at creation, gone when closed) mapped read-only. Every byte a
decompressor produces is counted against a :class:`Budget` (total over the whole scan, ratio per
member), so a zip bomb stops at the limit instead of filling the disk.

What a member's *entry* says is judged here (:func:`entry_name_problem`, links, encryption,
overlapping zip entries, local/central name mismatch); what its *content* is, is the caller's
(``model_files``) business.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import mmap
import re
import stat
import struct
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from gates.security_scan.findings import Problem, Severity

CHUNK = 1 << 20  # bytes read, hashed or decompressed per step
MEMORY_SPOOL = 16 << 20  # a spool stays in memory up to this size, then moves to a temporary file
RATIO_FLOOR = 1 << 20  # the ratio limit applies once a member has produced more than this many bytes

try:  # lz4 is optional: joblib writes it only when the package is installed
    import lz4.frame as _lz4_frame
except ImportError:  # pragma: no cover - depends on the environment
    _lz4_frame = None


class LimitExceeded(Exception):
    """A scan limit (depth, members, total bytes, ratio) stopped reading; the content is not judged."""


class ContainerError(Exception):
    """A container or compressed stream is corrupt, truncated or uses a feature that cannot be read."""


# --------------------------------------------------------------------------- bytes of one file or member


class Blob:
    """The bytes of one file or member as a read-only ``memoryview``; :meth:`close` releases what backs it."""

    def __init__(self, view: memoryview, closers: list[Callable[[], None]] | None = None, *,
                 sha256: str | None = None, mapping: mmap.mmap | None = None) -> None:
        self.view = view
        self.sha256 = sha256  # when known without another pass (hashed while spooling)
        self.mapping = mapping
        self._closers = closers or []

    def __len__(self) -> int:
        return len(self.view)

    def __enter__(self) -> Blob:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def slice(self, start: int, end: int) -> Blob:
        """A zero-copy sub-blob (close it before its parent)."""
        sub = self.view[start:end]
        return Blob(sub, [sub.release])

    def close(self) -> None:
        self.view.release()
        closers, self._closers = self._closers, []
        for closer in closers:
            closer()


def _close_mapping(mapping: mmap.mmap) -> Callable[[], None]:
    def close() -> None:
        try:
            mapping.close()
        except BufferError:
            # A view of it is still referenced somewhere (a bug, never a wrong verdict): the
            # mapping is closed when that last view is garbage-collected.
            _LEAKED.append(mapping)
    return close


_LEAKED: list[mmap.mmap] = []


def map_file(fileobj: IO[bytes], size: int) -> Blob:
    """A read-only mapping of an open file (an empty file is an empty view: empty files cannot be mapped)."""
    if size == 0:
        return Blob(memoryview(b""))
    mapping = mmap.mmap(fileobj.fileno(), 0, access=mmap.ACCESS_READ)
    return Blob(memoryview(mapping), [_close_mapping(mapping)], mapping=mapping)


def open_path(path: Path) -> Blob:
    """The file at ``path``, mapped read-only (never read into memory)."""
    with open(path, "rb") as f:  # the mapping outlives the descriptor
        size = f.seek(0, io.SEEK_END)
        return map_file(f, size)


def sha256_view(view: memoryview) -> str:
    """SHA-256 of a view, hashed in :data:`CHUNK` slices (no copy)."""
    h = hashlib.sha256()
    for start in range(0, len(view), CHUNK):
        with view[start:start + CHUNK] as part:
            h.update(part)
    return h.hexdigest()


def sha256_path(path: Path) -> str:
    """SHA-256 of a file, read through one reused buffer (memory stays at one chunk)."""
    h = hashlib.sha256()
    buffer = bytearray(CHUNK)
    with open(path, "rb", buffering=0) as f, memoryview(buffer) as view:
        while n := f.readinto(buffer):
            h.update(view[:n])
    return h.hexdigest()


# --------------------------------------------------------------------------- limits and spools


@dataclass
class Budget:
    """What the whole scan may still read: archive entries and decompressed bytes."""

    max_members: int
    max_total_bytes: int
    max_ratio: float
    max_file_bytes: int = 1 << 62
    members: int = 0
    produced: int = 0

    def take_member(self) -> None:
        if self.members >= self.max_members:
            raise LimitExceeded(f"more than {self.max_members} archive members in the scan (max_members)")
        self.members += 1

    def produce(self, n: int, produced_here: int, compressed: int) -> None:
        """Account ``n`` new decompressed bytes of a member that has now produced ``produced_here`` bytes."""
        self.produced += n
        if produced_here > self.max_file_bytes:
            raise LimitExceeded(f"decompresses to more than {self.max_file_bytes} bytes (max_file_bytes)")
        if self.produced > self.max_total_bytes:
            raise LimitExceeded(f"more than {self.max_total_bytes} decompressed bytes in the scan (max_total_bytes)")
        if produced_here > RATIO_FLOOR and produced_here > compressed * self.max_ratio:
            raise LimitExceeded(f"decompresses to more than {self.max_ratio:g}× its {compressed} compressed bytes "
                                "(max_ratio): a decompression bomb?")


class Spool:
    """Where a decompressed member goes: memory up to :data:`MEMORY_SPOOL` bytes, then an anonymous temp file."""

    def __init__(self, budget: Budget, compressed: int) -> None:
        self.budget = budget
        self.compressed = compressed
        self.size = 0
        self._hash = hashlib.sha256()
        self._memory: bytearray | None = bytearray()
        self._file: IO[bytes] | None = None

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.budget.produce(len(data), self.size + len(data), self.compressed)
        self.size += len(data)
        self._hash.update(data)
        if self._memory is not None:
            self._memory += data
            if len(self._memory) > MEMORY_SPOOL:
                self._file = tempfile.TemporaryFile(prefix="clearance-scan-")  # noqa: SIM115 (closed by the Blob)
                self._file.write(self._memory)
                self._memory = None
        else:
            assert self._file is not None
            self._file.write(data)

    def blob(self) -> Blob:
        """The spooled bytes as a blob (owning the temp file); the spool must not be written after."""
        digest = self._hash.hexdigest()
        if self._file is None:
            view = memoryview(self._memory if self._memory is not None else b"")  # no copy; never written again
            self._memory = None
            return Blob(view, sha256=digest)
        f, self._file = self._file, None
        try:
            f.flush()
            inner = map_file(f, self.size)
        except BaseException:
            f.close()
            raise
        return Blob(inner.view, [*inner._closers, f.close], sha256=digest, mapping=inner.mapping)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._memory = None


# --------------------------------------------------------------------------- compressed streams


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ...) -> bytes: ...


class _Zlib:
    """``zlib.decompressobj`` behind the ``bz2``/``lzma`` decompressor interface (``needs_input``)."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self.needs_input = True

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        out = self._d.decompress(data or self._d.unconsumed_tail, max_length)
        self.needs_input = not self._d.unconsumed_tail and len(out) < max_length
        return out


CODECS = ("gzip", "zlib", "joblib-zf", "bz2", "xz", "lzma", "lz4")
# joblib < 0.10 wrote "ZF", the uncompressed length in hex padded to 19 characters, then zlib data.
_ZF_HEADER = 2 + 19


def _new_decompressor(codec: str) -> _Decompressor:
    if codec == "gzip":
        return _Zlib(16 + zlib.MAX_WBITS)
    if codec in ("zlib", "joblib-zf"):
        return _Zlib(zlib.MAX_WBITS)
    if codec == "bz2":
        return bz2.BZ2Decompressor()
    if codec == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    if codec == "lzma":
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    if codec == "lz4":
        if _lz4_frame is None:
            raise ContainerError("lz4-compressed, and the lz4 package is not installed: cannot be scanned")
        decompressor: _Decompressor = _lz4_frame.LZ4FrameDecompressor()
        return decompressor
    raise ContainerError(f"unknown codec {codec}")


def decompress(codec: str, blob: Blob, budget: Budget) -> Blob:
    """Stream-decompress ``blob`` (every concatenated stream, as the readers do) into a spool, within the budget.

    Raises :class:`LimitExceeded` at a limit and :class:`ContainerError` on corrupt, truncated or
    trailing data (zero padding after gzip members is accepted, as ``gzip`` does).
    """
    view = blob.view
    start, declared = 0, None
    if codec == "joblib-zf":
        header = bytes(view[:_ZF_HEADER + 1])
        try:
            declared = int(header[2:_ZF_HEADER], 16)
        except ValueError:
            raise ContainerError("joblib ZF header without a hex length") from None
        start = _ZF_HEADER + (1 if header[_ZF_HEADER:] == b" " else 0)
    spool = Spool(budget, len(view) - start)
    try:
        _decompress_streams(codec, view, start, spool)
        if declared is not None and declared != spool.size:
            raise ContainerError(f"joblib ZF header declares {declared} bytes, the stream holds {spool.size}")
        return spool.blob()
    except BaseException:
        spool.discard()
        raise


def _decompress_streams(codec: str, view: memoryview, pos: int, spool: Spool) -> None:
    end = len(view)
    streams = 0
    while pos < end:
        if streams and codec == "gzip" and _all_zero(view, pos, end):
            return  # zero padding after the last gzip member (tape blocks), as gzip accepts
        streams += 1
        stream_at = pos
        d = _new_decompressor(codec)
        try:
            while not d.eof:
                if d.needs_input:
                    if pos >= end:
                        raise ContainerError(f"{codec} stream starting at byte {stream_at} is truncated")
                    chunk = bytes(view[pos:min(pos + CHUNK, end)])
                    pos += len(chunk)
                    spool.write(d.decompress(chunk, CHUNK))
                else:
                    spool.write(d.decompress(b"", CHUNK))
        except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError, RuntimeError) as exc:
            raise ContainerError(f"{codec} stream starting at byte {stream_at} is corrupt: {exc}") from exc
        pos -= len(d.unused_data)
        if codec == "joblib-zf":
            if pos < end:
                raise ContainerError(f"{end - pos} bytes after the joblib ZF stream")
            return


def _all_zero(view: memoryview, start: int, end: int) -> bool:
    for at in range(start, end, CHUNK):
        piece = bytes(view[at:min(at + CHUNK, end)])
        if piece.count(0) != len(piece):
            return False
    return True


# --------------------------------------------------------------------------- member names


_DRIVE = re.compile(r"^[A-Za-z]:")


def entry_name_problem(name: str) -> str | None:
    """Why an archive entry name would write outside the extraction directory; ``None`` when it would not."""
    if not name:
        return "empty member name"
    if "\x00" in name:
        return f"member name {name!r} contains a NUL byte"
    if name.startswith(("/", "\\")):
        return f"absolute member name {name!r}"
    if _DRIVE.match(name):
        return f"member name with a drive letter {name!r}"
    if ".." in re.split(r"[/\\]", name):
        return f"member name {name!r} escapes the archive (..)"
    return None


# --------------------------------------------------------------------------- archive entries


@dataclass
class Entry:
    """One archive entry: its name, what is wrong with the entry itself, and how to read its bytes."""

    name: str
    problems: list[Problem] = field(default_factory=list)
    readable: bool = True  # False: a directory, link, encrypted or special entry (never read)
    compressed: bool = False
    size: int = 0
    _open: Callable[[], Blob] | None = None

    def open(self) -> Blob:
        assert self._open is not None and self.readable
        return self._open()


class ViewReader(io.RawIOBase):
    """A seekable, read-only file object over a memoryview: ``zipfile`` and ``tarfile`` read a mapping through it."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view[:]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), len(self._view) - self._pos))
        buffer[:n] = self._view[self._pos:self._pos + n]
        self._pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        if base + offset < 0:
            raise OSError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        if not self.closed:
            self._view.release()
        super().close()


_LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")
_LOCAL_MAGIC = b"PK\x03\x04"


class ZipArchive:
    """The entries of a zip held in a blob; use as a context manager (it keeps a reader open)."""

    def __init__(self, blob: Blob, outer: str, budget: Budget) -> None:
        self.blob = blob
        self.outer = outer
        self.budget = budget
        self._reader = ViewReader(blob.view)
        try:
            self.zip = zipfile.ZipFile(self._reader)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error) as exc:
            self._reader.close()
            raise ContainerError(f"not a readable zip archive: {exc}") from exc
        self.infos = list(self.zip.infolist())

    def __enter__(self) -> ZipArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.zip.close()
        self._reader.close()

    def names(self) -> list[str]:
        return [i.filename for i in self.infos]

    def layout_problems(self) -> list[Problem]:
        """Entries that share bytes (a zip bomb and scanner-confusion technique) or repeat a name."""
        problems: list[Problem] = []
        seen: set[str] = set()
        for info in self.infos:
            if info.filename in seen:
                problems.append(Problem(f"{self.outer}!{info.filename}", "format",
                                        "the name appears more than once in the archive: loaders disagree on which "
                                        "entry they read (every entry is scanned)", Severity.WARN))
            seen.add(info.filename)
        extents = []
        for info in self.infos:
            data_at = self._data_offset(info)
            if data_at is not None:
                extents.append((info.header_offset, data_at + info.compress_size, info.filename))
        extents.sort()
        for (_, end, name), (start, _, next_name) in zip(extents, extents[1:], strict=False):
            if end > start:
                problems.append(Problem(f"{self.outer}!{next_name}", "format",
                                        f"entry overlaps the bytes of entry {name!r}", Severity.FAIL, offset=start))
        return problems

    def _data_offset(self, info: zipfile.ZipInfo) -> int | None:
        at = info.header_offset
        raw = bytes(self.blob.view[at:at + _LOCAL_HEADER.size])
        if len(raw) < _LOCAL_HEADER.size or raw[:4] != _LOCAL_MAGIC:
            return None
        fields = _LOCAL_HEADER.unpack(raw)
        return at + _LOCAL_HEADER.size + fields[9] + fields[10]

    def entries(self) -> Iterator[Entry]:
        for info in self.infos:
            yield self._entry(info)

    def _entry(self, info: zipfile.ZipInfo) -> Entry:
        name = info.filename
        entry = Entry(name, size=info.file_size, compressed=info.compress_type != zipfile.ZIP_STORED)
        full = f"{self.outer}!{name}"
        reason = entry_name_problem(name)
        if reason:
            entry.problems.append(Problem(full, "path", reason, Severity.FAIL, offset=info.header_offset))
        mode = info.external_attr >> 16
        if info.is_dir():
            entry.readable = False
        elif stat.S_ISLNK(mode):
            entry.readable = False
            entry.problems.append(Problem(full, "path", "symbolic link entry (unzip creates it as a link)",
                                          Severity.FAIL, offset=info.header_offset))
        elif info.flag_bits & 0x1:
            entry.readable = False
            entry.problems.append(Problem(full, "encrypted", "encrypted entry: its content cannot be scanned",
                                          Severity.ERROR, offset=info.header_offset))
        else:
            entry._open = lambda: self._read(info)
        return entry

    def _read(self, info: zipfile.ZipInfo) -> Blob:
        if info.compress_type == zipfile.ZIP_STORED:
            return self._stored(info)
        if info.file_size > RATIO_FLOOR and info.file_size > info.compress_size * self.budget.max_ratio:
            raise LimitExceeded(f"declares {info.file_size} bytes from {info.compress_size} compressed "
                                f"(over max_ratio {self.budget.max_ratio:g}): a decompression bomb?")
        spool = Spool(self.budget, info.compress_size)
        try:
            with self.zip.open(info) as member:
                while chunk := member.read(CHUNK):
                    spool.write(chunk)
            return spool.blob()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError, NotImplementedError,
                RuntimeError, ValueError) as exc:
            spool.discard()
            raise ContainerError(f"cannot read entry: {exc}") from exc
        except BaseException:
            spool.discard()
            raise

    def _stored(self, info: zipfile.ZipInfo) -> Blob:
        """A stored entry as a zero-copy slice, after the checks ``zipfile`` would do on open and read."""
        at = info.header_offset
        raw = bytes(self.blob.view[at:at + _LOCAL_HEADER.size])
        if len(raw) < _LOCAL_HEADER.size or raw[:4] != _LOCAL_MAGIC:
            raise ContainerError(f"no local header at byte {at}")
        fields = _LOCAL_HEADER.unpack(raw)
        name_at = at + _LOCAL_HEADER.size
        local_name = bytes(self.blob.view[name_at:name_at + fields[9]])
        encoding = "utf-8" if info.flag_bits & 0x800 else "cp437"
        if local_name.decode(encoding, errors="replace") != info.orig_filename:
            raise ContainerError(f"local header names {local_name!r}, the central directory {info.orig_filename!r}")
        start = name_at + fields[9] + fields[10]
        if info.compress_size != info.file_size:
            raise ContainerError("stored entry whose compressed and uncompressed sizes differ")
        if start + info.file_size > len(self.blob.view):
            raise ContainerError("entry data runs past the end of the archive")
        part = self.blob.slice(start, start + info.file_size)
        crc = 0
        for offset in range(0, len(part.view), CHUNK):
            with part.view[offset:offset + CHUNK] as piece:
                crc = zlib.crc32(piece, crc)
        if crc != info.CRC:
            part.close()
            raise ContainerError(f"CRC-32 mismatch (stored {info.CRC:08x}, computed {crc:08x})")
        return part


class TarArchive:
    """The entries of an uncompressed tar held in a blob (compression is a separate :func:`decompress` layer)."""

    def __init__(self, blob: Blob, outer: str) -> None:
        self.blob = blob
        self.outer = outer
        self._reader = ViewReader(blob.view)
        try:
            self.tar = tarfile.open(fileobj=self._reader, mode="r:")  # noqa: SIM115 (closed in __exit__)
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            self._reader.close()
            raise ContainerError(f"not a readable tar archive: {exc}") from exc

    def __enter__(self) -> TarArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.tar.close()
        self._reader.close()

    def entries(self) -> Iterator[Entry]:
        while True:
            try:
                info = self.tar.next()
            except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
                raise ContainerError(f"corrupt tar archive: {exc}") from exc
            if info is None:
                return
            yield self._entry(info)

    def _entry(self, info: tarfile.TarInfo) -> Entry:
        full = f"{self.outer}!{info.name}"
        entry = Entry(info.name, size=info.size)
        reason = entry_name_problem(info.name)
        if reason:
            entry.problems.append(Problem(full, "path", reason, Severity.FAIL, offset=info.offset))
        if info.issym() or info.islnk():
            kind = "symbolic" if info.issym() else "hard"
            entry.readable = False
            entry.problems.append(Problem(full, "path", f"{kind} link to {info.linkname!r}: links in a model "
                                          "archive can make extraction write or read outside it",
                                          Severity.FAIL, offset=info.offset))
        elif info.isdir():
            entry.readable = False
        elif info.ischr() or info.isblk() or info.isfifo():
            entry.readable = False
            entry.problems.append(Problem(full, "path", "device or FIFO entry", Severity.FAIL, offset=info.offset))
        elif info.issparse():
            entry.readable = False
            entry.problems.append(Problem(full, "format", "sparse entry: its content cannot be scanned",
                                          Severity.ERROR, offset=info.offset))
        elif not info.isreg():
            entry.readable = False
            entry.problems.append(Problem(full, "format", f"entry of unknown type {info.type!r}",
                                          Severity.ERROR, offset=info.offset))
        else:
            start, end = info.offset_data, info.offset_data + info.size
            if end > len(self.blob.view):
                entry.readable = False
                entry.problems.append(Problem(full, "truncated", f"entry data ({info.size} bytes) runs past the end "
                                              "of the archive", Severity.ERROR, offset=start))
            else:
                entry._open = lambda: self.blob.slice(start, end)
        return entry
