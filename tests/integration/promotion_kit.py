"""Helpers for promotion tests: a config dir with uploaded candidates, runs in subprocesses, decisions."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
# A pickle-protocol-5 header, so format sniffing sees a joblib/pickle stream.
FAKE_JOBLIB = b"\x80\x05\x95"

POLICY_HIGH: dict[str, Any] = {
    "tier": "high",
    "gates": [{"id": "artifact_integrity", "mode": "blocking", "config": {"allowed_formats": ["joblib"]}}],
    "on_warn": "require_approval",
    "approvals": {"roles": {"security": {"min": 1}, "business": {"min": 1}},
                  "channels": ["cli", "prefect-ui", "slack", "jira"], "timeout": "1h", "timeout_outcome": "reject"},
}
PRINCIPALS = [
    {"id": "dana", "email": "dana@example.com", "slack_id": "U0DANA00001", "local_users": ["dana"], "roles": []},
    {"id": "sam", "email": "sam@example.com", "slack_id": "U0SAM000002", "local_users": ["sam"], "roles": ["security"]},
    {"id": "sol", "email": "sol@example.com", "slack_id": "U0SOL000003", "local_users": ["sol"], "roles": ["security"]},
    {"id": "bea", "email": "bea@example.com", "slack_id": "U0BEA000004", "local_users": ["bea"], "roles": ["business"]},
    {"id": "carl", "email": "carl@example.com", "slack_id": "U0CARL00005", "local_users": ["carl"],
     "roles": ["compliance"]},
]


@dataclass
class Candidate:
    """A model whose versions were uploaded to ``candidates/`` and pinned in a config dir."""

    model: str
    config_dir: Path
    digests: dict[str, str] = field(default_factory=dict)

    def key(self, version: str) -> str:
        return f"candidates/{self.model}/{version}/model.joblib"


def make_candidate(tmp_path: Path, store, versions: tuple[str, ...] = ("1.0.0",),
                   policy: dict[str, Any] | None = None, sizes: dict[str, int] | None = None) -> Candidate:
    """Upload one small artifact per version and write configs that pin them (unique model name).

    ``sizes`` makes the artifact of a version that many bytes instead (random, so incompressible): one
    bigger than ``tasks.object_store.PART_SIZE`` is copied to production as a multipart upload.
    """
    model = f"m-{uuid.uuid4().hex[:10]}"
    config_dir = tmp_path / "configs"
    (config_dir / "policies").mkdir(parents=True)
    (config_dir / "models").mkdir()
    candidate = Candidate(model=model, config_dir=config_dir)
    pinned = {}
    for version in versions:
        head = FAKE_JOBLIB + f"{model}:{version}:".encode()
        body = head + os.urandom(max(256, (sizes or {}).get(version, 0) - len(head)))
        store.put_if_absent(candidate.key(version), body)
        candidate.digests[version] = hashlib.sha256(body).hexdigest()
        pinned[version] = {"artifacts": [{"key": candidate.key(version), "sha256": candidate.digests[version],
                                          "size": len(body), "format": "joblib"}]}
    (config_dir / "policies" / "high.yaml").write_text(yaml.safe_dump(policy or POLICY_HIGH))
    (config_dir / "principals.yaml").write_text(yaml.safe_dump({"principals": PRINCIPALS}))
    manifest = {"name": model, "owner": "dana", "authors": ["dana"], "risk_tier": "high", "versions": pinned}
    (config_dir / "models" / f"{model}.yaml").write_text(yaml.safe_dump(manifest))
    return candidate


def many_models(tmp_path: Path, store, count: int) -> list[Candidate]:
    """``count`` models in ONE config dir (what a deployment's runs read), each with version 1.0.0 uploaded."""
    first = make_candidate(tmp_path / "c0", store)
    candidates = [first]
    for index in range(1, count):
        other = make_candidate(tmp_path / f"c{index}", store)
        shutil.copy(other.config_dir / "models" / f"{other.model}.yaml", first.config_dir / "models")
        other.config_dir = first.config_dir
        candidates.append(other)
    return candidates


def cli_env(candidate: Candidate, user: str) -> dict[str, str]:
    """The environment of a CLI process run by OS user ``user`` on this candidate's configs."""
    defaults = {"CLEARANCE_APPROVAL_POLL_SECONDS": "1", "PREFECT_CLIENT_MAX_RETRIES": "20",
                "PREFECT_LOGGING_LEVEL": "WARNING"}  # the caller's environment wins (benchmarks set these)
    return defaults | dict(os.environ) | {"CLEARANCE_CONFIG_DIR": str(candidate.config_dir), "USER": user,
                                          "LOGNAME": user}


def start_direct_run(candidate: Candidate, version: str, *, user: str = "dana", dry_run: bool = False,
                     log: Path | None = None, own_group: bool = False) -> subprocess.Popen:
    """``clearance promote MODEL VERSION --direct`` in a subprocess (the pause path); ``own_group`` starts it
    in a process group of its own, which a test may kill whole (``os.killpg(process.pid, …)``)."""
    args = [sys.executable, "-m", "clearance", "promote", candidate.model, version, "--direct"]
    if dry_run:
        args.append("--dry-run")
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen(args, env=cli_env(candidate, user), cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=own_group)


def cli(candidate: Candidate, user: str, *args: str) -> subprocess.CompletedProcess:
    """Run the real CLI as ``user``."""
    return subprocess.run([sys.executable, "-m", "clearance", *args], env=cli_env(candidate, user), cwd=REPO,
                          text=True, capture_output=True, timeout=120)


def find_run(model: str, version: str, timeout: float = 180) -> str:
    """The id of the promote-model run for this model and version (polls the Prefect API)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["promote-model"])))
        for run in runs:
            if run.parameters.get("model") == model and run.parameters.get("version") == version:
                return str(run.id)
        time.sleep(0.5)
    raise TimeoutError(f"no run of {model} {version} appeared")


def wait_state(run_id: str, wanted: set[str], timeout: float = 120) -> str:
    """Wait until the run's state type is in ``wanted``; returns it."""
    from tasks.prefect_runs import run_state

    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        try:
            state = run_state(run_id)
        except Exception:  # noqa: BLE001 — the server may be restarting in a test
            state = None
        if state is not None and state.value in wanted:
            return state.value
        time.sleep(0.3)
    raise TimeoutError(f"run {run_id} is {state}, not in {wanted}, after {timeout}s")


def wait_for_request(store, run_id: str, timeout: float = 120) -> None:
    """Wait until the run has opened its approval request and is paused on it."""
    from clearance.core.keys import run_index_key

    deadline = time.monotonic() + timeout
    while store.head(run_index_key(run_id)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} opened no approval request")
        time.sleep(0.3)
    wait_state(run_id, {"PAUSED"}, timeout)


def decide(store, candidate: Candidate, run_id: str, who: str, vote: str = "approve", comment: str = "ok",
           channel: str = "cli", digest: str | None = None):
    """A decision through the shared intake, as the principal ``who`` (as a channel would after auth)."""
    from clearance.approvals import Vote
    from clearance.config import load_config_dir
    from clearance.config.schema import Channel
    from tasks.approval_intake import receive_decision

    principal = load_config_dir(candidate.config_dir).principals.by_id(who)
    return receive_decision(store, run_id, principal=principal, identity=who, channel=Channel(channel),
                            vote=Vote(vote), comment=comment, artifact_digest=digest)


def finish(process: subprocess.Popen, timeout: float = 120) -> int:
    """Wait for a run subprocess; returns its exit code."""
    return process.wait(timeout=timeout)


POLICY_VERIFIED: dict[str, Any] = {**POLICY_HIGH, "approvals": {**POLICY_HIGH["approvals"], "assurance": "verified"}}


def give_ssh_keys(candidate: Candidate, folder: Path, people: tuple[str, ...] = ("dana", "sam", "bea")
                  ) -> dict[str, Path]:
    """An ed25519 SSH key per person, pinned as their ``ssh_keys`` in the candidate's principals.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for person in people:
        path = folder / person
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", person, "-f", str(path)], check=True)
        paths[person] = path
    principals_file = candidate.config_dir / "principals.yaml"
    document = yaml.safe_load(principals_file.read_text())
    for entry in document["principals"]:
        if entry["id"] in paths:
            entry["ssh_keys"] = [Path(f"{paths[entry['id']]}.pub").read_text().strip()]
    principals_file.write_text(yaml.safe_dump(document))
    return paths


def start_signed_run(candidate: Candidate, version: str, key: Path | None, *, user: str = "dana",
                     log: Path | None = None) -> subprocess.Popen:
    """``clearance promote MODEL VERSION --direct [--key KEY]`` in a subprocess."""
    args = [sys.executable, "-m", "clearance", "promote", candidate.model, version, "--direct"]
    if key is not None:
        args += ["--key", str(key)]
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen(args, env=cli_env(candidate, user), cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def slack_for_principals(channel: str):
    """A local Slack (tests/fakes/slack_server.py) with ``channel`` and every principal of :data:`PRINCIPALS` as a
    user (Slack id → e-mail), started; the caller stops it."""
    from tests.fakes.slack_server import FakeSlack

    users: dict[str, str | None] = {str(p["slack_id"]): str(p["email"]) for p in PRINCIPALS}
    return FakeSlack(channels=(channel,), users=users).start()


def start_pool_worker(pool: str, log: Path, *, clearance: bool = False, **env: str) -> subprocess.Popen:
    """A worker for ``pool`` polling every second, in a process group of its own (stop it with :func:`stop_worker`):
    ``prefect worker start``, or with ``clearance`` ``clearance worker`` (the same worker, and the sweep in the same
    process). ``env`` adds to the environment (``--sweep-every`` and ``--limit`` of clearance worker as
    ``SWEEP_EVERY``/``LIMIT``)."""
    sweep_every, limit = env.pop("SWEEP_EVERY", "60"), env.pop("LIMIT", None)
    environment = dict(os.environ) | {"PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5",
                                      "CLEARANCE_APPROVAL_POLL_SECONDS": "1"} | env
    if clearance:
        argv = [sys.executable, "-m", "clearance", "worker", "--pool", pool, "--sweep-every", sweep_every,
                *(["--limit", limit] if limit else [])]
    else:
        argv = [str(Path(sys.executable).parent / "prefect"), "worker", "start", "--pool", pool]
    return subprocess.Popen(argv, env=environment, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def pool_worker(pool: str, folder: Path, *, clearance: bool = False) -> Iterator[Path]:
    """A module fixture's body: the pool, one worker on it (see :func:`start_pool_worker`) until the module ends;
    yields the worker's log."""
    from clearance.app.deployments import ensure_work_pool

    ensure_work_pool(pool)
    log = folder / "worker.log"
    proc = start_pool_worker(pool, log, clearance=clearance)
    yield log
    stop_worker(proc)


def flow_run_states(run_ids: list[str]) -> dict[str, str]:
    """Each run's state name (Suspended, Completed, …), read 200 at a time."""
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    found: dict[str, str] = {}
    with get_client(sync_client=True) as client:
        for start in range(0, len(run_ids), 200):
            chunk = FlowRunFilterId(any_=[UUID(r) for r in run_ids[start:start + 200]])
            for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(id=chunk), limit=200):
                found[str(run.id)] = run.state.name if run.state else "?"
    return found


