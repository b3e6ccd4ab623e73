"""``clearance gate``: run one gate on your own files before asking for a promotion (pre-flight).

``clearance gate run GATE`` builds the gate's inputs from local files only (``tasks/preflight.py``:
no Prefect server, no object store), evaluates the same registered gate the flow runs, and prints
its checks (``clearance/render``) or, with ``--json``, the :class:`~gates.base.GateResult`. With
``--manifest`` the gate sees that manifest and one of its versions (``compliance_review`` reads its model
card, KPI, lineage, personal-data declarations and evaluation columns), local datasets standing in for
its URIs. ``load_test`` loads ``--endpoint URL`` (an allowlisted host only) and judges what it measured;
``cost`` runs that load test first, then prices its metrics, as the flow hands them on.
Exit codes: 0 pass / warn / skipped, 1 fail, 2 error or bad input — every bad input is one line
naming the file or option and the field, never a traceback. ``clearance gate list`` names the
registered gates.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional

import typer

# The exit codes of clearance/app/cli.py (which imports this module, so they are not imported from it).
EXIT_FAIL = 1
EXIT_INVALID = 2

gate_app = typer.Typer(help="Run a gate on your own files (pre-flight); list the gates.", no_args_is_help=True)


def _die(*lines: str) -> NoReturn:
    """Print each problem as one unwrapped, escaped line on stderr and exit 2."""
    from clearance.render.text import escape

    for line in lines:
        typer.echo(escape(line), err=True)
    raise typer.Exit(EXIT_INVALID)


def _summary(gate: type[Any]) -> str:
    """The first paragraph of a gate class's docstring, on one line."""
    doc = inspect.getdoc(gate) or ""
    return " ".join(doc.split("\n\n")[0].split())


@gate_app.command("list")
def list_gates() -> None:
    """Print every registered gate (built-in and installed plugins): id, version, what it checks."""
    from gates.base import registered_gates

    gates = registered_gates()
    width = max((len(g) for g in gates), default=0)
    for gate_id, gate in sorted(gates.items()):
        typer.echo(f"{gate_id.ljust(width)}  v{gate.version}  {_summary(gate)}")


def _assignments(values: list[str], option: str, *, bare: bool = False) -> tuple[dict[str, Path], Path | None]:
    """``ROLE=PATH`` values as role → path (and, with ``bare``, a lone ``PATH`` for every role)."""
    from tasks.preflight import ROLES

    found: dict[str, Path] = {}
    every: Path | None = None
    for value in values:
        role, sep, path = value.partition("=")
        if not sep and bare:
            if every is not None:
                _die(f"{option} {value}: a second contract for every dataset (give ROLE=FILE to tell them apart)")
            every = Path(value)
            continue
        if not sep or not role or not path:
            _die(f"{option} {value}: give ROLE={'FILE' if bare else 'PATH'} (roles: {', '.join(ROLES)})")
        if role in found:
            _die(f"{option} {value}: role {role!r} given twice")
        found[role] = Path(path)
    return found, every


def _policy_config(gate_id: str, policy_file: Path) -> tuple[dict[str, Any], bool, list[str]]:
    """The gate's config and mode (blocking?) in a policy file, as the flow would run it for that tier, and
    the tier's regulatory tags."""
    from clearance.config import ConfigError, load_policy
    from clearance.config.issues import display_path
    from clearance.config.schema import GateMode

    if not policy_file.is_file():
        _die(f"--policy {display_path(policy_file)}: no such file")
    try:
        policy = load_policy(policy_file)
    except ConfigError as exc:
        _die(*(str(issue) for issue in exc.issues))
    spec = policy.gate(gate_id)
    if spec is None:
        _die(f"{display_path(policy_file)}: gates: the {policy.tier} tier does not run {gate_id} "
             f"(it runs: {', '.join(g.id for g in policy.gates)})")
    return dict(spec.config), spec.mode is GateMode.BLOCKING, list(policy.regulatory_tags)


@contextmanager
def _evidence_dir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="clearance-preflight-") as folder:
        yield Path(folder)


