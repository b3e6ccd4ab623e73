"""Rolling back: the certified versions whose production copies still verify, and the pointer moved back to one.

What may be rolled back to, and on whose authority, is decided in ``clearance/ledger/rollback.py``
(pure); this module reads the store for it and carries the decision out. The copies a rollback makes
live again are the ones a promotion verified and the ledger recorded (key → sha256): each is checked
again right before the compare-and-swap of ``CURRENT.json``, so the pointer never names a copy that
changed or went missing after the sign-off.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from prefect.cache_policies import NO_CACHE

from clearance.config import load_config_dir
from clearance.config.schema import Assurance
from clearance.identity.statements import DecisionStatement
from clearance.ledger import LedgerEntry
from clearance.ledger.rollback import Target, copy_problem
from clearance.settings import get_settings
from tasks.caching import per_run_key
from tasks.candidate import PromotionContext, UnknownVersionError, config_digest
from tasks.initiator import Initiator
from tasks.ledger import read_ledger
from tasks.prefect_tasks import task
from tasks.promotion import PointerState, ProductionPointer, clear_not_live, move_pointer, read_pointer
from tasks.store import ObjectNotFound, ObjectStoreError, Store
from tasks.wiring import object_store

__all__ = ["CopiesChangedError", "Target", "move_back", "rollback_targets", "verify_copies"]

#: The ``comment`` of a start statement signed for a rollback (``clearance rollback --key``): a statement
#: signed to start a promotion of the same version does not start a rollback.
ROLLBACK_START = "rollback"


class CopiesChangedError(RuntimeError):
    """A target's production copies no longer verify (checked again just before the pointer moves)."""


def verify_copies(store: Store, target: Target) -> list[str]:
    """Why ``target``'s production copies do not verify (empty: every key exists with its certified sha256)."""
    if not target.production:
        return [f"the ledger records no production copies of {target.version}"]
    problems = []
    for key, expected in sorted(target.production.items()):
        try:
            found: str | None = store.sha256_of(key)[0]
        except ObjectNotFound:
            found = None
        problem = copy_problem(key, expected, found)
        if problem:
            problems.append(problem)
    return problems


def rollback_targets(store: Store, prefix: str, model: str, entries: Sequence[LedgerEntry] | None = None,
                     live_version: str | None = None) -> list[Target]:
    """The versions ``model`` can be rolled back to now, newest first: certified (a live ledger entry, not
    revoked since), not the live one, and with production copies that still verify.

    ``entries``: the model's ledger (read when not given); ``live_version``: the version ``CURRENT.json``
    names (read when not given).
    """
    from clearance.ledger.rollback import certified_targets

    entries = read_ledger(store, model) if entries is None else entries
    if live_version is None:
        pointer = read_pointer(store, prefix, model).pointer
        live_version = pointer.version if pointer else None
    return [t for t in certified_targets(entries, live_version) if not verify_copies(store, t)]


def move_back(store: Store, prefix: str, seen: PointerState, target: Target, run_id: str, ledger_seq: int,
              ledger_hash: str) -> str:
    """Check the target's copies once more, then compare-and-swap the pointer to them; returns the new ETag.

    The pointer names the rollback run (``run_id``) and the version it replaced; a not-live marker
    left on the target version (a later promotion of it that lost its move) is removed: it is live again.
    Raises :class:`CopiesChangedError` (nothing moved) or what :func:`tasks.promotion.move_pointer` raises.
    """
    if seen.pointer is None:
        raise RuntimeError("nothing is live: there is no pointer to move back")
    problems = verify_copies(store, target)
    if problems:
        raise CopiesChangedError(f"the production copy of {target.version} no longer verifies: "
                                 + "; ".join(problems) + "; not rolled back")
    etag = move_pointer(store, prefix, seen, ProductionPointer(
        model=seen.pointer.model, version=target.version, artifact_digest=target.artifact_digest,
        artifacts=dict(target.production), run_id=run_id, previous_version=seen.pointer.version,
        previous_run_id=seen.pointer.run_id, ledger_seq=ledger_seq, ledger_hash=ledger_hash))
    try:
        clear_not_live(store, prefix, seen.pointer.model, target.version)
    except ObjectStoreError:
        pass  # recovery removes a marker left on a live version
    return etag


