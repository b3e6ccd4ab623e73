"""``clearance gate run`` / ``gate list``: a gate on local files only (pre-flight), its exit codes, its
one-line errors, and the README's pre-flight example run as written."""

from __future__ import annotations

import hashlib
import io
import re
import shlex
from pathlib import Path

import joblib
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from clearance.app.cli import app
from gates.base import GateResult, Status, registered_gates
from tasks.preflight import PREFLIGHT_VERSION, PreflightError, local_gate_inputs

REPO = Path(__file__).resolve().parents[2]
HIGH = REPO / "configs" / "policies" / "high.yaml"
LOW = REPO / "configs" / "policies" / "low.yaml"
runner = CliRunner()

CONTRACT = {
    "min_rows": 100,
    "columns": {"id": {"type": "int", "nullable": False}, "age": {"type": "int", "min": 0, "max": 120},
                "plan": {"type": "string", "categories": ["a", "b"]}},
    "key": ["id"],
    "label": {"column": "label", "values": [0, 1]},
}


def table(n: int, seed: int, age_max: int = 90) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({"id": np.arange(n, dtype=np.int64), "age": rng.integers(18, age_max + 1, n),
                     "plan": rng.choice(["a", "b"], n), "label": rng.integers(0, 2, n)})


def write_parquet(path: Path, data: pa.Table) -> Path:
    pq.write_table(data, path)
    return path


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {"train": write_parquet(tmp_path / "train.parquet", table(2000, 1)),
            "eval": write_parquet(tmp_path / "eval.parquet", table(800, 2)),
            "contract": write_yaml(tmp_path / "contract.yaml", CONTRACT)}


def gate_run(*args: str | Path):
    return runner.invoke(app, ["gate", "run", *map(str, args)])


def stderr_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def statuses(result) -> dict[str, str]:
    """check id → status, from the printed table."""
    rows = [line.split() for line in result.stdout.splitlines()]
    return {row[0]: row[1] for row in rows if len(row) >= 2 and row[1] in {s.value for s in Status}}


# --------------------------------------------------------------------------- data_check


def test_data_check_on_clean_local_parquet_passes(files):
    result = gate_run("data_check", "--dataset", f"train={files['train']}", "--dataset", f"eval={files['eval']}",
                      "--contract", files["contract"])
    assert result.exit_code == 0, result.output
    checks = statuses(result)
    assert checks["readable:eval"] == "pass" and checks["rows:train"] == "pass"
    assert checks["range:eval:age"] == "pass" and checks["unique_key:eval"] == "pass"
    assert checks["psi:eval:age"] == "pass" and checks["ks:eval:age"] == "pass"
    assert "Gate data_check v1.0.0: PASS (blocking)" in result.stdout


def test_a_range_violation_fails_with_exit_1_and_names_the_check(files, tmp_path):
    wide = write_parquet(tmp_path / "wide.parquet", table(800, 2, age_max=200))  # ages above the contract's 120
    result = gate_run("data_check", "--dataset", f"eval={wide}", "--contract", f"eval={files['contract']}")
    assert result.exit_code == 1, result.output
    assert statuses(result)["range:eval:age"] == "fail"
    assert statuses(result)["categories:eval:plan"] == "pass"  # only the broken check fails
    assert "FAIL (blocking)" in result.stdout


@pytest.mark.parametrize(("age_max", "status", "code"), [(90, "pass", 0), (200, "fail", 1)])
def test_json_is_the_gate_result_and_its_status_is_the_exit_code(files, tmp_path, age_max, status, code):
    data = write_parquet(tmp_path / "eval-x.parquet", table(800, 2, age_max=age_max))
    result = gate_run("data_check", "--dataset", f"eval={data}", "--contract", f"eval={files['contract']}",
                      "--json")
    assert result.exit_code == code, result.output
    parsed = GateResult.model_validate_json(result.stdout)
    assert parsed.gate_id == "data_check" and parsed.status.value == status
    by_id = {c.id: c for c in parsed.checks}
    assert by_id["range:eval:age"].status.value == status
    # each local file is pinned to its own digest: the check shows what to pin in the manifest
    assert by_id["digest:eval"].status is Status.PASS and by_id["digest:eval"].observed == parsed.input_digests["eval"]


def test_an_undecided_gate_is_exit_2_with_status_error_in_json(files, tmp_path):
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_text("not parquet")
    result = gate_run("data_check", "--dataset", f"train={corrupt}", "--dataset", f"eval={files['eval']}",
                      "--contract", files["contract"], "--json")
    assert result.exit_code == 2, result.output
    parsed = GateResult.model_validate_json(result.stdout)
    assert parsed.status is Status.ERROR
    by_id = {c.id: c for c in parsed.checks}
    assert by_id["readable:train"].status is Status.FAIL and by_id["readable:train"].observed == "unreadable"
    assert by_id["psi:eval:age"].status is Status.ERROR  # drift against an unreadable reference: undecided


