"""The ``data_check`` gate as the registry sees it: id, version, config model and ``evaluate``.

Why its own module: importing it registers the gate (``gates/builtin.py`` imports it), and it stays a
few lines; the work of one evaluation is in
:mod:`~gates.data_check.run`, imported when the gate runs: it pulls in Arrow, pandas and NumPy, which a
promotion whose policy has no data_check should never load. The check ids are listed in the package docstring.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel

from gates.base import GateInputs, GateResult, register_gate
from gates.data_check.models import DataCheckConfig


@register_gate
class DataCheckGate:
    """Datasets meet their contracts (schema, nulls, ranges, categories, keys, label, freshness) and drift
    is bounded."""

    id: ClassVar[str] = "data_check"
    version: ClassVar[str] = "1.0.0"
    config_model: ClassVar[type[BaseModel]] = DataCheckConfig

    def evaluate(self, inputs: GateInputs, config: BaseModel) -> GateResult:
        assert isinstance(config, DataCheckConfig)
        from gates.data_check.run import _Run

        return _Run(inputs, config, gate_id=self.id, gate_version=self.version).run()
