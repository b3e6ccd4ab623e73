"""The live version's certification in the store: a cached state object, and the expiry sweep.

The ledger is the truth (:mod:`clearance.ledger.certification` derives the certification from it);
``<target>/<model>/CERTIFICATION.json`` (:func:`clearance.core.keys.certification_key`) caches what
was derived, with the production pointer's run and version and the ledger head ``seq`` it was
derived from. It is written with compare-and-swap (:func:`tasks.store.update_json_state`) and never
replaced by one derived from an older ledger head. A reader validates it against the pointer
(and, in :func:`read_certification`, the ledger head): stale or missing, it is derived again.

**The expiry sweep** (:func:`lapse_expired`, every minute in `clearance worker`'s sweep): a valid
certification whose ``certified_until`` has passed by the store's clock gets one ``lapsed`` ledger
entry (``version``, ``certified_until``, ``reason``, ``about_run``: the certifying run; no ``run``
key, since no run writes it) and one alert (Slack in the model's channel, a Jira ticket).

Cost: with ``models=None`` only a tenth of the re-certified models is looked at each minute (those
whose ``sha256(name) % 10 == minute % 10``), so each model is checked every ten minutes — a lapse is
recorded at most ten minutes late. A model in the slice costs two reads when nothing is due (GET
of the state object and of ``CURRENT.json``; a missing object is one failed GET), so 1,000 models
cost about 200 store reads a minute. Only a model whose cached state is stale or past its
``certified_until`` has its ledger read.

Two sweeps never both append the lapse: it is appended create-only at the next sequence number
after the ledger head the sweep derived from, and a sweep that loses that number re-reads the
entries it lost to and stops if any of them is a lapse (or anything else that changes the
certification: the next sweep derives again).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from clearance.config import ConfigSet
from clearance.core.keys import PRODUCTION, certification_key, ledger_prefix, pointer_key
from clearance.core.ledger_kinds import LedgerKind
from clearance.events import PromotionEvent
from clearance.ledger import LedgerEntry
from clearance.ledger.certification import CERTIFICATION_KINDS, CertificationState, certification_state
from tasks.ledger import append_unless, read_ledger, seq_of
from tasks.promotion import ProductionPointer
from tasks.signing import ServiceSigner, require_signer
from tasks.store import ObjectNotFound, Store, update_json_state
from tasks.store_probe import require_conditional_writes
from tasks.witness import Witness

log = logging.getLogger("clearance.certification")

#: The sweep looks at one slice of the models per minute, each model every ``SLICES`` minutes.
SLICES = 10


class CertificationRecord(BaseModel):
    """``CERTIFICATION.json``: the certification as derived from the ledger, and from what."""

    model: str
    version: str | None
    status: str
    certified_until: datetime | None = None
    since: datetime | None = None
    last_run: str | None = None
    lapse_recorded: bool = False
    lapsed_at: datetime | None = None
    #: The production pointer's run when derived (a promotion or rollback moves it: the cache is stale).
    pointer_run: str | None = None
    #: The ledger head it was derived from.
    ledger_seq: int = 0

    @classmethod
    def of(cls, state: CertificationState, pointer: ProductionPointer | None, ledger_seq: int
           ) -> CertificationRecord:
        return cls(model=state.model, version=state.version, status=state.status,
                   certified_until=state.certified_until, since=state.since, last_run=state.last_run,
                   lapse_recorded=state.lapse_recorded, lapsed_at=state.lapsed_at,
                   pointer_run=pointer.run_id if pointer else None, ledger_seq=ledger_seq)

    def matches(self, pointer: ProductionPointer | None) -> bool:
        """Derived for the version (and run) the pointer names now."""
        return (pointer is None and self.version is None) or (
            pointer is not None and (self.version, self.pointer_run) == (pointer.version, pointer.run_id))

    def settled(self, now: datetime) -> bool:
        """Nothing for the sweep to do: valid and not yet expired, lapse recorded, or nothing certified."""
        if self.status == "valid":
            return self.certified_until is None or self.certified_until > now
        return self.status == "uncertified" or self.lapse_recorded


# --------------------------------------------------------------------------- reading and writing the cache


def _get_json(store: Store, key: str) -> dict[str, Any] | None:
    """One GET (a missing object is ``None``): the sweep's reads, without a HEAD first."""
    try:
        document = store.get_json(key)
    except ObjectNotFound:
        return None
    return document if isinstance(document, dict) else None


def _pointer(store: Store, prefix: str, model: str) -> ProductionPointer | None:
    document = _get_json(store, pointer_key(model, prefix))
    return ProductionPointer.model_validate(document) if document is not None else None


