"""Establishing who started a promotion: a signed start statement, or only a claimed name.

``clearance promote --key`` signs ``{purpose: start, model, version, artifact digest, time, nonce}``
with the person's SSH key and passes it to the run as ``initiator_proof``. The run accepts it when
the signature is by a key pinned to that principal, it names this model and version, it was made
within the allowed clock skew of the store's clock, and its nonce was not used by another run (a
create-only marker in the bucket). Anything else — a run started from the Prefect UI or the API
with a typed ``initiator`` — leaves the initiator ``claimed``; a tier that counts only verified
decisions then opens no sign-off that anyone could pass (see :mod:`clearance.approvals.rules`).
"""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

from clearance.approvals.trust import person_statement_problem
from clearance.config.schema import Assurance, Principals
from clearance.core.keys import start_nonce_key
from clearance.identity.statements import DecisionStatement
from tasks.caching import per_run_key
from tasks.evidence import store
from tasks.prefect_tasks import task
from tasks.store import ObjectExists


class Initiator(BaseModel):
    """Who started the run, how surely, and why a proof was not accepted (if one was given)."""

    principal: str
    assurance: Assurance
    problem: str | None = None
    artifact_digest: str | None = Field(None, description="The candidate digest the person signed to start.")

    def for_candidate(self, digest: str) -> Initiator:
        """This initiator, downgraded to claimed if they signed to start another artifact than ``digest``."""
        if self.assurance is not Assurance.VERIFIED or self.artifact_digest == digest:
            return self
        return self.model_copy(update={"assurance": Assurance.CLAIMED,
                                       "problem": "signed to start another artifact digest than the candidate's"})


def check_start(proof: dict[str, str] | None, claimed: str | None, *, model: str, version: str,
                run_id: str, principals: Principals) -> Initiator:
    """The initiator of ``run_id`` from its start proof, else the claimed name."""
    fallback = Initiator(principal=claimed or "unknown", assurance=Assurance.CLAIMED)
    if not proof:
        return fallback
    try:
        statement = DecisionStatement.model_validate_json(proof.get("statement", ""))
        signature = proof["signature"]
    except (ValueError, KeyError, TypeError):
        return fallback.model_copy(update={"problem": "the start proof is unreadable"})
    problem = person_statement_problem(statement, signature, principals, run_id="", now=store().server_time())
    if problem is None and statement.purpose != "start":
        problem = "the signed statement is not a start"
    if problem is None and (statement.model, statement.version) != (model, version):
        problem = f"signed to start {statement.model} {statement.version}, not {model} {version}"
    if problem is None:
        problem = _use_nonce(model, statement.nonce, run_id)
    if problem is not None:
        return fallback.model_copy(update={"problem": problem})
    return Initiator(principal=statement.principal, assurance=Assurance.VERIFIED,
                     artifact_digest=statement.artifact_digest)


def _use_nonce(model: str, nonce: str, run_id: str) -> str | None:
    key = start_nonce_key(model, nonce)
    try:
        store().put_if_absent(key, json.dumps({"run": run_id}).encode(), content_type="application/json")
    except ObjectExists:
        if store().get_json(key).get("run") != run_id:  # a resumed run meets its own marker again
            return "this start proof already started another run"
    return None


@task(name="establish-initiator", persist_result=True, cache_key_fn=per_run_key)
def establish_initiator(proof: dict[str, str] | None, claimed: str | None, model: str, version: str,
                        run_id: str, principals: Principals) -> Initiator:
    """Prefect task around :func:`check_start` (cached per run: a resumed run keeps its initiator)."""
    return check_start(proof, claimed, model=model, version=version, run_id=run_id, principals=principals)
