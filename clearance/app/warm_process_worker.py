"""Prefect's process worker, starting each flow run through the warm-start template when one serves.

Everything else — polling, submission, pids, exit codes, cancellation, crash reports — is Prefect's
``ProcessWorker``; only the job's command changes, and only for a deployment that set none of its own.
"""

from __future__ import annotations

import sys
import warnings
from typing import TYPE_CHECKING, Any

from prefect.utilities.processutils import command_to_string
from prefect.workers.process import ProcessJobConfiguration, ProcessWorker, ProcessWorkerResult

from clearance.app.warm_start import SOCKET_ENV

if TYPE_CHECKING:
    from prefect.client.schemas.objects import FlowRun

    from clearance.app.warm_start import TemplateKeeper

#: The job command of a warm-started run: a small client that asks the template to fork the run.
WARM_COMMAND = command_to_string([sys.executable, "-m", "clearance.app.warm_start"])


# Prefect registers worker classes by type; this one keeps ProcessWorker's "process" (its pools, its job
# template), and Prefect warns that the registry entry is replaced in this process — which is the intent.
warnings.filterwarnings("ignore", message="Type 'WarmProcessWorker'", category=UserWarning)


class WarmProcessWorker(ProcessWorker):
    """A ``ProcessWorker`` whose runs are forked from the template of ``keeper`` (None: Prefect's own start)."""

    def __init__(self, keeper: TemplateKeeper | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._keeper = keeper

    async def run(self, flow_run: FlowRun, configuration: ProcessJobConfiguration,
                  task_status: Any = None) -> ProcessWorkerResult:
        path = self._keeper.socket_path() if self._keeper is not None else None
        if path is not None and not configuration._command_configured:
            configuration.command = WARM_COMMAND
            configuration._command_configured = True
            configuration.env[SOCKET_ENV] = path
        return await super().run(flow_run, configuration, task_status)
