"""Jira as a channel: one ticket per promotion whose status, comments and attachment follow the run.

Registered with :func:`tasks.channels.register_notifier`; active when ``CLEARANCE_JIRA_URL``,
``CLEARANCE_JIRA_PROJECT`` and credentials are set (:mod:`clearance.settings.jira`).

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
import json
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from jira import JIRA

from clearance.approvals import ApprovalRecord, Outcome, tally
from clearance.core.clock import utcnow
from clearance.core.keys import JIRA_PENDING_PREFIX, jira_pending_key, jira_state_key, run_prefix
from clearance.events import PromotionEvent
from clearance.settings import Settings
from clearance.settings.jira import JiraSettings
from gates.base import GateResult
from tasks.channels import register_notifier
from tasks.jira_client import JiraConfigError, JiraUnavailable, call, connect, search, transition_to
from tasks.object_store import ObjectExists, ObjectStore, PreconditionFailed, read_json_state, update_json_state

log = logging.getLogger("clearance.jira")

BASE_LABEL = "clearance"
RUN_LABEL_PREFIX = "clearance-run-"
DUPLICATE_LABEL = "clearance-duplicate"
#: Upper bound of operations one flush applies (other writers may keep queueing while it runs).
MAX_OPS_PER_FLUSH = 500


def run_label(run_id: str) -> str:
    """The label that finds a run's ticket again (rerun, retry, webhook, poller)."""
    return f"{RUN_LABEL_PREFIX}{run_id}"


def run_id_from_labels(labels: list[str]) -> str | None:
    """The run id carried by a ticket's labels."""
    return next((label[len(RUN_LABEL_PREFIX):] for label in labels if label.startswith(RUN_LABEL_PREFIX)), None)


# --------------------------------------------------------------------------- state with CAS


def read_state(store: ObjectStore, key: str) -> tuple[dict[str, Any], str | None]:
    """The run's Jira state and its ETag (``({}, None)`` before the first event)."""
    return read_json_state(store, key)


