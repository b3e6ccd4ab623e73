"""The load test of a candidate's serving endpoint: the side-effect half of the ``load_test`` gate.

The gate (``gates/load_test``) is pure: it judges a :class:`~tasks.load_generator.LoadRun` handed to it
as ``extra["load_run"]``. This module builds that run from the manifest and the gate's config:

- the target (:func:`load_target`): the manifest's ``serving_endpoint`` (HTTP, with the ``serving`` method,
  literal headers and ``secret_headers`` read from Prefect Secret blocks — a value is never logged), or its
  ``serving.sagemaker`` endpoint;
- the plan (:func:`load_plan`): rate, duration, warmup, ramp, timeout, request and connection bounds, from
  the gate's config as its own config model parses it (so the run and the verdict read the same numbers);
- the request bodies (:func:`request_bodies`): ``serving.body.sample`` rows drawn deterministically from the
  version's ``serving.body.dataset_role`` dataset (default ``eval``), the ``serving.body.columns`` (default:
  every column but the label and the contract's key columns), as JSON ``{"instances": [[…]]}`` or
  ``{"records": [{…}]}``, ``rows_per_request`` rows per request;

then :func:`tasks.load_generator.run_load` loads the target (only an allowlisted host:
``CLEARANCE_LOAD_TEST_ALLOWED_HOSTS``) and writes the latency plots into the run's evidence folder; a run whose
generator was saturated is discarded and the load offered again, up to ``generator.attempts`` runs.
:func:`run_load_test` never raises: a bad manifest, a missing secret block or an unreadable dataset is a
``LoadRun`` with ``error`` set, which the gate reports as an ``error`` check. The flow runs it through
:func:`load_test_task`, cached per run, so a resumed promotion never loads the endpoint a second time.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from clearance.config.schema import DatasetRef, ModelManifest, Serving
from gates.base import parse_gate_config
from gates.load_test.config import LoadTestConfig
from tasks.caching import per_run_key
from tasks.load_generator.models import LoadPlan, LoadRun, LoadTarget
from tasks.prefect_tasks import task

#: Most rows sampled into the body pool, whatever the manifest asks (the pool is held in memory).
MAX_SAMPLE = 100_000
#: Largest single request body built from the dataset.
MAX_BODY_BYTES = 4 << 20


class LoadSetupError(ValueError):
    """The load test cannot be set up (no target, a missing secret block, an unreadable dataset): one line."""


SecretReader = Callable[[str], str]


def read_secret_block(name: str) -> str:
    """The value of the Prefect Secret block ``name``; :class:`LoadSetupError` naming the block (never a value)."""
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    try:
        block = Secret.load(name)
        # Prefect's dual API returns a coroutine only inside an event loop; this reader is synchronous.
        assert not inspect.isawaitable(block), "read_secret_block must be called from synchronous code"
        return str(block.get())
    except (ValueError, ObjectNotFound):
        raise LoadSetupError(f"no Prefect Secret block named {name!r}") from None
    except Exception as exc:  # noqa: BLE001 — the Prefect API is unreachable: name the block, never a value
        raise LoadSetupError(f"could not read the Prefect Secret block {name!r}: {type(exc).__name__}") from None


def _serving(manifest: ModelManifest) -> Serving:
    """The manifest's ``serving`` section, or its defaults."""
    return manifest.serving or Serving()


def load_target(manifest: ModelManifest, *, endpoint: str | None = None,
                secrets: SecretReader = read_secret_block) -> LoadTarget:
    """What to load: ``endpoint`` (a pre-flight's ``--endpoint``), else the manifest's ``serving.sagemaker``
    endpoint, else its ``serving_endpoint``; secret headers resolved from their Prefect Secret blocks."""
    serving = _serving(manifest)
    method = serving.method
    headers = dict(serving.headers)
    for header, block in serving.secret_headers.items():
        try:
            headers[header] = secrets(block)
        except LoadSetupError as exc:
            raise LoadSetupError(f"serving.secret_headers.{header}: {exc}") from None
    content_type = next((v for k, v in serving.headers.items() if k.lower() == "content-type"), "application/json")
    sagemaker = serving.sagemaker
    if sagemaker is not None and endpoint is None:  # the manifest's SageMaker endpoint wins over its URL
        return LoadTarget(kind="sagemaker", endpoint_name=sagemaker.endpoint_name, region=sagemaker.region,
                          method="POST", headers=headers, content_type=sagemaker.content_type)
    url = endpoint or manifest.serving_endpoint
    if url:
        return LoadTarget(kind="http", url=url, method=method, headers=headers, content_type=content_type)
    raise LoadSetupError("nothing to load: the manifest has no serving_endpoint and no serving.sagemaker endpoint")


