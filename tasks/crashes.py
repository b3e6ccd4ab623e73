"""Noticing promotions whose process died: crashed runs are set Crashed, closed in the ledger, and
the uploads they left are aborted.

A process killed with SIGKILL (or out of memory, or on a lost machine) runs no hook: Prefect keeps
the run RUNNING, the ledger has no closing entry, and a copy that was under way leaves an
unfinished multipart upload. Prefect's own liveness signal is the flow-run heartbeat: the engine
emits ``prefect.flow-run.heartbeat`` every ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY`` seconds (default
180, at least 30) from a thread, for every flow run, direct or deployed. A self-hosted Prefect
server does not act on missing heartbeats by itself (Prefect Cloud has a managed automation;
the docs' "detect zombie flows" page shows one for self-hosted servers). So the sweep here does,
every minute by `clearance worker` (clearance/app/sweeper.py; flows/deadlines.py as a flow), in three steps:

1. :func:`find_dead_runs`: a promote-model run that is RUNNING, whose last heartbeat (or, before
   the first one, its entering RUNNING) is older than the bound, is set Crashed through the Prefect
   API (never forced: a run that reached a terminal state meanwhile keeps it). The bound is
   ``CLEARANCE_CRASH_AFTER_SECONDS`` but never less than 1.5 heartbeat intervals — the largest
   gap seen between this run's heartbeats, or this process's Prefect heartbeat setting — so a
   slow heartbeat is not taken for a death.
2. :func:`close_crashed_run`: every promote-model run Crashed in the last day (by this sweep, by a
   worker that saw its flow process die, by an automation) whose ledger entries do not end with a
   closing entry gets one ``crashed`` entry with Prefect's reason — exactly one per crash, also
   when two sweeps race (the append is create-only at the head they read).
3. :func:`abort_orphan_uploads`: an unfinished multipart upload under a production prefix of a
   model and version that no run is promoting now, begun longer than the bound ago, is aborted —
   the dead run's just after it was found dead, and what a killed attempt left when a retry of the
   run has since finished.

Before them, :func:`reschedule_stranded`: a run a worker took (Pending) and then never started — the
worker was killed between claiming it and starting its process — stays Pending forever: no other worker
takes a Pending run, and a self-hosted server does not notice. After ``CLEARANCE_PENDING_AFTER_SECONDS`` the
sweep proposes Scheduled for it (not forced), and the next poll of any worker of the pool starts it — but only
when no process can be running it: the worker recorded none (``infrastructure_pid``), or recorded a process
of this host that is gone (or now runs something else; a resumed run keeps its first pass's pid). A process
that is merely slow to start is never raced here. Prefect 3's process worker records a bare pid, without its
host: with process workers on several hosts, a run still starting on another host after the bound would be
judged by this host's processes, so keep the bound far above a process start there (default 120 s).

A retried run (``prefect flow-run retry``) resumes from its cached tasks (tasks/caching.py): its
``started``, gate and approval entries are not appended again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prefect.client.schemas.objects import StateType

from clearance.core.keys import ledger_prefix
from clearance.core.ledger_kinds import TERMINAL, LedgerKind
from clearance.ledger import LedgerEntry
from clearance.settings import get_settings
from tasks.ledger import put_next
from tasks.prefect_runs import (
    LEDGER_FLOWS,
    RunInfo,
    heartbeat_seconds,
    heartbeats,
    mark_crashed,
    prefect_time,
    promotion_runs,
    reschedule,
)
from tasks.recovery import configured_prefixes
from tasks.signing import ServiceSigner, require_signer
from tasks.store import MultipartUpload, Store
from tasks.witness import Witness

log = logging.getLogger("clearance.crashes")

#: A dead run is never judged on less than this many heartbeat intervals of silence.
HEARTBEAT_MARGIN = 1.5
#: Crashed runs ended this recently have their ledger closed by the sweep.
CLOSE_WINDOW = timedelta(days=1)
#: Ledger entries older than a run's start by more than this are not searched for the run's own.
_CLOCK_SLACK = timedelta(hours=1)
_MAX_APPEND_ATTEMPTS = 20


# --------------------------------------------------------------------------- judging liveness (pure)


@dataclass(frozen=True)
class Liveness:
    """What was decided about one RUNNING run."""

    run_id: str
    dead: bool
    #: Seconds since the last sign of life (heartbeat, or entering RUNNING), by the Prefect server's clock.
    silent_for: float
    #: The silence after which the run counts as dead.
    bound: float
    last_sign: datetime | None
    reason: str


def judge(run: RunInfo, beats: Sequence[datetime], now: datetime, crash_after: float,
          interval: float | None) -> Liveness:
    """Whether a RUNNING run is dead: silent for longer than ``max(crash_after, 1.5 × heartbeat interval)``.

    ``beats`` are when its heartbeats were received; only those of the current attempt (from entering
    RUNNING on) tell the interval. ``interval`` is the heartbeat interval runs are configured with
    (``None``: heartbeats are off — then a run that never sent one cannot be judged, and is left alone).
    """
    since = run.state_since
    own = sorted(b for b in beats if since is None or b >= since - timedelta(seconds=5))
    gaps = [(later - earlier).total_seconds() for earlier, later in zip(own, own[1:], strict=False)]
    expected = max([*gaps, float(interval or 0)])
    bound = max(crash_after, HEARTBEAT_MARGIN * expected)
    signs = [moment for moment in (*own[-1:], since) if moment is not None]
    last = max(signs) if signs else None
    if last is None or (not own and interval is None):
        return Liveness(run.run_id, False, 0.0, bound, last,
                        "no heartbeat and heartbeats are off here: cannot tell whether it lives")
    silent = (now - last).total_seconds()
    what = "heartbeat" if own else "heartbeat since it entered RUNNING"
    reason = (f"no {what} for {silent:.0f} s (bound {bound:.0f} s; last sign of life {last.isoformat()}): "
              "its process is gone (killed, out of memory or its machine lost) — marked Crashed by the clearance "
              "crash sweep")
    return Liveness(run.run_id, silent > bound, silent, bound, last, reason)


# --------------------------------------------------------------------------- 1. Prefect


def find_dead_runs(crash_after: float, running: Iterable[RunInfo] | None = None) -> tuple[list[Liveness],
                                                                                          list[str]]:
    """Set every RUNNING promotion whose process is gone Crashed; returns the verdicts on the dead ones and
    the problems met (a run Prefect would not crash, an API error)."""
    now = prefect_time()
    interval = heartbeat_seconds()
    dead, problems = [], []
    for run in running if running is not None else promotion_runs({StateType.RUNNING}):
        try:
            since = run.state_since or now - CLOSE_WINDOW
            verdict = judge(run, heartbeats(run.run_id, since), now, crash_after, interval)
            if not verdict.dead:
                continue
            accepted, refusal = mark_crashed(run.run_id, verdict.reason)
        except Exception as exc:  # noqa: BLE001 — one run's trouble must not stop the sweep for the others
            problems.append(f"run {run.run_id}: liveness not judged: {type(exc).__name__}: {exc}")
            continue
        if accepted:
            log.warning("run %s (%s %s) crashed: %s", run.run_id, run.parameters.get("model"),
                        run.parameters.get("version"), verdict.reason)
            dead.append(verdict)
        else:
            problems.append(f"run {run.run_id}: Prefect did not take Crashed: {refusal}")
    return dead, problems


# --------------------------------------------------------------------------- 2. the ledger


def _closed(entry: LedgerEntry, run_count: int) -> bool:
    """Whether the run's newest entry closes it as it is now: a ``crashed`` entry of an earlier attempt does not
    (Prefect's run count grows each time the run enters RUNNING — a resumption, a retry — and never after it
    crashed, so a crash is recorded once, and a retry that crashes again gets its own entry)."""
    if entry.kind not in TERMINAL:
        return False
    return entry.kind != LedgerKind.CRASHED or int(entry.payload.get("run_count", 1)) >= run_count


def close_crashed_run(store: Store, run: RunInfo, *, signer: ServiceSigner | None = None,
                      witnesses: Sequence[Witness] | None = None) -> LedgerEntry | None:
    """Append the ``crashed`` entry of a Crashed run whose ledger entries do not end with a closing one.

    ``None`` when there is nothing to close: a dry run, a run that never wrote to the ledger, or one
    already closed (also by another sweep racing this one: the entry is written create-only after the
    head this call read, and re-checked when another writer got there first).
    """
    model, version = run.parameters.get("model"), run.parameters.get("version")
    if not isinstance(model, str) or not isinstance(version, str) or run.parameters.get("dry_run"):
        return None
    payload = {"run": run.run_id, "version": version, "run_count": run.run_count,
               "reason": (run.state_message or "the run crashed")[:2000]}
    for _ in range(_MAX_APPEND_ATTEMPTS):
        keys = store.list_keys(ledger_prefix(model))
        head: LedgerEntry | None = None
        ours: LedgerEntry | None = None
        for key in reversed(keys):  # newest first: a run's own entries are near the head
            entry = LedgerEntry.model_validate(store.get_json(key))
            head = head or entry
            if entry.payload.get("run") == run.run_id:
                ours = entry
                break
            if run.start_time is not None and entry.at < run.start_time - _CLOCK_SLACK:
                break  # older than the run: it never wrote to the ledger
        if ours is None or _closed(ours, run.run_count):
            return None
        signer = signer or require_signer(purpose="sign the crashed entry")
        written = put_next(store, model, head, LedgerKind.CRASHED.value, payload, signer=signer, witnesses=witnesses)
        if written is None:
            continue  # someone appended meanwhile (perhaps the same entry): look again
        return written
    raise RuntimeError(f"could not close run {run.run_id} in the ledger of {model}: "
                       f"{_MAX_APPEND_ATTEMPTS} writers raced ahead")


# --------------------------------------------------------------------------- 3. unfinished uploads


def abort_orphan_uploads(store: Store, live: set[tuple[str, str]], older_than: timedelta,
                         prefixes: Sequence[str]) -> list[MultipartUpload]:
    """Abort the unfinished multipart uploads under ``<prefix>/<model>/<version>/`` of every model and version
    not in ``live`` (being promoted by a RUNNING run), begun more than ``older_than`` ago by the store's clock."""
    cutoff = store.server_time() - older_than
    aborted: list[MultipartUpload] = []
    for prefix in prefixes:
        destinations = set()
        for upload in store.list_multipart_uploads(prefix + "/"):
            parts = upload.key[len(prefix) + 1:].split("/")
            if len(parts) == 3 and (parts[0], parts[1]) not in live:
                destinations.add(f"{prefix}/{parts[0]}/{parts[1]}/")
        for destination in sorted(destinations):
            gone = store.abort_multipart_uploads(destination, initiated_before=cutoff)
            for upload in gone:
                log.warning("aborted the unfinished upload %s (begun %s) left by a dead run", store.url(upload.key),
                            upload.initiated)
            aborted += gone
    return aborted


