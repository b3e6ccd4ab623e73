"""The data_check models: where a dataset is (locator), what it must satisfy (contract), how strict (config).

- :class:`DatasetLocator` is what ``tasks/datasets.py`` puts into ``GateInputs.datasets[role]``:
  the files to read, the filesystem they live on (local or S3) and the digest it observed.
- :class:`DatasetContract` is the ``contract`` of a manifest's ``DatasetRef``.
- :class:`DataCheckConfig` is the gate's config in a policy (a manifest may only tighten it).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from clearance.core.types import Duration

Role = Literal["train", "eval", "reference", "production_sample", "predictions"]
FileFormat = Literal["parquet", "csv"]


# --------------------------------------------------------------------------- locator


class FilesystemSpec(BaseModel):
    """A pyarrow filesystem, described as data (so inputs stay serialisable and secrets masked)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["local", "s3"] = "local"
    endpoint_override: str | None = Field(None, description="host:port or URL of an S3-compatible endpoint.")
    scheme: Literal["http", "https"] = "https"
    region: str = "us-east-1"
    access_key: SecretStr | None = Field(None, description="Unset: pyarrow's default AWS credential chain.")
    secret_key: SecretStr | None = None

    def to_pyarrow(self) -> Any:
        """The ``pyarrow.fs.FileSystem`` this spec describes."""
        import pyarrow.fs as pafs

        if self.kind == "local":
            return pafs.LocalFileSystem()
        kwargs: dict[str, Any] = {"region": self.region, "scheme": self.scheme,
                                  "connect_timeout": 10, "request_timeout": 60}
        if self.endpoint_override:
            endpoint = self.endpoint_override
            for prefix in ("http://", "https://"):
                if endpoint.startswith(prefix):
                    kwargs["scheme"] = prefix[:-3]
                    endpoint = endpoint[len(prefix):]
            kwargs["endpoint_override"] = endpoint.rstrip("/")
        if self.access_key is not None and self.secret_key is not None:
            kwargs["access_key"] = self.access_key.get_secret_value()
            kwargs["secret_key"] = self.secret_key.get_secret_value()
        return pafs.S3FileSystem(**kwargs)


class DatasetLocator(BaseModel):
    """One dataset as resolved by the flow: files on a filesystem, the observed digest, or why not."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    uri: str = Field(description="The URI as the manifest gives it (for messages).")
    format: FileFormat = "parquet"
    files: list[str] = Field(default_factory=list,
                             description="Paths on the filesystem: local paths, or 'bucket/key' on S3.")
    filesystem: FilesystemSpec = Field(default_factory=FilesystemSpec)
    sha256: str | None = Field(None, description="Observed dataset digest (see dataset_digest).")
    file_sha256: dict[str, str] = Field(default_factory=dict, description="Observed digest per file.")
    error: str | None = Field(None, description="Why the dataset could not be resolved, if it could not.")
    error_kind: Literal["not_found", "unreadable", "unreachable"] | None = None


class DatasetReadError(Exception):
    """A dataset could not be read; ``kind`` is not_found, unreadable or unreachable.

    Here rather than beside the reader (:mod:`gates.data_check.reader`, which re-exports it): code that
    only catches it need not import Arrow.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def dataset_digest(file_sha256: dict[str, str]) -> str:
    """The digest of a dataset: a single file's own SHA-256 (what ``sha256sum`` prints), else the
    SHA-256 of the canonical JSON ``{relative name: sha256}`` of its files."""
    if len(file_sha256) == 1:
        return next(iter(file_sha256.values()))
    return hashlib.sha256(json.dumps(dict(sorted(file_sha256.items())), sort_keys=True,
                                     separators=(",", ":")).encode()).hexdigest()


# --------------------------------------------------------------------------- thresholds


class Levels(BaseModel):
    """Warn and fail levels of a drift measure (observed >= level triggers it; unset: never)."""

    model_config = ConfigDict(extra="forbid")

    warn: float | None = Field(None, ge=0, json_schema_extra={"tighten": "lower"})
    fail: float | None = Field(None, ge=0, json_schema_extra={"tighten": "lower"})

    def stricter(self, other: Levels | None) -> Levels:
        """Per level, the lower (stricter) of the two."""
        if other is None:
            return self
        pick = lambda a, b: b if a is None else a if b is None else min(a, b)  # noqa: E731
        return Levels(warn=pick(self.warn, other.warn), fail=pick(self.fail, other.fail))


class ColumnThresholds(BaseModel):
    """Drift levels for one column (replace the defaults for that column)."""

    model_config = ConfigDict(extra="forbid")

    psi: Levels | None = None
    ks: Levels | None = None
    drift: bool = Field(True, description="False: no drift checks for this column.")


