"""Block Kit for promotions: the parent message, gate replies, and the approval message.

Pure functions (events and records in, ``(text, blocks)`` out), so the layout is unit-tested
without Slack. ``text`` is the notification / accessibility fallback Slack requires.
The approval message's buttons carry ``{"run": run id, "digest": artifact digest}``: the
decision is bound to what the approver saw, and a stale button is refused by the rules.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from clearance.approvals import ApprovalRecord, Outcome, Vote, tally
from clearance.core.clock import utcnow
from gates.base import GateResult, Status

APPROVE_ACTION = "clearance_approve"
REJECT_ACTION = "clearance_reject"
REJECT_MODAL = "clearance_reject_modal"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
ACTIONS_BLOCK = "clearance_decision"

_ICON = {
    Status.PASS: ":white_check_mark:", Status.WARN: ":warning:", Status.FAIL: ":x:", Status.ERROR: ":exclamation:",
    Status.SKIPPED: ":white_circle:", Status.WAIVED: ":large_yellow_circle:",
}
_OUTCOME = {
    Outcome.APPROVED: ":white_check_mark: *Approved*", Outcome.REJECTED: ":x: *Rejected*",
    Outcome.TIMED_OUT: ":hourglass: *Timed out*", Outcome.PENDING: ":hourglass_flowing_sand: *Waiting for sign-off*",
}
_SECTION_LIMIT = 2900  # Slack allows 3000 characters in a section's text
_MAX_LINES = 12


def _cut(text: str, limit: int = _SECTION_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plain(text: str, limit: int = 150) -> dict[str, Any]:
    return {"type": "plain_text", "text": _cut(text, limit), "emoji": True}


def _md(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": _cut(text)}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _md(text)}


def _context(*parts: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_md(p) for p in parts if p][:10]}


def slack_date(moment: datetime) -> str:
    """A date Slack shows in the reader's time zone, with a UTC fallback."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _links(links: dict[str, str]) -> str:
    names = {"prefect_run": "Prefect run", "jira": "Jira ticket", "report": "Evidence report"}
    return " · ".join(f"<{url}|{names.get(name, name)}>" for name, url in sorted(links.items()) if url)


def button_value(run_id: str, artifact_digest: str) -> str:
    """What a decision button carries: the run and the digest the approver sees."""
    return json.dumps({"run": run_id, "digest": artifact_digest}, separators=(",", ":"))


def parse_button_value(value: str) -> tuple[str, str]:
    """``(run id, artifact digest)`` from a button value; ValueError when malformed."""
    data = json.loads(value)
    if not isinstance(data, dict) or not isinstance(data.get("run"), str) or not isinstance(data.get("digest"), str):
        raise ValueError("not a clearance decision button")
    return data["run"], data["digest"]


# --------------------------------------------------------------------------- parent and gates


def parent_message(*, model: str, version: str, tier: str, initiator: str, links: dict[str, str],
                   status: str = "gates running") -> tuple[str, list[dict[str, Any]]]:
    """The one message per promotion; gates, the approval request and the outcome go in its thread."""
    text = f"Promotion of {model} {version} ({tier} tier) by {initiator}: {status}"
    blocks = [
        {"type": "header", "text": _plain(f"Promotion: {model} {version}")},
        {"type": "section", "fields": [_md(f"*Model*\n{model}"), _md(f"*Version*\n{version}"),
                                       _md(f"*Risk tier*\n{tier}"), _md(f"*Initiator*\n{initiator}")]},
        _section(f"*Status:* {status}"),
    ]
    if links:
        blocks.append(_context(_links(links)))
    return text, blocks


def gate_lines(result: GateResult) -> list[str]:
    """One headline and the checks that did not pass, for a gate."""
    mode = "blocking" if result.blocking else "advisory"
    lines = [f"{_ICON.get(result.status, '')} `{result.gate_id}` v{result.gate_version}: "
             f"*{result.status.value.upper()}* ({mode})"]
    for check in result.problems()[:_MAX_LINES]:
        waiver = f" — waived: {check.waiver}" if check.waiver else ""
        observed = f" observed `{check.observed}`" if check.observed is not None else ""
        threshold = f" vs `{check.threshold}`" if check.threshold is not None else ""
        lines.append(f"    • `{check.id}` {check.status.value}{observed}{threshold} {check.message}{waiver}".rstrip())
    return lines


def gate_reply(result: GateResult) -> tuple[str, list[dict[str, Any]]]:
    """A gate's result as a thread reply: status, the checks that did not pass, key metrics."""
    lines = gate_lines(result)
    if result.message:
        lines.append(result.message)
    blocks = [_section("\n".join(lines))]
    if result.metrics:
        metrics = sorted(result.metrics.items())[:_MAX_LINES]
        blocks.append(_context(" · ".join(f"{name} = {value:g}" for name, value in metrics)))
    return f"gate {result.gate_id}: {result.status.value}", blocks


def outcome_reply(kind: str, status: str, message: str) -> tuple[str, list[dict[str, Any]]]:
    """The end of a promotion as a thread reply."""
    icon = ":rocket:" if kind == "promoted" else ":no_entry:"
    text = f"{status}: {message}" if message else status
    return text, [_section(f"{icon} *{status}* {message}".strip())]