def wait_all(run_ids: list[str], wanted: set[str], timeout: float) -> dict[str, str]:
    """Wait until every run's state name is in ``wanted`` (or ``timeout``); returns the states last read."""
    deadline = time.monotonic() + timeout
    while True:
        states = flow_run_states(run_ids)
        if all(states.get(r) in wanted for r in run_ids) or time.monotonic() > deadline:
            return states
        time.sleep(1)


def stop_worker(proc: subprocess.Popen, grace: float = 30) -> None:
    """Stop a ``prefect worker`` started with ``start_new_session=True``: SIGTERM, then after ``grace`` seconds
    SIGKILL to its whole process group (it and the flow runs it started), so no worker outlives its test and
    keeps picking up the session's scheduled runs."""
    import signal

    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def write_recertification_configs(root: Path, models: list[str], recertification: dict[str, Any],
                                  own: dict[str, dict[str, Any]] | None = None,
                                  principals: list[dict[str, Any]] | None = None, replace: bool = True) -> Path:
    """A config dir of many models on tier ``high`` (re-certifying with ``recertification`` unless it is {}): one
    manifest per model (``own[model]`` as its ``recertification`` section). ``replace`` first removes the
    manifests written before (the configs *are* these models); otherwise only these models' files change."""
    (root / "policies").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(exist_ok=True)
    for old in (root / "models").glob("*.yaml") if replace else ():
        old.unlink()
    policy: dict[str, Any] = {"tier": "high", "gates": [{"id": "artifact_integrity",
                                                         "config": {"allowed_formats": ["joblib"]}}]}
    if recertification:
        policy["recertification"] = recertification
    (root / "policies" / "high.yaml").write_text(yaml.safe_dump(policy))
    (root / "principals.yaml").write_text(yaml.safe_dump({"principals": principals or PRINCIPALS}))
    for model in models:
        manifest: dict[str, Any] = {
            "name": model, "owner": "dana", "risk_tier": "high",
            "versions": {"1.0.0": {"artifacts": [{"key": f"candidates/{model}/1.0.0/model.joblib",
                                                  "sha256": "0" * 64, "size": 1, "format": "joblib"}]}}}
        if own and model in own:
            manifest["recertification"] = own[model]
        (root / "models" / f"{model}.yaml").write_text(yaml.safe_dump(manifest))
    return root
