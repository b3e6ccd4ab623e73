"""The compliance_review gate: model card, fairness and personal-data checks."""
