"""Approval by transition: a person moving a promotion ticket into the approval (or rejection) status.

The webhook (:mod:`clearance.app.serve.jira_routes`) and the poller (:mod:`clearance.app.jira_poller`)
both turn what they saw into a :class:`StatusChange` and call :func:`process_status_change`.
The decision's ``dedupe_key`` is ``jira:<issue id>:<changelog/history id>`` — the webhook's
``changelog.id`` is the id of the same history entry the poller reads — so a change seen by
both paths counts once.

What counts: the ``clearance-run-<run id>`` label only says which run a ticket claims to be
about. A change is taken only when it is on the run's *tracked* ticket (the issue id clearance
created or found for the run, kept in the run's ``jira.json``) and was made after the request
opened (the history's ``created``, or the webhook's ``timestamp``); anything else — a ticket
someone labelled, an old transition replayed — is refused without being recorded.

Mapping a person: only the pinned ``principals.yaml`` ``jira_account_id`` identifies them — Cloud's
``accountId``, or the user *key* on Server/DC (user names can be renamed and are not matched) —
and the decision is *verified*. With ``CLEARANCE_JIRA_EMAIL_FALLBACK`` a person who is nobody's
``jira_account_id`` may be matched by ``emailAddress``, never to a principal who has a
``jira_account_id``, and the decision is *claimed*. Authorisation is the shared one
(``receive_decision``); a refusal gets a comment on the ticket and the ticket is moved back to
awaiting approval.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlparse

from clearance.approvals import Vote
from clearance.config.schema import Assurance, Channel, Principal, Principals
from clearance.core.keys import jira_state_key
from clearance.settings.jira import JiraSettings
from tasks.approval_intake import UnknownRunError, receive_decision, record_key_for_run
from tasks.approvals_record import read_record
from tasks.jira_client import JiraChannelError, call, connect
from tasks.jira_tracking import JiraTracker, read_state, run_id_from_labels
from tasks.store import Store

log = logging.getLogger("clearance.jira")


@dataclass
class StatusChange:
    """One status change of a ticket, as a webhook or a changelog history shows it."""

    issue_key: str
    issue_id: str
    labels: list[str]
    author: dict[str, Any]
    history_id: str
    from_status: str
    to_status: str
    source: str  # "webhook" or "poll"
    at: datetime | None = None  # when the change was made (history ``created``; webhook ``timestamp``)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        return f"jira:{self.issue_id}:{self.history_id}"

    @property
    def identity(self) -> str:
        a = self.author
        return str(a.get("accountId") or a.get("key") or a.get("name") or a.get("emailAddress") or "unknown")


def parse_jira_time(text: Any) -> datetime | None:
    """A Jira timestamp (``2024-05-01T12:00:00.123+0000``) as aware UTC, or ``None`` when it is not one."""
    if not isinstance(text, str):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text, fmt).astimezone(UTC)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class Match:
    """Who made a change, as far as clearance can tell."""

    principal: Principal | None
    assurance: Assurance
    identity: str
    matched_by: str  # "account", "email" or "none"


def principal_for(principals: Principals, author: dict[str, Any], settings: JiraSettings | None = None) -> Match:
    """The principal who made a change: by pinned account id (verified), else — opt-in — by e-mail (claimed)."""
    site = urlparse(settings.url).netloc if settings is not None and settings.url else ""
    prefix = f"jira:{site}/" if site else "jira:"
    for ident in (author.get("accountId"), author.get("key")):
        if isinstance(ident, str) and ident and (person := principals.by_jira_account(ident)):
            return Match(person, Assurance.VERIFIED, prefix + ident, "account")
    ident = author.get("accountId") or author.get("key") or author.get("name")
    email = author.get("emailAddress")
    if settings is not None and settings.email_fallback and isinstance(email, str) and email:
        person = principals.by_email(email)
        if person is not None and person.jira_account_id:
            log.warning("Jira: %s has the e-mail of %s, whose pinned jira_account_id is another: not matched",
                        ident or email, person.id)
        elif person is not None:
            return Match(person, Assurance.CLAIMED, f"{prefix}{ident or '?'} <{email}>", "email")
    return Match(None, Assurance.CLAIMED, f"{prefix}{ident or email or 'unknown'}", "none")


def tracked_ticket_problem(state: dict[str, Any], change: StatusChange, run_id: str) -> str | None:
    """Why ``change`` is not on the run's tracked ticket (``None``: it is)."""
    tracked_id, tracked_key = state.get("issue_id"), state.get("issue_key")
    if not tracked_id and not tracked_key:
        return f"run {run_id} has no tracked ticket yet"
    same = (str(tracked_id) == change.issue_id) if tracked_id else (tracked_key == change.issue_key)
    if not same:
        return f"{change.issue_key or change.issue_id or 'this ticket'} is not the ticket of run {run_id} " \
               f"({tracked_key or tracked_id})"
    return None