def gate_config(raw_config: dict[str, Any]) -> LoadTestConfig:
    """The load_test gate's config, parsed by its own config model (``GateConfigError`` when invalid): the run and
    the verdict read the same numbers."""
    config = parse_gate_config("load_test", raw_config)
    assert isinstance(config, LoadTestConfig), type(config)
    return config


def load_plan(config: LoadTestConfig) -> LoadPlan:
    """The generator's plan from the gate's parsed config (durations as seconds)."""
    return LoadPlan(rate=config.rate, duration=config.duration.total_seconds(),
                    warmup=config.warmup.total_seconds(), ramp=list(config.ramp),
                    timeout=config.timeout.total_seconds(), max_requests=config.max_requests,
                    connections=config.connections)


def _plain(value: Any) -> Any:
    """A value of a sampled row as JSON: NaN and infinities are null, dates ISO text, decimals floats."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _not_inputs(manifest: ModelManifest, version: str, ref: DatasetRef) -> set[str]:
    """Columns that are never a model input: the label (the version's ``evaluation.label``, the dataset contract's
    label column) and the rows' identity (the contract's ``key`` columns, e.g. a customer id)."""
    found: set[str] = set()
    evaluation = manifest.versions[version].evaluation
    if evaluation is not None:
        found.add(evaluation.label)
    contract = ref.contract or {}
    label = contract.get("label")
    if isinstance(label, dict) and label.get("column"):
        found.add(str(label["column"]))
    key = contract.get("key")
    found |= {str(column) for column in key} if isinstance(key, list) else set()
    return found


def request_bodies(manifest: ModelManifest, version: str, locators: dict[str, Any]) -> list[bytes]:
    """The pool of request bodies: ``serving.body`` rows of the version's dataset as JSON; ``[b""]`` when the
    manifest asks for no body and the version has no dataset of the default role."""
    import numpy as np

    from gates.data_check.reader import DatasetReader, DatasetReadError

    serving = _serving(manifest)
    body = serving.body
    role = body.dataset_role
    entry = manifest.versions[version]
    ref = next((d for d in entry.datasets if d.role == role), None)
    if ref is None:
        if "body" not in serving.model_fields_set:  # no body asked for, and nothing to sample
            return [b""]
        roles = ", ".join(d.role for d in entry.datasets) or "none"
        raise LoadSetupError(f"serving.body.dataset_role: version {version} has no {role} dataset (its roles: {roles})")
    locator = locators.get(role)
    if locator is None:
        raise LoadSetupError(f"serving.body: the {role} dataset ({ref.uri}) was not located")
    try:
        reader = DatasetReader(locator)
    except DatasetReadError as exc:
        raise LoadSetupError(f"serving.body: {exc}") from None
    columns = list(body.columns or [])
    if columns:
        missing = [c for c in columns if c not in reader.columns]
        if missing:
            raise LoadSetupError(f"serving.body.columns: the {role} dataset has no column {', '.join(missing)}")
    else:
        skipped = _not_inputs(manifest, version, ref)
        columns = [c for c in reader.columns if c not in skipped]
    if not columns or reader.num_rows == 0:
        raise LoadSetupError(f"serving.body: the {role} dataset has no rows or no input columns to send")
    wanted = min(body.sample, MAX_SAMPLE, reader.num_rows)
    # deterministic: the same version samples the same rows on every run and every machine
    seed = int.from_bytes(hashlib.sha256(f"{manifest.name}:{version}:{role}".encode()).digest()[:8], "big")
    positions = np.sort(np.random.default_rng(seed).choice(reader.num_rows, size=wanted, replace=False))
    try:
        rows = reader.take(columns, positions).to_pylist()
    except DatasetReadError as exc:
        raise LoadSetupError(f"serving.body: {exc}") from None
    rows = [{name: _plain(row[name]) for name in columns} for row in rows]
    per_request = body.rows_per_request
    records = body.format == "records"
    count = max(1, math.ceil(len(rows) / per_request))
    bodies = []
    for i in range(count):
        chunk = [rows[(i * per_request + j) % len(rows)] for j in range(per_request)]
        document = ({"records": chunk} if records else
                    {"instances": [[row[name] for name in columns] for row in chunk]})
        encoded = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
        if len(encoded) > MAX_BODY_BYTES:
            raise LoadSetupError(f"serving.body: a request of {per_request} rows is {len(encoded)} bytes, over the "
                                 f"{MAX_BODY_BYTES}-byte limit (lower rows_per_request or name fewer columns)")
        bodies.append(encoded)
    return bodies


def _where(manifest: ModelManifest, endpoint: str | None) -> str:
    """How the target is named when no :class:`LoadTarget` could be made (as ``LoadTarget.label`` names it)."""
    sagemaker = _serving(manifest).sagemaker
    if sagemaker is not None and endpoint is None:
        return f"sagemaker:{sagemaker.endpoint_name}"
    return str(endpoint or manifest.serving_endpoint or "(none)")


def run_load_test(manifest: ModelManifest, version: str, locators: dict[str, Any], raw_config: dict[str, Any],
                  evidence_dir: Path, *, endpoint: str | None = None,
                  secrets: SecretReader = read_secret_block) -> dict[str, Any]:
    """Load the candidate's endpoint as the gate's config says; the :class:`LoadRun` as JSON. Never raises:
    what stops the run before any request is a ``LoadRun`` whose ``error`` says why."""
    try:
        target = load_target(manifest, endpoint=endpoint, secrets=secrets)
        config = gate_config(raw_config)
        plan = load_plan(config)
        bodies = request_bodies(manifest, version, locators) if target.method != "GET" else [b""]
        evidence_dir.mkdir(parents=True, exist_ok=True)
        run = _measured(target, plan, bodies, evidence_dir, config)
    except Exception as exc:  # noqa: BLE001 — the gate reports it as an error check; the flow goes on
        message = str(exc) if isinstance(exc, LoadSetupError) else f"{type(exc).__name__}: {exc}"
        run = LoadRun(target=_where(manifest, endpoint), error=message)
    return run.model_dump(mode="json")


def _measured(target: LoadTarget, plan: LoadPlan, bodies: list[bytes], evidence_dir: Path,
              config: LoadTestConfig) -> LoadRun:
    """The load run, offered again (up to ``generator.attempts`` runs) while the generator was saturated: a
    stalled generator says nothing of the server. Which runs are kept is decided by the gate's own
    :func:`~gates.load_test.judge.saturated_steps` (the same limits it judges with); the verdict stays the
    gate's, on the last run, which names the ones discarded. Each run writes its plots over the last's."""
    from gates.load_test.judge import LoadRun as JudgedRun
    from gates.load_test.judge import saturated_steps
    from tasks.load_generator.run import run_load  # NumPy and HDR histograms: only when a load runs

    discarded: list[str] = []
    for attempt in range(1, config.generator.attempts + 1):
        run = run_load(target, plan, bodies, evidence_dir)
        saturated = saturated_steps(JudgedRun.model_validate(run.model_dump(mode="json")), config)
        if not saturated or run.refused is not None or run.error is not None or attempt == config.generator.attempts:
            break
        discarded.append(f"run {attempt}: " + "; ".join(saturated))
    return run.model_copy(update={"discarded": discarded})


def _locate_body_dataset(manifest: ModelManifest, version: str) -> dict[str, Any]:
    """The locator of the dataset the bodies are sampled from (no digest: the bytes are not judged here)."""
    from tasks.datasets import locate_dataset

    role = _serving(manifest).body.dataset_role
    ref = next((d for d in manifest.versions[version].datasets if d.role == role), None)
    return {role: locate_dataset(ref, compute_digest=False)} if ref is not None else {}


@task(name="load-test", persist_result=True, cache_key_fn=per_run_key)
def load_test_task(manifest: ModelManifest, version: str, config: dict[str, Any], evidence_dir: str,
                   run_id: str) -> dict[str, Any]:
    """:func:`run_load_test` in a flow run, its result stored: a resumed run gets it back, never loads again.

    ``run_id`` is part of the cache key only. The locators are made here, not passed in, so the S3 keys they
    carry never reach a task parameter.
    """
    return run_load_test(manifest, version, _locate_body_dataset(manifest, version), config, Path(evidence_dir))
