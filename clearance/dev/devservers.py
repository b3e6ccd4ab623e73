"""Local real servers for the demo and the tests: SeaweedFS (S3) and a Prefect server.

Both run as child processes in their own process groups, bound to 127.0.0.1 on free
ports, with their data under one state directory (default ``.local/`` in the repo)::

    python -m clearance.dev.devservers up       # start both, or reuse the live ones
    python -m clearance.dev.devservers status   # JSON, no secrets
    eval "$(python -m clearance.dev.devservers env)"
    python -m clearance.dev.devservers down     # also the demo's worker; SIGKILL after 15 s, says what it did

SeaweedFS runs ``weed mini`` with an S3 identity file, so request signatures are checked
(a wrong secret is refused). The S3 credentials are generated once per state directory and
kept there (mode 0600); only ``env`` prints them.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_STATE = REPO / ".local"
HOST = "127.0.0.1"
STATE_FILE = "services.json"
CREDENTIALS_FILE = "s3-credentials.json"
S3_START_TIMEOUT = 60.0
PREFECT_START_TIMEOUT = 120.0  # a cold start (DB migrations) takes ~15 s on 2 cores; leave room

# Every port `weed mini` would otherwise open on a default (gRPC = http + 10000) gets its own free port.
_WEED_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port", "filer.port.grpc",
    "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
)


class ServiceError(RuntimeError):
    """A local server did not start or is not healthy."""


@dataclass(frozen=True)
class S3Service:
    """A running SeaweedFS with its S3 endpoint and credentials."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    bucket: str
    pid: int
    log_path: str
    region: str = "us-east-1"
    ports: dict[str, int] = field(default_factory=dict)
    #: Whether the bucket has a lifecycle rule aborting incomplete multipart uploads (ensure_upload_cleanup_rule).
    upload_cleanup: str = ""

    def public(self) -> dict[str, Any]:
        """Everything but the secret (for the state file and ``status``)."""
        data = asdict(self)
        data.pop("secret_access_key")
        return data


@dataclass(frozen=True)
class PrefectService:
    """A running Prefect server: its database is SQLite under ``home``, or the state dir's PostgreSQL."""

    api_url: str
    ui_url: str
    port: int
    pid: int
    log_path: str
    home: str
    #: "sqlite" or "postgresql" (the URL, with its password, is never recorded: see clearance/dev/postgres.py)
    database: str = "sqlite"


@dataclass(frozen=True)
class Services:
    """Both local servers."""

    s3: S3Service
    prefect: PrefectService


# --------------------------------------------------------------------------- processes


_children: dict[int, subprocess.Popen[bytes]] = {}  # kept so this process can reap what it started


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all bound at once, then released)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _bin(name: str) -> str:
    """An executable installed next to this interpreter (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise ServiceError(f"`{name}` not found next to {sys.executable} or on PATH (pip install -e '.[local]')")
    return found


def _spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None,
           cwd: Path | None = None) -> int:
    """Start ``argv`` in a new session (its own process group), output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
    _children[proc.pid] = proc
    return proc.pid


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie child of ours is reaped and counts as dead)."""
    proc = _children.get(pid)
    if proc is not None:
        return proc.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not running
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _ours(pid: int, marker: str) -> bool:
    """Guard against a recycled pid: only signal processes whose command line is ours."""
    return alive(pid) and marker in _cmdline(pid)


@dataclass(frozen=True)
class Stopped:
    """What :func:`stop_pid` did to one process (and its process group), in words for ``down``."""

    pid: int
    name: str
    #: ``not running``, ``not ours`` (the pid now belongs to another program: left alone), ``stopped`` (by
    #: SIGTERM), ``killed`` (SIGKILL after the timeout) or ``still running`` (even SIGKILL did not end it).
    outcome: str
    seconds: float = 0.0
    timeout: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether nothing of it is left running."""
        return self.outcome != "still running"

    def __str__(self) -> str:
        who = f"{self.name} (pid {self.pid})"
        return {
            "not running": f"{who} was not running",
            "not ours": f"{who}: that pid now belongs to another program; left alone",
            "stopped": f"{who} stopped {self.seconds:.1f} s after SIGTERM",
            "killed": f"{who} did not stop within {self.timeout:g} s of SIGTERM: killed with SIGKILL",
        }.get(self.outcome, f"{who} is still running after SIGTERM and SIGKILL: stop it by hand (kill -9 -{self.pid})")


