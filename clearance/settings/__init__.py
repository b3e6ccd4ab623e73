"""Runtime settings: one root, :class:`Settings`, with a section per integration.

Modelled on Prefect's settings: the root reads ``CLEARANCE_*`` (configs, object store, Prefect,
sign-off polling) and each section reads its own prefix — ``settings.slack`` from
``CLEARANCE_SLACK_*``, ``settings.jira`` from ``CLEARANCE_JIRA_*`` — from the environment or a
``.env`` file. Secrets are :class:`pydantic.SecretStr`, so they never appear in ``repr``, logs,
Prefect artifacts or error messages.

This module is pure (no Prefect, no boto3): filling unset secrets from Prefect Secret blocks
is a side effect and lives in :mod:`tasks.secret_blocks`.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from clearance.core.types import Duration
from clearance.settings.jira import JiraSettings
from clearance.settings.slack import SlackSettings

__all__ = ["JiraSettings", "Settings", "SlackSettings", "get_settings"]


# One entry of CLEARANCE_LOAD_TEST_ALLOWED_HOSTS: host, host:port, [ipv6]:port, *.suffix, sagemaker:<endpoint>.
_ALLOWED_HOST = re.compile(r"sagemaker:[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"
                           r"|(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})(:\d{1,5})?"
                           r"|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


class Settings(BaseSettings):
    """Where clearance finds its configs, its object store, its Prefect server and its channels."""

    model_config = SettingsConfigDict(env_prefix="CLEARANCE_", env_file=".env", extra="ignore")

    config_dir: Path = Field(Path("configs"), description="Folder with policies/, models/ and principals.yaml.")
    config_max_file_bytes: int = Field(
        1024 * 1024, gt=0, description="Largest config file read (bytes; default 1 MiB): a bigger one is refused "
                                       "before it is parsed, naming the file and its size.")
    config_max_dir_bytes: int = Field(
        16 * 1024 * 1024, gt=0, description="Largest total of the config files of the config dir (bytes; default "
                                            "16 MiB): over it nothing is parsed.")
    config_max_files: int = Field(
        1000, gt=0, description="Most config files (policies, models, principals, waivers) in the config dir: over "
                                "it nothing is parsed.")
    prefect_api_url: str | None = Field(
        None, description="Prefect API URL; when unset, Prefect's own PREFECT_API_URL applies."
    )
    s3_endpoint_url: str | None = Field(None, description="S3 endpoint; unset means AWS.")
    s3_region: str = "us-east-1"
    s3_access_key_id: SecretStr | None = None
    s3_secret_access_key: SecretStr | None = None
    bucket: str = Field("clearance", description="Bucket holding candidates/, production/ and evidence/.")
    s3_retry_seconds: float = Field(
        30.0, ge=0, description="How long one object-store operation keeps retrying connection errors, timeouts, "
                                "500/502/503/504 and SlowDown (exponential backoff with jitter) before it fails "
                                "naming the endpoint; 0: one attempt. A SeaweedFS restart takes about 3 s.")
    s3_probe_ttl_seconds: float = Field(
        900.0, gt=0, description="How long a passed check that the store enforces If-None-Match / If-Match is "
                                 "trusted in one process before it is made again (per endpoint and bucket).")
    approval_poll_seconds: float = Field(
        0.5, gt=0, description="How often a paused direct run checks for a resume (half of it is the mean delay)."
    )
    crash_after_seconds: float = Field(
        120, gt=0, description="A running promotion with no sign of life (Prefect flow-run heartbeat) for longer "
                               "than this is set Crashed by the sweep, its ledger closed and its unfinished uploads "
                               "aborted. Never less than 1.5 heartbeat intervals (PREFECT_FLOWS_HEARTBEAT_FREQUENCY, "
                               "Prefect's default 180 s; 30-60 s lets this bound apply).")
    pending_after_seconds: float = Field(
        120, gt=0, description="A promotion, rollback or re-certification run left Pending this long (a worker "
                               "took it, then died before its process ran it) is scheduled again by the sweep, so "
                               "another worker of the pool starts it.")
    service_key_file: Path | None = Field(
        None, description="The clearance service's private SSH key (ed25519, OpenSSH or PEM format): it signs the "
                          "decisions it verified and the ledger entries. Its public key goes in principals.yaml "
                          "service_keys.")
    service_kms_key_id: str | None = Field(
        None, description="Instead of service_key_file: an AWS KMS asymmetric key (key spec ECC_NIST_P256, "
                          "ECDSA_SHA_256; key id, alias or ARN) that signs as the clearance service. Its public key "
                          "(ecdsa-sha2-nistp256) goes in principals.yaml service_keys; credentials: boto3's chain.")
    kms_endpoint_url: str | None = Field(None, description="KMS endpoint (unset: AWS; region from a key ARN, else "
                                                           "s3_region).")
    witness_bucket: str | None = Field(
        None, description="A second bucket, writable only with the witness credentials, that keeps every ledger "
                          "head (ledger-heads/<model>/<seq>.json); clearance audit verify reads it.")
    witness_s3_endpoint_url: str | None = Field(None, description="The witness bucket's S3 endpoint (unset: "
                                                                  "s3_endpoint_url).")
    witness_s3_access_key_id: SecretStr | None = None
    witness_s3_secret_access_key: SecretStr | None = None
    ssh_key: Path | None = Field(
        None, description="Your SSH key for signing CLI decisions when --key is not given (private key file, or "
                          "its .pub with the key in ssh-agent).")
    advisory_db: Path | None = Field(
        None, description="The OSV advisory database the security_scan gate checks a model's pinned requirements "
                          "against, read offline: a folder of OSV *.json records or the zip OSV publishes per "
                          "ecosystem (https://osv-vulnerabilities.storage.googleapis.com/PyPI/all.zip). Unset: "
                          "the dependency check is skipped, saying how to set it.")
    advisory_max_age: Duration = Field(
        timedelta(days=7), gt=timedelta(0),
        description="An advisory database older than this (its newest record's modified time, else the file's "
                    "mtime) makes the dependency check warn; its age is always in the evidence. 30m, 24h, 7d, "
                    "ISO 8601 or seconds.")
    load_test_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="The only targets the load_test gate may load: each a host or host:port (exact, "
                    "case-insensitive), a *.example.com suffix pattern, or sagemaker:<endpoint_name> for a SageMaker "
                    "endpoint. A JSON list or a comma-separated string. Empty (the default): every target is "
                    "refused, so a manifest cannot point the load generator at someone else's service.")
    # Sections: each reads its own env prefix when the root is built.
    slack: SlackSettings = Field(default_factory=SlackSettings, description="CLEARANCE_SLACK_*")
    jira: JiraSettings = Field(default_factory=JiraSettings, description="CLEARANCE_JIRA_*")

    @field_validator("load_test_allowed_hosts", mode="before")
    @classmethod
    def _hosts_list(cls, value: Any) -> Any:
        """``'["a", "b"]'`` (JSON, as pydantic-settings reads lists) or ``'a, b'`` (comma-separated) → a list;
        entries trimmed, empty ones dropped."""
        if isinstance(value, str):
            text = value.strip()
            try:
                value = json.loads(text) if text.startswith("[") else text.split(",")
            except json.JSONDecodeError:  # not JSON ("[::1]:8081"): comma-separated; each entry is checked
                value = text.split(",")
        if isinstance(value, list | tuple):
            return [item.strip() if isinstance(item, str) else item for item in value
                    if not (isinstance(item, str) and not item.strip())]
        return value

    @field_validator("load_test_allowed_hosts")
    @classmethod
    def _hosts_shape(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not _ALLOWED_HOST.fullmatch(entry):
                raise ValueError(f"{entry!r} is not a host, host:port, *.domain or sagemaker:<endpoint_name> "
                                 f"(no scheme or path: e.g. 127.0.0.1:8081, models.example.com, *.example.com)")
        return value


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` after changing env)."""
    return Settings()
