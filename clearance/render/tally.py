"""The sign-off tally, computed once (:func:`sign_off`) and shown the same in every channel.

:class:`SignOff` holds what every channel shows: per role who counted, how many are needed and
missing, who may still decide, who rejected and why, the outcome, the deadline. The documents
built from it — :func:`role_lines` (Slack's approval message), :func:`tally_blocks` (the Jira
tally comment, the report's sign-off section) — only lay those facts out; no channel counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from clearance.approvals import ApprovalRecord, Decision, Outcome, Vote, tally
from clearance.render.document import Block, Bold, Bullets, Code, Heading, Icon, Inline, Moment, Para, Table


@dataclass(frozen=True)
class RoleTally:
    role: str
    needed: int
    counted: list[str]
    missing: int
    still_eligible: list[str]  # who could still fill the missing slots (empty once closed)


@dataclass(frozen=True)
class SignOff:
    record: ApprovalRecord
    outcome: Outcome
    closed: bool
    roles: list[RoleTally]
    rejected_by: list[str]
    rejections: list[Decision]

    @property
    def counted(self) -> dict[str, list[str]]:
        return {r.role: r.counted for r in self.roles}


    @property
    def missing(self) -> dict[str, int]:
        return {r.role: r.missing for r in self.roles}


def sign_off(record: ApprovalRecord, now: datetime, eligible: dict[str, list[str]] | None = None) -> SignOff:
    """Where ``record`` stands at ``now`` (a closed record keeps the outcome it closed with)."""
    state = tally(record, now)
    closed = record.outcome.closed
    roles = []
    for role, need in sorted(record.request.required_roles.items()):
        counted = state.counted.get(role, [])
        still = [] if closed else [p for p in (eligible or {}).get(role, []) if p not in counted]
        roles.append(RoleTally(role, need, counted, state.missing.get(role, 0), still))
    return SignOff(record=record, outcome=record.outcome if closed else state.outcome, closed=closed,
                   roles=roles, rejected_by=state.rejected_by,
                   rejections=[d for d in record.decisions if d.vote is Vote.REJECT])


def outcome_text(outcome: Outcome) -> str:
    return outcome.value.replace("_", " ")


def role_line(role: RoleTally, closed: bool) -> Inline:
    """``<icon> *role*: n/needed (who) — needs k more from …``."""
    who = ", ".join(role.counted) if role.counted else "nobody yet"
    line: Inline = [Icon("done" if not role.missing else "pending"), " ", Bold(role.role),
                    f": {len(role.counted)}/{role.needed} ({who})"]
    if role.missing and not closed:
        line.append(f" — needs {role.missing} more" + (f" from {', '.join(role.still_eligible)}"
                                                        if role.still_eligible else ""))
    return line


def rejection_line(decision: Decision) -> Inline:
    return [Icon("rejected"), " rejected by ", Bold(decision.principal),
            f" ({decision.assurance.value}) via {decision.channel.value}"]


def role_lines(view: SignOff) -> Bullets:
    """One line per role, then one per rejection (the chat form of the tally)."""
    items: list[tuple[Inline, list[Inline]]] = [(role_line(r, view.closed), []) for r in view.roles]
    items += [(rejection_line(d), []) for d in view.rejections]
    return Bullets(items or [(["no approvers required"], [])])


def identities_line(view: SignOff) -> Inline | None:
    """``identities: sam verified via cli · bea claimed via prefect-ui`` (``None`` before any decision)."""
    if not view.record.decisions:
        return None
    line: Inline = ["identities: "]
    for i, decision in enumerate(view.record.decisions):
        line += ([" · "] if i else []) + [Bold(decision.principal),
                                          f" {decision.assurance.value} via {decision.channel.value}"]
    return line


def decision_line(decision: Decision) -> Inline:
    """``approve by `sam` (verified, security) via slack at <when>: comment`` (the roles the person held)."""
    roles = f", {'/'.join(decision.roles)}" if decision.roles else ""
    line: Inline = [f"{decision.vote.value} by ", Code(decision.principal),
                    f" ({decision.assurance.value}{roles}) via {decision.channel.value} at ", Moment(decision.at)]
    return line + ([f": {decision.comment}"] if decision.comment else [])


def role_table(view: SignOff) -> Table:
    return Table(["role", "needed", "counted", "missing"],
                 [[r.role, str(r.needed), ", ".join(r.counted) or "-", str(r.missing)] for r in view.roles])


def tally_blocks(view: SignOff, level: int = 3) -> list[Block]:
    """Outcome, per-role table, who rejected, every decision, who may not decide, the deadline."""
    request = view.record.request
    blocks: list[Block] = [Heading(level, ["Sign-off: ", outcome_text(view.outcome)])]
    if view.roles:
        blocks.append(role_table(view))
    if view.rejected_by:
        blocks.append(Para(["Rejected by: ", ", ".join(view.rejected_by)]))
    if view.record.decisions:
        blocks.append(Bullets([(decision_line(d), []) for d in view.record.decisions]))
    blocks.append(Para(["Not eligible: ", ", ".join(request.excluded_principals) or "-", ". Deadline: ",
                        Moment(request.deadline), f" (then: {request.timeout_outcome.value})."]))
    return blocks


def superseded_by(record: ApprovalRecord) -> str:
    """What superseded a request (``closed_by`` says ``superseded by 2.0.0 (run …)``), without repeating the verb."""
    names = [re.sub(r"^\s*superseded by\s+", "", who, flags=re.IGNORECASE) for who in record.closed_by]
    return ", ".join(n for n in names if n) or "a newer approved version"


def closing_line(view: SignOff) -> Inline:
    """``<icon> *Approved* by sam, bea via cli <when>`` for a closed request (``*Superseded* by 2.0.0 (run …)``)."""
    record = view.record
    who = superseded_by(record) if view.outcome.value == "superseded" else ", ".join(record.closed_by) or "-"
    line: Inline = [Icon(view.outcome.value), " ", Bold(outcome_text(view.outcome).capitalize()), f" by {who}"]
    if record.closing_channel:
        line.append(f" via {record.closing_channel.value}")
    if record.closed_at:
        line += [" ", Moment(record.closed_at)]
    return line
