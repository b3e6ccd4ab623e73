"""Every Prefect task is declared with clearance's decorator and every flow body waits for its artifacts.

tasks/prefect_tasks.py (arguments handed over whole) and tasks/run_artifacts.py (artifacts created in the
background, waited for when a flow ends) only hold if no module slips back to Prefect's own ``task`` or
declares a flow whose end does not flush. Checked over the source, like tests/unit/test_architecture.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWN_DECORATOR = ROOT / "tasks" / "prefect_tasks.py"


def _sources() -> list[Path]:
    return sorted(p for package in ("tasks", "flows", "clearance") for p in (ROOT / package).rglob("*.py"))


def _decorator_names(node: ast.FunctionDef) -> list[str]:
    names = []
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        names.append(target.id if isinstance(target, ast.Name) else getattr(target, "attr", ""))
    return names


def prefect_task_imports(source: str) -> list[int]:
    """Lines that import Prefect's own ``task`` (``from prefect import task`` or ``from prefect.tasks import task``)."""
    return [node.lineno for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) and node.module in ("prefect", "prefect.tasks")
            and any(alias.name == "task" for alias in node.names)]


def unflushed_flows(source: str) -> list[str]:
    """Functions decorated ``@flow`` whose next decorator is not ``@flushed``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef):
            names = _decorator_names(node)
            if "flow" in names and names[names.index("flow") + 1:names.index("flow") + 2] != ["flushed"]:
                found.append(node.name)
    return found


def test_no_module_declares_tasks_with_prefects_own_decorator():
    offenders = [f"{path.relative_to(ROOT)}:{line}" for path in _sources() if path != OWN_DECORATOR
                 for line in prefect_task_imports(path.read_text())]
    assert not offenders, f"use `from tasks.prefect_tasks import task` instead: {offenders}"


def test_every_flow_body_is_flushed():
    offenders = [f"{path.relative_to(ROOT)}: {name}" for path in _sources()
                 for name in unflushed_flows(path.read_text())]
    assert not offenders, f"put @flushed (tasks/run_artifacts.py) right under @flow: {offenders}"


def test_the_checks_catch_what_they_look_for():
    assert prefect_task_imports("from prefect import flow, task\n") == [1]
    assert prefect_task_imports("def f():\n    from prefect.tasks import task\n") == [2]
    assert prefect_task_imports("from tasks.prefect_tasks import task\n") == []
    assert unflushed_flows("@flow(name='x')\ndef f():\n    pass\n") == ["f"]
    assert unflushed_flows("@flow(name='x')\n@other\ndef f():\n    pass\n") == ["f"]
    assert unflushed_flows("@flow(name='x')\n@flushed\ndef f():\n    pass\n") == []
