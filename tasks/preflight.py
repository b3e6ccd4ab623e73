"""Pre-flight: the inputs of one gate built from local files only, for ``clearance gate run``.

Why: a data scientist should learn that a gate fails before asking for a promotion, on their own
machine, with no Prefect server and no object store. The gate is the same pure function the flow
runs; only its inputs come from local files:

- an artifact is observed as the flow observes one in the store (:func:`tasks.candidate.observe_artifact`
  over :class:`LocalFiles`): size, SHA-256, first bytes;
- a dataset is located by :func:`tasks.datasets.locate_dataset` on its local path (a file or a folder);
- a contract is the ``contract`` of a manifest dataset entry, and a gate config the ``config`` of a
  policy's gate entry, each read from a YAML or JSON file and checked up front, so a mistake is
  ``file:line: field: message`` rather than an ``error`` check deep in the result.

Without ``--manifest`` the manifest the gate sees is synthetic (:data:`PREFLIGHT_MODEL` /
:data:`PREFLIGHT_VERSION`) and pins every local file to its own digest: digest checks pass and show
the SHA-256 to pin in the real manifest. With ``--manifest`` (what ``compliance_review`` reads: model
card, KPI, lineage, personal-data declarations, evaluation columns) the gate sees that manifest, checked
up front like a config file, and one of its versions: a local ``--dataset ROLE=PATH`` is read in place of
that role's URI (the manifest's ``sha256`` pins stay, so lineage and digest checks judge the real pins);
the regulatory mapping is ``--regulatory`` or the ``regulatory.yaml`` of the manifest's config dir; the
Markdown model card is ``--model-card``. What a pre-flight cannot check is whether the uploaded files are
these files.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from clearance.config.issues import ConfigIssue, display_path
from clearance.config.limits import current_limits
from clearance.config.messages import issues_from_validation
from clearance.config.schema import DatasetRef, ModelManifest
from clearance.config.yaml_source import read_yaml, too_big_message
from clearance.settings import get_settings
from gates.base import GateConfigError, GateInputs, parse_gate_config, registered_gates
from gates.data_check.models import DatasetContract
from tasks.candidate import observe_artifact
from tasks.datasets import locate_dataset, split_uri
from tasks.store import ObjectInfo

PREFLIGHT_MODEL = "preflight"
PREFLIGHT_VERSION = "local"
#: Dataset roles a manifest accepts (``DatasetRef.role``).
ROLES: tuple[str, ...] = get_args(DatasetRef.model_fields["role"].annotation)
CHUNK = 8 << 20


class PreflightError(ValueError):
    """Bad pre-flight input: one line per problem, each naming the file (or option) and the field."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class LocalFiles:
    """Local files seen through the three store reads an artifact observation makes (keys are paths)."""

    def head(self, key: str) -> ObjectInfo | None:
        path = Path(key)
        if not path.is_file():
            return None
        stat = path.stat()
        return ObjectInfo(key=key, size=stat.st_size, etag="",
                          last_modified=datetime.fromtimestamp(stat.st_mtime, UTC))

    def sha256_of(self, key: str) -> tuple[str, int]:
        digest, size = hashlib.sha256(), 0
        with open(key, "rb") as f:
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return digest.hexdigest(), size

    def read_range(self, key: str, start: int, length: int) -> bytes:
        with open(key, "rb") as f:
            f.seek(start)
            return f.read(max(length, 0))


# --------------------------------------------------------------------------- files people write


def _existing_file(path: Path, what: str) -> Path:
    """``path`` when it is a readable file; else a one-line error naming it."""
    if not path.exists():
        raise PreflightError(f"{what} {display_path(path)}: no such file")
    if not path.is_file():
        raise PreflightError(f"{what} {display_path(path)}: not a file")
    return path


