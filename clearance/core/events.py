"""The names of the events one promotion run goes through (published to every channel)."""

from __future__ import annotations

from typing import Literal, get_args

#: opened → gate (one per gate) → approval-requested → approvals-changed* → closed → promoted | stopped
EventKind = Literal["opened", "gate", "approval-requested", "approvals-changed", "closed", "promoted", "stopped"]

EVENT_KINDS: tuple[str, ...] = get_args(EventKind)
