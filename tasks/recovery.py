"""Recovery: every run that ended gets its closing ledger entry, and the pointer is never left ahead of the ledger.

The promote step records its intent (``promoting``: run, version, digest, production keys, the
pointer's key and the ETag the run saw) before it copies and moves ``CURRENT.json``, and closes
the run with ``promoted`` after. When the store fails between the move and that entry, or the
process dies, or the failure hook cannot write, the ledger is left open. :func:`recover_model`
finds such runs and closes them:

- **the pointer is ahead of the ledger** — ``CURRENT.json`` names a run whose last entry is not
  ``promoted`` (``promoting``, ``approved`` from before intents were recorded, or a ``failed`` /
  ``crashed`` written by something that did not look at the pointer), or a later promotion records
  that it replaced such a run: the version is (or was) live, so the run gets ``promoted`` with
  ``recovered: true`` and why; its report and ``bundle.json`` are written first when missing. A
  run Prefect still has running gets a grace period (:data:`GRACE`) to record it itself.
- **the run ended without a closing entry** — Prefect has it Failed, Crashed, Cancelled (or
  Completed) and the pointer does not name it: it gets ``failed`` (``recovered: true``, the
  Prefect state, why); a copy it made that did not go live is marked ``NOT-LIVE.json``
  (:func:`tasks.promotion.mark_not_live`). A run still running or paused is not ended and is left
  alone, and so is a run whose state Prefect cannot tell.

Closing entries are appended with :func:`append_closing`: create-only at the next sequence number
after re-checking that the run is still open, so two recoverers (or a recoverer and the run
itself) never both close one run — the loser reads the entries it lost to and stops. Recovering
twice appends nothing more. Before its first write, recovery checks that the stored chain links up
and that no witness saw an entry the ledger lacks or holds differently (:class:`LedgerNotRecoverable`):
a tail cut after ``promoting`` looks exactly like a run that could not close, and is left for
``clearance audit verify`` to name.

A rollback (flows/rollback.py) leaves the same trail — ``rolling-back`` is its intent — and is closed
the same way, with ``rolled-back`` instead of ``promoted`` (held back only by a ``rolled-back`` of the
run); a rollback that did not go live gets ``failed`` and no not-live marker, since what it would have
made live is an earlier live copy. A ``rolled-back`` entry's ``replaces_run`` counts like a promotion's.

Called by the next run of the same model (``flows/promote.py``), by the failure hook of the
promotion flow (for its own run: :func:`close_after_failure`), by the sweep `clearance worker` runs every minute
(``flows/deadlines.py``), and before ``clearance history`` and ``clearance audit verify`` read the
ledger (:func:`recover_before_reading`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from prefect.client.schemas.objects import StateType

from clearance.approvals import ApprovalRecord
from clearance.core.clock import utcnow
from clearance.core.keys import (
    BUNDLE,
    PRODUCTION,
    REPORT_HTML,
    REPORT_MD,
    approvals_key,
    pointer_key,
    run_prefix,
)
from clearance.core.ledger_kinds import LIVE, TERMINAL, LedgerKind
from clearance.ledger import GENESIS_HASH, LedgerEntry
from clearance.render.html import to_html
from clearance.render.markdown import to_markdown
from clearance.render.report import build_report
from tasks.bundle import seal
from tasks.ledger import append_unless, read_ledger
from tasks.promotion import ProductionPointer, clear_not_live, mark_not_live, read_pointer
from tasks.signing import ServiceSigner, require_signer
from tasks.store import ObjectExists, ObjectNotFound, ObjectStoreError, Store
from tasks.witness import PrefectArtifactWitness, Witness, configured_witnesses, prefect_api_configured

log = logging.getLogger("clearance.recovery")

#: How long a run Prefect still has running may take to record its own promotion before recovery does.
GRACE = timedelta(minutes=10)
#: Prefect states in which a run has ended: it will append nothing more.
ENDED = frozenset({StateType.FAILED, StateType.CRASHED, StateType.CANCELLED, StateType.COMPLETED})
_CLOSING = frozenset(kind.value for kind in TERMINAL)
#: Closing entries that make a version live (``promoted``, ``rolled-back``): such a trail is settled.
_LIVE = frozenset(kind.value for kind in LIVE)
#: Intents: entries written before a run moves the pointer (a promotion's, a rollback's).
_INTENTS = frozenset({LedgerKind.PROMOTING.value, LedgerKind.ROLLING_BACK.value})

#: ``run id → its Prefect state type`` (``None``: unknown — Prefect unreachable, or no such run).
RunStates = Callable[[str], StateType | None]


class LedgerNotRecoverable(RuntimeError):
    """The stored ledger does not verify, or a witness saw entries it lacks: recovery writes nothing into it
    (what it lacks may have been cut, not left unwritten); ``clearance audit verify`` names the damage."""


# --------------------------------------------------------------------------- what a run left in the ledger


@dataclass
class RunTrail:
    """One run's entries in a model's ledger (those whose payload names the run), in order."""

    run_id: str
    entries: list[LedgerEntry] = field(default_factory=list)

    @property
    def version(self) -> str:
        return next((str(e.payload["version"]) for e in self.entries if e.payload.get("version")), "")

    @property
    def closed(self) -> bool:
        """Whether the run's last entry closes it (a retried run may go on after a closing entry)."""
        return self.last.kind in _CLOSING

    @property
    def promoted(self) -> bool:
        """Whether the run's last entry makes its version live (``promoted``, or ``rolled-back``): settled."""
        return self.last.kind in _LIVE

    @property
    def intent(self) -> LedgerEntry | None:
        """The run's last ``promoting`` (or ``rolling-back``) entry: it set out to move the pointer."""
        return next((e for e in reversed(self.entries) if e.kind in _INTENTS), None)

    @property
    def rollback(self) -> bool:
        """Whether the run is a rollback (flows/rollback.py): it closes with ``rolled-back``, and what it makes
        live is an earlier live copy, never marked not-live."""
        return any(e.kind in (LedgerKind.ROLLBACK_REQUESTED.value, LedgerKind.ROLLING_BACK.value)
                   for e in self.entries)

    @property
    def approval(self) -> LedgerEntry | None:
        return next((e for e in reversed(self.entries) if e.kind == LedgerKind.APPROVED.value), None)

    @property
    def last(self) -> LedgerEntry:
        return self.entries[-1]


