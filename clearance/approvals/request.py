"""Turning a policy into an approval request, and naming who could satisfy it."""

from __future__ import annotations

from datetime import datetime

from clearance.approvals.models import ApprovalRequest
from clearance.config.schema import Assurance, ModelManifest, Policy, Principals


def build_request(*, run_id: str, manifest: ModelManifest, version: str, policy: Policy, initiator: str,
                  artifact_digest: str, evidence_digest: str, opened_at: datetime,
                  initiator_assurance: Assurance = Assurance.CLAIMED) -> ApprovalRequest:
    """The sign-off the policy asks for; the initiator and authors are excluded from deciding."""
    excluded = sorted({initiator, *manifest.authors})
    return ApprovalRequest(
        run_id=run_id, model=manifest.name, version=version, tier=policy.tier,
        artifact_digest=artifact_digest, evidence_digest=evidence_digest,
        required_roles={role: quorum.min for role, quorum in policy.approvals.roles.items()},
        excluded_principals=excluded, initiator=initiator, channels=list(policy.approvals.channels),
        opened_at=opened_at, deadline=opened_at + policy.approvals.timeout,
        timeout_outcome=policy.approvals.timeout_outcome, assurance=policy.approvals.assurance,
        initiator_assurance=initiator_assurance, reminders=policy.approvals.reminders,
    )


def eligible_approvers(request: ApprovalRequest, principals: Principals) -> dict[str, list[str]]:
    """Role → principals who may approve it (holding the role and not excluded)."""
    return {
        role: sorted(p.id for p in principals.principals
                     if role in p.roles and p.id not in request.excluded_principals)
        for role in request.required_roles
    }
