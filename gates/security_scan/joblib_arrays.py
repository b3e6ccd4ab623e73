"""joblib's raw arrays: how many bytes follow a ``NumpyArrayWrapper`` in the file, read from its state.

``joblib.dump`` (``joblib/numpy_pickle.py``, ``NumpyPickler.save``) pickles each numpy array as a
``joblib.numpy_pickle.NumpyArrayWrapper`` whose BUILD sets ``subclass``, ``shape``, ``order``,
``dtype``, ``allow_mmap`` and (joblib >= 1.2) ``numpy_array_alignment_bytes``; right after that
BUILD the array itself is written into the file, not as opcodes:

* an object dtype (``dtype.hasobject``): a complete nested pickle stream (protocol 5, read by a
  plain unpickler with its own stack and memo), no padding;
* otherwise, when ``numpy_array_alignment_bytes`` is set (not None): one byte giving a padding
  length, that many padding bytes, then ``itemsize * prod(shape)`` bytes (``1`` for shape ``()``).

``joblib.load`` reads them from the *file* position, which is after the whole current frame when
the pickler framed (protocol 4+): the unpickler reads a frame ahead. joblib commits the frame
before writing an array, so the BUILD ends its frame; a file where it does not has its array after
the frame and the rest of the frame run afterwards, and the machine follows that order.

The dtype is the numpy.dtype REDUCE (``('f8', False, True)``) with its BUILD state tuple
``(version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata])``;
``flags & 1`` is numpy's NPY_ITEM_HASOBJECT.
"""

from __future__ import annotations

import re
from typing import Any

from gates.security_scan.findings import Verdict
from gates.security_scan.pickle_machine import Dict, Global, Machine, Obj, Sink
from gates.security_scan.pickle_opcodes import ScanError, Unreadable, scalar_at

WRAPPERS = frozenset({"joblib.numpy_pickle.NumpyArrayWrapper",
                      "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper"})
NUMPY_DTYPE = frozenset({"numpy.dtype", "numpy.core.multiarray.dtype", "numpy._core.multiarray.dtype"})
PLAIN_LOAD = "if loaded with pickle.load instead of joblib.load, the array bytes run this"
PLAIN_LOAD_BYTES = 16 << 20  # array bytes read as a plain pickle at most
_TYPESTR = re.compile(r"[<>|=]?([biufcmMOSUVa?])(\d*)")


def read_array(machine: Machine, wrapper: Obj, build_pos: int, start: int) -> int:
    """Skip the array that follows the wrapper BUILD at ``build_pos``, starting at ``start``.

    Returns the position after it. Raises ScanError when the array cannot be sized (an ERROR:
    the scan cannot know where the stream goes on) or the data ends inside it.
    """
    attrs = wrapper.attrs or {}
    buf = machine.buf
    size = len(buf)
    if "shape" not in attrs or "dtype" not in attrs:
        raise ScanError("corrupt", build_pos, "joblib array wrapper without shape or dtype: its size is unknown")
    count = _count(machine, attrs["shape"], build_pos)
    itemsize, hasobject = _dtype(machine, attrs["dtype"], build_pos, 0)
    if start >= size:
        raise ScanError("truncated", start, "data ends where a joblib array should start")
    if hasobject:  # a nested pickle stream, read by a plain unpickler
        machine.sink.raw_array(start, -1)
        return machine.run(start, plain=True)
    pos = start
    alignment = attrs.get("numpy_array_alignment_bytes")
    if alignment is not None and _value(machine, alignment) is not None:
        pos += 1 + buf[pos]
    nbytes = count * itemsize
    if pos + nbytes > size:
        raise ScanError("truncated", start,
                        f"data ends inside a joblib array of {nbytes} bytes ({max(0, size - pos)} remain)")
    machine.sink.raw_array(start, nbytes)
    _as_plain_pickle(machine, start, pos + nbytes)  # (the rest of a frame before it: scanned anyway)
    return pos + nbytes


