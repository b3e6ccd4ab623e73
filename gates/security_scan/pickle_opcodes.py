"""The pickle opcode table as the scanner needs it: a kind and a size per opcode byte, and decoders.

Nothing here unpickles: values are decoded from the bytes of one opcode, on demand, and only
the small ones the scanner has to know (the strings a ``STACK_GLOBAL`` imports, memo indexes,
the shape and dtype of a joblib array). Offsets are indexes into the scanned buffer.

The scanner's loop dispatches on :data:`KIND` (one table lookup per opcode) and advances by
:data:`SIZE` for fixed-size opcodes; opcodes whose argument has a length prefix or ends at a
newline are measured by their own branch.
"""

from __future__ import annotations

import codecs
import mmap
import struct
from collections.abc import Callable

# Kinds, ordered roughly by how often they occur in big pickles (the loop tests them in order).
INVALID = 0
PUSH = 1  # fixed-size opcode that pushes one plain value: BININT*, BINFLOAT, NONE, NEWTRUE/FALSE, EMPTY_*
MEMOIZE = 2
SHORT = 3  # 1-byte length prefix, pushes: SHORT_BINUNICODE, SHORT_BINBYTES, SHORT_BINSTRING
MARK = 4
APPENDS = 5
BINPUT = 6  # BINPUT, LONG_BINPUT
BINGET = 7  # BINGET, LONG_BINGET
APPEND = 8
SETITEMS = 9
SETITEM = 10
TUPLE_N = 11  # TUPLE1..3
TUPLE = 12
EMPTY_DICT = 13
LONG = 14  # 4-byte unsigned length prefix, pushes: BINUNICODE, BINBYTES
FRAME = 15
LINE = 16  # pushes a newline-terminated value (protocol 0): INT, LONG, FLOAT, STRING, UNICODE
LINE_MEMO = 17  # PUT, GET with a decimal index line
OTHER = 18  # handled one by one (rare or significant)

OPCODES: dict[int, tuple[str, int, int]] = {}  # byte → (name, kind, total size or 0 when variable)


def _op(char: str | int, name: str, kind: int, size: int = 1) -> None:
    OPCODES[char if isinstance(char, int) else ord(char)] = (name, kind, size)


# protocol 0 and 1
_op("(", "MARK", MARK)
_op(".", "STOP", OTHER)
_op("0", "POP", OTHER)
_op("1", "POP_MARK", OTHER)
_op("2", "DUP", OTHER)
_op("F", "FLOAT", LINE, 0)
_op("I", "INT", LINE, 0)
_op("J", "BININT", PUSH, 5)
_op("K", "BININT1", PUSH, 2)
_op("L", "LONG", LINE, 0)
_op("M", "BININT2", PUSH, 3)
_op("N", "NONE", PUSH)
_op("P", "PERSID", OTHER, 0)
_op("Q", "BINPERSID", OTHER)
_op("R", "REDUCE", OTHER)
_op("S", "STRING", LINE, 0)
_op("T", "BINSTRING", OTHER, 0)
_op("U", "SHORT_BINSTRING", SHORT, 0)
_op("V", "UNICODE", LINE, 0)
_op("X", "BINUNICODE", LONG, 0)
_op("a", "APPEND", APPEND)
_op("b", "BUILD", OTHER)
_op("c", "GLOBAL", OTHER, 0)
_op("d", "DICT", OTHER)
_op("}", "EMPTY_DICT", EMPTY_DICT)
_op("e", "APPENDS", APPENDS)
_op("g", "GET", LINE_MEMO, 0)
_op("h", "BINGET", BINGET, 2)
_op("i", "INST", OTHER, 0)
_op("j", "LONG_BINGET", BINGET, 5)
_op("l", "LIST", OTHER)
_op("]", "EMPTY_LIST", PUSH)
_op("o", "OBJ", OTHER)
_op("p", "PUT", LINE_MEMO, 0)
_op("q", "BINPUT", BINPUT, 2)
_op("r", "LONG_BINPUT", BINPUT, 5)
_op("s", "SETITEM", SETITEM)
_op("t", "TUPLE", TUPLE)
_op(")", "EMPTY_TUPLE", PUSH)
_op("u", "SETITEMS", SETITEMS)
_op("G", "BINFLOAT", PUSH, 9)
# protocol 2
_op(0x80, "PROTO", OTHER, 2)
_op(0x81, "NEWOBJ", OTHER)
_op(0x82, "EXT1", OTHER, 2)
_op(0x83, "EXT2", OTHER, 3)
_op(0x84, "EXT4", OTHER, 5)
_op(0x85, "TUPLE1", TUPLE_N)
_op(0x86, "TUPLE2", TUPLE_N)
_op(0x87, "TUPLE3", TUPLE_N)
_op(0x88, "NEWTRUE", PUSH)
_op(0x89, "NEWFALSE", PUSH)
_op(0x8A, "LONG1", OTHER, 0)
_op(0x8B, "LONG4", OTHER, 0)
# protocol 3
_op("B", "BINBYTES", LONG, 0)
_op("C", "SHORT_BINBYTES", SHORT, 0)
# protocol 4
_op(0x8C, "SHORT_BINUNICODE", SHORT, 0)
_op(0x8D, "BINUNICODE8", OTHER, 0)
_op(0x8E, "BINBYTES8", OTHER, 0)
_op(0x8F, "EMPTY_SET", PUSH)
_op(0x90, "ADDITEMS", OTHER)
_op(0x91, "FROZENSET", OTHER)
_op(0x92, "NEWOBJ_EX", OTHER)
_op(0x93, "STACK_GLOBAL", OTHER)
_op(0x94, "MEMOIZE", MEMOIZE)
_op(0x95, "FRAME", FRAME, 9)
# protocol 5
_op(0x96, "BYTEARRAY8", OTHER, 0)
_op(0x97, "NEXT_BUFFER", PUSH)
_op(0x98, "READONLY_BUFFER", OTHER)

