"""Jira as a channel, the writing side: one ticket per promotion whose status, comments and attachment
follow the run.

The operations come from :mod:`tasks.jira_plan`, queue in the run's :class:`tasks.outbox.Outbox`, and
are written here; :mod:`tasks.jira_notifier` wires it to the event stream.

Every event becomes a list of *operations* (create-or-find the ticket, transition, comment,
attach, link) appended to a queue in ``evidence/<model>/<version>/<run>/jira.json``
(compare-and-swap), and the queue is then written to Jira in order. When Jira is down (5xx,
429, timeouts, after retries with backoff) the rest of the queue stays there and is written
on the next successful call — the next event of the run, a decision, or the poller
(``python -m clearance.app.jira_poller``), which also flushes runs listed under
``evidence/jira/pending/``. Nothing here ever fails or blocks the promotion: errors are
raised to :func:`tasks.channels.publish_event`, which logs them and carries on.

Every operation is idempotent against Jira itself, so a retried or concurrent flush writes
nothing twice: the ticket is found again by the label ``clearance-run-<run id>``, comments
carry a ``clearance-ref`` marker, attachments are matched by file name, remote links by URL,
and a transition is skipped when the ticket already has its target status.

Races between processes (the flow, ``clearance serve``, the CLI, the poller):

- *One writer per run*: a flush first takes a lease in ``jira.json`` with compare-and-swap
  (``flusher``); a process that finds a live lease leaves its operations queued for the holder
  and returns. The holder re-reads the queue after every operation and gives the lease back
  only with a compare-and-swap on a queue holding nothing new, so an operation queued before
  the release is written by the holder and one queued after it finds no lease. So only one
  process ever searches for and creates the ticket (and no comment or transition is written
  twice by two flushes). A lease whose holder died expires after :attr:`JiraTracker.lease_seconds`
  (renewed after every operation).
- *Two tickets anyway* (the state was lost, or a lease expired under a very slow holder): after
  creating, the creator searches by the run label again; the oldest ticket is kept and its own
  newer one is relabelled ``clearance-duplicate`` with a comment pointing at the kept one, and
  closed with ``CLEARANCE_JIRA_DUPLICATE_TRANSITION`` when that is set.
- *Leaving the pending list*: S3 has no conditional delete, so a flusher that found the queue
  empty deletes the run's ``pending/`` entry and then re-reads the queue (itself written with
  compare-and-swap); an operation queued meanwhile puts the entry back. Writers queue before
  they mark, so no queued operation is left unlisted.
"""

from __future__ import annotations

import io
import logging
from typing import Any

from jira import JIRA

from clearance.core.keys import REPORT_HTML, REPORT_MD, jira_pending_key
from clearance.render.jira import marker, wiki_cell
from clearance.settings import JiraSettings
from tasks.jira_client import JiraConfigError, call, connect, search, transition_to
from tasks.jira_plan import ISSUE_OP, REPEATABLE
from tasks.outbox import DEFERRED, Outbox
from tasks.store import Store, read_json_state

log = logging.getLogger("clearance.jira")

BASE_LABEL = "clearance"
RUN_LABEL_PREFIX = "clearance-run-"
DUPLICATE_LABEL = "clearance-duplicate"


def run_label(run_id: str) -> str:
    """The label that finds a run's ticket again (rerun, retry, webhook, poller)."""
    return f"{RUN_LABEL_PREFIX}{run_id}"


def run_id_from_labels(labels: list[str]) -> str | None:
    """The run id carried by a ticket's labels."""
    return next((label[len(RUN_LABEL_PREFIX):] for label in labels if label.startswith(RUN_LABEL_PREFIX)), None)


def read_state(store: Store, key: str) -> tuple[dict[str, Any], str | None]:
    """The run's Jira state and its ETag (``({}, None)`` before the first event)."""
    return read_json_state(store, key)


