"""Waivers: a named person accepts one known failure of one gate check, for a while, with a reason.

A waiver (``configs/waivers.yaml``) turns a ``fail`` or ``warn`` check into ``waived`` when it
covers that check: same gate, check id matched, model and version in scope, not expired.
The rules (README "Waivers"):

- ``check`` is an exact check id (``format:candidates/churn/1.0.0/model.joblib``) or a prefix
  ending in ``*`` (``format:*``, ``psi:eval:*``). A bare ``*`` is refused: a waiver names
  what it waives, it does not switch a gate off.
- ``versions`` lists exact versions (``1.4.2``) or prefixes ending in ``*`` (``1.4.*`` covers
  1.4.0 and 1.4.12, not 1.40.0). ``*`` may appear only once, at the end; a bare ``*`` is refused.
- ``expires_at`` is required and timezone-aware: there are no eternal waivers. A waiver covers
  checks decided strictly before it expires.
- ``error`` is never waived (the gate could not decide; a waiver accepts a known outcome, not
  an unknown one). ``pass`` and ``skipped`` are left as they are; so is an already waived check.
- The gate's status is recomputed with :func:`gates.base.worst`, so a blocking gate whose only
  failures are waived no longer stops the promotion, while any unwaived failure still does.
- An expired or out-of-scope waiver waives nothing.

Pure like every gate module: no Prefect, boto3, Slack or Jira.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from clearance.core.clock import utcnow
from gates.base import GateResult, Status, worst

__all__ = ["CHECK_PATTERN", "VERSION_PATTERN", "WAIVABLE", "Waiver", "apply_waivers", "matches", "waivers_in_scope"]

# The statuses a waiver may turn into ``waived``. ``error`` is deliberately absent.
WAIVABLE = frozenset({Status.FAIL, Status.WARN})

# An exact version, or a prefix of one ending in ``*`` (a bare ``*`` does not match).
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}\*?$"
# A check id, or a prefix of one ending in ``*``: no spaces, ``*`` only last (a bare ``*`` does not match).
CHECK_PATTERN = r"^[^\s*]+\*?$"


def matches(pattern: str, value: str) -> bool:
    """``pattern`` is ``value`` exactly, or ends in ``*`` and ``value`` starts with the rest."""
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


class Waiver(BaseModel):
    """One accepted failure: which check of which gate, for which model versions, why, by whom, until when."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gate: str = Field(min_length=1, description="Registered gate id, e.g. artifact_integrity.")
    check: str = Field(
        description="Check id within the gate: exact (format:candidates/churn/1.0.0/model.joblib) "
                    "or a prefix ending in * (format:*, psi:eval:*).",
        pattern=CHECK_PATTERN,
    )
    model: str = Field(min_length=1, description="Name of the model (models/<name>.yaml) the waiver is for.")
    versions: list[Annotated[str, Field(pattern=VERSION_PATTERN)]] = Field(
        min_length=1,
        description="Versions covered: exact (1.4.2) or a prefix ending in * (1.4.* covers 1.4.0 and 1.4.12).",
    )
    reason: str = Field(description="Why the failure is acceptable (ticket, compensating control).",
                        json_schema_extra={"pattern": r"\S"})
    approved_by: str = Field(min_length=1, description="Principal id (principals.yaml); not an author of the model.")
    expires_at: AwareDatetime = Field(description="When the waiver stops covering anything, with a timezone "
                                                  "(2025-01-31T00:00:00Z). Required: no eternal waivers.")

    @field_validator("reason")
    @classmethod
    def _reason_given(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must say why the failure is acceptable (it cannot be blank)")
        return value.strip()

    def in_scope(self, model: str, version: str) -> bool:
        """The waiver is for this model and one of its version patterns matches ``version``."""
        return self.model == model and any(matches(p, version) for p in self.versions)

    def expired(self, now: datetime) -> bool:
        """True from ``expires_at`` on."""
        return now >= self.expires_at

    def covers(self, gate_id: str, check_id: str, model: str, version: str, now: datetime) -> bool:
        """This waiver applies to that check of that gate for that model version at ``now``."""
        return (self.gate == gate_id and matches(self.check, check_id) and self.in_scope(model, version)
                and not self.expired(now))

    def note(self) -> str:
        """What a waived check records: the reason, who approved it and until when."""
        return f"{self.reason} (approved by {self.approved_by}, expires {self.expires_at.isoformat()})"


def waivers_in_scope(waivers: Iterable[Waiver], model: str, version: str) -> list[Waiver]:
    """The waivers for this model version (expired ones included: expiry is judged when applied)."""
    return [w for w in waivers if w.in_scope(model, version)]


def apply_waivers(result: GateResult, waivers: Iterable[Waiver], model: str, version: str,
                  now: datetime | None = None) -> GateResult:
    """``result`` with every ``fail``/``warn`` check that a valid waiver covers turned into ``waived``.

    The first covering waiver (in file order) is recorded in the check's ``waiver`` and its
    previous status in ``original_status``. ``error``, ``pass`` and ``skipped`` checks are never
    changed. When nothing is waived the result is returned unchanged (same object). The gate
    status is recomputed from the checks; a gate whose own verdict was worse than its checks
    (e.g. ``error`` with no checks) keeps it.
    """
    now = now or utcnow()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    relevant = [w for w in waivers if w.gate == result.gate_id and w.in_scope(model, version)
                and not w.expired(now)]
    if not relevant:
        return result
    checks = []
    changed = False
    for check in result.checks:
        waiver = None
        if check.status in WAIVABLE:
            waiver = next((w for w in relevant if matches(w.check, check.id)), None)
        if waiver is None:
            checks.append(check)
            continue
        changed = True
        checks.append(check.model_copy(update={"status": Status.WAIVED, "waiver": waiver.note(),
                                               "original_status": check.status}))
    if not changed:
        return result
    derived = worst(c.status for c in result.checks)
    if result.status == derived:
        status = worst(c.status for c in checks)
    else:  # the gate decided more than its checks say: a waiver of a check cannot lift that
        status = worst([result.status, *(c.status for c in checks)])
    return result.model_copy(update={"checks": checks, "status": status})
