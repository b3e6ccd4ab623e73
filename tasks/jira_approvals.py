"""Approval by transition: a person moving a promotion ticket into the approval (or rejection) status.

The webhook (:mod:`clearance.app.serve.jira_routes`) and the poller (:mod:`clearance.app.jira_poller`)
both turn what they saw into a :class:`StatusChange` and call :func:`process_status_change`.
The decision's ``dedupe_key`` is ``jira:<issue id>:<changelog/history id>`` — the webhook's
``changelog.id`` is the id of the same history entry the poller reads — so a change seen by
both paths counts once.

Mapping a person: Cloud sends an ``accountId`` (→ ``principals.yaml`` ``jira_account_id``);
Server/DC sends ``name``/``key`` (also matched against ``jira_account_id``) and usually
``emailAddress`` (→ ``email``). Authorisation is the shared one (``receive_decision``); a refusal
gets a comment on the ticket and the ticket is moved back to awaiting approval.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from clearance.approvals import Vote
from clearance.config.schema import Channel, Principal, Principals
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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dedupe_key(self) -> str:
        return f"jira:{self.issue_id}:{self.history_id}"

    @property
    def identity(self) -> str:
        a = self.author
        return str(a.get("accountId") or a.get("name") or a.get("key") or a.get("emailAddress") or "unknown")


def principal_for(principals: Principals, author: dict[str, Any]) -> Principal | None:
    """The principal who made a change: account id, then Server user name/key, then e-mail."""
    for ident in (author.get("accountId"), author.get("name"), author.get("key")):
        if ident and (person := principals.by_jira_account(str(ident))):
            return person
    email = author.get("emailAddress")
    return principals.by_email(email) if email else None


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
    if change.identity in bot_ids:
        return "ignored: made by clearance itself"
    request = record.request
    state_key = jira_state_key(request.model, request.version, request.run_id)
    state, _ = read_state(store, state_key)
    evidence = {"issue": change.issue_key, "issue_id": change.issue_id, "history_id": change.history_id,
                "from": change.from_status, "to": change.to_status, "author": change.identity,
                "source": change.source}
    result = receive_decision(store, run_id, principal=principal_for(principals, change.author),
                              identity=change.identity, channel=Channel.JIRA, vote=vote,
                              comment=f"Jira {change.issue_key}: {change.from_status} → {change.to_status}",
                              artifact_digest=state.get("artifact_digest") or None,
                              channel_evidence=evidence, dedupe_key=change.dedupe_key)
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
