"""Finding 7 (issue 11): the real CLI says what is down and what became of the action, in one line.

Against the session's real SeaweedFS and Prefect server: a vote recorded while Prefect is unreachable
is counted and the run is woken later by the sweep; S3 or Prefect being down is one line and exit
code 3, never a traceback; a run that stopped at a gate shows its gate table and the check that
stopped it; the history shows how every run ended.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import yaml

from tests.integration.promotion_kit import (
    REPO,
    cli,
    cli_env,
    decide,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
    wait_for_request,
    wait_state,
)

pytestmark = pytest.mark.integration

EXIT_UNREACHABLE = 3


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(candidate, user: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The real CLI as ``user``, with ``env`` over the session's environment."""
    return subprocess.run([sys.executable, "-m", "clearance", *args], env=cli_env(candidate, user) | env, cwd=REPO,
                          text=True, capture_output=True, timeout=180)


def only_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == EXIT_UNREACHABLE, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def ledger_kinds(s3, model: str) -> list[str]:
    from tasks.ledger import read_ledger

    return [e.kind for e in read_ledger(s3, model)]


def test_a_vote_made_while_prefect_is_down_is_counted_and_the_sweep_wakes_the_run(s3, tmp_path) -> None:
    from tasks.approval_intake import record_key_for_run
    from tasks.approvals_record import read_record

    cand = make_candidate(tmp_path, s3)
    proc = start_direct_run(cand, "1.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)
    assert decide(s3, cand, run_id, "bea").accepted  # business; security still missing

    down = f"http://127.0.0.1:{closed_port()}/api"
    result = run_cli(cand, "sam", "approve", run_id, PREFECT_API_URL=down, CLEARANCE_PREFECT_API_URL=down)
    assert "approve by sam counted; request is approved" in result.stdout
    assert only_line(result) == (
        f"error: your approval was counted; the run could not be woken because the Prefect server at {down} is "
        "unreachable (connection refused) — it will see the decision when it is next woken (`clearance sweep`, "
        "which `clearance worker` runs every minute, wakes it once the server answers)")
    record = read_record(s3, record_key_for_run(s3, run_id))[0]
    assert sorted(d.principal for d in record.decisions) == ["bea", "sam"] and record.outcome.value == "approved"
    assert wait_state(run_id, {"PAUSED"}) == "PAUSED"  # nobody woke it

    # What the message promises: the sweep (every minute when deployed) wakes it, and it promotes.
    sweep = cli(cand, "dana", "sweep")
    assert sweep.returncode == 0 and run_id in sweep.stdout, sweep.stdout + sweep.stderr
    assert finish(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert ledger_kinds(s3, cand.model)[-1] == "promoted"


def test_s3_down_is_one_line_naming_the_endpoint(s3, tmp_path) -> None:
    cand = make_candidate(tmp_path, s3)
    down = f"http://127.0.0.1:{closed_port()}"
    env = {"CLEARANCE_S3_ENDPOINT_URL": down, "CLEARANCE_S3_RETRY_SECONDS": "0"}
    assert only_line(run_cli(cand, "sam", "approve", "some-run", **env)) == (
        f"error: the S3 endpoint at {down} is unreachable (connection refused); your approval was not recorded")
    assert only_line(run_cli(cand, "sam", "status", "--model", cand.model, **env)) == (
        f"error: the S3 endpoint at {down} is unreachable (connection refused); nothing was changed")
    # history first tries to close runs left open (tasks/recovery.py) and logs that it could not; the
    # outcome is still one line at the end, and no traceback.
    history = run_cli(cand, "sam", "history", cand.model, **env)
    assert history.returncode == EXIT_UNREACHABLE and "Traceback" not in history.stderr, history.stderr
    assert history.stderr.strip().splitlines()[-1] == (
        f"error: the S3 endpoint at {down} is unreachable (connection refused); nothing was changed")


def test_prefect_down_on_promote_says_no_run_was_started(s3, tmp_path) -> None:
    cand = make_candidate(tmp_path, s3)
    down = f"http://127.0.0.1:{closed_port()}/api"
    assert only_line(run_cli(cand, "dana", "promote", cand.model, "1.0.0", PREFECT_API_URL=down,
                             CLEARANCE_PREFECT_API_URL=down)) == (
        f"error: the Prefect server at {down} is unreachable (connection refused); no run was started")
    assert ledger_kinds(s3, cand.model) == []


def test_status_and_history_of_a_run_stopped_at_a_gate(s3, tmp_path) -> None:
    cand = make_candidate(tmp_path, s3)
    manifest = cand.config_dir / "models" / f"{cand.model}.yaml"
    document = yaml.safe_load(manifest.read_text())
    document["versions"]["1.0.0"]["artifacts"][0]["sha256"] = "0" * 64  # not the uploaded file
    manifest.write_text(yaml.safe_dump(document))
    proc = start_direct_run(cand, "1.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "1.0.0")
    assert finish(proc) != 0
    assert ledger_kinds(s3, cand.model)[-1] == "gate-failed"

    for args in (("status", run_id), ("status", "--model", cand.model)):
        status = cli(cand, "dana", *args)
        assert status.returncode == 0, status.stderr
        out = status.stdout
        assert f"run {run_id}: {cand.model} 1.0.0" in out
        assert "artifact_integrity  blocking  fail" in out, out
        assert "stopped by:" in out and "sha256" in out.split("stopped by:")[1], out
        assert "ended: gate-failed: gate artifact_integrity fail: promotion stopped" in out
    history = cli(cand, "dana", "history", cand.model)
    assert history.returncode == 0, history.stderr
    assert "gate-failed" in history.stdout and run_id[:8] in history.stdout
