"""A tiny reader of the protobuf wire format: fields of a message in a buffer, nothing decoded eagerly.

Enough to walk an ONNX ``ModelProto`` without the ``onnx`` or ``protobuf`` packages: a message is
a sequence of ``(field number, wire type, value)`` records; a length-delimited value (a string,
bytes, a sub-message, a packed array) is returned as the ``(start, end)`` span of its bytes in the
buffer so that large payloads (``raw_data``) are skipped without a copy. Malformed input raises
:class:`WireError` with the byte offset; nothing here recurses on its own, so a hostile nesting
depth is the caller's to bound.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

VARINT = 0
FIXED64 = 1
LEN = 2
START_GROUP = 3
END_GROUP = 4
FIXED32 = 5

_MAX_GROUP_DEPTH = 64


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message; ``offset`` is where reading failed."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset


@dataclass(frozen=True)
class Field:
    """One field record: ``value`` is the integer (varint, fixed) or ``None`` for a span (``start``, ``end``)."""

    number: int
    wire_type: int
    offset: int  # of the tag
    value: int | None = None
    start: int = 0
    end: int = 0


def read_varint(buf: memoryview | bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at ``pos`` (at most 10 bytes) and the position after it."""
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise WireError(start, "truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError(start, "varint longer than 10 bytes")


def iter_fields(buf: memoryview | bytes, start: int = 0, end: int | None = None) -> Iterator[Field]:
    """The fields of the message in ``buf[start:end]``, in order; groups are skipped whole."""
    end = len(buf) if end is None else end
    if not 0 <= start <= end <= len(buf):
        raise WireError(start, "message span outside the buffer")
    pos = start
    while pos < end:
        tag_at = pos
        key, pos = read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError(tag_at, "field number 0")
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield Field(number, wire_type, tag_at, value=value)
        elif wire_type == FIXED64:
            if pos + 8 > end:
                raise WireError(tag_at, "truncated fixed64")
            yield Field(number, wire_type, tag_at, value=int.from_bytes(buf[pos:pos + 8], "little"))
            pos += 8
        elif wire_type == FIXED32:
            if pos + 4 > end:
                raise WireError(tag_at, "truncated fixed32")
            yield Field(number, wire_type, tag_at, value=int.from_bytes(buf[pos:pos + 4], "little"))
            pos += 4
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos, end)
            if pos + length > end:
                raise WireError(tag_at, f"field {number}: length {length} runs past the end of its message")
            yield Field(number, wire_type, tag_at, start=pos, end=pos + length)
            pos += length
        elif wire_type == START_GROUP:
            pos = _skip_group(buf, pos, end, number, tag_at)
        else:
            raise WireError(tag_at, f"field {number}: invalid wire type {wire_type}")


def _skip_group(buf: memoryview | bytes, pos: int, end: int, number: int, tag_at: int) -> int:
    """The position after the END_GROUP matching a START_GROUP of field ``number`` (deprecated groups)."""
    stack = [number]
    while stack:
        if len(stack) > _MAX_GROUP_DEPTH:
            raise WireError(tag_at, "groups nested too deeply")
        if pos >= end:
            raise WireError(tag_at, "unterminated group")
        at = pos
        key, pos = read_varint(buf, pos, end)
        num, wire_type = key >> 3, key & 7
        if wire_type == VARINT:
            _, pos = read_varint(buf, pos, end)
        elif wire_type == FIXED64:
            pos += 8
        elif wire_type == FIXED32:
            pos += 4
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos, end)
            pos += length
        elif wire_type == START_GROUP:
            stack.append(num)
        elif wire_type == END_GROUP:
            if stack.pop() != num:
                raise WireError(at, "mismatched end of group")
        else:
            raise WireError(at, f"invalid wire type {wire_type}")
        if pos > end:
            raise WireError(at, "truncated field inside a group")
    return pos


def text(buf: memoryview | bytes, field: Field) -> str:
    """A length-delimited field as text (UTF-8; undecodable bytes replaced, never an exception)."""
    return bytes(buf[field.start:field.end]).decode("utf-8", errors="replace")