class _PlainLoadSink:
    """Reports only denied callables, as what ``pickle.load`` (not joblib) would run from the array bytes."""

    def __init__(self, outer: Sink) -> None:
        self.outer = outer

    def judge(self, module: str, name: str) -> tuple[str, str, Verdict, str]:
        return self.outer.judge(module, name)

    def import_name(self, op: str, pos: int, module: str, name: str) -> Global:
        dotted, mapped_module, verdict, reason = self.outer.judge(module, name)
        self.report(op, pos, dotted, verdict, reason)
        return Global(dotted, mapped_module, pos, verdict, reason)

    def report(self, op: str, pos: int, dotted: str, verdict: Verdict, reason: str) -> None:
        if verdict is Verdict.DENIED:
            self.outer.report(op, pos, dotted, verdict, f"{PLAIN_LOAD}: {reason}")

    def problem(self, kind: str, pos: int, message: str) -> None:
        return None  # array bytes read as a pickle are expected to look odd: only denied callables count

    def persistent_id(self, pos: int) -> None:
        return None

    def raw_array(self, pos: int, nbytes: int) -> None:
        return None


def _as_plain_pickle(machine: Machine, start: int, end: int) -> None:
    """Read the array's bytes the way ``pickle.load`` would (it knows no raw arrays): a polyglot check.

    The reading goes on from (a copy of) the stream's state right after the wrapper's BUILD.
    joblib >= 1.2 starts an array with its padding length (1..16, never an opcode), so this stops at
    once; older files stop at the first byte that is no opcode (or no longer fits the stack). Only
    denied callables are reported; at most :data:`PLAIN_LOAD_BYTES` of the array are read.
    """
    if start >= end:
        return
    limit = min(end, start + PLAIN_LOAD_BYTES)
    shadow = Machine(machine.buf, _PlainLoadSink(machine.sink), frozenset(), read_array)
    try:
        shadow.run(start, plain=True, end=limit, state=machine.fork())
    except ScanError as exc:
        if exc.kind == "truncated" and limit < end and exc.pos >= limit - 16:
            machine.sink.problem("polyglot", start, f"the joblib array bytes also read as pickle opcodes for "
                                 f"{PLAIN_LOAD_BYTES >> 20} MiB; read no further as a pickle")


def _value(machine: Machine, entry: Any) -> Any:
    """A plain value, or a tuple of them (recursively)."""
    if type(entry) is int:
        return scalar_at(machine.buf, entry)
    if type(entry) is tuple:
        return tuple(_value(machine, item) for item in entry)
    return Unreadable(type(entry).__name__)


def _count(machine: Machine, shape: Any, pos: int) -> int:
    value = _value(machine, shape)
    if type(value) is not tuple or not all(isinstance(d, int) for d in value):
        raise ScanError("corrupt", pos, f"joblib array shape is not a tuple of integers: {value!r}")
    count = 1
    for dim in value:
        if dim < 0:
            raise ScanError("corrupt", pos, f"joblib array shape has a negative dimension: {value!r}")
        count *= dim
    return count


def _dtype(machine: Machine, entry: Any, pos: int, depth: int) -> tuple[int, bool]:
    """(itemsize, hasobject) of a pickled numpy dtype."""
    if depth > 8 or type(entry) is not Obj or entry.made_by is None or entry.made_by.dotted not in NUMPY_DTYPE:
        raise ScanError("corrupt", pos, "joblib array dtype is not a numpy.dtype: its size is unknown")
    args = entry.args
    typestr = machine.string(args[0]) if type(args) is tuple and args else None
    match = _TYPESTR.fullmatch(typestr or "")
    if match is None:
        raise ScanError("corrupt", pos, f"joblib array dtype {typestr!r} cannot be sized")
    kind, digits = match.groups()
    state = entry.state if type(entry.state) is tuple else ()
    elsize = _value(machine, state[5]) if len(state) > 5 else None
    flags = _value(machine, state[7]) if len(state) > 7 else None
    if digits:
        itemsize = int(digits) * (4 if kind == "U" else 1)
    elif isinstance(elsize, int) and elsize > 0:
        itemsize = elsize
    else:
        raise ScanError("corrupt", pos, f"joblib array dtype {typestr!r} has no size")
    if isinstance(elsize, int) and elsize > 0 and elsize != itemsize:
        raise ScanError("corrupt", pos, f"joblib array dtype {typestr!r} says {itemsize} bytes, its state {elsize}")
    hasobject = kind == "O"
    if isinstance(flags, int):
        if bool(flags & 1) != hasobject and kind != "V":
            raise ScanError("corrupt", pos, f"joblib array dtype {typestr!r} has inconsistent object flags")
        hasobject = bool(flags & 1)
    elif len(state) > 4 and type(state[4]) is Dict:  # old state without flags: look at the fields
        for _name, field in state[4].items:
            if type(field) is tuple and field and _dtype(machine, field[0], pos, depth + 1)[1]:
                hasobject = True
    return itemsize, hasobject
