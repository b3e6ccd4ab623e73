"""Config problems as ``file:line: field: message`` — the shape every config error takes.

Kept apart from the loading modules so that :mod:`clearance.config.tighten` can raise the same
errors without importing them (they import ``tighten``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

# A key or list index in a YAML document, e.g. ("gates", 0, "mode").
ConfigPath = tuple[object, ...]
# ConfigPath → 1-based line of the key (mappings) or item (lists) in the file.
LineMap = Mapping[ConfigPath, int]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one config file, located precisely enough to fix it without reading code."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(ValueError):
    """One or more :class:`ConfigIssue`; ``str()`` lists them one per line."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: list[ConfigIssue] = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def dotted(path: ConfigPath) -> str:
    """``("gates", 0, "mode")`` → ``"gates.0.mode"`` (how fields are named in messages)."""
    return ".".join(str(part) for part in path)


def line_of(lines: LineMap, path: ConfigPath) -> int | None:
    """The line of ``path``, else of its nearest ancestor that is in the file (a missing key's parent)."""
    for end in range(len(path), -1, -1):
        line = lines.get(tuple(path[:end]))
        if line is not None:
            return line
    return None


def display_path(path: Path) -> str:
    """The path as a person would type it: relative to the working directory when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def issue_at(file: str, lines: LineMap, path: ConfigPath, message: str) -> ConfigIssue:
    """A :class:`ConfigIssue` for ``path`` in ``file``, located through ``lines``."""
    return ConfigIssue(file, line_of(lines, path), dotted(path), message)