def _group(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():  # no /proc: ask the kernel whether the group has anyone at all
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _gone(pid: int) -> bool:
    """Neither ``pid`` nor anything of its process group still runs (our own child is reaped)."""
    return not alive(pid) and not _group(pid)


def _signal(pid: int, sig: signal.Signals) -> None:
    """``sig`` to the process group of ``pid`` (started with start_new_session: pgid == pid), else to ``pid``."""
    try:
        os.killpg(pid, sig)
        return
    except ProcessLookupError:
        pass
    except PermissionError:
        return
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not _gone(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def stop_pid(pid: int, marker: str, timeout: float = 15.0, name: str | None = None) -> Stopped:
    """SIGTERM the process group of ``pid`` and wait for all of it; SIGKILL what is left after ``timeout``.

    Returns what happened, so callers can say it: stopped, killed, still running (reported, never
    assumed gone) or not running. A pid whose command line lacks ``marker`` belongs to another
    program now (pids are recycled) and is left alone.
    """
    name = name or marker or "process"
    if not _ours(pid, marker):
        proc = _children.pop(pid, None)
        if proc is not None:
            proc.poll()  # reap it if it already exited
        return Stopped(pid, name, "not ours" if alive(pid) else "not running")
    started = time.monotonic()
    outcome = "stopped"
    _signal(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout):
        outcome = "killed"
        _signal(pid, signal.SIGKILL)
        if not _wait_gone(pid, 5.0):
            outcome = "still running"
    proc = _children.get(pid)
    if proc is not None and proc.poll() is not None:
        _children.pop(pid, None)
    return Stopped(pid, name, outcome, time.monotonic() - started, timeout)


def stop(service: S3Service | PrefectService, timeout: float = 15.0) -> Stopped:
    """Stop one local server (its whole process group); returns what happened."""
    if isinstance(service, S3Service):
        result = stop_pid(service.pid, "weed", timeout, name="SeaweedFS")
        # weed mini makes gRPC unix sockets at a fixed /tmp/seaweedfs-<part>-grpc-<port>.sock and
        # leaves some behind on SIGTERM; remove the ones named after this server's ports.
        for port in service.ports.values():
            for sock in Path("/tmp").glob(f"seaweedfs-*-grpc-{port}.sock"):
                if sock.is_socket():
                    sock.unlink(missing_ok=True)
        return result
    return stop_pid(service.pid, "prefect", timeout, name="Prefect server")


def stop_started(marker: str | None = None) -> list[Stopped]:
    """Stop every server this Python process started (optionally only those whose command has ``marker``)."""
    return [stop_pid(pid, marker or "") for pid in list(_children)
            if marker is None or marker in _cmdline(pid)]


def _tail(path: str | Path, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------- SeaweedFS


def _private_write(path: Path, text: str) -> None:
    """Write a file readable by its owner only (created with 0600, never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def s3_credentials(state_dir: Path) -> tuple[str, str]:
    """The state dir's S3 key pair, generated on first use and kept in it (mode 0600)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / CREDENTIALS_FILE
    if path.exists():
        data = json.loads(path.read_text())
        return data["access_key_id"], data["secret_access_key"]
    pair = ("CL" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30))
    _private_write(path, json.dumps({"access_key_id": pair[0], "secret_access_key": pair[1]}))
    return pair


def _default_bucket() -> str:
    from clearance.settings import Settings

    return Settings().bucket


def _s3_client(endpoint_url: str, access_key_id: str, secret_access_key: str, region: str = "us-east-1") -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                      connect_timeout=2, read_timeout=10),
    )


