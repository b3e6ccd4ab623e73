"""Polling Jira with JQL: approval by transition where webhooks are unsigned (Server / Data Center).

    python -m clearance.app.jira_poller            # every CLEARANCE_JIRA_POLL_SECONDS
    python -m clearance.app.jira_poller --once     # one pass (cron, tests)

Each pass searches ``project = P AND labels = "clearance" AND status in (approval, rejection)``
with the changelog expanded (``search`` on Server/DC, ``search/jql`` on Cloud, from
``serverInfo``), and hands every history entry that moved a ticket into a decision status to
the shared approval intake, with the time Jira says it was made (``created``): only entries on
the run's tracked ticket, made after its request opened, by a pinned account, count
(:func:`tasks.jira_approvals.process_status_change`); older ones are never replayed. The dedupe
key is the history id, the same id a webhook carries as ``changelog.id``: a change seen by both
counts once. Each pass also writes ticket updates left queued by a Jira outage
(:func:`tasks.jira_notifier.flush_pending`).
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

from clearance.config.schema import Principals
from clearance.settings.jira import JiraSettings
from tasks.jira_approvals import StatusChange, parse_jira_time, process_status_change
from tasks.jira_client import JiraChannelError, JiraConfigError, connect, search
from tasks.jira_notifier import flush_pending
from tasks.jira_tracking import BASE_LABEL
from tasks.store import Store
from tasks.wiring import object_store

log = logging.getLogger("clearance.jira.poller")


def decision_jql(settings: JiraSettings, projects: list[str] | None = None) -> str:
    """The JQL of one polling pass over ``projects`` (default: ``CLEARANCE_JIRA_PROJECT``)."""
    statuses = ", ".join(f'"{s}"' for s in (settings.approval_status, settings.rejection_status))
    if projects:
        selected = projects
    elif settings.project:
        selected = [settings.project]
    else:
        raise JiraConfigError("no Jira project to poll: set CLEARANCE_JIRA_PROJECT or notify.jira_project in a policy")
    keys = ", ".join(f'"{p}"' for p in selected)
    # Only tickets touched within the window: a pass must not reread every ticket ever approved.
    return (f'project in ({keys}) AND labels = "{BASE_LABEL}" AND status in ({statuses}) '
            f'AND updated >= "{settings.poll_window}"')


def ticket_projects(settings: JiraSettings, config: Any = None) -> list[str]:
    """Every project promotion tickets may be in: the setting's and each policy's and manifest's ``notify``."""
    found = [settings.project] if settings.project else []
    if config is not None:
        for item in [*config.policies.values(), *config.manifests.values()]:
            if item.notify.jira_project:
                found.append(item.notify.jira_project)
    return sorted(dict.fromkeys(found))


def poll_once(settings: JiraSettings, store: Store, principals: Principals,
              projects: list[str] | None = None) -> list[str]:
    """One pass over ``projects``: count new decision transitions, flush queued ticket updates; returns notes."""
    client = connect(settings)
    notes: list[str] = []
    decision_statuses = {settings.approval_status.casefold(), settings.rejection_status.casefold()}
    if not (projects or settings.project):
        raise JiraConfigError("no Jira project to poll: set CLEARANCE_JIRA_PROJECT or notify.jira_project in a policy")
    for issue in search(settings, client, decision_jql(settings, projects), fields="summary,status,labels",
                        expand="changelog"):
        raw = issue.raw
        labels = list(raw.get("fields", {}).get("labels") or [])
        for history in (raw.get("changelog") or {}).get("histories") or []:
            for item in history.get("items") or []:
                if (item.get("fieldId") or item.get("field")) != "status":
                    continue
                if str(item.get("toString", "")).casefold() not in decision_statuses:
                    continue
                change = StatusChange(issue_key=raw["key"], issue_id=str(raw["id"]), labels=labels,
                                      author=history.get("author") or {}, history_id=str(history["id"]),
                                      from_status=str(item.get("fromString") or ""),
                                      to_status=str(item.get("toString") or ""), source="poll",
                                      at=parse_jira_time(history.get("created")))
                notes.append(f"{raw['key']}#{history['id']}: "
                             + process_status_change(settings, store, principals, change))
    flush_pending(settings, store, client)
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", action="store_true", help="one pass, then exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Importing the intake sets up Prefect's logging first (basicConfig is then a no-op and the root
    # level hides INFO): what each pass counted must still be said.
    logging.getLogger("clearance.jira").setLevel(logging.INFO)
    from tasks.wiring import config_set

    settings = JiraSettings()
    if not settings.enabled:
        log.error("Jira is not configured (CLEARANCE_JIRA_URL and credentials)")
        return 2
    store = object_store()
    while True:
        config = config_set()  # re-read when changed: principals and policies change
        try:
            for note in poll_once(settings, store, config.principals, ticket_projects(settings, config)):
                log.info("%s", note)
        except JiraConfigError as exc:
            log.error("Jira poll: %s", exc)
            return 2
        except JiraChannelError as exc:
            log.warning("Jira poll failed: %s", exc)
            if args.once:
                return 1
        if args.once:
            return 0
        time.sleep(settings.poll_seconds)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