def for_rollback(starter: Initiator, proof: dict[str, str] | None, target: Target) -> Initiator:
    """``starter`` as the initiator of a rollback to ``target``: verified only when the person signed a start
    statement *for a rollback* (``comment`` :data:`ROLLBACK_START`) of this version and its artifact digest."""
    if starter.assurance is not Assurance.VERIFIED or not proof:
        return starter
    try:
        comment = DecisionStatement.model_validate_json(proof.get("statement", "")).comment
    except ValueError:
        comment = ""
    if comment != ROLLBACK_START:
        return starter.model_copy(update={"assurance": Assurance.CLAIMED,
                                          "problem": "the signed statement starts a promotion, not a rollback"})
    return starter.for_candidate(target.artifact_digest)


# --------------------------------------------------------------------------- Prefect tasks


@task(name="load-rollback-configs", persist_result=True, cache_key_fn=per_run_key)
def load_rollback_context(model: str, version: str | None = None, config_dir: str | None = None
                          ) -> PromotionContext:
    """The model's manifest, effective policy and principals (the policy is per model, not per version).

    ``version`` need not be in the manifest any more: a rollback target comes from the ledger, and its
    production copies, not its candidate, go live again.
    """
    root = Path(config_dir) if config_dir else get_settings().config_dir
    configs = load_config_dir(root)
    if model not in configs.manifests:
        known = ", ".join(sorted(configs.manifests)) or "none"
        raise UnknownVersionError(f"no model {model!r} in {root}/models (known: {known})")
    return PromotionContext(model=model, version=version or "", manifest=configs.manifests[model],
                            policy=configs.effective_policy(model), principals=configs.principals,
                            config_digest=config_digest(root))


@task(name="read-ledger", persist_result=True, cache_key_fn=per_run_key)
def read_ledger_task(model: str) -> list[LedgerEntry]:
    """The ledger as this run first read it: a resumed run chooses the same target from it."""
    return read_ledger(object_store(), model)


@task(name="verify-production-copies", persist_result=True, cache_key_fn=per_run_key)
def verify_targets(targets: list[Target], first_good: bool) -> dict[str, list[str]]:
    """Version → why its production copies do not verify (empty list: they do); with ``first_good``, stops at
    the first version whose copies verify (the newer ones are the ones reported as not verifying)."""
    store = object_store()
    found: dict[str, list[str]] = {}
    for target in targets:
        found[target.version] = verify_copies(store, target)
        if first_good and not found[target.version]:
            break
    return found


@task(name="move-pointer-back", persist_result=True, cache_key_fn=per_run_key)
def move_back_task(prefix: str, seen: PointerState, target: Target, run_id: str, ledger_seq: int,
                   ledger_hash: str) -> str:
    """Prefect task around :func:`move_back` on the configured store."""
    return move_back(object_store(), prefix, seen, target, run_id, ledger_seq, ledger_hash)


@task(name="is-subflow-of", cache_policy=NO_CACHE)
def is_subflow_of(parent_task_run_id: str | None, trigger_run: str | None) -> bool:
    """Whether this run was started as a subflow of ``trigger_run`` (a re-certification run calling it)."""
    if not parent_task_run_id or not trigger_run:
        return False
    from uuid import UUID

    from prefect import get_client

    try:
        with get_client(sync_client=True) as client:
            task_run = client.read_task_run(UUID(parent_task_run_id))
    except Exception:  # noqa: BLE001 — unknown is "not shown": the ledger may still show the failed run
        return False
    return str(task_run.flow_run_id) == trigger_run