# --------------------------------------------------------------------------- approval message


def approval_message(record: ApprovalRecord, gates: list[GateResult], *, links: dict[str, str] | None = None,
                     eligible: dict[str, list[str]] | None = None, now: datetime | None = None
                     ) -> tuple[str, list[dict[str, Any]]]:
    """The decision-ready message: gates, warnings, waivers, digest, tally, deadline, and (while open) buttons."""
    request = record.request
    state = tally(record, now or utcnow())
    closed = record.outcome.closed
    headline = "Sign-off" if closed else "Sign-off needed"
    text = f"{headline}: {request.model} {request.version} ({request.tier} tier) — {record.outcome.value}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(f"{headline}: {request.model} {request.version}")},
        {"type": "section", "fields": [
            _md(f"*Risk tier*\n{request.tier}"), _md(f"*Initiator*\n{request.initiator}"),
            _md(f"*Deadline*\n{slack_date(request.deadline)}"),
            _md(f"*Artifact digest*\n`{request.artifact_digest[:16]}…`"),
        ]},
    ]
    if gates:
        blocks.append(_section("*Gates*\n" + "\n".join(line for g in gates for line in gate_lines(g))))
        warnings = [f"`{g.gate_id}`/`{c.id}`: {c.message or c.status.value}" for g in gates for c in g.checks
                    if c.status is Status.WARN]
        waivers = [f"`{g.gate_id}`/`{c.id}`: {c.waiver}" for g in gates for c in g.checks if c.waiver]
        if warnings:
            blocks.append(_section("*:warning: Warnings*\n" + "\n".join(warnings[:_MAX_LINES])))
        if waivers:
            blocks.append(_section("*Waivers in force*\n" + "\n".join(waivers[:_MAX_LINES])))
    blocks.append(_section("*Approvals*\n" + "\n".join(_tally_lines(record, state, eligible or {}))))
    if closed:
        by = ", ".join(record.closed_by) or "-"
        via = f" via {record.closing_channel.value}" if record.closing_channel else ""
        when = slack_date(record.closed_at) if record.closed_at else ""
        reasons = [f"> {d.principal}: {d.comment}" for d in record.decisions if d.vote is Vote.REJECT and d.comment]
        blocks.append(_section(f"{_OUTCOME[record.outcome]} by {by}{via} {when}".strip()
                               + ("\n" + "\n".join(reasons) if reasons else "")))
    else:
        value = button_value(request.run_id, request.artifact_digest)
        blocks.append({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "style": "primary", "text": _plain("Approve"),
             "value": value,
             "confirm": {"title": _plain("Approve this version?"), "confirm": _plain("Approve"),
                         "deny": _plain("Cancel"),
                         "text": _md(f"You approve {request.model} {request.version}, artifact "
                                     f"`{request.artifact_digest[:16]}…`.")}},
            {"type": "button", "action_id": REJECT_ACTION, "style": "danger", "text": _plain("Reject"),
             "value": value},
        ]})
    context = [f"run `{request.run_id}`", f"evidence `{request.evidence_digest[:12]}…`"]
    if links:
        context.append(_links(links))
    blocks.append(_context(*context))
    return text, blocks


def _tally_lines(record: ApprovalRecord, state: Any, eligible: dict[str, list[str]]) -> list[str]:
    lines = []
    for role, need in sorted(record.request.required_roles.items()):
        counted = state.counted.get(role, [])
        missing = state.missing.get(role, 0)
        mark = ":white_check_mark:" if not missing else ":hourglass_flowing_sand:"
        who = ", ".join(counted) if counted else "nobody yet"
        line = f"{mark} *{role}*: {len(counted)}/{need} ({who})"
        if missing and not record.outcome.closed:
            still = [p for p in eligible.get(role, []) if p not in counted]
            line += f" — needs {missing} more" + (f" from {', '.join(still)}" if still else "")
        lines.append(line)
    for d in record.decisions:
        if d.vote is Vote.REJECT:
            lines.append(f":x: rejected by *{d.principal}* via {d.channel.value}")
    return lines or ["no approvers required"]


def reject_modal(run_id: str, artifact_digest: str, *, model: str, version: str, channel: str | None,
                 thread_ts: str | None) -> dict[str, Any]:
    """The modal Reject opens: the reason is required; private_metadata carries what it decides on."""
    metadata = json.dumps({"run": run_id, "digest": artifact_digest, "channel": channel, "thread_ts": thread_ts},
                          separators=(",", ":"))
    return {
        "type": "modal", "callback_id": REJECT_MODAL, "private_metadata": metadata,
        "title": _plain("Reject promotion", 24), "submit": _plain("Reject", 24), "close": _plain("Cancel", 24),
        "blocks": [
            _section(f"Reject *{model} {version}* (artifact `{artifact_digest[:16]}…`). "
                     "One authorised rejection stops the promotion."),
            {"type": "input", "block_id": REASON_BLOCK, "label": _plain("Reason (required)"),
             "element": {"type": "plain_text_input", "action_id": REASON_INPUT, "multiline": True,
                         "min_length": 1, "max_length": 2000}},
        ],
    }
