"""Promotion events: what happened to one run, with what a channel needs to show it.

The flow and the approval intake publish them (``tasks/channels.py``); every channel renders
them with :mod:`clearance.render`. Pure data: no I/O here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from clearance.approvals import ApprovalRecord
from clearance.config.schema import Notify
from clearance.core.events import EventKind, RunAction
from gates.base import GateResult

__all__ = ["EventKind", "PromotionEvent", "RunAction", "event_for"]


class PromotionEvent(BaseModel):
    """Something that happened to one promotion run, with what a channel needs to show it."""

    kind: EventKind
    action: RunAction = Field("promotion", description="What the run does: promotion, recertification, rollback.")
    run_id: str
    model: str
    version: str
    tier: str
    initiator: str
    artifact_digest: str = ""
    gate: GateResult | None = None
    record: ApprovalRecord | None = None
    gates: list[GateResult] = Field(default_factory=list, description="All results so far (approval summary).")
    status: str = ""
    message: str = ""
    links: dict[str, str] = Field(default_factory=dict, description="e.g. prefect_run → URL.")
    notify: Notify = Field(default_factory=Notify, description="Slack channel / Jira project the configs name "
                                                               "(events from the flow carry it).")
    mentions: list[str] = Field(default_factory=list, description="Principal ids to mention (reminders, "
                                                                  "escalations: the people still needed).")


def event_for(record: ApprovalRecord, kind: EventKind, **details: Any) -> PromotionEvent:
    """An event about a run, built from its approvals record (for channels outside the flow)."""
    request = record.request
    details.setdefault("action", request.action)
    return PromotionEvent(kind=kind, run_id=request.run_id, model=request.model, version=request.version,
                          tier=request.tier, initiator=request.initiator, artifact_digest=request.artifact_digest,
                          record=record, **details)
