"""Block Kit for promotions: the parent message, gate replies, the approval message, the reject modal.

Pure functions (events and records in, ``(text, blocks)`` out), so the layout is unit-tested
without Slack. ``text`` is the notification / accessibility fallback Slack requires. Content
comes from the shared documents (:mod:`.gate`, :mod:`.tally`) and is written by :mod:`.slack`,
which escapes every user text. The approval message's buttons carry
``{"run": run id, "digest": artifact digest}``: the decision is bound to what the approver saw,
and a stale button is refused by the rules.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from clearance.approvals import ApprovalRecord
from clearance.core.clock import utcnow
from clearance.events import PromotionEvent
from clearance.render import slack
from clearance.render.document import Bold, Code, Icon, Inline, Link, Moment
from clearance.render.gate import gate_summary
from clearance.render.lifecycle import (
    SUPERSEDED,
    Nudge,
    alert_summary,
    deadline_line,
    missing_line,
    nudge_headline,
    people_line,
    run_noun,
    run_title,
)
from clearance.render.scorecard import HEADING, factors, scorecard_lines, summary
from clearance.render.tally import closing_line, identities_line, role_lines, sign_off
from gates.base import GateResult, Status

APPROVE_ACTION = "clearance_approve"
REJECT_ACTION = "clearance_reject"
REJECT_MODAL = "clearance_reject_modal"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
ACTIONS_BLOCK = "clearance_decision"
_MAX_LINES = 12
_LINK_NAMES = {"prefect_run": "Prefect run", "jira": "Jira ticket", "report": "Evidence report"}
#: The longest scorecard line (mrkdwn): nine factors and the heading stay within one section's 3000 characters.
_SCORECARD_LINE = 300


def _links(links: dict[str, str]) -> str:
    return " · ".join(slack.mrkdwn([Link(url, _LINK_NAMES.get(name, name))]) for name, url in sorted(links.items())
                      if url)


def _digest(digest: str, n: int = 16) -> Inline:
    return [Code(digest[:n]), "…"]


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
                   status: str = "gates running", action: str = "promotion") -> tuple[str, list[dict[str, Any]]]:
    """The one message per run; gates, the approval request, reminders and the outcome go in its thread.

    A promotion keeps its original layout; a re-certification or rollback is titled by what it does
    (``Re-certify M V``, ``Roll back M to V``: a rollback's version is its target).
    """
    if action == "promotion":
        text = slack.fallback(f"Promotion of {model} {version} ({tier} tier) by {initiator}: {status}")
        header = f"Promotion: {model} {version}"
    else:
        header = run_title(action, model, version)
        text = slack.fallback(f"{header} ({tier} tier) by {initiator}: {status}")
    version_label = "Roll back to" if action == "rollback" else "Version"
    blocks = [
        {"type": "header", "text": slack.plain(header)},
        slack.fields([("Model", model), (version_label, version), ("Risk tier", tier), ("Initiator", initiator)]),
        slack.section(slack.mrkdwn([Bold("Status:"), " ", status])),
    ]
    if links:
        blocks.append(slack.context(_links(links)))
    return text, blocks


def scorecard_section(gates: list[GateResult]) -> dict[str, Any] | None:
    """The readiness scorecard as one section, ``<icon> *Factor* — evidence`` a line (``None`` without one)."""
    rows = factors(gates)
    if not rows:
        return None
    title = slack.mrkdwn([Bold(HEADING), f" — {summary(rows)}"])
    return slack.section(title, *(slack.cut(slack.mrkdwn(line), _SCORECARD_LINE) for line in scorecard_lines(gates)))


def gate_lines(result: GateResult) -> list[str]:
    """One headline and the checks that did not pass, for a gate."""
    return slack.lines([gate_summary(result, _MAX_LINES)])


def gate_reply(result: GateResult) -> tuple[str, list[dict[str, Any]]]:
    """A gate's result as a thread reply: status, the checks that did not pass, key metrics."""
    lines = gate_lines(result)
    if result.message:
        lines.append(slack.mrkdwn(result.message))
    scorecard = scorecard_section([result])  # compliance_review: the scorecard first
    blocks = ([scorecard] if scorecard else []) + [slack.section(*lines)]
    if result.metrics:
        metrics = sorted(result.metrics.items())[:_MAX_LINES]
        blocks.append(slack.context(" · ".join(slack.mrkdwn(f"{name} = {value:g}") for name, value in metrics)))
    return slack.fallback(f"gate {result.gate_id}: {result.status.value}"), blocks


def outcome_reply(kind: str, status: str, message: str) -> tuple[str, list[dict[str, Any]]]:
    """The end of a run as a thread reply."""
    text = f"{status}: {message}" if message else status
    icon = Icon("promoted" if kind == "promoted" else SUPERSEDED if status == SUPERSEDED else "stopped")
    return slack.fallback(text), [slack.section(slack.mrkdwn([icon, " ", Bold(status), " ", message]).strip())]


# --------------------------------------------------------------------------- reminders and alerts


def reminder_reply(item: Nudge) -> tuple[str, list[dict[str, Any]]]:
    """A reminder or escalation as a thread reply: the people mentioned, the roles missing, the deadline."""
    people = slack.mrkdwn(people_line(item))
    lines = [slack.mrkdwn(nudge_headline(item)), people, slack.mrkdwn(missing_line(item))]
    deadline = deadline_line(item)
    if deadline is not None:
        lines.append(slack.mrkdwn(deadline))
    if item.message:
        lines.append(slack.mrkdwn(item.message))
    word = "Escalation" if item.escalation else "Reminder"
    # The fallback text is what the notification shows: it mentions the same people.
    text = slack.cut(f"{people} {slack.fallback(f'{word}: {item.title} is waiting for sign-off')}",
                     slack.FALLBACK_TEXT_LIMIT)
    return text, [slack.section(*lines)]


def alert_message(event: PromotionEvent) -> tuple[str, list[dict[str, Any]]]:
    """A certification alert as a top-level message in the model's channel (failed, lapsed, rolled back)."""
    summary = alert_summary(event)
    model, version, status, message = event.model, event.version, event.status, event.message
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": slack.plain(summary)},
        slack.section(slack.mrkdwn([Icon("alert"), " ", Bold(summary)]),
                      *([slack.mrkdwn(message)] if message else [])),
        slack.fields([("Model", model), ("Version", version), ("Risk tier", event.tier),
                      ("Status", status or "alert")]),
    ]
    context = [slack.mrkdwn([run_noun(event.action, model, version), ": run ", Code(event.run_id)])]
    if event.links:
        context.append(_links(event.links))
    blocks.append(slack.context(*context))
    text = f"{summary}: {message}" if message else summary
    return slack.fallback(text), blocks


