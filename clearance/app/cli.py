"""``clearance``: validate configs, start promotions, decide on them, and audit the evidence."""

from __future__ import annotations

import gc
import getpass
import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from clearance.app.gate_cli import gate_app
from clearance.app.lifecycle_cli import recertify
from clearance.app.rollback_cli import rollback
from clearance.app.worker_cli import worker
from clearance.core.ledger_kinds import TERMINAL, LedgerKind
from clearance.settings import get_settings

if TYPE_CHECKING:
    from rich.table import Table

EXIT_INVALID = 2
EXIT_REFUSED = 1
EXIT_UNREACHABLE = 3  # the Prefect server or the S3 endpoint failed: one line says which, and what became of the action


class _Action:
    """What the running command has done so far: the second half of the line printed when a service is down."""

    done = "nothing was changed"


_action = _Action()


def _so_far(done: str) -> None:
    """Record what the command has (not) done by now, e.g. "no run was started"."""
    _action.done = done


class _Commands(TyperGroup):
    """Every command, run so that a service being down is one line and exit code 3, never a traceback.

    Covers ``clearance …`` (the console script is the Typer app itself), ``python -m clearance`` and
    Typer's ``CliRunner``: they all invoke this group.
    """

    def invoke(self, ctx: Any) -> Any:  # a typer Context (its click is vendored: Any keeps the override honest)
        _action.done = "nothing was changed"
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # exit codes and usage errors: Typer's to print
            raise
        except Exception as exc:
            from clearance.render.text import escape
            from tasks.outages import outage_of

            outage = outage_of(exc)
            if outage is None:
                raise  # a bug, not an outage: the traceback is what a developer needs
            typer.echo(escape(f"error: {outage}; {_action.done}"), err=True)
            raise typer.Exit(EXIT_UNREACHABLE) from None


