"""The names of the events one promotion run goes through (published to every channel)."""

from __future__ import annotations

from typing import Literal, get_args

#: opened → gate (one per gate) → approval-requested → (approvals-changed | reminder | escalated)* → closed →
#: promoted | stopped. A re-certification or rollback run goes through the same kinds (its event's ``action``
#: says which); ``alert`` tells a model's channel about its certification (failed, lapsed, rolled back).
EventKind = Literal["opened", "gate", "approval-requested", "approvals-changed", "reminder", "escalated", "closed",
                    "promoted", "stopped", "alert"]
#: What a run does: promote a version, re-certify the live one, or roll back to an earlier one.
RunAction = Literal["promotion", "recertification", "rollback"]

EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
