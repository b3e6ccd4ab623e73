"""clearance.dev.devservers: the CLI a user runs (up twice, status, env, down) and a Prefect restart."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from clearance.dev import devservers, postgres

pytestmark = pytest.mark.integration


def cli(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clearance.dev.devservers", *args, "--state-dir", str(state)],
                          capture_output=True, text=True, timeout=240, cwd=devservers.REPO)


def listening_addresses(pid: int) -> set[str]:
    """``ip:port`` of the TCP sockets ``pid`` listens on (from /proc, IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                addr, port = cols[1].split(":")
                ip = ".".join(str(int(addr[i:i + 2], 16)) for i in (6, 4, 2, 0)) if len(addr) == 8 else addr
                found.add(f"{ip}:{int(port, 16)}")
    return found


def wait_dead(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not devservers.alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_up_twice_reuses_then_down_stops(tmp_path: Path) -> None:
    state = tmp_path / "state"
    try:
        first = cli(state, "up")
        assert first.returncode == 0, first.stderr
        services = devservers.load(state)
        assert services is not None
        second = cli(state, "up")
        assert second.returncode == 0, second.stderr
        again = devservers.load(state)
        assert again is not None
        assert (again.s3.pid, again.prefect.pid) == (services.s3.pid, services.prefect.pid)

        # loopback only, on the ports we chose (no default port such as 8333/9333/23646 left open)
        for pid in (services.s3.pid, services.prefect.pid):
            addresses = listening_addresses(pid)
            assert addresses and all(a.startswith("127.0.0.1:") for a in addresses), addresses
        weed_ports = {int(a.rsplit(":", 1)[1]) for a in listening_addresses(services.s3.pid)}
        assert weed_ports <= set(services.s3.ports.values()), weed_ports - set(services.s3.ports.values())

        # credentials: private files, never in up/status output, only in env
        creds = state / devservers.CREDENTIALS_FILE
        assert stat.S_IMODE(creds.stat().st_mode) == 0o600
        secret = json.loads(creds.read_text())["secret_access_key"]
        status = cli(state, "status")
        assert json.loads(status.stdout)["s3"]["healthy"] is True
        assert json.loads(status.stdout)["prefect"]["healthy"] is True
        assert secret not in first.stdout + second.stdout + status.stdout + repr(services)
        env = cli(state, "env")
        assert env.returncode == 0
        assert f"export CLEARANCE_S3_SECRET_ACCESS_KEY={secret}" in env.stdout
        assert f"export PREFECT_API_URL={services.prefect.api_url}" in env.stdout
        assert "CLEARANCE_CONFIG_DIR" not in env.stdout  # no demo has run in this state dir yet
        # after a demo: its configs, advisory db and service key; and a fresh shell finds `clearance` on PATH
        (state / "demo" / "configs" / "advisories").mkdir(parents=True)
        (state / "demo" / "keys").mkdir()
        (state / "demo" / "keys" / "clearance-service").write_text("key")
        env = cli(state, "env")
        for name, path in (("CLEARANCE_CONFIG_DIR", "configs"), ("CLEARANCE_ADVISORY_DB", "configs/advisories"),
                           ("CLEARANCE_SERVICE_KEY_FILE", "keys/clearance-service")):
            assert f"export {name}={(state / 'demo' / path).resolve()}" in env.stdout
        shell = subprocess.run(["bash", "--noprofile", "--norc", "-c",
                                'eval "$1" && command -v clearance && clearance validate --help >/dev/null '
                                '&& echo "$CLEARANCE_CONFIG_DIR"', "_", env.stdout],
                               env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, capture_output=True, text=True,
                               timeout=120)
        assert shell.returncode == 0, shell.stderr
        assert shell.stdout.splitlines() == [str(Path(sys.executable).parent / "clearance"),
                                             str((state / "demo" / "configs").resolve())]
        with urllib.request.urlopen(f"{services.prefect.api_url}/health", timeout=5) as r:
            assert r.read() == b"true"

        down = cli(state, "down")
        assert down.returncode == 0, down.stderr
        assert wait_dead(services.s3.pid) and wait_dead(services.prefect.pid)
        assert devservers.free_port_is_free(services.prefect.port)
        assert not (state / devservers.STATE_FILE).exists()
        assert postgres.load(state) is None  # with CLEARANCE_LOCAL_DB=postgres, `down` stopped its cluster too
        assert cli(state, "env").returncode == 1
        assert json.loads(creds.read_text())["secret_access_key"] == secret  # kept for the next `up`
    finally:
        cli(state, "down")


def test_restart_prefect_keeps_port_and_database(tmp_path: Path) -> None:
    service = devservers.start_prefect(tmp_path)
    try:
        body = json.dumps({"name": "survives_restart", "value": "yes"}).encode()
        request = urllib.request.Request(f"{service.api_url}/variables/", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 201
        restarted = devservers.restart_prefect(service)  # on the same database: SQLite, or the PostgreSQL cluster
        assert restarted.port == service.port and restarted.home == service.home
        assert restarted.database == service.database == devservers.local_database()
        assert restarted.pid != service.pid and not devservers.alive(service.pid)
        with urllib.request.urlopen(f"{restarted.api_url}/variables/name/survives_restart", timeout=10) as r:
            assert json.loads(r.read())["value"] == "yes"
        service = restarted
    finally:
        devservers.stop(service)
        cluster_stopped = postgres.down(tmp_path)  # CLEARANCE_LOCAL_DB=postgres: the state dir's cluster
    assert not devservers.alive(service.pid)
    assert cluster_stopped is (None if service.database == "sqlite" else True)


# --------------------------------------------------------------------------- `make down` is honest
# Finding 7 (issue 11): it waits for what it stops, kills what ignores SIGTERM, and says which.

STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
POLITE = "import time; time.sleep(600)"


def spawn(code: str, *marker_args: str) -> subprocess.Popen[bytes]:
    """A python child in its own session (as the demo starts its worker); ``marker_args`` end up in its cmdline."""
    proc = subprocess.Popen([sys.executable, "-c", code, *marker_args], start_new_session=True)
    time.sleep(0.3)  # let it install its signal handler
    return proc


def test_stop_pid_kills_a_process_that_ignores_sigterm_and_says_so() -> None:
    proc = spawn(STUBBORN)
    try:
        result = devservers.stop_pid(proc.pid, "SIG_IGN", timeout=1.0, name="stubborn")
        assert result.outcome == "killed" and result.ok
        assert str(result) == f"stubborn (pid {proc.pid}) did not stop within 1 s of SIGTERM: killed with SIGKILL"
        assert proc.wait(timeout=5) == -9  # SIGKILL, not SIGTERM
        assert result.seconds >= 1.0
    finally:
        proc.kill()
        proc.wait()


def test_stop_pid_waits_for_the_whole_process_group() -> None:
    # The leader stops on SIGTERM, its child ignores it: stop_pid waits for the child too, then kills it.
    code = ("import signal, subprocess, sys, time; "
            f"subprocess.Popen([sys.executable, '-c', {STUBBORN!r}, 'grandchild-marker']); time.sleep(600)")
    proc = spawn(code, "group-marker")
    time.sleep(0.5)
    child = [p for p in devservers._group(proc.pid) if p != proc.pid]
    assert len(child) == 1, child
    try:
        result = devservers.stop_pid(proc.pid, "group-marker", timeout=1.0, name="group")
        assert result.outcome == "killed", result
        assert proc.wait(timeout=5) == -15  # the leader went on SIGTERM
        assert wait_dead(child[0]) and devservers._group(proc.pid) == []
    finally:
        proc.kill()
        proc.wait()


def test_stop_pid_reports_a_polite_process_and_one_already_gone() -> None:
    proc = spawn(POLITE, "polite-marker")
    result = devservers.stop_pid(proc.pid, "polite-marker", timeout=5.0, name="polite")
    assert result.outcome == "stopped" and str(result).startswith(f"polite (pid {proc.pid}) stopped ")
    assert proc.wait(timeout=5) == -15
    again = devservers.stop_pid(proc.pid, "polite-marker", name="polite")
    assert str(again) == f"polite (pid {proc.pid}) was not running"


def test_stop_pid_leaves_a_recycled_pid_alone() -> None:
    proc = spawn(POLITE, "someone-else")
    try:
        result = devservers.stop_pid(proc.pid, "prefect", timeout=1.0, name="Prefect worker")
        assert result.outcome == "not ours" and proc.poll() is None
    finally:
        proc.kill()
        proc.wait()


def test_down_stops_a_stubborn_worker_and_reports_it(tmp_path: Path) -> None:
    # `make down` runs `devservers down`, which now also stops the demo's worker (its pid file) the same way.
    proc = spawn(STUBBORN, "prefect", "worker", "start")
    state = tmp_path / "state"
    state.mkdir()
    (state / devservers.WORKER_PID_FILE).write_text(str(proc.pid))
    try:
        down = cli(state, "down", "--timeout", "1")
        assert down.returncode == 0, down.stderr
        assert down.stdout.splitlines() == [
            f"Prefect worker (pid {proc.pid}) did not stop within 1 s of SIGTERM: killed with SIGKILL"]
        assert proc.wait(timeout=5) == -9
        assert not (state / devservers.WORKER_PID_FILE).exists()
        again = cli(state, "down")
        assert again.returncode == 0 and again.stdout.strip() == "nothing recorded as running"
    finally:
        proc.kill()
        proc.wait()


def test_make_down_uses_devservers_down() -> None:
    # The Makefile's `down` stops the worker through devservers (wait, then SIGKILL), not with a bare kill.
    makefile = (devservers.REPO / "Makefile").read_text()
    recipe = makefile.split("\ndown:\n", 1)[1].split("\n\n", 1)[0]
    assert "clearance.dev.devservers down" in recipe and "kill " not in recipe, recipe
