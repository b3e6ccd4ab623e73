"""Moving a cleared model into production: verified copies, then a compare-and-swap pointer move.

The flow records its intent (ledger ``promoting``) before :func:`promote_to_production` touches
``production/``; a copy whose pointer move lost, or that was never followed by one, is marked with
``NOT-LIVE.json`` next to it (:func:`mark_not_live`), and a successful move of the version removes
that marker. Only ``CURRENT.json`` says what is live.
"""

from __future__ import annotations

import logging
import posixpath
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from clearance.config.schema import ModelVersion
from clearance.core.clock import utcnow
from clearance.core.keys import NOT_LIVE, not_live_key, pointer_key, production_key
from tasks.candidate import artifact_digest, observe_artifacts
from tasks.store import ObjectExists, ObjectStoreError, PreconditionFailed, Store, update_json_state

log = logging.getLogger("clearance.promotion")


class ProductionPointer(BaseModel):
    """``production/<model>/CURRENT.json``: which version is live, and on whose authority."""

    model: str
    version: str
    artifact_digest: str
    artifacts: dict[str, str] = Field(description="Production key → sha256.")
    run_id: str
    at: datetime = Field(default_factory=utcnow)
    previous_version: str | None = None
    previous_run_id: str | None = Field(None, description="The run whose pointer this move replaced.")
    ledger_seq: int | None = Field(None, description="Ledger entry that authorised this move.")
    ledger_hash: str | None = None


class PointerState(BaseModel):
    """The pointer as a run first saw it, so the final move can be compare-and-swap against it."""

    etag: str | None
    pointer: ProductionPointer | None


class ArtifactChangedError(RuntimeError):
    """The candidate no longer matches the digest the approvers approved."""


class PointerMovedError(RuntimeError):
    """Another promotion moved the production pointer since this run read it."""


class PromotionOutcomeUnknown(RuntimeError):
    """The pointer move failed in a way that may have landed (the store did not answer), and the pointer
    could not be read back: whether the version is live is unknown. Nothing may be recorded as failed;
    recovery (tasks/recovery.py) reads the pointer once the store answers and closes the run."""


def read_pointer(store: Store, prefix: str, model: str) -> PointerState:
    """The current pointer and its ETag (both ``None`` before the first promotion)."""
    key = pointer_key(model, prefix)
    if store.head(key) is None:
        return PointerState(etag=None, pointer=None)
    body, etag = store.get_bytes(key)
    return PointerState(etag=etag, pointer=ProductionPointer.model_validate_json(body))


def recheck_candidate(store: Store, version: ModelVersion, approved_digest: str) -> None:
    """Re-read the candidate right before copying; a swapped artifact aborts the promotion."""
    now_digest = artifact_digest(observe_artifacts(store, version))
    if now_digest != approved_digest:
        raise ArtifactChangedError(
            f"candidate artifacts changed after approval (approved {approved_digest[:12]}…, now {now_digest[:12]}…); "
            "promotion aborted, nothing copied"
        )


def copy_to_production(store: Store, prefix: str, model: str, version_name: str,
                       version: ModelVersion) -> dict[str, str]:
    """Copy each artifact to its immutable production key, verifying the checksum.

    An existing production object with the same digest is accepted (a retried run);
    one with another digest is never overwritten.
    """
    copied: dict[str, str] = {}
    for ref in version.artifacts:
        if posixpath.basename(ref.key) == NOT_LIVE:
            raise ValueError(f"artifact {ref.key}: {NOT_LIVE} is the name of clearance's not-live marker")
        target = production_key(model, version_name, ref.key, prefix)
        try:
            store.copy_verified(ref.key, target, ref.sha256)
        except ObjectExists:
            existing, _ = store.sha256_of(target)
            if existing != ref.sha256:
                raise ObjectExists(
                    f"{target} already exists with other content; production is never overwritten") from None
        copied[target] = ref.sha256
    return copied


def planned_production(prefix: str, model: str, version_name: str, version: ModelVersion) -> dict[str, str]:
    """Where each artifact of ``version`` goes in production → its sha256 (what the intent entry records)."""
    return {production_key(model, version_name, ref.key, prefix): ref.sha256 for ref in version.artifacts}


def move_pointer(store: Store, prefix: str, seen: PointerState, new: ProductionPointer) -> str:
    """Compare-and-swap the pointer from what the run saw at its start to ``new``; returns the new ETag.

    A move whose answer was lost (the write landed, the retry then found the pointer changed) is
    recognised by reading the pointer back: when it is this run's, the move succeeded. A store that
    does not answer at all raises :class:`PromotionOutcomeUnknown` unless the pointer can be read back.
    """
    key = pointer_key(new.model, prefix)
    try:
        return store.put_if_match(key, new.model_dump_json(indent=2).encode(), seen.etag)
    except PreconditionFailed:
        now = read_pointer(store, prefix, new.model)
        if _is_move_of(now.pointer, new):
            return now.etag or ""
        who = f"version {now.pointer.version} by run {now.pointer.run_id}" if now.pointer else "unknown"
        raise PointerMovedError(
            f"production pointer of {new.model} moved since this run started (now {who}); not promoted"
        ) from None
    except ObjectStoreError as exc:
        try:
            now = read_pointer(store, prefix, new.model)
        except ObjectStoreError:
            raise PromotionOutcomeUnknown(
                f"moving {key} failed ({exc}) and the pointer cannot be read back: whether {new.model} "
                f"{new.version} is live is unknown until the store answers") from exc
        if _is_move_of(now.pointer, new):
            return now.etag or ""
        raise