def run_trails(entries: Sequence[LedgerEntry]) -> list[RunTrail]:
    """Every run the entries name, in the order of their first entry."""
    trails: dict[str, RunTrail] = {}
    for entry in entries:
        run = entry.payload.get("run")
        if isinstance(run, str) and run:
            trails.setdefault(run, RunTrail(run)).entries.append(entry)
    return list(trails.values())


# --------------------------------------------------------------------------- deciding


@dataclass(frozen=True)
class Verdict:
    """How recovery closes one open run."""

    action: Literal["promoted", "failed"]
    reason: str
    #: For ``promoted``: what went live (production key → sha256) and its digest.
    production: dict[str, str] = field(default_factory=dict)
    artifact_digest: str = ""


def judge(trail: RunTrail, pointer: ProductionPointer | None, pointer_at: str, replaced_by: str | None,
          state: StateType | None, now: datetime, ended_reason: str | None = None) -> Verdict | None:
    """How to close ``trail``, or ``None`` to leave it as it is. Pure.

    ``pointer`` is the production pointer (read from ``pointer_at``); ``replaced_by`` a run whose
    promotion records that it replaced this run's pointer; ``state`` the run's Prefect state;
    ``ended_reason`` set when the caller knows the run ended (the flow's own failure hook).

    A run the pointer names (or named) must end with ``promoted``: also one whose ledger says it
    failed or crashed — the version is live, and the ledger has to say so. Any other run that is
    closed is left alone; an open one gets ``failed`` once it has ended.
    """
    ended = trail.closed or ended_reason is not None or state in ENDED
    live = None if trail.promoted else _live_evidence(trail, pointer, pointer_at, replaced_by)
    if live is not None:
        moved = trail.intent or trail.approval
        assert moved is not None
        if not ended and state is not None and now - moved.at < GRACE:
            return None  # still running: it records its own promotion (recovery takes over after GRACE)
        how = (ended_reason or (f"Prefect has the run {state.value}" if state is not None
                                else "Prefect cannot tell its state"))[:300]
        reason, production, digest = live
        return Verdict("promoted", f"{reason} ({how})", production, digest)
    if trail.closed:
        return None
    if ended_reason is not None:
        return Verdict("failed", ended_reason)
    if state in ENDED:
        assert state is not None
        return Verdict("failed", f"the run ended in Prefect as {state.value} without a closing ledger entry (its "
                                 "end could not be recorded then); recorded by recovery")
    return None