def cached_certification(store: Store, model: str, prefix: str = PRODUCTION) -> CertificationRecord | None:
    """The state object as stored (unvalidated), ``None`` when missing or unreadable."""
    document = _get_json(store, certification_key(model, prefix))
    try:
        return CertificationRecord.model_validate(document) if document is not None else None
    except ValueError:
        return None


def head_seq(store: Store, model: str) -> int:
    """The ledger head's sequence number (0 for an empty ledger): one listing, no entry read."""
    seqs = [seq_of(key) for key in store.list_keys(ledger_prefix(model))]
    return max((s for s in seqs if s is not None), default=0)


def derive_certification(store: Store, model: str, prefix: str = PRODUCTION, now: datetime | None = None,
                         *, pointer: ProductionPointer | None = None,
                         entries: Sequence[LedgerEntry] | None = None) -> CertificationRecord:
    """The certification as the ledger says it now (reads the pointer and the whole ledger unless given)."""
    pointer = pointer if pointer is not None else _pointer(store, prefix, model)
    entries = list(entries) if entries is not None else read_ledger(store, model)
    state = certification_state(entries, pointer.version if pointer else None, now or store.server_time(), model)
    return CertificationRecord.of(state, pointer, max((e.seq for e in entries), default=0))


def write_certification(store: Store, record: CertificationRecord, prefix: str = PRODUCTION) -> CertificationRecord:
    """Store ``record`` with compare-and-swap, unless the stored one was derived from a newer ledger head
    (then that one stands and is returned)."""
    new = record.model_dump(mode="json")

    def change(state: dict[str, Any]) -> None:
        if int(state.get("ledger_seq", -1)) > record.ledger_seq:
            return  # derived from a newer ledger: keep it
        state.clear()
        state.update(new)

    return CertificationRecord.model_validate(update_json_state(store, certification_key(record.model, prefix),
                                                                change))


def refresh_certification(store: Store, model: str, prefix: str = PRODUCTION,
                          now: datetime | None = None) -> CertificationRecord:
    """Derive the certification from the ledger and store it (after a re-certification, a rollback, a lapse)."""
    return write_certification(store, derive_certification(store, model, prefix, now), prefix)


def read_certification(store: Store, model: str, prefix: str = PRODUCTION,
                       now: datetime | None = None) -> CertificationRecord:
    """The certification of ``model``'s live version: the cached object when it still matches the pointer
    and the ledger head, else derived again from the ledger (and the cache rewritten)."""
    cached = cached_certification(store, model, prefix)
    pointer = _pointer(store, prefix, model)
    if cached is not None and cached.matches(pointer) and cached.ledger_seq == head_seq(store, model):
        when = now or store.server_time()
        if cached.status != "valid" or cached.certified_until is None or cached.certified_until > when:
            return cached
    return write_certification(store, derive_certification(store, model, prefix, now, pointer=pointer), prefix)


# --------------------------------------------------------------------------- the expiry sweep


def in_slice(model: str, minute: int, slices: int = SLICES) -> bool:
    """Whether the sweep looks at ``model`` in this minute (a stable hash of the name, not Python's ``hash``)."""
    return int.from_bytes(hashlib.sha256(model.encode()).digest()[:8], "big") % slices == minute % slices


def recertified_models(configs: ConfigSet) -> list[tuple[str, str]]:
    """``(model, promotion prefix)`` of every configured model whose effective policy re-certifies."""
    found = []
    for name in sorted(configs.manifests):
        try:
            policy = configs.effective_policy(name)
        except Exception as exc:  # noqa: BLE001 — one broken manifest does not stop the sweep for the others
            log.warning("no effective policy for %s: %s", name, exc)
            continue
        if policy.recertification is not None:
            found.append((name, policy.promotion.prefix))
    return found


def lapse_expired(store: Store, models: Iterable[str] | None = None, now: datetime | None = None, *,
                  configs: ConfigSet | None = None,
                  publish: Callable[[PromotionEvent], object] | None = None, signer: ServiceSigner | None = None,
                  witnesses: Sequence[Witness] | None = None) -> list[LedgerEntry]:
    """Record the lapse of every certification past its ``certified_until``; returns the entries appended.

    ``models``: these (if they re-certify); default: this minute's slice of the configured models that
    re-certify. ``now`` defaults to the store's clock. One model failing does not stop the others.
    ``publish`` tells the channels (default: :func:`tasks.channels.publish_event`); ``signer`` and ``witnesses``
    of the ledger default to the settings'.
    """
    from tasks.wiring import config_set

    configs = configs or config_set()
    now = now or store.server_time()
    wanted = None if models is None else set(models)
    appended: list[LedgerEntry] = []
    for model, prefix in recertified_models(configs):
        if (wanted is None and not in_slice(model, now.minute)) or (wanted is not None and model not in wanted):
            continue
        try:
            entry = _lapse_if_expired(store, model, prefix, now, signer, witnesses)
        except Exception as exc:  # noqa: BLE001 — the next pass tries again; the other models go on
            log.warning("could not check the certification of %s: %s: %s", model, type(exc).__name__, exc)
            continue
        if entry is not None:
            appended.append(entry)
            _alert_lapse(configs, model, entry, publish)
    return appended