def read_mapping(path: Path, what: str) -> tuple[dict[str, Any], dict[tuple[object, ...], int], str]:
    """A YAML or JSON file holding one mapping: ``(data, lines, file)``; lines are empty for JSON.

    YAML is read as configs are (:func:`clearance.config.yaml_source.read_yaml`: line numbers, duplicate
    keys refused, the config size limit); ``.json`` with :mod:`json` (PyYAML refuses tab indentation).
    """
    _existing_file(path, what)
    shown = display_path(path)
    if path.suffix.lower() == ".json":
        limit = current_limits().max_file_bytes
        size = path.stat().st_size
        if size > limit:
            raise PreflightError(f"{shown}: {too_big_message(size, limit)}")
        try:
            data = json.loads(path.read_bytes())
        except json.JSONDecodeError as exc:
            raise PreflightError(f"{shown}:{exc.lineno}: JSON syntax error: {exc.msg}") from None
        except (UnicodeDecodeError, OSError) as exc:
            raise PreflightError(f"{shown}: cannot read: {exc}") from None
        lines: dict[tuple[object, ...], int] = {}
    else:
        doc = read_yaml(path)
        if doc.issues:
            raise PreflightError([str(issue) for issue in doc.issues])
        data, lines = doc.data, dict(doc.lines)
    if not isinstance(data, dict):
        raise PreflightError(f"{shown}: must be a mapping (key: value) — the {what} itself")
    return data, lines, shown


def _problems(issues: list[ConfigIssue]) -> PreflightError:
    return PreflightError([str(issue) for issue in issues])


def load_contract(path: Path) -> dict[str, Any]:
    """A dataset contract (the ``contract`` of a manifest dataset entry), checked against the contract model."""
    data, lines, shown = read_mapping(path, "contract")
    try:
        DatasetContract.model_validate(data)
    except ValidationError as exc:
        raise _problems(issues_from_validation(exc.errors(), DatasetContract, shown, lines)) from None
    return data


def load_gate_config(gate_id: str, path: Path) -> dict[str, Any]:
    """A gate's config (the ``config`` of a policy's gate entry), checked by the gate's own config model."""
    data, lines, shown = read_mapping(path, "config")
    try:
        parse_gate_config(gate_id, data)
    except GateConfigError as exc:
        cause = exc.__cause__
        if not isinstance(cause, ValidationError):
            raise PreflightError(f"{shown}: {exc}") from None
        model: type[BaseModel] = registered_gates()[gate_id].config_model
        raise _problems(issues_from_validation(cause.errors(), model, shown, lines)) from None
    return data


def load_manifest_file(path: Path) -> ModelManifest:
    """A model manifest (``configs/models/<name>.yaml``), checked against the manifest model."""
    data, lines, shown = read_mapping(path, "manifest")
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:
        raise _problems(issues_from_validation(exc.errors(), ModelManifest, shown, lines)) from None


def pick_version(manifest: ModelManifest, wanted: str | None, shown: str) -> str:
    """``wanted``, else the manifest's only version, else the last one listed; an unknown one names them."""
    listed = list(manifest.versions)
    if wanted is None:
        return listed[-1]
    if wanted not in manifest.versions:
        raise PreflightError(f"--version {wanted}: {shown} has no such version (versions: {', '.join(listed)})")
    return wanted


def load_regulatory(path: Path) -> dict[str, Any]:
    """The regulatory mapping (``configs/regulatory.yaml``), checked as the config loader checks it, as JSON."""
    from clearance.config import ConfigError
    from clearance.config import load_regulatory as load_regulatory_yaml
    from gates.compliance_review.regulatory import RegulatoryMap

    _existing_file(path, "--regulatory")
    if path.suffix.lower() != ".json":
        try:
            return load_regulatory_yaml(path).model_dump(mode="json")
        except ConfigError as exc:
            raise _problems(list(exc.issues)) from None
    data, lines, shown = read_mapping(path, "regulatory mapping")
    try:
        return RegulatoryMap.model_validate(data).model_dump(mode="json")
    except ValidationError as exc:
        raise _problems(issues_from_validation(exc.errors(), RegulatoryMap, shown, lines)) from None


def default_regulatory(manifest: Path) -> Path | None:
    """``regulatory.yaml`` of the config dir holding ``manifest`` (``<configs>/models/<name>.yaml``), if any."""
    folder = manifest.resolve().parent
    for root in (folder.parent, folder) if folder.name == "models" else (folder,):
        for name in ("regulatory.yaml", "regulatory.yml"):
            if (root / name).is_file():
                return root / name
    return None


