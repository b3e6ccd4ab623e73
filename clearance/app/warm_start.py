"""Warm starts for flow runs: a pre-imported process forks each run instead of a new Python importing Prefect.

Why: Prefect's process worker starts every flow run — and every *resume* of a suspended one — as a new
Python process, which imports Prefect, the flow module and what it needs before the first line of the flow
runs: ~3.8 CPU-seconds and several seconds of wall time on a 2-core machine, for each approval that wakes
a promotion (measured in bench/resume_bench.py). A burst of approvals multiplies that.

How: ``clearance worker`` starts one *template* process (``python -m clearance.app.warm_start serve SOCKET``)
that imports Prefect and the flow modules once and then only waits. Prefect's worker still starts a
process per flow run — the job command becomes ``python -m clearance.app.warm_start`` (this module's
client, which imports nothing heavy) — and that client asks the template over a private Unix socket to
``fork()`` a copy of itself that runs ``python -m prefect.engine`` as the run: same flow run id, environment,
working directory, standard streams (passed as file descriptors), exit code and signals. The worker still
sees one process per run, with its pid, exit code, cancellation and crash handling unchanged.

Safety:

- The template never runs a flow or opens a connection, and refuses to serve if importing started a
  thread (forking a process with threads can copy a held lock).
- A run never executes code older than the files: before each fork the template compares the modification
  times of every module it imported from this checkout; if one changed it serves no more (its socket is
  removed, the client of that request starts cold) and the worker starts a new template.
- Whenever the template is not there (a plain ``prefect worker``, template crashed, socket missing, a
  refused request), the client *execs* ``python -m prefect.engine`` in the same process: a cold start, as
  Prefect would have done, never a lost run.
- If the client is killed (the worker's last resort on cancellation), the forked run kills itself too, as
  a cold run would have died with its process.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

#: The checkout the template imports from (and the working directory a run must have to be forked from it).
ROOT = Path(__file__).resolve().parents[2]
#: Environment variable the worker sets for the client: the template's socket.
SOCKET_ENV = "CLEARANCE_WARM_SOCKET"
#: What the template imports before it serves: Prefect's engine and every flow a deployment of ours runs.
PRELOAD = ("prefect", "prefect.engine", "prefect.flow_engine", "prefect.task_engine", "prefect.flows",
           "prefect.deployments.steps", "prefect._internal.metrics", "prefect.logging.handlers",
           "prefect.utilities.visualization", "flows.promote", "flows.recertify", "flows.rollback")
#: A request is the environment and working directory of one run; far below this in practice.
MAX_REQUEST = 1 << 20
#: How long the client waits for the template to answer before it starts cold.
ANSWER_TIMEOUT = 15.0
#: How long the template waits for a request's bytes (a client sends them at once; one that stalls is refused).
REQUEST_TIMEOUT = 5.0
#: Seconds between two reaps of finished runs in the template (also the latency of its exit report).
REAP_EVERY = 0.1
_HEADER = struct.Struct("!I")


# --------------------------------------------------------------------------------------------- client


def client_main() -> int:
    """The job command of a flow run: run it in a fork of the template, or cold when there is none."""
    path = os.environ.pop(SOCKET_ENV, "")
    if not path:
        cold_start()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.settimeout(ANSWER_TIMEOUT)
        connection.connect(path)
        body = json.dumps({"env": dict(os.environ), "cwd": os.getcwd(), "argv": sys.argv[1:]}).encode()
        socket.send_fds(connection, [_HEADER.pack(len(body))], [0, 1, 2])
        connection.sendall(body)
        reader = connection.makefile("rb")
        answer = json.loads(reader.readline() or b"{}")
    except (OSError, ValueError):
        connection.close()
        cold_start()
    pid = answer.get("pid") if isinstance(answer, dict) else None
    if not isinstance(pid, int):  # stale or refused: this run starts cold, the next finds a new template
        connection.close()
        cold_start()
    _forward_signals(pid)
    connection.settimeout(None)
    try:
        line = reader.readline()
        code = json.loads(line).get("exit") if line else None
    except (OSError, ValueError):
        code = None
    if code is None:  # the template went away: wait for the run itself, its status is lost with it
        code = _wait_gone(pid)
    return _mirror(code)


def cold_start() -> NoReturn:
    """Become ``python -m prefect.engine`` (same pid, so the worker notices nothing)."""
    os.execv(sys.executable, [sys.executable, "-m", "prefect.engine", *sys.argv[1:]])


def _forward_signals(pid: int) -> None:
    """SIGTERM/SIGINT to this process (Prefect's cancellation) go to the run, which handles them."""
    def forward(signum: int, _frame: Any) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)