def s3_healthy(service: S3Service) -> bool:
    """Whether the process runs and a signed HeadBucket on its bucket succeeds."""
    if not _ours(service.pid, "weed"):
        return False
    try:
        _s3_client(service.endpoint_url, service.access_key_id, service.secret_access_key,
                   service.region).head_bucket(Bucket=service.bucket)
        return True
    except Exception:  # noqa: BLE001 — any failure means "not usable now"
        return False


def _weed_argv(state_dir: Path, ports: dict[str, int], config_path: Path, bucket: str) -> list[str]:
    data = state_dir / "seaweedfs"
    data.mkdir(parents=True, exist_ok=True)
    argv = [
        _bin("weed"), "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
        f"-s3.config={config_path}", f"-bucket={bucket}",
        "-s3.autoCreateBucket=false",  # a wrong bucket name should fail loudly, as on AWS
        "-admin.ui=false", "-webdav=false", "-master.telemetry=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
    ]
    argv += [f"-{flag}={ports[flag]}" for flag in _WEED_PORT_FLAGS]
    # Unix sockets default to /tmp/seaweedfs-*-<port>.sock; keep them in the state dir when the
    # path fits the 108-byte sun_path limit.
    for name in ("s3", "filer"):
        sock = data / f"{name}.sock"
        if len(str(sock)) < 100:
            argv.append(f"-{name}.localSocket={sock}")
    return argv


def _weed_env(state_dir: Path) -> dict[str, str]:
    """weed puts some gRPC unix sockets in $TMPDIR: keep them in the state dir when the path is short."""
    tmp = state_dir / "seaweedfs" / "tmp"
    if len(str(tmp)) > 60:
        return dict(os.environ)
    tmp.mkdir(parents=True, exist_ok=True)
    return dict(os.environ) | {"TMPDIR": str(tmp)}


