"""Contract checks of one dataset: columns, types, nulls, ranges, categories, key, label, freshness, rows.

Each function returns :class:`CheckResult` objects with a stable id ``<check>:<role>[:<column>]``
and fills the dataset's per-column table rows. Offending row keys are capped and attached.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gates.base import CheckResult, Status
from gates.data_check.models import ColumnContract, DatasetContract
from gates.data_check.reader import DatasetReader, numeric_values


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


def is_numeric(arrow_type: pa.DataType) -> bool:
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type)


def is_categorical(arrow_type: pa.DataType) -> bool:
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    return (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
            or pa.types.is_boolean(t) or pa.types.is_dictionary(arrow_type))


# --------------------------------------------------------------------------- row keys


class KeyFinder:
    """Turns row positions into row keys (the contract's key columns, else the row number)."""

    def __init__(self, reader: DatasetReader, key: list[str], cap: int) -> None:
        self.reader, self.key, self.cap = reader, [k for k in key if k in reader.columns], cap
        self._table: pa.Table | None = None

    def keys(self, positions: np.ndarray) -> list[Any]:
        positions = positions[: self.cap]
        if positions.size == 0:
            return []
        if not self.key:
            return [f"row {int(p)}" for p in positions]
        if self._table is None:
            self._table = self.reader.table(self.key)
        rows = self._table.take(pa.array(positions)).to_pylist()
        return [r[self.key[0]] if len(self.key) == 1 else r for r in rows]


def with_keys(result: CheckResult, keys: list[Any], offenders: dict[str, list[Any]]) -> CheckResult:
    """Attach capped offending keys to a failed check (message and evidence)."""
    if keys and result.status is not Status.PASS:
        offenders[result.id] = keys
        shown = ", ".join(str(k) for k in keys)
        result.message = f"{result.message}; offending keys (first {len(keys)}): {shown}"
    return result


# --------------------------------------------------------------------------- per column


def column_checks(role: str, name: str, column: pa.ChunkedArray, spec: ColumnContract | None,
                  finder: KeyFinder, row: dict[str, Any], offenders: dict[str, list[Any]],
                  numeric_data: tuple[np.ndarray, np.ndarray | None] | None = None) -> list[CheckResult]:
    """Null rate, range and category checks of one column; fills ``row`` of the per-column table."""
    checks: list[CheckResult] = []
    n = len(column)
    numeric = is_numeric(column.type)
    values = valid = None
    if numeric:
        values, valid = numeric_data if numeric_data is not None else numeric_values(column)
        missing = int(n - (valid.sum() if valid is not None else n))
    else:
        missing = int(column.null_count)
    shown = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    row.update(rows=n, nulls=missing, null_rate=(missing / n) if n else None, type=str(shown))
    if numeric and n and missing < n:
        present = values if valid is None else values[valid]
        row.update(min=float(present.min()), max=float(present.max()))
    if spec is None:
        return checks
    limit = spec.null_limit
    if limit is not None:
        rate = missing / n if n else 0.0
        result = check(f"null_rate:{role}:{name}", rate <= limit, rate, limit,
                       f"{role}.{name}: {missing} of {n} rows are null")
        if result.status is Status.FAIL:
            positions = np.flatnonzero(~valid) if valid is not None else \
                np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))
            result = with_keys(result, finder.keys(positions), offenders)
        checks.append(result)
    if spec.min is not None or spec.max is not None:
        threshold = [spec.min, spec.max]
        if not numeric:
            checks.append(CheckResult(id=f"range:{role}:{name}", status=Status.ERROR, threshold=threshold,
                                      message=f"{role}.{name}: a range needs a numeric column, got {column.type}"))
        else:
            bad = np.zeros(n, dtype=bool)
            if spec.min is not None:
                bad |= values < spec.min
            if spec.max is not None:
                bad |= values > spec.max
            count = int(np.count_nonzero(bad))
            row["range_violations"] = count
            result = check(f"range:{role}:{name}", count == 0, count, threshold,
                           f"{role}.{name}: {count} values outside [{spec.min}, {spec.max}]")
            if count:
                result = with_keys(result, finder.keys(np.flatnonzero(bad)), offenders)
            checks.append(result)
    if spec.categories is not None and pa.types.is_dictionary(column.type):
        allowed_set = set(spec.categories)
        outside_parts = []
        for dictionary, codes in dictionary_codes(column):
            bad_code = np.array([v not in allowed_set for v in dictionary] + [False], dtype=bool)
            outside_parts.append(bad_code[codes])  # code -1 (null) maps to the trailing False
        mask = np.concatenate(outside_parts) if outside_parts else np.zeros(0, dtype=bool)
        count = int(np.count_nonzero(mask))
        row["unknown_categories"] = count
        result = check(f"categories:{role}:{name}", count == 0, count, spec.categories,
                       f"{role}.{name}: {count} values outside the allowed categories")
        if count:
            result = with_keys(result, finder.keys(np.flatnonzero(mask)), offenders)
        checks.append(result)
    elif spec.categories is not None:
        allowed = pa.array(spec.categories)
        try:
            inside = pc.is_in(column, value_set=allowed.cast(column.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            checks.append(CheckResult(id=f"categories:{role}:{name}", status=Status.ERROR,
                                      threshold=spec.categories,
                                      message=f"{role}.{name}: categories do not fit type {column.type}: {exc}"))
            return checks
        outside = pc.and_(pc.invert(inside), pc.is_valid(column))
        count = int(pc.sum(outside).as_py() or 0)
        row["unknown_categories"] = count
        result = check(f"categories:{role}:{name}", count == 0, count, spec.categories,
                       f"{role}.{name}: {count} values outside the allowed categories")
        if count:
            mask = outside.to_numpy(zero_copy_only=False) if isinstance(outside, pa.Array) else \
                np.concatenate([c.to_numpy(zero_copy_only=False) for c in outside.chunks])
            result = with_keys(result, finder.keys(np.flatnonzero(mask)), offenders)
        checks.append(result)
    return checks


# --------------------------------------------------------------------------- per dataset


def duplicate_key_rows(table: pa.Table) -> tuple[int, np.ndarray]:
    """Rows whose key (all key columns, no nulls) occurs more than once, and their positions."""
    valid = None
    for col in table.columns:
        v = pc.is_valid(col)
        valid = v if valid is None else pc.and_(valid, v)
    n = table.num_rows
    if n == 0:
        return 0, np.zeros(0, dtype=np.int64)
    ok = np.concatenate([c.to_numpy(zero_copy_only=False) for c in valid.chunks]) if valid.num_chunks else \
        np.ones(n, dtype=bool)
    if table.num_columns == 1 and pa.types.is_integer(table.column(0).type):
        keys = np.concatenate([c.to_numpy(zero_copy_only=False) for c in table.column(0).chunks])
        keys = keys.astype(np.int64, copy=False) if ok.all() else np.where(ok, keys, 0).astype(np.int64)
        present = keys[ok] if not ok.all() else keys
        if present.size:
            lo, hi = int(present.min()), int(present.max())
            if hi - lo <= 8 * n + 1024:  # dense ids: one counting pass, no hashing or sorting
                counts = np.bincount(present - lo, minlength=hi - lo + 1)
                dup = (counts[keys - lo] > 1) & ok
                return int(np.count_nonzero(dup)), np.flatnonzero(dup)
    import duckdb

    names = [f"k{i}" for i in range(table.num_columns)]
    keyed = pa.table(dict(zip(names, table.columns))).append_column("__row", pa.array(np.arange(n)))
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


def key_check(role: str, contract: DatasetContract, reader: DatasetReader, finder: KeyFinder,
              offenders: dict[str, list[Any]]) -> CheckResult:
    count, positions = duplicate_key_rows(reader.table(contract.key))
    result = check(f"unique_key:{role}", count == 0, count, 0,
                   f"{role}: {count} rows share their key ({', '.join(contract.key)}) with another row")
    return with_keys(result, finder.keys(positions), offenders) if count else result


def dictionary_codes(column: pa.ChunkedArray) -> list[tuple[list[Any], np.ndarray]]:
    """Per chunk of a dictionary column: its dictionary values and its codes (-1 for null)."""
    out = []
    for chunk in column.chunks:
        codes = chunk.indices.to_numpy(zero_copy_only=False)
        if chunk.null_count:
            codes = np.where(chunk.is_valid().to_numpy(zero_copy_only=False), codes, -1)
        out.append((chunk.dictionary.to_pylist(), codes.astype(np.int64, copy=False)))
    return out


def value_counts(column: pa.ChunkedArray) -> dict[Any, int]:
    """Non-null value → count."""
    if pa.types.is_dictionary(column.type):
        total: dict[Any, int] = {}
        for dictionary, codes in dictionary_codes(column):
            counts = np.bincount(codes[codes >= 0], minlength=len(dictionary))
            for value, count in zip(dictionary, counts.tolist()):
                if count and value is not None:
                    total[value] = total.get(value, 0) + count
        return total
    counts = pc.value_counts(column)
    values = counts.field("values").to_pylist()
    return {v: int(c) for v, c in zip(values, counts.field("counts").to_pylist()) if v is not None}


def label_checks(role: str, contract: DatasetContract, reader: DatasetReader, finder: KeyFinder,
                 offenders: dict[str, list[Any]]) -> list[CheckResult]:
    label = contract.label
    assert label is not None
    column = reader.column(label.column)
    n = len(column)
    nulls = int(column.null_count)
    checks = [check(f"label_nulls:{role}", nulls == 0, nulls, 0, f"{role}.{label.column}: {nulls} rows have no label")]
    if nulls:
        pos = np.flatnonzero(pc.is_null(column).to_numpy(zero_copy_only=False))
        checks[-1] = with_keys(checks[-1], finder.keys(pos), offenders)
    counts = value_counts(column)
    if label.values is not None:
        allowed = set(label.values)
        outside = sum(c for v, c in counts.items() if v not in allowed)
        result = check(f"label_values:{role}", outside == 0, outside, label.values,
                       f"{role}.{label.column}: {outside} labels outside {label.values}")
        if outside:
            bad_values = pa.array([v for v in counts if v not in allowed])
            plain = column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column
            mask = pc.fill_null(pc.is_in(plain, value_set=bad_values.cast(plain.type)), False)
            pos = np.flatnonzero(np.concatenate([c.to_numpy(zero_copy_only=False) for c in mask.chunks]))
            result = with_keys(result, finder.keys(pos), offenders)
        checks.append(result)
    if label.min_class_share is not None:
        classes = list(label.values) if label.values is not None else list(counts)
        total = n - nulls
        shares = {c: (counts.get(c, 0) / total if total else 0.0) for c in classes}
        rarest = min(shares, key=shares.get) if shares else None
        share = shares[rarest] if rarest is not None else 0.0
        checks.append(check(f"label_balance:{role}", share >= label.min_class_share, share, label.min_class_share,
                            f"{role}.{label.column}: class {rarest!r} is only {share:.4%} of labelled rows"))
    return checks


def freshness_check(role: str, contract: DatasetContract, reader: DatasetReader, now: datetime) -> CheckResult:
    spec = contract.event_time
    assert spec is not None
    cid = f"freshness:{role}"
    column = reader.column(spec.column)
    threshold = f"<= {spec.max_age}"
    if not (pa.types.is_timestamp(column.type) or pa.types.is_date(column.type)):
        return CheckResult(id=cid, status=Status.FAIL, threshold=threshold,
                           message=f"{role}.{spec.column}: event time must be a timestamp or date, got {column.type}")
    newest = pc.max(column).as_py()
    if newest is None:
        return CheckResult(id=cid, status=Status.FAIL, observed=None, threshold=threshold,
                           message=f"{role}.{spec.column}: no event time at all")
    if not isinstance(newest, datetime):
        newest = datetime(newest.year, newest.month, newest.day)
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=timezone.utc)
    age = now - newest
    return check(cid, age <= spec.max_age, str(age), threshold,
                 f"{role}.{spec.column}: newest row is from {newest.isoformat()}, {age} before {now.isoformat()}")