def _wait_gone(pid: int) -> int:
    import time

    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return 1
        except PermissionError:
            pass
        time.sleep(0.2)


def _mirror(code: int) -> int:
    """Exit as the run did: its code, or the signal that ended it (the worker reports -9 as 'killed')."""
    if code < 0:
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
        return 128 - code
    return code


# ------------------------------------------------------------------------------------------- template


def complete_deferred_models() -> int:
    """Build every pydantic validator that was deferred, once, here; returns how many were built.

    Prefect declares most of its models with ``defer_build`` (a cheap import; each is built on first use), so
    without this every forked run built the same dozen-odd of them again (~0.065 CPU-s of a resume). A model
    that cannot be built yet (an unresolved forward reference) is left for the run, as before."""
    from pydantic import BaseModel

    def subclasses(cls: type[BaseModel]) -> Iterator[type[BaseModel]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    built = 0
    for model in set(subclasses(BaseModel)):
        if not model.__pydantic_complete__:
            try:
                built += bool(model.model_rebuild(raise_errors=False))
            except Exception:  # noqa: BLE001, S112 — a model pydantic cannot build now is built by the run, as before
                continue
    return built


class Template:
    """Imports once, then forks one child per request; reports each child's exit to its client."""

    def __init__(self, path: str, root: Path) -> None:
        self.path = path
        self.root = root
        self.pid = os.getpid()
        self.mtimes: dict[str, int] = {}
        self.waiting: dict[int, socket.socket] = {}  # child pid → its client's connection
        self.parent = os.getppid()  # the worker: when it is gone (even SIGKILLed), serve no more
        self.listener: socket.socket | None = None

    def preload(self) -> None:
        import importlib
        import threading

        for name in PRELOAD:
            importlib.import_module(name)
        from tasks.object_store import preload_client_data

        preload_client_data()  # botocore's JSON, parsed once here instead of in every run
        complete_deferred_models()
        if threading.active_count() > 1:
            raise RuntimeError(f"importing {PRELOAD} started threads: forking would be unsafe")
        self.mtimes = self._own_module_mtimes()

    def _own_module_mtimes(self) -> dict[str, int]:
        found = {}
        for module in list(sys.modules.values()):
            file = getattr(module, "__file__", None)
            if file and Path(file).is_relative_to(self.root):
                try:
                    found[file] = os.stat(file).st_mtime_ns
                except OSError:
                    continue
        return found

    def stale(self) -> bool:
        for file, mtime in self.mtimes.items():
            try:
                if os.stat(file).st_mtime_ns != mtime:
                    return True
            except OSError:
                return True
        return False

    def serve(self) -> dict[str, Any] | None:
        """Serve until told to stop (SIGTERM/SIGINT) or stale, then until the runs it forked have ended.

        Returns the request in a forked child (which then runs it), None in the template when it is done.
        """
        import select
        import time

        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is the owner's only: a request runs code as this user
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        listener.listen(64)
        self.listener = listener
        # Told to stop: take no more requests, but report the exits of the runs already forked to their clients.
        told: list[int] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda signum, _frame: told.append(signum))
        try:
            while self.listener is not None or self.waiting:
                if told or os.getppid() != self.parent:
                    self._close_listener()
                if self.listener is None:
                    time.sleep(REAP_EVERY)
                elif select.select([self.listener], [], [], REAP_EVERY if self.waiting else 1.0)[0]:
                    request = self._accept()
                    if request is not None:
                        return request  # in the child: run it
                self._reap()
        finally:
            if os.getpid() == self.pid:
                self._close_listener()
        return None

    def _close_listener(self) -> None:
        if self.listener is None:
            return
        self.listener.close()
        self.listener = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _accept(self) -> dict[str, Any] | None:
        assert self.listener is not None
        try:
            connection, _ = self.listener.accept()
        except OSError:
            return None
        connection.settimeout(REQUEST_TIMEOUT)
        fds: list[int] = []
        try:
            header, fds, _flags, _addr = socket.recv_fds(connection, _HEADER.size, 3)
            if len(header) != _HEADER.size or len(fds) != 3:
                raise ValueError("a request is a header and three file descriptors")
            (size,) = _HEADER.unpack(header)
            if size > MAX_REQUEST:
                raise ValueError(f"request of {size} bytes")
            body = b""
            while len(body) < size:
                chunk = connection.recv(size - len(body))
                if not chunk:
                    raise ValueError("request cut short")
                body += chunk
            request = json.loads(body)
            self._check(request)
        except (OSError, ValueError, TypeError, KeyError) as refused:
            _send(connection, {"refused": str(refused)})
            connection.close()
            for fd in fds:
                os.close(fd)
            return None
        pid = os.fork()
        if pid == 0:  # the child: nothing of the template's serving stays open in it
            if self.listener is not None:
                self.listener.close()
            for other in self.waiting.values():
                other.close()
            request["fds"] = fds
            request["connection"] = connection
            return request
        for fd in fds:
            os.close(fd)
        self.waiting[pid] = connection
        _send(connection, {"pid": pid})
        return None

    def _check(self, request: dict[str, Any]) -> None:
        """Serve only a run that a cold start would run with the very modules this template holds."""
        if not isinstance(request.get("env"), dict) or not isinstance(request.get("cwd"), str):
            raise ValueError("a request names its environment and working directory")
        if Path(request["cwd"]).resolve() != self.root:
            raise ValueError(f"working directory {request['cwd']} is not this template's checkout {self.root}")
        if request["env"].get("PYTHONPATH") != os.environ.get("PYTHONPATH"):
            raise ValueError("PYTHONPATH differs from the template's")
        if self.stale():
            self._close_listener()  # the worker starts a new template when this socket is gone
            raise ValueError("the checkout changed since the template imported it")

    def _reap(self) -> None:
        while self.waiting:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.waiting.pop(pid, None)
            if connection is not None:
                _send(connection, {"exit": os.waitstatus_to_exitcode(status)})
                connection.close()


