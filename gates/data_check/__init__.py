"""Gate ``data_check``: the candidate's datasets meet their contracts and have not drifted from the reference.

Inputs: the manifest's ``DatasetRef`` list of the version (role, uri, sha256, contract) and, per role,
a :class:`~gates.data_check.models.DatasetLocator` in ``GateInputs.datasets`` (prepared by
``tasks/datasets.py``). Optional ``GateInputs.extra``: ``evidence_dir`` (where the JSON table and
PNG go; a temp dir otherwise) and ``now`` (ISO time for freshness; the current time otherwise).

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

import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ValidationError

from gates.base import CheckResult, GateInputs, GateResult, Status, register_gate, utcnow
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
from gates.data_check.reader import DatasetReader, DatasetReadError, numeric_values

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
        # scipy.stats and matplotlib take ~1-2 s to import: import them while Arrow reads (GIL released).
        threading.Thread(target=_warm_imports, daemon=True).start()
        return _Run(inputs, config).run()


def _warm_imports() -> None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot  # noqa: F401
        import scipy.stats  # noqa: F401
    except Exception:  # noqa: BLE001 — the real import later reports any problem
        pass


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
        order = ([reference] if reference is not None else []) + [d for d in datasets if d is not reference]
        names: list[str] = []
        for ds in order:
            if ds.reader is not None:
                names += [c for c in ds.reader.columns if c not in names]
        for name in names:
            ref_prep: D.NumericReference | D.CategoricalReference | None = None
            drift_kind = self._drift_kind(name, reference, compared)
            for ds in order:
                if ds.reader is None or name not in ds.reader.columns:
                    continue
                try:
                    column = ds.reader.column(name)
                except DatasetReadError as exc:
                    self.checks.append(CheckResult(id=f"read:{ds.role}:{name}", status=Status.ERROR, message=str(exc)))
                    continue
                row = self.rows.setdefault((ds.role, name), {"dataset": ds.role, "column": name})
                spec = None if name in ds.bad_columns else ds.spec(name)
                assert ds.finder is not None
                numeric_data = numeric_values(column) if C.is_numeric(column.type) else None
                self.checks += C.column_checks(ds.role, name, column, spec, ds.finder, row, self.offenders,
                                               numeric_data)
                if drift_kind is None or not ds.usable:
                    continue
                if ds is reference:
                    ref_prep = D.prepare_reference(column, drift_kind == "categorical", self.config.psi_bins,
                                                   self.config.fine_bins, numeric_data)
                elif ds in compared and ref_prep is not None:
                    self._drift(ds, name, column, ref_prep, row, numeric_data)
                del column, numeric_data

    def _drift_kind(self, name: str, reference: _Dataset | None, compared: list[_Dataset]) -> str | None:
        if reference is None or not reference.usable or name not in reference.reader.columns:
            return None
        if name in reference.bad_columns:
            return None
        policy = self.config.columns.get(name)
        if policy is not None and not policy.drift:
            return None
        for ds in [reference, *compared]:
            c = ds.contract
            if c is None:
                continue
            spec = c.columns.get(name)
            if name in c.key or (c.event_time and c.event_time.column == name) or (spec is not None and not spec.drift):
                return None
        ref_type = reference.reader.schema.field(name).type
        spec = reference.spec(name)
        if spec is not None and spec.type == "category":
            return "categorical"
        if C.is_numeric(ref_type):
            return "numeric"
        if C.is_categorical(ref_type):
            return "categorical"
        return None

    def _drift(self, ds: _Dataset, name: str, column: Any, ref: Any, row: dict[str, Any],
               numeric_data: Any = None) -> None:
        if name in ds.bad_columns:
            return
        spec = ds.spec(name)
        psi_levels = self.config.levels(name, "psi", spec.psi if spec else None)
        if isinstance(ref, D.CategoricalReference):
            if not C.is_categorical(column.type) and not C.is_numeric(column.type):
                self.checks.append(CheckResult(id=f"psi:{ds.role}:{name}", status=Status.FAIL, observed=str(column.type),
                                               message=f"{ds.role}.{name}: type {column.type} differs from the reference"))
                return
            self.checks += D.categorical_drift(ds.role, name, column, ref, psi_levels,
                                               epsilon=self.config.psi_epsilon, row=row, plots=self.plots)
            return
        if not C.is_numeric(column.type):
            self.checks.append(CheckResult(id=f"psi:{ds.role}:{name}", status=Status.FAIL, observed=str(column.type),
                                           message=f"{ds.role}.{name}: type {column.type} is not numeric like the "
                                                   f"reference's"))
            return
        ks_levels = self.config.levels(name, "ks", spec.ks if spec else None)
        self.checks += D.numeric_drift(ds.role, name, column, ref, psi_levels, ks_levels,
                                       exact=self.config.ks_mode == "exact", epsilon=self.config.psi_epsilon,
                                       row=row, plots=self.plots, numeric_data=numeric_data)

    # ----------------------------------------------------------------- per dataset

    def _dataset_checks(self, ds: _Dataset) -> None:
        contract, reader = ds.contract, ds.reader
        assert contract is not None and reader is not None and ds.finder is not None
        present = set(reader.columns)
        try:
            if contract.key and all(k in present for k in contract.key):
                self.checks.append(C.key_check(ds.role, contract, reader, ds.finder, self.offenders))
            if contract.label and contract.label.column in present:
                self.checks += C.label_checks(ds.role, contract, reader, ds.finder, self.offenders)
            if contract.event_time and contract.event_time.column in present:
                self.checks.append(C.freshness_check(ds.role, contract, reader, self.now))
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
    return now if now.tzinfo else now.replace(tzinfo=timezone.utc)