def update_state(store: ObjectStore, key: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` with compare-and-swap (re-read and re-applied after a lost race)."""
    return update_json_state(store, key, change, attempts=50)


# --------------------------------------------------------------------------- rendering (Jira wiki markup)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return " "
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    for char in "|{}[]":
        text = text.replace(char, "\\" + char)
    return text.replace("\n", " ")[:500]


def marker(ref: str) -> str:
    """The line that identifies a clearance comment (so it is never posted twice)."""
    return f"{{{{clearance-ref: {ref}}}}}"


def gate_comment(result: GateResult) -> str:
    """A gate result as a readable Jira table: checks, observed values, thresholds."""
    mode = "blocking" if result.blocking else "advisory"
    lines = [f"h3. Gate {result.gate_id} v{result.gate_version}: {result.status.value.upper()} ({mode})"]
    if result.message:
        lines.append(result.message)
    if result.checks:
        lines.append("||check||status||observed||threshold||message||")
        for check in result.checks:
            note = check.message + (f" (waived: {check.waiver})" if check.waiver else "")
            lines.append(f"|{_cell(check.id)}|{check.status.value}|{_cell(check.observed)}|"
                         f"{_cell(check.threshold)}|{_cell(note)}|")
    if result.metrics:
        lines.append("||metric||value||")
        lines += [f"|{_cell(name)}|{value:g}|" for name, value in sorted(result.metrics.items())]
    lines.append(marker(f"gate/{result.gate_id}"))
    return "\n".join(lines)


def tally_comment(record: ApprovalRecord, settings: JiraSettings, now: datetime | None = None) -> str:
    """The sign-off tally, the same numbers the Slack approval message shows."""
    request = record.request
    current = tally(record, now or utcnow())
    outcome = record.outcome if record.outcome.closed else current.outcome
    lines = [f"h3. Sign-off: {outcome.value.replace('_', ' ')}",
             "||role||needed||counted||missing||"]
    for role, need in sorted(request.required_roles.items()):
        counted = ", ".join(current.counted.get(role, [])) or "-"
        lines.append(f"|{role}|{need}|{_cell(counted)}|{current.missing.get(role, 0)}|")
    if current.rejected_by:
        lines.append(f"Rejected by: {', '.join(current.rejected_by)}")
    for decision in record.decisions:
        lines.append(f"* {decision.principal} ({decision.channel.value}): {decision.vote.value}"
                     + (f" — {_cell(decision.comment)}" if decision.comment else ""))
    if not outcome.closed:
        lines.append(f"To decide, move this ticket to *{settings.approval_status}* or *{settings.rejection_status}*. "
                     f"Not eligible: {', '.join(request.excluded_principals) or '-'}. "
                     f"Deadline: {request.deadline.isoformat()}.")
    lines.append(f"Artifact digest: {{{{{request.artifact_digest}}}}}")
    lines.append(marker("tally"))
    return "\n".join(lines)


def description(event: PromotionEvent) -> str:
    """The ticket's description: what is promoted, by whom, and where to look."""
    lines = [f"Promotion of model *{event.model}* version *{event.version}* ({event.tier} risk tier).",
             "", f"* Initiator: {event.initiator}", f"* Artifact digest: {{{{{event.artifact_digest}}}}}",
             f"* Prefect run id: {{{{{event.run_id}}}}}",
             f"* Evidence: {{{{{run_prefix(event.model, event.version, event.run_id)}}}}}"]
    for name, url in sorted(event.links.items()):
        lines.append(f"* {name.replace('_', ' ')}: [{url}]")
    lines += ["", "Managed by clearance: status, gate comments and the report follow the pipeline."]
    return "\n".join(lines)


# --------------------------------------------------------------------------- operations


def ops_for(event: PromotionEvent, settings: JiraSettings) -> list[dict[str, Any]]:
    """What an event changes on the ticket, as queue operations (each idempotent)."""
    ops: list[dict[str, Any]] = []

    def state(name: str) -> None:
        ops.append({"id": f"state/{name}", "kind": "transition", "state": name})

    kind = event.kind
    record = event.record
    if kind == "opened":
        if event.links.get("prefect_run"):
            ops.append({"id": "link/prefect_run", "kind": "link", "url": event.links["prefect_run"],
                        "title": f"Prefect run {event.run_id}"})
        state("gates_running")
    elif kind == "gate" and event.gate is not None:
        ops.append({"id": f"gate/{event.gate.gate_id}", "kind": "comment", "body": gate_comment(event.gate)})
    elif kind == "approval-requested" and record is not None:
        state("awaiting_approval")
        ops.append({"id": "tally", "kind": "tally", "body": tally_comment(record, settings)})
    elif kind in ("approvals-changed", "closed") and record is not None:
        ops.append({"id": "tally", "kind": "tally", "body": tally_comment(record, settings)})
        if record.outcome is Outcome.APPROVED:
            state("approved")
        elif record.outcome in (Outcome.REJECTED, Outcome.TIMED_OUT):
            state("rejected")
    elif kind in ("promoted", "stopped"):
        if record is not None and record.outcome.closed:
            ops.append({"id": "tally", "kind": "tally", "body": tally_comment(record, settings)})
        final = "promoted" if kind == "promoted" else (
            "rejected" if event.status in ("rejected", "timed-out") else "failed")
        text = f"h3. {'Promoted' if kind == 'promoted' else 'Stopped'}: {event.status or kind}"
        if event.message:
            text += f"\n{_cell(event.message)}"
        ops.append({"id": f"outcome/{kind}", "kind": "comment", "body": text + "\n" + marker(f"outcome/{kind}")})
        state(final)
        ops.append({"id": "attach/report", "kind": "attach",
                    "prefix": run_prefix(event.model, event.version, event.run_id)})
    return ops


def enqueue(store: ObjectStore, key: str, event_info: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Append ``ops`` to the run's queue (an op already done is skipped; a queued one is replaced)."""

    def change(state: dict[str, Any]) -> None:
        for name, value in event_info.items():
            state.setdefault(name, value)
        queue = state.setdefault("queue", [])
        done = set(state.setdefault("done", []))
        if "issue" not in done and not any(op["id"] == "issue" for op in queue):
            queue.insert(0, {"id": "issue", "kind": "issue"})
        for op in ops:
            if op["id"] in done and op["kind"] != "tally":
                continue
            existing = next((i for i, q in enumerate(queue) if q["id"] == op["id"]), None)
            if existing is None:
                queue.append(op)
            else:
                queue[existing] = op

    return update_state(store, key, change)


class JiraTracker:
    """Writes a run's queued operations to its ticket; shared by the notifier, the webhook and the poller."""

    def __init__(self, settings: JiraSettings, store: ObjectStore, client: JIRA | None = None) -> None:
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

    def flush(self, key: str) -> dict[str, Any]:
        """Write the queue in order; raises JiraUnavailable (rest stays queued) or JiraConfigError (dropped).

        Only the holder of the run's lease writes; when another process holds it, this returns at
        once and the holder writes what was queued here. The holder re-reads the queue after every
        operation, so operations queued meanwhile by other processes are written too.
        """
        token = self._acquire_lease(key)
        if token is None:
            state, _ = read_state(self.store, key)
            if state.get("queue"):
                self._mark_pending(key, state)  # in case the holder dies before it gets to them
            return state
        state, _ = read_state(self.store, key)
        problems: list[str] = []
        attempted: list[dict[str, Any]] = []
        try:
            while True:
                for _ in range(MAX_OPS_PER_FLUSH):
                    state, _ = read_state(self.store, key)
                    # The first op not yet tried here; a replaced op (a newer tally) is a new one.
                    op = next((q for q in state.get("queue", []) if q not in attempted), None)
                    if op is None:
                        break
                    attempted.append(op)
                    try:
                        outcome = self._apply(op, state, key)
                    except JiraConfigError as exc:
                        problems.append(str(exc))
                        self._finish(key, op, error=str(exc), lease=token)
                        continue
                    if outcome == "deferred":
                        continue
                    self._finish(key, op, result=outcome, lease=token)
                if self._release_lease(key, token, attempted):
                    break
        except BaseException:
            self._release_lease(key, token, None)
            if state.get("queue"):
                self._mark_pending(key, state)
            raise
        state, _ = read_state(self.store, key)
        if state.get("queue"):
            self._mark_pending(key, state)
        elif state.get("run_id"):
            self._clear_pending(key, state["run_id"])
        if problems:
            raise JiraConfigError("; ".join(problems))
        return state

    # ----------------------------------------------------------------- bookkeeping

    def _acquire_lease(self, key: str) -> str | None:
        """Take the run's flush lease with compare-and-swap; ``None`` while another process holds a live one."""
        token = uuid.uuid4().hex
        for _ in range(50):
            state, etag = read_state(self.store, key)
            lease = state.get("flusher")
            if lease and time.time() - float(lease.get("at", 0)) < self.lease_seconds:
                return None
            if lease:
                log.warning("Jira: taking over the expired flush lease of %s", key)
            state["flusher"] = {"owner": token, "at": time.time()}
            try:
                self.store.put_if_match(key, json.dumps(state, sort_keys=True).encode(), etag)
            except PreconditionFailed:
                continue
            return token
        return None

    def _release_lease(self, key: str, token: str, attempted: list[dict[str, Any]] | None) -> bool:
        """Give the lease back, unless the queue holds an op not in ``attempted`` (then ``False``: go on).

        ``attempted=None`` releases whatever is queued (this flush is giving up).
        """
        for _ in range(50):
            state, etag = read_state(self.store, key)
            if (state.get("flusher") or {}).get("owner") != token:
                return True  # expired and taken over: the new holder carries on
            if attempted is not None and any(q not in attempted for q in state.get("queue", [])):
                return False
            state.pop("flusher", None)
            try:
                self.store.put_if_match(key, json.dumps(state, sort_keys=True).encode(), etag)
            except PreconditionFailed:
                continue
            return True
        log.warning("Jira: could not release the flush lease of %s; it expires by itself", key)
        return True

    def _finish(self, key: str, op: dict[str, Any], result: Any = None, error: str | None = None,
                lease: str | None = None) -> None:
        def change(state: dict[str, Any]) -> None:
            if lease and (state.get("flusher") or {}).get("owner") == lease:
                state["flusher"]["at"] = time.time()  # renewed: this flush is alive
            state["queue"] = [q for q in state.get("queue", []) if q != op]
            if op["kind"] != "tally" and op["id"] not in state.setdefault("done", []):
                state["done"].append(op["id"])
            if isinstance(result, dict):
                state.update(result)
            if error:
                state.setdefault("errors", []).append({"op": op["id"], "error": error, "at": utcnow().isoformat()})

        update_state(self.store, key, change)

    def _mark_pending(self, key: str, state: dict[str, Any]) -> None:
        run_id = state.get("run_id")
        if not run_id:
            return
        try:
            self.store.put_if_absent(jira_pending_key(run_id), json.dumps({"state": key}).encode(),
                                     content_type="application/json")
        except ObjectExists:
            pass

    def _clear_pending(self, key: str, run_id: str) -> None:
        """Take the run off the pending list, unless an operation was queued meanwhile.

        Object stores have no portable conditional delete, so the removal is made conditional
        on the queue instead: delete, then re-read the queue (written with compare-and-swap);
        if another process queued an operation since this flush saw it empty, list the run
        again. A writer queues before it marks the run pending, so either this re-read sees its
        operation or its mark comes after the delete.
        """
        self.store.delete(jira_pending_key(run_id))
        state, _ = read_state(self.store, key)
        if state.get("queue"):
            self._mark_pending(key, state)

    # ----------------------------------------------------------------- operations

    def _apply(self, op: dict[str, Any], state: dict[str, Any], key: str) -> Any:
        kind = op["kind"]
        if kind == "issue":
            return self._ensure_issue(state)
        issue_key = state.get("issue_key")
        if not issue_key:
            return "deferred"
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
        found = search(s, self.client, f'project = "{self._project(state)}" AND labels = "{run_label(state["run_id"])}"',
                       fields="summary,labels,created")
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
        name = next((n for n in ("report.html", "report.md") if self.store.head(op["prefix"] + n)), None)
        if name is None:
            return "deferred"  # the flow writes the report right after the final event
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
        body = (f"h3. Transition not counted\n{_cell(person)}: your move to a decision status was not counted: "
                f"{_cell(message)}. The ticket is moved back to awaiting approval.\n{marker('refusal/' + dedupe_key)}")
        enqueue(self.store, key, {}, [
            {"id": f"refusal/{dedupe_key}", "kind": "comment", "body": body},
            {"id": f"back/{dedupe_key}", "kind": "transition", "state": "awaiting_approval"},
        ])
        self.flush(key)


class JiraNotifier:
    """The channel: turns promotion events into queued ticket operations and flushes them."""

    name = "jira"

    def __init__(self, settings: JiraSettings, store: ObjectStore, client: JIRA | None = None) -> None:
        self.settings = settings
        self.store = store
        self.tracker = JiraTracker(settings, store, client)

    def handle(self, event: PromotionEvent) -> None:
        """Queue what ``event`` changes and write the queue; raises on outages (the queue keeps it)."""
        key = jira_state_key(event.model, event.version, event.run_id)
        info = {"run_id": event.run_id, "model": event.model, "version": event.version,
                "artifact_digest": event.artifact_digest,
                "summary": f"Promote {event.model} {event.version} ({event.tier} tier)",
                "description": description(event)}
        # Where the ticket goes is fixed by the first event that knows it (the flow's carry the configs').
        project = event.notify.jira_project or self.settings.project
        if project:
            info["project"] = project
        if event.notify.jira_issue_type:
            info["issue_type"] = event.notify.jira_issue_type
        enqueue(self.store, key, info, ops_for(event, self.settings))
        try:
            self.tracker.flush(key)
        except JiraUnavailable as exc:
            raise JiraUnavailable(f"{exc}; the ticket update is queued in {key} and written on the next "
                                  "successful call") from None


def flush_pending(settings: JiraSettings, store: ObjectStore, client: JIRA | None = None) -> list[str]:
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
    return JiraNotifier(jira, ObjectStore.from_settings(settings))
