"""Issue 19: ``clearance approve`` / ``reject`` load only what a decision needs.

A person types these and waits for them; Prefect's client, pyarrow, pandas, numpy, scikit-learn and
the Slack and Jira SDKs each cost a second or more to import on a busy machine and none of them is
needed to record a decision in S3 and wake the run (tasks/prefect_rest.py wakes it through Prefect's
REST API). Against the session's real SeaweedFS and Prefect server, the real CLI approves or rejects a
paused run in a subprocess that reports which modules were ever imported; the decision must count and
the run must be woken by it (it goes on to its end at once: a paused run reads its record only when
woken, or after its pause times out an hour later).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.integration.promotion_kit import (
    REPO,
    cli_env,
    decide,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
    wait_for_request,
)

pytestmark = pytest.mark.integration

HEAVY = ("prefect", "pyarrow", "pandas", "numpy", "sklearn", "slack_sdk", "jira")
#: Not needed to decide: the ledger (only `status` and `history` show it), httpx (the run is woken through
#: urllib3, which boto3 brings; httpx and its transports cost ~0.25 CPU-s: tasks/prefect_rest.py), and any gate
#: (a decision reads principals.yaml and one manifest, not every policy's gate configs, whose validation loads
#: every gate: clearance/config/decision_configs.py).
NOT_NEEDED = ("clearance.ledger", "httpx", "httpcore", "gates.builtin", "gates.security_scan.gate",
              "gates.compliance_review.gate", "gates.data_check.gate", "gates.load_test.gate", "gates.cost.gate")

#: Runs the CLI as ``python -m clearance`` does, then writes the heavy modules that were imported to argv[1].
CLI_REPORTING_IMPORTS = """
import json, runpy, sys
report, sys.argv = sys.argv[1], ["clearance", *sys.argv[2:]]
try:
    runpy.run_module("clearance", run_name="__main__", alter_sys=True)
finally:
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy} or m.startswith({not_needed}))
    open(report, "w").write(json.dumps(heavy))
"""


def ledger_kinds(s3, model: str) -> list[str]:
    from tasks.ledger import read_ledger

    return [e.kind for e in read_ledger(s3, model)]


@pytest.mark.parametrize(("command", "ending"), [("approve", "promoted"), ("reject", "rejected")])
def test_a_decision_through_the_cli_imports_nothing_heavy_counts_and_wakes_the_run(s3, tmp_path, command,
                                                                                      ending) -> None:
    from tasks.approval_intake import record_key_for_run
    from tasks.approvals_record import read_record

    cand = make_candidate(tmp_path, s3)
    proc = start_direct_run(cand, "1.0.0", log=tmp_path / "run.log")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)
    assert decide(s3, cand, run_id, "bea").accepted  # business; the security approval (sam) is missing

    report = tmp_path / "imported.json"
    args = [command, run_id] + (["--reason", "drift too high"] if command == "reject" else ["--comment", "ok"])
    started = time.monotonic()
    reporter = CLI_REPORTING_IMPORTS.format(heavy=set(HEAVY), not_needed=NOT_NEEDED)
    done = subprocess.run([sys.executable, "-c", reporter, str(report), *args],
                          env=cli_env(cand, "sam"), cwd=REPO, text=True, capture_output=True, timeout=180)
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = "approved" if command == "approve" else "rejected"
    assert f"{command} by sam counted; request is {outcome}" in done.stdout, done.stdout
    assert done.stderr == "", done.stderr  # no "could not be woken" line
    assert json.loads(report.read_text()) == [], f"imported by `clearance {command}` ({seconds:.2f} s)"

    record = read_record(s3, record_key_for_run(s3, run_id))[0]
    assert sorted((d.principal, d.vote.value) for d in record.decisions) == [("bea", "approve"), ("sam", command)]
    assert record.outcome.value == outcome
    # Woken by this command: the run reads its record and ends now, not when its hour-long pause times out.
    code = finish(proc, timeout=120)
    assert (code == 0) == (command == "approve"), (tmp_path / "run.log").read_text()[-3000:]
    assert ledger_kinds(s3, cand.model)[-1] == ending
