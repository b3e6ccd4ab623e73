"""tasks/flow_heartbeats.py: the mended heartbeat context (a fake engine) and when it replaces Prefect's."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from tasks import flow_heartbeats


class FakeEngine:
    """What the heartbeat context uses of Prefect's FlowRunEngine."""

    def __init__(self, seconds: int | None = 30, final: bool = False) -> None:
        self.heartbeat_seconds = seconds
        self.flow_run = SimpleNamespace(state=SimpleNamespace(is_final=lambda: final))
        self.logger = SimpleNamespace(debug=lambda *args, **kwargs: None)
        self.sent: list[tuple[str, str]] = []
        self.first = threading.Event()
        self.fail = False

    def _build_heartbeat_event_template(self) -> tuple[str, str]:
        return "resource", "related"

    def _emit_flow_run_heartbeat(self, resource: str, related: str) -> None:
        self.sent.append((resource, related))
        self.first.set()
        if self.fail:
            raise RuntimeError("events server gone")


def _heartbeat_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "flow-run-heartbeat"]


def test_one_heartbeat_at_start_and_the_thread_is_gone_when_the_body_ends():
    engine = FakeEngine(seconds=30)
    with flow_heartbeats.heartbeats(engine):
        assert engine.first.wait(10)
        assert _heartbeat_threads()
    assert engine.sent == [("resource", "related")]  # the next one would be 30 s later
    assert not _heartbeat_threads()


def test_no_heartbeats_when_they_are_off_and_none_for_a_final_run():
    off = FakeEngine(seconds=None)
    with flow_heartbeats.heartbeats(off):
        assert not _heartbeat_threads()
    final = FakeEngine(final=True)
    with flow_heartbeats.heartbeats(final):
        pass
    assert off.sent == [] and final.sent == []


def test_a_failing_heartbeat_does_not_fail_the_run():
    engine = FakeEngine()
    engine.fail = True
    with flow_heartbeats.heartbeats(engine):
        assert engine.first.wait(10)
    assert len(engine.sent) == 1


def test_the_interval_is_never_below_prefects_minimum(monkeypatch):
    waits: list[float] = []
    real_wait = threading.Event.wait

    def recording_wait(self, timeout=None):
        if threading.current_thread().name == "flow-run-heartbeat":
            waits.append(timeout)
        return real_wait(self, timeout)

    monkeypatch.setattr(threading.Event, "wait", recording_wait)
    engine = FakeEngine(seconds=5)
    with flow_heartbeats.heartbeats(engine):
        assert real_wait(engine.first, 10)
        for _ in range(100):
            if waits:
                break
            real_wait(threading.Event(), 0.05)
    assert waits == [30]


@pytest.fixture()
def restore_prefects():
    from prefect import flow_engine

    original = flow_engine._send_heartbeats
    yield flow_engine
    flow_engine._send_heartbeats = original


def test_install_replaces_only_the_function_it_was_written_against(restore_prefects):
    flow_engine = restore_prefects
    flow_engine._send_heartbeats = flow_heartbeats.heartbeats
    assert flow_heartbeats.install()  # installed already (flows/__init__.py): stays

    def changed_upstream(engine, join_on_exit=True):  # what a newer Prefect might ship
        yield

    flow_engine._send_heartbeats = changed_upstream
    assert not flow_heartbeats.install()
    assert flow_engine._send_heartbeats is changed_upstream


def test_the_installed_prefect_has_the_known_function_or_a_test_says_it_changed():
    """Fails when Prefect is upgraded and changed _send_heartbeats: read the new one, then update
    KNOWN_SOURCES (if it still sleeps in steps) or drop the mend (if it waits on its stop flag)."""
    from prefect import flow_engine

    import flows  # noqa: F401  (installs it)

    assert flow_heartbeats.replaced is not None, "Prefect's _send_heartbeats changed: see this test's docstring"
    assert flow_heartbeats.source_digest(flow_heartbeats.replaced) in flow_heartbeats.KNOWN_SOURCES
    assert flow_engine._send_heartbeats is flow_heartbeats.heartbeats
