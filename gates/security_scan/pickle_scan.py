"""The pickle engine of the security_scan gate: every callable a pickle stream can import or call.

The bytes are read, never unpickled: no module is imported and nothing in the stream runs
(this package imports neither ``pickle`` nor ``pickletools``; a test checks it). A symbolic
machine (``pickle_machine``) runs the opcodes over stand-ins, so what a ``REDUCE`` calls is the
name imported below its arguments, and a ``STACK_GLOBAL`` imports the strings pushed (or fetched
from the memo) before it. Each import and call is judged by a :class:`CallablePolicy`.

What a stream can import: ``GLOBAL``, ``STACK_GLOBAL``, ``INST`` (after the py2 → py3 name mapping
Python applies, ``__builtin__.eval`` is ``builtins.eval``; a raw spelling that is itself denied
still counts as denied),
and extension codes ``EXT1/2/4`` (denied: see ``pickle_machine.EXTENSION_REASON``). What it
calls: ``REDUCE``, ``NEWOBJ``, ``NEWOBJ_EX``, ``OBJ``, ``INST``, ``BUILD`` (``__setstate__``), and
``APPEND(S)``/``SETITEM(S)``/``ADDITEMS`` on something other than a plain list, dict or set. A
call whose callable is not an imported name is reported as ``unresolved`` (unknown); a
``STACK_GLOBAL`` of computed strings, and a BUILD or mutation of an imported object, are denied.
Persistent ids (``PERSID``/``BINPERSID``, how torch refers to storages) are counted, not judged:
the loader's ``persistent_load`` decides what they become.

Files:

* **Several streams** in one buffer are scanned one after the other, as long as the byte after a
  ``STOP`` is an opcode (up to ``max_streams``). Trailing zero bytes end the scan cleanly
  (padding); any other trailing bytes are a ``trailing`` warning (pickle.load never reads them).
* **Truncated or corrupt** streams give a ``truncated``/``corrupt`` problem (severity error, the
  offset of the opcode that could not be read); everything found before it is kept.
* **joblib**: after the BUILD of a ``NumpyArrayWrapper`` the raw array bytes are skipped exactly
  (sized by ``joblib_arrays``) and the stream is scanned on after them. A wrapper is read this way
  in every top-level stream, as ``joblib.load`` would. The array bytes are also read the way
  ``pickle.load`` would read them (it knows no raw arrays), from the stream's state at that point:
  a denied callable there is reported (a pickle/joblib polyglot). joblib >= 1.2 starts each array
  with a padding length byte that is never an opcode, so this costs nothing on its files.
* **Big payloads** (``BINBYTES8``, ``BYTEARRAY8``, ``BINUNICODE8``, …) and raw arrays are skipped
  by offset, never sliced or copied, so a memoryview of an mmap of a large file stays cheap.

Findings are de-duplicated per (opcode, callable, verdict): allowed and unknown ones keep their
first offset, denied ones up to :data:`DENIED_REPEATS` offsets each.
"""

from __future__ import annotations

import _compat_pickle
from dataclasses import dataclass, field

from gates.security_scan import pickle_opcodes as ops
from gates.security_scan.callables import CallablePolicy
from gates.security_scan.findings import CallableFinding, Problem, Severity, Verdict
from gates.security_scan.joblib_arrays import WRAPPERS, read_array
from gates.security_scan.pickle_machine import Global, Machine
from gates.security_scan.pickle_opcodes import ScanError

DENIED_REPEATS = 100  # offsets kept per denied (opcode, callable)
MAX_DENIED = 100_000  # denied findings kept in all
MAX_OTHER = 10_000  # allowed and unknown findings kept in all
_RANK = {Verdict.ALLOWED: 0, Verdict.UNKNOWN: 1, Verdict.DENIED: 2}
_ZEROS = bytes(1 << 20)


@dataclass
class PickleScan:
    """What the scan of one buffer found. ``end`` is in the same coordinates as every offset
    (``base_offset`` + index in the buffer): after the last stream read, or where reading stopped."""

    callables: list[CallableFinding]
    problems: list[Problem]
    streams: int
    end: int
    persistent_ids: int = 0  # PERSID/BINPERSID opcodes seen (torch storages)
    joblib_arrays: int = 0  # raw joblib arrays skipped (object arrays included)
    skipped_bytes: int = field(default=0)  # raw joblib array bytes skipped

    def worst(self) -> Verdict | None:
        """The worst verdict among the callables (None when there are none)."""
        return max((c.verdict for c in self.callables), key=_RANK.__getitem__, default=None)