def _is_move_of(pointer: ProductionPointer | None, new: ProductionPointer) -> bool:
    return pointer is not None and (pointer.run_id, pointer.version) == (new.run_id, new.version)


def promote_to_production(store: Store, prefix: str, model: str, version_name: str, version: ModelVersion,
                          approved_digest: str, seen: PointerState, run_id: str, ledger_seq: int,
                          ledger_hash: str) -> dict[str, str]:
    """Re-check the digest, copy with checksums, then move the pointer (compare-and-swap); returns the copies.

    Every artifact is copied and verified (:func:`copy_to_production`) before the pointer can move,
    so the pointer never names an incomplete copy. When the step fails after copying and the
    version is not live, the copy is marked ``NOT-LIVE.json`` (best effort: when the store is down,
    recovery marks it later). :class:`PromotionOutcomeUnknown` propagates unmarked.
    """
    recheck_candidate(store, version, approved_digest)
    try:
        copied = copy_to_production(store, prefix, model, version_name, version)
        move_pointer(store, prefix, seen, ProductionPointer(
            model=model, version=version_name, artifact_digest=approved_digest, artifacts=copied, run_id=run_id,
            previous_version=seen.pointer.version if seen.pointer else None,
            previous_run_id=seen.pointer.run_id if seen.pointer else None,
            ledger_seq=ledger_seq, ledger_hash=ledger_hash))
    except PromotionOutcomeUnknown:
        raise
    except Exception as exc:
        try:
            mark_not_live(store, prefix, model, version_name, run_id, f"{type(exc).__name__}: {exc}")
        except ObjectStoreError as marking:
            log.warning("could not mark the copy of %s %s as not live (recovery will): %s", model, version_name,
                        marking)
        raise
    try:  # a marker written meanwhile by a run that lost to this one must not stay on a live version
        clear_not_live(store, prefix, model, version_name)
    except ObjectStoreError as exc:
        log.warning("%s %s is live, but its not-live marker could not be removed (recovery will): %s", model,
                    version_name, exc)
    return copied


def is_live(store: Store, prefix: str, model: str, run_id: str) -> bool:
    """Whether the production pointer names ``run_id`` (raises :class:`ObjectStoreError` when it cannot be read)."""
    pointer = read_pointer(store, prefix, model).pointer
    return pointer is not None and pointer.run_id == run_id


# --------------------------------------------------------------------------- copies that did not go live


def has_production_copy(store: Store, prefix: str, model: str, version_name: str) -> bool:
    """Whether anything of ``version_name`` other than the marker is under ``<prefix>/<model>/<version>/``."""
    folder = production_key(model, version_name, "", prefix)
    return any(posixpath.basename(key) != NOT_LIVE for key in store.list_keys(folder))


def mark_not_live(store: Store, prefix: str, model: str, version_name: str, run_id: str, reason: str) -> bool:
    """Mark the production copy of ``version_name`` as not live for ``run_id``; ``True`` if the marker names it.

    Nothing is written when there is no copy, or when the pointer names this version (a live copy is
    never marked). After writing, the pointer is read again: a promotion of the version that moved
    it meanwhile removes its marker after its move, and if this reading sees that move the marker is
    removed here, so a marker never outlives a move of its version.
    """
    if not has_production_copy(store, prefix, model, version_name) or _names_version(store, prefix, model,
                                                                                     version_name):
        return False
    key = not_live_key(model, version_name, prefix)

    def add(state: dict[str, Any]) -> None:
        state.update(model=model, version=version_name, live=False,
                     note=f"not live: only {pointer_key(model, prefix)} says which version is; these runs copied "
                          "this version but their pointer move lost or never happened")
        state.setdefault("runs", {})[run_id] = {"reason": reason[:500], "at": utcnow().isoformat()}

    update_json_state(store, key, add)
    if _names_version(store, prefix, model, version_name):
        store.delete(key)
        return False
    return True


def clear_not_live(store: Store, prefix: str, model: str, version_name: str) -> None:
    """Remove the not-live marker of ``version_name`` (a promotion of it is moving, or moved, the pointer)."""
    key = not_live_key(model, version_name, prefix)
    if store.head(key) is not None:
        store.delete(key)


def not_live_runs(store: Store, prefix: str, model: str, version_name: str) -> dict[str, Any]:
    """The runs the marker of ``version_name`` names (run id → reason and time); empty when unmarked."""
    key = not_live_key(model, version_name, prefix)
    if store.head(key) is None:
        return {}
    runs = store.get_json(key).get("runs", {})
    return runs if isinstance(runs, dict) else {}


def _names_version(store: Store, prefix: str, model: str, version_name: str) -> bool:
    pointer = read_pointer(store, prefix, model).pointer
    return pointer is not None and pointer.version == version_name