@gate_app.command("run")
def run(
    gate: Annotated[str, typer.Argument(help="Registered gate id (`clearance gate list`).")],
    artifact: Annotated[Optional[list[Path]], typer.Option(
        "--artifact", help="A model file, observed like a candidate in the store (size, sha256, format). "
                           "Repeatable.")] = None,
    dataset: Annotated[Optional[list[str]], typer.Option(
        "--dataset", help="ROLE=PATH: a Parquet/CSV file or a folder of them; ROLE is train, eval, reference, "
                          "production_sample or predictions. With --manifest: read in place of that role's URI. "
                          "Repeatable.")] = None,
    contract: Annotated[Optional[list[str]], typer.Option(
        "--contract", help="ROLE=FILE: the dataset contract (YAML/JSON, as under `contract:` in a manifest); "
                           "a bare FILE applies to every dataset without its own. Repeatable.")] = None,
    requirements: Annotated[Optional[Path], typer.Option(
        "--requirements", help="requirements.txt of the model, for gates that read it.")] = None,
    manifest: Annotated[Optional[Path], typer.Option(
        "--manifest", help="The model's manifest (configs/models/<name>.yaml): the gate sees it, checked like a "
                           "config file, instead of a synthetic one (compliance_review reads its model card, KPI, "
                           "lineage, personal-data declarations and evaluation columns).")] = None,
    version: Annotated[Optional[str], typer.Option(
        "--version", help="The manifest's version to check; default: its only, else its last listed.")] = None,
    model_card: Annotated[Optional[Path], typer.Option(
        "--model-card", help="The Markdown model card of the version (what versions.<v>.model_card names in "
                             "the bucket).")] = None,
    regulatory: Annotated[Optional[Path], typer.Option(
        "--regulatory", help="The regulatory mapping (YAML/JSON); default: regulatory.yaml of the manifest's "
                             "config dir, if any.")] = None,
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="The gate's config (YAML/JSON, as under `config:` in a policy); default: the gate's "
                         "defaults.")] = None,
    policy: Annotated[Optional[Path], typer.Option(
        "--policy", help="Take the gate's config and mode from this tier's policy file instead of --config "
                         "(e.g. configs/policies/high.yaml).")] = None,
    endpoint: Annotated[Optional[str], typer.Option(
        "--endpoint", help="load_test, cost: the URL to load (instead of the manifest's serving_endpoint); its host "
                           "must be in CLEARANCE_LOAD_TEST_ALLOWED_HOSTS.")] = None,
    evidence_dir: Annotated[Optional[Path], typer.Option(
        "--evidence-dir", help="Keep the gate's evidence files here (default: a temporary folder, removed).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the GateResult as JSON instead of a table.")] = False,
) -> None:
    """Run GATE on local files only (no Prefect server, no S3): exit 0 pass/warn, 1 fail, 2 error or bad input."""
    from clearance.render.text import escape
    from gates.base import Status, registered_gates, run_gate
    from tasks.preflight import PreflightError, load_gate_config, local_gate_inputs, with_endpoint

    known = registered_gates()
    if gate not in known:
        _die(f"unknown gate {gate!r} (registered: {', '.join(sorted(known)) or 'none'})")
    if config is not None and policy is not None:
        _die("give --config or --policy, not both")
    if endpoint is not None and gate not in LOADING_GATES:
        _die(f"--endpoint {endpoint}: only {' and '.join(LOADING_GATES)} load an endpoint, not {gate}")
    datasets, _ = _assignments(dataset or [], "--dataset")
    contracts, every_contract = _assignments(contract or [], "--contract", bare=True)
    if every_contract is not None and not datasets:
        _die(f"--contract {every_contract}: no --dataset ROLE=PATH to apply it to")
    try:
        raw_config, blocking, tags = ({}, True, None)
        if config is not None:
            raw_config = load_gate_config(gate, config)
        elif policy is not None:
            raw_config, blocking, tags = _policy_config(gate, policy)
        with _evidence_dir(evidence_dir) as folder:
            inputs = local_gate_inputs(artifacts=list(artifact or []), datasets=datasets, contracts=contracts,
                                       every_contract=every_contract, requirements=requirements, evidence_dir=folder,
                                       manifest=manifest, version=version, model_card=model_card,
                                       regulatory=regulatory, regulatory_tags=tags)
            inputs = with_endpoint(inputs, endpoint)
            if gate in LOADING_GATES:
                inputs = _loaded(gate, inputs, raw_config, policy, manifest, as_json)
            result = run_gate(gate, inputs, raw_config, blocking=blocking)
    except PreflightError as exc:
        _die(*exc.problems)
    for role, uri in _unread_notes(gate, inputs).items():
        typer.echo(escape(f"note: the {role} dataset ({uri}) was not read: give --dataset {role}=PATH"), err=True)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
    else:
        typer.echo(_table(result, evidence_dir))
    if result.status is Status.SKIPPED:
        typer.echo(f"note: {gate} had nothing to check (give it --artifact / --dataset)", err=True)
    if result.status is Status.ERROR:
        raise typer.Exit(EXIT_INVALID)
    if result.status is Status.FAIL:
        raise typer.Exit(EXIT_FAIL)