def _lapse_if_expired(store: Store, model: str, prefix: str, now: datetime, signer: ServiceSigner | None,
                      witnesses: Sequence[Witness] | None) -> LedgerEntry | None:
    cached = cached_certification(store, model, prefix)
    pointer = _pointer(store, prefix, model)
    if pointer is None or (cached is not None and cached.matches(pointer) and cached.settled(now)):
        return None  # the cheap path: two reads
    entries = read_ledger(store, model)
    record = derive_certification(store, model, prefix, now, pointer=pointer, entries=entries)
    entry = None
    if record.status == "lapsed" and not record.lapse_recorded and record.certified_until is not None:
        until = record.certified_until
        entry = append_once(store, model, LedgerKind.LAPSED, {
            "version": record.version, "certified_until": until.isoformat(), "about_run": record.last_run,
            "reason": f"the certification of {model} {record.version} expired at {until.isoformat()} with no "
                      "re-certification passed since"}, after=record.ledger_seq, signer=signer, witnesses=witnesses)
        if entry is not None:
            record = derive_certification(store, model, prefix, now, pointer=pointer, entries=[*entries, entry])
    write_certification(store, record, prefix)
    return entry


def _alert_lapse(configs: ConfigSet, model: str, entry: LedgerEntry,
                 publish: Callable[[PromotionEvent], object] | None) -> None:
    from tasks.channels import publish_event

    manifest, policy = configs.manifests[model], configs.effective_policy(model)
    version, until = str(entry.payload["version"]), str(entry.payload["certified_until"])
    event = PromotionEvent(kind="alert", action="recertification", run_id=lapse_alert_id(model, version, until),
                           model=model, version=version, tier=policy.tier, initiator="clearance", status="lapsed",
                           message=str(entry.payload["reason"]), notify=manifest.notify.over(policy.notify))
    (publish or publish_event)(event)


def lapse_alert_id(model: str, version: str, certified_until: str | datetime) -> str:
    """The alert's run id: one per lapse (a channel keeps one thread / ticket per lapse)."""
    from clearance.ledger.certification import parse_moment

    moment = parse_moment(certified_until)
    return f"lapse-{model}-{version}-{int(moment.timestamp()) if moment else certified_until}"


# --------------------------------------------------------------------------- appending once


def append_once(store: Store, model: str, kind: LedgerKind, payload: dict[str, Any], *, after: int,
                signer: ServiceSigner | None = None, witnesses: Sequence[Witness] | None = None
                ) -> LedgerEntry | None:
    """Append ``kind`` right after the ledger head ``after`` as the caller derived from it, unless an entry
    after ``after`` changed the certification meanwhile (a lapse by another sweep, a re-certification, a
    promotion, a rollback): then nothing (``None``). Create-only: of two sweeps one wins the sequence
    number, the other reads what it lost to and stops."""
    require_conditional_writes(store)
    return append_unless(store, model, LedgerKind(kind).value, payload, after=after,
                         settled=lambda e: e.kind in CERTIFICATION_KINDS,
                         signer=signer or require_signer(purpose="sign the ledger entry"), witnesses=witnesses)


# --------------------------------------------------------------------------- a re-certification run that failed


def close_failed_recertification(store: Store, model: str, run_id: str, message: str,
                                 prefixes: Sequence[str] = (PRODUCTION,)) -> LedgerEntry | None:
    """The re-certification flow's failure hook: a run that began gating the live version (it has evidence) and
    ended without its terminal entry gets ``recertification-failed`` with action ``none`` (the certification is
    untouched: nothing was judged). Nothing when the run recorded its ending, or never began."""
    from clearance.core.keys import run_prefix
    from tasks.recovery import append_closing

    for prefix in prefixes:
        pointer = _pointer(store, prefix, model)
        if pointer is None or not store.list_keys(run_prefix(model, pointer.version, run_id)):
            continue
        return append_closing(store, model, run_id, LedgerKind.RECERTIFICATION_FAILED, {
            "run": run_id, "version": pointer.version, "reason": f"the re-certification run failed: {message}"[:2000],
            "failed_gates": [], "action": "none", "lapsed": False})
    return None
