"""The one place that builds the shared collaborators: the object store and the config set.

Entry points, tasks and channels ask here instead of building a boto3 client or re-reading
``configs/`` in each call. Both follow the settings: :func:`clearance.settings.get_settings` is
cached, and clearing its cache (a test changing the environment) gives a new store here too.
The config set is read again only when a file under the config dir changed (size, mtime or the
set of files), so a long-running ``clearance serve`` or poller sees edited principals without a
restart and without re-parsing YAML on every request.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from clearance.config import ConfigSet, load_config_dir
from clearance.config.schema import Principals
from clearance.settings import Settings, get_settings
from tasks.object_store import ObjectStore

_lock = threading.Lock()
_stores: dict[int, tuple[Settings, ObjectStore]] = {}
_configs: dict[Path, tuple[tuple[tuple[str, int, int], ...], ConfigSet]] = {}


def object_store(settings: Settings | None = None) -> ObjectStore:
    """The object store of ``settings`` (default: the process settings), built once per settings object."""
    settings = settings or get_settings()
    with _lock:
        cached = _stores.get(id(settings))
        if cached is None or cached[0] is not settings:  # id() reused by a new object: rebuild
            cached = (settings, ObjectStore.from_settings(settings))
            _stores[id(settings)] = cached
        return cached[1]


def _signature(config_dir: Path) -> tuple[tuple[str, int, int], ...]:
    files = sorted(p for p in config_dir.rglob("*") if p.is_file()) if config_dir.is_dir() else []
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)


def config_set(config_dir: Path | str | None = None) -> ConfigSet:
    """The validated config set of ``config_dir`` (default: the settings'), re-read only when it changed.

    Raises :class:`clearance.config.ConfigError` like :func:`clearance.config.load_config_dir`.
    """
    folder = Path(config_dir) if config_dir is not None else get_settings().config_dir
    key = folder.resolve()
    signature = _signature(key)
    with _lock:
        cached = _configs.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
    loaded = load_config_dir(folder)
    with _lock:
        _configs[key] = (signature, loaded)
    return loaded


def principals_for_mentions(config_dir: Path | str | None, channel: str) -> Principals | None:
    """The configured principals, for a channel that mentions people by their id there (a reminder's
    ``<@U…>`` in Slack, ``[~accountid:…]`` in Jira); ``None`` when the configs cannot be read — a mention
    is a courtesy, so the channel then writes names as text, and says why in the log."""
    try:
        return config_set(config_dir).principals
    except Exception as exc:  # noqa: BLE001 — the message is still written, with names
        logging.getLogger(f"clearance.{channel.lower()}").warning(
            "%s: principals not available to mention people (%s); names are written instead", channel, exc)
        return None
