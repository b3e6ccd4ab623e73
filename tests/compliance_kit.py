"""Data for ``compliance_review`` tests on a whole candidate: a predictions dataset, a train dataset (with
or without an undeclared email column), a complete manifest and a regulatory mapping.

Shared by the pre-flight tests (tests/unit/test_gate_cli_compliance.py) and the promotion through the
flow (tests/integration/test_promotion_compliance.py). Small and deterministic.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

#: The raw email a test plants in a dataset; it must appear nowhere a person or a log can read it.
RAW_EMAIL_DOMAIN = "leaky-example.org"


def raw_email(i: int) -> str:
    return f"jane.q.customer{i:04d}@{RAW_EMAIL_DOMAIN}"


def predictions_table(n: int = 2000, seed: int = 7) -> pa.Table:
    """Label, prediction, score and two protected attributes; the prediction is fair across groups."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n)
    score = np.clip(0.5 * label + rng.normal(0.25, 0.18, n), 0, 1)
    return pa.table({"churned": label, "predicted": (score >= 0.5).astype(np.int64), "score": score,
                     "gender": rng.choice(["female", "male"], n), "age_band": rng.choice(["18-39", "40+"], n)})


def train_table(n: int = 1500, seed: int = 3, emails: bool = False) -> pa.Table:
    """Model features and the label; ``emails`` adds an ``contact`` column of raw email addresses."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {"tenure_months": rng.integers(0, 120, n), "plan": rng.choice(["basic", "premium"], n),
                               "churned": rng.integers(0, 2, n)}
    if emails:
        columns["contact"] = [raw_email(i) for i in range(n)]
    return pa.table(columns)


def write_parquet(path: Path, table: pa.Table) -> str:
    """Write ``table`` to ``path``; returns its sha256 (the dataset digest of a single file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


MODEL_CARD = {
    "intended_use": "Rank active subscribers by their risk of cancelling in the next thirty days.",
    "out_of_scope": "Not for pricing, credit, employment or any decision about an individual's rights.",
    "training_data": "Twelve months of subscription events, pinned by digest in the manifest's datasets.",
    "evaluation": "AUC, precision and recall on a held-out month, per gender and age band.",
    "limitations": "Customers with under three months of tenure are scored with little history.",
    "ethical_considerations": "Calls are offers only; nobody loses service because of a score.",
    "owner_contact": "dana@example.com",
    "risk_tier": "high",
    "regulatory_tags": "gdpr",
}

REGULATORY = {
    "controls": {
        "gdpr-art-5-minimisation": {"title": "Personal data is declared with a lawful basis and retention",
                                    "evidence": ["check:personal_data"]},
        "gdpr-art-30-records": {"title": "The processing has an owner on record",
                                "evidence": ["manifest:kpi.owner", "model_card:owner_contact"]},
    },
    "tags": {"gdpr": ["gdpr-art-5-minimisation", "gdpr-art-30-records"]},
}


def manifest(name: str, version: str, *, artifact_key: str, artifact_sha256: str,
             datasets: dict[str, tuple[str, str]], risk_tier: str = "high") -> dict[str, Any]:
    """A manifest every concern of compliance_review can judge: ``datasets`` is role → (uri, sha256)."""
    return {
        "name": name, "owner": "dana", "authors": ["dana"], "risk_tier": risk_tier,
        "intended_use": MODEL_CARD["intended_use"],
        "sponsor": "Maria Lopez, VP Customer Success",
        "regulatory_tags": ["gdpr"],
        "kpi": {"metric": "monthly_churn_rate", "baseline": 0.042, "target": 0.036, "owner": "dana",
                "review_date": "2099-06-30"},
        "serving_endpoint": "http://churn.models.svc.cluster.local/predict",
        "operations": {"consumers": ["retention-dialer"], "runbook": "https://wiki.example.com/churn/runbook",
                       "on_call": "ml-platform-oncall", "monitoring": "https://grafana.example.com/d/churn",
                       "ci": "https://ci.example.com/churn"},
        "personal_data": {},
        "model_card": dict(MODEL_CARD),
        "versions": {version: {
            "artifacts": [{"key": artifact_key, "sha256": artifact_sha256, "format": "joblib"}],
            "datasets": [{"role": role, "uri": uri, "sha256": sha} for role, (uri, sha) in datasets.items()],
            "lineage": {"code_revision": "3f1c2a9d8e7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d",
                        "training_run": "prefect:flow-run/8d2c6a1e"},
            "evaluation": {"label": "churned", "prediction": "predicted", "score": "score", "threshold": 0.5,
                           "protected_attributes": ["gender", "age_band"],
                           "intersections": [["gender", "age_band"]]},
        }},
    }
