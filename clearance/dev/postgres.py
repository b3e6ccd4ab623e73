"""A local PostgreSQL for a Prefect server that outgrew SQLite (``CLEARANCE_LOCAL_DB=postgres``).

Why PostgreSQL from the machine and not an embedded wheel: Debian's ``postgresql`` package is in
this project's machine image (``initdb``/``pg_ctl`` on PATH or under ``/usr/lib/postgresql/*/bin``), is
the server a team runs in production, and gets security updates with the OS; the pip "embedded
PostgreSQL" wheels are years old. Prefect talks to it through ``asyncpg``, already one of
Prefect's own dependencies.

The cluster is private to one state directory: bound to 127.0.0.1 on a free port, its Unix socket
in its own data directory, one role ``clearance`` with a generated password (scram-sha-256; kept
mode 0600 beside the data) and one database ``prefect``. PostgreSQL refuses to run as root, so
under root (CI, containers) the cluster belongs to the ``postgres`` system user and lives in a
directory that user can reach (under the system temp dir, recorded in the state dir).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from clearance.dev.devservers import alive

HOST = "127.0.0.1"
ROLE = "clearance"
DATABASE = "prefect"
PASSWORD_FILE = "postgres-password"
LOCATION_FILE = "postgres-data-dir"
START_TIMEOUT = 60.0


class PostgresError(RuntimeError):
    """PostgreSQL is missing, or the local cluster did not start."""


@dataclass(frozen=True)
class PostgresService:
    """A running local cluster: where it listens and how Prefect reaches it."""

    port: int
    pid: int
    data_dir: str
    log_path: str
    password: str = field(repr=False)

    @property
    def url(self) -> str:
        """SQLAlchemy URL for ``PREFECT_API_DATABASE_CONNECTION_URL`` (asyncpg driver)."""
        return f"postgresql+asyncpg://{ROLE}:{self.password}@{HOST}:{self.port}/{DATABASE}"

    def public(self) -> dict[str, Any]:
        """Everything but the password (for the state file and ``status``)."""
        data = asdict(self)
        data.pop("password")
        return data


def binary(name: str) -> str:
    """Path of a PostgreSQL server program (``initdb``, ``pg_ctl``, ``postgres``), newest major first."""
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    raise PostgresError(f"PostgreSQL's {name} is not installed (Debian/Ubuntu: apt-get install postgresql; "
                        "or point PREFECT_API_DATABASE_CONNECTION_URL at a PostgreSQL you run)")


def _as_owner() -> list[str]:
    """The prefix that runs a command as the cluster's owner: nothing, or ``runuser -u postgres --`` under root."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise PostgresError("running as root and there is no 'postgres' user to own the cluster "
                            "(PostgreSQL refuses to run as root)") from None
    return [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]


def _owner_ids() -> tuple[int, int] | None:
    if os.geteuid() != 0:
        return None
    entry = pwd.getpwnam("postgres")
    return entry.pw_uid, entry.pw_gid


def _data_dir(state_dir: Path) -> Path:
    """The cluster's directory: ``<state>/postgres``, or under root a ``postgres``-owned temp dir recorded there."""
    if os.geteuid() != 0:
        return state_dir / "postgres"
    recorded = state_dir / LOCATION_FILE
    if recorded.exists():
        path = Path(recorded.read_text().strip())
        if path.is_dir():
            return path
    # The state dir may sit below a directory only root can enter (pytest's tmp dirs are 0700).
    path = Path(tempfile.mkdtemp(prefix="clearance-postgres-")) / "data"
    recorded.write_text(str(path))
    return path