def _live_evidence(trail: RunTrail, pointer: ProductionPointer | None, pointer_at: str, replaced_by: str | None
                   ) -> tuple[str, dict[str, str], str] | None:
    """Why the run's version is (or was) live, what went live and its digest; ``None`` if nothing says so."""
    if trail.intent is None and trail.approval is None:
        return None  # never got to the promote step
    if pointer is not None and pointer.run_id == trail.run_id:
        return (f"{pointer_at} names this run (version {pointer.version}, moved at {pointer.at.isoformat()}), but "
                "the run's ledger did not record the promotion", dict(pointer.artifacts), pointer.artifact_digest)
    if replaced_by is not None and trail.intent is not None:
        intent = trail.intent.payload
        return (f"this run's version was live until run {replaced_by} replaced it, but the run's ledger did not "
                "record the promotion", dict(intent.get("production") or {}), str(intent.get("artifact_digest", "")))
    return None


# --------------------------------------------------------------------------- recovering


def recover_model(store: Store, model: str, *, prefixes: Sequence[str] = (PRODUCTION,),
                  run_states: RunStates | None = None, ended: Mapping[str, str] | None = None,
                  only: str | None = None, signer: ServiceSigner | None = None,
                  witnesses: Sequence[Witness] | None = None) -> list[LedgerEntry]:
    """Close every run of ``model`` the ledger leaves open although the pointer or Prefect says it ended.

    ``prefixes``: the promotion prefixes whose pointer may name a run (a run's ``promoting`` entry
    names its own); ``run_states``: the Prefect state of a run (default: asked of Prefect);
    ``ended``: runs known to have ended, with why (a failure hook's own run); ``only``: look at this
    run alone. Returns the entries appended (none when nothing was left open). Raises
    :class:`tasks.store.ObjectStoreError` when the store fails, :class:`tasks.signing.ServiceKeyError`
    when a run must be closed but there is no service key.
    """
    ended = ended or {}
    states = run_states or PrefectRunStates()
    entries = read_ledger(store, model)
    unsettled = [t for t in run_trails(entries) if not t.promoted and (only is None or t.run_id == only)]
    if not unsettled:
        return []
    pointers = _Pointers(store, model, prefixes)
    now = _now(store)
    appended: list[LedgerEntry] = []
    checked = False
    for trail in unsettled:
        at, pointer = pointers.for_run(trail)
        replaced_by = _replaced_by(trail.run_id, entries, pointers)
        if trail.closed and not (pointer is not None and pointer.run_id == trail.run_id) and replaced_by is None:
            continue  # ended, and nothing says its version went live
        state = None if trail.closed or trail.run_id in ended else states(trail.run_id)
        verdict = judge(trail, pointer, at, replaced_by, state, now, ended.get(trail.run_id))
        if verdict is None:
            continue
        if not checked:  # once, before the first write: an absent entry must not be a removed one
            _check_intact(model, entries, witnesses)
            checked = True
        entry = _close(store, model, trail, verdict, entries, state, pointers, recovered=trail.run_id not in ended
                       or verdict.action == "promoted", signer=signer, witnesses=witnesses)
        if entry is not None:
            log.warning("%s: run %s closed by recovery with ledger entry %d (%s): %s", model, trail.run_id,
                        entry.seq, entry.kind, verdict.reason)
            appended.append(entry)
            entries.append(entry)
    return appended


def close_after_failure(store: Store, model: str, run_id: str, message: str,
                        prefixes: Sequence[str] = (PRODUCTION,)) -> LedgerEntry | None:
    """The promotion flow's failure hook: close ``run_id``, which just ended with ``message``.

    ``promoted`` (recovered) when the pointer names the run — the move landed before the failure —,
    else ``failed`` with ``message`` (and its copy marked not live); nothing when the run already
    closed its ledger or never wrote to it.
    """
    closed = recover_model(store, model, prefixes=prefixes, ended={run_id: message[:2000]}, only=run_id)
    return closed[0] if closed else None


