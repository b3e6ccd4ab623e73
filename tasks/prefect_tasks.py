"""clearance's Prefect task decorator: Prefect's ``task``, with every argument handed over whole.

Before each task call Prefect walks every argument to its leaves twice (``visit_collection``): once to
find futures and states nested anywhere for the UI's dependency graph, once to resolve them. The
promotion's tasks take large pydantic objects (the gate inputs with the manifest and the candidate's
observations, gate results, the approval record, the report), and these walks were ~7 % of a
promotion's wall time (0.42 of 6.1 s, sampled; bench/RESULTS.md, "Orchestration overhead").
clearance's flows call their tasks with plain values, never with futures or states nested inside a
collection, so there is nothing down there to find: each argument is wrapped in Prefect's
``opaque`` annotation, which resolves the argument itself (a future or state passed directly still is)
but does not walk into it. The task still receives the plain value (Prefect removes the annotation),
and the cache keys are computed from the resolved values (tasks/caching.py), so they are unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

from prefect import Task
from prefect.utilities.annotations import BaseAnnotation, opaque
from pydantic import BaseModel

P = ParamSpec("P")
R = TypeVar("R")


def whole(value: Any) -> Any:
    """``value`` marked so Prefect does not walk into it (only collections and models: nothing else is walked)."""
    if isinstance(value, BaseAnnotation):
        return value  # annotated by the caller already (allow_failure, quote, …): theirs to say
    if isinstance(value, (BaseModel, dict, list, tuple, set, frozenset)) or (
            dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return opaque(value)
    return value


class WholeArgumentsTask(Task[P, R]):
    """A Prefect task whose direct calls hand every argument over whole (see the module's docstring)."""

    def __call__(self, *args: Any, return_state: bool = False, wait_for: Any = None,  # type: ignore[override]
                 **kwargs: Any) -> Any:
        return super().__call__(*(whole(a) for a in args), return_state=return_state,  # type: ignore[arg-type]
                                wait_for=wait_for, **{name: whole(v) for name, v in kwargs.items()})


def task(**options: Any) -> Callable[[Callable[P, R]], Task[P, R]]:
    """``@task(name=…, …)`` as Prefect's, making a :class:`WholeArgumentsTask` (same options)."""

    def make(fn: Callable[P, R]) -> Task[P, R]:
        return cast(Task[P, R], WholeArgumentsTask(fn=fn, **options))

    return make
