"""What the Prefect UI shows above the sign-off form of a waiting run: the request, the tally so far (who
counted, who is still needed), and the last refusal with its reason — so a person who reopens the form after
a decision sees what their submission did, not the same "needed" text as before it."""

from __future__ import annotations

from datetime import datetime

from clearance.approvals import ApprovalRecord
from clearance.config.schema import Assurance
from clearance.render.document import Block, Code, Heading, Moment, Para
from clearance.render.markdown import render
from clearance.render.tally import sign_off, tally_blocks


def form_blocks(record: ApprovalRecord, now: datetime) -> list[Block]:
    """The request, its tally, the last refused submission and how to decide here."""
    request = record.request
    what = "Rollback to" if request.action == "rollback" else "Sign-off:"
    blocks: list[Block] = [Heading(2, [f"{what} {request.model} {request.version} ({request.tier} tier)"]),
                           Para(["Artifact digest ", Code(request.artifact_digest), "."])]
    blocks += tally_blocks(sign_off(record, now), level=3)
    if record.refusals:
        last = record.refusals[-1]
        who = last.principal or last.identity
        blocks.append(Para(["Last refused: ", f"{last.vote.value} by ", Code(who), f" via {last.channel.value} at ",
                            Moment(last.at), f" — {last.reason.value}: {last.message}"]))
    blocks.append(Para(["Enter your principal id and your decision; leave both empty to re-check the record."]))
    if request.assurance is Assurance.VERIFIED:
        blocks.append(Para(["This tier counts only verified decisions: a typed principal id is not one, so decide "
                            "with a signed CLI decision (clearance approve RUN --key) or a pinned channel."]))
    else:
        blocks.append(Para(["The principal id you type is recorded as a claimed identity."]))
    return blocks


def form_markdown(record: ApprovalRecord, now: datetime) -> str:
    """:func:`form_blocks` as Markdown (every value from the record escaped)."""
    return render(form_blocks(record, now))
