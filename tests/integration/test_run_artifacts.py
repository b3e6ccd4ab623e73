"""Artifacts created beside the run's work (tasks/run_artifacts.py), on a real Prefect server."""

from __future__ import annotations

import logging

import pytest
from prefect import flow, get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.context import FlowRunContext

from tasks.prefect_tasks import task
from tasks.run_artifacts import flushed, publish_link, publish_markdown

pytestmark = pytest.mark.usefixtures("prefect_service")


def _artifacts_of(run_id: str) -> list:
    with get_client(sync_client=True) as client:
        found = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        return client.read_artifacts(artifact_filter=found)


def _run_id() -> str:
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    return str(context.flow_run.id)


@task(name="publishes-artifacts")
def publishes(count: int) -> str:
    from prefect.context import TaskRunContext

    for i in range(count):
        publish_markdown(f"probe-{i}", f"# artifact {i}", description=f"number {i}")
    publish_link("probe-link", "http://example.test/evidence/", link_text="s3://bucket/evidence/")
    context = TaskRunContext.get()
    assert context is not None
    return str(context.task_run.id)


def test_a_flow_that_returns_has_all_its_artifacts_on_the_server_with_their_task_run():
    @flow(name="artifacts-probe")
    @flushed
    def probe() -> tuple[str, str]:
        return _run_id(), publishes(60)  # enough to be still on their way when the body returns

    run_id, task_run_id = probe()
    artifacts = _artifacts_of(run_id)
    assert sorted(a.key for a in artifacts if a.key) == sorted([f"probe-{i}" for i in range(60)] + ["probe-link"])
    assert {str(a.task_run_id) for a in artifacts if a.key} == {task_run_id}
    by_key = {a.key: a for a in artifacts}
    assert by_key["probe-3"].data == "# artifact 3" and by_key["probe-3"].description == "number 3"
    assert by_key["probe-link"].data == "[s3://bucket/evidence/](http://example.test/evidence/)"


def test_a_flow_that_raises_still_has_its_artifacts():
    seen: list[str] = []

    @flow(name="artifacts-probe-failing")
    @flushed
    def probe() -> None:
        seen.append(_run_id())
        publishes(3)
        raise RuntimeError("the body failed after publishing")

    with pytest.raises(RuntimeError):
        probe()
    assert sorted(a.key for a in _artifacts_of(seen[0]) if a.key) == ["probe-0", "probe-1", "probe-2", "probe-link"]


def test_an_artifact_the_server_refuses_is_logged_and_does_not_fail_the_run(caplog):
    @flow(name="artifacts-probe-refused")
    @flushed
    def probe() -> str:
        publish_markdown("Not A Valid Key!", "refused")  # Prefect allows lowercase letters, digits and dashes
        publish_markdown("valid-after", "created")
        return _run_id()

    with caplog.at_level(logging.WARNING, logger="tasks.run_artifacts"):
        run_id = probe()
    assert [a.key for a in _artifacts_of(run_id) if a.key] == ["valid-after"]
    assert any("Not A Valid Key!" in r.getMessage() for r in caplog.records), caplog.text


def test_outside_a_run_nothing_is_published():
    publish_markdown("outside-any-run", "nothing")  # no run to belong to: not an error, not queued
    from tasks.run_artifacts import flush

    assert flush(timeout=1) == 0


def test_artifacts_still_waiting_when_the_flush_gives_up_are_dropped_not_left_to_block_the_exit(caplog):
    from tasks.run_artifacts import flush

    left: list[int] = []

    @flow(name="artifacts-probe-gives-up")
    def probe() -> str:
        for i in range(40):
            publish_markdown(f"queued-{i}", f"artifact {i}")
        left.append(flush(timeout=0))  # as when the server stops answering: nothing more is waited for
        return _run_id()

    with caplog.at_level(logging.WARNING, logger="tasks.run_artifacts"):
        run_id = probe()
    created = [a.key for a in _artifacts_of(run_id) if a.key]
    assert left[0] > 0 and len(created) < 40, (left, len(created))
    assert flush(timeout=5) == 0  # nothing left behind for the process's exit to wait on
    assert any("dropped" in r.getMessage() for r in caplog.records), caplog.text
