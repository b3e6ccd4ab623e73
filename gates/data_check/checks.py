"""Contract checks of one dataset: columns, types, nulls, ranges, categories, key, label, freshness, rows.

Each function returns :class:`CheckResult` objects with a stable id ``<check>:<role>[:<column>]``
and fills the dataset's per-column table rows. Row-level checks that fail also hand back the
first few offending row positions (``pending``); the gate turns them into row keys at the end,
reading the key columns once per dataset (:class:`KeyFinder`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gates.base import CheckResult, Status
from gates.data_check.models import ColumnContract, DatasetContract
from gates.data_check.reader import DatasetReader
from gates.data_check.scan import CategoryScan, NumericScan, chunk_values, is_numeric

__all__ = ["KeyFinder", "check", "is_categorical", "is_numeric", "type_matches"]

Pending = list[tuple[CheckResult, np.ndarray]]


def check(check_id: str, ok: bool, observed: Any, threshold: Any, message: str = "",
          bad: Status = Status.FAIL) -> CheckResult:
    """A pass/fail check; ``message`` is kept only when it failed."""
    return CheckResult(id=check_id, status=Status.PASS if ok else bad, observed=observed, threshold=threshold,
                       message="" if ok else message)


# --------------------------------------------------------------------------- types


def type_matches(declared: str, arrow_type: pa.DataType) -> bool:
    """Whether an Arrow type satisfies a contract type."""
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    stringy = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    return {
        "int": pa.types.is_integer(t),
        "float": pa.types.is_floating(t),
        "number": pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t),
        "string": stringy,
        "category": stringy or pa.types.is_integer(t) or pa.types.is_boolean(t),
        "bool": pa.types.is_boolean(t),
        "timestamp": pa.types.is_timestamp(t),
        "date": pa.types.is_date(t),
    }[declared]


def is_categorical(arrow_type: pa.DataType) -> bool:
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
            or pa.types.is_boolean(t) or pa.types.is_dictionary(arrow_type))


def type_family(arrow_type: pa.DataType) -> str | None:
    """What a column's values are, for comparing a column with the reference's: number, string, bool,
    time, or the Arrow type itself; None for the null type (no values, so nothing to disagree with).

    int, float and decimal are one family (the same quantity at another width or precision, compared
    as numbers), and so are plain and dictionary-encoded strings. Across families the values cannot
    be compared: a class stored as integer codes in one dataset and as labels in the other would
    share no category, and its PSI would measure the storage, not the data.
    """
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if pa.types.is_null(t):
        return None
    if is_numeric(t):
        return "number"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    if is_temporal(t):
        return "time"
    return str(t)


# --------------------------------------------------------------------------- drift preconditions


def dtype_check(role: str, uri: str, name: str, current: pa.DataType, ref_role: str, ref_uri: str,
                reference: pa.DataType) -> CheckResult | None:
    """``dtype:<role>:<col>``: the column holds the same kind of values as the reference's (see
    :func:`type_family`); None when either side is all null by type (nothing to compare)."""
    cur_family, ref_family = type_family(current), type_family(reference)
    if cur_family is None or ref_family is None:
        return None
    return check(f"dtype:{role}:{name}", cur_family == ref_family, shown_type(current), shown_type(reference),
                 f"{role} ({uri}).{name}: holds {cur_family} values ({shown_type(current)}) where the reference "
                 f"dataset {ref_role!r} ({ref_uri}) holds {ref_family} values ({shown_type(reference)}); "
                 f"drift is not computed across types")


def drift_not_measured(role: str, uri: str, name: str, numeric: bool, status: Status, reason: str,
                       thresholds: tuple[Any, Any] = (None, None)) -> list[CheckResult]:
    """The ``psi`` (and for a numeric column ``ks``) checks of a column whose drift cannot be measured,
    with ``status`` (error: undecided; skipped: another check carries the verdict) and the reason."""
    ids = [f"psi:{role}:{name}"] + ([f"ks:{role}:{name}"] if numeric else [])
    return [CheckResult(id=cid, status=status, observed=None, threshold=threshold,
                        message=f"{role} ({uri}).{name}: drift not measured: {reason}")
            for cid, threshold in zip(ids, thresholds[: len(ids)], strict=True)]


# --------------------------------------------------------------------------- row keys


class KeyFinder:
    """Turns row positions into row keys (the contract's key columns, else the row number)."""

    def __init__(self, reader: DatasetReader, key: list[str], cap: int) -> None:
        self.reader, self.key, self.cap = reader, [k for k in key if k in reader.columns], cap

    def resolve(self, pending: Pending, offenders: dict[str, list[Any]]) -> None:
        """Attach the keys of every pending check's positions (the key columns are read once, then freed)."""
        wanted = [(result, positions[: self.cap]) for result, positions in pending if positions.size]
        if not wanted:
            return
        if not self.key:
            for result, positions in wanted:
                with_keys(result, [f"row {int(p)}" for p in positions], offenders)
            return
        everything = np.unique(np.concatenate([p for _, p in wanted]))
        rows = self.reader.take(self.key, everything).to_pylist()
        by_position = {int(p): (r[self.key[0]] if len(self.key) == 1 else r)
                       for p, r in zip(everything, rows, strict=True)}
        for result, positions in wanted:
            with_keys(result, [by_position[int(p)] for p in positions], offenders)


def with_keys(result: CheckResult, keys: list[Any], offenders: dict[str, list[Any]]) -> CheckResult:
    """Attach capped offending keys to a failed check (message and evidence)."""
    if keys and result.status is not Status.PASS:
        offenders[result.id] = keys
        shown = ", ".join(str(k) for k in keys)
        result.message = f"{result.message}; offending keys (first {len(keys)}): {shown}"
    return result


def _flag(result: CheckResult, positions: np.ndarray | None, pending: Pending) -> CheckResult:
    if result.status is not Status.PASS and positions is not None and positions.size:
        pending.append((result, positions))
    return result


# --------------------------------------------------------------------------- per column


def shown_type(arrow_type: pa.DataType) -> str:
    return str(arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type)


def null_check(role: str, name: str, missing: int, n: int, spec: ColumnContract, positions: np.ndarray | None,
               pending: Pending) -> CheckResult | None:
    limit = spec.null_limit
    if limit is None:
        return None
    rate = missing / n if n else 0.0
    result = check(f"null_rate:{role}:{name}", rate <= limit, rate, limit,
                   f"{role}.{name}: {missing} of {n} rows are null")
    return _flag(result, positions, pending)


def numeric_column_checks(role: str, name: str, column: pa.ChunkedArray, scan: NumericScan,
                          spec: ColumnContract | None, row: dict[str, Any], pending: Pending) -> list[CheckResult]:
    """Null rate, range (and category) checks of a numeric column from its scan; fills ``row``."""
    n = scan.rows
    checks: list[CheckResult] = []
    if scan.minimum is not None:
        row.update(min=scan.minimum, max=scan.maximum)
    if spec is None:
        return checks
    result = null_check(role, name, scan.missing, n, spec, scan.null_positions, pending)
    if result is not None:
        checks.append(result)
    if spec.min is not None or spec.max is not None:
        count = scan.range_violations
        row["range_violations"] = count
        checks.append(_flag(check(f"range:{role}:{name}", count == 0, count, [spec.min, spec.max],
                                  f"{role}.{name}: {count} values outside [{spec.min}, {spec.max}]"),
                            scan.range_positions, pending))
    if spec.categories is not None:
        checks += _arrow_categories(role, name, column, spec, row, pending)
    return checks


def dictionary_column_checks(role: str, name: str, column: pa.ChunkedArray, scan: CategoryScan,
                             spec: ColumnContract | None, row: dict[str, Any], pending: Pending) -> list[CheckResult]:
    """Null rate and category checks of a dictionary (string) column from its scan; fills ``row``."""
    checks: list[CheckResult] = []
    if spec is None:
        return checks
    result = null_check(role, name, scan.nulls, scan.rows, spec, _null_positions(column, scan.nulls, spec), pending)
    if result is not None:
        checks.append(result)
    if spec.min is not None or spec.max is not None:
        checks.append(range_needs_numbers(role, name, column.type, spec))
    if spec.categories is not None:
        count = scan.outside
        row["unknown_categories"] = count
        checks.append(_flag(check(f"categories:{role}:{name}", count == 0, count, spec.categories,
                                  f"{role}.{name}: {count} values outside the allowed categories"),
                            scan.outside_positions, pending))
    return checks


def other_column_checks(role: str, name: str, column: pa.ChunkedArray, spec: ColumnContract | None,
                        row: dict[str, Any], pending: Pending) -> list[CheckResult]:
    """Null rate and category checks of any other column (plain strings, booleans, times) with Arrow compute."""
    checks: list[CheckResult] = []
    if spec is None:
        return checks
    nulls = int(column.null_count)
    result = null_check(role, name, nulls, len(column), spec, _null_positions(column, nulls, spec), pending)
    if result is not None:
        checks.append(result)
    if spec.min is not None or spec.max is not None:
        checks.append(range_needs_numbers(role, name, column.type, spec))
    if spec.categories is not None:
        checks += _arrow_categories(role, name, column, spec, row, pending)
    return checks


def _null_positions(column: pa.ChunkedArray, nulls: int, spec: ColumnContract) -> np.ndarray | None:
    limit = spec.null_limit
    n = len(column)
    if limit is None or (nulls / n if n else 0.0) <= limit:
        return None
    return np.flatnonzero(_bools(pc.is_null(column)))


def range_needs_numbers(role: str, name: str, column_type: pa.DataType, spec: ColumnContract) -> CheckResult:
    return CheckResult(id=f"range:{role}:{name}", status=Status.ERROR, threshold=[spec.min, spec.max],
                       message=f"{role}.{name}: a range needs a numeric column, got {column_type}")


def _bools(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if isinstance(values, pa.Array):
        return values.to_numpy(zero_copy_only=False)
    if values.num_chunks == 0:
        return np.zeros(0, dtype=bool)
    return np.concatenate([c.to_numpy(zero_copy_only=False) for c in values.chunks])


def _arrow_categories(role: str, name: str, column: pa.ChunkedArray, spec: ColumnContract, row: dict[str, Any],
                      pending: Pending) -> list[CheckResult]:
    assert spec.categories is not None
    allowed = pa.array(spec.categories)
    try:
        inside = pc.is_in(column, value_set=allowed.cast(column.type))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        return [CheckResult(id=f"categories:{role}:{name}", status=Status.ERROR, threshold=spec.categories,
                            message=f"{role}.{name}: categories do not fit type {column.type}: {exc}")]
    outside = pc.and_(pc.invert(inside), pc.is_valid(column))
    count = int(pc.sum(outside).as_py() or 0)
    row["unknown_categories"] = count
    result = check(f"categories:{role}:{name}", count == 0, count, spec.categories,
                   f"{role}.{name}: {count} values outside the allowed categories")
    return [_flag(result, np.flatnonzero(_bools(outside)) if count else None, pending)]


# --------------------------------------------------------------------------- per dataset


def duplicate_key_rows(table: pa.Table, cap: int | None = None) -> tuple[int, np.ndarray]:
    """Rows whose key (all key columns, no nulls) occurs more than once, and their positions
    (the first ``cap`` of them in row order; all when ``cap`` is None)."""
    n = table.num_rows
    if n == 0:
        return 0, np.zeros(0, dtype=np.int64)
    if table.num_columns == 1 and pa.types.is_integer(table.column(0).type):
        parts = [chunk_values(c, as_float=False) for c in table.column(0).chunks]
        keys = np.concatenate([v for v, _ in parts]).astype(np.int64, copy=False)
        ok = None if all(valid is None for _, valid in parts) else \
            np.concatenate([np.ones(v.size, dtype=bool) if valid is None else valid for v, valid in parts])
        present = keys if ok is None else keys[ok]
        if not present.size:
            return 0, np.zeros(0, dtype=np.int64)
        lo, hi = int(present.min()), int(present.max())
        if hi - lo <= 8 * n + 1024:  # dense ids: one counting pass, no hashing or sorting
            if ok is None:
                if 0 <= lo <= hi - lo + 1024:  # count on the ids themselves (no shifted copy)
                    lo = 0
                shifted = keys - lo if lo else keys
                counts = np.bincount(shifted, minlength=hi - lo + 1)
            else:
                shifted = np.where(ok, keys - lo, 0)
                counts = np.bincount(present - lo, minlength=hi - lo + 1)
            repeated = counts > 1
            count = int(counts[repeated].sum())
            if not count:
                return 0, np.zeros(0, dtype=np.int64)
            found, size = [], 0
            for start in range(0, n, 1 << 16):  # positions in row order, only as many as wanted
                dup = np.take(repeated, shifted[start:start + (1 << 16)])
                if ok is not None:
                    dup &= ok[start:start + (1 << 16)]
                where = np.flatnonzero(dup) + start
                found.append(where)
                size += where.size
                if cap is not None and size >= cap:
                    break
            return count, np.concatenate(found)[:cap] if cap is not None else np.concatenate(found)
    import duckdb

    names = [f"k{i}" for i in range(table.num_columns)]
    keyed = pa.table(dict(zip(names, table.columns, strict=True))).append_column("__row", pa.array(np.arange(n)))
    con = duckdb.connect()
    try:
        con.register("t", keyed)
        cols = ", ".join(names)
        not_null = " AND ".join(f"{c} IS NOT NULL" for c in names)
        rows = con.execute(
            f"SELECT __row FROM (SELECT __row, count(*) OVER (PARTITION BY {cols}) AS c FROM t WHERE {not_null}) "
            f"WHERE c > 1 ORDER BY __row").fetchnumpy()["__row"]
    finally:
        con.close()
    return int(rows.size), np.asarray(rows, dtype=np.int64)


def key_check(role: str, contract: DatasetContract, table: pa.Table, pending: Pending, cap: int) -> CheckResult:
    count, positions = duplicate_key_rows(table, cap)
    result = check(f"unique_key:{role}", count == 0, count, 0,
                   f"{role}: {count} rows share their key ({', '.join(contract.key)}) with another row")
    return _flag(result, positions, pending)


def value_counts(column: pa.ChunkedArray) -> dict[Any, int]:
    """Non-null value → count."""
    if pa.types.is_dictionary(column.type):
        from gates.data_check.scan import scan_dictionary

        return scan_dictionary(column).counts
    if pa.types.is_integer(column.type):
        small = _small_integer_counts(column)
        if small is not None:
            return small
    counts = pc.value_counts(column)
    values = counts.field("values").to_pylist()
    return {v: int(c) for v, c in zip(values, counts.field("counts").to_pylist(), strict=True) if v is not None}


def _small_integer_counts(column: pa.ChunkedArray, span_limit: int = 1 << 16) -> dict[int, int] | None:
    """Value counts of an integer column whose values span at most ``span_limit`` (labels, codes),
    by counting chunk by chunk instead of hashing; None for a wider span."""
    present = []
    for chunk in column.chunks:
        values, valid = chunk_values(chunk, as_float=False)
        present.append(values if valid is None else values[valid])
    present = [p for p in present if p.size]
    if not present:
        return {}
    lo = min(int(p.min()) for p in present)
    hi = max(int(p.max()) for p in present)
    if hi - lo >= span_limit or hi > np.iinfo(np.int64).max:
        return None
    counts = np.zeros(hi - lo + 1, dtype=np.int64)
    for p in present:  # in int64, so narrow types cannot overflow on the shift
        shifted = p.astype(np.int64, copy=False)
        counts += np.bincount(shifted - lo if lo else shifted, minlength=counts.size)
    return {lo + int(i): int(counts[i]) for i in np.flatnonzero(counts)}


def label_checks(role: str, contract: DatasetContract, column: pa.ChunkedArray, counts: dict[Any, int],
                 pending: Pending) -> list[CheckResult]:
    """Label nulls, values and balance; ``counts`` are the column's non-null value counts."""
    label = contract.label
    assert label is not None
    n = len(column)
    nulls = int(column.null_count)
    result = check(f"label_nulls:{role}", nulls == 0, nulls, 0, f"{role}.{label.column}: {nulls} rows have no label")
    checks = [_flag(result, np.flatnonzero(_bools(pc.is_null(column))) if nulls else None, pending)]
    if label.values is not None:
        allowed = set(label.values)
        outside = sum(c for v, c in counts.items() if v not in allowed)
        result = check(f"label_values:{role}", outside == 0, outside, label.values,
                       f"{role}.{label.column}: {outside} labels outside {label.values}")
        positions = None
        if outside:
            bad_values = pa.array([v for v in counts if v not in allowed])
            plain = column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
            mask = pc.fill_null(pc.is_in(plain, value_set=bad_values.cast(plain.type)), False)
            positions = np.flatnonzero(_bools(mask))
        checks.append(_flag(result, positions, pending))
    if label.min_class_share is not None:
        classes = list(label.values) if label.values is not None else list(counts)
        total = n - nulls
        shares = {c: (counts.get(c, 0) / total if total else 0.0) for c in classes}
        rarest = min(shares, key=shares.__getitem__) if shares else None
        share = shares[rarest] if rarest is not None else 0.0
        checks.append(check(f"label_balance:{role}", share >= label.min_class_share, share, label.min_class_share,
                            f"{role}.{label.column}: class {rarest!r} is only {share:.4%} of labelled rows"))
    return checks


def is_temporal(arrow_type: pa.DataType) -> bool:
    return pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type)


def value_grid(arrow_type: pa.DataType) -> float | None:
    """The step of the grid a column's values lie on once drift reads them, if any: 1 for integers, a day
    in microseconds for dates, the type's unit in microseconds for timestamps, times and durations."""
    if pa.types.is_integer(arrow_type):
        return 1.0
    if pa.types.is_date(arrow_type):
        return 86_400_000_000.0
    unit = getattr(arrow_type, "unit", None) if drifts_as_numbers(arrow_type) else None
    return {"s": 1_000_000.0, "ms": 1_000.0, "us": 1.0, "ns": 1.0}.get(unit) if unit else None


def drifts_as_numbers(arrow_type: pa.DataType) -> bool:
    """Numbers, and dates and times (as microseconds), get numeric drift: PSI and KS."""
    return is_numeric(arrow_type) or is_temporal(arrow_type) or pa.types.is_time(arrow_type) \
        or pa.types.is_duration(arrow_type)


def newest_value(column: pa.ChunkedArray) -> Any:
    """The largest value of a timestamp or date column (None for other types or no values)."""
    return pc.max(column).as_py() if is_temporal(column.type) else None


def freshness_check(role: str, contract: DatasetContract, column_type: pa.DataType, newest: Any,
                    now: datetime) -> CheckResult:
    """Age of the newest event time (``newest``, from the column or the Parquet footers) against ``max_age``."""
    spec = contract.event_time
    assert spec is not None
    cid = f"freshness:{role}"
    threshold = f"<= {spec.max_age}"
    if not is_temporal(column_type):
        return CheckResult(id=cid, status=Status.FAIL, threshold=threshold,
                           message=f"{role}.{spec.column}: event time must be a timestamp or date, got {column_type}")
    if newest is None:
        return CheckResult(id=cid, status=Status.FAIL, observed=None, threshold=threshold,
                           message=f"{role}.{spec.column}: no event time at all")
    if hasattr(newest, "to_pydatetime"):  # a nanosecond timestamp comes back as pandas' Timestamp
        newest = newest.to_pydatetime(warn=False)
    if not isinstance(newest, datetime):
        newest = datetime(newest.year, newest.month, newest.day)
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    age = now - newest
    return check(cid, age <= spec.max_age, str(age), threshold,
                 f"{role}.{spec.column}: newest row is from {newest.isoformat()}, {age} before {now.isoformat()}")
