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
    for warning in claimed_identity_warnings(paths or [get_settings().config_dir]):
        typer.echo(warning, err=True)
    console.print("[green]configs valid[/green]")


def claimed_identity_warnings(paths: list[Path]) -> list[str]:
    """``file: warning: …`` for each tier whose sign-off counts claimed identities (OS logins, typed names)."""
    from clearance.config import load_policy
    from clearance.config.schema import Assurance

    files = [f for p in paths for f in (sorted((p / "policies").glob("*.yaml")) if p.is_dir() else [p])
             if f.parent.name == "policies"]
    warnings = []
    for file in files:
        policy = load_policy(file)
        if policy.approvals.roles and policy.approvals.assurance is Assurance.CLAIMED:
            warnings.append(f"{file}: warning: approvals.assurance is claimed: in the {policy.tier} tier an OS "
                            "login or a typed name can approve; set 'assurance: verified' to count only signed, "
                            "pinned identities")
    return warnings


@app.command()
def keygen(path: Annotated[Path, typer.Argument(help="Where to write the private key (PATH.pub: the public key).")]
           ) -> None:
    """Make a clearance service key: set CLEARANCE_SERVICE_KEY_FILE to PATH, pin PATH.pub in service_keys."""
    from tasks.signing import write_key_pair

    if path.exists():
        err.print(f"[red]{path} exists; not overwritten[/red]")
        raise typer.Exit(EXIT_INVALID)
    public = write_key_pair(path)
    console.print(f"wrote {path} (private, mode 0600) and {path}.pub")
    console.print(f"principals.yaml:\n  service_keys:\n    - {public.line} clearance-service")


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
    key: Annotated[Optional[Path], typer.Option(
        "--key", help="Your SSH key (private key file, or its .pub with the key in ssh-agent); default "
                      "CLEARANCE_SSH_KEY. Signing makes you a verified principal; without it you are only the "
                      "OS login, a claimed identity.")] = None,
) -> None:
    """Start a promotion of MODEL VERSION; signed with --key you are its verified initiator (who may not approve it)."""
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
    initiator, proof = _start_proof(model, version, key)
    params = {"model": model, "version": version, "dry_run": dry_run, "initiator": initiator,
              "initiator_proof": proof}
    if direct:
        from flows.promote import promote_model

        result = promote_model(model=model, version=version, dry_run=dry_run, initiator=initiator,
                               initiator_proof=proof)
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


def _signing_key(key: Path | None):
    """``(path, public key, principal)`` of the signing key, or ``None`` when none is given."""
    from tasks.person_signing import SigningError, key_path, principal_for_key, public_key_for

    path = key_path(key)
    if path is None:
        return None
    try:
        public = public_key_for(path)
    except SigningError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_INVALID) from None
    principal = principal_for_key(_configs().principals, public)
    if principal is None:
        err.print(f"[red]key {public.fingerprint} is not in the ssh_keys of any principal[/red] "
                  f"({get_settings().config_dir}/principals.yaml)")
        raise typer.Exit(EXIT_REFUSED)
    return path, public, principal


def _sign(statement, path: Path) -> str:
    from tasks.person_signing import SigningError, sign

    try:
        return sign(statement, path)
    except SigningError as exc:
        err.print(f"[red]could not sign: {exc}[/red]")
        raise typer.Exit(EXIT_REFUSED) from None


def _start_proof(model: str, version: str, key: Path | None) -> tuple[str, dict[str, str] | None]:
    """The initiator, and the signed start statement when a key is given (verified initiator)."""
    from tasks.candidate import artifact_digest, observe_artifacts
    from tasks.person_signing import new_statement

    signing = _signing_key(key)
    if signing is None:
        return _principal_id_or_user(), None
    path, _, principal = signing
    digest = artifact_digest(observe_artifacts(_store(), _configs().manifests[model].versions[version]))
    statement = new_statement(purpose="start", model=model, version=version, principal=principal.id, vote="start",
                              artifact_digest=digest)
    return principal.id, {"statement": statement.model_dump_json(), "signature": _sign(statement, path)}


def _decide(run_id: str, vote_name: str, comment: str, digest: str | None, key: Path | None) -> None:
    from clearance.approvals import Vote
    from clearance.config.schema import Channel
    from tasks.approval_intake import UnknownRunError, receive_decision
    from tasks.person_signing import new_statement

    principals = _configs().principals
    signing = _signing_key(key)
    user = local_identity()
    store = _store()
    try:
        digest = digest or _current_candidate_digest(store, run_id)
        if signing is None:  # the OS login: a claimed identity, for tiers that accept one
            principal = principals.by_local_user(user)
            result = receive_decision(
                store, run_id, principal=principal, identity=f"os:{user}", channel=Channel.CLI, vote=Vote(vote_name),
                comment=comment, artifact_digest=digest,
                channel_evidence={"os_user": user, "host": socket.gethostname()},
            )
        else:
            path, public, principal = signing
            statement = new_statement(run_id=run_id, principal=principal.id, vote=vote_name, artifact_digest=digest,
                                      comment=comment)
            result = receive_decision(
                store, run_id, principal=principal, identity=f"ssh:{public.fingerprint}", channel=Channel.CLI,
                vote=Vote(vote_name), comment=comment, artifact_digest=digest,
                channel_evidence={"key": public.fingerprint, "host": socket.gethostname()},
                signed=(statement, _sign(statement, path)), principals=principals,
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
                help="Artifact digest you reviewed (default: the candidate's now).")] = None,
    key: Annotated[Optional[Path], typer.Option(
        "--key", help="Your SSH key (private key file, or its .pub with the key in ssh-agent); default "
                      "CLEARANCE_SSH_KEY. Signing makes you a verified principal; without it you are only the "
                      "OS login, a claimed identity.")] = None,) -> None:
    """Approve a waiting promotion as the local user (channel `cli`)."""
    _decide(run_id, "approve", comment, digest, key)


