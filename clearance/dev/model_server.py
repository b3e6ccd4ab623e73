"""``clearance serve-model`` in a process of its own, and the URL it serves on: for the demo and the tests.

The server is asked for ``--port 0`` (a free port the kernel picks when the server binds, so two launchers never
race for a port one of them probed first) and prints one line naming the URL it bound once its socket listens
(:data:`clearance.app.serve_model.ANNOUNCED_URL`). The launcher waits for that line in the server's log rather
than polling a port: a connection made after it waits in the listening socket's backlog until uvicorn accepts.

Waiting is bounded only by ``timeout`` and by the process being alive: on a loaded machine (a test session at a
lower priority than two others) the server's imports and its security scan of the file can take a minute, and
that is slowness to wait out, not a failure of what a test checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass
class ServedModel:
    """A running ``clearance serve-model``: its process, the base URL it announced and the log it writes."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    @property
    def predict_url(self) -> str:
        return f"{self.base_url}/predict"

    def stop(self, grace: float = 10) -> None:
        """SIGTERM its process group; SIGKILL what is left after ``grace`` seconds."""
        from clearance.dev import devservers

        if self.process.poll() is None:
            devservers.stop_pid(self.process.pid, "serve-model", grace, name="model server")
        self.process.poll()


def start(model_file: Path, *options: str, log: Path, timeout: float, env: dict[str, str] | None = None,
          cwd: Path = REPO) -> ServedModel:
    """Start ``clearance serve-model MODEL_FILE --host 127.0.0.1 --port 0 OPTIONS`` (its output appended to
    ``log``) and return it once it announces its URL. Raises RuntimeError (with the log's tail) when it exits
    first — e.g. it refused the file —, TimeoutError when ``timeout`` seconds pass without the line."""
    from clearance.app.serve_model import ANNOUNCED_URL

    log.parent.mkdir(parents=True, exist_ok=True)
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "clearance", "serve-model", str(model_file), "--host", "127.0.0.1", "--port", "0",
             *options], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=dict(os.environ) if env is None else env, cwd=cwd, start_new_session=True)
    served = ServedModel(process, "", log)
    deadline = time.monotonic() + timeout
    while True:
        said = _written_since(log, offset)
        found = ANNOUNCED_URL.search(said)
        if found:
            served.base_url = found.group(1)
            return served
        if process.poll() is not None:
            raise RuntimeError(f"clearance serve-model exited ({process.returncode}): {said[-2000:].strip()}")
        if time.monotonic() > deadline:
            served.stop()
            raise TimeoutError(f"clearance serve-model did not announce its URL within {timeout:.0f} s; see {log}")
        time.sleep(0.1)


def _written_since(log: Path, offset: int) -> str:
    with log.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode("utf-8", "replace")