def _password(state_dir: Path) -> str:
    path = state_dir / PASSWORD_FILE
    if path.exists():
        return path.read_text().strip()
    value = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(_as_owner() + argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise PostgresError(f"{what} failed (exit {done.returncode}): {(done.stderr or done.stdout).strip()[-800:]}")


def _initdb(data: Path, password: str) -> None:
    data.mkdir(parents=True, exist_ok=True)
    ids = _owner_ids()
    pwfile = data.parent / "initdb-password"
    pwfile.write_text(password)
    os.chmod(pwfile, 0o600)
    if ids is not None:
        for path in (data.parent, data, pwfile):
            os.chown(path, *ids)
    try:
        _run([binary("initdb"), "-D", str(data), "-U", ROLE, f"--pwfile={pwfile}", "--auth=scram-sha-256",
              "--encoding=UTF8", "--locale=C", "--no-sync"], "initdb")
    finally:
        pwfile.unlink(missing_ok=True)


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _ready(port: int, password: str) -> bool:
    """Whether the ``prefect`` database accepts a login (asyncpg, so nothing beyond Prefect's own packages)."""
    import asyncio

    import asyncpg

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(host=HOST, port=port, user=ROLE, password=password, database="postgres",
                                         timeout=2)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
            return True
        finally:
            await conn.close()

    return asyncio.run(probe())


def start_postgres(state_dir: Path | str, port: int) -> PostgresService:
    """Start (creating on first use) the state dir's cluster on ``127.0.0.1:port``; waits until it takes logins.

    Tuned for a CI box, not for durability of a dev database: ``fsync`` stays on (a killed
    machine must not corrupt Prefect's state), but ``max_connections`` is raised for many workers.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    data = _data_dir(state_dir)
    password = _password(state_dir)
    if not (data / "PG_VERSION").exists():
        _initdb(data, password)
    log_path = data.parent / "postgres.log"
    options = f"-p {port} -h {HOST} -k {data} -c max_connections=200 -c shared_buffers=128MB"
    _run([binary("pg_ctl"), "-D", str(data), "-l", str(log_path), "-o", options, "-w", "-t", str(int(START_TIMEOUT)),
          "start"], "pg_ctl start")
    pid = _postmaster_pid(data)
    if pid is None:
        raise PostgresError(f"PostgreSQL started but wrote no postmaster.pid; log {log_path}")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if _ready(port, password):
            return PostgresService(port=port, pid=pid, data_dir=str(data), log_path=str(log_path), password=password)
        time.sleep(0.3)
    stop_postgres_dir(data)
    raise PostgresError(f"PostgreSQL on {HOST}:{port} took no login in {START_TIMEOUT:.0f}s; log {log_path}")


def healthy(service: PostgresService) -> bool:
    """Whether the recorded postmaster still runs and takes a login."""
    return alive(service.pid) and _ready(service.port, service.password)


def stop_postgres_dir(data: Path | str, timeout: float = 15.0) -> bool:
    """Fast shutdown (SIGINT: open sessions are rolled back, then a clean checkpoint); SIGKILL after ``timeout``.

    Returns whether nothing runs any more.
    """
    pid = _postmaster_pid(Path(data))
    if pid is None or not alive(pid):
        return True
    os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    return not alive(pid)


def stop_postgres(service: PostgresService, timeout: float = 15.0) -> bool:
    """Stop ``service``'s cluster (its data stays)."""
    return stop_postgres_dir(service.data_dir, timeout)


# --------------------------------------------------------------------------- one cluster per state dir

RECORD_FILE = "postgres.json"


def load(state_dir: Path | str) -> PostgresService | None:
    """The cluster recorded in ``<state_dir>/postgres.json`` (alive or not), or ``None``."""
    import json

    state_dir = Path(state_dir).resolve()
    try:
        data = json.loads((state_dir / RECORD_FILE).read_text())
        return PostgresService(**data, password=(state_dir / PASSWORD_FILE).read_text().strip())
    except (OSError, ValueError, TypeError):
        return None


def ensure(state_dir: Path | str, port: int) -> PostgresService:
    """The state dir's cluster: the recorded one when it is healthy, else started (on ``port``) and recorded."""
    import json

    state_dir = Path(state_dir).resolve()
    known = load(state_dir)
    if known is not None and healthy(known):
        return known
    if known is not None:
        stop_postgres(known)
    service = start_postgres(state_dir, port)
    (state_dir / RECORD_FILE).write_text(json.dumps(service.public(), indent=2))
    return service


def down(state_dir: Path | str, timeout: float = 15.0) -> bool | None:
    """Stop the recorded cluster; ``None`` when none is recorded, else whether it stopped."""
    state_dir = Path(state_dir).resolve()
    known = load(state_dir)
    if known is None:
        return None
    stopped = stop_postgres(known, timeout)
    if stopped:
        (state_dir / RECORD_FILE).unlink(missing_ok=True)
    return stopped
