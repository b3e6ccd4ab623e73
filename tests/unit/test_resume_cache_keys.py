"""What makes a resumed promotion reuse its first pass, without ever letting a new run reuse another's.

The integration test (tests/integration/test_resume_no_rerun.py) shows a resumed run re-executing nothing
from before its wait; these pin the pieces it rests on: the keys are per run, and the dataset locators,
persisted so a resume need not hash every file again, are persisted without the store's credentials.
"""

from __future__ import annotations

import pickle
from types import SimpleNamespace
from uuid import uuid4

from clearance.settings import Settings
from gates.data_check.models import DatasetLocator
from tasks.caching import per_run_key
from tasks.datasets import filesystem_spec, with_keys, without_keys


def key(run: str, task: str, **parameters: object) -> str:
    context = SimpleNamespace(task_run=SimpleNamespace(flow_run_id=run), task=SimpleNamespace(name=task))
    return per_run_key(context, parameters)


def test_a_task_without_inputs_is_keyed_on_its_run() -> None:
    # sign-off-opens-at: the resumed pass of one run gets the time back; a new run reads the clock again.
    run = str(uuid4())
    assert key(run, "sign-off-opens-at") == key(run, "sign-off-opens-at")
    assert key(run, "sign-off-opens-at") != key(str(uuid4()), "sign-off-opens-at")
    assert key(run, "sign-off-opens-at") != key(run, "check-object-store")


def settings() -> Settings:
    return Settings(s3_endpoint_url="http://127.0.0.1:1", s3_access_key_id="AKIDEXAMPLE",
                    s3_secret_access_key="wJalrXUtnFEMI-secret")


def test_a_persisted_locator_holds_no_credentials_and_gets_them_back() -> None:
    located = DatasetLocator(role="eval", uri="s3://data/eval.parquet", files=["data/eval.parquet"],
                             filesystem=filesystem_spec(settings()), sha256="0" * 64)
    stored = pickle.dumps(without_keys(located))  # what Prefect's result storage would hold
    assert b"AKIDEXAMPLE" not in stored and b"wJalrXUtnFEMI-secret" not in stored
    restored = with_keys(pickle.loads(stored), settings())
    assert restored == located
    assert restored.filesystem.secret_key is not None
    assert restored.filesystem.secret_key.get_secret_value() == "wJalrXUtnFEMI-secret"


def test_a_local_locator_is_left_as_it_is() -> None:
    local = DatasetLocator(role="train", uri="/data/train.parquet", files=["/data/train.parquet"])
    assert with_keys(without_keys(local), settings()) == local
