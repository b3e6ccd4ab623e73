"""Moving a cleared model into production: verified copies, then a compare-and-swap pointer move."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from clearance.config.schema import ModelVersion
from clearance.core.clock import utcnow
from clearance.core.keys import pointer_key, production_key
from tasks.candidate import artifact_digest, observe_artifacts
from tasks.store import ObjectExists, PreconditionFailed, Store


class ProductionPointer(BaseModel):
    """``production/<model>/CURRENT.json``: which version is live, and on whose authority."""

    model: str
    version: str
    artifact_digest: str
    artifacts: dict[str, str] = Field(description="Production key → sha256.")
    run_id: str
    at: datetime = Field(default_factory=utcnow)
    previous_version: str | None = None
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


def move_pointer(store: Store, prefix: str, seen: PointerState, new: ProductionPointer) -> str:
    """Compare-and-swap the pointer from what the run saw at its start to ``new``; returns the new ETag."""
    try:
        return store.put_if_match(pointer_key(new.model, prefix), new.model_dump_json(indent=2).encode(), seen.etag)
    except PreconditionFailed:
        now = read_pointer(store, prefix, new.model).pointer
        who = f"version {now.version} by run {now.run_id}" if now else "unknown"
        raise PointerMovedError(
            f"production pointer of {new.model} moved since this run started (now {who}); not promoted"
        ) from None
