"""The evidence file of ``compliance_review``: one canonical JSON document of everything the review saw.

``compliance_review.json``::

    {"model_card":    {source, sections: [written section names], required: [...], size},
     "fairness":      {rows, min_group_size, label, prediction, score, attributes: [
                         {attribute, columns, groups: [{name, size, positives, negatives, selected,
                          selection_rate, tpr, fpr, mean_score, too_small}], demographic_parity_difference,
                          demographic_parity_ratio, equalized_odds_difference, equalized_odds_ratio}]} | null,
     "personal_data": [{role, column, rows, scanned, non_null, stride, truncated, skipped,
                        detections: [{detector, hits, rate, examples}]}],   # masked examples only
     "lineage":       [{id, status, message}],
     "business":      {metrics: {auc, precision, recall, ece, threshold, rows, positives, predicted_positive},
                       champion: {version, run_id, metrics, predictions_sha256} | {error} | null,
                       predictions_sha256},
     "regulatory":    {tags: [...], controls: [{tag, control, title, status, satisfied_by, evidence}]},
     "scorecard":     [{factor, title, status, evidence, missing}],
     "summary":       {checks, pass, warn, fail, …, now}}

Tables are bounded (:data:`MAX_ROWS` rows each, :data:`MAX_GROUPS` groups per attribute); what was cut
is counted in ``truncated``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gates.base import EvidenceFile
from gates.evidence import write_json

TABLE_NAME = "compliance_review.json"
MAX_ROWS = 2000
MAX_GROUPS = 200


def bounded(rows: list[Any], limit: int = MAX_ROWS) -> tuple[list[Any], int]:
    """The first ``limit`` rows and how many were cut."""
    return rows[:limit], max(0, len(rows) - limit)


def write_table(directory: Path, table: dict[str, Any], summary: dict[str, Any]) -> EvidenceFile:
    """Write the document into ``directory``; its :class:`EvidenceFile` (name, digest, media type, file URI)."""
    return write_json(directory, TABLE_NAME, {**table, "summary": summary})
