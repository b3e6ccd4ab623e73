"""Findings 2, 3 and 6 of issue 10, on a real Prefect server and a real SeaweedFS.

2. The CLI took the principal from LOGNAME/USER: ``LOGNAME=sam clearance approve`` then
   ``LOGNAME=bea …`` approved. In a tier that counts only verified decisions, an OS login is a
   claimed identity and is refused; only decisions signed with a key pinned in principals.yaml count.
3. Anyone who can write the bucket could put an approvals record with invented decisions, and the
   flow counted them. Now the flow re-checks every decision's proof and ignores the stored outcome.
6. The initiator was a free flow parameter: started with ``initiator=unknown``, the initiator
   approved their own promotion. Now a run whose start is not signed opens no sign-off anyone can
   pass in a verified tier.
"""

from __future__ import annotations

import json
import time

import pytest

from tests.integration.promotion_kit import (
    POLICY_VERIFIED,
    cli,
    find_run,
    finish,
    give_ssh_keys,
    make_candidate,
    start_signed_run,
    wait_for_request,
    wait_state,
)

pytestmark = pytest.mark.integration


def record(s3, cand, run_id):
    return json.loads(s3.get_bytes(f"evidence/{cand.model}/1.0.0/{run_id}/approvals.json")[0])


def test_only_signed_decisions_count_and_a_forged_record_approves_nothing(s3, tmp_path):
    cand = make_candidate(tmp_path, s3, policy=POLICY_VERIFIED)
    keys = give_ssh_keys(cand, tmp_path / "keys")
    proc = start_signed_run(cand, "1.0.0", keys["dana"], log=tmp_path / "run.log")
    run_id = find_run(cand.model, "1.0.0")
    wait_for_request(s3, run_id)

    # Finding 2: an OS login claiming to be sam or bea is refused, whatever LOGNAME says.
    for user in ("sam", "bea"):
        spoof = cli(cand, user, "approve", run_id)
        assert spoof.returncode == 1 and "assurance_too_low" in spoof.stderr, spoof.stderr
    # A key that is nobody's is refused before anything is sent.
    stranger = give_ssh_keys(make_candidate(tmp_path / "other", s3), tmp_path / "stranger", ("sam",))["sam"]
    unknown = cli(cand, "sam", "approve", run_id, "--key", str(stranger))
    assert unknown.returncode == 1 and "not in the ssh_keys of any principal" in unknown.stderr

    # Finding 3: decisions written straight into the bucket, with the outcome set to approved.
    key = f"evidence/{cand.model}/1.0.0/{run_id}/approvals.json"
    body, etag = s3.get_bytes(key)
    forged = json.loads(body)
    for who, role in (("sam", "security"), ("bea", "business")):
        forged["decisions"].append({"id": f"forged-{who}", "principal": who, "channel": "cli", "vote": "approve",
                                    "roles": [role], "artifact_digest": forged["request"]["artifact_digest"],
                                    "evidence_digest": forged["request"]["evidence_digest"],
                                    "at": forged["request"]["opened_at"], "assurance": "verified"})
    forged["outcome"], forged["closed_by"] = "approved", ["sam", "bea"]
    s3.put_if_match(key, json.dumps(forged).encode(), etag)
    from tasks.prefect_runs import wake_run

    wake_run(run_id)
    time.sleep(3)
    assert wait_state(run_id, {"PAUSED"}) == "PAUSED"  # it looked, and went back to waiting
    assert proc.poll() is None
    log = (tmp_path / "run.log").read_text()
    assert "decision forged-s (approve by sam via cli) not counted: it carries no proof" in log
    assert "decision forged-b (approve by bea via cli) not counted: it carries no proof" in log

    # The real sign-off: signed by sam's and bea's own keys (dana, the verified initiator, is refused).
    own = cli(cand, "dana", "approve", run_id, "--key", str(keys["dana"]))
    assert own.returncode == 1 and "self_approval" in own.stderr
    for who in ("sam", "bea"):
        done = cli(cand, who, "approve", run_id, "--key", str(keys[who]))
        assert done.returncode == 0, done.stderr
    assert finish(proc) == 0, (tmp_path / "run.log").read_text()[-3000:]
    counted = [d for d in record(s3, cand, run_id)["decisions"] if d["proof"] and d["proof"]["kind"] == "person"]
    assert {d["principal"] for d in counted} == {"sam", "bea"}
    assert all(d["assurance"] == "verified" and d["identity"].startswith("ssh:SHA256:") for d in counted)


def test_an_unsigned_start_cannot_be_signed_off_by_anyone(s3, tmp_path):
    cand = make_candidate(tmp_path, s3, policy=POLICY_VERIFIED)
    keys = give_ssh_keys(cand, tmp_path / "keys")
    # Finding 6: started without a signature, by an OS user who is nobody ("unknown" initiator).
    proc = start_signed_run(cand, "1.0.0", None, user="mallory", log=tmp_path / "run.log")
    try:
        run_id = find_run(cand.model, "1.0.0")
        wait_for_request(s3, run_id)
        stored = record(s3, cand, run_id)["request"]
        assert stored["initiator"] == "mallory" and stored["initiator_assurance"] == "claimed"
        for who in ("sam", "bea", "dana"):
            refused = cli(cand, who, "approve", run_id, "--key", str(keys[who]))
            assert refused.returncode == 1 and "start_unverified" in refused.stderr, refused.stderr
        assert record(s3, cand, run_id)["decisions"] == []
        assert wait_state(run_id, {"PAUSED"}) == "PAUSED"
    finally:
        proc.kill()
        proc.wait(timeout=30)
