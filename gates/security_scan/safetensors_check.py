"""safetensors files checked from their bytes: a bounded JSON header and a data section it covers exactly.

Layout: 8 bytes little-endian header length N, N bytes of UTF-8 JSON (an object, possibly padded
with spaces), then the data section. The header maps tensor names to ``{"dtype", "shape",
"data_offsets": [begin, end]}`` (offsets relative to the data section) and may hold
``"__metadata__"``: a string → string map. The header is parsed with :mod:`json` only, after its
length is checked against the limit and the file size; nothing is ever executed or imported.

Checks (every failure is a :class:`Problem` of severity FAIL naming the tensor):

- ``header``: file shorter than 8 bytes, N over the limit or past the end of the file, header not
  UTF-8, not JSON, not an object, duplicate keys, NaN/Infinity, ``__metadata__`` not string → string;
- ``format``: an entry that is not a tensor description, an unknown dtype, a shape that is not a
  list of non-negative integers, offsets that are not ``[begin, end]`` with ``begin <= end``, a
  byte length that differs from ``itemsize * prod(shape)``, an end past the data section, and
  tensors that overlap, leave a gap, or leave trailing bytes after the last one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gates.security_scan.findings import Problem, Severity

# Bits per element, as safetensors defines them (sub-byte types pack; a tensor must fill whole bytes).
DTYPE_BITS: dict[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32,
    "I64": 64, "U64": 64, "F64": 64, "C64": 64,
    "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
}
METADATA_KEY = "__metadata__"
_TENSOR_KEYS = {"dtype", "shape", "data_offsets"}


@dataclass
class SafetensorsCheck:
    """The problems found in one safetensors file and what its header says."""

    problems: list[Problem]
    header_length: int | None = None
    tensors: int = 0
    metadata: dict[str, str] = field(default_factory=dict)


class _HeaderError(ValueError):
    pass


_Fail = Callable[..., SafetensorsCheck]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _HeaderError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise _HeaderError(f"non-standard JSON constant {name}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_safetensors(buf: memoryview | bytes, file: str, *, max_header: int = 100 << 20) -> SafetensorsCheck:
    """Check the layout of one safetensors file held in ``buf`` (an mmap view is fine: only the header is copied)."""
    result = SafetensorsCheck(problems=[])

    def fail(kind: str, message: str, offset: int | None = None) -> SafetensorsCheck:
        result.problems.append(Problem(file, kind, message, Severity.FAIL, offset=offset))
        return result

    size = len(buf)
    if size < 8:
        return fail("header", f"file of {size} bytes is shorter than the 8-byte header length", 0)
    n = int.from_bytes(buf[:8], "little")
    result.header_length = n
    if n > max_header:
        return fail("header", f"header length {n} is over the limit of {max_header} bytes", 0)
    if 8 + n > size:
        return fail("header", f"header length {n} runs past the end of the file ({size} bytes)", 0)
    raw = bytes(buf[8:8 + n])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return fail("header", f"header is not UTF-8 ({exc.reason})", 8 + exc.start)
    if not text.startswith("{"):
        return fail("header", "header does not start with '{'", 8)
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _HeaderError as exc:
        return fail("header", f"header JSON: {exc}", 8)
    except json.JSONDecodeError as exc:
        return fail("header", f"header is not JSON: {exc.msg} at header position {exc.pos}", 8 + exc.pos)
    except RecursionError:
        return fail("header", "header JSON nested too deeply", 8)
    if not isinstance(header, dict):
        return fail("header", "header JSON is not an object", 8)

    metadata = header.pop(METADATA_KEY, None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            fail("header", f"{METADATA_KEY} must map strings to strings", 8)
        else:
            result.metadata = metadata

    data_start = 8 + n
    data_size = size - data_start
    spans: list[tuple[int, int, str]] = []
    for name, info in header.items():
        result.tensors += 1
        span = _check_tensor(name, info, data_size, data_start, fail)
        if span is not None:
            spans.append((span[0], span[1], name))
    if len(spans) == result.tensors:  # the layout can only be judged when every tensor's offsets are sane
        _check_layout(spans, data_size, data_start, fail)
    return result


def _check_tensor(name: str, info: Any, data_size: int, data_start: int, fail: _Fail) -> tuple[int, int] | None:
    if not isinstance(info, dict):
        fail("format", f"tensor {name!r}: entry is not an object")
        return None
    missing = _TENSOR_KEYS - info.keys()
    extra = info.keys() - _TENSOR_KEYS
    if missing or extra:
        fail("format", f"tensor {name!r}: keys must be exactly dtype, shape, data_offsets"
                       f"{' (missing ' + ', '.join(sorted(missing)) + ')' if missing else ''}"
                       f"{' (unexpected ' + ', '.join(sorted(extra)) + ')' if extra else ''}")
        return None
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    ok = True
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        fail("format", f"tensor {name!r}: unknown dtype {dtype!r}")
        ok = False
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        fail("format", f"tensor {name!r}: shape {shape!r} is not a list of non-negative integers")
        ok = False
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) and o >= 0 for o in offsets)
            or offsets[0] > offsets[1]):
        fail("format", f"tensor {name!r}: data_offsets {offsets!r} is not [begin, end] with 0 <= begin <= end")
        return None
    begin, end = offsets
    if end > data_size:
        fail("format", f"tensor {name!r}: data_offsets [{begin}, {end}] end past the data section "
                       f"({data_size} bytes)", data_start + min(begin, data_size))
        return None
    if ok:
        elements = 1
        for d in shape:
            elements *= d
        bits = elements * DTYPE_BITS[dtype]
        if bits % 8:
            fail("format", f"tensor {name!r}: {elements} elements of {dtype} do not fill whole bytes")
        elif end - begin != bits // 8:
            fail("format", f"tensor {name!r}: {end - begin} bytes for shape {shape} of {dtype} "
                           f"(expected {bits // 8})", data_start + begin)
    return begin, end


def _check_layout(spans: list[tuple[int, int, str]], data_size: int, data_start: int, fail: _Fail) -> None:
    """Tensors, sorted by offsets, must tile the data section: no overlap, no gap, no trailing bytes."""
    position, previous = 0, None
    for begin, end, name in sorted(spans):
        if begin < position:
            fail("format", f"tensor {name!r} [{begin}, {end}] overlaps tensor {previous!r} (ends at {position})",
                 data_start + begin)
        elif begin > position:
            after = f"after tensor {previous!r}" if previous is not None else "at the start of the data section"
            fail("format", f"gap of {begin - position} bytes {after} before tensor {name!r}", data_start + position)
        if end >= position:
            position, previous = end, name
    if position < data_size:
        fail("format", f"{data_size - position} trailing bytes after the last tensor", data_start + position)