def _send(connection: socket.socket, message: dict[str, Any]) -> None:
    try:
        connection.sendall(json.dumps(message).encode() + b"\n")
    except OSError:
        pass  # the client is gone; its run (if any) notices on its own


#: Variables besides ``PREFIX*`` that settings are read from: HOME (Prefect's profiles.toml, by default under
#: ~/.prefect) and SSL_CERT_FILE (the default of PREFECT_API_SSL_CERT_FILE).
_SETTINGS_ALSO_READ = ("HOME", "SSL_CERT_FILE")


def settings_inputs(env: dict[str, str], prefix: str) -> dict[str, str]:
    """The variables of ``env`` that Prefect's (``PREFECT_``) or clearance's (``CLEARANCE_``) settings are read
    from, besides files in the working directory; names in any case, as both read them. ``PREFECT__*`` (two
    underscores) are values Prefect hands one run (its flow-run id), not settings."""
    return {name: value for name, value in env.items()
            if (name.upper().startswith(prefix) and not name.upper().startswith(prefix + "_"))
            or name in _SETTINGS_ALSO_READ}


def _differing(one: dict[str, str], other: dict[str, str]) -> list[str]:
    """The names whose values differ (or that only one has); names only: a value may be a secret."""
    return sorted(name for name in one.keys() | other.keys() if one.get(name) != other.get(name))


