"""Writing evidence: the ledger, per-run evidence files and Prefect artifacts.

Everything a run writes for itself goes under ``evidence/<model>/<version>/<run>/``;
the ledger (``evidence/<model>/ledger/``) only takes entries from real (not dry) runs.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.cache_policies import NO_CACHE

from clearance.core.digests import canonical_json
from clearance.core.keys import GATE_RESULT_PREFIX, REPORT_HTML, REPORT_MD, gate_result_name, run_prefix
from clearance.core.ledger_kinds import TERMINAL, LedgerKind
from clearance.ledger import LedgerEntry
from clearance.render.gate import gate_blocks
from clearance.render.html import to_html
from clearance.render.markdown import render as render_markdown
from clearance.render.markdown import to_markdown
from clearance.render.report import Report
from clearance.settings import get_settings
from gates.base import GateResult
from tasks.caching import per_run_key
from tasks.ledger import append_entry
from tasks.prefect_tasks import task
from tasks.run_artifacts import publish_link, publish_markdown
from tasks.store import ObjectExists, Store
from tasks.wiring import object_store


def stored_gate_results(store: Store, model: str, version: str, run_id: str) -> list[GateResult]:
    """The gate results a run has stored so far, in gate-id order."""
    prefix = run_prefix(model, version, run_id) + GATE_RESULT_PREFIX
    return [GateResult.model_validate(store.get_json(key)) for key in store.list_keys(prefix)]


def evidence_dir(run_id: str) -> str:
    """Local folder where gates of this run write evidence files (same path on a resumed run)."""
    return str(Path(tempfile.gettempdir()) / "clearance-evidence" / run_id)


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lower-case letters, digits and dashes only)."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")


def store_time() -> datetime:
    """Now by the object store's clock (what deadlines are judged against; see ``Store.server_time``)."""
    return store().server_time()


def store() -> Store:
    """The object store of the current settings."""
    return object_store()


def put_evidence(prefix: str, name: str, body: bytes, content_type: str = "application/json") -> str:
    """Write one evidence file under a run prefix; rewriting identical content is a no-op."""
    key = prefix + name
    try:
        store().put_if_absent(key, body, content_type=content_type)
    except ObjectExists:
        existing, _ = store().get_bytes(key)
        if existing != body:  # evidence is immutable: a different second version must not appear silently
            raise
    return key


@task(name="ledger-append", persist_result=True, cache_key_fn=per_run_key)
def record_event(model: str, kind: LedgerKind, payload: dict[str, Any]) -> LedgerEntry:
    """Append to the model's ledger (cached per run, so a resumed run does not append twice)."""
    return append_entry(store(), model, kind, payload)


@task(name="publish-gate-result", persist_result=True, cache_key_fn=per_run_key)
def publish_gate_result(prefix: str, result: GateResult, model: str, run_id: str, dry_run: bool) -> str:
    """Store the result as JSON evidence, show it as a Prefect Markdown artifact (its checks, metrics and
    evidence files: one artifact, one API call per gate), and log it to the ledger."""
    key = put_evidence(prefix, gate_result_name(result.gate_id), result.to_evidence_json())
    upload_gate_files(prefix, result, Path(evidence_dir(run_id)))
    publish_markdown(artifact_key("gate", result.gate_id), render_markdown(gate_blocks(result)),
                     description=f"{result.gate_id}: {result.status.value}")
    if not dry_run:
        append_entry(store(), model, LedgerKind.GATE, {"gate": result.gate_id, "status": result.status.value,
                                              "digest": result.digest(), "evidence": key})
    return key


def upload_gate_files(prefix: str, result: GateResult, folder: Path) -> list[str]:
    """Upload the files a gate wrote in ``folder`` (PNG, tables) next to its JSON, checking their digests."""
    keys = []
    for item in result.evidence:
        local = folder / item.name
        if not local.is_file():
            continue  # already uploaded by an earlier attempt of this run, or the gate kept it inline
        body = local.read_bytes()
        if hashlib.sha256(body).hexdigest() != item.sha256:
            raise ValueError(f"evidence file {item.name} changed after gate {result.gate_id} recorded its digest")
        keys.append(put_evidence(prefix, item.name, body, content_type=item.media_type))
    return keys


@task(name="write-evidence", cache_policy=NO_CACHE)
def write_evidence(prefix: str, name: str, document: dict[str, Any]) -> str:
    """Write a JSON evidence document under the run prefix."""
    return put_evidence(prefix, name, canonical_json(document))


@task(name="seal-evidence", cache_policy=NO_CACHE)
def seal_evidence(prefix: str, report: Report, title: str, *, model: str, version: str, run_id: str,
                  dry_run: bool) -> dict[str, str]:
    """Publish the run's report, then write its ``bundle.json`` (tasks/bundle.py).

    Returns what the run's final ledger entry records: ``bundle`` and ``bundle_sha256``, or
    ``bundle_error`` when the store refused — a promotion that already happened is still recorded
    (a dry run, which records nothing, raises instead).
    """
    from tasks.bundle import seal
    from tasks.ledger import read_ledger

    try:
        publish_report(prefix, report, title)
        ledger = [] if dry_run else read_ledger(store(), model)
        return seal(store(), prefix, model=model, version=version, run_id=run_id, ledger=ledger)
    except Exception as exc:  # noqa: BLE001 — the ledger entry says the evidence could not be sealed
        if dry_run:  # no ledger entry to carry the error: the dry run fails instead
            raise
        get_run_logger().error("could not seal the evidence of %s %s: %s", model, version, exc)
        return {"bundle_error": f"{type(exc).__name__}: {exc}"[:500]}


def publish_report(prefix: str, report: Report, title: str) -> str:
    """Store the run's report as evidence (``report.md`` and the self-contained ``report.html``) and
    as a Prefect Markdown artifact; link the run's evidence prefix. Returns the Markdown key."""
    markdown = to_markdown(report)
    key = put_evidence(prefix, REPORT_MD, markdown.encode(), content_type="text/markdown")
    put_evidence(prefix, REPORT_HTML, to_html(report).encode(), content_type="text/html; charset=utf-8")
    publish_markdown("promotion-report", markdown, description=title)
    settings = get_settings()
    if settings.s3_endpoint_url:
        publish_link("evidence-bundle", f"{settings.s3_endpoint_url}/{settings.bucket}/{prefix}",
                     link_text=f"s3://{settings.bucket}/{prefix}", description="evidence of this run")
    return key




def record_unexpected_failure(model: str, version: str, run_id: str, message: str) -> bool:
    """Append a ``failed`` entry unless the run already recorded how it ended; ``True`` if appended.

    Called from the flow's failure hook, so a crash (store down, bad config) still leaves
    the ledger saying the run ended, and why.
    """
    from tasks.ledger import read_ledger

    ours = [e for e in read_ledger(store(), model) if e.payload.get("run") == run_id]
    if not ours or ours[-1].kind in TERMINAL:
        return False  # never started in the ledger (e.g. invalid config), or ended properly
    append_entry(store(), model, LedgerKind.FAILED, {"run": run_id, "version": version, "reason": message[:2000]})
    return True
