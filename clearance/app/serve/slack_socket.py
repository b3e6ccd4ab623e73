"""``clearance serve --socket-mode``: the same Slack interactions over Socket Mode (no public URL).

slack-sdk's built-in Socket Mode client opens ``apps.connections.open`` with the app-level
token (``CLEARANCE_SLACK_APP_TOKEN``, scope ``connections:write``) and keeps a WebSocket to
Slack. Each envelope is acknowledged at once (with the modal's validation errors when the
reason is empty); the decision itself runs in a worker thread afterwards, through the same
:class:`~clearance.app.serve.slack_interactions.SlackInteractions` as the HTTP endpoint.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from slack_sdk.socket_mode import SocketModeClient
from slack_sdk.socket_mode.client import BaseSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from clearance.app.serve.slack_interactions import SlackInteractions, payload_problem
from clearance.settings import SlackSettings
from tasks.secret_blocks import load_slack_settings

log = logging.getLogger("clearance.slack.socket")


class SocketModeListener:
    """A connected Socket Mode client feeding :class:`SlackInteractions`."""

    def __init__(self, settings: SlackSettings | None = None, interactions: SlackInteractions | None = None) -> None:
        from tasks.slack import slack_client

        self.settings = settings or load_slack_settings()
        if self.settings.app_token is None:
            raise RuntimeError("Socket Mode needs CLEARANCE_SLACK_APP_TOKEN (an xapp-… app-level token)")
        self.interactions = interactions or SlackInteractions(self.settings)
        self.workers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="slack-decision")
        # Decisions run in the context the listener was made in (settings held in context variables apply).
        self._context = contextvars.copy_context()
        self.client = SocketModeClient(app_token=self.settings.app_token.get_secret_value(),
                                       web_client=slack_client(self.settings), auto_reconnect_enabled=True,
                                       trace_enabled=False)
        self.client.socket_mode_request_listeners.append(self._on_request)

    def _on_request(self, client: BaseSocketModeClient, request: SocketModeRequest) -> None:
        answer, work = (None, None)
        if request.type == "interactive":
            problem = payload_problem(request.payload)
            if problem is None:
                answer, work = self.interactions.ack(request.payload)
            else:
                log.warning("slack interaction ignored: %s", problem)
        client.send_socket_mode_response(SocketModeResponse(envelope_id=request.envelope_id, payload=answer))
        if work is not None:
            self.workers.submit(self._context.copy().run, _run, work)

    def connect(self) -> SocketModeListener:
        """Open the connection (returns once connected)."""
        self.client.connect()
        return self

    def close(self) -> None:
        """Disconnect and finish the decisions in flight."""
        self.client.close()
        self.workers.shutdown(wait=True)


def _run(work) -> None:
    try:
        work()
    except Exception:  # noqa: BLE001 — logged; the listener keeps running
        log.exception("slack interaction failed after acknowledgement")


def run_socket_mode(settings: SlackSettings | None = None, stop: threading.Event | None = None) -> None:
    """Connect and serve until ``stop`` is set (or the process is interrupted)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    listener = SocketModeListener(settings).connect()
    log.info("Slack Socket Mode connected; waiting for interactions")
    stop = stop or threading.Event()
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
