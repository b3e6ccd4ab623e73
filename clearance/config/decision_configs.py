"""What recording a decision reads of a config directory: ``principals.yaml``, and one model's manifest.

Why not the whole :class:`~clearance.config.ConfigSet`: ``clearance approve`` and ``reject`` are typed by a
person who waits for them, and a whole load validates every policy's gate configs against the gate registry,
which imports every gate (the security scanner's pickle machine, the compliance review…) and parses every
file — a third of the command's time for nothing a decision reads. A decision reads who the person is and
what they may approve: ``principals.yaml`` is checked here exactly as a whole load checks it (schema, an OS
login or key claimed by two principals, one issue per problem), so no identity counts on less. The manifest
of the run's model is read only to compute the candidate's digest as it is now. The rules across files
(quorums, tiers, waivers, regulatory tags) are about running a promotion: the run loads the whole set when
it wakes and judges every recorded decision against it, so a decision recorded with these never counts
where a whole load would not let it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from clearance.config.config_set import _config_root
from clearance.config.files import _load_file
from clearance.config.issues import ConfigError
from clearance.config.schema import ModelManifest, Principals
from clearance.core.types import IDENTIFIER_MAX_LENGTH, IDENTIFIER_PATTERN

__all__ = ["DecisionConfigs", "load_decision_configs"]


@dataclass
class DecisionConfigs:
    """The principals of a config directory, and its manifests read one at a time when asked for."""

    root: Path
    principals: Principals
    _manifests: dict[str, ModelManifest | None] = field(default_factory=dict, repr=False)

    def manifest(self, model: str) -> ModelManifest | None:
        """``models/<model>.yaml`` validated as a whole load validates the file, or ``None`` when there is no
        such file, or its ``name`` is another model (a whole load refuses that file; it is no manifest of
        ``model``). Raises :class:`ConfigError` naming every problem of a broken manifest."""
        if model not in self._manifests:
            self._manifests[model] = self._read_manifest(model)
        return self._manifests[model]

    def _read_manifest(self, model: str) -> ModelManifest | None:
        # Only a name a manifest may have (no "/", not ".." or "."): one read from a record in the bucket, which
        # is not trusted, is never made into another path.
        if not re.fullmatch(IDENTIFIER_PATTERN, model) or len(model) > IDENTIFIER_MAX_LENGTH:
            return None
        for suffix in (".yaml", ".yml"):
            path = self.root / "models" / f"{model}{suffix}"
            if path.is_file():
                loaded = _load_file(path, "manifest")
                if loaded.issues:
                    raise ConfigError(loaded.issues)
                manifest: ModelManifest = loaded.model
                return manifest if manifest.name == model else None
        return None


def load_decision_configs(config_dir: Path | str) -> DecisionConfigs:
    """The principals of ``config_dir`` (or of its ``configs/``); raises :class:`ConfigError` listing every
    problem of ``principals.yaml``, as :func:`~clearance.config.load_config_dir` would."""
    root = _config_root(Path(config_dir))
    loaded = _load_file(root / "principals.yaml", "principals")
    if loaded.issues:
        raise ConfigError(loaded.issues)
    return DecisionConfigs(root=root, principals=loaded.model)
