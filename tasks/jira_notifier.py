"""Jira as a channel, wired to the event stream: events become queued ticket operations, then a flush.

Registered with :func:`tasks.channels.register_notifier`; active when ``CLEARANCE_JIRA_URL`` and
credentials are set (:mod:`clearance.settings.jira`); the project comes from the configs'
``notify.jira_project`` or ``CLEARANCE_JIRA_PROJECT``. Nothing here ever fails or blocks a
promotion: errors are raised to :func:`tasks.channels.publish_event`, which logs them and carries on,
and what Jira did not take stays queued (``python -m clearance.app.jira_poller`` flushes it).
"""

from __future__ import annotations

import logging
from typing import Any

from jira import JIRA

from clearance.config.schema import Principals
from clearance.core.keys import JIRA_PENDING_PREFIX, jira_state_key
from clearance.events import PromotionEvent
from clearance.settings import JiraSettings, Settings
from tasks.channels import register_notifier
from tasks.jira_client import JiraConfigError, JiraUnavailable
from tasks.jira_plan import ISSUE_OP, ops_for, ticket_info
from tasks.jira_tracking import JiraTracker
from tasks.store import Store
from tasks.wiring import object_store, principals_for_mentions

log = logging.getLogger("clearance.jira")


class JiraNotifier:
    """The channel: turns promotion events into queued ticket operations and flushes them."""

    name = "jira"

    def __init__(self, settings: JiraSettings, store: Store, client: JIRA | None = None,
                 config_dir: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.tracker = JiraTracker(settings, store, client)
        self.config_dir = config_dir

    def handle(self, event: PromotionEvent) -> None:
        """Queue what ``event`` changes and write the queue; raises on outages (the queue keeps it)."""
        key = jira_state_key(event.model, event.version, event.run_id)
        principals = self._principals() if event.mentions else None
        self.tracker.outbox(key).enqueue(ticket_info(event, self.settings),
                                         ops_for(event, self.settings, principals), first=ISSUE_OP)
        try:
            self.tracker.flush(key)
        except JiraUnavailable as exc:
            raise JiraUnavailable(f"{exc}; the ticket update is queued in {key} and written on the next "
                                  "successful call") from None

    def _principals(self) -> Principals | None:
        """The configured principals (to mention people); ``None``: names are written as text."""
        return principals_for_mentions(self.config_dir, "Jira")


def flush_pending(settings: JiraSettings, store: Store, client: JIRA | None = None) -> list[str]:
    """Write every run's leftover queue (after an outage); returns the state keys flushed empty."""
    tracker = JiraTracker(settings, store, client)
    flushed = []
    for index in store.list_keys(JIRA_PENDING_PREFIX):
        try:
            key = store.get_json(index)["state"]
        except Exception:  # noqa: BLE001, S112 — a vanished index entry was flushed by someone else
            continue
        try:
            state = tracker.flush(key)
        except JiraUnavailable:
            break
        except JiraConfigError as exc:
            log.warning("Jira: %s", exc)
            continue
        if not state.get("queue"):
            flushed.append(key)
    return flushed


@register_notifier
def jira_notifier(settings: Settings) -> JiraNotifier | None:
    """The Jira notifier when URL, project and credentials are configured, else ``None``."""
    jira = JiraSettings()  # not cached: the environment is the switch, read at each event
    if not jira.enabled:
        return None
    return JiraNotifier(jira, object_store(settings), config_dir=settings.config_dir)