def _default_compare_roles() -> list[Role]:
    return ["eval", "production_sample"]


class DataCheckConfig(BaseModel):
    """Config of ``data_check`` in a policy; fields with a ``tighten`` rule may be tightened by a manifest.

    Per-column drift levels of a manifest go in the dataset contract (``drift:``): the gate applies
    the stricter of policy and contract, so a manifest can tighten them but never loosen them.
    """

    model_config = ConfigDict(extra="forbid")

    reference_role: Literal["reference", "train"] = Field(
        "reference", description="Role of the reference data; falls back to the other one when absent.")
    compare_roles: list[Role] = Field(default_factory=_default_compare_roles,
                                      description="Datasets compared against the reference for drift.")
    psi: Levels = Field(default_factory=lambda: Levels(warn=0.1, fail=0.25))
    ks: Levels = Field(default_factory=lambda: Levels(warn=0.1, fail=0.2),
                       description="Levels on the KS statistic D (the p-value is reported, not judged).")
    columns: dict[str, ColumnThresholds] = Field(default_factory=dict,
                                                 description="Per-column levels set by the policy.")
    psi_bins: int = Field(10, ge=2, le=1000, description="PSI bins, at reference quantiles.")
    psi_epsilon: float = Field(1e-4, gt=0, lt=0.01, description="Floor of a bin share in PSI.")
    ks_mode: Literal["exact", "bounded"] = Field(
        "exact", description="bounded: sort no values (columns whose interval straddles a level excepted); "
                 "report the guaranteed upper limit of D and its gap.")
    fine_bins: int = Field(1 << 15, ge=16, le=1 << 22, description="Fine bins of the KS/quantile histogram.")
    require_contract: bool = Field(False, json_schema_extra={"tighten": "higher"},
                                   description="Every dataset must carry a contract.")
    require_digest: bool = Field(False, json_schema_extra={"tighten": "higher"},
                                 description="Every dataset must be pinned by sha256 in the manifest.")
    require_reference: bool = Field(False, json_schema_extra={"tighten": "higher"},
                                    description="Fail when there is no reference to measure drift against.")
    max_offending_keys: int = Field(10, ge=0, le=1000, description="Row keys listed per failed check.")
    plot_columns: int = Field(6, ge=0, le=24, description="Worst-drift columns drawn in the PNG.")

    def levels(self, column: str, kind: Literal["psi", "ks"], contract_levels: Levels | None) -> Levels:
        """Effective levels of one column: policy per-column (else default), tightened by the contract."""
        per_column = self.columns.get(column)
        base = getattr(per_column, kind, None) if per_column else None
        return (base or getattr(self, kind)).stricter(contract_levels)


# --------------------------------------------------------------------------- contract

ColumnType = Literal["int", "float", "number", "string", "bool", "timestamp", "date", "category"]


class ColumnContract(BaseModel):
    """What one column must look like."""

    model_config = ConfigDict(extra="forbid")

    type: ColumnType | None = None
    nullable: bool = True
    max_null_rate: float | None = Field(None, ge=0, le=1)
    min: float | None = None
    max: float | None = None
    categories: list[str | int | bool] | None = None
    drift: bool = True
    psi: Levels | None = None
    ks: Levels | None = None

    @model_validator(mode="after")
    def _range(self) -> ColumnContract:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    @property
    def null_limit(self) -> float | None:
        """The highest null rate allowed (0 when not nullable), or None when unconstrained."""
        if not self.nullable:
            return 0.0
        return self.max_null_rate


class LabelContract(BaseModel):
    """The label column: no nulls, values from a set, and no class rarer than a share."""

    model_config = ConfigDict(extra="forbid")

    column: str
    values: list[str | int | bool] | None = None
    min_class_share: float | None = Field(None, gt=0, lt=1)


class FreshnessContract(BaseModel):
    """The event-time column's newest row must be younger than ``max_age``."""

    model_config = ConfigDict(extra="forbid")

    column: str
    max_age: Duration

    @field_validator("max_age")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be a positive duration")
        return value


class DatasetContract(BaseModel):
    """The ``contract`` of one dataset in a manifest."""

    model_config = ConfigDict(extra="forbid")

    format: FileFormat | None = None
    columns: dict[str, ColumnContract] = Field(default_factory=dict)
    key: list[str] = Field(default_factory=list, description="Columns whose combination must be unique.")
    label: LabelContract | None = None
    event_time: FreshnessContract | None = None
    min_rows: int = Field(1, ge=0)
    strict_columns: bool = Field(False, description="Columns not listed are an error.")
