"""Witnesses of the ledger head, outside the evidence bucket: publishing heads and reading them back.

After every append, :func:`publish_head` hands the new head (model, seq, hash and the entry's
service signature) to each configured witness:

- :class:`BucketWitness`: a second bucket (``CLEARANCE_WITNESS_BUCKET``) reached with its own
  credentials (``CLEARANCE_WITNESS_S3_*``), which the evidence bucket's writers do not hold. One
  create-only object per head (``ledger-heads/<model>/<seq>.json``), so it keeps every head it was
  given and the highest is the latest; nothing is ever overwritten.
- :class:`PrefectArtifactWitness`: inside a Prefect run, a Markdown artifact with key
  ``ledger-head-<model>``; Prefect keeps every version, readable later through its API. Created beside the
  run's work (tasks/run_artifacts.py): the run does not wait for it, and its flow's end does.

The ledger append is the truth: a witness that cannot be written is logged and never fails the
append; the next append catches the bucket witness up on the heads it missed. ``clearance audit
verify`` reads the heads back (:func:`read_witnesses`) and compares them with the stored chain
(:func:`clearance.ledger.check_heads`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Protocol

from pydantic import ValidationError

from clearance.core.digests import canonical_json
from clearance.core.keys import ledger_head_artifact_key, ledger_key, witness_head_key, witness_prefix
from clearance.ledger import LedgerEntry, WitnessHead, WitnessReading
from clearance.settings import Settings, get_settings
from tasks.store import ObjectExists, ObjectNotFound, ObjectStoreError, Store

#: How many heads a bucket witness that missed some is caught up on, at most, by the next append.
CATCH_UP = 20
#: Artifacts read per request when reading a model's heads back from Prefect.
_ARTIFACT_PAGE = 200
_JSON_BLOCK = re.compile(r"```json\n(.*?)\n```", re.S)


class WitnessConflict(RuntimeError):
    """The witness already holds another head for the same entry: the ledger was rewritten there."""


class Witness(Protocol):
    """Somewhere outside the evidence bucket that keeps ledger heads."""

    @property
    def name(self) -> str:
        """How problems name this witness (no credentials)."""
        ...

    def publish(self, model: str, entry: LedgerEntry, ledger: Store) -> None:
        """Record the head that ``entry`` makes (``ledger``: the evidence store, to catch up from)."""
        ...

    def read(self, model: str) -> WitnessReading:
        """Every head this witness holds for ``model``."""
        ...


def _logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The run's logger inside a Prefect run (shown in the UI), else this module's."""
    from prefect.context import FlowRunContext, TaskRunContext
    from prefect.logging import get_run_logger

    if FlowRunContext.get() or TaskRunContext.get():
        return get_run_logger()
    return logging.getLogger(__name__)


# --------------------------------------------------------------------------- the witness bucket


class BucketWitness:
    """A bucket apart from the evidence bucket, written with its own credentials, create-only."""

    def __init__(self, store: Store, name: str | None = None) -> None:
        self.store = store
        self._name = name or f"s3://{store.bucket}"

    @property
    def name(self) -> str:
        return self._name

    def publish(self, model: str, entry: LedgerEntry, ledger: Store) -> None:
        known = max((int(k.rsplit("/", 1)[1].split(".")[0]) for k in self.store.list_keys(witness_prefix(model))
                     if k.endswith(".json") and k.rsplit("/", 1)[1].split(".")[0].isdigit()), default=0)
        for seq in range(max(known + 1, entry.seq - CATCH_UP), entry.seq):  # heads an earlier append missed
            try:
                missed = LedgerEntry.model_validate(ledger.get_json(ledger_key(model, seq)))
            except (ObjectNotFound, ValueError):
                continue  # the audit names a missing or unreadable entry; nothing to witness
            if missed.signature:
                self._put(WitnessHead.of(model, missed))
        self._put(WitnessHead.of(model, entry))

    def _put(self, head: WitnessHead) -> None:
        body = canonical_json(head.model_dump(mode="json"))
        key = witness_head_key(head.model, head.seq)
        try:
            self.store.put_if_absent(key, body, content_type="application/json")
        except ObjectExists:
            existing = self.store.get_bytes(key)[0]
            if existing != body:
                raise WitnessConflict(f"{self.name}: {key} already holds another head for entry {head.seq} "
                                      f"of {head.model}") from None

    def read(self, model: str) -> WitnessReading:
        heads: list[WitnessHead] = []
        try:
            for key in self.store.list_keys(witness_prefix(model)):
                try:
                    heads.append(WitnessHead.model_validate(self.store.get_json(key)))
                except (ValueError, ValidationError):
                    return WitnessReading(witness=self.name, heads=heads, error=f"{key} is unreadable")
        except ObjectStoreError as exc:
            return WitnessReading(witness=self.name, error=str(exc).splitlines()[0])
        return WitnessReading(witness=self.name, heads=heads)


