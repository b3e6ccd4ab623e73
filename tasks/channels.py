"""Telling people about a promotion: one event stream, fanned out to every configured channel.

The flow and the approval intake publish :class:`PromotionEvent` s; each channel (Slack,
Jira, …) registers a :class:`Notifier` factory that returns ``None`` when the channel is
not configured. A channel is never the truth (the approvals record is): a notifier that
fails is logged and noted, and the promotion goes on.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any, Protocol

from clearance.events import PromotionEvent
from clearance.settings import JiraSettings, Settings, SlackSettings, get_settings
from tasks.caching import per_run_key

log = logging.getLogger("clearance.channels")


class Notifier(Protocol):
    """A channel that shows promotion events to people."""

    name: str

    def handle(self, event: PromotionEvent) -> None:
        """Show the event; may raise (the caller logs and carries on)."""
        ...


NotifierFactory = Callable[[Settings], "Notifier | None"]
_FACTORIES: list[NotifierFactory] = []


def register_notifier(factory: NotifierFactory) -> NotifierFactory:
    """Add a channel; the factory returns ``None`` when its settings are absent."""
    if factory not in _FACTORIES:
        _FACTORIES.append(factory)
    return factory


def _builtin_channels() -> list[str]:
    """The channel modules shipped with clearance whose channel may be on: a module is imported only then, so a
    command with no channel configured (``clearance approve`` on a laptop) never loads the Slack or Jira SDK.
    Decided once per environment (reading both settings from the environment costs ~30 ms; a run announces
    several times)."""
    key = _environment_fingerprint()
    found = _channels_by_environment.get(key)
    if found is None and not _could_configure_a_channel():
        found = []  # neither section can read anything: nothing to build (a decision on a laptop, ~20 ms less)
    if found is None:
        slack, jira = SlackSettings(), JiraSettings()
        found = ((["tasks.slack"] if slack.enabled or slack.secret_block_prefix else [])  # blocks may hold the token
                 + (["tasks.jira_notifier"] if jira.enabled else []))
        _channels_by_environment[key] = found
    return list(found)


_channels_by_environment: dict[str, list[str]] = {}


def _could_configure_a_channel() -> bool:
    """Whether Slack's or Jira's settings could read anything: a ``CLEARANCE_SLACK_*`` or ``CLEARANCE_JIRA_*``
    variable (any case, as pydantic-settings matches them) or a ``.env`` file, the only places they read."""
    prefixes = ("CLEARANCE_SLACK_", "CLEARANCE_JIRA_")
    return any(name.upper().startswith(prefixes) for name in os.environ) or os.path.exists(".env")


def _load_builtin_channels() -> None:
    """Import the channel modules shipped with clearance so they register (none is required)."""
    import importlib

    for module in _builtin_channels():
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


_built: dict[tuple[NotifierFactory, int, str], Notifier | None] = {}
_built_lock = threading.Lock()


def _environment_fingerprint() -> str:
    """A digest of every ``CLEARANCE_*`` variable: the switch and the credentials of each channel."""
    pairs = sorted((k, v) for k, v in os.environ.items() if k.startswith("CLEARANCE_"))
    return hashlib.sha256(repr(pairs).encode()).hexdigest()


def active_notifiers(settings: Settings | None = None) -> list[Notifier]:
    """The notifiers configured now, each built once for as long as its configuration stays the same.

    The environment is the switch (setting ``CLEARANCE_SLACK_BOT_TOKEN`` turns Slack on), so a
    notifier is rebuilt when a ``CLEARANCE_*`` variable or the settings object changes, and reused
    otherwise: its Web API client, Jira connection (one ``serverInfo`` call) and Secret-block
    lookups happen once per configuration, not once per event.
    """
    _load_builtin_channels()
    settings = settings or get_settings()
    fingerprint = _environment_fingerprint()
    notifiers = []
    for factory in _FACTORIES:
        key = (factory, id(settings), fingerprint)
        with _built_lock:
            if key not in _built:
                if len(_built) > 64:  # configurations come and go in tests; keep the cache small
                    _built.clear()
                _built[key] = factory(settings)
            notifier = _built[key]
        if notifier is not None:
            notifiers.append(notifier)
    return notifiers


def publish_event(event: PromotionEvent, notifiers: list[Notifier] | None = None) -> list[str]:
    """Give the event to every channel; returns one note per channel that failed (never raises)."""
    notes = []
    for notifier in active_notifiers() if notifiers is None else notifiers:
        try:
            notifier.handle(event)
        except Exception as exc:  # noqa: BLE001 — a channel outage must not stop a promotion
            note = f"{notifier.name}: could not show {event.kind} of run {event.run_id}: {type(exc).__name__}: {exc}"
            log.warning(note)
            notes.append(note)
    return notes


def _event_key(context, parameters) -> str:
    """One announcement per run, kind and gate: a resumed run re-announces nothing it already told."""
    event: PromotionEvent = parameters["event"]
    # alerts, reminders and escalations may come more than once per run (another status, the next reminder)
    repeated = {"status": event.status} if event.kind in ("alert", "reminder", "escalated") else {}
    return per_run_key(context, {"kind": event.kind, "gate": event.gate.gate_id if event.gate else None, **repeated})


def _announce(event: PromotionEvent) -> list[str]:
    """Prefect task around :func:`publish_event`; cached per run so a resumed run does not post twice."""
    notes = publish_event(event)
    if notes:
        from tasks.run_artifacts import publish_markdown

        publish_markdown("channel-problems", "\n".join(f"- {n}" for n in notes),
                         description="channels that could not be updated")
    return notes


def __getattr__(name: str) -> Any:
    """``announce``, the Prefect task of the flows, made on first use: publishing from the CLI needs no Prefect."""
    if name != "announce":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from tasks.prefect_tasks import task

    announce = task(name="announce", persist_result=True, cache_key_fn=_event_key)(_announce)
    globals()["announce"] = announce
    return announce
