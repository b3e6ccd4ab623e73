"""The exact bytes that people and the clearance service sign.

A person signs a :class:`DecisionStatement` with their SSH key (``clearance approve`` runs
``ssh-keygen -Y sign -n clearance``, as git signs commits). The service signs a decision it
recorded, as canonical JSON of every field but the proof. Both are canonical JSON (sorted keys,
no spaces, UTF-8), so any verifier rebuilds the same bytes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clearance.core.digests import canonical_json

#: Namespace of signatures people make (CLI decisions, confirmations of a start).
PERSON_NAMESPACE = "clearance"
#: Namespace of signatures the clearance service makes (attested decisions, ledger entries).
SERVICE_NAMESPACE = "clearance-service"
#: How far a person's signing time may be from the server's clock when it is recorded.
MAX_CLOCK_SKEW_SECONDS = 300


class DecisionStatement(BaseModel):
    """What a person signs: bound to the run (or, to start one, the model and version), the vote, the
    artifact digest and a time.

    ``purpose="decision"``: an approval or rejection of run ``run_id``. ``purpose="start"``: the person
    starts a promotion of ``model`` ``version`` (``run_id`` empty: the run does not exist yet) or
    confirms the start of run ``run_id`` (then they are its initiator and may not approve it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    purpose: Literal["decision", "start"] = "decision"
    run_id: str = Field("", max_length=200)
    model: str = Field("", max_length=200)
    version: str = Field("", max_length=200)
    principal: str = Field(max_length=64)
    vote: Literal["approve", "reject", "start"]
    artifact_digest: str = Field(max_length=200)
    comment: str = Field("", max_length=4000)
    signed_at: datetime
    nonce: str = Field(min_length=16, max_length=64)

    def payload(self) -> bytes:
        """The bytes the signature covers."""
        return canonical_json(self.model_dump(mode="json"))


def decision_payload(decision: dict[str, Any]) -> bytes:
    """What the service signs for a recorded decision: every field but ``proof``, canonical JSON."""
    return canonical_json({k: v for k, v in decision.items() if k != "proof"})
