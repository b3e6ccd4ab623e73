"""clearance's task decorator (tasks/prefect_tasks.py) on a real Prefect server: arguments handed over whole."""

from __future__ import annotations

import pytest
from prefect import flow
from prefect import task as prefect_task
from prefect.states import Completed
from pydantic import BaseModel

from tasks.caching import per_run_key
from tasks.prefect_tasks import task, whole


class Inputs(BaseModel):
    model: str
    extra: dict[str, object]


def test_only_collections_and_models_are_marked():
    from prefect.utilities.annotations import allow_failure, opaque

    assert isinstance(whole(Inputs(model="m", extra={})), opaque)
    assert isinstance(whole({"a": [1]}), opaque) and isinstance(whole([1]), opaque)
    assert whole("text") == "text" and whole(3) == 3 and whole(None) is None
    failure = allow_failure(1)
    assert whole(failure) is failure  # the caller's own annotation is kept


@pytest.mark.usefixtures("prefect_service")
def test_the_task_gets_plain_values_unwalked_and_the_same_cache_key():
    seen_by_key: list[dict] = []
    keys: list[str] = []

    def recording_key(context, parameters):
        seen_by_key.append(parameters)
        keys.append(per_run_key(context, parameters))
        return keys[-1]

    def body(inputs: Inputs, extra: dict) -> tuple[str, str]:
        return type(inputs).__name__, type(extra["nested"]).__name__

    ours = task(name="whole-args", persist_result=True, cache_key_fn=recording_key)(body)
    prefects = prefect_task(name="whole-args", persist_result=True, cache_key_fn=recording_key)(body)
    nested = Completed(data="resolved")  # a state inside a collection: Prefect's walk would resolve it

    @flow(name="whole-args-probe")
    def probe() -> list:
        inputs = Inputs(model="m", extra={"deep": [{"x": 1}]})
        return [ours(inputs, {"nested": nested}), ours(inputs, {"nested": nested}, return_state=True).name,
                prefects(inputs, {"nested": nested})]

    first, second_state, walked = probe()
    # ours: the task got the model itself and the nested state untouched (not walked into, so not resolved)
    assert first == ("Inputs", "State")
    # Prefect's own task walked the dict and resolved the nested state to its data
    assert walked == ("Inputs", "str")
    # the second identical call came from the cache: the key is computed from plain, unwrapped values
    assert second_state == "Cached"
    assert all(type(p["inputs"]) is Inputs and type(p["extra"]) is dict for p in seen_by_key)
    assert keys[0] == keys[1]