def _close(store: Store, model: str, trail: RunTrail, verdict: Verdict, entries: list[LedgerEntry],
           state: StateType | None, pointers: _Pointers, *, recovered: bool, signer: ServiceSigner | None,
           witnesses: Sequence[Witness] | None) -> LedgerEntry | None:
    run_id, version = trail.run_id, trail.version
    payload: dict[str, Any] = {"run": run_id, "version": version}
    if verdict.action == "promoted":
        payload |= {"artifact_digest": verdict.artifact_digest, "production": verdict.production,
                    "recovered": True, "reason": verdict.reason}
        if trail.intent is not None and trail.intent.payload.get("replaces_run"):
            payload["replaces_run"] = trail.intent.payload["replaces_run"]
        if trail.rollback:
            payload |= _rollback_terms(trail)
        payload |= _seal_recovered(store, model, trail, verdict, entries)
        kind = LedgerKind.ROLLED_BACK if trail.rollback else LedgerKind.PROMOTED
    else:
        payload["reason"] = verdict.reason
        if recovered:
            payload |= {"recovered": True, "prefect_state": state.value if state is not None else None}
        if trail.intent is not None and not trail.rollback:  # a rollback's copy is an earlier live one: never marked
            payload["not_live"] = _mark_copy(store, model, trail, verdict.reason)
        kind = LedgerKind.FAILED
    entry = append_closing(store, model, run_id, kind, payload, after=trail.last.seq, signer=signer,
                           witnesses=witnesses)
    if entry is not None and verdict.action == "promoted":
        prefix = _prefix_of(trail, pointers.prefixes)
        try:  # a live version must not keep a not-live marker written by a run that lost to it
            if pointers.names_version(prefix, version):
                clear_not_live(store, prefix, model, version)
        except ObjectStoreError as exc:
            log.warning("could not remove the not-live marker of live %s %s: %s", model, version, exc)
    return entry


def _rollback_terms(trail: RunTrail) -> dict[str, Any]:
    """What a ``rolled-back`` entry records beyond a ``promoted`` one, from the run's request and intent."""
    requested = next((e.payload for e in trail.entries if e.kind == LedgerKind.ROLLBACK_REQUESTED.value), {})
    intent = trail.intent.payload if trail.intent is not None else {}
    return {"from_version": intent.get("from_version", requested.get("from_version")),
            "certified_until": intent.get("certified_until"), "rollback_reason": requested.get("reason", ""),
            "automatic": bool(requested.get("automatic", False)), "trigger_run": requested.get("trigger_run")}


def _mark_copy(store: Store, model: str, trail: RunTrail, reason: str) -> bool:
    """Mark what the run copied to production as not live (it did not go live); ``True`` if marked."""
    prefix = str(trail.intent.payload.get("prefix") or PRODUCTION) if trail.intent else PRODUCTION
    try:
        return mark_not_live(store, prefix, model, trail.version, trail.run_id, reason)
    except ObjectStoreError as exc:
        log.warning("could not mark the copy of %s %s (run %s) as not live: %s", model, trail.version,
                    trail.run_id, exc)
        return False


def _seal_recovered(store: Store, model: str, trail: RunTrail, verdict: Verdict,
                    entries: list[LedgerEntry]) -> dict[str, str]:
    """The run's report and bundle, written now when the run could not (an existing one is kept)."""
    prefix = run_prefix(model, trail.version, trail.run_id)
    try:
        if store.head(prefix + BUNDLE) is not None:  # the run sealed before it failed: its bundle stands
            body = store.get_bytes(prefix + BUNDLE)[0]
            return {"bundle": prefix + BUNDLE, "bundle_sha256": hashlib.sha256(body).hexdigest()}
        if store.head(prefix + REPORT_MD) is None or store.head(prefix + REPORT_HTML) is None:
            try:
                report = _recovered_report(store, model, trail, verdict)
            except ValueError as exc:  # unreadable stored evidence: the bundle still anchors what is there
                log.warning("no report for %s %s run %s: %s", model, trail.version, trail.run_id, exc)
            else:
                _put_once(store, prefix + REPORT_MD, to_markdown(report).encode(), "text/markdown")
                _put_once(store, prefix + REPORT_HTML, to_html(report).encode(), "text/html; charset=utf-8")
        return seal(store, prefix, model=model, version=trail.version, run_id=trail.run_id, ledger=entries)
    except (ObjectStoreError, ValueError) as exc:
        log.warning("could not seal the evidence of %s %s run %s: %s", model, trail.version, trail.run_id, exc)
        return {"bundle_error": f"{type(exc).__name__}: {exc}"[:500]}


