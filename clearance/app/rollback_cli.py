"""``clearance rollback MODEL [--to VERSION] --reason …``: the live version back to an earlier certified one.

Registered on the main app in ``clearance/app/cli.py``; the helpers it shares with ``promote`` (configs,
store, signing, waiting) are imported from there inside the function, so importing this module imports
nothing of the CLI.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Optional

import typer


def rollback(
    model: str,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded in the ledger, told to Slack and Jira).")],
    to: Annotated[Optional[str], typer.Option(
        "--to", help="The version to roll back to (default: the newest earlier certified version whose "
                     "production copies still verify).")] = None,
    key: Annotated[Optional[Path], typer.Option(
        "--key", help="Your SSH key (default CLEARANCE_SSH_KEY): signing makes you the verified initiator, which "
                      "an emergency role needs to roll back without a sign-off.")] = None,
    direct: Annotated[bool, typer.Option("--direct", help="Run in this process instead of on the deployment.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for the run to finish (deployment runs).")] = False,
) -> None:
    """Roll MODEL back to an earlier certified version, after the sign-off its policy asks for rollbacks."""
    from rich.text import Text

    from clearance.app.cli import (
        EXIT_INVALID,
        EXIT_REFUSED,
        _configs,
        _principal_id_or_user,
        _so_far,
        console,
        err,
        report_end,
    )
    from clearance.settings import get_settings
    from tasks.prefect_runs import run_url

    if not reason.strip():
        err.print("[red]--reason must say why[/red]")
        raise typer.Exit(EXIT_INVALID)
    configs = _configs()
    if model not in configs.manifests:
        err.print(f"[red]no model {model!r} in {get_settings().config_dir}/models[/red] "
                  f"(known: {', '.join(sorted(configs.manifests)) or 'none'})")
        raise typer.Exit(EXIT_INVALID)
    _so_far("no run was started")
    target = _target(model, to, configs.effective_policy(model).promotion.prefix)
    initiator, proof = _rollback_proof(model, target, key)
    if initiator is None:
        initiator = _principal_id_or_user()
    params = {"model": model, "to_version": target.version, "reason": reason, "initiator": initiator,
              "initiator_proof": proof}
    if direct:
        from flows.rollback import RollbackRefused, RollbackStopped, rollback_model

        _so_far("the run in this process did not finish (`clearance status --model` shows where it stopped)")
        try:
            result = rollback_model(**params)
        except (RollbackRefused, RollbackStopped) as exc:
            err.print(Text(str(exc), style="red"))
            raise typer.Exit(EXIT_REFUSED) from None
        console.print_json(result.model_dump_json())
        return
    from prefect.deployments import run_deployment

    run = run_deployment("rollback-model/rollback-model", parameters=params, timeout=0)
    assert not inspect.isawaitable(run), "run_deployment returned a coroutine outside an event loop"
    console.print(Text(f"rollback run {run.id} ({run.name}) of {model} to {target.version} started by {initiator}"))
    console.print(f"follow it: {run_url(str(run.id)) or 'the Prefect UI (no UI URL configured)'}")
    console.print(f"decide on it: clearance approve {run.id} | clearance reject {run.id} --reason ...")
    if wait:
        report_end(str(run.id), f"`clearance status {run.id}`")


def _target(model: str, to: str | None, prefix: str):
    """The version the run will roll back to, chosen as the run chooses it; a refusal ends the command."""
    from rich.text import Text

    from clearance.app.cli import EXIT_REFUSED, _store, err
    from clearance.ledger.rollback import certified_targets, choose_target
    from tasks.ledger import read_ledger
    from tasks.promotion import read_pointer
    from tasks.rollback import verify_copies

    store = _store()
    pointer = read_pointer(store, prefix, model).pointer
    live = pointer.version if pointer else None
    entries = read_ledger(store, model)
    candidates = [t for t in certified_targets(entries, live) if to is None or t.version == to]
    problems: dict[str, list[str]] = {}
    for candidate in candidates:
        problems[candidate.version] = verify_copies(store, candidate)
        if not problems[candidate.version]:
            break
    choice = choose_target(entries, live, to, problems)
    if isinstance(choice, str):
        err.print(Text(f"{model}: rollback refused: {choice}", style="red"))
        raise typer.Exit(EXIT_REFUSED)
    return choice


def _rollback_proof(model: str, target, key: Path | None) -> tuple[str | None, dict[str, str] | None]:
    """The signer and their start statement for this rollback (``comment: rollback``, the target's digest), or
    ``(None, None)`` without a key."""
    from clearance.app.cli import _sign, _signing_key
    from tasks.person_signing import new_statement
    from tasks.rollback import ROLLBACK_START

    signing = _signing_key(key)
    if signing is None:
        return None, None
    path, _, principal = signing
    statement = new_statement(purpose="start", model=model, version=target.version, principal=principal.id,
                              vote="start", artifact_digest=target.artifact_digest, comment=ROLLBACK_START)
    return principal.id, {"statement": statement.model_dump_json(), "signature": _sign(statement, path)}
