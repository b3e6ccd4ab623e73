"""Gate ``data_check``: the candidate's datasets meet their contracts and have not drifted from the reference.

Inputs: the manifest's ``DatasetRef`` list of the version (role, uri, sha256, contract) and, per role,
a :class:`~gates.data_check.models.DatasetLocator` in ``GateInputs.datasets`` (prepared by
``tasks/datasets.py``). Optional ``GateInputs.extra``: ``evidence_dir`` (where the JSON table and
PNG go; a temp dir otherwise), ``now`` (ISO time for freshness; the current time otherwise) and
``threads`` (columns processed at once; default one per CPU, at most 4).

Check ids (stable; ``<role>`` is the dataset role, ``<col>`` a column):

==========================  =========================================================
``dataset:<role>``          the flow resolved the dataset (error when not given)
``digest:<role>``           observed sha256 == manifest sha256
``contract:<role>``         the contract is valid (error) / present when required (fail)
``readable:<role>``         files exist and parse (fail: not found / unreadable; error: unreachable)
``rows:<role>``             row count >= contract ``min_rows`` (default 1: empty is a failure)
``column:<role>:<col>``     a contract column exists
``type:<role>:<col>``       and has the declared type
``contract_column:<role>:<col>``  a column the contract names as key/label/event time exists
``extra_columns:<role>``    no undeclared columns (``strict_columns: true``)
``null_rate:<role>:<col>``  null (or NaN) share <= ``max_null_rate`` (0 if ``nullable: false``)
``range:<role>:<col>``      count of values outside ``[min, max]`` == 0
``categories:<role>:<col>`` count of values outside ``categories`` == 0
``unique_key:<role>``       count of rows whose ``key`` occurs more than once == 0
``label_nulls:<role>`` / ``label_values:<role>`` / ``label_balance:<role>``
``freshness:<role>``        now - newest ``event_time`` <= ``max_age``
``reference``               a reference dataset exists (fail only with ``require_reference``)
``psi:<role>:<col>``        PSI vs reference (numeric: reference-quantile bins; categorical:
                            categories, unseen ones in their own bin) against warn/fail levels
``ks:<role>:<col>``         two-sample KS statistic D (numeric), p-value in the message
``read:<role>:<col>``       a column could not be read (error)
==========================  =========================================================
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import BaseModel, ValidationError

from clearance.core.clock import utcnow
from gates.base import CheckResult, GateInputs, GateResult, Status, register_gate
from gates.data_check import checks as C
from gates.data_check import drift as D
from gates.data_check.evidence import write_plot, write_table
from gates.data_check.models import (
    ColumnContract,
    DataCheckConfig,
    DatasetContract,
    DatasetLocator,
    FilesystemSpec,
    Levels,
    dataset_digest,
)
from gates.data_check.reader import DatasetReader, DatasetReadError
from gates.data_check.scan import HistogramBuilder, scan_dictionary, scan_numeric

__all__ = ["DataCheckConfig", "DataCheckGate", "DatasetContract", "DatasetLocator", "FilesystemSpec", "Levels",
           "dataset_digest"]

_METRIC_FIELDS = ("nulls", "null_rate", "range_violations", "unknown_categories", "psi", "ks", "ks_p_value",
                  "unseen_rows")


@dataclass
class _Dataset:
    role: str
    uri: str
    contract: DatasetContract | None
    reader: DatasetReader | None = None
    finder: C.KeyFinder | None = None
    bad_columns: set[str] = field(default_factory=set)
    pending: C.Pending = field(default_factory=list)  # failed row-level checks whose keys are still to look up
    key_check: CheckResult | None = None  # dataset-level checks computed while their column was read
    label_checks: list[CheckResult] | None = None
    freshness_check: CheckResult | None = None
    unread: set[str] = field(default_factory=set)  # columns that could not be read

    @property
    def usable(self) -> bool:
        return self.reader is not None and self.reader.num_rows > 0

    def spec(self, column: str) -> ColumnContract | None:
        return self.contract.columns.get(column) if self.contract else None


@register_gate
class DataCheckGate:
    """Datasets meet their contracts (schema, nulls, ranges, categories, keys, label, freshness) and drift is bounded."""

    id: ClassVar[str] = "data_check"
    version: ClassVar[str] = "1.0.0"
    config_model: ClassVar[type[BaseModel]] = DataCheckConfig

    def evaluate(self, inputs: GateInputs, config: BaseModel) -> GateResult:
        assert isinstance(config, DataCheckConfig)
        return _Run(inputs, config).run()


@dataclass
class _ColumnOut:
    """What one column task produced (merged in column order, so results do not depend on scheduling)."""

    checks: list[CheckResult] = field(default_factory=list)
    rows: list[tuple[tuple[str, str], dict[str, Any]]] = field(default_factory=list)
    plots: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


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


class _Run:
    def __init__(self, inputs: GateInputs, config: DataCheckConfig) -> None:
        self.inputs, self.config = inputs, config
        self.checks: list[CheckResult] = []
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.offenders: dict[str, list[Any]] = {}
        self.plots: dict[tuple[str, str], dict[str, Any]] = {}
        self.digests: dict[str, str] = {}
        self.now = _now(inputs.extra.get("now"))

    # ----------------------------------------------------------------- orchestration

    def run(self) -> GateResult:
        version = (self.inputs.manifest.get("versions") or {}).get(self.inputs.version) or {}
        refs = version.get("datasets") or []
        datasets: list[_Dataset] = []
        seen: set[str] = set()
        for ref in refs:
            role = ref.get("role", "?")
            if role in seen:
                self.checks.append(CheckResult(id=f"dataset:{role}", status=Status.ERROR,
                                               message=f"role {role!r} is listed twice in the manifest"))
                continue
            seen.add(role)
            datasets.append(self._open(ref))
        if not datasets:
            self.checks.append(CheckResult(id="datasets", status=Status.SKIPPED, observed=0,
                                           message="the manifest lists no datasets for this version"))
        reference = self._reference(datasets)
        compared = [d for d in datasets if d is not reference and d.role in self.config.compare_roles]
        self._columns(datasets, reference, compared)
        for ds in datasets:
            if ds.usable and ds.contract is not None:
                self._dataset_checks(ds)
        self._offending_keys(datasets)
        return self._result(datasets)

    def _open(self, ref: dict[str, Any]) -> _Dataset:
        role, uri = ref.get("role", "?"), ref.get("uri", "?")
        raw_locator = self.inputs.datasets.get(role)
        contract = self._contract(role, ref.get("contract") or {})
        ds = _Dataset(role=role, uri=uri, contract=contract)
        if raw_locator is None:
            self.checks.append(CheckResult(id=f"dataset:{role}", status=Status.ERROR, threshold="located",
                                           message=f"{role} ({uri}): the flow did not locate this dataset"))
            return ds
        try:
            locator = raw_locator if isinstance(raw_locator, DatasetLocator) else \
                DatasetLocator.model_validate(raw_locator)
        except ValidationError as exc:
            self.checks.append(CheckResult(id=f"dataset:{role}", status=Status.ERROR,
                                           message=f"{role}: invalid locator: {exc.errors()[0]['msg']}"))
            return ds
        if contract is not None and contract.format and not locator.error:
            locator = locator.model_copy(update={"format": contract.format})
        self._digest_check(role, ref.get("sha256"), locator)
        try:
            ds.reader = DatasetReader(locator)
        except DatasetReadError as exc:
            status = Status.ERROR if exc.kind == "unreachable" else Status.FAIL
            self.checks.append(CheckResult(id=f"readable:{role}", status=status, observed=exc.kind,
                                           threshold="readable", message=str(exc)))
            return ds
        self.checks.append(CheckResult(id=f"readable:{role}", status=Status.PASS, observed="readable",
                                       threshold="readable"))
        ds.finder = C.KeyFinder(ds.reader, contract.key if contract else [], self.config.max_offending_keys)
        min_rows = contract.min_rows if contract else 1
        n = ds.reader.num_rows
        self.checks.append(C.check(f"rows:{role}", n >= min_rows, n, f">= {min_rows}",
                                   f"{role}: {n} rows" + (" (empty dataset)" if n == 0 else f", fewer than {min_rows}")))
        if contract is not None:
            self._schema_checks(ds, contract)
        return ds

    def _contract(self, role: str, raw: dict[str, Any]) -> DatasetContract | None:
        if not raw:
            if self.config.require_contract:
                self.checks.append(CheckResult(id=f"contract:{role}", status=Status.FAIL, observed="none",
                                               threshold="required", message=f"{role}: the dataset has no contract"))
            return None
        try:
            contract = DatasetContract.model_validate(raw)
        except ValidationError as exc:
            details = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(contract)'}: {e['msg']}"
                                for e in exc.errors())
            self.checks.append(CheckResult(id=f"contract:{role}", status=Status.ERROR, observed="invalid",
                                           threshold="valid", message=f"{role}: invalid contract: {details}"))
            return None
        self.checks.append(CheckResult(id=f"contract:{role}", status=Status.PASS, observed="valid", threshold="valid"))
        return contract

    def _digest_check(self, role: str, pinned: str | None, locator: DatasetLocator) -> None:
        cid = f"digest:{role}"
        if locator.sha256:
            self.digests[role] = locator.sha256
        if pinned is None:
            status = Status.FAIL if self.config.require_digest else Status.SKIPPED
            self.checks.append(CheckResult(id=cid, status=status, observed=locator.sha256, threshold=None,
                                           message=f"{role}: the manifest pins no sha256 for this dataset"))
        elif locator.error:
            return  # the readable check reports why there is nothing to digest
        elif locator.sha256 is None:
            self.checks.append(CheckResult(id=cid, status=Status.ERROR, threshold=pinned,
                                           message=f"{role}: the flow observed no digest"))
        else:
            self.checks.append(C.check(cid, locator.sha256 == pinned, locator.sha256, pinned,
                                       f"{role} ({locator.uri}): content differs from the pinned digest"))

    def _schema_checks(self, ds: _Dataset, contract: DatasetContract) -> None:
        assert ds.reader is not None
        present = set(ds.reader.columns)
        schema = ds.reader.schema
        for name, spec in contract.columns.items():
            if name not in present:
                ds.bad_columns.add(name)
                self.checks.append(CheckResult(id=f"column:{ds.role}:{name}", status=Status.FAIL, observed="missing",
                                               threshold="present",
                                               message=f"{ds.role}: required column {name!r} is missing"))
                continue
            self.checks.append(CheckResult(id=f"column:{ds.role}:{name}", status=Status.PASS, observed="present",
                                           threshold="present"))
            if spec.type is not None:
                typ = schema.field(name).type
                ok = C.type_matches(spec.type, typ)
                if not ok:
                    ds.bad_columns.add(name)
                self.checks.append(C.check(f"type:{ds.role}:{name}", ok, str(typ), spec.type,
                                           f"{ds.role}.{name}: type {typ} is not {spec.type}"))
        named = [(k, "key") for k in contract.key]
        if contract.label:
            named.append((contract.label.column, "label"))
        if contract.event_time:
            named.append((contract.event_time.column, "event time"))
        for name, what in named:
            if name not in present and name not in contract.columns:
                self.checks.append(CheckResult(
                    id=f"contract_column:{ds.role}:{name}", status=Status.FAIL, observed="missing",
                    threshold="present", message=f"{ds.role}: the contract names column {name!r} as {what}, "
                                                 f"but the dataset has no such column"))
        if contract.strict_columns:
            extra = sorted(present - set(contract.columns))
            self.checks.append(C.check(f"extra_columns:{ds.role}", not extra, extra, [],
                                       f"{ds.role}: columns not in the contract: {', '.join(extra)}"))

    def _reference(self, datasets: list[_Dataset]) -> _Dataset | None:
        by_role = {d.role: d for d in datasets}
        other = "train" if self.config.reference_role == "reference" else "reference"
        ref = by_role.get(self.config.reference_role) or by_role.get(other)
        wanted = any(d.role in self.config.compare_roles for d in datasets)
        if ref is None and wanted:
            status = Status.FAIL if self.config.require_reference else Status.SKIPPED
            self.checks.append(CheckResult(id="reference", status=status, observed=None,
                                           threshold=self.config.reference_role,
                                           message="no reference or train dataset: drift not measured"))
        return ref

    # ----------------------------------------------------------------- per column

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
        cap = self.config.max_offending_keys
        for ds in order:
            if ds.reader is None or name not in ds.reader.columns:
                continue
            if drift_kind is None and self._event_time_from_footers(ds, name, out):
                continue
            try:
                column = ds.reader.column(name, threads=False)
            except DatasetReadError as exc:
                out.checks.append(CheckResult(id=f"read:{ds.role}:{name}", status=Status.ERROR, message=str(exc)))
                ds.unread.add(name)
                continue
            row: dict[str, Any] = {"dataset": ds.role, "column": name}
            out.rows.append(((ds.role, name), row))
            spec = None if name in ds.bad_columns else ds.spec(name)
            n = len(column)
            drifts = drift_kind is not None and ds.usable and (ds is reference or (ds in compared and ref_prep is not None))
            counts: dict[Any, int] | None = None  # non-null value counts, shared by label checks and category drift
            builder: HistogramBuilder | None = None
            scan = None
            if C.is_numeric(column.type):
                keep = drifts and ds is reference and drift_kind == "numeric"
                if drifts and ds is not reference and isinstance(ref_prep, D.NumericReference) \
                        and name not in ds.bad_columns:
                    h = ref_prep.hist
                    builder = HistogramBuilder(h.lo, h.hi, h.bins)
                scan = scan_numeric(column, low=spec.min if spec else None, high=spec.max if spec else None,
                                    cap=cap, hist=builder, keep=keep)
                missing = scan.missing
                row.update(rows=n, nulls=missing, null_rate=(missing / n) if n else None, type=C.shown_type(column.type))
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
            contract = ds.contract if ds.usable else None
            is_label = contract is not None and contract.label is not None and contract.label.column == name
            if drifts and ds is reference:
                if drift_kind == "categorical":
                    counts = counts if counts is not None else C.value_counts(column)
                    ref_prep = D.CategoricalReference(counts=counts)
                else:
                    assert scan is not None
                    ref_prep = D.prepare_numeric_reference(scan.present, scan.present_count, self.config.psi_bins,
                                                           self.config.fine_bins)
            elif drifts and ref_prep is not None and name not in ds.bad_columns:
                if isinstance(ref_prep, D.CategoricalReference) and counts is None and \
                        (C.is_categorical(column.type) or C.is_numeric(column.type)):
                    counts = C.value_counts(column)
                out.checks += self._drift(ds, name, column, ref_prep, row, out.plots, builder, counts)
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
        facts = ds.reader.footer_facts(name)
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
        if reference is None or not reference.usable or name not in reference.reader.columns:
            return None
        if name in reference.bad_columns:
            return None
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
        ref_type = reference.reader.schema.field(name).type
        spec = reference.spec(name)
        if (spec is not None and spec.type == "category") or name in labels:
            return "categorical"  # the label is a class, whatever its storage type
        if C.is_numeric(ref_type):
            return "numeric"
        if C.is_categorical(ref_type):
            return "categorical"
        return None

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
        if not C.is_numeric(column.type) or builder is None:
            return [CheckResult(id=f"psi:{ds.role}:{name}", status=Status.FAIL, observed=str(column.type),
                                message=f"{ds.role}.{name}: type {column.type} is not numeric like the reference's")]
        ks_levels = self.config.levels(name, "ks", spec.ks if spec else None)
        return D.numeric_drift(ds.role, name, builder.finish(), ref, psi_levels, ks_levels,
                               exact=self.config.ks_mode == "exact", epsilon=self.config.psi_epsilon,
                               row=row, plots=plots)

    # ----------------------------------------------------------------- per dataset

    def _dataset_checks(self, ds: _Dataset) -> None:
        contract, reader = ds.contract, ds.reader
        assert contract is not None and reader is not None and ds.finder is not None
        present = set(reader.columns)
        try:
            if contract.key and all(k in present for k in contract.key):
                if ds.key_check is None:  # several key columns (or the key column could not be read)
                    ds.key_check = C.key_check(ds.role, contract, reader.table(contract.key), ds.pending,
                                                 self.config.max_offending_keys)
                self.checks.append(ds.key_check)
            if contract.label and contract.label.column in present:
                if ds.label_checks is None:
                    raise DatasetReadError("unreadable", f"{ds.role}: label column {contract.label.column!r} "
                                                         f"could not be read")
                self.checks += ds.label_checks
            if contract.event_time and contract.event_time.column in present:
                if ds.freshness_check is None:
                    raise DatasetReadError("unreadable", f"{ds.role}: event time column "
                                                         f"{contract.event_time.column!r} could not be read")
                self.checks.append(ds.freshness_check)
        except DatasetReadError as exc:
            self.checks.append(CheckResult(id=f"read:{ds.role}", status=Status.ERROR, message=str(exc)))

    def _offending_keys(self, datasets: list[_Dataset]) -> None:
        for ds in datasets:
            if ds.finder is None or not ds.pending:
                continue
            try:
                ds.finder.resolve(ds.pending, self.offenders)
            except DatasetReadError as exc:
                self.checks.append(CheckResult(id=f"read:{ds.role}", status=Status.ERROR, message=str(exc)))

    # ----------------------------------------------------------------- result

    def _result(self, datasets: list[_Dataset]) -> GateResult:
        metrics: dict[str, float] = {}
        for ds in datasets:
            if ds.reader is not None:
                metrics[f"{ds.role}.rows"] = float(ds.reader.num_rows)
        for (role, name), row in self.rows.items():
            for key in _METRIC_FIELDS:
                value = row.get(key)
                if isinstance(value, (int, float)) and value == value:
                    metrics[f"{role}.{name}.{key}"] = float(value)
        directory = Path(self.inputs.extra.get("evidence_dir") or tempfile.mkdtemp(prefix="data_check-"))
        directory.mkdir(parents=True, exist_ok=True)
        failed = [c for c in self.checks if c.status in (Status.FAIL, Status.ERROR)]
        summary = {"datasets": [d.role for d in datasets], "checks": len(self.checks), "failed": len(failed),
                   "now": self.now.isoformat()}
        evidence = [write_table(directory, list(self.rows.values()), self.offenders, summary)]
        plot = write_plot(directory, self.plots, self.config.plot_columns)
        if plot is not None:
            evidence.append(plot)
        message = (f"{len(datasets)} dataset(s), {len(self.rows)} dataset columns, {len(self.checks)} checks, "
                   f"{len(failed)} failed or undecided")
        return GateResult.from_checks(DataCheckGate.id, DataCheckGate.version, self.checks, metrics=metrics,
                                      evidence=evidence, input_digests=self.digests, message=message)


def _now(value: Any) -> datetime:
    if isinstance(value, datetime):
        now = value
    elif isinstance(value, str) and value:
        now = datetime.fromisoformat(value)
    else:
        now = utcnow()
    return now if now.tzinfo else now.replace(tzinfo=UTC)
