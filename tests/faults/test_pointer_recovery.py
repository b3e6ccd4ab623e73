"""Issue 11, finding 3 (and 5b): the pointer is never left ahead of the ledger, and a copy that lost is marked.

Real promotions (``clearance promote --direct`` in subprocesses) talk to the session's SeaweedFS through a
fault proxy that answers 503 to everything right after the run's ``PUT …/CURRENT.json`` — for ten minutes,
far longer than the store's retry window (``CLEARANCE_S3_RETRY_SECONDS=2`` in the runs). So the version goes
live and then nothing more can be written: the run fails in Prefect, its ledger ends with ``promoting``, it
has no report and no bundle, and its failure hook cannot write either. Once the store answers again, each of
a new run of the same model, the every-minute sweep, ``clearance history`` and ``clearance audit verify`` —
alone — appends exactly one ``promoted`` entry (``recovered: true``), seals the bundle, and leaves a ledger
that audit verify passes; recovering again appends nothing.

The four faulted promotions run at the same time (one model and one proxy each) in a module fixture; the
sweep case comes last because the sweep looks at every recently failed promotion.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakes.fault_proxy import FaultProxy
from tests.integration.promotion_kit import (
    REPO,
    Candidate,
    cli,
    cli_env,
    decide,
    find_run,
    finish,
    make_candidate,
    start_direct_run,
    wait_for_request,
)

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PATHS = ("next-run", "history", "audit", "sweep")
OUTAGE = 600.0  # far beyond the runs' 2 s retry window: the store stays down until the test heals the proxy
BEFORE = ["started", "gate", "approval-requested", "approved", "promoting"]


@dataclass
class Faulted:
    cand: Candidate
    run_id: str
    log: Path


def run_entries(s3, model: str, run_id: str) -> list:
    from tasks.ledger import read_ledger

    # gate entries name their evidence (under the run's prefix), not the run
    return [e for e in read_ledger(s3, model)
            if e.payload.get("run") == run_id or f"/{run_id}/" in str(e.payload.get("evidence", ""))]


def kinds(s3, model: str) -> list[str]:
    from tasks.ledger import read_ledger

    return [e.kind for e in read_ledger(s3, model)]


@pytest.fixture(scope="module")
def direct_store(s3_service, prefect_service):
    from clearance.settings import get_settings
    from tasks.object_store import ObjectStore

    get_settings.cache_clear()
    return ObjectStore.from_settings(get_settings())


@pytest.fixture(scope="module")
def faulted(direct_store, s3_service, tmp_path_factory) -> dict[str, Faulted]:
    """Four promotions, each failing right after its pointer move (503s from then on), then the store healed."""
    s3 = direct_store
    proxies: dict[str, FaultProxy] = {}
    procs: dict[str, subprocess.Popen] = {}
    cands: dict[str, Candidate] = {}
    logs: dict[str, Path] = {}
    try:
        for path in PATHS:
            folder = tmp_path_factory.mktemp(path)
            cand = cands[path] = make_candidate(folder, s3, versions=("1.0.0", "2.0.0"))
            proxy = proxies[path] = FaultProxy(s3_service.endpoint_url, s3_service.access_key_id,
                                               s3_service.secret_access_key, s3_service.region).start()
            pointer_path = f"/production/{cand.model}/CURRENT.json"
            proxy.fail_after(lambda method, p, end=pointer_path: method == "PUT" and p.endswith(end), OUTAGE, "503")
            env = cli_env(cand, "dana") | {"CLEARANCE_S3_ENDPOINT_URL": proxy.url, "CLEARANCE_S3_RETRY_SECONDS": "2"}
            logs[path] = folder / "run.log"
            procs[path] = subprocess.Popen(
                [sys.executable, "-m", "clearance", "promote", cand.model, "1.0.0", "--direct"], env=env, cwd=REPO,
                stdout=open(logs[path], "wb"), stderr=subprocess.STDOUT)
        runs = {path: find_run(cands[path].model, "1.0.0") for path in PATHS}
        for path in PATHS:
            wait_for_request(s3, runs[path])
            assert decide(s3, cands[path], runs[path], "sam").accepted
            assert decide(s3, cands[path], runs[path], "bea").accepted
        for path in PATHS:
            assert finish(procs[path], timeout=180) != 0, logs[path].read_text()[-3000:]
            assert any(s.answered == "503" for s in proxies[path].seen), f"{path}: the outage never started"
    finally:
        for proxy in proxies.values():
            proxy.heal()
            proxy.stop()
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return {path: Faulted(cands[path], runs[path], logs[path]) for path in PATHS}


def assert_recovered_once(s3, case: Faulted, *, audited: bool = False) -> None:
    """One ``promoted`` (recovered) entry for the run, its bundle sealed, audit verify passing (``audited``: it
    just did), and nothing appended by the audit or by recovering twice more."""
    from tasks.recovery import recover_model

    model, run_id = case.cand.model, case.run_id
    ours = run_entries(s3, model, run_id)
    assert [e.kind for e in ours] == [*BEFORE, "promoted"], [e.kind for e in ours]
    promoted = ours[-1].payload
    assert promoted["recovered"] is True and "CURRENT.json names this run" in promoted["reason"], promoted
    assert promoted["production"] == {f"production/{model}/1.0.0/model.joblib": case.cand.digests["1.0.0"]}
    prefix = f"evidence/{model}/1.0.0/{run_id}/"
    assert promoted["bundle"] == prefix + "bundle.json", promoted
    bundle = json.loads(s3.get_bytes(prefix + "bundle.json")[0])
    assert {"report.md", "report.html", "gate-artifact_integrity.json", "approvals-at-seal.json"} <= \
        {f["name"] for f in bundle["files"]}
    assert "PROMOTED" in s3.get_bytes(prefix + "report.md")[0].decode()
    count = len(kinds(s3, model))
    if not audited:
        audit = cli(case.cand, "dana", "audit", "verify", model)
        assert audit.returncode == 0 and "OK" in audit.stdout, audit.stdout + audit.stderr
    assert recover_model(s3, model) == [] and recover_model(s3, model) == []
    assert len(kinds(s3, model)) == count  # neither the audit nor two more recoveries appended anything


# --------------------------------------------------------------------------- the damage, before any recovery


@pytest.mark.slow
def test_the_run_fails_after_its_pointer_move_and_leaves_the_version_live_without_a_record(faulted, direct_store):
    from tasks.prefect_runs import run_state
    from tasks.promotion import read_pointer

    s3 = direct_store
    for path, case in faulted.items():
        model = case.cand.model
        assert run_state(case.run_id).value == "FAILED", path
        pointer = read_pointer(s3, "production", model).pointer
        assert pointer is not None and (pointer.version, pointer.run_id) == ("1.0.0", case.run_id), path
        assert kinds(s3, model) == BEFORE, (path, case.log.read_text()[-3000:])  # not even the hook could write
        intent = run_entries(s3, model, case.run_id)[-1].payload
        assert intent["production"] == pointer.artifacts and intent["pointer"] == f"production/{model}/CURRENT.json"
        assert intent["artifact_digest"] == pointer.artifact_digest and intent["pointer_etag"] is None
        assert s3.head(f"evidence/{model}/1.0.0/{case.run_id}/bundle.json") is None
        # the copy is complete and verified: the pointer moved only after it
        assert s3.sha256_of(f"production/{model}/1.0.0/model.joblib")[0] == case.cand.digests["1.0.0"]
        assert s3.head(f"production/{model}/1.0.0/NOT-LIVE.json") is None


# --------------------------------------------------------------------------- each touch alone recovers


@pytest.mark.slow
def test_the_next_run_of_the_model_recovers_first(faulted, direct_store, tmp_path):
    s3, case = direct_store, faulted["next-run"]
    # The next run promotes 2.0.0, whose candidate was swapped: it stops at its gate, after recovering.
    s3.client.put_object(Bucket=s3.bucket, Key=case.cand.key("2.0.0"), Body=b"\x80\x05swapped")
    proc = start_direct_run(case.cand, "2.0.0", log=tmp_path / "next.log")
    assert finish(proc) != 0
    ledger = kinds(s3, case.cand.model)
    assert ledger == [*BEFORE, "promoted", "started", "gate", "gate-failed"], ledger
    assert_recovered_once(s3, case)


@pytest.mark.slow
def test_clearance_history_recovers(faulted, direct_store):
    s3, case = direct_store, faulted["history"]
    shown = cli(case.cand, "dana", "history", case.cand.model)
    assert shown.returncode == 0, shown.stderr
    assert "promoted" in shown.stdout and f"live: {case.cand.model} 1.0.0" in shown.stdout, shown.stdout
    assert "closed by recovery" in shown.stderr  # said where a person sees it
    assert_recovered_once(s3, case)


@pytest.mark.slow
def test_clearance_audit_verify_recovers(faulted, direct_store):
    s3, case = direct_store, faulted["audit"]
    audit = cli(case.cand, "dana", "audit", "verify", case.cand.model)
    assert audit.returncode == 0 and "1 evidence bundle match" in audit.stdout, audit.stdout + audit.stderr
    assert "closed by recovery" in audit.stderr
    assert_recovered_once(s3, case, audited=True)


@pytest.mark.slow
def test_the_every_minute_sweep_recovers(faulted, direct_store):
    s3, case = direct_store, faulted["sweep"]
    sweep = subprocess.run([sys.executable, "-c", "from flows.deadlines import approval_deadlines; "
                                                  "approval_deadlines()"],
                           env=cli_env(case.cand, "dana"), cwd=REPO, capture_output=True, text=True, timeout=180)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    assert_recovered_once(s3, case)


# --------------------------------------------------------------------------- a losing promotion's copy


def test_a_promotion_that_loses_the_pointer_race_leaves_its_copy_marked_not_live(direct_store, tmp_path):
    """Two promotions that read the same pointer race their moves on the real store: exactly one wins; the
    loser's complete copy gets NOT-LIVE.json naming its run, and the live version never carries a marker."""
    from clearance.config import load_config_dir
    from tasks.candidate import artifact_digest, observe_artifacts
    from tasks.promotion import PointerMovedError, not_live_runs, promote_to_production, read_pointer

    s3 = direct_store
    cand = make_candidate(tmp_path, s3, versions=("1.0.0", "2.0.0"))
    manifest = load_config_dir(cand.config_dir).manifests[cand.model]
    seen = read_pointer(s3, "production", cand.model)
    runs = {"1.0.0": "run-one-0000", "2.0.0": "run-two-0000"}
    outcome: dict[str, object] = {}
    start = threading.Barrier(2)

    def promote(version: str) -> None:
        mv = manifest.versions[version]
        digest = artifact_digest(observe_artifacts(s3, mv))
        start.wait()
        try:
            outcome[version] = promote_to_production(s3, "production", cand.model, version, mv, digest, seen,
                                                     runs[version], 1, "h")
        except PointerMovedError as exc:
            outcome[version] = exc

    threads = [threading.Thread(target=promote, args=(v,)) for v in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    losers = [v for v, o in outcome.items() if isinstance(o, PointerMovedError)]
    assert len(losers) == 1, outcome
    loser, winner = losers[0], next(v for v in runs if v not in losers)
    assert read_pointer(s3, "production", cand.model).pointer.version == winner
    marked = not_live_runs(s3, "production", cand.model, loser)
    assert list(marked) == [runs[loser]] and "moved" in marked[runs[loser]]["reason"]
    assert s3.sha256_of(f"production/{cand.model}/{loser}/model.joblib")[0] == cand.digests[loser]  # the copy
    assert s3.head(f"production/{cand.model}/{winner}/NOT-LIVE.json") is None