def run_forked(request: dict[str, Any]) -> None:
    """In the forked child: become the client's process (streams, directory, environment) and run the engine."""
    import runpy
    import threading
    import warnings

    for target, fd in enumerate(request["fds"]):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    template_env = dict(os.environ)
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["prefect.engine", *request["argv"]]
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    connection: socket.socket = request["connection"]
    threading.Thread(target=_die_with_client, args=(connection,), daemon=True, name="warm-start-client").start()

    # Prefect read its settings and set up logging from the template's environment when imported; reading them
    # again costs ~0.1-0.15 CPU-s a run (Prefect serialises every setting to fill in its logging config), so it is
    # done only when the run's environment could give other values (the working directory is the template's: _check).
    prefect_differs = _differing(settings_inputs(request["env"], "PREFECT_"), settings_inputs(template_env, "PREFECT_"))
    if prefect_differs:
        import prefect.context
        from prefect.logging.configuration import setup_logging

        prefect.context.refresh_global_settings_context()
        setup_logging(incremental=False)
    if settings_inputs(request["env"], "CLEARANCE_") != settings_inputs(template_env, "CLEARANCE_"):
        from clearance.settings import get_settings

        get_settings.cache_clear()
    # One line in the worker's output per run, so an operator (and the tests) can tell a warm start.
    how = (f"Prefect settings read again: {', '.join(prefect_differs)} differ" if prefect_differs
           else "with its Prefect settings")
    print(f"clearance warm start: flow run {os.environ.get('PREFECT__FLOW_RUN_ID')} forked from template "
          f"{os.getppid()} ({how})", file=sys.stderr, flush=True)
    # The template imported prefect.engine as a module (Prefect does); runpy warns about that and runs a fresh
    # copy of it as __main__ all the same, which is what `python -m prefect.engine` does.
    warnings.filterwarnings("ignore", message="'prefect.engine' found in sys.modules", category=RuntimeWarning)
    runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)


def _die_with_client(connection: socket.socket) -> None:
    """The client holds the other end; when it dies (SIGKILL from the worker), so does this run."""
    connection.settimeout(None)
    try:
        while connection.recv(64):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def template_main(path: str) -> int:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    template = Template(path, ROOT)
    template.preload()
    request = template.serve()
    if request is None:
        return 0
    run_forked(request)
    return 0


# ------------------------------------------------------------------------------------------ worker side


class TemplateKeeper:
    """Keeps one template running beside the worker, and a new one when the last stopped serving."""

    #: How long a template may take to import everything (a loaded 2-core machine needs ~10 s).
    READY_WITHIN = 120.0

    def __init__(self) -> None:
        import tempfile
        import threading

        self.folder = Path(tempfile.mkdtemp(prefix="clearance-warm-"))  # 0700: the socket's parent
        self.generation = 0
        self.current: str | None = None
        self.processes: list[Any] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._keep, daemon=True, name="warm-start-keeper")

    def start(self) -> None:
        self.thread.start()

    def socket_path(self) -> str | None:
        """The serving template's socket, or None (the run then starts cold)."""
        current = self.current
        return current if current and os.path.exists(current) else None

    def _keep(self) -> None:
        import subprocess

        while not self.stopping.is_set():
            if self.socket_path() is None:
                self.generation += 1
                path = str(self.folder / f"template-{self.generation}.sock")
                self.processes.append(subprocess.Popen(
                    [sys.executable, "-m", "clearance.app.warm_start", "serve", path], cwd=ROOT,
                    stdin=subprocess.DEVNULL, env=self._run_environment()))
                self._wait_ready(path, self.processes[-1])
            self.processes = [p for p in self.processes if p.poll() is None]
            self.stopping.wait(1.0)

    @staticmethod
    def _run_environment() -> dict[str, str]:
        """This process's environment plus the settings a Prefect worker hands every run it starts (its own
        settings as PREFECT_* variables, e.g. PREFECT_SERVER_EPHEMERAL_ENABLED): the template reads its settings
        from what its runs will have, so that a run forked from it keeps them (see :func:`run_forked`)."""
        from prefect.settings import get_current_settings

        return {**os.environ, **get_current_settings().to_environment_variables(exclude_unset=True)}

    def _wait_ready(self, path: str, process: Any) -> None:
        import time

        deadline = time.monotonic() + self.READY_WITHIN
        while time.monotonic() < deadline and not self.stopping.is_set():
            if os.path.exists(path):
                self.current = path
                return
            if process.poll() is not None:  # it refused (see Template.preload): runs start cold; retry later
                self.stopping.wait(30.0)
                return
            time.sleep(0.05)
        # Too slow (or stopping): end it, or it would come up beside the next one and serve nobody.
        process.terminate()

    def stop(self) -> None:
        """Stop taking runs; templates still report the runs they forked, then exit by themselves."""
        import shutil

        self.stopping.set()
        self.current = None
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        self.thread.join(timeout=5)
        shutil.rmtree(self.folder, ignore_errors=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"] and len(argv) == 2:
        return template_main(argv[1])
    return client_main()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
