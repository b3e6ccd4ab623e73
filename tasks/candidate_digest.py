"""Observing a candidate's artifacts, and the one digest over them that approvers approve.

Apart from :mod:`tasks.candidate` (which wraps these in Prefect tasks) because ``clearance approve`` and
``reject`` compute the digest of the candidate as it is now, and should not pay for importing Prefect.
"""

from __future__ import annotations

from typing import Protocol

from clearance.config.schema import ModelVersion
from clearance.core.digests import sha256_json
from gates.base import ArtifactObservation
from tasks.store import ObjectInfo

SNIFF_BYTES = 64


class ArtifactSource(Protocol):
    """What observing an artifact needs: the object store (``tasks.store.Store``), or local files
    (``tasks.preflight.LocalFiles``, for ``clearance gate run``)."""

    def head(self, key: str) -> ObjectInfo | None: ...

    def sha256_of(self, key: str) -> tuple[str, int]: ...

    def read_range(self, key: str, start: int, length: int) -> bytes: ...


def observe_artifact(store: ArtifactSource, key: str) -> ArtifactObservation:
    """Read one artifact: existence, size, SHA-256 and first bytes (a failure to read is an observation too)."""
    try:
        if store.head(key) is None:
            return ArtifactObservation(key=key, exists=False, error="not found")
        digest, size = store.sha256_of(key)
        head = store.read_range(key, 0, SNIFF_BYTES)
        return ArtifactObservation(key=key, exists=True, size=size, sha256=digest, head=head)
    except Exception as exc:  # noqa: BLE001 — an unreachable store is an error check, not a crash
        return ArtifactObservation(key=key, exists=False, error=f"could not read: {type(exc).__name__}: {exc}")


def observe_artifacts(store: ArtifactSource, version: ModelVersion) -> list[ArtifactObservation]:
    """Read each pinned artifact from the store: existence, size, SHA-256 and first bytes."""
    return [observe_artifact(store, ref.key) for ref in version.artifacts]


def artifact_digest(observations: list[ArtifactObservation]) -> str:
    """One digest over every artifact (key → sha256) of a candidate: what approvers approve."""
    return sha256_json({o.key: o.sha256 for o in observations})
