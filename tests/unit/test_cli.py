"""CLI behaviour that needs no server: validation exit codes and messages, bad promote arguments, one-line errors
when a service is down, status and history of runs that ended."""

import re
import shutil
import socket
import uuid
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from clearance.app.cli import app
from clearance.settings import get_settings
from tests.fakes.memory_store import MemoryStore

EXAMPLES = Path(__file__).resolve().parents[2] / "configs"
runner = CliRunner()


@pytest.fixture
def configs(tmp_path, monkeypatch):
    target = tmp_path / "configs"
    shutil.copytree(EXAMPLES, target)
    monkeypatch.setenv("CLEARANCE_CONFIG_DIR", str(target))
    get_settings.cache_clear()
    yield target
    get_settings.cache_clear()


def test_validate_ok_and_broken(configs):
    assert runner.invoke(app, ["validate", str(configs)]).exit_code == 0
    policy = configs / "policies" / "high.yaml"
    policy.write_text(policy.read_text().replace("security: {min: 1}", "security: {min: 0}"))
    result = runner.invoke(app, ["validate", str(configs)])
    assert result.exit_code == 2
    assert "policies/high.yaml:" in result.output and "approvals.roles.security.min: must be >= 1" in result.output


def test_promote_unknown_model_or_version_is_a_clear_error(configs):
    result = runner.invoke(app, ["promote", "nope", "1.0.0"])
    assert result.exit_code == 2 and "no model 'nope'" in result.output and "churn-classifier" in result.output
    result = runner.invoke(app, ["promote", "churn-classifier", "9.9"])
    assert result.exit_code == 2 and "no version '9.9'" in result.output


def test_reject_needs_a_reason(configs):
    result = runner.invoke(app, ["reject", "some-run", "--reason", "  "])
    assert result.exit_code == 2 and "--reason" in result.output


# ----------------------------------------------------------------------------- errors people can act on
# Finding 7 (issue 11): a service being down is one line naming it and what became of the action.

DIGEST = "sha256:" + "b" * 64


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unreachable_store():
    """A real S3 client of the object store, pointed at a closed port, with one attempt per call (fast)."""
    import boto3
    from botocore.config import Config

    from tasks.object_store import ObjectStore

    url = f"http://127.0.0.1:{closed_port()}"
    client = boto3.session.Session().client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="k",
                                            aws_secret_access_key="s",
                                            config=Config(retries={"max_attempts": 1}, connect_timeout=2))
    return ObjectStore(client, "clearance"), url


@pytest.fixture
def prefect_down(monkeypatch):
    """Prefect's client in this process, and the wake-up (which reads PREFECT_API_URL from the environment first:
    tasks/prefect_rest.py), talk to a closed port; yields the API URL."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = f"http://127.0.0.1:{closed_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", url)  # a session with a live server set it (tests/integration)
    with temporary_settings(updates={PREFECT_API_URL: url}):
        yield url


def use_store(monkeypatch, store) -> None:
    """Every store the CLI builds (its own and the tasks') is ``store``."""
    monkeypatch.setattr("clearance.app.cli._store", lambda: store)
    monkeypatch.setattr("tasks.wiring.object_store", lambda settings=None: store)


def one_line_error(result) -> str:
    """The command failed with exit code 3 and exactly one line on stderr, no traceback."""
    assert result.exit_code == 3, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[-1]


@pytest.mark.parametrize(("args", "consequence"), [
    (["status", "--model", "churn-classifier"], "nothing was changed"),
    (["status", "some-run"], "nothing was changed"),
    (["approve", "some-run", "--digest", DIGEST], "your approval was not recorded"),
    (["reject", "some-run", "--reason", "no", "--digest", DIGEST], "your rejection was not recorded"),
])
def test_s3_down_is_one_line_naming_the_endpoint_and_the_action(configs, monkeypatch, args, consequence) -> None:
    store, url = unreachable_store()
    use_store(monkeypatch, store)
    line = one_line_error(runner.invoke(app, args))
    assert line.startswith(f"error: the S3 endpoint at {url} is unreachable (connection refused); ")
    assert line.endswith(consequence)


def test_prefect_down_on_promote_says_no_run_was_started(configs, prefect_down) -> None:
    line = one_line_error(runner.invoke(app, ["promote", "churn-classifier", "1.0.0"]))
    assert line == (f"error: the Prefect server at {prefect_down} is unreachable (connection refused); "
                    "no run was started")


def test_a_bug_still_shows_its_traceback(configs, monkeypatch) -> None:
    # Only outages become one line: an error of clearance itself must not be hidden behind one.
    def broken():
        raise KeyError("a bug")

    monkeypatch.setattr("clearance.app.cli._store", broken)
    result = runner.invoke(app, ["history", "churn-classifier"])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)