NAMES: list[str] = [OPCODES[b][0] if b in OPCODES else f"<invalid 0x{b:02x}>" for b in range(256)]
KIND: list[int] = [OPCODES[b][1] if b in OPCODES else INVALID for b in range(256)]
SIZE: list[int] = [OPCODES[b][2] if b in OPCODES else 0 for b in range(256)]
VALID = frozenset(OPCODES)
HIGHEST_PROTOCOL = 5

#: Opcodes whose value is a str when loaded (py2 strings decode to str with the default ASCII).
STR_OPCODES = frozenset(ord(c) for c in "XVSTU") | {0x8C, 0x8D}

# Longest string decoded for a name or a joblib field; longer ones are never a module name.
MAX_DECODED = 1 << 16
_LINE_WINDOWS = (128, 4096, 1 << 16, 1 << 20)


class ScanError(Exception):
    """The stream cannot be read on: ``kind`` is ``truncated`` or ``corrupt``; ``pos`` an index in the buffer."""

    def __init__(self, kind: str, pos: int, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.pos = pos
        self.message = message


def finder(buf: bytes | bytearray | memoryview) -> Callable[[bytes, int, int], int] | None:
    """A ``find(sub, start, end)`` searching ``buf`` in place: its own, or that of the bytes, bytearray
    or mmap a whole-object memoryview shows; None when there is none (use :func:`line_end`)."""
    if isinstance(buf, (bytes, bytearray)):
        return buf.find
    base = buf.obj
    if isinstance(base, (bytes, bytearray, mmap.mmap)) and len(base) == buf.nbytes and buf.contiguous:
        return base.find
    return None


def line_end(buf: bytes | bytearray | memoryview, start: int, limit: int) -> int:
    """Index of the first ``\\n`` at or after ``start`` (before ``limit``), or -1.

    Searched in place when :func:`finder` can (bytes, bytearray, a memoryview of a whole mmap);
    otherwise through growing windows copied one at a time, so a short line costs a small copy and
    a long one at most twice its size.
    """
    find = finder(buf)
    if find is not None:
        return find(b"\n", start, limit)
    pos = start
    for window in _LINE_WINDOWS:
        end = min(limit, pos + window)
        found = bytes(buf[pos:end]).find(b"\n")
        if found >= 0:
            return pos + found
        if end >= limit:
            return -1
        pos = end
    while pos < limit:
        end = min(limit, pos + _LINE_WINDOWS[-1])
        found = bytes(buf[pos:end]).find(b"\n")
        if found >= 0:
            return pos + found
        pos = end
    return -1


class ShortData(IndexError):
    """The data ends inside an opcode's argument (the loop turns it into ``truncated`` at the opcode)."""


def uint(buf: bytes | bytearray | memoryview, pos: int, size: int) -> int:
    """The little-endian unsigned integer of ``size`` bytes at ``pos``."""
    if pos + size > len(buf):
        raise ShortData("data ends inside an opcode argument")
    return int.from_bytes(buf[pos:pos + size], "little")


def extent(buf: bytes | bytearray | memoryview, pos: int, limit: int) -> int | None:
    """End of the opcode at ``pos`` (its argument included), or None when the data ends first."""
    op = buf[pos]
    size = SIZE[op]
    try:
        if size:
            end = pos + size
        elif KIND[op] == SHORT:
            end = pos + 2 + uint(buf, pos + 1, 1)
        elif op in (0x54, 0x58, 0x42, 0x8B):  # BINSTRING BINUNICODE BINBYTES LONG4
            end = pos + 5 + uint(buf, pos + 1, 4)
        elif op == 0x8A:  # LONG1
            end = pos + 2 + uint(buf, pos + 1, 1)
        elif op in (0x8D, 0x8E, 0x96):  # BINUNICODE8 BINBYTES8 BYTEARRAY8
            end = pos + 9 + uint(buf, pos + 1, 8)
        else:  # newline-terminated (one line, or two for GLOBAL and INST)
            end = line_end(buf, pos + 1, limit) + 1
            if end and op in (0x63, 0x69):
                end = line_end(buf, end, limit) + 1
            if end == 0:
                return None
    except ShortData:
        return None
    return end if end <= limit else None


def _line(buf: bytes | bytearray | memoryview, pos: int) -> bytes:
    end = line_end(buf, pos + 1, min(len(buf), pos + 1 + MAX_DECODED))
    if end < 0:
        raise ScanError("truncated", pos, f"{NAMES[buf[pos]]} argument has no end of line")
    return bytes(buf[pos + 1:end])


def _counted(buf: bytes | bytearray | memoryview, pos: int, width: int) -> bytes | None:
    size = uint(buf, pos + 1, width)
    if size > MAX_DECODED:
        return None
    start = pos + 1 + width
    return bytes(buf[start:start + size])


class Unreadable:
    """A value the scanner does not decode (a list, a big string, a buffer)."""

    __slots__ = ("what",)

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"<{self.what}>"


def scalar_at(buf: bytes | bytearray | memoryview, pos: int) -> object:
    """The value pushed by the plain-value opcode at ``pos`` (an :class:`Unreadable` for the rest).

    Raises :class:`ScanError` (``corrupt``) for an argument the unpickler would refuse.
    """
    op = buf[pos]
    try:
        if op == 0x4B:  # BININT1
            return buf[pos + 1]
        if op == 0x4D:  # BININT2
            return uint(buf, pos + 1, 2)
        if op == 0x4A:  # BININT
            return int.from_bytes(buf[pos + 1:pos + 5], "little", signed=True)
        if op == 0x4E:
            return None
        if op == 0x88:
            return True
        if op == 0x89:
            return False
        if op == 0x29:  # EMPTY_TUPLE
            return ()
        if op == 0x47:  # BINFLOAT
            return struct.unpack(">d", bytes(buf[pos + 1:pos + 9]))[0]
        if op in (0x8A, 0x8B):  # LONG1, LONG4
            data = _counted(buf, pos, 1 if op == 0x8A else 4)
            return Unreadable("long integer") if data is None else int.from_bytes(data, "little", signed=True)
        if op == 0x49:  # INT (protocol 0 spells True and False 01 and 00)
            line = _line(buf, pos)
            if line == b"00":
                return False
            if line == b"01":
                return True
            return int(line, 0)
        if op == 0x4C:  # LONG
            return int(_line(buf, pos).rstrip(b"L"), 0)
        if op == 0x46:  # FLOAT
            return float(_line(buf, pos))
        if op in (0x8C, 0x58, 0x8D):  # SHORT_BINUNICODE, BINUNICODE, BINUNICODE8
            data = _counted(buf, pos, {0x8C: 1, 0x58: 4, 0x8D: 8}[op])
            return Unreadable("long string") if data is None else data.decode("utf-8", "surrogatepass")
        if op == 0x56:  # UNICODE
            return _line(buf, pos).decode("raw-unicode-escape")
        if op in (0x55, 0x54):  # SHORT_BINSTRING, BINSTRING: py2 str, loaded as ASCII str
            data = _counted(buf, pos, 1 if op == 0x55 else 4)
            return Unreadable("long string") if data is None else data.decode("ascii")
        if op == 0x53:  # STRING: a quoted repr
            line = _line(buf, pos)
            if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
                raise ScanError("corrupt", pos, "STRING argument is not quoted")
            return codecs.escape_decode(line[1:-1])[0].decode("ascii")
        if op in (0x43, 0x42):  # SHORT_BINBYTES, BINBYTES
            data = _counted(buf, pos, 1 if op == 0x43 else 4)
            return Unreadable("long bytes") if data is None else data
    except (ValueError, UnicodeError, struct.error) as exc:
        raise ScanError("corrupt", pos, f"{NAMES[op]} argument is invalid: {exc}") from exc
    return Unreadable(NAMES[op].lower())
