"""One evaluation of ``compliance_review``: its inputs, its config and what the concerns accumulate.

Every concern of :mod:`gates.compliance_review.gate` gets the same :class:`Review`: it reads the
manifest, the version and ``GateInputs.extra``, opens datasets through :meth:`Review.reader` (each
opened once, its digest recorded as ``dataset:<role>``), and appends to the evidence
:attr:`Review.table` and to :attr:`Review.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from clearance.core.clock import utcnow
from gates.base import GateInputs
from gates.compliance_review.config import ComplianceReviewConfig
from gates.compliance_review.model_card import ModelCard
from gates.data_check.models import DatasetLocator, DatasetReadError

if TYPE_CHECKING:  # the reader pulls in Arrow: imported when a dataset is opened, not with the gate
    from gates.data_check.reader import DatasetReader

MAX_ECHO_CHARS = 80


def echo(value: Any, limit: int = MAX_ECHO_CHARS) -> str:
    """A bounded, one-line rendering of user text for a message."""
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "…"


def _table() -> dict[str, Any]:
    return {"model_card": None, "fairness": None, "personal_data": [], "lineage": [],
            "business": {"metrics": None, "champion": None, "predictions_sha256": None},
            "regulatory": {"tags": [], "controls": []}, "scorecard": [], "truncated": {}}


def to_locator(role: str, raw: Any) -> DatasetLocator:
    """``raw`` (a :class:`DatasetLocator` or its JSON) as a locator; a role this version of the data
    models does not know is tolerated (the locator is validated as another role, then given its own)."""
    if isinstance(raw, DatasetLocator):
        return raw
    if not isinstance(raw, Mapping):
        raise DatasetReadError("unreadable", f"{echo(role)}: the locator is not a mapping ({type(raw).__name__})")
    try:
        return DatasetLocator.model_validate(raw)
    except ValidationError as exc:
        if all(tuple(e["loc"]) == ("role",) for e in exc.errors()):
            located = DatasetLocator.model_validate({**raw, "role": "eval"})
            return located.model_copy(update={"role": raw.get("role", role)})
        raise DatasetReadError("unreadable", f"{echo(role)}: invalid locator: {exc.errors()[0]['msg']}") from exc


@dataclass
class Review:
    """The state of one evaluation, shared by the concerns."""

    inputs: GateInputs
    config: ComplianceReviewConfig
    now: datetime = field(default_factory=utcnow)
    table: dict[str, Any] = field(default_factory=_table)
    digests: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    card: ModelCard | None = None
    challenger: dict[str, float] | None = None  # this version's evaluation metrics, once computed
    _readers: dict[str, DatasetReader | DatasetReadError] = field(default_factory=dict)

    @property
    def extra(self) -> dict[str, Any]:
        return self.inputs.extra

    @property
    def manifest(self) -> dict[str, Any]:
        return self.inputs.manifest if isinstance(self.inputs.manifest, dict) else {}

    @property
    def version(self) -> dict[str, Any]:
        """The manifest's entry of the version under review ({} when absent)."""
        versions = self.manifest.get("versions")
        entry = versions.get(self.inputs.version) if isinstance(versions, dict) else None
        return entry if isinstance(entry, dict) else {}

    @property
    def evaluation(self) -> dict[str, Any] | None:
        raw = self.version.get("evaluation")
        return raw if isinstance(raw, dict) else None

    @property
    def earlier_gates(self) -> dict[str, Any] | None:
        """Results of the gates that ran before this one; None in a pre-flight (none could have)."""
        raw = self.extra.get("earlier_gates")
        return raw if isinstance(raw, dict) else None

    def roles(self) -> list[str]:
        return [str(role) for role in self.inputs.datasets]

    def has(self, role: str) -> bool:
        return role in self.inputs.datasets

    def reader(self, role: str) -> DatasetReader:
        """The dataset of ``role`` opened for reading (once); raises :class:`DatasetReadError`."""
        if role not in self._readers:
            try:
                locator = to_locator(role, self.inputs.datasets.get(role))
                if locator.sha256:
                    self.digests[f"dataset:{role}"] = locator.sha256
                from gates.data_check.reader import DatasetReader

                self._readers[role] = DatasetReader(locator)
            except DatasetReadError as exc:
                self._readers[role] = exc
        opened = self._readers[role]
        if isinstance(opened, DatasetReadError):
            raise opened
        return opened

    def dataset_sha256(self, role: str) -> str | None:
        """The observed digest of the dataset of ``role`` (the locator's), if any."""
        try:
            locator = to_locator(role, self.inputs.datasets.get(role))
        except DatasetReadError:
            return None
        return locator.sha256