def open_request(store: MemoryStore, monkeypatch) -> str:
    """An open sign-off on the example model that one security approval closes."""
    import tasks.signoff
    from clearance.approvals import ApprovalRequest
    from clearance.config.schema import Channel

    monkeypatch.setattr(tasks.signoff, "store", lambda: store)
    now = store.server_time()
    request = ApprovalRequest(
        run_id=str(uuid.uuid4()), model="churn-classifier", version="1.0.0", tier="high", artifact_digest=DIGEST,
        evidence_digest="e" * 64, required_roles={"security": 1}, excluded_principals=["dana"], initiator="dana",
        channels=[Channel.CLI], opened_at=now, deadline=now + timedelta(hours=1))
    tasks.signoff.open_approval.fn(request)
    return request.run_id


def test_approve_with_prefect_down_counts_the_vote_and_says_the_run_was_not_woken(configs, monkeypatch,
                                                                                   prefect_down) -> None:
    from tasks.approval_intake import record_key_for_run
    from tasks.approvals_record import read_record

    store = MemoryStore()
    use_store(monkeypatch, store)
    monkeypatch.setattr("tasks.channels.active_notifiers", lambda settings=None: [])
    run_id = open_request(store, monkeypatch)
    result = runner.invoke(app, ["approve", run_id, "--digest", DIGEST], env={"USER": "sam", "LOGNAME": "sam"})
    line = one_line_error(result)
    assert "approve by sam counted; request is approved" in result.stdout
    assert line == (f"error: your approval was counted; the run could not be woken because the Prefect server at "
                    f"{prefect_down} is unreachable (connection refused) — it will see the decision when it is next "
                    "woken (`clearance sweep`, which `clearance worker` runs every minute, wakes it once the server "
                    "answers)")
    record = read_record(store, record_key_for_run(store, run_id))[0]
    assert [(d.principal, d.vote.value) for d in record.decisions] == [("sam", "approve")]
    assert record.outcome.value == "approved"


def test_the_intake_reports_a_failed_wake_instead_of_raising(monkeypatch, prefect_down) -> None:
    # Every channel (Slack, Jira, CLI) goes through the intake: a wake-up that fails must not turn a counted
    # decision into an error, nor hide it.
    from clearance.approvals import Vote
    from clearance.config import load_config_dir
    from clearance.config.schema import Channel
    from tasks.approval_intake import receive_decision

    store = MemoryStore()
    events: list = []
    monkeypatch.setattr("tasks.approval_intake.publish_event", events.append)
    run_id = open_request(store, monkeypatch)
    sam = load_config_dir(EXAMPLES).principals.by_id("sam")
    result = receive_decision(store, run_id, principal=sam, identity="sam", channel=Channel.CLI, vote=Vote.APPROVE)
    assert result.accepted and result.outcome_changed
    assert result.wake_problem == f"the Prefect server at {prefect_down} is unreachable (connection refused)"
    assert [e.kind for e in events] == ["approvals-changed"]  # the channels still hear of it


@pytest.mark.parametrize(("state_name", "exit_code"), [("Failed", 1), ("Completed", 0), ("Crashed", 1)])
def test_promote_wait_says_how_the_run_ended_and_why(configs, monkeypatch, state_name, exit_code) -> None:
    import prefect.deployments
    import prefect.states

    message = {"Failed": "Flow run encountered an exception: PromotionStopped: churn-classifier 1.0.0: gate "
                         "artifact_integrity fail: promotion stopped",
               "Completed": "All states completed.", "Crashed": "Execution was cancelled by the runtime [x]"}
    state = getattr(prefect.states, state_name)(message=message[state_name])
    started: list = []
    monkeypatch.setattr(prefect.deployments, "run_deployment",
                        lambda name, parameters, timeout: started.append(timeout) or
                        SimpleNamespace(id=uuid.UUID(int=7), name="brave-otter", state=None))
    monkeypatch.setattr("clearance.app.cli._final_state", lambda run_id: state)
    result = runner.invoke(app, ["promote", "churn-classifier", "1.0.0", "--wait"])
    assert result.exit_code == exit_code, result.output
    assert started == [0]  # the run is created first, so its id is printed before the wait
    assert f"run {uuid.UUID(int=7)} (brave-otter) started" in result.stdout
    assert f"run {uuid.UUID(int=7)} ended {state_name}: {message[state_name]}" in result.stdout


