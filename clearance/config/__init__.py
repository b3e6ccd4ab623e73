"""Configuration: the schema (pydantic models), loading and validating the YAML, and the tightening rules.

Typical use::

    from clearance.config import load_config_dir
    configs = load_config_dir("configs")          # ConfigError lists every problem
    policy = configs.effective_policy("churn-classifier")
"""

from clearance.config.config_set import ConfigSet, load_config_dir
from clearance.config.files import (
    load_manifest,
    load_policy,
    load_prices,
    load_principals,
    load_regulatory,
    load_waivers,
)
from clearance.config.issues import ConfigError, ConfigIssue
from clearance.config.jsonschema_export import write_schemas
from clearance.config.kinds import validate_paths
from clearance.config.limits import ConfigLimits
from clearance.config.schema import (
    ApprovalPolicy,
    ArtifactRef,
    Channel,
    DatasetRef,
    GateMode,
    GateSpec,
    Kpi,
    ModelManifest,
    ModelVersion,
    OnWarn,
    Policy,
    PolicyOverrides,
    PriceTable,
    Principal,
    Principals,
    PromotionTarget,
    RoleQuorum,
    SageMakerEndpoint,
    Serving,
    ServingBody,
    TimeoutOutcome,
    Waivers,
)
from clearance.config.tighten import effective_policy

__all__ = [
    "ApprovalPolicy",
    "ArtifactRef",
    "Channel",
    "ConfigError",
    "ConfigIssue",
    "ConfigLimits",
    "ConfigSet",
    "DatasetRef",
    "GateMode",
    "GateSpec",
    "Kpi",
    "ModelManifest",
    "ModelVersion",
    "OnWarn",
    "Policy",
    "PolicyOverrides",
    "PriceTable",
    "Principal",
    "Principals",
    "PromotionTarget",
    "RoleQuorum",
    "SageMakerEndpoint",
    "Serving",
    "ServingBody",
    "TimeoutOutcome",
    "Waivers",
    "effective_policy",
    "load_config_dir",
    "load_manifest",
    "load_policy",
    "load_prices",
    "load_principals",
    "load_regulatory",
    "load_waivers",
    "validate_paths",
    "write_schemas",
]
