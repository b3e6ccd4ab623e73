"""Secrets from Prefect Secret blocks, for settings left unset in the environment.

Opt-in per channel with ``CLEARANCE_<CHANNEL>_SECRET_BLOCK_PREFIX``: a missing secret field
``bot_token`` is then read from the Secret block ``<prefix>-bot-token``. The environment wins,
so a block never overrides what an operator set explicitly.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from functools import lru_cache
from typing import TypeVar

from pydantic import BaseModel, SecretStr

from clearance.settings import SlackSettings

S = TypeVar("S", bound=BaseModel)


def block_name(prefix: str, field: str) -> str:
    """The Secret block that holds ``field``: ``<prefix>-<field with dashes>``."""
    return f"{prefix}-{field.replace('_', '-')}"


def with_secret_blocks(settings: S, prefix: str | None, fields: Iterable[str]) -> S:
    """``settings`` with each unset secret field filled from its Prefect Secret block, if one exists."""
    if not prefix:
        return settings
    from prefect.blocks.system import Secret
    from prefect.exceptions import ObjectNotFound

    updates = {}
    for field in fields:
        if getattr(settings, field) is not None:
            continue
        try:
            block = Secret.load(block_name(prefix, field))
            # Prefect's dual API returns a coroutine only inside an event loop; this reader is synchronous.
            assert not inspect.isawaitable(block), "with_secret_blocks must be called from synchronous code"
            value = block.get()
        except (ValueError, ObjectNotFound):  # no such block: the field stays unset
            continue
        updates[field] = SecretStr(str(value))
    return settings.model_copy(update=updates) if updates else settings


def load_slack_settings() -> SlackSettings:
    """Slack settings from the environment; secrets not there come from Prefect Secret blocks
    when ``CLEARANCE_SLACK_SECRET_BLOCK_PREFIX`` is set."""
    settings = SlackSettings()
    return with_secret_blocks(settings, settings.secret_block_prefix, ("bot_token", "signing_secret", "app_token"))


@lru_cache
def get_slack_settings() -> SlackSettings:
    """Process-wide :func:`load_slack_settings` (``get_slack_settings.cache_clear()`` after changing env)."""
    return load_slack_settings()
