"""Benchmark: a signed Slack click reaching ``clearance serve`` → the promotion running past its wait.

    .venv/bin/python bench/slack_click_bench.py --runs 8

Starts a local SeaweedFS and Prefect server (temp state), the local Slack (tests/fakes), and the
real ASGI app of ``clearance serve`` (uvicorn, in this process). Starts ``--runs`` promotions
(``clearance promote --direct`` subprocesses, Slack notifier on), gives each one approval through
the shared intake so that one is missing, then, one run at a time, sends the deciding **Approve**
click as Slack would (form-encoded, v0-signed) and measures:

- ``ack``         click sent → HTTP 200 back (Slack wants < 3 s);
- ``recorded``    click sent → the decision's timestamp in the approvals record;
- ``resumed``     click sent → the paused flow sees its resume (Prefect's "Resuming flow run
                  execution!" log line): the flow running past its wait;
- ``past wait``   click sent → the ``approved`` ledger entry the flow writes after its wait (it has
                  also re-read the record: an upper bound of "running again").

Not a test (timings on a shared 2-core machine are noisy); prints p50/p95/max.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "bench-signing-secret"
CHANNEL = "C0123456789"


def resumed_at(run_id: str, timeout: float = 30) -> float:
    """When the paused flow saw its resume: the timestamp of Prefect's own "Resuming flow run
    execution!" log line (logs are shipped in batches, so wait for it to arrive)."""
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)])))
        stamps = [log.timestamp.timestamp() for log in logs if "Resuming flow run execution" in log.message]
        if stamps:
            return max(stamps)
        time.sleep(0.5)
    raise TimeoutError(f"no resume log line of run {run_id}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--poll", type=float, default=0.5, help="CLEARANCE_APPROVAL_POLL_SECONDS of the runs")
    args = parser.parse_args()

    from clearance.dev import devservers

    state = Path(tempfile.mkdtemp(prefix="slack-bench-"))
    s3 = devservers.start_s3(state)
    prefect = devservers.start_prefect(state)
    try:
        os.environ.update({
            "CLEARANCE_S3_ENDPOINT_URL": s3.endpoint_url, "CLEARANCE_S3_REGION": s3.region,
            "CLEARANCE_S3_ACCESS_KEY_ID": s3.access_key_id, "CLEARANCE_S3_SECRET_ACCESS_KEY": s3.secret_access_key,
            "CLEARANCE_BUCKET": s3.bucket, "PREFECT_API_URL": prefect.api_url,
            "CLEARANCE_PREFECT_API_URL": prefect.api_url, "PREFECT_HOME": str(state / "prefect-client"),
            "CLEARANCE_APPROVAL_POLL_SECONDS": str(args.poll),
            "PREFECT_LOGGING_LEVEL": "INFO",  # the runs ship Prefect's "Resuming flow run" line: the measure
        })
        run_bench(args.runs)
    finally:
        devservers.stop(prefect)
        devservers.stop(s3)


def run_bench(runs: int) -> None:
    import httpx

    from clearance.app.serve.app import build_app
    from clearance.core.keys import approvals_key, slack_state_key
    from clearance.settings import get_settings
    from tasks.approvals_record import read_record
    from tasks.ledger import read_ledger
    from tasks.object_store import ObjectStore
    from tests.fakes.slack_server import AsgiThread, FakeSlack, block_actions, button, form_body, sign
    from tests.integration.promotion_kit import (
        PRINCIPALS,
        decide,
        find_run,
        finish,
        make_candidate,
        start_direct_run,
        wait_for_request,
    )

    fake = FakeSlack(channels=(CHANNEL,), users={p["slack_id"]: p["email"] for p in PRINCIPALS}).start()
    os.environ.update(fake.env(CHANNEL, SECRET))
    store = ObjectStore.from_settings(get_settings())
    # One model per run: versions of one model racing for its production pointer would fail by design.
    cands = [make_candidate(Path(tempfile.mkdtemp(prefix="slack-bench-cfg-")), store) for _ in range(runs)]
    os.environ["CLEARANCE_CONFIG_DIR"] = str(cands[0].config_dir)  # same principals.yaml in every config dir
    get_settings.cache_clear()
    serve = AsgiThread(build_app())
    http = httpx.Client(base_url=serve.url, timeout=10)
    try:
        started = time.monotonic()
        logs = Path(tempfile.mkdtemp(prefix="slack-bench-logs-"))
        procs = {c.model: start_direct_run(c, "1.0.0", log=logs / f"{c.model}.log") for c in cands}
        run_ids = {c.model: find_run(c.model, "1.0.0") for c in cands}
        for cand in cands:
            wait_for_request(store, run_ids[cand.model], timeout=300)
            assert decide(store, cand, run_ids[cand.model], "sam").accepted
        print(f"{runs} runs waiting for their last approval after {time.monotonic() - started:.1f} s", flush=True)

        rows = []
        version = "1.0.0"
        for model, run_id in run_ids.items():
            from tests.integration.promotion_kit import wait_state

            wait_state(run_id, {"PAUSED"}, timeout=60)
            slack = store.get_json(slack_state_key(model, version, run_id))
            message = fake.messages[(slack["approvals"][0]["channel"], slack["approvals"][0]["ts"])]
            value = button(message["blocks"], "clearance_approve")["value"]
            payload = block_actions(fake, user="U0BEA000004", channel=CHANNEL, message_ts=message["ts"],
                                    action_id="clearance_approve", value=value)
            body = form_body(payload)
            headers = sign(SECRET, body)
            t0 = time.time()
            response = http.post("/slack/interactions", content=body, headers=headers)
            ack = time.time() - t0
            assert response.status_code == 200, response.text
            code = finish(procs[model], timeout=120)
            assert code == 0, f"run {run_id} exit {code}: " + (logs / f"{model}.log").read_text()[-3000:]
            record = read_record(store, approvals_key(model, version, run_id))[0]
            bea = next(d for d in record.decisions if d.principal == "bea")
            # The flow's first ledger entry after the wait ("approved": written once the run has re-read the
            # record and told the channels it closed) — an upper bound of "running past its wait".
            approved = next(e for e in read_ledger(store, model) if e.kind == "approved")
            rows.append({"run": run_id, "ack": ack, "recorded": bea.at.timestamp() - t0,
                         "resumed": resumed_at(run_id) - t0, "past_wait": approved.at.timestamp() - t0})
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in rows[-1].items()}),
                  flush=True)
        print()
        print(f"| measure (n={len(rows)}) | p50 s | p95 s | max s |")
        print("|---|---:|---:|---:|")
        for name in ("ack", "recorded", "resumed", "past_wait"):
            values = [r[name] for r in rows]
            print(f"| {name} | {statistics.median(values):.3f} | {percentile(values, 95):.3f} | {max(values):.3f} |")
        assert fake.violations == [], fake.violations
    finally:
        serve.stop()
        fake.stop()


if __name__ == "__main__":
    main()