app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_show_locals=False, cls=_Commands)
audit_app = typer.Typer(help="Check the evidence ledger.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(gate_app, name="gate")  # clearance gate run | list: pre-flight on local files (gate_cli.py)
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _store():
    from tasks.wiring import object_store

    return object_store()


def _configs():
    from clearance.config import ConfigError
    from tasks.wiring import config_set

    try:
        return config_set()
    except ConfigError as exc:
        _refuse_invalid_configuration(exc)


def _refuse_invalid_configuration(error: Exception) -> NoReturn:
    """Exit 2 with every problem of the configs (a ConfigError lists them by file and line)."""
    err.print(f"[red]invalid configuration[/red]\n{error}")
    raise typer.Exit(EXIT_INVALID) from None


def _decision_configs():
    """What a decision reads of the configs: principals.yaml, and a manifest when asked for
    (:mod:`clearance.config.decision_configs`: not every policy and gate config, which the run checks)."""
    from clearance.config import ConfigError
    from clearance.config.decision_configs import load_decision_configs

    try:
        return load_decision_configs(get_settings().config_dir)
    except ConfigError as exc:
        _refuse_invalid_configuration(exc)


def local_identity() -> str:
    """The OS user running this command (honours LOGNAME/USER, like every Unix tool)."""
    return getpass.getuser()


# ----------------------------------------------------------------------------- configs


@app.command()
def validate(paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or config dirs.")] = None) -> None:
    """Validate configs; every problem is printed as file:line: field: message (exit 2 if any)."""
    from clearance.config import validate_paths

    # All problems of all files at once (a broken file does not hide the others'), by file and line, each once.
    found = dict.fromkeys(validate_paths(paths or [get_settings().config_dir]))
    issues = sorted(found, key=lambda issue: (issue.file, issue.line or 0))
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
    allow_downgrade: Annotated[bool, typer.Option(
        "--allow-downgrade", help="Promote VERSION although it is lower than the live version (recorded; tiers "
                                  "with promotion.downgrades: refuse never allow it: use `clearance rollback`).")]
    = False,
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
    _so_far("no run was started")
    _refuse_downgrade(configs, model, version, allow_downgrade)
    initiator, proof = _start_proof(model, version, key)
    params = {"model": model, "version": version, "dry_run": dry_run, "initiator": initiator,
              "initiator_proof": proof, "allow_downgrade": allow_downgrade}
    if direct:
        from flows.promote import promote_model

        _so_far("the run in this process did not finish (`clearance status --model` shows where it stopped)")
        result = promote_model(model=model, version=version, dry_run=dry_run, initiator=initiator,
                               initiator_proof=proof, allow_downgrade=allow_downgrade)
        console.print_json(result.model_dump_json())
        return
    import inspect

    from prefect.deployments import run_deployment

    run = run_deployment("promote-model/promote-model", parameters=params, timeout=0)
    # sync context (no event loop), so Prefect's dual API returned the FlowRun, not a coroutine
    assert not inspect.isawaitable(run), "run_deployment returned a coroutine outside an event loop"
    what = "dry run" if dry_run else "run"
    console.print(Text.assemble(f"{what} ", (str(run.id), "bold"), f" ({run.name}) started by {initiator}"))
    if _configs().principals.by_id(initiator) is None:
        err.print(Text(f"note: {initiator!r} is no principal of {get_settings().config_dir}/principals.yaml (not in "
                       "anyone's local_users, no --key): the run records it only as a claimed name"))
    console.print(f"follow it: {run_url(str(run.id)) or 'the Prefect UI (no UI URL configured)'}")
    if dry_run:
        console.print("a dry run evaluates every gate and names who would approve; nobody is asked, nothing is "
                      f"promoted (`clearance status {run.id}` once it ends)")
    else:
        console.print(f"decide on it: clearance approve {run.id} | clearance reject {run.id} --reason ...")
    if wait:
        report_end(str(run.id), f"`clearance status {run.id}`")


def report_end(run_id: str, where: str) -> None:
    """``--wait``: wait until the run ends, say how and why (Prefect's state and message), exit 1 unless it
    completed. ``where`` tells the person where to look should this command stop waiting first."""
    _so_far(f"run {run_id} was started and goes on without this command ({where})")
    state = _final_state(run_id)
    why = (state.message or "").strip()
    console.print(Text(f"run {run_id} ended {state.name}" + (f": {why}" if why else "")))
    if not state.is_completed():
        raise typer.Exit(EXIT_REFUSED)


def _refuse_downgrade(configs, model: str, version: str, allowed: bool) -> None:
    """Exit 1 before starting a run the flow would refuse: VERSION lower than the live one (the flow checks
    again against the pointer it reads, which is what counts)."""
    from clearance.approvals.rules import downgrade_refusal
    from tasks.promotion import read_pointer
    from tasks.store import ObjectStoreError

    policy = configs.effective_policy(model)
    try:
        live = read_pointer(_store(), policy.promotion.prefix, model).pointer
    except ObjectStoreError:
        return  # a courtesy check: the run refuses a downgrade itself (and says what is wrong with the store)
    refusal = downgrade_refusal(model, version, live.version if live else None, policy.promotion.downgrades,
                                 allowed)
    if refusal is not None:
        err.print(Text(f"refused: {model} {refusal}"))
        raise typer.Exit(EXIT_REFUSED)


#: How often ``promote --wait`` asks Prefect whether the run has ended.
WAIT_POLL_SECONDS = 2.0


def _final_state(run_id: str):
    """The run's state once it is final (Completed, Failed, Crashed, Cancelled); a paused run is waited for."""
    from uuid import UUID

    from prefect import get_client

    while True:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(UUID(run_id)).state
        if state is not None and state.is_final():
            return state
        time.sleep(WAIT_POLL_SECONDS)


def _signing_key(key: Path | None, configs=None):
    """``(path, public key, principal)`` of the signing key, or ``None`` when none is given (``configs``: the
    config set, or a decision's configs, when the caller has them already; only their principals are read)."""
    from tasks.person_signing import SigningError, key_path, principal_for_key, public_key_for

    path = key_path(key)
    if path is None:
        return None
    try:
        public = public_key_for(path)
    except SigningError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_INVALID) from None
    principal = principal_for_key((configs or _configs()).principals, public)
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


@contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """Hold Python's cycle collector for a short command. Importing the config schema, boto3 and httpx makes
    ~400k objects, and the collector's full passes over them cost ~0.13 of a decision's ~1.4 CPU-s; the command
    makes no cyclic garbage worth collecting before it exits. Restored after (CliRunner runs it in-process)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _decide(run_id: str, vote_name: str, comment: str, digest: str | None, key: Path | None) -> None:
    """Record the decision and wake the run. Typed by a person who waits for it, so it loads only what a decision
    needs: no Prefect (the run is woken through its REST API), no channel SDK that is not configured, no ledger,
    no gate; of the configs only principals.yaml and the run's manifest, each read once, and the run's record key
    looked up once (tests/integration/test_approve_fast.py)."""
    with _without_cycle_collection():
        _record_and_wake(run_id, vote_name, comment, digest, key)


def _record_and_wake(run_id: str, vote_name: str, comment: str, digest: str | None, key: Path | None) -> None:
    from clearance.approvals import Vote
    from clearance.config.schema import Channel
    from tasks.approval_intake import UnknownRunError, receive_decision, record_key_for_run
    from tasks.person_signing import new_statement

    configs = _decision_configs()
    principals = configs.principals
    signing = _signing_key(key, configs)
    user = local_identity()
    store = _store()
    noun = "approval" if vote_name == "approve" else "rejection"
    logging.getLogger("clearance.intake").setLevel(logging.ERROR)  # a failed wake-up: this command says it itself
    _so_far(f"your {noun} was not recorded")
    try:
        # the run has a request (and the store answers) before anything is sent
        record_key = record_key_for_run(store, run_id)
        digest = digest or _current_candidate_digest(store, configs, record_key)
        _so_far(f"your {noun} was not recorded unless `clearance status {run_id}` shows it")
        if signing is None:  # the OS login: a claimed identity, for tiers that accept one
            principal = principals.by_local_user(user)
            result = receive_decision(
                store, run_id, principal=principal, identity=f"os:{user}", channel=Channel.CLI, vote=Vote(vote_name),
                comment=comment, artifact_digest=digest,
                channel_evidence={"os_user": user, "host": socket.gethostname()}, principals=principals,
                record_key=record_key,
            )
        else:
            path, public, principal = signing
            statement = new_statement(run_id=run_id, principal=principal.id, vote=vote_name, artifact_digest=digest,
                                      comment=comment)
            result = receive_decision(
                store, run_id, principal=principal, identity=f"ssh:{public.fingerprint}", channel=Channel.CLI,
                vote=Vote(vote_name), comment=comment, artifact_digest=digest,
                channel_evidence={"key": public.fingerprint, "host": socket.gethostname()},
                signed=(statement, _sign(statement, path)), principals=principals, record_key=record_key,
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
    if result.wake_problem:
        from clearance.render.text import escape

        typer.echo(escape(f"error: your {noun} was counted; the run could not be woken because "
                          f"{result.wake_problem} — it will see the decision when it is next woken (`clearance "
                          f"sweep`, which `clearance worker` runs every minute, wakes it once the server "
                          f"answers)"), err=True)
        raise typer.Exit(EXIT_UNREACHABLE)


def _current_candidate_digest(store, configs, record_key: str) -> str:
    """The digest of the candidate as it is *now*: what the person at the keyboard approves (``configs``: the
    :class:`~clearance.config.decision_configs.DecisionConfigs` the decision reads)."""
    from clearance.config import ConfigError
    from tasks.approvals_record import read_record
    from tasks.candidate_digest import artifact_digest, observe_artifacts

    request = read_record(store, record_key)[0].request
    if request.action == "rollback":  # the target is a production copy the run verifies by sha256, not a candidate
        return request.artifact_digest
    try:
        manifest = configs.manifest(request.model)
    except ConfigError as exc:
        _refuse_invalid_configuration(exc)
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
    """Print a run's gate table and its approvals so far, or the check that stopped it at a gate."""
    from clearance.render import text
    from clearance.render.document import Para
    from clearance.render.gate import gates_overview
    from clearance.render.report import sign_off_blocks
    from clearance.render.scorecard import scorecard_blocks
    from tasks.approval_intake import UnknownRunError, record_key_for_run
    from tasks.approvals_record import read_record
    from tasks.evidence import stored_gate_results
    from tasks.ledger import read_ledger

    store = _store()
    if run_id is None:
        if model is None:
            err.print("give a RUN id or --model")
            raise typer.Exit(EXIT_INVALID)
        ledger = read_ledger(store, model)
        started = [e for e in ledger if e.kind == LedgerKind.STARTED]
        if not started:
            err.print(f"no runs of {model} in the ledger")
            raise typer.Exit(EXIT_REFUSED)
        run_id = started[-1].payload["run"]
        _print_pointer(store, model)
        from clearance.app.certification_view import print_certification

        print_certification(console, store, model, entries=ledger)
    found, entries = _ledger_of_run(store, run_id, model)
    if entries:
        console.print(_ledger_table(entries, title=f"ledger entries of run {run_id}"))
    try:
        record = read_record(store, record_key_for_run(store, run_id))[0]
    except UnknownRunError:
        _print_run_without_request(store, run_id, found, entries)
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
    blocks = [Para([f"run {run_id}"]), *scorecard_blocks(results), gates_overview(results),
              *sign_off_blocks(record, record.request, {}), *(Para([problem]) for problem in problems)]
    console.print(text.render(blocks), markup=False, highlight=False)


#: Payload fields worth a reader's eye in a ledger table, in this order (the rest: `clearance audit verify`, the JSON).
_LEDGER_FIELDS = ("version", "initiator", "gate", "status", "reason", "certified_until", "from_version", "action",
                  "to", "about_run")


def _ledger_table(entries: list, title: str) -> Table:
    """Ledger entries as a table a person reads: seq, time (UTC), kind and the fields that say what happened."""
    from rich.table import Table

    table = Table("seq", "at (UTC)", "event", "details", title=title)
    for entry in entries:
        payload = entry.payload
        details = "; ".join(f"{name} {_plain(payload[name])}" for name in _LEDGER_FIELDS if payload.get(name))
        table.add_row(str(entry.seq), f"{entry.at:%Y-%m-%d %H:%M:%S}", Text(entry.kind), Text(details[:300]))
    return table


def _plain(value: object) -> str:
    """A payload value as text: lists joined, mappings as key value pairs."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def _ledger_of_run(store, run_id: str, model: str | None) -> tuple[str | None, list]:
    """The model of ``run_id`` and the run's ledger entries.

    The run index names the model of a run that opened a sign-off; a run that stopped before it
    (at a gate, or failed) has none, so the ledgers of ``--model``, else of every configured model,
    are searched for the run's entries.
    """
    from tasks.ledger import read_ledger

    known = _models_of_run(store, run_id, model)
    for name in known or sorted(_configs().manifests):
        entries = [e for e in read_ledger(store, name) if e.payload.get("run") == run_id]
        if entries:
            return name, entries
    return (known[0] if known else None), []


def _print_run_without_request(store, run_id: str, model: str | None, entries: list) -> None:
    """A run with no approval request: the gate table and the check that stopped it, from its stored evidence."""
    from clearance.render import text
    from clearance.render.document import Para
    from clearance.render.gate import gate_summary, gates_overview
    from clearance.render.scorecard import scorecard_blocks
    from tasks.evidence import stored_gate_results

    version = next((str(e.payload["version"]) for e in entries if e.payload.get("version")), None)
    if model is None or version is None:
        err.print(Text(f"run {run_id}: not in the ledger of " + (model or "any configured model") +
                       " (a typo, a dry run, or a run that has not started yet)" +
                       ("" if model else "; give its model with --model")))
        raise typer.Exit(EXIT_REFUSED)
    results = stored_gate_results(store, model, version, run_id)
    ended = next((e for e in reversed(entries) if e.kind in {k.value for k in TERMINAL}), None)
    blocks: list = [Para([f"run {run_id}: {model} {version}"])]
    blocks += scorecard_blocks(results)
    blocks.append(gates_overview(results) if results else Para(["no gate result stored"]))
    stopper = next((r for r in results if r.stops_promotion), None)
    if stopper is not None:
        blocks += [Para(["stopped by:"]), gate_summary(stopper)]
    if ended is not None:
        reason = ended.payload.get("reason")
        blocks.append(Para([f"ended: {ended.kind}" + (f": {reason}" if reason else "")]))
    else:
        blocks.append(Para(["no approval request (yet): the run has not finished its gates"]))
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
    """Which version was started, approved and promoted when, how every run ended and why; what is live."""
    from tasks.ledger import read_ledger
    from tasks.recovery import recover_before_reading

    recover_before_reading(model)  # first record what runs left open (tasks/recovery.py): a live version included
    ends = {kind.value for kind in TERMINAL}  # every way a run ends, whichever kinds the ledger knows
    shown = ends | {LedgerKind.STARTED.value, LedgerKind.APPROVED.value, LedgerKind.LAPSED.value,
                    LedgerKind.ROLLBACK_REQUESTED.value}
    entries = read_ledger(_store(), model)
    if not entries:
        if model not in _configs().manifests:
            err.print(Text(f"no model {model!r}: not in {get_settings().config_dir}/models and no ledger in the "
                           f"bucket (known: {', '.join(sorted(_configs().manifests)) or 'none'})"))
            raise typer.Exit(EXIT_REFUSED)
        console.print(Text(f"{model} has no runs yet (its ledger is empty)"))
        return
    from rich.table import Table

    table = Table("seq", "at (UTC)", "event", "version", "run", title=f"history of {model}",
                  caption="other entries (gates, approval requests, intents) are in `clearance status RUN`; "
                          "`clearance audit verify` checks them all")
    for entry in entries:
        if entry.kind in shown:
            table.add_row(str(entry.seq), f"{entry.at:%Y-%m-%d %H:%M:%S}", Text(entry.kind),
                          Text(str(entry.payload.get("version", ""))), str(entry.payload.get("run", ""))[:8])
    console.print(table)
    runs = Table("run", "version", "started", "outcome", "why", title=f"runs of {model}")
    for start in (e for e in entries if e.kind == LedgerKind.STARTED):
        run = start.payload.get("run")
        ours = [e for e in entries if e.payload.get("run") == run and e.seq > start.seq]
        # the last closing entry wins: a run closed as crashed or failed and then recovered as promoted is promoted
        end = next((e for e in reversed(ours) if e.kind in ends), None)
        outcome = end.kind if end else f"in progress (last: {ours[-1].kind if ours else start.kind})"
        why = str(end.payload.get("reason", "")) if end else ""
        runs.add_row(str(run)[:8], Text(str(start.payload.get("version", ""))), f"{start.at:%Y-%m-%d %H:%M:%S}",
                     Text(outcome), Text(why[:120]))
    console.print(runs)
    _print_pointer(_store(), model)
    from clearance.app.certification_view import print_certification

    print_certification(console, _store(), model, entries=entries)


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
    from tasks.recovery import recover_before_reading
    from tasks.signing import own_public_keys
    from tasks.witness import read_witnesses

    recover_before_reading(model)  # first record what runs left open (tasks/recovery.py): a live version included
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
    """Register the deployments (and their work pool) on the Prefect server: promote, rollback, and one
    `recertify-model/<model>` per production model on its policy's schedule (changed ones only)."""
    from clearance.app.deployments import register_deployments
    from clearance.render.text import escape

    _configs()  # an invalid config is one clear error before anything is registered
    _so_far("the deployments may be partly registered: run `clearance deploy` again once it answers")
    done = register_deployments(pool)
    for name in done.names:
        console.print(escape(f"deployment {name} on pool {pool}"), markup=False, highlight=False)
    for note in done.skipped:
        console.print(escape(f"skipped {note}"), markup=False, highlight=False)
    for name in done.removed:
        console.print(escape(f"removed deployment {name}: `clearance worker` sweeps in-process now"), markup=False,
                      highlight=False)
    console.print(escape(done.schedules.summary()), markup=False, highlight=False)


# The lifecycle of a live version, listed after the promotion commands in `--help`.
app.command()(recertify)  # clearance recertify MODEL [--direct] [--wait] (lifecycle_cli.py)
app.command()(rollback)  # clearance rollback MODEL [--to VERSION] --reason … (rollback_cli.py)


@app.command()
def demo(fail: Annotated[bool, typer.Option(
        "--fail", help="The other path: a candidate whose eval data drifted, stopped at data_check.")] = False
         ) -> None:
    """What `make demo` runs: a real promotion end to end on local servers (`--fail`: one stopped by a gate)."""
    from clearance.dev.demo import main as run_demo

    raise typer.Exit(run_demo(["--fail"] if fail else []))


@app.command()
def sweep(every: Annotated[Optional[float], typer.Option(
        "--every", min=1, help="Sweep every N seconds in this process until SIGTERM (when workers run elsewhere: "
                               "`clearance worker` sweeps by itself).")] = None) -> None:
    """Apply approval deadlines and find dead runs now: close overdue sign-offs, wake runs, close crashed runs,
    remind the approvers still needed, lapse expired certifications."""
    from clearance.app.sweeper import sweep_once

    if every is not None:
        _sweep_forever(every)
        return
    configs = _configs()
    _so_far("deadlines may be partly applied: run `clearance sweep` again once it answers")
    done = sweep_once(_store(), lambda: configs)  # lapses: every re-certified model, not one minute's slice
    woken = done.woken
    console.print(f"{len(woken)} overdue run(s) woken" + (f": {', '.join(woken)}" if woken else ""))
    console.print(f"{len(done.recovered)} closing ledger entr(y/ies) recovered for runs that ended without one")
    console.print(f"{len(done.reminded)} reminder(s)/escalation(s) sent", markup=False, highlight=False)
    for sent in done.reminded:
        console.print(Text(f"  {sent.kind} {sent.number} of run {sent.run_id} to {', '.join(sent.to)}"))
    if done.crashes is not None:
        swept = done.crashes
        if swept.rescheduled:
            console.print(f"{len(swept.rescheduled)} run(s) a dead worker left Pending scheduled again: "
                          f"{', '.join(swept.rescheduled)}")
        console.print(f"{len(swept.crashed)} dead run(s) marked crashed, {len(swept.closed)} closed in the ledger, "
                      f"{len(swept.aborted)} unfinished upload(s) aborted")
        for problem in swept.problems:
            err.print(problem, markup=False)
    console.print(f"{len(done.lapsed)} expired certification(s) lapsed")
    for step, exc in done.failed.items():
        err.print(f"{step}: {type(exc).__name__}: {exc}", markup=False, highlight=False)
    if done.failed:
        raise next(iter(done.failed.values()))  # an outage is one line and exit 3 (_Commands)


def _sweep_forever(every: float) -> None:
    """`clearance sweep --every N`: the sweeper of `clearance worker` alone, for workers that run elsewhere."""
    import signal
    import threading

    from clearance.app.sweeper import STOP_GRACE, SweepLoop, log_to_stderr

    log_to_stderr()
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    loop = SweepLoop(every)
    loop.start()
    while not stopping.wait(1):  # a timed wait: the signal handler runs between two of them
        pass
    loop.stop(wait=STOP_GRACE)


app.command()(worker)  # clearance worker [--pool] [--sweep-every N]: Prefect's worker + the sweep (worker_cli.py)


@app.command("jira-poll")
def jira_poll(once: Annotated[bool, typer.Option("--once", help="One pass, then exit.")] = False) -> None:
    """Approve by Jira transition without webhooks (Server/Data Center): poll with JQL."""
    from clearance.app.jira_poller import main as poll_main

    _so_far("the poller stopped")
    raise typer.Exit(poll_main(["--once"] if once else []))


@app.command()
def serve(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
          socket_mode: Annotated[bool, typer.Option(
              "--socket-mode", help="Take Slack interactions over Socket Mode (no public URL).")] = False) -> None:
    """Serve the approval endpoints (`/slack/interactions`, `/jira/webhook`, `/healthz`)."""
    _so_far("the server stopped")
    if socket_mode:
        from clearance.app.serve.slack_socket import run_socket_mode

        run_socket_mode()
        return
    import uvicorn

    from clearance.app.serve.app import build_app

    uvicorn.run(build_app(), host=host, port=port, log_level="info")


@app.command("serve-model")
def serve_model(
    model_file: Annotated[Path, typer.Argument(help="The model file (joblib or pickle) to serve.")],
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8081,
    latency_ms: Annotated[Optional[float], typer.Option(
        "--latency-ms", help="Injected latency: a constant number of milliseconds per request.")] = None,
    latency: Annotated[Optional[str], typer.Option(
        help='Injected latency drawn per request: "constant:200", "uniform:10,30" or '
             '"lognormal:median=50,sigma=0.5" (milliseconds).')] = None,
    error_rate: Annotated[float, typer.Option(
        help="Share of prediction requests answered with --error-status (spread evenly, seeded).")] = 0.0,
    error_status: Annotated[int, typer.Option(help="HTTP status of an injected error.")] = 503,
    seed: Annotated[int, typer.Option(help="Seed of the latency draws and of the error schedule.")] = 0,
    policy: Annotated[Optional[Path], typer.Option(
        help="Policy whose security_scan allowlists judge the file (default: policies/high.yaml of "
             "CLEARANCE_CONFIG_DIR; without one, the built-in high-tier equivalent).")] = None,
) -> None:
    """Serve one model file over HTTP for load tests (`/predict`, SageMaker `/endpoints/<name>/invocations`,
    `/health`), with injected latency and errors; a file that fails the security scan is refused, never loaded."""
    from clearance.app.serve_model import Refused, parse_latency, run

    _so_far("nothing was served")
    try:
        distribution = parse_latency(latency, latency_ms=latency_ms)
        run(model_file, host=host, port=port, latency=distribution, error_rate=error_rate,
            error_status=error_status, seed=seed,
            policy_file=policy or Path(get_settings().config_dir) / "policies" / "high.yaml")
    except (Refused, ValueError) as exc:
        err.print(f"refused: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_INVALID) from None


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
