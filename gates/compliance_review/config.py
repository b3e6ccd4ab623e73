"""The ``compliance_review`` config: which concerns a tier judges, and how strictly.

One section per concern (model card, fairness, personal data, lineage, business case, regulatory
mapping, readiness scorecard). Each section can be switched off with ``enabled: false`` (a lighter
tier); a manifest may only switch sections on (``tighten: higher`` on a bool: ``False < True``).
Levels follow the tighten rules of ``clearance/config/tighten.py``: a manifest may lower an upper
bound (``lower``), raise a lower bound (``higher``), add to what is demanded (``superset``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gates.compliance_review.model_card import SECTIONS
from gates.security_scan.config import Action

# Here, not in fairness.py (which the gate imports when it runs): reading a config must not load NumPy and Arrow.
DEFAULT_MIN_GROUP_SIZE = 30

ModelCardSection = Literal[
    "intended_use", "out_of_scope", "training_data", "evaluation", "limitations",
    "ethical_considerations", "owner_contact", "risk_tier", "regulatory_tags",
]
assert set(ModelCardSection.__args__) == set(SECTIONS)  # type: ignore[attr-defined]  # one list of sections

#: The readiness factors of the scorecard, in the order an approver reads them.
ReadinessFactor = Literal[
    "executive_sponsor", "use_case_and_kpi", "data_readiness", "mlops_foundation", "security",
    "compliance", "integration_plan", "change_management", "cost_model",
]


def _switch(default: bool, description: str) -> bool:
    return Field(default, json_schema_extra={"tighten": "higher"}, description=description)


class ModelCardConfig(BaseModel):
    """The model card: which sections must be written (else the tier's default set)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = _switch(True, "Judge the model card.")
    required: list[ModelCardSection] | None = Field(
        None, json_schema_extra={"tighten": "superset"},
        description="Sections that must be written; default: the sections the manifest's risk tier requires "
                    "(gates/compliance_review/model_card.py REQUIRED_BY_TIER).")
    min_words: int = Field(3, ge=1, le=50, json_schema_extra={"tighten": "higher"},
                           description="A longer section with fewer words is not written.")


class Levels(BaseModel):
    """Warn and fail levels of one fairness metric (either may be unset)."""

    model_config = ConfigDict(extra="forbid")

    warn: float | None = Field(None, ge=0)
    fail: float | None = Field(None, ge=0)


class UpperLevels(Levels):
    """Levels of a difference (0 is parity): reached when the value is above them; a manifest may lower them."""

    warn: float | None = Field(None, ge=0, le=1, json_schema_extra={"tighten": "lower"})
    fail: float | None = Field(None, ge=0, le=1, json_schema_extra={"tighten": "lower"})


class LowerLevels(Levels):
    """Levels of a ratio (1 is parity): reached when the value is below them; a manifest may raise them."""

    warn: float | None = Field(None, ge=0, le=1, json_schema_extra={"tighten": "higher"})
    fail: float | None = Field(None, ge=0, le=1, json_schema_extra={"tighten": "higher"})


class FairnessConfig(BaseModel):
    """Group fairness on the predictions dataset, per protected attribute the manifest names."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = _switch(True, "Judge fairness when the version has an evaluation section.")
    required: bool = _switch(False, "A version without predictions or protected attributes fails (else skipped).")
    min_group_size: int = Field(DEFAULT_MIN_GROUP_SIZE, ge=1, json_schema_extra={"tighten": "higher"},
                                description="Groups with fewer rows are reported as too small to judge.")
    demographic_parity_difference: UpperLevels = Field(default_factory=lambda: UpperLevels(warn=0.1, fail=0.2))
    equalized_odds_difference: UpperLevels = Field(default_factory=lambda: UpperLevels(warn=0.1, fail=0.2))
    demographic_parity_ratio: LowerLevels = Field(default_factory=lambda: LowerLevels(warn=0.8))
    equalized_odds_ratio: LowerLevels = Field(default_factory=LowerLevels)


class PersonalDataConfig(BaseModel):
    """Personal data in every dataset of the version; undeclared personal data fails."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = _switch(True, "Scan the version's datasets for personal data.")
    sample: int | None = Field(None, ge=1000, json_schema_extra={"tighten": "higher"},
                               description="Scan a deterministic sample of this many rows per dataset (unset: "
                                           "every row). A manifest may raise it.")
    min_rate: float = Field(0.01, gt=0, le=1, json_schema_extra={"tighten": "lower"},
                            description="Share of non-null values a detector must match for the column to hold "
                                        "personal data; below it an undeclared column warns.")


class LineageConfig(BaseModel):
    """Every artifact and dataset pinned, the code revision and the training run recorded."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = _switch(True, "Judge lineage.")
    missing: Action = Field(Action.FAIL, json_schema_extra={"tighten": "higher"},
                            description="What an unrecorded code revision or training run does.")


class ChampionRule(BaseModel):
    """How much worse than the model in production the candidate may be on one metric."""

    model_config = ConfigDict(extra="forbid")

    direction: Literal["higher", "lower"] = Field(description="Which way is better.")
    abs_tolerance: float = Field(0.0, ge=0, json_schema_extra={"tighten": "lower"})
    rel_tolerance: float = Field(0.0, ge=0, json_schema_extra={"tighten": "lower"})


def _default_champion_rules() -> dict[str, ChampionRule]:
    return {"auc": ChampionRule(direction="higher", abs_tolerance=0.01),
            "ece": ChampionRule(direction="lower", abs_tolerance=0.02)}


class BusinessConfig(BaseModel):
    """The KPI (metric, baseline, target, owner, review date) and the champion/challenger comparison."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = _switch(True, "Judge the business case.")
    kpi_required: bool = _switch(True, "A manifest without a complete KPI fails.")
    champion: dict[str, ChampionRule] = Field(
        default_factory=_default_champion_rules,
        description="Metric (auc, precision, recall, ece) → rule against the production model's evidence.")


class RegulatoryConfig(BaseModel):
    """Tags that select controls from the mapping file (configs/regulatory.yaml)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = _switch(True, "Judge the controls the tags select.")
    tags: list[str] = Field(default_factory=list, json_schema_extra={"tighten": "superset"},
                            description="Tags of this tier, added to the policy's and the manifest's "
                                        "regulatory_tags.")


class ReadinessConfig(BaseModel):
    """The readiness scorecard: each factor with its evidence, or missing."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = _switch(True, "Score the readiness factors.")
    missing: Action = Field(Action.WARN, json_schema_extra={"tighten": "higher"},
                            description="What a factor with no evidence does.")
    required: list[ReadinessFactor] = Field(
        default_factory=list, json_schema_extra={"tighten": "superset"},
        description="Factors whose absence fails whatever `missing` says.")


class ComplianceReviewConfig(BaseModel):
    """Config of the ``compliance_review`` gate (the ``config`` of its entry in a policy)."""

    model_config = ConfigDict(extra="forbid")

    model_card: ModelCardConfig = Field(default_factory=ModelCardConfig)
    fairness: FairnessConfig = Field(default_factory=FairnessConfig)
    personal_data: PersonalDataConfig = Field(default_factory=PersonalDataConfig)
    lineage: LineageConfig = Field(default_factory=LineageConfig)
    business: BusinessConfig = Field(default_factory=BusinessConfig)
    regulatory: RegulatoryConfig = Field(default_factory=RegulatoryConfig)
    readiness: ReadinessConfig = Field(default_factory=ReadinessConfig)

    @model_validator(mode="after")
    def _levels_in_order(self) -> ComplianceReviewConfig:
        f = self.fairness
        for name in ("demographic_parity_difference", "equalized_odds_difference"):
            levels: Levels = getattr(f, name)
            if levels.warn is not None and levels.fail is not None and levels.warn > levels.fail:
                raise ValueError(f"fairness.{name}: warn ({levels.warn}) must not be above fail ({levels.fail})")
        for name in ("demographic_parity_ratio", "equalized_odds_ratio"):
            levels = getattr(f, name)
            if levels.warn is not None and levels.fail is not None and levels.warn < levels.fail:
                raise ValueError(f"fairness.{name}: warn ({levels.warn}) must not be below fail ({levels.fail})")
        return self