# --------------------------------------------------------------------------- the sweep


@dataclass
class CrashSweep:
    """What one pass of :func:`sweep_crashes` did."""

    crashed: list[Liveness] = field(default_factory=list)
    closed: list[LedgerEntry] = field(default_factory=list)
    aborted: list[MultipartUpload] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: Runs a dead worker had left Pending, scheduled again.
    rescheduled: list[str] = field(default_factory=list)


def no_process_runs(run: RunInfo) -> bool:
    """Whether no process can be running ``run``: none was recorded, or the recorded ``host:pid`` is of this host
    and that pid is gone or runs another flow run. ``False`` when it cannot be told (another host's process)."""
    import socket

    import psutil

    if not run.infrastructure_pid:
        return True
    # Prefect 3's process worker records the bare pid; other versions and workers ``host:pid``.
    host, _, pid = run.infrastructure_pid.rpartition(":")
    if (host and host != socket.gethostname()) or not pid.isdigit():
        return False
    try:
        return psutil.Process(int(pid)).environ().get("PREFECT__FLOW_RUN_ID") != run.run_id
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:  # another user's process: it is not ours to judge
        return False


def reschedule_stranded(pending_after: float, now: datetime | None = None) -> tuple[list[str], list[str]]:
    """Schedule again every ledger-writing run Pending for longer than ``pending_after`` seconds; returns the
    runs rescheduled and the problems (a run Prefect refused to move: it started meanwhile)."""
    now = now or prefect_time()
    done: list[str] = []
    problems: list[str] = []
    for run in promotion_runs({StateType.PENDING}, flows=LEDGER_FLOWS):
        if run.state_since is None or (now - run.state_since).total_seconds() < pending_after:
            continue
        if not no_process_runs(run):
            continue
        accepted, reason = reschedule(run.run_id, f"Pending for over {pending_after:g} s (its worker took it and "
                                                  "never started it): scheduled again by the clearance sweep")
        if accepted:
            log.warning("run %s was Pending since %s: scheduled again", run.run_id, run.state_since)
            done.append(run.run_id)
        else:
            problems.append(f"run {run.run_id}: not rescheduled: {reason}")
    return done, problems


