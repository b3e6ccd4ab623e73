"""``validate_paths``: check any mix of config files and directories, as ``clearance validate`` does.

Why: a path given on the command line need not be a whole config directory. A lone file's kind
is sniffed (by its place in the layout, else by its top-level keys); a file that sits inside a
config layout is checked with its neighbours too, so cross-file rules apply, but only its own
issues are returned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clearance.config.config_set import _collect_dir
from clearance.config.files import _load_file
from clearance.config.issues import ConfigIssue
from clearance.config.yaml_source import read_yaml

__all__ = ["validate_paths"]


def _kind_of(path: Path, data: Any) -> str | None:
    """What a lone file is: by its place in the layout, else by its top-level keys."""
    if path.parent.name == "policies":
        return "policy"
    if path.parent.name == "models":
        return "manifest"
    if path.stem == "principals":
        return "principals"
    if path.stem == "waivers":
        return "waivers"
    if path.stem == "regulatory":
        return "regulatory"
    if path.stem == "prices":
        return "prices"
    if isinstance(data, dict):
        if "principals" in data:
            return "principals"
        if "waivers" in data:
            return "waivers"
        if "controls" in data:
            return "regulatory"
        if "prices" in data:
            return "prices"
        if "tier" in data or "gates" in data:
            return "policy"
        if "risk_tier" in data or "versions" in data:
            return "manifest"
    return None


def _layout_root(path: Path) -> Path | None:
    """The config directory a file sits in, if it sits in one (so cross-file rules apply too)."""
    root = path.parent.parent if path.parent.name in ("policies", "models") else path.parent
    if (root / "policies").is_dir() and (root / "principals.yaml").is_file():
        return root
    return None


def validate_paths(paths: list[Path]) -> list[ConfigIssue]:
    """Every issue in every given file or config directory (a directory means its configs/ layout).

    A file inside a config layout is also checked against its neighbours (tier policy,
    principals), but only its own issues are returned.
    """
    issues: list[ConfigIssue] = []
    for path in map(Path, paths):
        if path.is_dir():
            issues += _collect_dir(path)[1]
            continue
        root = _layout_root(path) if path.is_file() else None
        if root is not None:
            target = path.resolve()
            mine = [i for i in _collect_dir(root)[1] if Path(i.file).resolve() == target]
            issues += mine
            continue
        doc = read_yaml(path)
        if doc.data is None:
            issues += doc.issues
            continue
        kind = _kind_of(path, doc.data)
        if kind is None:
            issues.append(ConfigIssue(doc.file, 1, "", "cannot tell what this is: expected a policy (tier, gates), "
                                                       "a model manifest (name, risk_tier, versions), principals or a "
                                                       "regulatory map (controls, tags)"))
            continue
        issues += _load_file(path, kind, doc).issues
    unique: dict[ConfigIssue, None] = dict.fromkeys(issues)  # a file given twice reports once
    return list(unique)
