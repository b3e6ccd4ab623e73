"""The sweep, in-process: what ``clearance sweep`` does once, and ``clearance worker`` / ``clearance sweep --every``
do every N seconds inside one long-lived process.

Suspended promotions hold no process, so something else must apply their deadlines, notice runs whose process
died, close what the ledger misses, remind approvers and lapse expired certifications. That used to be a
Prefect deployment run every minute: a new Python process per minute (3.5–5.4 CPU-s each) and a run per
minute in the UI. Here a pass is a function call in a process that is running anyway.

Several sweepers at once are safe (two worker replicas, a worker and a ``clearance sweep --every``): every
write a pass makes is a compare-and-swap on the store — closing a request (``put_if_match`` on its record),
recording a reminder (the same, before the message is sent), ledger entries (create-only after the head
read: ``crashed``, the recovered closings, ``lapsed``) — so the loser of a race re-reads and finds nothing
left to do; and resuming a run that another sweeper already resumed is refused by Prefect and ignored.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clearance.config import ConfigSet
    from clearance.ledger import LedgerEntry
    from tasks.crashes import CrashSweep
    from tasks.reminders import Reminded
    from tasks.store import Store

log = logging.getLogger("clearance.sweeper")
#: Seconds a stopping process gives the pass under way before it exits without it. Cutting a pass short is
#: safe: each write it makes is a compare-and-swap, and the next sweeper (or process) finds what is left.
STOP_GRACE = 3.0


@dataclass
class SweepReport:
    """What one pass did. ``failed``: the steps that raised (the pass went on with the others)."""

    woken: list[str] = field(default_factory=list)
    crashes: CrashSweep | None = None
    recovered: list[LedgerEntry] = field(default_factory=list)
    reminded: list[Reminded] = field(default_factory=list)
    lapsed: list[LedgerEntry] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)

    def counts(self) -> str:
        crashes = self.crashes
        return (f"{len(self.woken)} woken, {len(crashes.rescheduled) if crashes else 0} rescheduled, "
                f"{len(crashes.crashed) if crashes else 0} crashed, "
                f"{len(crashes.closed) if crashes else 0} closed, {len(self.recovered)} recovered, "
                f"{len(self.reminded)} reminded, {len(self.lapsed)} lapsed")


def _soft(report: SweepReport, step: str, work: Callable[[], None]) -> None:
    """Run one step whose failure must not stop the others (the next pass tries it again)."""
    try:
        work()
    except Exception as exc:  # noqa: BLE001 — recorded in the report; the caller decides what it means
        report.failed[step] = exc


def sweep_once(store: Store, configs: Callable[[], ConfigSet],
               lapse_models: Callable[[ConfigSet], list[str]] | None = None) -> SweepReport:
    """One pass, in the order of ``flows/deadlines.py``: crashes, deadlines, unclosed runs, reminders, lapses.

    ``configs`` is called by the steps that need the configs (reminders, lapses), so a config being edited
    into an invalid state holds up neither the deadlines nor the crash sweep. ``lapse_models``: the models
    whose certification expiry is checked (default: all that re-certify). Reading the waiting runs,
    applying the deadlines and closing unclosed runs raise (Prefect or the store is down: the next pass
    tries again); a failure of the other steps is recorded in :attr:`SweepReport.failed` and the pass goes on.
    """
    from tasks.certification import lapse_expired, recertified_models
    from tasks.crashes import sweep_crashes
    from tasks.deadlines import expire_overdue, recover_ended_runs, waiting_promotion_runs
    from tasks.reminders import send_due_reminders

    report = SweepReport()

    def crashes() -> None:
        report.crashes = sweep_crashes(store)

    _soft(report, "crashes", crashes)
    waiting = waiting_promotion_runs()
    report.woken = expire_overdue(store, run_ids=waiting)
    report.recovered = recover_ended_runs(store)  # after the crash sweep, which sets Crashed the runs it closes

    def reminders() -> None:
        report.reminded = send_due_reminders(store, principals=configs().principals, run_ids=waiting)

    def lapses() -> None:
        current = configs()
        models = lapse_models(current) if lapse_models else [name for name, _ in recertified_models(current)]
        report.lapsed = lapse_expired(store, models=models, configs=current)

    _soft(report, "reminders", reminders)
    _soft(report, "lapses", lapses)
    return report


def models_due(configs: ConfigSet, minutes: range) -> list[str]:
    """The re-certified models whose slice comes up in one of ``minutes`` (epoch minutes): each is looked at
    every :data:`tasks.certification.SLICES` minutes whatever the pass interval, none twice in a minute."""
    from tasks.certification import SLICES, in_slice, recertified_models

    names = [name for name, _ in recertified_models(configs)]
    if len(minutes) >= SLICES:
        return names
    return [name for name in names if any(in_slice(name, minute) for minute in minutes)]


class SweepLoop:
    """A pass every ``every`` seconds until :meth:`stop`; one at a time, each logged in one line.

    A pass that raises (the store or Prefect down, a broken config) is logged and the next one runs on time.
    The expiry of certifications covers every minute's slice since the last pass that succeeded.
    """

    def __init__(self, every: float, store: Callable[[], Store] | None = None,
                 configs: Callable[[], ConfigSet] | None = None) -> None:
        from tasks.wiring import config_set, object_store

        self.every = every
        self.passes = 0
        self._store = store or object_store
        self._configs = configs or config_set
        self._stopping = threading.Event()
        self._last_minute: int | None = None
        self._thread: threading.Thread | None = None

    def run_pass(self) -> SweepReport | None:
        """One pass, logged; None when it raised."""
        self.passes += 1
        started, cpu = time.monotonic(), time.thread_time()
        try:
            store = self._store()
            minute = int(store.server_time().timestamp() // 60)
            first = minute if self._last_minute is None else min(self._last_minute + 1, minute)
            report = sweep_once(store, self._configs, lambda configs: models_due(configs, range(first, minute + 1)))
        except Exception as exc:  # noqa: BLE001 — logged; the loop goes on
            log.error("sweep pass %d failed in %.2f s (pid %d): %s", self.passes, time.monotonic() - started,
                      os.getpid(), _one_line(exc))
            log.debug("sweep pass %d: %s", self.passes, "".join(traceback.format_exception(exc)))
            return None
        if "lapses" not in report.failed:
            self._last_minute = minute
        failed = "; ".join(f"{step} failed: {_one_line(exc)}" for step, exc in report.failed.items())
        log.log(logging.WARNING if failed else logging.INFO, "sweep pass %d %s in %.2f s, %.2f CPU-s (pid %d): %s%s",
                self.passes, "partly failed" if failed else "ok", time.monotonic() - started,
                time.thread_time() - cpu, os.getpid(), report.counts(), f"; {failed}" if failed else "")
        for problem in report.crashes.problems if report.crashes else []:
            log.warning("crash sweep: %s", problem)
        return report

    def run(self) -> None:
        """Pass after pass in this thread until :meth:`stop`."""
        while not self._stopping.is_set():
            started = time.monotonic()
            self.run_pass()
            self._stopping.wait(max(0.0, self.every - (time.monotonic() - started)))

    def start(self) -> threading.Thread:
        """Run the loop in a daemon thread (a pass never holds up the process's exit)."""
        self._thread = threading.Thread(target=self.run, name="clearance-sweeper", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, wait: float = 0.0) -> None:
        """No pass after the one under way; wait up to ``wait`` seconds for it (then the daemon thread is left to
        end with the process)."""
        self._stopping.set()
        if self._thread is None:
            return
        self._thread.join(wait)
        cut = " (the pass under way cut short)" if self._thread.is_alive() else ""
        log.info("sweeper stopped after %d pass(es)%s (pid %d)", self.passes, cut, os.getpid())


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def log_to_stderr() -> None:
    """Pass lines on stderr with a time stamp (Prefect's logging setup leaves ``clearance.*`` alone)."""
    if log.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