def test_promote_wait_reports_prefect_going_down_while_waiting(configs, monkeypatch, prefect_down) -> None:
    import prefect.deployments

    monkeypatch.setenv("USER", "dana")  # a principal: no note about a claimed initiator on stderr
    monkeypatch.setenv("LOGNAME", "dana")

    monkeypatch.setattr(prefect.deployments, "run_deployment",
                        lambda name, parameters, timeout: SimpleNamespace(id=uuid.UUID(int=7), name="x", state=None))
    line = one_line_error(runner.invoke(app, ["promote", "churn-classifier", "1.0.0", "--wait"]))
    assert line == (f"error: the Prefect server at {prefect_down} is unreachable (connection refused); run "
                    f"{uuid.UUID(int=7)} was started and goes on without this command "
                    f"(`clearance status {uuid.UUID(int=7)}`)")


# ----------------------------------------------------------------------------- status and history of ended runs


def ledger(store: MemoryStore, model: str, kind, payload: dict) -> None:
    from tasks.ledger import append_entry

    append_entry(store, model, kind, payload, witnesses=[])


def stopped_at_gate(store: MemoryStore, model: str = "churn-classifier") -> str:
    """A run that stopped at its artifact_integrity gate: ledger entries and the stored gate result, no request."""
    from clearance.core.keys import gate_result_name, run_prefix
    from clearance.core.ledger_kinds import LedgerKind
    from gates.base import CheckResult, GateResult, Status

    run_id = str(uuid.uuid4())
    result = GateResult.from_checks("artifact_integrity", "1", [
        CheckResult(id="exists", status=Status.PASS),
        CheckResult(id="sha256_matches", status=Status.FAIL, observed="ab12", threshold="0000",
                    message="the stored file is not the pinned one")])
    store.put_if_absent(run_prefix(model, "1.0.0", run_id) + gate_result_name("artifact_integrity"),
                        result.to_evidence_json())
    ledger(store, model, LedgerKind.STARTED, {"run": run_id, "version": "1.0.0", "initiator": "dana"})
    ledger(store, model, LedgerKind.GATE, {"gate": "artifact_integrity", "status": "fail"})
    ledger(store, model, LedgerKind.GATE_FAILED, {"run": run_id, "version": "1.0.0",
                                                  "reason": "gate artifact_integrity fail: promotion stopped"})
    return run_id