def py3_name(module: str, name: str) -> tuple[str, str]:
    """The name Python 3 imports for a (possibly Python 2) spelling, as ``Unpickler.find_class`` maps it."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class _Collector:
    """Judges imports (once per name), de-duplicates findings, counts the rest."""

    def __init__(self, file: str, policy: CallablePolicy, base: int) -> None:
        self.file = file
        self.policy = policy
        self.base = base
        self.callables: list[CallableFinding] = []
        self.problems: list[Problem] = []
        self.persistent_ids = 0
        self.arrays = 0
        self.skipped = 0
        self._judged: dict[tuple[str, str], tuple[str, str, Verdict, str]] = {}
        self._seen: dict[tuple[str, str, Verdict], int] = {}
        self._denied_at: set[tuple[str, str, int]] = set()
        self._denied = 0
        self._other = 0
        self._limited = False

    def judge(self, module: str, name: str) -> tuple[str, str, Verdict, str]:
        """(dotted, module, verdict, reason) of an import, after the py2 mapping."""
        cached = self._judged.get((module, name))
        if cached is None:
            mapped_module, mapped_name = py3_name(module, name)
            dotted = f"{mapped_module}.{mapped_name}"
            verdict, reason = self.policy.judge(dotted, module=mapped_module)
            if (mapped_module, mapped_name) != (module, name):
                raw = f"{module}.{name}"
                raw_verdict, raw_reason = self.policy.judge(raw, module=module)
                if raw_verdict is Verdict.DENIED:  # the raw spelling only counts when it is worse than unknown
                    verdict, reason = raw_verdict, raw_reason
                reason = f"{reason}; written as {raw} (Python 2 spelling)"
            cached = (dotted, mapped_module, verdict, reason)
            self._judged[(module, name)] = cached
        return cached

    def import_name(self, op: str, pos: int, module: str, name: str) -> Global:
        dotted, mapped_module, verdict, reason = self.judge(module, name)
        self.report(op, pos, dotted, verdict, reason)
        return Global(dotted, mapped_module, pos, verdict, reason)

    def report(self, op: str, pos: int, dotted: str, verdict: Verdict, reason: str) -> None:
        key = (op, dotted, verdict)
        seen = self._seen.get(key, 0)
        if verdict is Verdict.DENIED:
            if (op, dotted, pos) in self._denied_at:
                return None  # read twice (as joblib reads it and as pickle.load would)
            if seen >= DENIED_REPEATS or self._denied >= MAX_DENIED:
                return self._limit(pos)
            self._seen[key] = seen + 1
            self._denied_at.add((op, dotted, pos))
            self._denied += 1
        else:
            if seen:
                return None
            if self._other >= MAX_OTHER:
                return self._limit(pos)
            self._seen[key] = 1
            self._other += 1
        self.callables.append(CallableFinding(file=self.file, offset=self.base + pos, callable=dotted, opcode=op,
                                              verdict=verdict, reason=reason))
        return None

    def _limit(self, pos: int) -> None:
        if not self._limited:
            self._limited = True
            self.problems.append(Problem(self.file, "limit", "too many callables: further repeats are counted, "
                                         "not listed", Severity.WARN, self.base + pos))

    def problem(self, kind: str, pos: int, message: str) -> None:
        self.problems.append(Problem(self.file, kind, message, Severity.WARN, self.base + pos))

    def persistent_id(self, pos: int) -> None:
        self.persistent_ids += 1

    def raw_array(self, pos: int, nbytes: int) -> None:
        self.arrays += 1
        self.skipped += max(nbytes, 0)


def _all_zero(buf: bytes | bytearray | memoryview, start: int) -> bool:
    for chunk in range(start, len(buf), len(_ZEROS)):
        end = min(len(buf), chunk + len(_ZEROS))
        if buf[chunk:end] != _ZEROS[: end - chunk]:
            return False
    return True


def scan_pickle(buf: bytes | bytearray | memoryview, file: str, policy: CallablePolicy, *, base_offset: int = 0,
                max_streams: int = 1000) -> PickleScan:
    """Scan every pickle stream in ``buf`` (joblib's raw arrays skipped) and judge what they can call.

    ``file`` names the file (or ``outer!member``) in findings; ``base_offset`` is added to every
    offset (``buf`` may be a slice of a bigger file). At most ``max_streams`` streams are read;
    what follows them is left to the caller (``end`` says where), without a problem — e.g. the
    raw storages after the five pickles of a legacy torch file. Never raises on bad data:
    problems say why.
    """
    if not isinstance(buf, (bytes, bytearray)):
        buf = memoryview(buf).cast("B")
    sink = _Collector(file, policy, base_offset)
    machine = Machine(buf, sink, WRAPPERS, read_array)
    pos = 0
    streams = 0
    if not len(buf):
        sink.problems.append(Problem(file, "truncated", f"empty: no pickle stream (offset {base_offset})",
                                     Severity.ERROR, base_offset))
    while pos < len(buf) and streams < max_streams:
        if streams and buf[pos] not in ops.VALID:
            if not _all_zero(buf, pos):
                sink.problems.append(Problem(
                    file, "trailing", f"{len(buf) - pos} bytes after the last pickle stream are not a pickle "
                    "(not read by pickle.load; not scanned)", Severity.WARN, base_offset + pos))
            break
        streams += 1
        try:
            pos = machine.run(pos)
        except ScanError as exc:
            sink.problems.append(Problem(file, exc.kind, f"{exc.message} (offset {base_offset + exc.pos})",
                                         Severity.ERROR, base_offset + exc.pos))
            pos = exc.pos
            break
        except RecursionError as exc:  # deeply nested dtype fields: give up on this file, never pass
            sink.problems.append(Problem(file, "corrupt", f"nesting too deep: {exc}", Severity.ERROR,
                                         base_offset + pos))
            break
    return PickleScan(callables=sink.callables, problems=sink.problems, streams=streams, end=base_offset + pos,
                      persistent_ids=sink.persistent_ids, joblib_arrays=sink.arrays, skipped_bytes=sink.skipped)
