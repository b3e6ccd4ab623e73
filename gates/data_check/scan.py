"""One fused pass over a column: everything the checks and drift need, block by block.

A numeric column is walked chunk by chunk (Arrow's own buffers, no copy when there are no nulls)
and, per cache-sized block, the pass counts missing values (null or NaN), takes min and max,
counts range violations (only when the block's min/max show there are any), and counts the
values into the fine drift histogram. The first few offending row positions are kept for the
offending-keys evidence. A dictionary (string) column is counted by its integer codes in one
``bincount`` per chunk, which gives null, category and drift counts at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gates.data_check.stats import BLOCK, HistogramBuilder


def is_numeric(arrow_type: pa.DataType) -> bool:
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type)


def temporal_micros(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A date, timestamp, time or duration column as int64 microseconds (since the epoch, or midnight).

    One unit for every temporal type, so a date column compares with a timestamp column; nanoseconds
    are truncated to the microsecond (float64, which drift counts in, is exact below 2**53 µs, i.e.
    for ±285 years around 1970).
    """
    t = column.type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        target: pa.DataType = pa.timestamp("us", tz=getattr(t, "tz", None))
    elif pa.types.is_time(t):
        target = pa.time64("us")
    elif pa.types.is_duration(t):
        target = pa.duration("us")
    else:
        raise TypeError(f"not a temporal type: {t}")
    micros = pc.cast(column, target, safe=False)
    return pa.chunked_array([chunk.view(pa.int64()) for chunk in micros.chunks], type=pa.int64())


