"""The column pass of a ``data_check`` run: every column of every dataset read once, checked and compared.

Why: this is where the time and memory go. One task per column name reads that column of each
dataset in turn (the reference first, so drift has something to compare against), on a few
threads; a task's checks, table rows and plot data are merged in column order so the result does
not depend on scheduling. Key, label and freshness verdicts are computed while their column is
in memory and kept on the dataset for :mod:`~gates.data_check.datasets` to report.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from gates.base import CheckResult, GateInputs, Status
from gates.data_check import checks as C
from gates.data_check import drift as D
from gates.data_check.datasets import _Dataset
from gates.data_check.models import DataCheckConfig, Levels
from gates.data_check.reader import DatasetReader, DatasetReadError
from gates.data_check.scan import HistogramBuilder, scan_dictionary, scan_numeric, temporal_micros


@dataclass
class _ColumnOut:
    """What one column task produced (merged in column order, so results do not depend on scheduling)."""

    checks: list[CheckResult] = field(default_factory=list)
    rows: list[tuple[tuple[str, str], dict[str, Any]]] = field(default_factory=list)
    plots: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def _reader(ds: _Dataset) -> DatasetReader:
    """The reader of a dataset known to be ``usable`` (which implies it has one)."""
    if ds.reader is None:
        raise RuntimeError(f"data_check: dataset {ds.role!r} has no reader, yet was treated as usable")
    return ds.reader


def _schema_type(ds: _Dataset | None, name: str) -> pa.DataType | None:
    """The stored type of a column (None: no such dataset, no reader, or no such column)."""
    if ds is None or ds.reader is None or name not in ds.reader.schema.names:
        return None
    return ds.reader.schema.field(name).type


def _shown_levels(levels: Levels) -> dict[str, Any]:
    """Levels as a drift check shows them in ``threshold`` (as :func:`~gates.data_check.drift.judge` does)."""
    return {"warn": levels.warn, "fail": levels.fail}


def _workers(requested: Any) -> int:
    """Columns processed at once: ``GateInputs.extra["threads"]`` if given, else one per CPU, at most 4
    (memory grows with it: about one column of each dataset per thread)."""
    if isinstance(requested, int) and requested > 0:
        return requested
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover — not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, 4))


class _ColumnPass:
    """The per-column steps of :class:`~gates.data_check.run._Run` (which holds the state used here)."""

    inputs: GateInputs
    config: DataCheckConfig
    now: datetime
    checks: list[CheckResult]
    rows: dict[tuple[str, str], dict[str, Any]]
    plots: dict[tuple[str, str], dict[str, Any]]

    def _columns(self, datasets: list[_Dataset], reference: _Dataset | None, compared: list[_Dataset]) -> None:
        """Every column of every dataset, one task per column name (its reference first), on a few threads.

        A task reads the column of each dataset in turn (Arrow releases the GIL while decoding, NumPy
        while counting), so two tasks keep two cores busy; memory stays at about one column per task.
        """
        order = ([reference] if reference is not None else []) + [d for d in datasets if d is not reference]
        names: list[str] = []
        for ds in order:
            if ds.reader is not None:
                names += [c for c in ds.reader.columns if c not in names]
        kinds = {name: self._drift_kind(name, reference, compared) for name in names}
        workers = min(_workers(self.inputs.extra.get("threads")), max(1, len(names)))
        if workers == 1:
            outs = (self._column(name, order, reference, compared, kinds[name]) for name in names)
            self._merge(outs)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="data_check") as pool:
            self._merge(pool.map(lambda name: self._column(name, order, reference, compared, kinds[name]), names))

    def _merge(self, outs: Any) -> None:
        for out in outs:
            self.checks += out.checks
            for key, row in out.rows:
                self.rows[key] = row
            self.plots.update(out.plots)

    def _column(self, name: str, order: list[_Dataset], reference: _Dataset | None, compared: list[_Dataset],
                drift_kind: str | None) -> _ColumnOut:
        out = _ColumnOut()
        ref_prep: D.NumericReference | D.CategoricalReference | None = None
        # Why this column's drift cannot be measured against the reference (None: so far it can). Set up
        # front for an unreadable or empty reference, or once its column proves unreadable or all null;
        # each compared dataset then gets error checks with this reason instead of no checks at all.
        ref_problem = reference.unusable_reason() if drift_kind is not None and reference is not None else None
        cap = self.config.max_offending_keys
        for ds in order:
            if ds.reader is None or name not in ds.reader.columns:
                continue
            if drift_kind is None and self._event_time_from_footers(ds, name, out):
                continue
            compares = drift_kind is not None and ds.usable and ds in compared and name not in ds.bad_columns
            # (status, reason) when this dataset's drift is not computed; decided before the read so
            # that no histogram or value counts are built for it.
            blocked = self._blocked(ds, name, reference, ref_problem, out) if compares else None
            try:
                column = ds.reader.column(name, threads=False)
            except DatasetReadError as exc:
                out.checks.append(CheckResult(id=f"read:{ds.role}:{name}", status=Status.ERROR, message=str(exc)))
                ds.unread.add(name)
                if ds is reference and drift_kind is not None and ref_problem is None:
                    ref_problem = (f"the column of the reference dataset {ds.role!r} ({ds.uri}) could not be read "
                                   f"(see read:{ds.role}:{name})")
                elif compares and blocked is None:
                    out.checks += self._not_measured(ds, name, drift_kind, Status.ERROR,
                                                     f"the column could not be read (see read:{ds.role}:{name})")
                continue
            row: dict[str, Any] = {"dataset": ds.role, "column": name}
            out.rows.append(((ds.role, name), row))
            spec = None if name in ds.bad_columns else ds.spec(name)
            n = len(column)
            drifts = drift_kind is not None and ds.usable and (
                (ds is reference and ref_problem is None) or (compares and blocked is None and ref_prep is not None))
            counts: dict[Any, int] | None = None  # non-null value counts, shared by label checks and category drift
            builder: HistogramBuilder | None = None
            scan = None
            if C.is_numeric(column.type):
                keep = drifts and ds is reference and drift_kind == "numeric"
                builder = self._builder(ds, reference, ref_prep, column.type) if drifts else None
                scan = scan_numeric(column, low=spec.min if spec else None, high=spec.max if spec else None,
                                    cap=cap, hist=builder, keep=keep)
                missing = scan.missing
                row.update(rows=n, nulls=missing, null_rate=(missing / n) if n else None,
                           type=C.shown_type(column.type))
                out.checks += C.numeric_column_checks(ds.role, name, column, scan, spec, row, ds.pending)
            elif pa.types.is_dictionary(column.type):
                allowed = set(spec.categories) if spec is not None and spec.categories is not None else None
                cats = scan_dictionary(column, allowed, cap)
                counts = cats.counts
                row.update(rows=n, nulls=cats.nulls, null_rate=(cats.nulls / n) if n else None,
                           type=C.shown_type(column.type))
                out.checks += C.dictionary_column_checks(ds.role, name, column, cats, spec, row, ds.pending)
            else:
                nulls = int(column.null_count)
                row.update(rows=n, nulls=nulls, null_rate=(nulls / n) if n else None, type=C.shown_type(column.type))
                out.checks += C.other_column_checks(ds.role, name, column, spec, row, ds.pending)
                if drifts and drift_kind == "numeric" and C.drifts_as_numbers(column.type):
                    # Dates and times drift as microseconds: the same fused pass, without value checks.
                    builder = self._builder(ds, reference, ref_prep, column.type)
                    scan = scan_numeric(temporal_micros(column), cap=0, hist=builder,
                                        keep=ds is reference)
            contract = ds.contract if ds.usable else None
            is_label = contract is not None and contract.label is not None and contract.label.column == name
            # A column with no value (null or NaN in every row) has no distribution: nothing to compare.
            empty = bool(n) and row["nulls"] == n
            if drifts and empty:
                if ds is reference:
                    ref_problem = (f"every value of the column is null in the reference dataset {ds.role!r} "
                                   f"({ds.uri})")
                else:
                    out.checks += self._not_measured(ds, name, drift_kind, Status.ERROR,
                                                     "every value of the column is null")
            elif drifts and ds is reference:
                if drift_kind == "categorical":
                    counts = counts if counts is not None else C.value_counts(column)
                    ref_prep = D.CategoricalReference(counts=counts)
                else:
                    assert scan is not None
                    ref_prep = D.prepare_numeric_reference(scan.present, scan.present_count, self.config.psi_bins,
                                                           self.config.fine_bins,
                                                           grid=C.value_grid(column.type))
            elif drifts and ref_prep is not None:
                if isinstance(ref_prep, D.CategoricalReference) and counts is None and \
                        (C.is_categorical(column.type) or C.is_numeric(column.type)):
                    counts = C.value_counts(column)
                out.checks += self._drift(ds, name, column, ref_prep, row, out.plots, builder, counts)
            elif compares:  # blocked (or, defensively, no reference values were prepared)
                status, reason = blocked or (Status.ERROR, "the reference column gave no values to compare")
                out.checks += self._not_measured(ds, name, drift_kind, status, reason)
            scan = builder = None
            if contract is not None:
                if contract.key == [name]:
                    ds.key_check = C.key_check(ds.role, contract, pa.table({name: column}), ds.pending, cap)
                if is_label:
                    counts = counts if counts is not None else C.value_counts(column)
                    ds.label_checks = C.label_checks(ds.role, contract, column, counts, ds.pending)
                if contract.event_time is not None and contract.event_time.column == name:
                    ds.freshness_check = C.freshness_check(ds.role, contract, column.type, C.newest_value(column),
                                                           self.now)
            del column
        return out

    def _blocked(self, ds: _Dataset, name: str, reference: _Dataset | None, ref_problem: str | None,
                 out: _ColumnOut) -> tuple[Status, str] | None:
        """Before a compared column is read: its ``dtype`` check against the reference's type (when
        both are known), and why its drift will not be computed, if it will not.

        A type mismatch skips drift (the failed ``dtype`` check carries the verdict); a reference
        that cannot be compared against makes drift an error (undecided).
        """
        ref_type = _schema_type(reference, name)
        cur_type = _schema_type(ds, name)
        if reference is not None and ref_type is not None and cur_type is not None:
            typed = C.dtype_check(ds.role, ds.uri, name, cur_type, reference.role, reference.uri, ref_type)
            if typed is not None:
                out.checks.append(typed)
                if typed.status is not Status.PASS:
                    return Status.SKIPPED, f"type differs from the reference's (see dtype:{ds.role}:{name})"
        if ref_problem is not None:
            return Status.ERROR, ref_problem
        return None

    def _not_measured(self, ds: _Dataset, name: str, drift_kind: str | None, status: Status,
                      reason: str) -> list[CheckResult]:
        spec = ds.spec(name)
        psi, ks = (_shown_levels(self.config.levels(name, kind, getattr(spec, kind) if spec else None))
                   for kind in ("psi", "ks"))
        return C.drift_not_measured(ds.role, ds.uri, name, drift_kind == "numeric", status, reason, (psi, ks))

    def _event_time_from_footers(self, ds: _Dataset, name: str, out: _ColumnOut) -> bool:
        """Answer an event-time column from the Parquet footers (row group statistics) without reading it.

        Only when the column is wanted for nothing but its null count and newest value (not a key,
        label, category or drift column, and its null rate within the limit, so no offending rows are
        needed); returns False, and the caller reads the column, in every other case.
        """
        contract = ds.contract if ds.usable else None
        if contract is None or contract.event_time is None or contract.event_time.column != name \
                or name in contract.key or (contract.label is not None and contract.label.column == name) \
                or name in ds.bad_columns:
            return False
        spec = ds.spec(name)
        if spec is not None and spec.categories is not None:
            return False
        facts = _reader(ds).footer_facts(name)
        if facts is None or not C.is_temporal(facts.type):
            return False
        rate = facts.nulls / facts.rows if facts.rows else None
        if spec is not None and spec.null_limit is not None and (rate or 0.0) > spec.null_limit:
            return False  # the failed null check wants the offending rows: read them
        row = {"dataset": ds.role, "column": name, "rows": facts.rows, "nulls": facts.nulls, "null_rate": rate,
               "type": C.shown_type(facts.type), "source": "parquet statistics"}
        out.rows.append(((ds.role, name), row))
        if spec is not None:
            result = C.null_check(ds.role, name, facts.nulls, facts.rows, spec, None, ds.pending)
            if result is not None:
                out.checks.append(result)
            if spec.min is not None or spec.max is not None:
                out.checks.append(C.range_needs_numbers(ds.role, name, facts.type, spec))
        ds.freshness_check = C.freshness_check(ds.role, contract, facts.type, facts.maximum, self.now)
        return True

    def _drift_kind(self, name: str, reference: _Dataset | None, compared: list[_Dataset]) -> str | None:
        """"numeric", "categorical" or None (no drift for this column).

        From the reference's type when its schema is known; when it is not (the reference could not
        be opened) or the column is null-typed there, from the compared datasets' type — so that drift
        which cannot be measured is still reported, as an error, rather than left out.
        """
        if reference is None:
            return None
        ref_type = _schema_type(reference, name)
        if (reference.reader is not None and ref_type is None) or name in reference.bad_columns:
            return None  # the reference has no such column (or a mistyped one): nothing to compare with
        policy = self.config.columns.get(name)
        if policy is not None and not policy.drift:
            return None
        labels = set()
        for ds in [reference, *compared]:
            c = ds.contract
            if c is None:
                continue
            spec = c.columns.get(name)
            if name in c.key or (c.event_time and c.event_time.column == name) or (spec is not None and not spec.drift):
                return None
            if c.label is not None:
                labels.add(c.label.column)
        spec = reference.spec(name)
        if (spec is not None and spec.type == "category") or name in labels:
            return "categorical"  # the label is a class, whatever its storage type
        if ref_type is not None and not pa.types.is_null(ref_type):
            types = [ref_type]
        else:
            types = [t for t in (_schema_type(d, name) for d in compared) if t is not None and not pa.types.is_null(t)]
        if not types:
            return None
        if C.drifts_as_numbers(types[0]):
            return "numeric"
        if C.is_categorical(types[0]):
            return "categorical"
        return None

    @staticmethod
    def _builder(ds: _Dataset, reference: _Dataset | None, ref_prep: Any, arrow_type: pa.DataType
                 ) -> HistogramBuilder | None:
        """The fine histogram a compared dataset's numeric column is counted into (the reference's bins)."""
        if ds is reference or not isinstance(ref_prep, D.NumericReference):
            return None
        return HistogramBuilder.like(ref_prep.hist, grid=C.value_grid(arrow_type))

    def _drift(self, ds: _Dataset, name: str, column: Any, ref: Any, row: dict[str, Any],
               plots: dict[tuple[str, str], dict[str, Any]], builder: HistogramBuilder | None,
               counts: dict[Any, int] | None) -> list[CheckResult]:
        spec = ds.spec(name)
        psi_levels = self.config.levels(name, "psi", spec.psi if spec else None)
        if isinstance(ref, D.CategoricalReference):
            if counts is None:
                return [CheckResult(id=f"psi:{ds.role}:{name}", status=Status.FAIL, observed=str(column.type),
                                    message=f"{ds.role}.{name}: type {column.type} differs from the reference")]
            return D.categorical_drift(ds.role, name, counts, ref, psi_levels, epsilon=self.config.psi_epsilon,
                                       row=row, plots=plots)
        if not C.drifts_as_numbers(column.type) or builder is None:
            return [CheckResult(id=f"psi:{ds.role}:{name}", status=Status.FAIL, observed=str(column.type),
                                message=f"{ds.role}.{name}: type {column.type} is not numeric like the reference's")]
        ks_levels = self.config.levels(name, "ks", spec.ks if spec else None)
        return D.numeric_drift(ds.role, name, builder.finish(), ref, psi_levels, ks_levels,
                               exact=self.config.ks_mode == "exact", epsilon=self.config.psi_epsilon,
                               row=row, plots=plots)

