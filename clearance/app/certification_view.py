"""The certification part of ``clearance status --model`` and ``clearance history``: the current
certification, every interval (version, from, until, how it ended) and every rollback, from the ledger.

Built as a document (clearance/render/document.py) and rendered as plain text with Rich's markup off, so
versions, reasons and names from the ledger stay text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console

from clearance.core.keys import PRODUCTION
from clearance.ledger import LedgerEntry
from clearance.ledger.certification import (
    CertificationState,
    Interval,
    certification_state,
    certification_timeline,
    rollbacks,
)
from clearance.render.document import Block, Bullets, Heading, Para, Table

#: How each way an interval ended reads.
ENDINGS = {"": "live", "renewed": "renewed by a re-certification", "lapsed": "lapsed (expired, no pass)",
           "recertification-failed": "lapsed (re-certification failed)", "replaced": "replaced by a promotion",
           "rolled-back": "rolled back"}


def when_utc(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment is not None else "-"


def _headline(model: str, state: CertificationState, now: datetime) -> str:
    if state.version is None:
        return f"{model} is not in production"
    live = f"{model} {state.version}"
    if state.status == "uncertified":
        return f"{live}: no certification in the ledger"
    if state.status == "valid":
        return f"{live}: certified until {when_utc(state.certified_until)}" if state.certified_until else \
            f"{live}: certified (no expiry: its tier did not re-certify when it went live)"
    if state.lapse_recorded:
        return f"{live}: certification LAPSED at {when_utc(state.lapsed_at)} (was certified until " \
               f"{when_utc(state.certified_until)})"
    return f"{live}: certification EXPIRED at {when_utc(state.certified_until)} (the lapse is recorded within minutes)"


def certification_blocks(model: str, entries: Sequence[LedgerEntry], live_version: str | None,
                         now: datetime) -> list[Block]:
    """The current certification, every interval (version, from, until, how it ended) and every rollback."""
    state = certification_state(entries, live_version, now, model)
    blocks: list[Block] = [Heading(2, ["Certification"]), Para([_headline(model, state, now)])]
    intervals: list[Interval] = certification_timeline(entries)
    if intervals:
        blocks.append(Table(["version", "from", "until", "ended", "how", "by run"], [
            [i.version, when_utc(i.start), when_utc(i.until), when_utc(i.ended),
             ENDINGS.get(i.end_reason, i.end_reason) if i.ended or not i.expired(now) else "expired (lapse due)",
             i.run_id[:8]]
            for i in intervals]))
    failures = [e for e in entries if e.kind == "recertification-failed"]
    if failures:
        blocks.append(Bullets([([f"{when_utc(e.at)} re-certification of {e.payload.get('version', '')} failed "
                                 f"(on_failure {e.payload.get('action', '')}): {e.payload.get('reason', '')}"], [])
                               for e in failures[-5:]]))
    backs = rollbacks(entries)
    if backs:
        blocks.append(Heading(2, ["Rollbacks"]))
        blocks.append(Table(["from", "to", "when", "by", "why", "run"], [
            [b.from_version, b.to_version, when_utc(b.at),
             (b.by or "-") + (f" (automatic, re-certification {b.trigger_run[:8]})" if b.automatic else ""),
             b.reason, b.run_id[:8]] for b in backs]))
    return blocks


def print_certification(console: Console, store: Any, model: str, prefix: str | None = None,
                        entries: Sequence[LedgerEntry] | None = None) -> None:
    """Print ``model``'s certification (from its ledger and pointer) as plain text, markup off. ``entries``: the
    ledger as the caller already read it (else it is read here)."""
    from clearance.render import text
    from tasks.ledger import read_ledger
    from tasks.promotion import read_pointer
    from tasks.store import ObjectStoreError

    prefix = prefix or _prefix_of(model)
    pointer = read_pointer(store, prefix, model).pointer
    try:
        now = store.server_time()
    except ObjectStoreError:
        from clearance.core.clock import utcnow

        now = utcnow()
    ledger = read_ledger(store, model) if entries is None else entries
    blocks = certification_blocks(model, ledger, pointer.version if pointer else None, now)
    console.print(text.render(blocks), markup=False, highlight=False)


def _prefix_of(model: str) -> str:
    """The model's promotion prefix (its effective policy's), ``production`` when the configs cannot say."""
    from tasks.wiring import config_set

    try:
        return config_set().effective_policy(model).promotion.prefix
    except Exception:  # noqa: BLE001 — a model that left the configs still has a ledger to show
        return PRODUCTION
