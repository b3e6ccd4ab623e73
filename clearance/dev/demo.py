"""``make demo``: one real promotion, end to end, on local servers and embedded defaults.

Starts (or reuses) SeaweedFS and a Prefect server, trains a small classifier into
``candidates/``, pins its digest in a demo copy of ``configs/``, registers the deployment,
starts a worker, promotes as ``dana``, approves through the real CLI channel as ``sam``
(security) and ``bea`` (business), and checks the ledger. Leaves the servers running.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from clearance.core import keys

REPO = Path(__file__).resolve().parents[2]
STATE = REPO / ".local"
MODEL = "churn-classifier"
INITIATOR, APPROVERS = "dana", (("sam", "security"), ("bea", "business"))


def say(text: str) -> None:
    """Print one step of the demo."""
    print(f"\n==> {text}", flush=True)


def train_model_bytes() -> bytes:
    """A small, deterministic scikit-learn classifier, serialised with joblib."""
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    features, labels = make_classification(n_samples=2000, n_features=12, random_state=7)
    model = LogisticRegression(max_iter=500).fit(features, labels)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def next_version(store) -> str:
    """1.0.0 first, then 1.0.N past the candidates already uploaded (so `make demo` can run again)."""
    taken = {key.split("/")[2] for key in store.list_keys(keys.candidate_prefix(MODEL))}
    n = 0
    while f"1.0.{n}" in taken:
        n += 1
    return f"1.0.{n}"


def write_demo_configs(version: str, key: str, body: bytes) -> Path:
    """Copy configs/ and pin the new candidate (digest and size) in the demo manifest."""
    target = STATE / "demo" / "configs"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(REPO / "configs", target, ignore=shutil.ignore_patterns("schemas"))
    path = target / "models" / f"{MODEL}.yaml"
    manifest = yaml.safe_load(path.read_text())
    manifest["versions"] = {version: {"artifacts": [{"key": key, "sha256": hashlib.sha256(body).hexdigest(),
                                                     "size": len(body), "format": "joblib"}],
                                      "notes": "trained by make demo"}}
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return target


def make_identities(configs: Path) -> dict[str, Path]:
    """SSH keys for the demo's people and the service key, pinned in the demo's principals.yaml.

    Returns person → private key path. Keys are made once under .local/demo/keys and reused.
    """
    from tasks.signing import write_key_pair

    folder = STATE / "demo" / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    people = [INITIATOR, *(user for user, _ in APPROVERS)]
    paths = {}
    for person in people:
        path = folder / person
        if not path.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{person}@clearance-demo", "-f",
                            str(path)], check=True)
        paths[person] = path
    service = folder / "clearance-service"
    if not service.exists():
        write_key_pair(service)
    principals_path = configs / "principals.yaml"
    document = yaml.safe_load(principals_path.read_text())
    for entry in document["principals"]:
        if entry["id"] in paths:
            entry["ssh_keys"] = [paths[entry["id"]].with_name(entry["id"] + ".pub").read_text().strip()]
    document["service_keys"] = [service.with_name(service.name + ".pub").read_text().strip()]
    principals_path.write_text(yaml.safe_dump(document, sort_keys=False))
    os.environ["CLEARANCE_SERVICE_KEY_FILE"] = str(service)
    return paths


def clearance(*args: str, user: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run the real CLI as an OS user name (how the CLI channel identifies people)."""
    return subprocess.run([sys.executable, "-m", "clearance", *args], env=env | {"USER": user, "LOGNAME": user},
                          text=True, capture_output=True, check=False)


def start_worker(env: dict[str, str]) -> None:
    """A process worker for the `clearance` pool, left running with the servers."""
    pid_file = STATE / "worker.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), 0)
            return
        except (ProcessLookupError, ValueError):
            pass
    log = open(STATE / "worker.log", "ab")
    worker = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", "clearance"],
                              env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
    pid_file.write_text(str(worker.pid))


def wait_for_state(run_id: str, wanted: set[str], timeout: float) -> str:
    """Poll the run until its state type is one of ``wanted``."""
    from tasks.prefect_runs import run_state

    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = run_state(run_id)
        if state and state.value in wanted:
            return state.value
        time.sleep(1)
    raise TimeoutError(f"run {run_id} still {state} after {timeout:.0f}s; see {STATE}/worker.log")