@lru_cache(maxsize=4)
def _bucket_store(bucket: str, endpoint_url: str | None, region: str, key_id: str | None,
                  secret: str | None) -> Store:
    import boto3
    from botocore.config import Config

    from tasks.object_store import ObjectStore

    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3, "mode": "standard"},
                      connect_timeout=5, read_timeout=30))
    return ObjectStore(client, bucket)


def witness_store(settings: Settings) -> Store | None:
    """The witness bucket with the witness credentials (``None`` when no witness bucket is set)."""
    if not settings.witness_bucket:
        return None
    key_id, secret = settings.witness_s3_access_key_id, settings.witness_s3_secret_access_key
    return _bucket_store(settings.witness_bucket, settings.witness_s3_endpoint_url or settings.s3_endpoint_url,
                         settings.s3_region, key_id.get_secret_value() if key_id else None,
                         secret.get_secret_value() if secret else None)


# --------------------------------------------------------------------------- Prefect artifacts


def head_markdown(head: WitnessHead) -> str:
    """The artifact's Markdown: a line for people, the head as JSON for ``clearance audit verify``."""
    return (f"Ledger head of **{head.model}**: entry {head.seq}, hash `{head.hash}`, signed by the clearance "
            f"service.\n\n```json\n{json.dumps(head.model_dump(mode='json'), sort_keys=True)}\n```\n")


def head_from_markdown(markdown: Any) -> WitnessHead | None:
    """The head in an artifact written by :func:`head_markdown` (``None``: not one)."""
    match = _JSON_BLOCK.search(markdown) if isinstance(markdown, str) else None
    if match is None:
        return None
    try:
        return WitnessHead.model_validate_json(match.group(1))
    except ValidationError:
        return None


class PrefectArtifactWitness:
    """The Prefect server: an artifact ``ledger-head-<model>`` per append made inside a run."""

    name = "prefect-artifacts"

    def publish(self, model: str, entry: LedgerEntry, ledger: Store) -> None:
        # Outside a run nothing is published (an artifact needs a run to belong to); the bucket witness still
        # gets the head.
        from tasks.run_artifacts import publish_markdown

        head = WitnessHead.of(model, entry)
        publish_markdown(ledger_head_artifact_key(model), head_markdown(head),
                         description=f"ledger head of {model}: entry {entry.seq}")

    def read(self, model: str) -> WitnessReading:
        from prefect import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

        heads: list[WitnessHead] = []
        found = ArtifactFilter(key=ArtifactFilterKey(any_=[ledger_head_artifact_key(model)]))
        try:
            with get_client(sync_client=True) as client:
                offset = 0
                while True:
                    page = client.read_artifacts(artifact_filter=found, limit=_ARTIFACT_PAGE, offset=offset)
                    heads += [h for a in page if (h := head_from_markdown(a.data)) is not None and h.model == model]
                    if len(page) < _ARTIFACT_PAGE:
                        break
                    offset += len(page)
        except Exception as exc:  # noqa: BLE001 — any failure means this witness could not be read
            return WitnessReading(witness=self.name, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        return WitnessReading(witness=self.name, heads=sorted(heads, key=lambda h: h.seq))


# --------------------------------------------------------------------------- publishing and reading


def configured_witnesses(settings: Settings | None = None) -> list[Witness]:
    """The witnesses appends publish to: the Prefect artifact (inside runs) and the witness bucket, if set."""
    settings = settings or get_settings()
    witnesses: list[Witness] = [PrefectArtifactWitness()]
    store = witness_store(settings)
    if store is not None:
        witnesses.append(BucketWitness(store))
    return witnesses


def publish_head(ledger: Store, model: str, entry: LedgerEntry, witnesses: Sequence[Witness]) -> list[str]:
    """Give every witness the head ``entry`` makes; returns the witnesses that failed (each logged).

    Never raises: the entry is already in the ledger, which is the truth; a witness that missed this
    head is caught up by the next append.
    """
    failed = []
    for witness in witnesses:
        try:
            witness.publish(model, entry, ledger)
        except Exception as exc:  # noqa: BLE001 — a witness outage must not break the ledger
            failed.append(witness.name)
            _logger().warning("witness %s did not record entry %s of the %s ledger (%s: %s); the next append "
                              "retries", witness.name, entry.seq, model, type(exc).__name__,
                              str(exc).splitlines()[0][:300] if str(exc) else "")
    return failed


def prefect_api_configured() -> bool:
    """Whether a Prefect API is configured (otherwise Prefect would start a throw-away local server)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def read_witnesses(model: str, settings: Settings | None = None) -> tuple[list[WitnessReading], list[str]]:
    """Every readable witness's heads for ``model``, and notes on the witnesses that were not consulted."""
    settings = settings or get_settings()
    readings: list[WitnessReading] = []
    notes: list[str] = []
    store = witness_store(settings)
    if store is not None:
        readings.append(BucketWitness(store).read(model))
    else:
        notes.append("no witness bucket is configured (CLEARANCE_WITNESS_BUCKET)")
    if prefect_api_configured():
        readings.append(PrefectArtifactWitness().read(model))
    else:
        notes.append("no Prefect API is configured (PREFECT_API_URL): its ledger-head artifacts were not read")
    return readings, notes