class JiraTracker:
    """Writes a run's queued operations to its ticket; shared by the notifier, the webhook and the poller."""

    def __init__(self, settings: JiraSettings, store: Store, client: JIRA | None = None) -> None:
        self.settings = settings
        self.store = store
        self._client = client

    @property
    def client(self) -> JIRA:
        if self._client is None:
            self._client = connect(self.settings)
        return self._client

    @property
    def lease_seconds(self) -> float:
        """How long a flush lease holds without renewal: the worst case of one operation (up to five calls)."""
        s = self.settings
        one_call = s.timeout_seconds + s.backoff_seconds * 2 ** s.max_retries * 1.2
        return max(60.0, 5 * one_call * (s.max_retries + 1))

    def outbox(self, key: str) -> Outbox:
        """The run's outbox at ``key`` (the Jira state document)."""
        return Outbox(self.store, key, pending_key=jira_pending_key, lease_seconds=self.lease_seconds,
                      repeatable=REPEATABLE)

    def flush(self, key: str) -> dict[str, Any]:
        """Write the queue in order; raises JiraUnavailable (rest stays queued) or JiraConfigError (dropped).

        Only the holder of the run's lease writes (:class:`tasks.outbox.Outbox`); when another process
        holds it, this returns at once and the holder writes what was queued here.
        """
        state, problems = self.outbox(key).flush(lambda op, current: self._apply(op, current, key),
                                                 permanent=(JiraConfigError,))
        if problems:
            raise JiraConfigError("; ".join(problems))
        return state

    # ----------------------------------------------------------------- operations

    def _apply(self, op: dict[str, Any], state: dict[str, Any], key: str) -> Any:
        kind = op["kind"]
        if kind == "issue":
            return self._ensure_issue(state)
        issue_key = state.get("issue_key")
        if not issue_key:
            return DEFERRED
        if kind == "transition":
            name = self.settings.transition_for(op["state"])
            done_if = {"approved": (self.settings.approval_status,),
                       "rejected": (self.settings.rejection_status,)}.get(op["state"], ())
            transition_to(self.settings, self.client, issue_key, name, op["state"], done_if)
            return {"pipeline_state": op["state"]}
        if kind in ("comment", "tally"):
            return self._comment(issue_key, op, state)
        if kind == "link":
            links = call(self.settings, "remote links", lambda: self.client.remote_links(issue_key))
            if not any(getattr(link.object, "url", None) == op["url"] for link in links):
                call(self.settings, "add remote link", lambda: self.client.add_simple_link(
                    issue_key, {"url": op["url"], "title": op["title"]}))
            return None
        if kind == "attach":
            return self._attach(issue_key, op)
        raise JiraConfigError(f"unknown Jira queue operation {kind!r}")

    def _ensure_issue(self, state: dict[str, Any]) -> dict[str, Any]:
        """Find or create the run's ticket (only the lease holder gets here, so one process creates)."""
        if state.get("issue_key"):
            return {}
        return self._find_or_create(state)

    def _project(self, state: dict[str, Any]) -> str:
        project = state.get("project") or self.settings.project
        if not project:
            raise JiraConfigError(f"no Jira project for the ticket of run {state['run_id']}: set notify.jira_project "
                                  "in the tier's policy or the model's manifest, or CLEARANCE_JIRA_PROJECT")
        return project

    def _tickets_of_run(self, state: dict[str, Any]) -> list[Any]:
        s = self.settings
        jql = f'project = "{self._project(state)}" AND labels = "{run_label(state["run_id"])}"'
        found = search(s, self.client, jql, fields="summary,labels,created")
        return sorted(found, key=lambda issue: (int(issue.id) if str(issue.id).isdigit() else 0, str(issue.key)))

    def _find_or_create(self, state: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        found = self._tickets_of_run(state)
        duplicates = found[1:]  # left by an earlier race: keep the oldest
        if not found:
            labels = list(dict.fromkeys([BASE_LABEL, run_label(state["run_id"]), *s.labels]))
            fields = {"project": {"key": self._project(state)},
                      "issuetype": {"name": state.get("issue_type") or s.issue_type},
                      "summary": state["summary"], "description": state["description"], "labels": labels,
                      **s.extra_fields}
            created = call(s, "create issue", lambda: self.client.create_issue(fields=fields, prefetch=False))
            # Another process may have created one too (lost state, an expired lease): keep the oldest.
            found = self._tickets_of_run(state) or [created]
            if not any(str(i.id) == str(created.id) for i in found):
                found = sorted([*found, created], key=lambda i: int(i.id) if str(i.id).isdigit() else 0)
            # Each creator retires only its own ticket, so two of them never both comment on one.
            duplicates = [i for i in found[1:] if str(i.id) == str(created.id)]
        issue = found[0]
        for duplicate in duplicates:
            self._mark_duplicate(duplicate.key, issue.key, state["run_id"])
        if not s.url:  # connect() already refuses this; the check narrows the type
            raise JiraConfigError("CLEARANCE_JIRA_URL is not set")
        return {"issue_key": issue.key, "issue_id": str(issue.id),
                "issue_url": f"{s.url.rstrip('/')}/browse/{issue.key}"}

    def _mark_duplicate(self, duplicate_key: str, kept_key: str, run_id: str) -> None:
        """Explain and relabel a second ticket of the same run, so that nothing finds it again."""
        s = self.settings
        ref = marker(f"duplicate-of/{kept_key}")
        if not any(ref in (c.body or "") for c in self._comments(duplicate_key)):
            body = (f"h3. Duplicate\nThis ticket duplicates {kept_key} (two processes created the promotion "
                    f"ticket of run {{{{{run_id}}}}} at the same time). clearance tracks {kept_key} only.\n{ref}")
            call(s, "add comment", lambda: self.client.add_comment(duplicate_key, body))
        issue = call(s, "get issue", lambda: self.client.issue(duplicate_key, fields="labels"))
        labels = list(issue.fields.labels or [])
        wanted = [label for label in labels if label != run_label(run_id)]
        wanted = list(dict.fromkeys([*wanted, DUPLICATE_LABEL]))
        if wanted != labels:
            call(s, "relabel duplicate", lambda: issue.update(fields={"labels": wanted}, notify=False))
        log.warning("Jira: %s duplicated %s (run %s); relabelled %s", duplicate_key, kept_key, run_id,
                    DUPLICATE_LABEL)
        if s.duplicate_transition:
            try:
                transition_to(s, self.client, duplicate_key, s.duplicate_transition, "duplicate",
                              setting="CLEARANCE_JIRA_DUPLICATE_TRANSITION")
            except JiraConfigError as exc:  # the duplicate stays open, relabelled; the kept ticket is unaffected
                log.error("Jira: %s", exc)

    def _comments(self, issue_key: str) -> list[Any]:
        return call(self.settings, "comments", lambda: self.client.comments(issue_key))

    def _comment(self, issue_key: str, op: dict[str, Any], state: dict[str, Any]) -> dict[str, Any] | None:
        ref = op["body"].rsplit("\n", 1)[-1]
        existing = next((c for c in self._comments(issue_key) if ref in (c.body or "")), None)
        if existing is None:
            call(self.settings, "add comment", lambda: self.client.add_comment(issue_key, op["body"]))
        elif op["kind"] == "tally" and existing.body != op["body"]:
            call(self.settings, "update comment", lambda: existing.update(body=op["body"]))
        return None

    def _attach(self, issue_key: str, op: dict[str, Any]) -> Any:
        name = next((n for n in (REPORT_HTML, REPORT_MD) if self.store.head(op["prefix"] + n)), None)
        if name is None:
            return DEFERRED  # the flow writes the report right after the final event
        body, _ = self.store.get_bytes(op["prefix"] + name)
        filename = f"clearance-{name}"
        issue = call(self.settings, "get issue", lambda: self.client.issue(issue_key, fields="attachment"))
        if any(a.filename == filename for a in getattr(issue.fields, "attachment", []) or []):
            return None
        call(self.settings, "attach report", lambda: self.client.add_attachment(issue_key, io.BytesIO(body),
                                                                                filename=filename))
        return None

    # ----------------------------------------------------------------- refusals (from the approval intake)

    def answer_refusal(self, key: str, dedupe_key: str, message: str, person: str) -> None:
        """Explain a refused transition on the ticket and move it back to awaiting approval."""
        body = (f"h3. Transition not counted\n{wiki_cell(person)}: your move to a decision status was not counted: "
                f"{wiki_cell(message)}. The ticket is moved back to awaiting approval.\n"
                + marker("refusal/" + dedupe_key))
        self.outbox(key).enqueue({}, [
            {"id": f"refusal/{dedupe_key}", "kind": "comment", "body": body},
            {"id": f"back/{dedupe_key}", "kind": "transition", "state": "awaiting_approval"},
        ], first=ISSUE_OP)
        self.flush(key)
