"""The warm-start template and its client (clearance/app/warm_start.py), without a Prefect server.

The run each test starts has a flow run id that is not a UUID: ``prefect.engine`` then logs "Invalid flow run
id" and exits 1 — which shows which way it went (forked from the template, or the client's cold start) and
that the run's stderr and exit code came back to the client.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clearance.app.warm_start import SOCKET_ENV, Template, settings_inputs

REPO = Path(__file__).resolve().parents[2]
NOT_A_RUN = "not-a-flow-run-id"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A template serving on a socket of its own (it imports Prefect and the flows: a few seconds; the 600-s limit
    guards against a hang only: this session runs at a lower priority than the server sessions beside it)."""
    path = tmp_path_factory.mktemp("warm") / "template.sock"
    proc = subprocess.Popen([sys.executable, "-m", "clearance.app.warm_start", "serve", str(path)], cwd=REPO,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not path.exists():
        assert proc.poll() is None, "the template exited before serving"
        assert time.monotonic() < deadline, "the template did not serve within 600 s"
        time.sleep(0.05)
    yield path, proc
    proc.terminate()
    proc.wait(timeout=30)


def run_client(socket_path: Path | None, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != SOCKET_ENV} | {"PREFECT__FLOW_RUN_ID": NOT_A_RUN} | extra
    if socket_path is not None:
        env[SOCKET_ENV] = str(socket_path)
    return subprocess.run([sys.executable, "-m", "clearance.app.warm_start"], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_a_run_is_forked_from_the_template_with_the_clients_streams_and_exit_code(template):
    path, proc = template
    done = run_client(path, REPO)
    assert f"forked from template {proc.pid}" in done.stderr
    assert "Invalid flow run id" in done.stderr  # written by the forked run into the client's own stderr
    assert done.returncode == 1


def test_a_run_in_the_templates_environment_keeps_the_templates_prefect_settings(template):
    done = run_client(template[0], REPO)
    assert "forked from template" in done.stderr and "(with its Prefect settings)" in done.stderr


def test_a_run_with_another_prefect_setting_reads_them_again_and_logs_by_it(template):
    # The engine's "Invalid flow run id" is an ERROR: at the CRITICAL level the run sets, it is not written — it
    # would be, with the template's own logging config.
    done = run_client(template[0], REPO, PREFECT_LOGGING_LEVEL="CRITICAL")
    assert "forked from template" in done.stderr
    assert "(Prefect settings read again: PREFECT_LOGGING_LEVEL differ)" in done.stderr
    assert "Invalid flow run id" not in done.stderr and done.returncode == 1


def test_settings_inputs_are_the_prefixed_variables_and_the_few_read_besides():
    env = {"PREFECT_API_URL": "u", "PREFECT__FLOW_RUN_ID": "r", "CLEARANCE_BUCKET": "b", "HOME": "/h",
           "SSL_CERT_FILE": "c", "PATH": "/bin", "prefect_api_key": "lower"}
    assert settings_inputs(env, "PREFECT_") == {"PREFECT_API_URL": "u", "HOME": "/h", "SSL_CERT_FILE": "c",
                                                "prefect_api_key": "lower"}  # Prefect reads names in any case
    assert settings_inputs(env, "CLEARANCE_") == {"CLEARANCE_BUCKET": "b", "HOME": "/h", "SSL_CERT_FILE": "c"}


def test_without_a_template_the_client_is_prefects_own_engine(tmp_path):
    done = run_client(None, REPO)
    assert "forked from template" not in done.stderr
    assert "Invalid flow run id" in done.stderr and done.returncode == 1
    gone = run_client(tmp_path / "no-such.sock", REPO)
    assert "forked from template" not in gone.stderr
    assert "Invalid flow run id" in gone.stderr and gone.returncode == 1


def test_a_run_of_another_checkout_starts_cold(template, tmp_path):
    """The template holds this checkout's modules: a run whose working directory is elsewhere would import them
    instead of its own, so it is refused and the client starts cold."""
    path, _ = template
    done = run_client(path, tmp_path)
    assert "forked from template" not in done.stderr
    assert "Invalid flow run id" in done.stderr and done.returncode == 1


@pytest.mark.parametrize("request_bytes", [
    b"",  # connects and hangs up
    b"\x00\x00\x00\x05{}",  # a header without the three file descriptors
    b"\xff\xff\xff\xff",  # a size far over the bound
])
def test_a_hostile_request_is_refused_and_the_template_keeps_serving(template, request_bytes):
    path, proc = template
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
        raw.settimeout(30)
        raw.connect(str(path))
        raw.sendall(request_bytes)
        raw.shutdown(socket.SHUT_WR)
        answer = raw.makefile("rb").readline()
    assert "pid" not in json.loads(answer or b"{}")
    assert proc.poll() is None
    assert f"forked from template {proc.pid}" in run_client(path, REPO).stderr


def test_a_changed_module_makes_the_template_stale(tmp_path, monkeypatch):
    """A run never executes code older than the files: any module of the checkout changed since the import."""
    (tmp_path / "warm_probe_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import warm_probe_module  # noqa: F401  (imported so that the template sees it as one of its modules)

    template = Template(str(tmp_path / "t.sock"), tmp_path.resolve())
    template.mtimes = template._own_module_mtimes()
    assert str(tmp_path / "warm_probe_module.py") in template.mtimes
    assert not template.stale()
    later = time.time() + 5
    os.utime(tmp_path / "warm_probe_module.py", (later, later))
    assert template.stale()
    sys.modules.pop("warm_probe_module", None)


def test_the_template_builds_deferred_pydantic_models_once_so_forks_do_not():
    from pydantic import BaseModel, ConfigDict

    from clearance.app.warm_start import complete_deferred_models

    class Deferred(BaseModel):  # as Prefect declares its models: built on first use
        model_config = ConfigDict(defer_build=True)
        name: str

    assert not Deferred.__pydantic_complete__
    assert complete_deferred_models() >= 1
    assert Deferred.__pydantic_complete__
    assert Deferred(name="x").name == "x"
    assert complete_deferred_models() == 0  # nothing left to build
