"""The ``cost`` config: budgets per 1,000 predictions and per month (USD), and what a missing price does.

Budgets are upper levels reached when the cost is ``>=`` them (as ``data_check``'s and ``load_test``'s
levels); a manifest may only lower them (``tighten: lower``) and only turn ``require_price`` /
``require_traffic`` on. ``price_per_hour`` / ``instances`` are the tier's fallbacks for a manifest whose
``serving`` section gives none; a manifest cannot change them (it sets its own in ``serving``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gates.load_test.config import nullable

MAX_USD = 1e12


class Budget(BaseModel):
    """Warn and fail levels of a cost in USD (either may be unset: never reached)."""

    model_config = ConfigDict(extra="forbid")

    warn: float | None = Field(None, gt=0, le=MAX_USD, json_schema_extra={"tighten": "lower"})
    fail: float | None = Field(None, gt=0, le=MAX_USD, json_schema_extra={"tighten": "lower"})

    @model_validator(mode="after")
    def _ordered(self) -> Budget:
        if self.warn is not None and self.fail is not None and self.warn > self.fail:
            raise ValueError(f"warn ({self.warn}) must not be above fail ({self.fail})")
        return self


class CostConfig(BaseModel):
    """Config of the ``cost`` gate in a policy; a manifest may only tighten it."""

    model_config = ConfigDict(extra="forbid")

    budget_per_1000: Budget = Field(default_factory=lambda: Budget(warn=0.05, fail=0.10), json_schema_extra=nullable,
                                    description="USD per 1,000 predictions at the sustainable rate (null: no budget).")
    budget_per_month: Budget = Field(default_factory=lambda: Budget(warn=2000, fail=5000), json_schema_extra=nullable,
                                     description="USD per month at the manifest's serving.expected_traffic_rps "
                                                 "(null: no budget).")
    require_price: bool = Field(True, json_schema_extra={"tighten": "higher"},
                                description="No price (manifest, price table or this tier) fails; else skipped.")
    require_traffic: bool = Field(True, json_schema_extra={"tighten": "higher"},
                                  description="No serving.expected_traffic_rps in the manifest fails the monthly "
                                              "cost; else skipped.")
    price_per_hour: float | None = Field(None, ge=0, le=MAX_USD,
                                         description="USD per instance-hour when neither the manifest nor the price "
                                                     "table gives one (the tier's default).")
    instances: int = Field(1, ge=1, le=100_000,
                           description="Instances behind the endpoint when the manifest does not say "
                                       "(serving.instances).")

    @field_validator("budget_per_1000", "budget_per_month", mode="before")
    @classmethod
    def _none_is_unset(cls, value: object) -> object:
        return {} if value is None else value
