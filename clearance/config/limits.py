"""How much config clearance will read: per file, per config directory, and per parsed document.

Why: every command and every run loads the whole config directory, and PyYAML is slow (about
3-4 s and 75 MB of memory to parse one MiB of YAML) and expands aliases. Without limits a 10 MB
policy was accepted after 69 s and 1 GB, and a few hundred bytes of nested aliases (a "billion
laughs") or of nesting never finish. So sizes are checked *before* parsing, from the file system,
and a parsed document may not expand to more values, or nest deeper, than a plain file at the
size limit could.

The byte and file limits are settings (``CLEARANCE_CONFIG_MAX_FILE_BYTES``,
``CLEARANCE_CONFIG_MAX_DIR_BYTES``, ``CLEARANCE_CONFIG_MAX_FILES``); every message that refuses a
file names the setting that would let it through.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_DEPTH", "ConfigLimits", "current_limits", "size_text"]

MIB = 1024 * 1024
#: Deepest nesting of mappings and lists (aliases expanded); the shipped configs nest 8 deep.
MAX_DEPTH = 64
#: Each value of a YAML document takes at least this many bytes when written out plainly (``1,``).
BYTES_PER_VALUE = 2


@dataclass(frozen=True)
class ConfigLimits:
    """The limits one load applies (defaults: those of the settings' defaults)."""

    max_file_bytes: int = MIB
    max_dir_bytes: int = 16 * MIB
    max_files: int = 1000
    max_depth: int = MAX_DEPTH

    @property
    def max_values(self) -> int:
        """Most values (mapping keys, mapping and list values, list items) one document may expand to:
        as many as a plain file at the size limit could spell out, so aliases buy nothing."""
        return max(1000, self.max_file_bytes // BYTES_PER_VALUE)


def current_limits() -> ConfigLimits:
    """The limits of the process settings (``CLEARANCE_CONFIG_MAX_*``)."""
    from clearance.settings import get_settings

    settings = get_settings()
    return ConfigLimits(max_file_bytes=settings.config_max_file_bytes, max_dir_bytes=settings.config_max_dir_bytes,
                        max_files=settings.config_max_files)


def size_text(size: int) -> str:
    """``1.5 MiB``, ``12.0 KiB``, ``300 bytes``: a size people can compare at a glance."""
    if size >= MIB:
        return f"{size / MIB:.1f} MiB"
    if size >= 1024:
        return f"{size / 1024:.1f} KiB"
    return f"{size} bytes"
