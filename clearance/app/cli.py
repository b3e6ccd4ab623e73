"""``clearance``: validate configs, start promotions, decide on them, and audit the evidence."""

from __future__ import annotations

import getpass
import inspect
import json
import socket
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from clearance.core.ledger_kinds import LedgerKind
from clearance.settings import get_settings

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_show_locals=False)
audit_app = typer.Typer(help="Check the evidence ledger.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

EXIT_INVALID = 2
EXIT_REFUSED = 1


def _store():
    from tasks.wiring import object_store

    return object_store()


def _configs():
    from clearance.config import ConfigError
    from tasks.wiring import config_set

    try:
        return config_set()
    except ConfigError as exc:
        err.print(f"[red]invalid configuration[/red]\n{exc}")
        raise typer.Exit(EXIT_INVALID) from None


def local_identity() -> str:
    """The OS user running this command (honours LOGNAME/USER, like every Unix tool)."""
    return getpass.getuser()


# ----------------------------------------------------------------------------- configs


@app.command()
def validate(paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or config dirs.")] = None) -> None:
    """Validate configs; every problem is printed as file:line: field: message (exit 2 if any)."""
    from clearance.config import validate_paths

    issues = validate_paths(paths or [get_settings().config_dir])
    for issue in issues:
        typer.echo(str(issue), err=True)  # one unwrapped line per issue: editors parse file:line
    if issues:
        err.print(f"[red]{len(issues)} problem(s)[/red]")
        raise typer.Exit(EXIT_INVALID)
    console.print("[green]configs valid[/green]")


@app.command()
def schema(out: Annotated[Path, typer.Option(help="Folder for the JSON Schemas.")] = Path("configs/schemas")) -> None:
    """Write JSON Schemas of policies, model manifests, principals and waivers (for editors)."""
    from clearance.config.jsonschema_export import write_schemas

    for path in write_schemas(out):
        console.print(str(path))


# ----------------------------------------------------------------------------- promotions


@app.command()
def promote(
    model: str,
    version: str,
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Evaluate gates and name approvers; change nothing.")] = False,
    direct: Annotated[bool, typer.Option("--direct", help="Run in this process instead of on the deployment.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the run to finish (deployment runs).")] = False,
) -> None:
    """Start a promotion of MODEL VERSION as the local user (who then may not approve it)."""
    from tasks.prefect_runs import run_url

    configs = _configs()
    if model not in configs.manifests:
        err.print(f"[red]no model {model!r} in {get_settings().config_dir}/models[/red] "
                  f"(known: {', '.join(sorted(configs.manifests)) or 'none'})")
        raise typer.Exit(EXIT_INVALID)
    if version not in configs.manifests[model].versions:
        err.print(f"[red]{model} has no version {version!r}[/red] "
                  f"(known: {', '.join(sorted(configs.manifests[model].versions))})")
        raise typer.Exit(EXIT_INVALID)
    initiator = _principal_id_or_user()
    params = {"model": model, "version": version, "dry_run": dry_run, "initiator": initiator}
    if direct:
        from flows.promote import promote_model

        result = promote_model(model=model, version=version, dry_run=dry_run, initiator=initiator)
        console.print_json(result.model_dump_json())
        return
    from prefect.deployments import run_deployment

    run = run_deployment("promote-model/promote-model", parameters=params, timeout=None if wait else 0)
    # sync context (no event loop), so Prefect's dual API returned the FlowRun, not a coroutine
    assert not inspect.isawaitable(run), "run_deployment returned a coroutine outside an event loop"
    console.print(f"run [bold]{run.id}[/bold] ({run.name}) started by {initiator}")
    console.print(f"follow it: {run_url(str(run.id)) or 'the Prefect UI (no UI URL configured)'}")
    console.print(f"decide on it: clearance approve {run.id} | clearance reject {run.id} --reason ...")
    if wait and run.state and not run.state.is_completed():
        raise typer.Exit(EXIT_REFUSED)


def _decide(run_id: str, vote_name: str, comment: str, digest: str | None) -> None:
    from clearance.approvals import Vote
    from clearance.config.schema import Channel
    from tasks.approval_intake import UnknownRunError, receive_decision

    user = local_identity()
    principal = _configs().principals.by_local_user(user)
    store = _store()
    try:
        digest = digest or _current_candidate_digest(store, run_id)
        result = receive_decision(
            store, run_id, principal=principal, identity=user, channel=Channel.CLI, vote=Vote(vote_name),
            comment=comment, artifact_digest=digest,
            channel_evidence={"os_user": user, "host": socket.gethostname()},
        )
    except UnknownRunError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_REFUSED) from None
    if result.refusal:
        err.print(f"[red]refused[/red] ({result.refusal.reason.value}): {result.refusal.message}")
        if principal is None:
            err.print(f"OS user {user!r} is not in the local_users of any principal in "
                      f"{get_settings().config_dir}/principals.yaml")
        raise typer.Exit(EXIT_REFUSED)
    record = result.record
    console.print(f"{vote_name} by {principal.id} counted; request is [bold]{record.outcome.value}[/bold]")


def _current_candidate_digest(store, run_id: str) -> str:
    """The digest of the candidate as it is *now*: what the person at the keyboard approves."""
    from tasks.approval_intake import record_key_for_run
    from tasks.approvals_record import read_record
    from tasks.candidate import artifact_digest, observe_artifacts

    request = read_record(store, record_key_for_run(store, run_id))[0].request
    manifest = _configs().manifests.get(request.model)
    if manifest is None or request.version not in manifest.versions:
        return request.artifact_digest
    return artifact_digest(observe_artifacts(store, manifest.versions[request.version]))


@app.command()
def approve(run_id: str,
            comment: Annotated[str, typer.Option(help="Why you approve.")] = "",
            digest: Annotated[Optional[str], typer.Option(
                help="Artifact digest you reviewed (default: the candidate's now).")] = None) -> None:
    """Approve a waiting promotion as the local user (channel `cli`)."""
    _decide(run_id, "approve", comment, digest)


@app.command()
def reject(run_id: str,
           reason: Annotated[str, typer.Option(help="Why you reject (required).")],
           digest: Annotated[Optional[str], typer.Option(help="Artifact digest you reviewed.")] = None) -> None:
    """Reject a waiting promotion as the local user; one authorised rejection fails the run."""
    if not reason.strip():
        err.print("[red]--reason must say why[/red]")
        raise typer.Exit(EXIT_INVALID)
    _decide(run_id, "reject", reason, digest)


@app.command()
def status(run_id: Annotated[Optional[str], typer.Argument()] = None,
           model: Annotated[Optional[str], typer.Option("--model", help="Latest run of this model.")] = None) -> None:
    """Print a run's gate table and the approvals so far."""
    from clearance.render import text
    from clearance.render.document import Para
    from clearance.render.gate import gates_overview
    from clearance.render.report import sign_off_blocks
    from tasks.approval_intake import UnknownRunError, record_key_for_run
    from tasks.approvals_record import read_record
    from tasks.evidence import stored_gate_results
    from tasks.ledger import read_ledger

    store = _store()
    if run_id is None:
        if model is None:
            err.print("give a RUN id or --model")
            raise typer.Exit(EXIT_INVALID)
        started = [e for e in read_ledger(store, model) if e.kind == "started"]
        if not started:
            err.print(f"no runs of {model} in the ledger")
            raise typer.Exit(EXIT_REFUSED)
        run_id = started[-1].payload["run"]
        _print_pointer(store, model)
    entries = [e for m in _models_of_run(store, run_id, model) for e in read_ledger(store, m)
               if e.payload.get("run") == run_id]
    for entry in entries:
        console.print(f"{entry.at:%Y-%m-%d %H:%M:%S} {entry.kind:<20} {json.dumps(entry.payload, default=str)[:100]}",
                      markup=False, highlight=False)
    try:
        record = read_record(store, record_key_for_run(store, run_id))[0]
    except UnknownRunError:
        console.print("no approval request (yet)")
        return
    results = stored_gate_results(store, record.request.model, record.request.version, run_id)
    # Built by the render layer, printed as plain text with markup off: user text stays text.
    blocks = [Para([f"run {run_id}"]), gates_overview(results),
              *sign_off_blocks(record, record.request, {})]
    console.print(text.render(blocks), markup=False, highlight=False)


def _models_of_run(store, run_id: str, model: str | None) -> list[str]:
    if model:
        return [model]
    from clearance.core.keys import run_index_key

    if store.head(run_index_key(run_id)):
        return [store.get_json(run_index_key(run_id))["model"]]
    return []


def _print_pointer(store, model: str) -> None:
    from tasks.promotion import read_pointer

    for prefix in sorted({p.promotion.prefix for p in _configs().policies.values()}):
        pointer = read_pointer(store, prefix, model).pointer
        if pointer:
            console.print(f"live: {model} {pointer.version} (run {pointer.run_id}, {pointer.at:%Y-%m-%d %H:%M})")


@app.command()
def history(model: str) -> None:
    """Which version was certified and live when, from the ledger."""
    from tasks.ledger import read_ledger

    K = LedgerKind  # noqa: N806 — a short alias keeps the set readable
    HISTORY_KINDS = {K.STARTED, K.APPROVED, K.PROMOTED, K.REJECTED, K.TIMED_OUT, K.GATE_FAILED,  # noqa: N806
                     K.PROMOTION_FAILED}
    table = Table("seq", "at", "event", "version", "run", title=f"history of {model}")
    for entry in read_ledger(_store(), model):
        if entry.kind in HISTORY_KINDS:
            table.add_row(str(entry.seq), f"{entry.at:%Y-%m-%d %H:%M:%S}", entry.kind,
                          str(entry.payload.get("version", "")), str(entry.payload.get("run", ""))[:8])
    console.print(table)
    _print_pointer(_store(), model)


@audit_app.command("verify")
def audit_verify(model: str) -> None:
    """Verify the model's ledger chain (and the production pointer's anchor), every gate result and
    evidence bundle the ledger points at; exit 1 naming any break."""
    from tasks.bundle import audit_evidence
    from tasks.ledger import read_ledger, verify_ledger
    from tasks.promotion import read_pointer

    store = _store()
    prefixes = sorted({p.promotion.prefix for p in _configs().policies.values()})
    heads = [read_pointer(store, prefix, model).pointer for prefix in prefixes]
    # a pointer without its hash matches no entry (""), so it is reported as differing, as before
    anchor = next(((p.ledger_seq, p.ledger_hash or "") for p in heads if p and p.ledger_seq), None)
    count, problems = verify_ledger(store, model, expected_head=anchor)
    if count == 0:
        err.print(f"[red]no ledger for {model}[/red]")
        raise typer.Exit(EXIT_REFUSED)
    try:
        bundles, evidence_problems = audit_evidence(store, read_ledger(store, model))
    except ValueError as exc:  # an entry too damaged to parse: the chain problems above already name it
        bundles, evidence_problems = 0, [f"evidence not audited, the ledger cannot be read: {str(exc).splitlines()[0]}"]
    for problem in [*problems, *evidence_problems]:
        err.print(f"[red]TAMPERED[/red] {problem}", markup=True, highlight=False)
    if problems or evidence_problems:
        raise typer.Exit(EXIT_REFUSED)
    console.print(f"[green]OK[/green]: {count} ledger entries of {model}, chain intact; "
                  f"gate results and {bundles} evidence bundle{'' if bundles == 1 else 's'} match it")


# ----------------------------------------------------------------------------- operations


@app.command()
def deploy(pool: Annotated[str, typer.Option(help="Process work pool to run promotions on.")] = "clearance") -> None:
    """Register the `promote-model` deployment (and its work pool) on the Prefect server."""
    from clearance.app.deployments import register_deployments

    for name in register_deployments(pool):
        console.print(f"deployment [bold]{name}[/bold] on pool {pool}")


@app.command()
def demo() -> None:
    """What `make demo` runs: a real promotion end to end on local servers."""
    from clearance.dev.demo import main as run_demo

    raise typer.Exit(run_demo())


@app.command()
def sweep() -> None:
    """Apply approval deadlines now: close overdue sign-offs and wake their suspended runs."""
    from tasks.deadlines import expire_overdue

    woken = expire_overdue(_store())
    console.print(f"{len(woken)} overdue run(s) woken" + (f": {', '.join(woken)}" if woken else ""))


@app.command("jira-poll")
def jira_poll(once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False) -> None:
    """Approve by Jira transition without webhooks (Server/Data Center): poll with JQL."""
    from clearance.app.jira_poller import main as poll_main

    raise typer.Exit(poll_main(["--once"] if once else []))


@app.command()
def serve(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
          socket_mode: Annotated[bool, typer.Option(
              "--socket-mode", help="Take Slack interactions over Socket Mode (no public URL).")] = False) -> None:
    """Serve the approval endpoints (`/slack/interactions`, `/jira/webhook`, `/healthz`)."""
    if socket_mode:
        from clearance.app.serve.slack_socket import run_socket_mode

        run_socket_mode()
        return
    import uvicorn

    from clearance.app.serve.app import build_app

    uvicorn.run(build_app(), host=host, port=port, log_level="info")


def _principal_id_or_user() -> str:
    user = local_identity()
    try:
        principal = _configs().principals.by_local_user(user)
    except typer.Exit:
        raise
    return principal.id if principal else user


def main() -> None:  # pragma: no cover - console entry
    """Entry point for ``python -m clearance``."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