@app.command()
def reject(run_id: str,
           reason: Annotated[str, typer.Option(help="Why you reject (required).")],
           digest: Annotated[Optional[str], typer.Option(help="Artifact digest you reviewed.")] = None,
           key: Annotated[Optional[Path], typer.Option(
        "--key", help="Your SSH key (private key file, or its .pub with the key in ssh-agent); default "
                             "CLEARANCE_SSH_KEY. Signing makes you a verified principal; without it you are only the "
                             "OS login, a claimed identity.")] = None,) -> None:
    """Reject a waiting promotion as the local user; one authorised rejection fails the run."""
    if not reason.strip():
        err.print("[red]--reason must say why[/red]")
        raise typer.Exit(EXIT_INVALID)
    _decide(run_id, "reject", reason, digest, key)


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
    # The stored record is not taken at its word: only decisions whose proof verifies are shown as counted.
    from clearance.approvals.trust import service_keys, trusted_record
    from clearance.core.clock import utcnow
    from tasks.signing import own_public_keys

    principals = _configs().principals
    record, problems = trusted_record(record, record.request, principals,
                                      service_keys(principals, own_public_keys()), utcnow())
    # Built by the render layer, printed as plain text with markup off: user text stays text.
    blocks = [Para([f"run {run_id}"]), gates_overview(results),
              *sign_off_blocks(record, record.request, {}), *(Para([problem]) for problem in problems)]
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
    """Verify MODEL's ledger: its hash chain and every entry's service signature, the heads the witnesses
    saw (a cut tail, a rewrite), the production pointer's anchor, every gate result and evidence bundle
    the ledger points at, and the proof of every decision of every run; exit 1 naming any break."""
    from rich.text import Text

    from clearance.approvals.trust import service_keys
    from clearance.core.clock import utcnow
    from tasks.bundle import audit_approvals, audit_evidence
    from tasks.ledger import audit_ledger
    from tasks.promotion import read_pointer
    from tasks.signing import own_public_keys
    from tasks.witness import read_witnesses

    store = _store()
    configs = _configs()
    trusted = service_keys(configs.principals, own_public_keys())
    prefixes = sorted({p.promotion.prefix for p in configs.policies.values()})
    heads = [read_pointer(store, prefix, model).pointer for prefix in prefixes]
    # a pointer without its hash matches no entry (""), so it is reported as differing, as before
    anchor = next(((p.ledger_seq, p.ledger_hash or "") for p in heads if p and p.ledger_seq), None)
    readings, notes = read_witnesses(model)  # before the ledger: an append meanwhile only looks unwitnessed
    ledger = audit_ledger(store, model, trusted_keys=trusted, readings=readings, expected_head=anchor)
    if ledger.count == 0 and not ledger.problems:
        err.print(f"[red]no ledger for {model}[/red]")
        raise typer.Exit(EXIT_REFUSED)
    try:
        bundles, evidence_problems = audit_evidence(store, ledger.entries)
    except (ValueError, KeyError, TypeError) as exc:  # a bundle too damaged to parse
        bundles, evidence_problems = 0, [f"evidence not audited, a bundle cannot be read: {str(exc).splitlines()[0]}"]
    records, approval_problems = audit_approvals(store, model, ledger.entries, configs.principals, trusted,
                                                 utcnow())
    if not trusted:
        notes.append("no service key is trusted (principals.yaml service_keys is empty and this process has no "
                     "service key): no signature can verify")
    for note in notes:
        err.print(Text(f"note: {note}"))
    problems = [*map(str, ledger.problems), *evidence_problems, *approval_problems]
    for problem in problems:
        err.print(Text.assemble(("TAMPERED", "red"), " ", problem))
    if problems:
        raise typer.Exit(EXIT_REFUSED)
    last = ledger.entries[-1].seq if ledger.entries else 0
    if not readings:
        tail = "no witness read: a cut tail cannot be ruled out"
    elif ledger.witnessed >= last:
        tail = f"its head (entry {last}) is witnessed"
    else:
        tail = f"witnessed up to entry {ledger.witnessed}, entries after it not yet"
    console.print(Text.assemble(
        ("OK", "green"), f": {ledger.count} ledger entries of {model}, chain intact and signed by the service; "
        f"{tail}; gate results and {bundles} evidence bundle{'' if bundles == 1 else 's'} match it; "
        f"{records} approvals record{'' if records == 1 else 's'} re-verified"))


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
