"""The human-readable report of one promotion run (Markdown: Prefect artifact and evidence file)."""

from __future__ import annotations

from clearance.approvals import ApprovalRecord, ApprovalRequest, tally
from gates.base import GateResult, utcnow


def render_report(*, model: str, version: str, tier: str, run_id: str, initiator: str, artifact_digest: str,
                  results: list[GateResult], outcome: str, record: ApprovalRecord | None = None,
                  eligible: dict[str, list[str]] | None = None, request: ApprovalRequest | None = None,
                  production: dict[str, str] | None = None, note: str = "") -> str:
    """Markdown: headline, gate summary, each gate's checks, sign-off and where the model went."""
    lines = [
        f"# {model} {version}: {outcome.upper()}",
        "",
        f"- tier: **{tier}** · run: `{run_id}` · initiator: `{initiator}`",
        f"- artifact digest: `{artifact_digest}`",
    ]
    if note:
        lines += ["", note]
    lines += ["", "## Gates", "", "| gate | mode | status | problems |", "|---|---|---|---|"]
    for result in results:
        mode = "blocking" if result.blocking else "advisory"
        problems = ", ".join(c.id for c in result.problems()) or "—"
        lines.append(f"| {result.gate_id} | {mode} | {result.status.value} | {problems} |")
    for result in results:
        lines += ["", result.to_markdown()]
    request = record.request if record else request
    if request is not None:
        lines += ["", "## Sign-off", ""]
        roles = ", ".join(f"{n} × {r}" for r, n in sorted(request.required_roles.items())) or "none"
        lines.append(f"- required: {roles}; excluded: {', '.join(request.excluded_principals)}")
        lines.append(f"- deadline: {request.deadline.isoformat()} (then: {request.timeout_outcome.value})")
        if eligible is not None:
            for role, people in sorted(eligible.items()):
                lines.append(f"- eligible {role}: {', '.join(people) or 'NOBODY — quorum impossible'}")
    if record is not None:
        state = tally(record, utcnow())
        lines.append(f"- outcome: **{record.outcome.value}**"
                     + (f" by {', '.join(record.closed_by)}" if record.closed_by else ""))
        for d in record.decisions:
            lines.append(f"  - {d.vote.value} by `{d.principal}` via {d.channel.value} at {d.at.isoformat()}"
                         + (f": {d.comment}" if d.comment else ""))
        for r in record.refusals:
            lines.append(f"  - refused `{r.identity}` via {r.channel.value}: {r.message}")
        if record.outcome.value == "pending":
            lines.append(f"- still needed: {state.missing}")
    if production:
        lines += ["", "## Production", ""] + [f"- `{key}` sha256 `{digest}`" for key, digest in production.items()]
    return "\n".join(lines) + "\n"