def chunk_values(arr: pa.Array, as_float: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Values of a numeric chunk (float64 unless ``as_float`` is false) and its validity (None: no nulls).

    No copy for float64 (or, with ``as_float=False``, any) data; slots of nulls hold undefined values.
    """
    if pa.types.is_decimal(arr.type) or pa.types.is_float16(arr.type):
        arr = pc.cast(arr, pa.float64())
    n = len(arr)
    buffers = arr.buffers()
    dtype = np.dtype(arr.type.to_pandas_dtype())
    if n == 0 or buffers[1] is None:
        return np.zeros(0, dtype=np.float64 if as_float else dtype), None
    values = np.frombuffer(buffers[1], dtype=dtype, count=n, offset=arr.offset * dtype.itemsize)
    if as_float and dtype != np.float64:
        values = values.astype(np.float64)
    valid = None
    if arr.null_count:
        shift = arr.offset % 8
        bits = np.frombuffer(buffers[0], dtype=np.uint8)[arr.offset // 8:]
        valid = np.unpackbits(bits, count=n + shift, bitorder="little")[shift:].view(bool)
    return values, valid


class _Positions:
    """The first ``cap`` row positions of something, collected block by block."""

    def __init__(self, cap: int) -> None:
        self.cap, self.size = cap, 0
        self.parts: list[np.ndarray] = []

    @property
    def full(self) -> bool:
        return self.size >= self.cap

    def add(self, positions: np.ndarray) -> None:
        if self.full or not positions.size:
            return
        taken = positions[: self.cap - self.size]
        self.parts.append(taken.astype(np.int64, copy=False))
        self.size += taken.size

    def array(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(0, dtype=np.int64)


@dataclass
class NumericScan:
    rows: int = 0
    missing: int = 0
    minimum: float | None = None
    maximum: float | None = None
    range_violations: int = 0
    null_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    range_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    present: list[np.ndarray] = field(default_factory=list)  # the present values, block by block (if kept)

    @property
    def present_count(self) -> int:
        return self.rows - self.missing


def scan_numeric(column: pa.ChunkedArray, *, low: float | None = None, high: float | None = None, cap: int = 10,
                 hist: HistogramBuilder | None = None, keep: bool = False) -> NumericScan:
    """Missing count, min/max, values outside ``[low, high]`` and the histogram of one numeric column."""
    out = NumericScan(rows=len(column))
    nulls, outside = _Positions(cap), _Positions(cap)
    lo_all, hi_all = np.inf, -np.inf
    base = 0
    for chunk in column.chunks:
        values_all, valid_all = chunk_values(chunk)
        for start in range(0, values_all.size, BLOCK):
            values = values_all[start:start + BLOCK]
            at = base + start
            kept = None
            if valid_all is None:
                lo, hi = values.min(), values.max()
                missing_mask = np.isnan(values) if np.isnan(lo) or np.isnan(hi) else None  # NaN min/max iff a NaN
            else:
                missing_mask = ~valid_all[start:start + BLOCK]
                missing_mask |= np.isnan(values)
            raw, raw_missing = values, None
            if missing_mask is not None:
                missing_pos = np.flatnonzero(missing_mask)
                out.missing += int(missing_pos.size)
                if not nulls.full:
                    nulls.add(missing_pos + at)
                if missing_pos.size:
                    kept = np.flatnonzero(~missing_mask)
                    values = values[kept]  # a transient compact copy for min/max/range
                    raw_missing = missing_mask
                if not values.size:
                    continue
                lo, hi = values.min(), values.max()
            lo_all, hi_all = min(lo_all, lo), max(hi_all, hi)
            if low is not None and lo < low or high is not None and hi > high:
                bad = np.zeros(values.size, dtype=bool) if low is None else values < low
                if high is not None:
                    bad |= values > high
                if outside.full:
                    out.range_violations += int(np.count_nonzero(bad))
                else:
                    where = np.flatnonzero(bad)
                    out.range_violations += int(where.size)
                    outside.add((kept[where] if kept is not None else where) + at)
            if hist is not None:
                hist.add(raw, raw_missing)  # Arrow's buffer itself, missing slots marked
            if keep:
                out.present.append(values)
        base += len(chunk)
    if out.missing < out.rows:
        out.minimum, out.maximum = float(lo_all), float(hi_all)
    out.null_positions, out.range_positions = nulls.array(), outside.array()
    return out


@dataclass
class CategoryScan:
    rows: int = 0
    nulls: int = 0
    counts: dict[Any, int] = field(default_factory=dict)  # non-null value -> count
    outside: int = 0
    outside_positions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def scan_dictionary(column: pa.ChunkedArray, allowed: set[Any] | None = None, cap: int = 10) -> CategoryScan:
    """Value counts of a dictionary column by its codes, and the values outside ``allowed`` (nulls excluded)."""
    out = CategoryScan(rows=len(column), nulls=int(column.null_count))
    outside = _Positions(cap)
    base = 0
    for chunk in column.chunks:
        dictionary = chunk.dictionary.to_pylist()
        indices = chunk.indices
        dtype = np.dtype(indices.type.to_pandas_dtype())
        if len(chunk) == 0 or not dictionary:
            base += len(chunk)
            continue
        codes = np.frombuffer(indices.buffers()[1], dtype=dtype, count=len(indices),
                              offset=indices.offset * dtype.itemsize)
        valid = None
        if chunk.null_count:  # the code of a null slot is undefined: make it 0 and take the nulls off bin 0
            valid = chunk.is_valid().to_numpy(zero_copy_only=False)
            codes = np.where(valid, codes, 0)
        counts = np.bincount(codes, minlength=len(dictionary))[: len(dictionary)]
        counts[0] -= chunk.null_count
        for value, count in zip(dictionary, counts.tolist(), strict=True):
            if count and value is not None:
                out.counts[value] = out.counts.get(value, 0) + count
        if allowed is not None:
            bad_code = np.array([v is not None and v not in allowed for v in dictionary], dtype=bool)
            bad_count = int(counts[bad_code].sum())
            out.outside += bad_count
            if bad_count and not outside.full:
                mask = np.take(bad_code, codes)
                if valid is not None:
                    mask &= valid
                outside.add(np.flatnonzero(mask) + base)
        base += len(chunk)
    out.outside_positions = outside.array()
    return out
