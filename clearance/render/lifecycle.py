"""What the lifecycle events say, decided once for every channel: titles by action, reminders, alerts.

A run promotes, re-certifies or rolls back (``PromotionEvent.action``); Slack and Jira title it the
same way (:func:`run_title`). Reminders and escalations (:func:`nudge`) name the people still
needed as :class:`~clearance.render.document.Mention` s, so each channel mentions them its own way,
with the roles still missing and the deadline. An ``alert`` (a failed re-certification, a lapse, a
rollback) gets one summary (:func:`alert_summary`) used as Slack's headline and the Jira ticket's
summary. Pure: documents in, documents out; the channels render and escape them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from clearance.approvals import ApprovalRecord
from clearance.config.schema import Principals
from clearance.events import PromotionEvent
from clearance.render.document import Block, Bold, Code, Heading, Icon, Inline, Link, Mention, Moment, Para
from clearance.render.tally import sign_off, superseded_by

#: The outcome of a request closed because a newer version of the model was approved (``Outcome.SUPERSEDED``).
SUPERSEDED = "superseded"
#: Names of the links an event may carry, as people read them.
LINK_NAMES = {"prefect_run": "Prefect run", "jira": "Jira ticket", "report": "Evidence report"}
__all__ = ["SUPERSEDED", "Nudge", "alert_blocks", "alert_ref", "alert_summary", "is_superseded", "mentions_for",
           "nudge", "nudge_blocks", "nudge_ref", "run_noun", "run_title", "superseded_by"]
_NUMBERED = re.compile(r"(reminder|escalation)-(\d{1,6})")
_WORD = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


#: By a run's action: how its title and how a sentence names it (a rollback's version is its target).
_NAMES = {"recertification": ("Re-certify {model} {version}", "Re-certification of {model} {version}"),
          "rollback": ("Roll back {model} to {version}", "Rollback of {model} to {version}"),
          "promotion": ("Promote {model} {version}", "Promotion of {model} {version}")}


def run_title(action: str, model: str, version: str) -> str:
    """``Promote M V``, ``Re-certify M V`` or ``Roll back M to V`` (anything else reads as a promotion)."""
    return _NAMES.get(action, _NAMES["promotion"])[0].format(model=model, version=version)


def run_noun(action: str, model: str, version: str) -> str:
    """``Promotion of M V``, ``Re-certification of M V`` or ``Rollback of M to V`` (in a sentence)."""
    return _NAMES.get(action, _NAMES["promotion"])[1].format(model=model, version=version)


def is_superseded(record: ApprovalRecord | None) -> bool:
    """Whether the request was closed as superseded (a newer version of the model was approved)."""
    return record is not None and str(getattr(record.outcome, "value", record.outcome)) == SUPERSEDED


# --------------------------------------------------------------------------- reminders and escalations


@dataclass(frozen=True)
class Nudge:
    """A reminder or an escalation about a request still waiting: who is asked, for what, by when."""

    escalation: bool
    number: int | None
    ref: str  # stable per reminder: ``reminder/<n>`` or ``escalation/<n>``
    people: list[Mention]
    missing: list[tuple[str, int]]  # (role, approvals still needed)
    deadline: datetime | None
    then: str  # what happens at the deadline (the request's timeout outcome)
    title: str
    message: str


def mentions_for(ids: list[str], principals: Principals | None) -> list[Mention]:
    """The principals ``ids`` as mentions (their Slack / Jira ids when the configs know them, else the name)."""
    people = []
    for principal_id in dict.fromkeys(ids):
        person = principals.by_id(principal_id) if principals is not None else None
        if person is None:
            people.append(Mention(principal_id))
        else:
            people.append(Mention(person.name or person.id, person.slack_id, person.jira_account_id))
    return people


def nudge_ref(event: PromotionEvent) -> tuple[int | None, str]:
    """The reminder's number and its stable ref: from ``event.status`` (``reminder-<n>`` / ``escalation-<n>``),
    else the newest nudge of its kind the record holds, else derived from what the event says (so the same
    event is still shown once)."""
    word = "escalation" if event.kind == "escalated" else "reminder"
    match = _NUMBERED.fullmatch(event.status)
    if match:
        return int(match[2]), f"{match[1]}/{int(match[2])}"
    # The sweep records the nudge in the request before it tells the channels: the newest one of this kind.
    sent = [r.number for r in (event.record.reminders if event.record is not None else []) if r.kind == word]
    if sent:
        return max(sent), f"{word}/{max(sent)}"
    seed = "\n".join([event.kind, event.status, event.message, *event.mentions]).encode()
    return None, f"{word}/{hashlib.sha256(seed).hexdigest()[:12]}"


def nudge(event: PromotionEvent, principals: Principals | None, now: datetime) -> Nudge:
    """What a ``reminder`` / ``escalated`` event asks of whom (roles still missing from ``event.record``)."""
    number, ref = nudge_ref(event)
    missing: list[tuple[str, int]] = []
    deadline = None
    then = ""
    if event.record is not None:
        view = sign_off(event.record, now)
        missing = [(role.role, role.missing) for role in view.roles if role.missing]
        deadline = event.record.request.deadline
        then = str(event.record.request.timeout_outcome.value).replace("_", " ")
    return Nudge(escalation=event.kind == "escalated", number=number, ref=ref,
                 people=mentions_for(event.mentions, principals), missing=missing, deadline=deadline, then=then,
                 title=run_noun(event.action, event.model, event.version), message=event.message)


def nudge_headline(item: Nudge) -> Inline:
    """``<icon> *Reminder 2*: Promotion of churn 1.0.0 is waiting for sign-off``."""
    word = "Escalation" if item.escalation else "Reminder"
    label = f"{word} {item.number}" if item.number is not None else word
    return [Icon("escalated" if item.escalation else "reminder"), " ", Bold(label), ": ", item.title,
            " is waiting for sign-off"]


def people_line(item: Nudge) -> Inline:
    """The people asked, each mentioned (``nobody named`` when the event names none)."""
    line: Inline = []
    for i, person in enumerate(item.people):
        line += ([", "] if i else []) + [person]
    return line or ["nobody named"]


def missing_line(item: Nudge) -> Inline:
    """``Still needed: security (1), business (2)``."""
    if not item.missing:
        return ["Still needed: no role is missing an approval"]
    return ["Still needed: ", ", ".join(f"{role} ({n})" for role, n in item.missing)]


def deadline_line(item: Nudge) -> Inline | None:
    """``Deadline: <when> (then: reject)`` (``None`` when the event carries no record)."""
    if item.deadline is None:
        return None
    return ["Deadline: ", Moment(item.deadline), *([f" (then: {item.then})"] if item.then else [])]


def nudge_blocks(item: Nudge) -> list[Block]:
    """The reminder as a document: headline, who is asked, the roles missing, the deadline, the message."""
    blocks: list[Block] = [Heading(3, nudge_headline(item)), Para(people_line(item)), Para(missing_line(item))]
    deadline = deadline_line(item)
    if deadline is not None:
        blocks.append(Para(deadline))
    if item.message:
        blocks.append(Para([item.message]))
    return blocks


# --------------------------------------------------------------------------- alerts


def alert_summary(event: PromotionEvent) -> str:
    """One line naming what happened to the model's certification (Slack headline, Jira ticket summary)."""
    model, version, status = event.model, event.version, event.status
    if status == "recertification-failed":
        return f"Re-certification of {model} {version} failed"
    if status == "lapsed":
        return f"Certification of {model} {version} lapsed"
    if status == "rolled-back":
        return f"{model} rolled back to {version}"
    if status == "rollback-failed":
        return f"Rollback of {model} to {version} failed"
    return f"{run_noun(event.action, model, version)}: {status or 'alert'}"


def alert_ref(event: PromotionEvent) -> str:
    """The stable ref of an alert (one per run and status); a status that is no plain word is hashed."""
    status = event.status or "alert"
    if not _WORD.fullmatch(status):
        status = hashlib.sha256(status.encode()).hexdigest()[:12]
    return f"alert/{status}"


def link_items(links: dict[str, str]) -> list[Inline]:
    """``Prefect run: <link>`` items, one per link (sorted by name)."""
    return [[f"{LINK_NAMES.get(name, name.replace('_', ' '))}: ", Link(url)] for name, url in sorted(links.items())
            if url]


def alert_blocks(event: PromotionEvent) -> list[Block]:
    """The alert as a document: what happened, the message, the model, version and run."""
    blocks: list[Block] = [Heading(3, [Icon("alert"), " ", alert_summary(event)])]
    if event.message:
        blocks.append(Para([event.message]))
    blocks.append(Para(["Model ", Bold(event.model), " version ", Bold(event.version), f" ({event.tier} risk tier)",
                        "; run ", Code(event.run_id), "."]))
    return blocks