def main() -> int:
    """Run the demo; returns the process exit code."""
    from clearance.dev import devservers

    say("Starting local SeaweedFS (S3) and Prefect server")
    services = devservers.up(STATE)
    env = dict(os.environ) | devservers.service_env(services) | {"PREFECT_WORKER_QUERY_SECONDS": "2",
                                                                  "PREFECT_CLIENT_MAX_RETRIES": "20"}
    os.environ.update(env)
    from clearance.settings import get_settings
    from tasks.wiring import object_store

    get_settings.cache_clear()
    store = object_store()

    say("Training an example model into candidates/")
    version = next_version(store)
    key = keys.candidate_key(MODEL, version, "model.joblib")
    body = train_model_bytes()
    store.put_if_absent(key, body, content_type="application/octet-stream")
    configs = write_demo_configs(version, key, body)
    env["CLEARANCE_CONFIG_DIR"] = os.environ["CLEARANCE_CONFIG_DIR"] = str(configs)
    people = make_identities(configs)
    env["CLEARANCE_SERVICE_KEY_FILE"] = os.environ["CLEARANCE_SERVICE_KEY_FILE"]
    get_settings.cache_clear()
    print(f"   {key} ({len(body)} bytes), configs pinned in {configs}")

    say("Validating configs, registering the deployment, starting a worker")
    check = clearance("validate", str(configs), user=INITIATOR, env=env)
    print("  ", (check.stdout + check.stderr).strip())
    if check.returncode:
        return check.returncode
    deployed = clearance("deploy", user=INITIATOR, env=env)
    print("  ", (deployed.stdout + deployed.stderr).strip())
    if deployed.returncode:
        return deployed.returncode
    start_worker(env)

    say(f"Promoting {MODEL} {version} as {INITIATOR}, signed with her SSH key (high tier: verified people only, "
        "security + business)")
    started = clearance("promote", MODEL, version, "--key", str(people[INITIATOR]), user=INITIATOR, env=env)
    match = re.search(r"run ([0-9a-f-]{36})", started.stdout)
    if started.returncode or match is None:
        print((started.stdout + started.stderr).strip())
        return started.returncode or 1
    run_id = match.group(1)
    print(f"   run {run_id}")
    wait_for_state(run_id, {"PAUSED"}, timeout=240)
    print("   gates passed; the run is suspended waiting for sign-off")

    first, _ = APPROVERS[0]
    unsigned = clearance("approve", run_id, user=first, env=env)
    print(f"   {first}'s OS login alone (no signature) is only a claimed identity: "
          f"{(unsigned.stderr or unsigned.stdout).strip()}")
    refused = clearance("approve", run_id, "--key", str(people[INITIATOR]), user=INITIATOR, env=env)
    print(f"   {INITIATOR} signs an approval of her own model: {(refused.stderr or refused.stdout).strip()}")
    for user, role in APPROVERS:
        done = clearance("approve", run_id, "--comment", f"{role} review done", "--key", str(people[user]),
                         user=user, env=env)
        print(f"   {user} ({role}): {(done.stdout or done.stderr).strip()}")
        if done.returncode:
            return done.returncode

    final = wait_for_state(run_id, {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}, timeout=240)
    print(f"   run finished: {final}")
    audit = clearance("audit", "verify", MODEL, user=INITIATOR, env=env)
    history = clearance("history", MODEL, user=INITIATOR, env=env)
    report_key = keys.run_file(MODEL, version, run_id, keys.REPORT_MD)
    report = store.get_bytes(report_key)[0].decode() if store.head(report_key) else "(no report)"

    say("Result")
    print(report)
    print(history.stdout)
    print(f"production key: {keys.production_key(MODEL, version, key)} (pointer {keys.pointer_key(MODEL)})")
    print(f"audit verify:   {(audit.stdout + audit.stderr).strip()}")
    print(f"Prefect UI:     {services.prefect.ui_url}/runs/flow-run/{run_id}")
    print(f"S3 endpoint:    {services.s3.endpoint_url} (bucket {services.s3.bucket}); "
          f"`eval $(make -s env)` to use the CLI here")
    print("stop everything: make down")
    return 0 if final == "COMPLETED" and audit.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
