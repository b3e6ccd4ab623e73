"""One dataset of a ``data_check`` run: its state, how it is opened, and its dataset-level checks.

Why: before any column is read each dataset must be located, its contract parsed, its digest
compared with the manifest's, its files opened and its schema compared with the contract; after
the column pass the key, label and freshness verdicts gathered there become checks, and the keys
of offending rows are looked up. Those steps are the ``_DatasetSteps`` mixin of
:class:`~gates.data_check.run._Run`; the column pass is in :mod:`~gates.data_check.columns`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from gates.base import CheckResult, GateInputs, Status
from gates.data_check import checks as C
from gates.data_check.models import ColumnContract, DataCheckConfig, DatasetContract, DatasetLocator
from gates.data_check.reader import DatasetReader, DatasetReadError

_KIND_WORDS = {"not_found": "was not found", "unreadable": "is unreadable", "unreachable": "is unreachable"}


@dataclass
class _Dataset:
    """What the run knows about one dataset role, filled in as the steps go."""

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
    failure: str | None = None  # why there is no reader, and which check says so (for drift messages)

    @property
    def usable(self) -> bool:
        return self.reader is not None and self.reader.num_rows > 0

    def unusable_reason(self) -> str | None:
        """Why this dataset has no rows to compare (None when it has some), naming its role and URI.

        Drift against an unusable reference is reported on each compared column with this reason,
        rather than left out (a missing drift check would read as "nothing to see").
        """
        if self.usable:
            return None
        what = f"the reference dataset {self.role!r} ({self.uri})"
        if self.reader is None:
            return f"{what} {self.failure or 'could not be opened'}"
        return f"{what} has 0 rows (see rows:{self.role})"

    def spec(self, column: str) -> ColumnContract | None:
        return self.contract.columns.get(column) if self.contract else None


class _DatasetSteps:
    """The per-dataset steps of :class:`~gates.data_check.run._Run` (which holds the state used here)."""

    inputs: GateInputs
    config: DataCheckConfig
    checks: list[CheckResult]
    offenders: dict[str, list[Any]]
    digests: dict[str, str]

    # ----------------------------------------------------------------- opening

    def _open(self, ref: dict[str, Any]) -> _Dataset:
        role, uri = ref.get("role", "?"), ref.get("uri", "?")
        raw_locator = self.inputs.datasets.get(role)
        contract = self._contract(role, ref.get("contract") or {})
        ds = _Dataset(role=role, uri=uri, contract=contract)
        if raw_locator is None:
            ds.failure = f"was not located by the flow (see dataset:{role})"
            self.checks.append(CheckResult(id=f"dataset:{role}", status=Status.ERROR, threshold="located",
                                           message=f"{role} ({uri}): the flow did not locate this dataset"))
            return ds
        try:
            locator = raw_locator if isinstance(raw_locator, DatasetLocator) else \
                DatasetLocator.model_validate(raw_locator)
        except ValidationError as exc:
            ds.failure = f"has an invalid locator (see dataset:{role})"
            self.checks.append(CheckResult(id=f"dataset:{role}", status=Status.ERROR,
                                           message=f"{role} ({uri}): invalid locator: {exc.errors()[0]['msg']}"))
            return ds
        if contract is not None and contract.format and not locator.error:
            locator = locator.model_copy(update={"format": contract.format})
        self._digest_check(role, ref.get("sha256"), locator)
        try:
            ds.reader = DatasetReader(locator)
        except DatasetReadError as exc:
            ds.failure = f"{_KIND_WORDS.get(exc.kind, exc.kind)} (see readable:{role})"
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
                                   f"{role} ({uri}): {n} rows"
                                   + (" (empty dataset)" if n == 0 else f", fewer than {min_rows}")))
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
                                               message=f"{ds.role} ({ds.uri}): required column {name!r} is missing"))
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

    # ----------------------------------------------------------------- after the column pass

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
                    raise DatasetReadError("unreadable", f"{ds.role} ({ds.uri}): label column "
                                                         f"{contract.label.column!r} could not be read")
                self.checks += ds.label_checks
            if contract.event_time and contract.event_time.column in present:
                if ds.freshness_check is None:
                    raise DatasetReadError("unreadable", f"{ds.role} ({ds.uri}): event time column "
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