def test_policy_takes_the_tiers_config_and_mode(files):
    args = ["--dataset", f"eval={files['eval']}", "--contract", f"eval={files['contract']}", "--json"]
    high = GateResult.model_validate_json(gate_run("data_check", "--policy", HIGH, *args).stdout)
    low = GateResult.model_validate_json(gate_run("data_check", "--policy", LOW, *args).stdout)
    assert high.blocking and not low.blocking  # data_check is advisory in low
    # high requires a reference, and this run has none: a failed check, exit 1
    assert {c.id: c.status for c in high.checks}["reference"] is Status.FAIL
    assert {c.id: c.status for c in low.checks}["reference"] is Status.SKIPPED
    assert gate_run("data_check", "--policy", HIGH, *args[:-1]).exit_code == 1


def test_evidence_dir_keeps_the_gates_files(files, tmp_path):
    kept = tmp_path / "evidence"
    result = gate_run("data_check", "--dataset", f"train={files['train']}", "--dataset", f"eval={files['eval']}",
                      "--contract", files["contract"], "--evidence-dir", kept)
    assert result.exit_code == 0, result.output
    assert (kept / "data_check_columns.json").is_file() and "data_check_columns.json" in result.stdout


# --------------------------------------------------------------------------- bad input: one line, exit 2


def test_a_bad_config_file_is_one_line_naming_file_and_field(files, tmp_path):
    config = tmp_path / "cfg.yaml"
    config.write_text("ks_mode: exact\npsi:\n  warn: -1\n")
    result = gate_run("data_check", "--config", config, "--dataset", f"eval={files['eval']}")
    assert result.exit_code == 2
    assert stderr_lines(result) == [f"{config}:3: psi.warn: must be >= 0.0"]
    assert result.stdout == ""  # the gate did not run


