"""The ``security_scan`` gate on local files: its checks, config, evidence, tightening, and `clearance gate run`.

Malicious pickles here are built with ``__reduce__`` and ``pickle.dumps`` (dumping never runs the
payload) or written opcode by opcode; nothing in this file ever loads one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from clearance.app.cli import app
from clearance.config import ConfigError, PolicyOverrides, effective_policy
from clearance.config.schema import Policy
from gates.base import GateInputs, GateResult, Status, run_gate
from gates.security_scan.checks import CATALOGUE
from gates.security_scan.config import Action, AdvisorySeverity, SecurityScanConfig
from gates.security_scan.evidence import TABLE_NAME
from tasks.preflight import local_gate_inputs

REPO = Path(__file__).resolve().parents[2]
HIGH = REPO / "configs" / "policies" / "high.yaml"
runner = CliRunner()
AWS_KEY = "AKIAZ7QH3XNBR4TYUW2P"  # shaped like an access key id; not a real one


class Evil:
    """Pickles to ``os.system("echo pwned")`` (posix.system): never unpickle it."""

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, ("echo pwned",)


class Strange:
    """A class of this test module: on no allowlist (unknown)."""

    def __init__(self) -> None:
        self.value = 1


def clean_joblib(path: Path) -> Path:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 3))
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, (x[:, 0] > 0).astype(int))
    joblib.dump(model, path)
    return path


def evil_joblib(path: Path) -> Path:
    joblib.dump({"weights": np.arange(4.0), "hook": Evil()}, path)
    return path


def strange_joblib(path: Path) -> Path:
    joblib.dump({"weights": np.arange(4.0), "extra": Strange()}, path)
    return path


def osv(path: Path, ident: str, package: str, fixed: str, severity: str | None, modified: datetime) -> None:
    record: dict[str, Any] = {
        "schema_version": "1.6.0", "id": ident, "modified": modified.isoformat().replace("+00:00", "Z"),
        "aliases": [f"CVE-2099-{abs(hash(ident)) % 10000:04d}"], "summary": f"{package} is broken",
        "affected": [{"package": {"ecosystem": "PyPI", "name": package},
                      "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]}
    if severity:
        record["database_specific"] = {"severity": severity}
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{ident}.json").write_text(json.dumps(record))


@pytest.fixture
def advisory_db(tmp_path: Path) -> Path:
    folder = tmp_path / "osv"
    now = datetime.now(UTC)
    osv(folder, "GHSA-crit-0001", "pyyaml", "5.4", "CRITICAL", now)
    osv(folder, "GHSA-mod-00002", "jinja2", "3.1.3", "MODERATE", now)
    osv(folder, "GHSA-none-0003", "requests", "2.32.0", None, now)
    return folder


def inputs(tmp_path: Path, artifacts: list[Path] | None = None, requirements: Path | None = None,
           **extra: Any) -> GateInputs:
    built = local_gate_inputs(artifacts=artifacts or [], requirements=requirements, evidence_dir=tmp_path / "ev")
    return built.model_copy(update={"extra": built.extra | extra})


def scan(gate_inputs: GateInputs, config: dict[str, Any] | None = None) -> GateResult:
    return run_gate("security_scan", gate_inputs, config or {})


def checks(result: GateResult) -> dict[str, Any]:
    return {c.id: c for c in result.checks}


def table(tmp_path: Path) -> dict[str, Any]:
    return json.loads((tmp_path / "ev" / TABLE_NAME).read_text())


# --------------------------------------------------------------------------- model files


def test_a_clean_scikit_learn_joblib_passes_with_every_callable_allowed(tmp_path):
    model = clean_joblib(tmp_path / "model.joblib")
    result = scan(inputs(tmp_path, [model]))
    by_id = checks(result)
    key = str(model)
    assert by_id[f"model_file:{key}"].status is Status.PASS
    assert by_id[f"model_file:{key}"].observed == "joblib"
    assert by_id[f"callables:{key}"].status is Status.PASS, by_id[f"callables:{key}"].message
    assert result.status is Status.PASS, [(c.id, c.status, c.message) for c in result.problems()]
    rows = table(tmp_path)
    assert rows["files"][0] == {"file": key, "format": "joblib", "size": model.stat().st_size,
                                "sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "members": [],
                                "problems": []}
    names = {row["callable"] for row in rows["callables"]}
    assert "sklearn.pipeline.Pipeline" in names and "joblib.numpy_pickle.NumpyArrayWrapper" in names
    assert {row["verdict"] for row in rows["callables"]} == {"allowed"}
    assert all(isinstance(row["offset"], int) for row in rows["callables"])
    assert result.evidence[0].name == TABLE_NAME
    assert result.input_digests == {key: hashlib.sha256(model.read_bytes()).hexdigest()}


def test_a_poisoned_joblib_fails_naming_file_offset_and_callable(tmp_path):
    model = evil_joblib(tmp_path / "evil.joblib")
    result = scan(inputs(tmp_path, [model]))
    check = checks(result)[f"callables:{model}"]
    assert result.status is Status.FAIL and check.status is Status.FAIL
    assert check.observed.startswith("1 denied")
    assert "denied: posix.system at byte " in check.message and str(model) in check.message
    denied = [row for row in table(tmp_path)["callables"] if row["verdict"] == "denied"]
    assert {row["callable"] for row in denied} == {"posix.system"}
    assert [row["opcode"] for row in denied] == ["STACK_GLOBAL", "REDUCE"]  # imported, then called
    # the offset points at the opcode that imports it, in the file's own bytes
    offset = denied[0]["offset"]
    assert f"at byte {offset} " in check.message
    assert b"posix" in model.read_bytes()[max(0, offset - 40):offset + 1]


def test_a_callable_on_no_list_warns_or_fails_as_the_tier_says(tmp_path):
    model = strange_joblib(tmp_path / "model.joblib")
    warned = scan(inputs(tmp_path, [model]))
    check = checks(warned)[f"callables:{model}"]
    assert check.status is Status.WARN and warned.status is Status.WARN
    assert f"not on the allowlist: {__name__}.Strange at byte" in check.message
    failed = scan(inputs(tmp_path, [model]), {"unknown_callable": "fail"})
    assert checks(failed)[f"callables:{model}"].status is Status.FAIL
    allowed = scan(inputs(tmp_path, [model]), {"allow": [f"{__name__}.Strange"]})
    assert checks(allowed)[f"callables:{model}"].status is Status.PASS


def test_deny_adds_to_the_denylist(tmp_path):
    model = clean_joblib(tmp_path / "model.joblib")
    result = scan(inputs(tmp_path, [model]), {"deny": ["sklearn.linear_model"]})
    check = checks(result)[f"callables:{model}"]
    assert check.status is Status.FAIL and "sklearn.linear_model._logistic.LogisticRegression" in check.message


def test_formats_the_tier_does_not_accept_fail(tmp_path):
    model = clean_joblib(tmp_path / "model.pkl")  # a pickle stream named .pkl: plain pickle
    result = scan(inputs(tmp_path, [model]))
    check = checks(result)[f"model_file:{model}"]
    assert check.status is Status.FAIL and "format 'pickle' is not allowed" in check.message
    assert checks(scan(inputs(tmp_path, [model]), {"allowed_formats": ["pickle"]}))[f"model_file:{model}"].status \
        is Status.PASS


def test_a_truncated_pickle_is_an_error_never_a_pass(tmp_path):
    whole = clean_joblib(tmp_path / "whole.joblib").read_bytes()
    cut = tmp_path / "cut.joblib"
    cut.write_bytes(whole[: len(whole) // 2])
    result = scan(inputs(tmp_path, [cut]))
    assert result.status is Status.ERROR
    problem = checks(result)[f"model_format:{cut}"]
    assert problem.status is Status.ERROR and "byte" in problem.message


def test_missing_local_copies_are_skipped_errors_or_failures_never_passes(tmp_path):
    model = clean_joblib(tmp_path / "model.joblib")
    base = inputs(tmp_path, [model])
    without = base.model_copy(update={"extra": {k: v for k, v in base.extra.items() if k != "artifact_files"}})
    assert checks(scan(without))["model_files"].status is Status.SKIPPED
    key = str(model)
    gone = base.model_copy(update={"extra": base.extra | {"artifact_files": {key: str(tmp_path / "gone")}}})
    assert checks(scan(gone))[f"model_file:{key}"].status is Status.ERROR
    for why, status in (("not found", Status.FAIL),
                        ("content differs from the pinned sha256: s3://b/k has sha256 00…", Status.FAIL),
                        ("could not read: StoreUnavailable: down", Status.ERROR)):
        broken = base.model_copy(update={"extra": base.extra | {"artifact_files": {}, "artifact_errors": {key: why}}})
        check = checks(scan(broken))[f"model_file:{key}"]
        assert check.status is status and why in check.message


# --------------------------------------------------------------------------- dependencies


def test_pinned_requirements_against_the_advisory_database(tmp_path, advisory_db):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("pyyaml==5.3.1\njinja2==3.1.2\nrequests==2.31.0\nnumpy==2.0.0\nscipy>=1.0\n")
    result = scan(inputs(tmp_path, requirements=requirements, advisory_db=str(advisory_db)))
    by_id = checks(result)
    critical = by_id["advisory:pyyaml:GHSA-crit-0001"]
    assert critical.status is Status.FAIL
    assert "pyyaml==5.3.1 (requirements.txt:1) is affected by GHSA-crit-0001 (CVE-2099-" in critical.message
    assert "severity critical" in critical.message and "fixed in 5.4" in critical.message
    assert by_id["advisory:jinja2:GHSA-mod-00002"].status is Status.WARN  # moderate: below fail_at high
    assert by_id["advisory:requests:GHSA-none-0003"].status is Status.WARN  # no severity: unknown_severity warn
    assert by_id["requirement:requirements.txt:5"].status is Status.WARN  # scipy>=1.0: unpinned
    assert by_id["dependencies"].status is Status.PASS and by_id["advisory_db"].status is Status.PASS
    assert by_id["advisory_db_age"].status is Status.PASS
    assert "advisory:numpy" not in " ".join(by_id)
    strict = scan(inputs(tmp_path, requirements=requirements, advisory_db=str(advisory_db)),
                  {"dependencies": {"fail_at": "moderate", "unpinned": "fail", "unknown_severity": "fail"}})
    assert {c.id for c in strict.checks if c.status is Status.FAIL} == {
        "advisory:pyyaml:GHSA-crit-0001", "advisory:jinja2:GHSA-mod-00002", "advisory:requests:GHSA-none-0003",
        "requirement:requirements.txt:5"}
    rows = table(tmp_path)["advisories"]
    assert {r["advisory"] for r in rows} == {"GHSA-crit-0001", "GHSA-mod-00002", "GHSA-none-0003"}


def test_an_old_database_warns_and_shows_its_age(tmp_path, advisory_db):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.0.0\n")
    later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    result = scan(inputs(tmp_path, requirements=requirements, advisory_db=str(advisory_db), now=later))
    age = checks(result)["advisory_db_age"]
    assert age.status is Status.WARN and "refresh it" in age.message
    assert float(age.observed.rstrip("d")) >= 29
    assert table(tmp_path)["advisory_db"]["age_seconds"] >= 29 * 86400


def test_dependencies_missing_inputs_are_skipped_or_fail_as_configured(tmp_path, advisory_db):
    by_id = checks(scan(inputs(tmp_path)))
    assert by_id["dependencies"].status is Status.SKIPPED
    assert checks(scan(inputs(tmp_path), {"dependencies": {"required": True}}))["dependencies"].status is Status.FAIL
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.0.0\n")
    no_db = checks(scan(inputs(tmp_path, requirements=requirements)))
    assert no_db["dependencies"].status is Status.PASS and no_db["advisory_db"].status is Status.SKIPPED
    assert "CLEARANCE_ADVISORY_DB" in no_db["advisory_db"].message
    bad_db = checks(scan(inputs(tmp_path, requirements=requirements, advisory_db=str(tmp_path / "nope"))))
    assert bad_db["advisory_db"].status is Status.ERROR
    named_missing = inputs(tmp_path, requirements_key="candidates/m/1/requirements.txt", requirements_error="not found")
    assert checks(scan(named_missing))["dependencies"].status is Status.FAIL


# --------------------------------------------------------------------------- secrets


def test_secrets_fail_with_file_and_line_and_are_masked_everywhere(tmp_path):
    config_file = tmp_path / "bundle" / "conf" / "app.yaml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(f"name: churn\naws_access_key_id: {AWS_KEY}\n")
    given = {"candidates/m/1/conf/app.yaml": str(config_file)}
    result = scan(inputs(tmp_path, bundle_files=given, bundle_root=str(tmp_path / "bundle"),
                         bundle_skipped={"candidates/m/1/big.json": "over the limit"}))
    by_id = checks(result)
    found = by_id["secrets:candidates/m/1/conf/app.yaml"]
    assert found.status is Status.FAIL and "line 2: aws-access-key-id" in found.message
    assert by_id["not_scanned:candidates/m/1/big.json"].status is Status.SKIPPED
    assert by_id["secrets"].status is Status.PASS
    assert AWS_KEY not in result.model_dump_json() and AWS_KEY not in (tmp_path / "ev" / TABLE_NAME).read_text()
    assert table(tmp_path)["secrets"][0]["file"] == "candidates/m/1/conf/app.yaml"
    warned = scan(inputs(tmp_path, bundle_files=given, bundle_root=str(tmp_path / "bundle")), {"secrets": "warn"})
    assert checks(warned)["secrets:candidates/m/1/conf/app.yaml"].status is Status.WARN
    assert checks(scan(inputs(tmp_path)))["secrets"].status is Status.SKIPPED


# --------------------------------------------------------------------------- storage


def reading(state: str, reason: str | None = None) -> dict[str, Any]:
    return {"state": state, "reason": reason, "detail": "", "error": None, "calls": []}


def posture(bucket: str = "clearance", **states: dict[str, Any]) -> dict[str, Any]:
    aspects = {"encryption": reading("on"), "versioning": reading("on"), "public_access_block": reading("on"),
               "policy": reading("on")}
    return {"bucket": bucket, "role": "clearance", "endpoint": None, **aspects, **states}


def test_storage_posture_unknown_warns_off_fails_when_required_absent_is_skipped(tmp_path):
    given = [posture(public_access_block=reading("unknown", "not-implemented"), versioning=reading("off"))]
    result = scan(inputs(tmp_path, storage_posture=given), {"storage": {"require": ["policy"]}})
    by_id = checks(result)
    assert by_id["storage:clearance:public_access_block"].status is Status.WARN
    assert by_id["storage:clearance:versioning"].status is Status.WARN
    assert by_id["storage:clearance:encryption"].status is Status.PASS
    strict = checks(scan(inputs(tmp_path, storage_posture=given),
                         {"storage": {"unknown": "fail", "require": ["versioning"]}}))
    assert strict["storage:clearance:public_access_block"].status is Status.FAIL
    assert strict["storage:clearance:versioning"].status is Status.FAIL
    preflight = checks(scan(inputs(tmp_path)))["storage"]
    assert preflight.status is Status.SKIPPED and "pre-flight" in preflight.message
    assert checks(scan(inputs(tmp_path, storage_posture=[])))["storage"].status is Status.ERROR


# --------------------------------------------------------------------------- the gate as a whole


def test_nothing_given_is_skipped_never_pass(tmp_path):
    result = scan(inputs(tmp_path))
    assert result.status is Status.SKIPPED
    assert {c.status for c in result.checks} == {Status.SKIPPED}


def test_every_check_id_is_in_the_catalogue(tmp_path, advisory_db):
    model = evil_joblib(tmp_path / "evil.joblib")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(f"pyyaml==5.3.1\nscipy>=1\n# {AWS_KEY}\n")
    result = scan(inputs(tmp_path, [model], requirements, advisory_db=str(advisory_db),
                         storage_posture=[posture()]))
    patterns = [p.split("<", 1)[0] for p in CATALOGUE]
    for check in result.checks:
        assert any(check.id == p or (p.endswith(":") and check.id.startswith(p)) for p in patterns), check.id
    assert {c.id.split(":")[0] for c in result.checks} >= {
        "model_file", "callables", "dependencies", "requirement", "advisory_db", "advisory_db_age", "advisory",
        "secrets", "storage"}


def test_config_rejects_unknown_frameworks_aspects_and_names():
    for bad in ({"frameworks": ["numpy", "tensorflow"]}, {"storage": {"require": ["encrypted"]}},
                {"allow": ["os system"]}, {"unknown_callable": "maybe"}, {"dependencies": {"fail_at": "severe"}},
                {"limits": {"max_depth": 0}}, {"surprise": 1}):
        with pytest.raises(ValueError):
            SecurityScanConfig.model_validate(bad)
    assert Action.WARN < Action.FAIL and AdvisorySeverity.MODERATE < AdvisorySeverity.HIGH
    assert SecurityScanConfig().limits.to_scan_limits().max_depth == 3


# --------------------------------------------------------------------------- a manifest only tightens


def policy_with_scan(config: dict[str, Any]) -> Policy:
    return Policy.model_validate({"tier": "high", "gates": [{"id": "security_scan", "config": config}]})


BASE_SCAN = {"deny": ["mylib.io"], "unknown_callable": "warn", "storage": {"require": ["policy"]},
             "dependencies": {"fail_at": "high"}, "allowed_formats": ["joblib", "onnx"]}


def tighten(config: dict[str, Any]) -> Policy:
    overrides = PolicyOverrides.model_validate({"gates": [{"id": "security_scan", "config": config}]})
    return effective_policy(policy_with_scan(BASE_SCAN), overrides, source="models/m.yaml")


@pytest.mark.parametrize("config", [
    {"deny": ["mylib.io", "mylib.net"]}, {"unknown_callable": "fail"},
    {"storage": {"require": ["policy", "versioning"]}},
    {"dependencies": {"fail_at": "moderate"}}, {"allowed_formats": ["onnx"]}, {"secrets": "fail"},
    {"limits": {"max_depth": 1}},
])
def test_a_manifest_may_tighten(config):
    spec = tighten(config).gate("security_scan")
    assert spec is not None


@pytest.mark.parametrize(("config", "fragment"), [
    ({"deny": []}, "removes [mylib.io]"),
    ({"unknown_callable": "warn", "secrets": "warn"}, "secrets: warn is looser than the high tier's fail"),
    ({"storage": {"require": []}}, "removes [policy]"),
    ({"dependencies": {"fail_at": "critical"}}, "critical is looser than the high tier's high"),
    ({"allowed_formats": ["joblib", "pickle"]}, "adds [pickle]"),
    ({"limits": {"max_depth": 9}}, "9 is looser than the high tier's 3"),
])
def test_a_manifest_may_not_loosen(config, fragment):
    with pytest.raises(ConfigError) as info:
        tighten(config)
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- clearance gate run


def gate_run(*args: object):
    return runner.invoke(app, ["gate", "run", "security_scan", *map(str, args)])


def test_cli_exit_codes_pass_fail_error(tmp_path):
    clean = clean_joblib(tmp_path / "model.joblib")
    result = gate_run("--artifact", clean)
    assert result.exit_code == 0, result.output
    evil = evil_joblib(tmp_path / "evil.joblib")
    result = gate_run("--artifact", evil)
    assert result.exit_code == 1
    assert f"callables:{evil}" in result.stdout and "posix.system" in result.stdout
    cut = tmp_path / "cut.joblib"
    cut.write_bytes(clean.read_bytes()[:100])
    assert gate_run("--artifact", cut).exit_code == 2
    parsed = GateResult.model_validate_json(gate_run("--artifact", evil, "--json").stdout)
    assert parsed.status is Status.FAIL


def test_cli_warn_is_exit_0_and_requirements_and_advisory_db_reach_the_gate(tmp_path, advisory_db, monkeypatch):
    from clearance.settings import get_settings

    monkeypatch.setenv("CLEARANCE_ADVISORY_DB", str(advisory_db))
    get_settings.cache_clear()
    try:
        strange = strange_joblib(tmp_path / "model.joblib")
        requirements = tmp_path / "requirements.txt"
        requirements.write_text("jinja2==3.1.2\n")
        result = gate_run("--artifact", strange, "--requirements", requirements, "--json")
        assert result.exit_code == 0, result.output
        parsed = GateResult.model_validate_json(result.stdout)
        by_id = checks(parsed)
        assert parsed.status is Status.WARN
        assert by_id["advisory:jinja2:GHSA-mod-00002"].status is Status.WARN
        assert by_id["storage"].status is Status.SKIPPED
        requirements.write_text("pyyaml==5.3.1\n")
        assert gate_run("--artifact", strange, "--requirements", requirements).exit_code == 1
    finally:
        get_settings.cache_clear()


def test_cli_config_file_and_the_high_policy(tmp_path):
    strange = strange_joblib(tmp_path / "model.joblib")
    config = tmp_path / "scan.yaml"
    config.write_text(yaml.safe_dump({"unknown_callable": "fail"}))
    assert gate_run("--artifact", strange, "--config", config).exit_code == 1
    config.write_text(yaml.safe_dump({"unknown_callable": "sometimes"}))
    bad = gate_run("--artifact", strange, "--config", config)
    assert bad.exit_code == 2 and f"{config}:1: unknown_callable" in bad.stderr
    # the high tier: only allowlisted joblib, and a requirements file is required
    clean = clean_joblib(tmp_path / "clean.joblib")
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("numpy==2.0.0\n")
    assert gate_run("--artifact", clean, "--policy", HIGH, "--requirements", requirements).exit_code == 0
    assert gate_run("--artifact", strange, "--policy", HIGH, "--requirements", requirements).exit_code == 1
    assert gate_run("--artifact", clean, "--policy", HIGH).exit_code == 1  # no requirements file


def test_the_readme_failing_scan_is_what_the_gate_prints(tmp_path):
    """README shows the output of a failing scan: the checks and the message it shows are the gate's."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("### What a failing scan looks like", 1)[1].split("\n## ", 1)[0]
    evil = evil_joblib(tmp_path / "evil.joblib")
    result = gate_run("--artifact", evil)
    assert result.exit_code == 1
    assert "clearance gate run security_scan --artifact evil.joblib" in section
    for line in ("Gate security_scan v1.0.0: FAIL (blocking)", "denied: posix.system at byte"):
        assert line in section and line in result.stdout


