"""A flow for tests/integration/test_warm_start_runs.py: it records its pid, then sleeps until stopped."""

from __future__ import annotations

import os
import time
from pathlib import Path

from prefect import flow


@flow(name="warm-sleeper")
def sleeper(marker: str, seconds: float = 300) -> None:
    Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