def test_a_bad_config_in_json_names_the_field(files, tmp_path):
    config = tmp_path / "cfg.json"
    config.write_text('{"ks_mode": "fast"}')
    result = gate_run("data_check", "--config", config, "--dataset", f"eval={files['eval']}", "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert stderr_lines(result) == [f"{config}: ks_mode: must be one of: exact, bounded (got 'fast')"]


def test_a_valid_config_file_is_applied(files, tmp_path):
    config = write_yaml(tmp_path / "cfg.yaml", {"require_reference": True, "ks_mode": "bounded"})
    result = gate_run("data_check", "--config", config, "--dataset", f"eval={files['eval']}")
    assert result.exit_code == 1 and statuses(result)["reference"] == "fail"


def test_unknown_gate_lists_the_registered_ones():
    result = gate_run("nope")
    assert result.exit_code == 2
    from gates.base import registered_gates

    known = sorted(registered_gates())
    assert {"artifact_integrity", "compliance_review", "cost", "data_check", "load_test", "security_scan"} <= set(known)
    assert stderr_lines(result) == [f"unknown gate 'nope' (registered: {', '.join(known)})"]


@pytest.mark.parametrize(("args", "expected"), [
    (["--dataset", "eval=missing.parquet"], r"^--dataset eval=missing\.parquet: no such file or folder$"),
    (["--dataset", "holdout=eval.parquet"],
     r"^--dataset holdout=eval\.parquet: unknown dataset role 'holdout' \(roles: train, eval, "),
    (["--dataset", "eval.parquet"], r"^--dataset eval\.parquet: give ROLE=PATH"),
    (["--dataset", "eval=eval.parquet", "--contract", "eval=missing.yaml"], r"^contract missing\.yaml: no such file$"),
    (["--dataset", "eval=eval.parquet", "--contract", "train=contract.yaml"],
     r"^--contract train=contract\.yaml: no --dataset train=PATH"),
    (["--artifact", "nope.joblib"], r"^--artifact nope\.joblib: no such file$"),
    (["--artifact", "."], r"^--artifact \.: not a file$"),
    (["--requirements", "nope.txt"], r"^--requirements nope\.txt: no such file$"),
    (["--config", "nope.yaml"], r"^config nope\.yaml: no such file$"),
    (["--config", "contract.yaml", "--policy", "contract.yaml"], r"^give --config or --policy, not both$"),
])
def test_bad_input_is_one_line_and_exit_2(files, tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)  # relative names, as people type them (the files fixture wrote them here)
    result = gate_run("data_check", *args)
    assert result.exit_code == 2, result.output
    lines = stderr_lines(result)
    assert len(lines) == 1 and re.search(expected, lines[0]), lines


def test_a_contract_with_a_yaml_error_or_a_bad_field_names_its_line(files, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("columns:\n  age: {type: int\n")
    result = gate_run("data_check", "--dataset", f"eval={files['eval']}", "--contract", broken)
    assert result.exit_code == 2 and stderr_lines(result)[0].startswith(f"{broken}:3: YAML syntax error")
    wrong = write_yaml(tmp_path / "wrong.yaml", {"columns": {"age": {"type": "integer"}}})
    result = gate_run("data_check", "--dataset", f"eval={files['eval']}", "--contract", wrong)
    assert result.exit_code == 2
    assert stderr_lines(result) == [f"{wrong}:3: columns.age.type: must be one of: int, float, number, string, bool, "
                                    "timestamp, date, category (got 'integer')"]


def test_a_policy_without_the_gate_says_so(files, tmp_path):
    policy = yaml.safe_load(HIGH.read_text())
    policy["gates"] = [g for g in policy["gates"] if g["id"] != "data_check"]
    path = write_yaml(tmp_path / "high.yaml", policy)
    result = gate_run("data_check", "--policy", path, "--dataset", f"eval={files['eval']}")
    assert result.exit_code == 2
    runs = ", ".join(g["id"] for g in policy["gates"])  # the shipped tier's other gates, in order
    assert "artifact_integrity" in runs
    assert stderr_lines(result) == [f"{path}: gates: the high tier does not run data_check (it runs: {runs})"]


# --------------------------------------------------------------------------- artifact_integrity


def joblib_file(path: Path) -> Path:
    buffer = io.BytesIO()
    joblib.dump({"weights": [1.0, 2.0]}, buffer)
    path.write_bytes(buffer.getvalue())
    return path


def test_artifact_integrity_on_a_local_joblib(tmp_path):
    model = joblib_file(tmp_path / "model.joblib")
    result = gate_run("artifact_integrity", "--artifact", model, "--json")
    assert result.exit_code == 0, result.output
    parsed = GateResult.model_validate_json(result.stdout)
    checks = {c.id: c for c in parsed.checks}
    key = str(model)
    assert parsed.status is Status.PASS
    assert checks[f"exists:{key}"].status is Status.PASS
    assert checks[f"sha256:{key}"].observed == hashlib.sha256(model.read_bytes()).hexdigest()
    assert checks[f"size:{key}"].observed == model.stat().st_size
    assert checks[f"format:{key}"].status is Status.PASS and checks[f"format:{key}"].observed == "joblib"


def test_artifact_integrity_applies_the_tiers_format_list(tmp_path):
    pickle = joblib_file(tmp_path / "model.pkl")  # a pickle stream named .pkl: plain pickle
    assert gate_run("artifact_integrity", "--artifact", pickle, "--policy", LOW).exit_code == 0
    result = gate_run("artifact_integrity", "--artifact", pickle, "--policy", HIGH)
    assert result.exit_code == 1
    assert statuses(result)[f"format:{pickle}"] == "fail" and "is not allowed for this tier" in result.stdout


def test_a_gate_given_nothing_is_skipped_with_a_note():
    result = gate_run("artifact_integrity")
    assert result.exit_code == 0 and "SKIPPED" in result.stdout
    assert "had nothing to check" in result.stderr


def test_requirements_reach_the_gate_inputs(tmp_path, files):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("scikit-learn==1.5.0\n")
    inputs = local_gate_inputs(datasets={"eval": files["eval"]}, requirements=requirements)
    assert inputs.extra["requirements"] == str(requirements.resolve())
    ref = inputs.manifest["versions"][PREFLIGHT_VERSION]["datasets"][0]
    assert ref["sha256"] == inputs.datasets["eval"].sha256 and ref["contract"] == {}
    with pytest.raises(PreflightError, match="requirements"):
        local_gate_inputs(requirements=tmp_path / "nope.txt")
    # the CLI accepts it for any gate; one that does not read it ignores it
    assert gate_run("data_check", "--dataset", f"eval={files['eval']}", "--requirements", requirements
                    ).exit_code == 0


def test_gate_list_names_every_registered_gate():
    result = runner.invoke(app, ["gate", "list"])
    assert result.exit_code == 0
    listed = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert set(listed) == set(registered_gates())
    assert "v1.0.0" in listed["data_check"] and "drift" in listed["data_check"]


# --------------------------------------------------------------------------- the README's example, as written


def readme_preflight_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Pre-flight: run a gate on your own files", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block, "README's pre-flight section has no bash example"
    return [line for line in block.group(1).replace("\\\n", " ").splitlines() if line.strip()]


def test_the_readme_preflight_example_runs(tmp_path, monkeypatch):
    from clearance.dev import demo

    commands = readme_preflight_commands()
    assert commands[0].startswith("python -m clearance.dev.demo --files ")
    assert len(commands) >= 3 and all(c.startswith("clearance gate run ") for c in commands[1:])
    monkeypatch.chdir(REPO)  # the example's configs/ paths are relative to the checkout
    folder = str(tmp_path / "preflight")  # …and its files go to a temp dir instead of .local/
    for command in commands:
        argv = [a.replace(".local/preflight", folder) for a in shlex.split(command, comments=True)]
        if argv[0] == "python":
            assert demo.main(argv[3:]) == 0
            continue
        result = runner.invoke(app, argv[1:])
        assert result.exit_code == 0, f"{command}\n{result.output}"
        if "--json" in argv:
            assert GateResult.model_validate_json(result.stdout).status is Status.PASS