def timing_problem(opened_at: datetime, change: StatusChange) -> str | None:
    """Why ``change`` was not made while the request was open (``None``: it was)."""
    if change.at is None:
        return "the change carries no time"
    # Jira gives milliseconds: a change in the request's own millisecond counts.
    opened = opened_at.replace(microsecond=opened_at.microsecond // 1000 * 1000)
    if change.at < opened:
        return f"made at {change.at.isoformat()}, before the request opened ({opened_at.isoformat()})"
    return None


@lru_cache(maxsize=8)
def _bot_identities(url: str, auth_kind: str | None, user: str | None) -> frozenset[str]:
    """The ids of the account clearance writes as (its own transitions are never decisions)."""
    settings = JiraSettings()
    try:
        me = call(settings, "myself", lambda: connect(settings).myself())
    except JiraChannelError:
        return frozenset()
    return frozenset(str(me[k]) for k in ("accountId", "name", "key") if me.get(k))


def process_status_change(settings: JiraSettings, store: Store, principals: Principals,
                          change: StatusChange, bot_ids: frozenset[str] | None = None) -> str:
    """Count (or refuse) one status change as a decision; returns a short note of what happened."""
    to = change.to_status.casefold()
    if to == settings.approval_status.casefold():
        vote = Vote.APPROVE
    elif to == settings.rejection_status.casefold():
        vote = Vote.REJECT
    else:
        return "ignored: not a decision status"
    run_id = run_id_from_labels(change.labels)
    if run_id is None:
        return "ignored: not a clearance ticket"
    try:
        record_key = record_key_for_run(store, run_id)
    except UnknownRunError:
        return f"ignored: run {run_id} has no approval request"
    record, _ = read_record(store, record_key)
    if record.outcome.closed:
        return f"ignored: request already {record.outcome.value}"
    if record.seen(change.dedupe_key) is not None:
        return "duplicate: already received"
    if bot_ids is None:
        bot_ids = _bot_identities(settings.url or "", settings.auth_kind, settings.email or settings.username)
    if any(str(change.author.get(k)) in bot_ids for k in ("accountId", "key", "name") if change.author.get(k)):
        return "ignored: made by clearance itself"
    request = record.request
    state_key = jira_state_key(request.model, request.version, request.run_id)
    state, _ = read_state(store, state_key)
    # Not recorded: a change elsewhere (or from before) says nothing about this request, and answering it
    # on the run's ticket would let anyone who can label a ticket write there.
    problem = tracked_ticket_problem(state, change, run_id) or timing_problem(request.opened_at, change)
    if problem is not None:
        log.warning("Jira: %s by %s not counted for run %s: %s", change.dedupe_key, change.identity, run_id, problem)
        return f"refused: {problem}"
    match = principal_for(principals, change.author, settings)
    evidence = {"issue": change.issue_key, "issue_id": change.issue_id, "history_id": change.history_id,
                "from": change.from_status, "to": change.to_status, "author": change.identity,
                "source": change.source, "at": change.at.isoformat() if change.at else None,
                "matched_by": match.matched_by}
    result = receive_decision(store, run_id, principal=match.principal, identity=match.identity,
                              channel=Channel.JIRA, vote=vote,
                              comment=f"Jira {change.issue_key}: {change.from_status} → {change.to_status}",
                              artifact_digest=state.get("artifact_digest") or None,
                              channel_evidence=evidence, dedupe_key=change.dedupe_key, assurance=match.assurance)
    if result.decision is not None:  # accepted
        return f"counted: {result.decision.principal} {vote.value}"
    refusal = result.refusal
    assert refusal is not None, "receive_decision returns a refusal whenever it returns no decision"
    note = f"refused: {refusal.reason.value}"
    try:
        JiraTracker(settings, store).answer_refusal(state_key, change.dedupe_key, refusal.message,
                                                    change.author.get("displayName") or change.identity)
    except JiraChannelError as exc:  # queued; written on the next successful call
        log.warning("Jira: could not answer the refusal on %s yet: %s", change.issue_key, exc)
    return note
