"""``clearance recertify``: re-certify a model's live version now (its deployment, or ``--direct``).

A plain function with Typer annotations; ``clearance/app/cli.py`` registers it. The certification shown by
``clearance status --model`` and ``history`` is clearance/app/certification_view.py (kept apart so that
commands which do not show it, such as ``clearance approve``, do not import the ledger).
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import typer


def recertify(
    model: Annotated[str, typer.Argument(help="The model whose live version to re-certify now.")],
    direct: Annotated[bool, typer.Option("--direct", help="Run in this process instead of on the deployment.")]
    = False,
    wait: Annotated[bool, typer.Option(help="Wait for the run to finish (deployment runs).")] = False,
) -> None:
    """Re-certify MODEL's live version now with its tier's recertification gates (as its schedule would)."""
    from clearance.app import cli

    configs = cli._configs()
    if model not in configs.manifests:
        cli.err.print(f"no model {model!r} in the configs (known: {', '.join(sorted(configs.manifests)) or 'none'})",
                      markup=False, highlight=False)
        raise typer.Exit(cli.EXIT_INVALID)
    cli._so_far("no run was started")
    if direct:
        from flows.recertify import RecertificationFailed, recertify_model

        cli._so_far("the run in this process did not finish (`clearance status --model` shows the certification)")
        try:
            result = recertify_model(model=model)
        except RecertificationFailed as exc:
            cli.err.print(f"re-certification failed: {exc}", markup=False, highlight=False)
            raise typer.Exit(cli.EXIT_REFUSED) from None
        cli.console.print(result_line(result), markup=False, highlight=False)
        return
    run = _start_deployment(model)
    from tasks.prefect_runs import run_url

    cli.console.print(f"run {run.id} ({run.name}) started: re-certification of {model}", markup=False,
                      highlight=False)
    cli.console.print(f"follow it: {run_url(str(run.id)) or 'the Prefect UI (no UI URL configured)'}", markup=False,
                      highlight=False)
    if wait:
        cli.report_end(str(run.id), f"`clearance status --model {model}`")


def result_line(result: Any) -> str:
    """How a re-certification ended, in one line a person reads (the JSON is the flow's return value)."""
    gates = ", ".join(f"{gate} {status.value}" for gate, status in result.gates.items())
    if result.status == "recertified":
        from clearance.app.certification_view import when_utc

        return (f"{result.model} {result.version} re-certified until {when_utc(result.certified_until)}"
                f" (run {result.run_id}; gates: {gates})")
    return f"{result.model}: not re-certified ({result.status}): {result.message}"


def _start_deployment(model: str) -> Any:
    """A run of the model's own ``recertify-model/<model>`` deployment (``clearance deploy`` makes one per
    production model of a re-certifying tier), else of the on-demand ``recertify-model/recertify-model``."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        run = run_deployment(f"recertify-model/{model}", parameters={"model": model}, timeout=0)
    except ObjectNotFound:
        run = run_deployment("recertify-model/recertify-model", parameters={"model": model}, timeout=0)
    assert not inspect.isawaitable(run), "run_deployment returned a coroutine outside an event loop"
    return run