def _recovered_report(store: Store, model: str, trail: RunTrail, verdict: Verdict):
    from tasks.evidence import stored_gate_results

    started = next((e.payload for e in trail.entries
                    if e.kind in (LedgerKind.STARTED.value, LedgerKind.ROLLBACK_REQUESTED.value)), {})
    record = None
    try:
        record = ApprovalRecord.model_validate_json(store.get_bytes(approvals_key(model, trail.version,
                                                                                  trail.run_id))[0])
    except ObjectNotFound:
        pass  # a policy without sign-off opens no request
    return build_report(model=model, version=trail.version, tier=str(started.get("tier", "")), run_id=trail.run_id,
                        initiator=str(started.get("initiator", "")), artifact_digest=verdict.artifact_digest,
                        results=stored_gate_results(store, model, trail.version, trail.run_id),
                        outcome="rolled-back" if trail.rollback else "promoted",
                        record=record, production=verdict.production,
                        note=f"Recorded by recovery after the run ended: {verdict.reason}.")


def _put_once(store: Store, key: str, body: bytes, content_type: str) -> None:
    try:
        store.put_if_absent(key, body, content_type=content_type)
    except ObjectExists:
        pass  # written by the run itself: its version stands


def _check_intact(model: str, entries: Sequence[LedgerEntry], witnesses: Sequence[Witness] | None) -> None:
    """Raise :class:`LedgerNotRecoverable` unless the stored chain links up and no witness saw an entry that is
    not stored as it saw it: a tail cut after ``promoting`` looks exactly like a run that could not close."""
    previous: LedgerEntry | None = None
    for entry in entries:
        expected = previous.seq + 1 if previous else 1
        if entry.seq != expected or entry.prev_hash != (previous.hash if previous else GENESIS_HASH) \
                or entry.computed_hash() != entry.hash:
            raise LedgerNotRecoverable(f"the ledger of {model} does not verify at entry {entry.seq}: recovery "
                                       "writes nothing into it (clearance audit verify names the damage)")
        previous = entry
    stored = {e.seq: e.hash for e in entries}
    last = previous.seq if previous else 0
    for witness in configured_witnesses() if witnesses is None else witnesses:
        if isinstance(witness, PrefectArtifactWitness) and not prefect_api_configured():
            continue
        reading = witness.read(model)
        if reading.error:
            log.warning("witness %s of %s not read before recovery: %s", reading.witness, model, reading.error)
        for head in reading.heads:
            if head.model == model and (head.seq > last or stored.get(head.seq) != head.hash):
                raise LedgerNotRecoverable(
                    f"witness {reading.witness} saw entry {head.seq} of {model}'s ledger, which the stored ledger "
                    f"{'lacks' if head.seq > last else 'holds with another hash'}: entries were removed or "
                    "rewritten, not left unwritten; recovery writes nothing (clearance audit verify names it)")


# --------------------------------------------------------------------------- appending a closing entry


def append_closing(store: Store, model: str, run_id: str, kind: LedgerKind, payload: dict[str, Any], *,
                   after: int = 0, signer: ServiceSigner | None = None,
                   witnesses: Sequence[Witness] | None = None) -> LedgerEntry | None:
    """Append ``kind`` for ``run_id`` unless an entry after seq ``after`` already closes the run.

    ``after``: the run's last entry as the caller read it (entries before it are not read again).
    The append is create-only at the next sequence number; when another writer takes that number,
    the entries it wrote are read and the check repeats, so two writers never both close one run.
    ``promoted`` (and ``rolled-back``) is held back only by an entry of the same kind of the run: a live
    version is recorded also after a failure entry that was wrong about it. Returns the entry, or
    ``None`` when the run was already closed.
    """
    kind = LedgerKind(kind)
    closing = {kind.value} if kind in LIVE else _CLOSING
    return append_unless(store, model, kind.value, payload, after=after,
                         settled=lambda e: e.payload.get("run") == run_id and e.kind in closing,
                         signer=signer or require_signer(purpose="sign the ledger entry"), witnesses=witnesses)


# --------------------------------------------------------------------------- pointers, states, clocks