def start_s3(state_dir: Path | str = DEFAULT_STATE, bucket: str | None = None,
             timeout: float = S3_START_TIMEOUT) -> S3Service:
    """Start SeaweedFS (``weed mini``) on free loopback ports and wait until its S3 API answers.

    Signatures are checked against an identity file holding this state dir's credentials;
    ``bucket`` (default: ``Settings().bucket``) is created if missing.
    """
    state_dir = Path(state_dir).resolve()
    bucket = bucket or _default_bucket()
    access_key, secret_key = s3_credentials(state_dir)
    config_path = state_dir / "s3-identities.json"
    _private_write(config_path, json.dumps({"identities": [{
        "name": "clearance",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}, indent=2))
    log_path = state_dir / "seaweedfs.log"
    last_error = ""
    for _attempt in range(2):  # a free port can be taken between choosing it and binding it: retry once
        ports = dict(zip(_WEED_PORT_FLAGS, free_ports(len(_WEED_PORT_FLAGS)), strict=True))
        pid = _spawn(_weed_argv(state_dir, ports, config_path, bucket), log_path, env=_weed_env(state_dir),
                     cwd=state_dir)
        service = S3Service(
            endpoint_url=f"http://{HOST}:{ports['s3.port']}", access_key_id=access_key,
            secret_access_key=secret_key, bucket=bucket, pid=pid, log_path=str(log_path), ports=ports,
        )
        try:
            _wait_s3(service, timeout)
            return replace(service, upload_cleanup=ensure_upload_cleanup_rule(service))
        except ServiceError as err:
            last_error = str(err)
            stop(service)
    raise ServiceError(last_error)


def ensure_upload_cleanup_rule(service: S3Service, days: int = 1) -> str:
    """Put a lifecycle rule on the bucket that aborts multipart uploads unfinished after ``days``; says what came of it.

    ``"stored"`` means the server accepted the rule and returns it when asked: whether it acts on it is
    its business (SeaweedFS runs lifecycle actions only where its lifecycle worker runs), so the crash
    sweep (tasks/crashes.py) still aborts what killed copies leave. ``"not supported: …"`` when the
    server refuses: never taken for done.
    """
    from tasks.object_store import ObjectStore
    from tasks.store import NotSupported, ObjectStoreError

    client = _s3_client(service.endpoint_url, service.access_key_id, service.secret_access_key, service.region)
    try:
        ObjectStore(client, service.bucket).ensure_upload_cleanup_rule(days)
    except NotSupported as exc:
        return f"not supported: {exc}"
    except ObjectStoreError as exc:
        return f"failed: {exc}"
    return "stored"


def _wait_s3(service: S3Service, timeout: float) -> None:
    """Poll until a signed S3 call succeeds; create the bucket if the server lacks it."""
    from botocore.exceptions import ClientError

    client = _s3_client(service.endpoint_url, service.access_key_id, service.secret_access_key, service.region)
    deadline = time.monotonic() + timeout
    problem = "no answer yet"
    while time.monotonic() < deadline:
        if not alive(service.pid):
            raise ServiceError(f"SeaweedFS exited during start-up; log {service.log_path}:\n{_tail(service.log_path)}")
        try:
            client.head_bucket(Bucket=service.bucket)
            return
        except ClientError as err:
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            problem = f"HeadBucket: HTTP {status}"
            if status == 404:
                try:
                    client.create_bucket(Bucket=service.bucket)
                except ClientError as create_err:
                    problem = f"CreateBucket: {create_err.response.get('Error', {}).get('Code')}"
        except Exception as err:  # noqa: BLE001 — connection refused while starting
            problem = type(err).__name__
        time.sleep(0.3)
    raise ServiceError(f"SeaweedFS S3 at {service.endpoint_url} not ready after {timeout:.0f}s ({problem}); "
                       f"log {service.log_path}:\n{_tail(service.log_path)}")


# --------------------------------------------------------------------------- Prefect


def prefect_healthy(service: PrefectService) -> bool:
    """Whether the process runs and ``/api/health`` answers ``true``."""
    return _ours(service.pid, "prefect") and _health(service.api_url)


def _health(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url}/health", timeout=2) as r:
            return r.status == 200 and r.read().strip() == b"true"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def local_database() -> str:
    """Which database a local Prefect server gets: ``CLEARANCE_LOCAL_DB`` (``sqlite``, the default, or ``postgres``)."""
    value = os.environ.get("CLEARANCE_LOCAL_DB", "sqlite").strip().lower() or "sqlite"
    if value not in ("sqlite", "postgres", "postgresql"):
        raise ServiceError(f"CLEARANCE_LOCAL_DB={value!r}: expected sqlite or postgres")
    return "postgresql" if value.startswith("postgres") else "sqlite"


def start_prefect(state_dir: Path | str = DEFAULT_STATE, port: int | None = None,
                  timeout: float = PREFECT_START_TIMEOUT, database: str | None = None) -> PrefectService:
    """Start ``prefect server start`` on 127.0.0.1; waits for health.

    ``database`` (default :func:`local_database`): ``sqlite`` under ``<state_dir>/prefect``, or ``postgresql``:
    the state dir's own PostgreSQL cluster (clearance/dev/postgres.py), started or reused first.
    """
    state_dir = Path(state_dir).resolve()
    database = database or local_database()
    home = state_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_ports(1)[0]
    api_url = f"http://{HOST}:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}  # no client settings leak in
    env |= {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url,
        "PREFECT_UI_API_URL": api_url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_API_HOST": HOST,
        "PREFECT_SERVER_API_PORT": str(port),
    }
    if database == "postgresql":
        from clearance.dev import postgres

        try:
            cluster = postgres.ensure(state_dir, next(p for p in free_ports(2) if p != port))  # port: not bound yet
        except postgres.PostgresError as exc:
            raise ServiceError(str(exc)) from None
        # Many workers resuming at once: a pool per server process sized past SQLAlchemy's default of 5.
        env |= {"PREFECT_API_DATABASE_CONNECTION_URL": cluster.url,
                "PREFECT_SERVER_DATABASE_SQLALCHEMY_POOL_SIZE": "20",
                "PREFECT_SERVER_DATABASE_SQLALCHEMY_MAX_OVERFLOW": "20"}
    log_path = state_dir / "prefect-server.log"
    pid = _spawn([_bin("prefect"), "server", "start", "--host", HOST, "--port", str(port)], log_path,
                 env=env, cwd=state_dir)
    service = PrefectService(api_url=api_url, ui_url=f"http://{HOST}:{port}", port=port, pid=pid,
                             log_path=str(log_path), home=str(home), database=database)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            raise ServiceError(f"Prefect server exited during start-up; log {log_path}:\n{_tail(log_path)}")
        if _health(api_url):
            return service
        time.sleep(0.5)
    stop(service)
    raise ServiceError(f"Prefect server at {api_url} not healthy after {timeout:.0f}s; log {log_path}:\n"
                       f"{_tail(log_path)}")


def restart_prefect(service: PrefectService, timeout: float = PREFECT_START_TIMEOUT) -> PrefectService:
    """Stop the server and start it again on the same port and PREFECT_HOME (same database)."""
    state_dir = Path(service.home).parent
    stop(service)
    restarted = start_prefect(state_dir, port=service.port, timeout=timeout, database=service.database)
    known = load(state_dir)
    if known is not None and known.prefect.pid == service.pid:  # keep `down`/`status` pointing at it
        _save(state_dir, Services(s3=known.s3, prefect=restarted))
    return restarted


# --------------------------------------------------------------------------- both, with a state file


def _state_path(state_dir: Path) -> Path:
    return Path(state_dir).resolve() / STATE_FILE


def load(state_dir: Path | str = DEFAULT_STATE) -> Services | None:
    """The services recorded in ``<state_dir>/services.json`` (alive or not), or ``None``."""
    state_dir = Path(state_dir).resolve()
    path = _state_path(state_dir)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        _, secret = s3_credentials(state_dir)
        return Services(s3=S3Service(**data["s3"], secret_access_key=secret),
                        prefect=PrefectService(**data["prefect"]))
    except (ValueError, KeyError, TypeError):
        return None


def _save(state_dir: Path, services: Services) -> None:
    _private_write(_state_path(state_dir),
                   json.dumps({"s3": services.s3.public(), "prefect": asdict(services.prefect)}, indent=2))


def up(state_dir: Path | str = DEFAULT_STATE) -> Services:
    """Start both servers, reusing any recorded in the state file that are alive and healthy."""
    state_dir = Path(state_dir).resolve()
    known = load(state_dir)
    s3 = known.s3 if known and s3_healthy(known.s3) else None
    prefect = known.prefect if known and prefect_healthy(known.prefect) else None
    if known and s3 is None:
        stop(known.s3)  # alive but unhealthy: do not leave it holding the data dir
    if known and prefect is None:
        stop(known.prefect)
    if s3 is None:
        s3 = start_s3(state_dir)
    if prefect is None:
        # Same port as before when possible, so bookmarked UI links keep working.
        port = known.prefect.port if known and free_port_is_free(known.prefect.port) else None
        prefect = start_prefect(state_dir, port=port)
    services = Services(s3=s3, prefect=prefect)
    _save(state_dir, services)
    return services


def free_port_is_free(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 can be bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
            return True
        except OSError:
            return False


#: Where ``make demo`` records its Prefect worker, in the state dir (clearance/dev/demo.py).
WORKER_PID_FILE = "worker.pid"


def down(state_dir: Path | str = DEFAULT_STATE, timeout: float = 15.0) -> list[Stopped]:
    """Stop the demo's worker and both recorded servers: SIGTERM, wait, SIGKILL after ``timeout``.

    Returns what happened to each (empty: nothing was recorded). A process that survived SIGKILL is
    reported, and its record kept. Data stays in the state dir.
    """
    state_dir = Path(state_dir).resolve()
    results = []
    worker = state_dir / WORKER_PID_FILE
    if worker.exists():
        try:
            pid = int(worker.read_text().strip())
        except ValueError:
            worker.unlink(missing_ok=True)
        else:
            # `clearance worker` (or an older demo's `prefect worker start`)
            results.append(stop_pid(pid, "worker", timeout, name="Prefect worker"))
            if results[-1].ok:
                worker.unlink(missing_ok=True)
    known = load(state_dir)
    if known is not None:
        servers = [stop(known.prefect, timeout), stop(known.s3, timeout)]
        results += servers
        from clearance.dev import postgres

        cluster = postgres.load(state_dir)
        if cluster is not None:
            stopped = postgres.down(state_dir, timeout)
            servers.append(Stopped(cluster.pid, "PostgreSQL", "stopped" if stopped else "still running"))
            results.append(servers[-1])
        if all(r.ok for r in servers):
            _state_path(state_dir).unlink(missing_ok=True)
    return results


def status(state_dir: Path | str = DEFAULT_STATE) -> dict[str, Any]:
    """What the state file records and whether each server is healthy (no secrets)."""
    known = load(state_dir)
    if known is None:
        return {"state_dir": str(Path(state_dir).resolve()), "running": False}
    return {
        "state_dir": str(Path(state_dir).resolve()),
        "s3": known.s3.public() | {"healthy": s3_healthy(known.s3)},
        "prefect": asdict(known.prefect) | {"healthy": prefect_healthy(known.prefect)},
    }


def service_env(services: Services) -> dict[str, str]:
    """Environment variables that point clearance (settings) and Prefect clients at the services."""
    return {
        "CLEARANCE_S3_ENDPOINT_URL": services.s3.endpoint_url,
        "CLEARANCE_S3_REGION": services.s3.region,
        "CLEARANCE_S3_ACCESS_KEY_ID": services.s3.access_key_id,
        "CLEARANCE_S3_SECRET_ACCESS_KEY": services.s3.secret_access_key,
        "CLEARANCE_BUCKET": services.s3.bucket,
        "CLEARANCE_PREFECT_API_URL": services.prefect.api_url,
        "PREFECT_API_URL": services.prefect.api_url,
    }


def demo_env(state_dir: Path) -> dict[str, str]:
    """What ``make demo`` left under ``state_dir/demo`` that the CLI needs to act on the demo's promotions: its
    config dir (the model pinned with real digests), its advisory database and the service key that signs
    decisions and ledger entries. Only what exists (before the first demo: nothing)."""
    demo = Path(state_dir).resolve() / "demo"
    wanted = {"CLEARANCE_CONFIG_DIR": demo / "configs", "CLEARANCE_ADVISORY_DB": demo / "configs" / "advisories",
              "CLEARANCE_SERVICE_KEY_FILE": demo / "keys" / "clearance-service"}
    return {name: str(path) for name, path in wanted.items() if path.exists()}


def main(argv: list[str] | None = None) -> int:
    """``python -m clearance.dev.devservers up|down|status|env [--state-dir DIR]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m clearance.dev.devservers", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "env"])
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE)
    parser.add_argument("--timeout", type=float, default=15.0,
                        help="down: seconds to wait after SIGTERM before SIGKILL (default 15)")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            services = up(args.state_dir)
            print(f"S3 (SeaweedFS): {services.s3.endpoint_url} bucket {services.s3.bucket}")
            print(f"Prefect UI:     {services.prefect.ui_url}")
            print(f"state:          {Path(args.state_dir).resolve()} (`python -m clearance.dev.devservers env`)")
        elif args.command == "down":
            results = down(args.state_dir, args.timeout)
            for result in results:
                print(result, file=sys.stdout if result.ok else sys.stderr)
            if not results:
                print("nothing recorded as running")
            if not all(r.ok for r in results):
                return 1
        elif args.command == "status":
            print(json.dumps(status(args.state_dir), indent=2))
        else:
            known = load(args.state_dir)
            if known is None or not (s3_healthy(known.s3) and prefect_healthy(known.prefect)):
                print("local servers are not running: python -m clearance.dev.devservers up", file=sys.stderr)
                return 1
            for name, value in service_env(known).items():
                print(f"export {name}={shlex.quote(value)}")
            for name, value in demo_env(args.state_dir).items():
                print(f"export {name}={shlex.quote(value)}")
            # the venv first on PATH, so `clearance` and `prefect` are this checkout's (kept last: "$PATH" expands)
            print(f'export PATH={shlex.quote(str(Path(sys.executable).parent))}:"$PATH"')
    except ServiceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