# --------------------------------------------------------------------------- approval message


def approval_message(record: ApprovalRecord, gates: list[GateResult], *, links: dict[str, str] | None = None,
                     eligible: dict[str, list[str]] | None = None, now: datetime | None = None
                     ) -> tuple[str, list[dict[str, Any]]]:
    """The decision-ready message: gates, warnings, waivers, digest, tally, deadline, and (while open) buttons."""
    request = record.request
    view = sign_off(record, now or utcnow(), eligible)
    headline = "Sign-off" if view.closed else "Sign-off needed"
    text = slack.fallback(f"{headline}: {request.model} {request.version} ({request.tier} tier) — "
                          f"{record.outcome.value}")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": slack.plain(f"{headline}: {request.model} {request.version}")},
    ]
    scorecard = scorecard_section(gates)  # the first thing an approver reads
    if scorecard is not None:
        blocks.append(scorecard)
    blocks.append(slack.fields([("Risk tier", request.tier), ("Initiator", request.initiator),
                                ("Deadline", [Moment(request.deadline)]),
                                ("Artifact digest", _digest(request.artifact_digest))]))
    if gates:
        blocks.append(slack.section(slack.mrkdwn([Bold("Gates")]), *(line for g in gates for line in gate_lines(g))))
        warnings: list[Inline] = [[Code(g.gate_id), "/", Code(c.id), f": {c.message or c.status.value}"]
                    for g in gates for c in g.checks if c.status is Status.WARN]
        waivers: list[Inline] = [[Code(g.gate_id), "/", Code(c.id), f": {c.waiver}"]
                                 for g in gates for c in g.checks if c.waiver]
        if warnings:
            blocks.append(slack.section(":warning: " + slack.mrkdwn([Bold("Warnings")]),
                                        *map(slack.mrkdwn, warnings[:_MAX_LINES])))
        if waivers:
            blocks.append(slack.section(slack.mrkdwn([Bold("Waivers in force")]),
                                        *map(slack.mrkdwn, waivers[:_MAX_LINES])))
    blocks.append(slack.section(slack.mrkdwn([Bold("Approvals")]), *slack.lines([role_lines(view)])))
    identities = identities_line(view)
    if identities is not None:
        blocks.append(slack.context(slack.mrkdwn(identities)))
    if view.closed:
        reasons = ["> " + slack.mrkdwn(f"{d.principal}: {d.comment}") for d in view.rejections if d.comment]
        blocks.append(slack.section(slack.mrkdwn(closing_line(view)), *reasons))
    else:
        value = button_value(request.run_id, request.artifact_digest)
        confirm = slack.mrkdwn([f"You approve {request.model} {request.version}, artifact ",
                                *_digest(request.artifact_digest), "."])
        blocks.append({"type": "actions", "block_id": ACTIONS_BLOCK, "elements": [
            {"type": "button", "action_id": APPROVE_ACTION, "style": "primary", "text": slack.plain("Approve"),
             "value": value,
             "confirm": {"title": slack.plain("Approve this version?"), "confirm": slack.plain("Approve"),
                         "deny": slack.plain("Cancel"), "text": slack.text_object(confirm)}},
            {"type": "button", "action_id": REJECT_ACTION, "style": "danger", "text": slack.plain("Reject"),
             "value": value},
        ]})
    context = [slack.mrkdwn(["run ", Code(request.run_id)]),
               slack.mrkdwn(["evidence ", *_digest(request.evidence_digest, 12)])]
    if links:
        context.append(_links(links))
    blocks.append(slack.context(*context))
    return text, blocks


def reject_modal(run_id: str, artifact_digest: str, *, model: str, version: str, channel: str | None,
                 thread_ts: str | None) -> dict[str, Any]:
    """The modal Reject opens: the reason is required; private_metadata carries what it decides on."""
    metadata = json.dumps({"run": run_id, "digest": artifact_digest, "channel": channel, "thread_ts": thread_ts},
                          separators=(",", ":"))
    limit = slack.MODAL_TITLE_LIMIT
    return {
        "type": "modal", "callback_id": REJECT_MODAL, "private_metadata": metadata,
        "title": slack.plain("Reject promotion", limit), "submit": slack.plain("Reject", limit),
        "close": slack.plain("Cancel", limit),
        "blocks": [
            slack.section(slack.mrkdwn(["Reject ", Bold(f"{model} {version}"), " (artifact ", *_digest(artifact_digest),
                                        "). One authorised rejection stops the promotion."])),
            {"type": "input", "block_id": REASON_BLOCK, "label": slack.plain("Reason (required)"),
             "element": {"type": "plain_text_input", "action_id": REASON_INPUT, "multiline": True,
                         "min_length": 1, "max_length": 2000}},
        ],
    }