class _Pointers:
    """The production pointers of one model, each read once."""

    def __init__(self, store: Store, model: str, prefixes: Sequence[str]) -> None:
        self.store, self.model = store, model
        self.prefixes = tuple(dict.fromkeys(prefixes)) or (PRODUCTION,)
        self._read: dict[str, ProductionPointer | None] = {}

    def at(self, prefix: str) -> ProductionPointer | None:
        if prefix not in self._read:
            self._read[prefix] = read_pointer(self.store, prefix, self.model).pointer
        return self._read[prefix]

    def for_run(self, trail: RunTrail) -> tuple[str, ProductionPointer | None]:
        """The pointer that names the run if one does (else the one its intent targets, or the first)."""
        candidates = [_prefix_of(trail, ())] if trail.intent else list(self.prefixes)
        for prefix in candidates:
            pointer = self.at(prefix)
            if pointer is not None and pointer.run_id == trail.run_id:
                return pointer_key(self.model, prefix), pointer
        return pointer_key(self.model, candidates[0]), self.at(candidates[0])

    def all(self) -> list[ProductionPointer]:
        return [p for p in (self.at(prefix) for prefix in self.prefixes) if p is not None]

    def names_version(self, prefix: str, version: str) -> bool:
        self._read.pop(prefix, None)  # read it fresh
        pointer = self.at(prefix)
        return pointer is not None and pointer.version == version


def _prefix_of(trail: RunTrail, prefixes: Sequence[str]) -> str:
    if trail.intent is not None and trail.intent.payload.get("prefix"):
        return str(trail.intent.payload["prefix"])
    return prefixes[0] if prefixes else PRODUCTION


def _replaced_by(run_id: str, entries: Sequence[LedgerEntry], pointers: _Pointers) -> str | None:
    """A run whose promotion (or rollback) replaced ``run_id``'s pointer (so ``run_id``'s move had landed), if any."""
    for entry in entries:
        if entry.kind in _LIVE and entry.payload.get("replaces_run") == run_id:
            return str(entry.payload.get("run"))
    for pointer in pointers.all():
        if pointer.previous_run_id == run_id:
            return pointer.run_id
    return None


def _now(store: Store) -> datetime:
    try:
        return store.server_time()
    except ObjectStoreError:
        return utcnow()


class PrefectRunStates:
    """A run's Prefect state type, asked of the Prefect API; ``None`` when Prefect cannot tell.

    After one failure to reach Prefect it stops asking (every further answer is ``None``), so a
    recovery pass with Prefect down costs one timeout, not one per run.
    """

    def __init__(self) -> None:
        self.unreachable = False

    def __call__(self, run_id: str) -> StateType | None:
        from prefect.exceptions import ObjectNotFound as RunNotFound

        from tasks.prefect_runs import run_state

        if self.unreachable or not prefect_api_configured():  # (without an API Prefect would start a server)
            return None
        try:
            UUID(run_id)
        except ValueError:
            return None  # not a Prefect run id
        try:
            return run_state(run_id)
        except RunNotFound:
            return None
        except Exception as exc:  # noqa: BLE001 — Prefect unreachable: its runs' states are unknown, never "ended"
            log.warning("could not ask Prefect for the state of run %s: %s", run_id, exc)
            self.unreachable = True
            return None


# --------------------------------------------------------------------------- callers outside a run


def configured_prefixes() -> tuple[str, ...]:
    """The promotion prefixes of the configured policies, and ``production`` (the default)."""
    from clearance.config import ConfigError
    from tasks.wiring import config_set

    try:
        found = {policy.promotion.prefix for policy in config_set().policies.values()}
    except (ConfigError, OSError) as exc:
        log.warning("configs not readable (%s): only the default promotion prefix is checked", exc)
        found = set()
    return tuple(sorted(found | {PRODUCTION}))


def recover_before_reading(model: str) -> list[LedgerEntry]:
    """Before a command reads ``model``'s ledger (``clearance history``, ``clearance audit verify``): close
    what runs left open, so the reader sees every live version recorded. Never raises: when recovery
    cannot write (store down, no service key) it says so on stderr and the command reads what there is."""
    from tasks.wiring import object_store

    try:
        return recover_model(object_store(), model, prefixes=configured_prefixes())
    except Exception as exc:  # noqa: BLE001 — the command that called this reports what it reads either way
        log.warning("could not close the runs %s left open in its ledger: %s: %s", model, type(exc).__name__, exc)
        return []