def test_status_of_a_run_stopped_at_a_gate_shows_the_gates_and_the_stopping_check(configs, monkeypatch) -> None:
    store = MemoryStore()
    use_store(monkeypatch, store)
    run_id = stopped_at_gate(store)
    for args in (["status", run_id], ["status", run_id, "--model", "churn-classifier"],
                 ["status", "--model", "churn-classifier"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        out = result.stdout
        assert f"run {run_id}: churn-classifier 1.0.0" in out
        assert re.search(r"artifact_integrity\s+blocking\s+fail\s+sha256_matches", out), out
        assert "stopped by:" in out and "sha256_matches fail observed ab12 vs 0000 the stored file is not the " \
                                        "pinned one" in out
        assert "ended: gate-failed: gate artifact_integrity fail: promotion stopped" in out
        assert "no approval request" not in out


def test_status_of_an_unknown_run_says_so(configs, monkeypatch) -> None:
    store = MemoryStore()
    use_store(monkeypatch, store)
    result = runner.invoke(app, ["status", "no-such-run"])
    assert result.exit_code == 1
    assert "run no-such-run: not in the ledger of any configured model" in result.stderr


def test_history_shows_how_every_run_ended(configs, monkeypatch) -> None:
    from clearance.core.ledger_kinds import TERMINAL, LedgerKind

    store = MemoryStore()
    use_store(monkeypatch, store)
    # Recovery (tasks/recovery.py) would ask Prefect about the open run: not what this test is about.
    monkeypatch.setattr("tasks.recovery.recover_before_reading", lambda model: [])
    gate_run = stopped_at_gate(store)
    runs = {}
    for kind in sorted(TERMINAL - {LedgerKind.GATE_FAILED}, key=lambda k: k.value):  # whatever kinds exist
        run_id = str(uuid.uuid4())
        runs[kind.value] = run_id
        ledger(store, "churn-classifier", LedgerKind.STARTED, {"run": run_id, "version": "1.0.0"})
        ledger(store, "churn-classifier", kind, {"run": run_id, "version": "1.0.0", "reason": f"why {kind.value}"})
    waiting = str(uuid.uuid4())
    ledger(store, "churn-classifier", LedgerKind.STARTED, {"run": waiting, "version": "1.0.0"})
    ledger(store, "churn-classifier", LedgerKind.APPROVAL_REQUESTED, {"run": waiting})
    import clearance.app.cli

    monkeypatch.setattr(clearance.app.cli.console, "width", 250)  # one table row per line
    result = runner.invoke(app, ["history", "churn-classifier"])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") == 6}
    assert "failed" in runs  # finding 7: a failed run used to be missing from the history
    for kind, run_id in runs.items():
        assert re.search(rf"{kind}\s+│\s+why {kind}", rows[run_id[:8]]), rows[run_id[:8]]
    assert re.search(r"gate-failed\s+│\s+gate artifact_integrity fail: promotion stopped", rows[gate_run[:8]])
    assert "in progress (last: approval-requested)" in rows[waiting[:8]]


def test_history_of_an_unknown_model_is_an_error_naming_it(configs, monkeypatch) -> None:
    use_store(monkeypatch, MemoryStore())
    monkeypatch.setattr("tasks.recovery.recover_before_reading", lambda model: [])
    result = runner.invoke(app, ["history", "churn-clasifier"])
    assert result.exit_code == 1
    assert "no model 'churn-clasifier': not in" in result.stderr and "known: churn-classifier" in result.stderr
    known = runner.invoke(app, ["history", "churn-classifier"])  # configured, never run: not an error
    assert known.exit_code == 0 and "churn-classifier has no runs yet" in known.stdout


def test_status_shows_the_runs_ledger_entries_as_a_table_not_json(configs, monkeypatch) -> None:
    store = MemoryStore()
    use_store(monkeypatch, store)
    run_id = stopped_at_gate(store)
    import clearance.app.cli

    monkeypatch.setattr(clearance.app.cli.console, "width", 250)
    result = runner.invoke(app, ["status", run_id])
    assert result.exit_code == 0, result.output
    assert "{" not in result.stdout.split("ledger entries")[1].split("\n\n")[0]  # no raw JSON payloads
    assert re.search(r"│\s*\d+\s*│ \d{4}-\d\d-\d\d \d\d:\d\d:\d\d │ gate-failed\s*│ version 1\.0\.0; reason gate "
                     r"artifact_integrity fail", result.stdout), result.stdout


def test_a_dry_run_by_a_non_principal_says_so_and_suggests_no_decision(configs, monkeypatch) -> None:
    import prefect.deployments

    monkeypatch.setenv("USER", "root")
    monkeypatch.setenv("LOGNAME", "root")
    params: list = []
    monkeypatch.setattr(prefect.deployments, "run_deployment",
                        lambda name, parameters, timeout: params.append(parameters) or
                        SimpleNamespace(id=uuid.UUID(int=9), name="calm-lynx", state=None))
    result = runner.invoke(app, ["promote", "churn-classifier", "1.0.0", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert params[0]["dry_run"] is True and params[0]["initiator"] == "root"
    assert f"dry run {uuid.UUID(int=9)} (calm-lynx) started by root" in result.stdout
    assert "nobody is asked, nothing is promoted" in result.stdout and "clearance approve" not in result.stdout
    assert "'root' is no principal" in result.stderr and "claimed name" in result.stderr


def test_approve_with_a_broken_principals_file_is_refused_naming_it(configs, monkeypatch) -> None:
    store = MemoryStore()
    use_store(monkeypatch, store)
    run_id = open_request(store, monkeypatch)
    people = configs / "principals.yaml"
    people.write_text(people.read_text().replace("local_users: [sam]", "local_users: [sam, dana]"))
    result = runner.invoke(app, ["approve", run_id, "--digest", DIGEST], env={"USER": "sam", "LOGNAME": "sam"})
    assert result.exit_code == 2, result.output
    assert "invalid configuration" in result.output and "principals.yaml:" in result.output
    from tasks.approval_intake import record_key_for_run
    from tasks.approvals_record import read_record

    assert read_record(store, record_key_for_run(store, run_id))[0].decisions == []  # nothing was recorded


def test_approve_reads_the_runs_manifest_only_for_the_digest_and_names_its_problem(configs, monkeypatch) -> None:
    store = MemoryStore()
    use_store(monkeypatch, store)
    monkeypatch.setattr("tasks.channels.active_notifiers", lambda settings=None: [])
    run_id = open_request(store, monkeypatch)
    (configs / "policies" / "low.yaml").write_text("tier: [broken\n")  # not read by a decision: the run checks it
    manifest = configs / "models" / "churn-classifier.yaml"
    manifest.write_text(manifest.read_text().replace("risk_tier: high", "risk_tier: [high]", 1))
    result = runner.invoke(app, ["approve", run_id], env={"USER": "sam", "LOGNAME": "sam"})  # digest: from the manifest
    assert result.exit_code == 2, result.output
    assert "churn-classifier.yaml:" in result.output and "risk_tier" in result.output
    assert "low.yaml" not in result.output