def _unread_notes(gate: str, inputs: Any) -> dict[str, str]:
    """Role → URI of the manifest's datasets a pre-flight did not read and ``gate`` would have: for the gates that
    load an endpoint, only the dataset the request bodies come from."""
    unread = dict(inputs.extra.get("preflight_unread") or {})
    if gate not in LOADING_GATES:
        return unread
    body = ((inputs.manifest.get("serving") or {}).get("body") or {})
    role = body.get("dataset_role") or "eval"
    return {role: unread[role]} if role in unread else {}


#: The gates a pre-flight feeds by loading an endpoint (``--endpoint``).
LOADING_GATES = ("load_test", "cost")


def _loaded(gate: str, inputs: Any, raw_config: dict[str, Any], policy: Path | None, manifest: Path | None,
            as_json: bool) -> Any:
    """``inputs`` with what a flow would have made before ``gate``: the load run (``load_test``), or — for
    ``cost`` — the price table and, when there is an endpoint to load, load_test's result run first
    (``earlier_gates``, as the flow passes it)."""
    from clearance.render.text import escape
    from gates.base import run_gate
    from tasks.preflight import allow_hint, default_prices, load_prices, preflight_load_run

    extra = dict(inputs.extra)
    if gate == "load_test":
        extra["load_run"] = preflight_load_run(inputs, raw_config)
        hint = allow_hint(extra["load_run"])
        if hint:
            typer.echo(escape(hint), err=True)
        return inputs.model_copy(update={"extra": extra})
    prices = default_prices(manifest, policy)
    if prices is not None:
        extra["price_table"] = load_prices(prices)
    serving = inputs.manifest.get("serving") or {}
    if not inputs.manifest.get("serving_endpoint") and not serving.get("sagemaker"):
        typer.echo("note: no --endpoint (and no serving endpoint in a --manifest): nothing was load-tested, so "
                   "cost has nothing to price", err=True)
        return inputs.model_copy(update={"extra": extra})
    load_config: dict[str, Any] = {}
    load_blocking = True
    if policy is not None:
        load_config, load_blocking = _policy_load_config(policy)
    loaded = inputs.model_copy(update={"extra": {**extra, "load_run": preflight_load_run(inputs, load_config)}})
    measured = run_gate("load_test", loaded, load_config, blocking=load_blocking)
    hint = allow_hint(loaded.extra["load_run"])
    if hint:
        typer.echo(escape(hint), err=True)
    if not as_json:
        typer.echo(_table(measured, None))
    typer.echo(escape(f"note: load_test ran first: {measured.status.value}"
                      + (f" — {measured.message}" if measured.message else "")), err=True)
    extra["earlier_gates"] = {"load_test": {"status": measured.status.value, "message": measured.message,
                                            "blocking": measured.blocking, "metrics": dict(measured.metrics)}}
    return inputs.model_copy(update={"extra": extra})


def _policy_load_config(policy_file: Path) -> tuple[dict[str, Any], bool]:
    """The load_test config and mode of a policy file; the gate's defaults when that tier does not run it."""
    from clearance.config import ConfigError, load_policy
    from clearance.config.schema import GateMode

    try:
        spec = load_policy(policy_file).gate("load_test")
    except ConfigError as exc:
        _die(*(str(issue) for issue in exc.issues))
    return (dict(spec.config), spec.mode is GateMode.BLOCKING) if spec is not None else ({}, True)


def _table(result: Any, kept: Path | None) -> str:
    """The gate's headline, message, one row per check, and where its evidence files are (when kept)."""
    from clearance.render import text
    from clearance.render.document import Block, Heading, Para
    from clearance.render.gate import check_table, evidence_list, headline

    blocks: list[Block] = [Heading(2, headline(result))]
    if result.message:
        blocks.append(Para([result.message]))
    if result.checks:
        blocks.append(check_table(result))
    if result.evidence and kept is not None:
        blocks += [Para([f"evidence in {kept}:"]), evidence_list(result)]
    if result.metrics:
        blocks.append(Para([f"{len(result.metrics)} metrics: see --json"]))
    return text.render(blocks)