def test_pickle_dumps_of_evil_only_writes_bytes(tmp_path):
    """The builders above never run the payload: dumping a __reduce__ object is just bytes."""
    data = pickle.dumps(Evil(), protocol=4)
    assert b"posix" in data and b"system" in data
    buffer = io.BytesIO()
    joblib.dump({"hook": Evil()}, buffer)
    assert b"system" in buffer.getvalue()


# --------------------------------------------------------------------------- the task that brings the files


def test_candidate_files_are_streamed_verified_and_bounded(tmp_path):
    from clearance.config.schema import ModelVersion
    from tasks import candidate_files as cf
    from tests.fakes.memory_store import MemoryStore

    store = MemoryStore()
    prefix = "candidates/m/1.0.0/"
    model = b"\x80\x04K\x01."
    store.put_if_absent(prefix + "model.joblib", model)
    store.put_if_absent(prefix + "other.joblib", b"\x80\x04K\x02.")
    store.put_if_absent(prefix + "requirements.txt", b"-r base.txt\n")
    store.put_if_absent(prefix + "base.txt", b"numpy==2.0.0\n")
    store.put_if_absent(prefix + "conf/app.yaml", f"aws_access_key_id: {AWS_KEY}\n".encode())
    store.put_if_absent(prefix + "notes/../../escape.txt", b"x")
    store.put_if_absent(prefix + "big.json", b"{}" + b" " * cf.MAX_TEXT_BYTES)
    store.put_if_absent(prefix + "train.parquet", b"PAR1")
    entry = ModelVersion.model_validate({
        "artifacts": [{"key": prefix + "model.joblib", "sha256": hashlib.sha256(model).hexdigest()},
                      {"key": prefix + "other.joblib", "sha256": "0" * 64},
                      {"key": prefix + "gone.joblib", "sha256": "1" * 64}],
        "requirements": prefix + "requirements.txt"})
    files = cf.fetch_candidate_files(store, "m", "1.0.0", entry, tmp_path / "run")
    assert Path(files.artifacts[prefix + "model.joblib"]).read_bytes() == model
    assert files.artifact_errors[prefix + "other.joblib"].startswith("content differs from the pinned sha256")
    assert files.artifact_errors[prefix + "gone.joblib"] == "not found"
    assert not list((tmp_path / "run" / "artifacts").glob("*other*"))  # bytes that differ are not kept
    assert Path(files.requirements or "").read_bytes() == b"-r base.txt\n"
    assert set(files.bundle) == {prefix + "requirements.txt", prefix + "base.txt", prefix + "conf/app.yaml"}
    assert "over the" in files.bundle_skipped[prefix + "big.json"]
    assert "mirror safely" in files.bundle_skipped[prefix + "notes/../../escape.txt"]
    assert not (tmp_path / "escape.txt").exists()
    # the gate reads them as the flow hands them over: includes resolve inside the bundle, secrets are found
    extra = files.gate_extra(advisory_db=None) | {"evidence_dir": str(tmp_path / "ev")}
    manifest = {"name": "m", "versions": {"1.0.0": entry.model_dump(mode="json")}}
    result = run_gate("security_scan", GateInputs(model="m", version="1.0.0", manifest=manifest, extra=extra), {})
    by_id = checks(result)
    assert by_id["dependencies"].status is Status.PASS and "with base.txt" in by_id["dependencies"].message
    assert by_id[f"secrets:{prefix}conf/app.yaml"].status is Status.FAIL
    assert by_id[f"model_file:{prefix}other.joblib"].status is Status.FAIL
    assert by_id[f"model_file:{prefix}gone.joblib"].status is Status.FAIL
    assert by_id[f"not_scanned:{prefix}big.json"].status is Status.SKIPPED


def test_a_concern_that_crashes_is_an_error_and_the_others_still_report(tmp_path, monkeypatch):
    from gates.security_scan.checks import storage

    def boom(scan: Any) -> list[Any]:
        raise RuntimeError("scanner bug")

    monkeypatch.setattr(storage, "run", boom)
    model = clean_joblib(tmp_path / "model.joblib")
    result = scan(inputs(tmp_path, [model]))
    by_id = checks(result)
    assert result.status is Status.ERROR
    assert by_id["storage"].status is Status.ERROR and "scanner bug" in by_id["storage"].message
    assert by_id[f"callables:{model}"].status is Status.PASS
