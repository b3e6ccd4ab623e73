"""Loading what a promotion is about: configs, the candidate's artifacts and their digests."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

from prefect import task
from pydantic import BaseModel, Field

from clearance.config import load_config_dir
from clearance.config.schema import ModelManifest, ModelVersion, Policy, Principals
from clearance.core.digests import sha256_json
from clearance.settings import get_settings
from gates.base import ArtifactObservation
from gates.waivers import Waiver
from tasks.caching import per_run_key
from tasks.store import ObjectInfo
from tasks.wiring import object_store

SNIFF_BYTES = 64


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


class ArtifactSource(Protocol):
    """What observing an artifact needs: the object store (``tasks.store.Store``), or local files
    (``tasks.preflight.LocalFiles``, for ``clearance gate run``)."""

    def head(self, key: str) -> ObjectInfo | None: ...

    def sha256_of(self, key: str) -> tuple[str, int]: ...

    def read_range(self, key: str, start: int, length: int) -> bytes: ...


def observe_artifact(store: ArtifactSource, key: str) -> ArtifactObservation:
    """Read one artifact: existence, size, SHA-256 and first bytes (a failure to read is an observation too)."""
    try:
        if store.head(key) is None:
            return ArtifactObservation(key=key, exists=False, error="not found")
        digest, size = store.sha256_of(key)
        head = store.read_range(key, 0, SNIFF_BYTES)
        return ArtifactObservation(key=key, exists=True, size=size, sha256=digest, head=head)
    except Exception as exc:  # noqa: BLE001 — an unreachable store is an error check, not a crash
        return ArtifactObservation(key=key, exists=False, error=f"could not read: {type(exc).__name__}: {exc}")


def observe_artifacts(store: ArtifactSource, version: ModelVersion) -> list[ArtifactObservation]:
    """Read each pinned artifact from the store: existence, size, SHA-256 and first bytes."""
    return [observe_artifact(store, ref.key) for ref in version.artifacts]


@task(name="observe-candidate", persist_result=True, cache_key_fn=per_run_key)
def observe_candidate(version: ModelVersion) -> list[ArtifactObservation]:
    """Prefect task around :func:`observe_artifacts` on the configured store."""
    return observe_artifacts(object_store(), version)


def artifact_digest(observations: list[ArtifactObservation]) -> str:
    """One digest over every artifact (key → sha256) of a candidate: what approvers approve."""
    return sha256_json({o.key: o.sha256 for o in observations})
