"""Loading what a promotion is about: configs, the candidate's artifacts and their digests.

Observing artifacts and their digest need no Prefect: they live in :mod:`tasks.candidate_digest` (so that
``clearance approve`` can use them cheaply) and are re-exported here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from clearance.config import load_config_dir
from clearance.config.schema import ModelManifest, ModelVersion, Policy, Principals
from clearance.core.digests import sha256_json
from clearance.settings import get_settings
from gates.base import ArtifactObservation
from gates.waivers import Waiver
from tasks.caching import per_run_key
from tasks.candidate_digest import SNIFF_BYTES, ArtifactSource, artifact_digest, observe_artifact, observe_artifacts
from tasks.prefect_tasks import task
from tasks.wiring import object_store

__all__ = ["SNIFF_BYTES", "ArtifactSource", "PromotionContext", "UnknownVersionError", "artifact_digest",
           "config_digest", "load_promotion_context", "observe_artifact", "observe_artifacts", "observe_candidate"]

class PromotionContext(BaseModel):
    """Everything the flow needs from the configs, frozen at the start of the run."""

    model: str
    version: str
    manifest: ModelManifest
    policy: Policy
    principals: Principals
    config_digest: str
    waivers: list[Waiver] = Field(default_factory=list, description="waivers.yaml entries scoped to this version.")
    regulatory: dict[str, Any] | None = Field(
        None, description="The config set's regulatory mapping (configs/regulatory.yaml) as JSON, if it has one.")
    prices: dict[str, float] | None = Field(
        None, description="The config set's price table (configs/prices.yaml: instance type → USD per "
                          "instance-hour), if it has one: what the cost gate reads as extra['price_table'].")

    @property
    def model_version(self) -> ModelVersion:
        """The manifest entry of the version being promoted."""
        return self.manifest.versions[self.version]


class UnknownVersionError(LookupError):
    """The manifest has no such version."""


def config_digest(config_dir: Path) -> str:
    """SHA-256 over every YAML file under the config dir (path + content), to pin what was used."""
    files = sorted(p for p in config_dir.rglob("*.y*ml") if p.is_file())
    return sha256_json({str(p.relative_to(config_dir)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files})


@task(name="load-configs", persist_result=True, cache_key_fn=per_run_key)
def load_promotion_context(model: str, version: str, config_dir: str | None = None) -> PromotionContext:
    """Validate the whole config dir and pick the model, its version and its effective policy."""
    root = Path(config_dir) if config_dir else get_settings().config_dir
    configs = load_config_dir(root)
    if model not in configs.manifests:
        known = ", ".join(sorted(configs.manifests)) or "none"
        raise UnknownVersionError(f"no model {model!r} in {root}/models (known: {known})")
    manifest = configs.manifests[model]
    if version not in manifest.versions:
        known = ", ".join(sorted(manifest.versions))
        raise UnknownVersionError(f"model {model!r} has no version {version!r} (known: {known})")
    return PromotionContext(model=model, version=version, manifest=manifest,
                            policy=configs.effective_policy(model), principals=configs.principals,
                            config_digest=config_digest(root), waivers=configs.waivers_for(model, version),
                            regulatory=configs.regulatory_map_json(), prices=configs.price_table_json())


@task(name="observe-candidate", persist_result=True, cache_key_fn=per_run_key)
def observe_candidate(version: ModelVersion) -> list[ArtifactObservation]:
    """Prefect task around :func:`observe_artifacts` on the configured store."""
    return observe_artifacts(object_store(), version)
