"""One evaluation of the ``data_check`` gate, start to finish: the order of the steps and the result.

Why: :class:`_Run` holds what one evaluation accumulates (checks, per-column table rows,
offending keys, plot data, digests) and runs the steps in order: open each dataset, pick the
reference, the column pass, the dataset-level checks, the offending keys; then it writes the
evidence files and builds the :class:`~gates.base.GateResult`. The steps themselves are in
:mod:`~gates.data_check.datasets` and :mod:`~gates.data_check.columns`.
"""

from __future__ import annotations

from typing import Any

from clearance.core.clock import aware_now
from gates.base import CheckResult, GateInputs, GateResult, Status
from gates.data_check.columns import _ColumnPass
from gates.data_check.datasets import _Dataset, _DatasetSteps
from gates.data_check.evidence import write_plot, write_table
from gates.data_check.models import DataCheckConfig
from gates.evidence import evidence_directory

_METRIC_FIELDS = ("nulls", "null_rate", "range_violations", "unknown_categories", "psi", "ks", "ks_p_value", "ks_gap",
                  "unseen_rows")


class _Run(_DatasetSteps, _ColumnPass):
    """One evaluation: the state it accumulates and the order of its steps."""

    def __init__(self, inputs: GateInputs, config: DataCheckConfig, *, gate_id: str, gate_version: str) -> None:
        self.inputs, self.config = inputs, config
        self.gate_id, self.gate_version = gate_id, gate_version  # the registered gate's, for the result
        self.checks: list[CheckResult] = []
        self.rows: dict[tuple[str, str], dict[str, Any]] = {}
        self.offenders: dict[str, list[Any]] = {}
        self.plots: dict[tuple[str, str], dict[str, Any]] = {}
        self.digests: dict[str, str] = {}
        self.now = aware_now(inputs.extra.get("now"))

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
        directory = evidence_directory(self.inputs, "data_check")
        failed = [c for c in self.checks if c.status in (Status.FAIL, Status.ERROR)]
        summary = {"datasets": [d.role for d in datasets], "checks": len(self.checks), "failed": len(failed),
                   "now": self.now.isoformat()}
        evidence = [write_table(directory, list(self.rows.values()), self.offenders, summary)]
        plot = write_plot(directory, self.plots, self.config.plot_columns)
        if plot is not None:
            evidence.append(plot)
        message = (f"{len(datasets)} dataset(s), {len(self.rows)} dataset columns, {len(self.checks)} checks, "
                   f"{len(failed)} failed or undecided")
        return GateResult.from_checks(self.gate_id, self.gate_version, self.checks, metrics=metrics,
                                      evidence=evidence, input_digests=self.digests, message=message)