def _target(run: RunInfo) -> tuple[str, str] | None:
    model, version = run.parameters.get("model"), run.parameters.get("version")
    return (model, version) if isinstance(model, str) and isinstance(version, str) else None


def sweep_crashes(store: Store, crash_after: float | None = None) -> CrashSweep:
    """One pass: crash the dead RUNNING promotions, close every recently Crashed run's ledger, abort the
    uploads nobody is finishing. ``crash_after`` defaults to ``CLEARANCE_CRASH_AFTER_SECONDS``."""
    bound = crash_after if crash_after is not None else get_settings().crash_after_seconds
    result = CrashSweep()
    result.rescheduled, result.problems = reschedule_stranded(get_settings().pending_after_seconds)
    running = promotion_runs({StateType.RUNNING})
    result.crashed, problems = find_dead_runs(bound, running)
    result.problems += problems
    dead = {verdict.run_id for verdict in result.crashed}

    for run in promotion_runs({StateType.CRASHED}, ended_after=prefect_time() - CLOSE_WINDOW):
        try:
            entry = close_crashed_run(store, run)
        except Exception as exc:  # noqa: BLE001 — reported; the next sweep tries again
            result.problems.append(f"run {run.run_id}: ledger not closed: {type(exc).__name__}: {exc}")
            continue
        if entry is not None:
            result.closed.append(entry)

    live = {target for run in running if run.run_id not in dead and (target := _target(run))}
    try:
        result.aborted = abort_orphan_uploads(store, live, timedelta(seconds=bound), list(configured_prefixes()))
    except Exception as exc:  # noqa: BLE001 — reported; the next sweep tries again
        result.problems.append(f"unfinished uploads not aborted: {type(exc).__name__}: {exc}")
    return result