def read_model_card(path: Path) -> str:
    """A Markdown model card: UTF-8 text of at most the gate's limit (``MAX_CARD_BYTES``)."""
    from gates.compliance_review.model_card import MAX_CARD_BYTES

    _existing_file(path, "--model-card")
    shown = display_path(path)
    size = path.stat().st_size
    if size > MAX_CARD_BYTES:
        raise PreflightError(f"--model-card {shown}: {size} bytes, over the {MAX_CARD_BYTES}-byte limit of a "
                             "model card")
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PreflightError(f"--model-card {shown}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise PreflightError(f"--model-card {shown}: cannot read: {exc}") from None


# --------------------------------------------------------------------------- the gate's inputs


def local_gate_inputs(*, artifacts: list[Path] | None = None, datasets: dict[str, Path] | None = None,
                      contracts: dict[str, Path] | None = None, every_contract: Path | None = None,
                      requirements: Path | None = None, evidence_dir: Path | None = None,
                      manifest: Path | None = None, version: str | None = None, model_card: Path | None = None,
                      regulatory: Path | None = None, regulatory_tags: list[str] | None = None) -> GateInputs:
    """The :class:`GateInputs` of a pre-flight run on local files; :class:`PreflightError` for bad input.

    ``contracts`` maps a dataset role to its contract file; ``every_contract`` is the contract of
    every dataset without one of its own. ``requirements`` goes to ``extra["requirements"]`` (an
    absolute path; also ``bundle_files``, for the secrets check) for gates that read it, each artifact's
    path to ``extra["artifact_files"]`` and the settings' advisory database (``CLEARANCE_ADVISORY_DB``)
    to ``extra["advisory_db"]``; ``extra["preflight"]`` is true, for a gate that must behave
    differently off the flow (no storage posture is read: there is no bucket). Nothing here judges the
    files: a file that cannot be parsed is the gate's to report.

    With ``manifest`` the gate sees that manifest and its ``version`` (see :func:`pick_version`); each
    ``datasets`` role must be one of that version's, and is read from its local path instead of the URI;
    a version dataset given no local path is read only when its URI is a local path (else it is named in
    ``extra["preflight_unread"]``: role → URI). ``extra["regulatory_map"]`` comes from ``regulatory`` (or
    the manifest's config dir), ``extra["regulatory_tags"]`` from ``regulatory_tags`` (the tier's, from a
    ``--policy``), ``extra["model_card_markdown"]`` from ``model_card``.
    """
    datasets, contracts = dict(datasets or {}), dict(contracts or {})
    problems: list[str] = []
    for option, given in (("--dataset", datasets), ("--contract", contracts)):
        problems += [f"{option} {role}={display_path(path)}: unknown dataset role {role!r} (roles: {', '.join(ROLES)})"
                     for role, path in given.items() if role not in ROLES]
    for role in contracts:
        if role in ROLES and role not in datasets and manifest is None:
            problems.append(f"--contract {role}={display_path(contracts[role])}: no --dataset {role}=PATH to apply "
                            f"it to")
    files = [("--artifact", path) for path in artifacts or []]
    files += [("--requirements", requirements)] if requirements is not None else []
    files += [(option, path) for option, path in (("--manifest", manifest), ("--model-card", model_card),
                                                  ("--regulatory", regulatory)) if path is not None]
    for option, path in files:
        try:
            _existing_file(path, option)
        except PreflightError as exc:
            problems += exc.problems
    for role, path in datasets.items():
        if not path.exists():
            problems.append(f"--dataset {role}={display_path(path)}: no such file or folder")
    if version is not None and manifest is None:
        problems.append(f"--version {version}: give the --manifest it is a version of")
    if problems:
        raise PreflightError(problems)

    loaded: dict[Path, dict[str, Any]] = {}

    def contract_of(role: str, own: dict[str, Any]) -> dict[str, Any]:
        contract_file = contracts.get(role) or (None if own else every_contract)
        if contract_file is None:
            return own
        if contract_file not in loaded:
            loaded[contract_file] = load_contract(contract_file)
        return loaded[contract_file]

    extra: dict[str, Any] = {"preflight": True}
    locators: dict[str, Any] = {}
    observations = [observe_artifact(LocalFiles(), display_path(path)) for path in artifacts or []]
    if manifest is not None:
        real = load_manifest_file(manifest)
        model, chosen = real.name, pick_version(real, version, display_path(manifest))
        entry = real.versions[chosen]
        declared = [ref.role for ref in entry.datasets]
        unknown = [f"--dataset {role}={display_path(path)}: version {chosen} of {display_path(manifest)} has no "
                   f"{role} dataset (its roles: {', '.join(declared) or 'none'})"
                   for role, path in datasets.items() if role not in declared]
        unknown += [f"--contract {role}={display_path(path)}: version {chosen} of {display_path(manifest)} has no "
                    f"{role} dataset (its roles: {', '.join(declared) or 'none'})"
                    for role, path in contracts.items() if role not in declared]
        if unknown:
            raise PreflightError(unknown)
        unread: dict[str, str] = {}
        for ref in entry.datasets:
            contract = contract_of(ref.role, ref.contract)
            local = datasets.get(ref.role)
            if local is None and not (split_uri(ref.uri, get_settings())[0] == "local" and Path(ref.uri).exists()):
                unread[ref.role] = ref.uri
                continue
            # read from the local path; the manifest keeps its URI and its sha256 pin
            reading = ref.model_copy(update={"uri": str(local.resolve()) if local else ref.uri, "contract": contract})
            locators[ref.role] = locate_dataset(reading, compute_digest=True)
        if unread:
            extra["preflight_unread"] = unread
        manifest_json = real.model_dump(mode="json")
        for ref_json in manifest_json["versions"][chosen]["datasets"]:  # the contracts the run would apply
            ref_json["contract"] = contract_of(ref_json["role"], ref_json.get("contract") or {})
        if model_card is None and entry.model_card:
            extra["model_card_error"] = (f"{entry.model_card}: not read by a pre-flight (give --model-card FILE)")
        regulatory = regulatory or default_regulatory(manifest)
    else:
        model, chosen = PREFLIGHT_MODEL, PREFLIGHT_VERSION
        refs: list[dict[str, Any]] = []
        for role, path in datasets.items():
            ref = DatasetRef.model_validate({"role": role, "uri": str(path.resolve()),
                                             "contract": contract_of(role, {})})
            locator = locate_dataset(ref, compute_digest=True)
            locators[role] = locator
            # pinned to its own digest: the digest check passes and shows the sha256 to pin in the manifest
            refs.append(ref.model_copy(update={"sha256": locator.sha256}).model_dump(mode="json"))
        pinned = [{"key": o.key, "sha256": o.sha256, "size": o.size} for o in observations]
        manifest_json = {"name": PREFLIGHT_MODEL, "versions": {
            PREFLIGHT_VERSION: {"artifacts": pinned, "datasets": refs, "notes": "pre-flight"}}}
    if model_card is not None:
        extra["model_card_markdown"] = read_model_card(model_card)
    if regulatory is not None:
        extra["regulatory_map"] = load_regulatory(regulatory)
    if regulatory_tags is not None:
        extra["regulatory_tags"] = list(regulatory_tags)
    if artifacts:  # the bytes themselves, for gates that read them (security_scan); keys are the display paths
        extra["artifact_files"] = {o.key: str(path.resolve()) for o, path in zip(observations, artifacts, strict=True)}
    if requirements is not None:
        extra["requirements"] = str(requirements.resolve())
        extra["requirements_key"] = display_path(requirements)
        extra["bundle_root"] = str(requirements.resolve().parent)  # where its -r/-c includes may be read from
        extra["bundle_files"] = {display_path(requirements): str(requirements.resolve())}  # the secrets check
    settings = get_settings()
    if settings.advisory_db is not None:
        extra["advisory_db"] = str(settings.advisory_db)
    extra["advisory_max_age"] = settings.advisory_max_age.total_seconds()
    if evidence_dir is not None:
        extra["evidence_dir"] = str(evidence_dir)
    return GateInputs(model=model, version=chosen, manifest=manifest_json, artifacts=observations,
                      datasets=locators, extra=extra)


# --------------------------------------------------------------------------- load test and cost


def with_endpoint(inputs: GateInputs, endpoint: str | None) -> GateInputs:
    """``inputs`` whose manifest serves at ``endpoint`` (``--endpoint``), the URL the load test loads."""
    if endpoint is None:
        return inputs
    return inputs.model_copy(update={"manifest": {**inputs.manifest, "serving_endpoint": endpoint}})


def _manifest_model(inputs: GateInputs) -> ModelManifest:
    """The gate's manifest as the model; a synthetic one (no ``--manifest``) gets a placeholder owner and tier."""
    data = dict(inputs.manifest)
    if inputs.model == PREFLIGHT_MODEL and "owner" not in data:  # synthetic: no owner, tier, maybe no artifact
        data |= {"owner": PREFLIGHT_MODEL, "risk_tier": PREFLIGHT_MODEL}
        version = dict(data["versions"][inputs.version])
        version["artifacts"] = version.get("artifacts") or [{"key": "(none)", "sha256": "0" * 64}]
        data["versions"] = {inputs.version: version}
    try:
        return ModelManifest.model_validate(data)
    except ValidationError as exc:  # --endpoint is the only field set here that the manifest file did not check
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PreflightError(f"--endpoint: {where}: {first['msg']}") from None


def preflight_load_run(inputs: GateInputs, load_config: dict[str, Any]) -> dict[str, Any]:
    """The load run (``extra["load_run"]``) of a pre-flight: :func:`tasks.load_test.run_load_test` on the
    manifest's ``serving_endpoint`` (``--endpoint`` via :func:`with_endpoint`), or its SageMaker endpoint,
    request bodies sampled from the local datasets. Only an allowlisted host is loaded
    (``CLEARANCE_LOAD_TEST_ALLOWED_HOSTS``); :class:`PreflightError` when there is nothing to load."""
    from tasks.load_test import run_load_test

    manifest = _manifest_model(inputs)
    serving = getattr(manifest, "serving", None)
    if not manifest.serving_endpoint and getattr(serving, "sagemaker", None) is None:
        raise PreflightError("nothing to load: give --endpoint URL (the server to load; its host must be in "
                             "CLEARANCE_LOAD_TEST_ALLOWED_HOSTS), or a --manifest with serving_endpoint or "
                             "serving.sagemaker")
    folder = Path(inputs.extra.get("evidence_dir") or ".")
    return run_load_test(manifest, inputs.version, inputs.datasets, load_config, folder)


def allow_hint(load_run: dict[str, Any]) -> str | None:
    """For a target the allowlist refused: how to allow it (one line), else None."""
    if not load_run.get("refused"):
        return None
    from urllib.parse import urlsplit

    target = str(load_run.get("target") or "")
    if target.startswith("sagemaker:"):
        entry = target
    else:
        parts = urlsplit(target)
        entry = parts.netloc.rpartition("@")[2] or target
    return (f"note: the load generator only loads allowlisted hosts: to allow this one, "
            f"export CLEARANCE_LOAD_TEST_ALLOWED_HOSTS='{entry}' (comma-separated host or host:port entries)")


def default_prices(*anchors: Path | None) -> Path | None:
    """``prices.yaml`` of the config dir holding the first anchor (a manifest under ``models/`` or a policy under
    ``policies/``) that has one."""
    for anchor in anchors:
        if anchor is None:
            continue
        folder = anchor.resolve().parent
        for root in (folder.parent, folder) if folder.name in ("models", "policies") else (folder,):
            for name in ("prices.yaml", "prices.yml"):
                if (root / name).is_file():
                    return root / name
    return None


def load_prices(path: Path) -> dict[str, float]:
    """A price table (``configs/prices.yaml``), checked with file:line errors, as the JSON the flow hands the cost
    gate (``extra["price_table"]``: instance type → USD per instance-hour)."""
    from clearance.config import ConfigError
    from clearance.config import load_prices as load_prices_yaml

    try:
        return dict(load_prices_yaml(path).prices)
    except ConfigError as exc:
        raise _problems(list(exc.issues)) from None
