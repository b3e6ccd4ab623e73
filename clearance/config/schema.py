"""The configuration schema: model manifests, risk-tier policies, principals and waivers.

These pydantic models are the single source of truth for the YAML under ``configs/``
and for the JSON Schemas that ``clearance schema`` writes for editors. Every model
forbids unknown keys: a typo in a policy must be an error, never silently ignored.
"""

from __future__ import annotations

import re
from datetime import date, timedelta
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from clearance.core.types import IDENTIFIER_MAX_LENGTH, IDENTIFIER_PATTERN, Duration, Identifier, Sha256, StrictModel
from clearance.identity.sshsig import PublicKey
from gates.compliance_review.model_card import SECTIONS
from gates.waivers import Waiver


class Channel(str, Enum):
    """Where a human decision can come from."""

    SLACK = "slack"
    JIRA = "jira"
    PREFECT_UI = "prefect-ui"
    CLI = "cli"


class Assurance(str, Enum):
    """How a decision's person was established.

    ``verified``: a signature clearance checked against a key or platform id pinned to that principal
    (an SSH signature on the CLI; Slack's signed request from the pinned user id in the configured
    workspace; Jira's signed webhook or poll from the pinned account on the run's own ticket).
    ``claimed``: a typed name, an OS login, or an e-mail lookup.
    """

    CLAIMED = "claimed"
    VERIFIED = "verified"

    def at_least(self, other: Assurance) -> bool:
        """Whether this assurance satisfies a requirement of ``other``."""
        return self is Assurance.VERIFIED or other is Assurance.CLAIMED


class GateMode(str, Enum):
    """A blocking gate stops the promotion when it fails; an advisory one only reports."""

    BLOCKING = "blocking"
    ADVISORY = "advisory"


class OnWarn(str, Enum):
    """What a ``warn`` result means for the sign-off."""

    CONTINUE = "continue"
    REQUIRE_APPROVAL = "require_approval"


class OnFailure(str, Enum):
    """What a failed re-certification does (each also alerts: Slack in the model's channel, a Jira ticket)."""

    NOTIFY = "notify"      # alert only; the certification runs until it expires
    LAPSE = "lapse"        # alert, and the certification is marked lapsed at once
    ROLLBACK = "rollback"  # alert, lapse, and roll back to the last certified version whose copy verifies


class TimeoutOutcome(str, Enum):
    """What happens when the approval deadline passes without a decision."""

    REJECT = "reject"
    APPROVE = "approve"


# --------------------------------------------------------------------------- shared

RegulatoryTag = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, max_length=IDENTIFIER_MAX_LENGTH,
                                     description="A tag of configs/regulatory.yaml, e.g. gdpr.")]


DatasetRole = Literal["train", "eval", "reference", "production_sample", "predictions"]


def _unique(value: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    for item in value:
        if item in seen:
            raise ValueError(f"lists {what} {item!r} twice")
        seen.add(item)
    return value


# --------------------------------------------------------------------------- policy


class GateSpec(StrictModel):
    """One gate in a policy: which registered gate, how strict, with what config."""

    id: Identifier = Field(description="Registered gate id, e.g. artifact_integrity.")
    mode: GateMode = GateMode.BLOCKING
    config: dict[str, Any] = Field(default_factory=dict, description="Validated by the gate's own config model.")


class RoleQuorum(StrictModel):
    """How many distinct people holding a role must approve."""

    min: int = Field(1, ge=1, description="Minimum number of distinct approvers with this role.")


def _cron(value: str) -> str:
    """A five-field cron expression (minute hour day-of-month month day-of-week), as Prefect's CronSchedule takes."""
    from datetime import datetime

    from cronsim import CronSim, CronSimError

    if len(value.split()) != 5:
        raise ValueError(f"cron {value!r} must have five fields: minute hour day-of-month month day-of-week")
    try:
        CronSim(value, datetime(2026, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"cron {value!r}: {exc}") from None
    return value


Cron = Annotated[str, Field(min_length=1, max_length=200, description="Cron expression, e.g. '0 6 * * 1' "
                                                                      "(06:00 every Monday)."),
                 AfterValidator(_cron)]


def _zone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. UTC, Europe/Berlin)") from None
    return value


TimeZone = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_zone)]


class Reminders(StrictModel):
    """Nudging the people a sign-off still needs (driven by the deadline sweep, each one recorded).

    ``after`` the request opened, the approvers still needed are mentioned in the Slack thread and a
    Jira comment names them (again every ``every``, when set); ``escalate_after`` it opened, the
    ``escalate_to`` principals are told who has not answered. The deadline then applies as before.
    """

    after: Duration | None = Field(None, description="First reminder this long after the request opened.")
    every: Duration | None = Field(None, description="Repeat the reminder this often (unset: once).")
    escalate_after: Duration | None = Field(None, description="Escalate this long after the request opened.")
    escalate_to: list[Identifier] = Field(default_factory=list, max_length=50,
                                          description="Principal ids of the backup group told at escalation.")

    @model_validator(mode="after")
    def _consistent(self) -> Reminders:
        for name in ("after", "every", "escalate_after"):
            value = getattr(self, name)
            if value is not None and value.total_seconds() <= 0:
                raise ValueError(f"{name} must be a positive duration")
        if self.every is not None and self.after is None:
            raise ValueError("every needs after (when the first reminder goes)")
        if self.escalate_after is not None and not self.escalate_to:
            raise ValueError("escalate_after needs escalate_to (whom to escalate to)")
        if self.escalate_to and self.escalate_after is None:
            raise ValueError("escalate_to needs escalate_after (when to escalate)")
        return self


class ApprovalPolicy(StrictModel):
    """Who must sign off, through which channels, and by when."""

    roles: dict[Identifier, RoleQuorum] = Field(
        default_factory=dict, description="Role → quorum. Empty means no human sign-off."
    )
    channels: list[Channel] = Field(default_factory=lambda: [Channel.CLI, Channel.PREFECT_UI])
    timeout: Duration = Field(timedelta(hours=24), description="Deadline after the request opens.")
    timeout_outcome: TimeoutOutcome = TimeoutOutcome.REJECT
    assurance: Assurance = Field(
        Assurance.CLAIMED, description="Which decisions count: 'verified' (signed, pinned identities only) or "
                                       "'claimed' (also typed names and OS logins). A manifest may only raise it.",
        json_schema_extra={"tighten": "verified is stricter than claimed"})
    reminders: Reminders = Field(default_factory=Reminders,
                                 description="Reminders to the people still needed, then escalation.")

    @field_validator("timeout")
    @classmethod
    def _positive_timeout(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be a positive duration")
        return value

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, value: list[Channel]) -> list[Channel]:
        if len(set(value)) != len(value):
            raise ValueError("lists a channel twice")
        return value


class PromotionTarget(StrictModel):
    """Where a cleared model lands in the object store."""

    prefix: str = Field("production", pattern=r"^[A-Za-z0-9][A-Za-z0-9_./-]*[A-Za-z0-9]$")
    downgrades: Literal["refuse", "explicit"] = Field(
        "explicit", description="A promotion of a version lower than the live one (PEP 440 order): 'refuse' it "
                                "(go back with `clearance rollback`, which checks the old copy), or allow it only "
                                "with an explicit, recorded --allow-downgrade ('explicit').")


class Notify(StrictModel):
    """Where people follow a promotion: its Slack channel and its Jira project and issue type.

    Set in a tier's policy, and per model in its manifest (the manifest's values win). Unset values
    fall back to the settings (``CLEARANCE_SLACK_*_CHANNEL(S)``, ``CLEARANCE_JIRA_PROJECT``/``_ISSUE_TYPE``).
    """

    slack_channel: str | None = Field(None, pattern=r"^[CG][A-Z0-9]{8,}$",
                                      description="Slack channel id (C… or G…) of the promotion threads.")
    jira_project: str | None = Field(None, pattern=r"^[A-Z][A-Z0-9_]{1,9}$",
                                     description="Jira project key of the promotion tickets.")
    jira_issue_type: str | None = Field(None, min_length=1, description="Jira issue type name of the tickets.")

    def over(self, base: Notify) -> Notify:
        """These values where set, ``base``'s elsewhere."""
        return Notify(**(base.model_dump(exclude_none=True) | self.model_dump(exclude_none=True)))


class Recertification(StrictModel):
    """Re-certifying a production model: when, which gates on what data, how long a pass holds, what a fail does.

    ``clearance deploy`` gives each production model a ``recertify-model/<model>`` deployment on
    ``schedule`` (a manifest may set its own). A run re-checks the live version (``CURRENT.json``) with
    ``gates`` (their own config: e.g. data_check of the manifest's latest production sample against the
    training reference, security_scan with today's advisories, waivers as of now, a load test); a pass
    extends the certification to ``validity`` from then, a fail applies ``on_failure``, and a
    certification ``validity`` past its last pass with none since lapses (alert and ticket).
    """

    schedule: Cron = Field("0 6 * * 1", description="When to re-certify (cron, in `timezone`).")
    timezone: TimeZone = Field("UTC", description="IANA time zone of the schedule.")
    validity: Duration = Field(timedelta(days=90), description="How long a promotion or a passed re-certification "
                                                               "certifies the version.")
    gates: list[GateSpec] = Field(min_length=1, description="Gates of a re-certification, in order.")
    on_failure: OnFailure = OnFailure.NOTIFY

    @field_validator("validity")
    @classmethod
    def _positive_validity(cls, value: timedelta) -> timedelta:
        if value.total_seconds() <= 0:
            raise ValueError("must be a positive duration")
        return value

    @field_validator("gates")
    @classmethod
    def _unique_gates(cls, value: list[GateSpec]) -> list[GateSpec]:
        return _unique_gate_specs(value)


class RollbackPolicy(StrictModel):
    """Who signs off a rollback (``clearance rollback``): often lighter than a promotion, none in an emergency.

    ``approvals`` unset: the tier's own sign-off. ``emergency_roles``: an initiator who holds one of
    them, and signed the start (verified), rolls back without a sign-off. A rollback by a failed
    re-certification (``on_failure: rollback``) is authorised by this policy and the failed run's
    evidence, and takes the same path without waiting for people.
    """

    approvals: ApprovalPolicy | None = Field(None, description="The rollback sign-off (unset: the tier's).")
    emergency_roles: list[Identifier] = Field(default_factory=list, max_length=20,
                                              description="Roles whose verified holders roll back without sign-off.")


def _unique_gate_specs(value: list[GateSpec]) -> list[GateSpec]:
    seen: set[str] = set()
    for spec in value:
        if spec.id in seen:
            raise ValueError(f"gate {spec.id!r} is listed twice")
        seen.add(spec.id)
    return value


class Policy(StrictModel):
    """The rules for one risk tier (``configs/policies/<tier>.yaml``)."""

    tier: Identifier
    description: str = ""
    gates: list[GateSpec] = Field(min_length=1)
    on_warn: OnWarn = OnWarn.REQUIRE_APPROVAL
    approvals: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    promotion: PromotionTarget = Field(default_factory=PromotionTarget)
    notify: Notify = Field(default_factory=Notify, description="Slack channel and Jira project of this tier.")
    regulatory_tags: list[RegulatoryTag] = Field(
        default_factory=list, max_length=32,
        description="Regulatory tags of every model of this tier (e.g. gdpr, eu-ai-act-high-risk, sr-26-02, "
                    "hipaa): each selects the controls of configs/regulatory.yaml that the compliance_review gate "
                    "requires evidence for, together with the manifest's and the gate config's tags.")
    recertification: Recertification | None = Field(
        None, description="Scheduled re-certification of production models of this tier (unset: none).")
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy, description="Who signs off a rollback.")

    @field_validator("gates")
    @classmethod
    def _unique_gates(cls, value: list[GateSpec]) -> list[GateSpec]:
        return _unique_gate_specs(value)

    @field_validator("regulatory_tags")
    @classmethod
    def _unique_tags(cls, value: list[str]) -> list[str]:
        return _unique(value, "tag")

    def gate(self, gate_id: str) -> GateSpec | None:
        """The spec of ``gate_id`` in this policy, if it runs."""
        return next((spec for spec in self.gates if spec.id == gate_id), None)


# --------------------------------------------------------------------------- manifest


class ArtifactRef(StrictModel):
    """One file of a model version, pinned by digest."""

    key: str = Field(description="Object key in the clearance bucket, e.g. candidates/churn/1.0.0/model.joblib.")
    sha256: Sha256
    size: int | None = Field(None, ge=0, description="Bytes; checked when given.")
    format: str | None = Field(None, description="Declared format (joblib, onnx, safetensors…); detected when unset.")


class DatasetRef(StrictModel):
    """A dataset the model was trained or evaluated on, pinned by digest."""

    role: DatasetRole = Field(
        description="train, eval, reference, production_sample, or predictions: the candidate's predictions on "
                    "the evaluation set (label, prediction, score and protected attributes, named by the "
                    "version's evaluation), read by the compliance_review gate for fairness and the business case.")
    uri: str = Field(description="s3://bucket/key, an object key in the clearance bucket, or a local path.")
    sha256: Sha256 | None = None
    contract: dict[str, Any] = Field(default_factory=dict, description="Checked by the data_check gate.")


class Kpi(StrictModel):
    """The business measure the model exists to move (projects without one die after the POC)."""

    metric: str
    baseline: float
    target: float
    owner: str | None = Field(None, min_length=1, max_length=200,
                              description="Who answers for the KPI (principal id or name).")
    review_date: date | None = Field(None, description="When the KPI is next reviewed against its target (ISO date, "
                                                       "e.g. 2027-06-30); a past date fails compliance_review.")


class Lineage(StrictModel):
    """Where a version came from: the training code's revision and the training run.

    Plain text here: the compliance_review gate judges the formats (and names what is wrong).
    """

    code_revision: str | None = Field(None, max_length=200,
                                      description="Full git commit (40 lower-case hex) of the training code.")
    training_run: str | None = Field(None, max_length=500,
                                     description="Id of the training run (an MLflow run id, a Prefect flow run, …).")


class Evaluation(StrictModel):
    """How to read the version's ``predictions`` dataset: which columns hold what."""

    label: str = Field(min_length=1, max_length=200, description="Column of the true label (0/1).")
    prediction: str = Field(min_length=1, max_length=200, description="Column of the predicted label (0/1).")
    score: str | None = Field(None, min_length=1, max_length=200,
                              description="Column of the predicted probability in [0, 1] (for AUC, calibration).")
    threshold: float = Field(0.5, ge=0, le=1, description="Decision threshold the prediction column was cut at.")
    protected_attributes: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=32,
        description="Columns of protected attributes (gender, age band…) that fairness is measured across.")
    intersections: list[Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]],
                                  Field(min_length=2, max_length=2)]] = Field(
        default_factory=list, max_length=32,
        description="Pairs of protected attributes whose intersections are measured too, e.g. [[gender, age_band]].")

    @field_validator("protected_attributes")
    @classmethod
    def _unique_attributes(cls, value: list[str]) -> list[str]:
        return _unique(value, "attribute")

    @model_validator(mode="after")
    def _pairs_of_attributes(self) -> Evaluation:
        for pair in self.intersections:
            if pair[0] == pair[1]:
                raise ValueError(f"intersection {pair} pairs an attribute with itself")
            unknown = [name for name in pair if name not in self.protected_attributes]
            if unknown:
                raise ValueError(f"intersection {pair} names {unknown[0]!r}, which is not in protected_attributes")
        return self


class ModelVersion(StrictModel):
    """What exactly is being promoted: artifacts and datasets of one version."""

    artifacts: list[ArtifactRef] = Field(min_length=1)
    datasets: list[DatasetRef] = Field(default_factory=list)
    requirements: str | None = Field(
        None, min_length=1,
        description="Object key of the model's pinned requirements file in the clearance bucket (usually next to "
                    "the artifacts, under candidates/<model>/<version>/); the security_scan gate checks it "
                    "against the advisory database (CLEARANCE_ADVISORY_DB).")
    notes: str = ""
    lineage: Lineage | None = Field(None, description="Training code revision and training run (compliance_review).")
    model_card: str | None = Field(
        None, min_length=1, max_length=1024,
        description="Object key of a Markdown model card in the clearance bucket (usually candidates/<model>/"
                    "<version>/MODEL_CARD.md), read when the manifest has no model_card section.")
    evaluation: Evaluation | None = Field(
        None, description="Columns of the predictions dataset: label, prediction, score, protected attributes.")


class ModelRecertification(StrictModel):
    """A model's own re-certification settings (over its tier's ``recertification``)."""

    schedule: Cron | None = Field(None, description="Its own cron schedule (unset: the tier's).")
    timezone: TimeZone | None = Field(None, description="IANA time zone of its schedule (unset: the tier's).")
    production_sample: DatasetRef | None = Field(
        None, description="Where the latest production sample is (role production_sample; a key ending in / is a "
                          "folder read whole): data_check of a re-certification compares it with the live version's "
                          "reference or train data. Not pinned: it is read fresh at every run.")

    @field_validator("production_sample")
    @classmethod
    def _sample_role(cls, value: DatasetRef | None) -> DatasetRef | None:
        if value is not None and value.role != "production_sample":
            raise ValueError(f"must have role production_sample, not {value.role}")
        return value


class PolicyOverrides(StrictModel):
    """Ways a manifest may tighten its tier's policy (never loosen: checked by ``tighten``)."""

    gates: list[GateSpec] = Field(default_factory=list, description="Extra gates, or stricter config of policy gates.")
    on_warn: OnWarn | None = None
    approvals: ApprovalPolicy | None = None


class Operations(StrictModel):
    """How the model is run once promoted (integration plan, change management, MLOps foundation)."""

    consumers: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=64, description="Systems or teams that call the model.")
    runbook: str | None = Field(None, min_length=1, max_length=1000, description="URL or path of the runbook.")
    on_call: str | None = Field(None, min_length=1, max_length=200, description="Who is paged (rotation or person).")
    monitoring: str | None = Field(None, min_length=1, max_length=1000,
                                   description="URL of the monitoring dashboard or plan.")
    ci: str | None = Field(None, min_length=1, max_length=1000,
                           description="URL of the CI pipeline that builds and tests the model.")
    cost_model: str | None = Field(None, min_length=1, max_length=2000,
                                   description="The serving and retraining cost estimate (text or URL).")


class PersonalDataDeclaration(StrictModel):
    """A column that holds personal data by design, and why that is lawful."""

    lawful_basis: str | None = Field(
        None, min_length=1, max_length=500,
        description="GDPR art. 6 basis: consent, contract, legal_obligation, vital_interests, public_task or "
                    "legitimate_interests (with a reference to the assessment).")
    retention: str | None = Field(None, min_length=1, max_length=500,
                                  description="How long the data is kept, e.g. '24 months'.")


# An HTTP header name (RFC 9110 token) and a literal value (no CR/LF: a value cannot smuggle in another header).
HeaderName = Annotated[str, Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", min_length=1, max_length=128)]
HeaderValue = Annotated[str, Field(pattern=r"^[^\r\n\x00]*$", max_length=4096)]
# A Prefect Secret block name (lower-case letters, digits and dashes, as Prefect requires).
SecretBlockName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=100)]
InstanceType = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                                    description="An instance type, e.g. ml.m5.large (SageMaker) or c5.large (EC2).")]


class ServingBody(StrictModel):
    """How the load_test gate builds request bodies: rows sampled (deterministically) from a dataset of the
    version, ``rows_per_request`` rows per body."""

    dataset_role: DatasetRole = Field("eval", description="Role of the version's dataset the rows come from.")
    columns: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, min_length=1, max_length=1000,
        description="Feature columns, in the order the model expects them; default: every column but the label "
                    "(the version's evaluation.label).")
    format: Literal["instances", "records"] = Field(
        "instances", description='instances: {"instances": [[v, ...], ...]} (values in column order); '
                                 'records: {"records": [{"column": v, ...}, ...]}.')
    rows_per_request: int = Field(1, ge=1, le=1000, description="Rows in each request body.")
    sample: int = Field(1000, ge=1, le=100_000, description="Rows sampled (deterministically) into the pool of "
                                                            "bodies the requests cycle through.")

    @field_validator("columns")
    @classmethod
    def _unique_columns(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique(value, "column")


class SageMakerEndpoint(StrictModel):
    """An AWS SageMaker real-time endpoint, invoked through ``sagemaker-runtime`` ``InvokeEndpoint``."""

    endpoint_name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$",
                               description="The SageMaker endpoint name (as AWS allows: letters, digits, dashes).")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$", description="AWS region, e.g. eu-west-1.")
    content_type: str = Field("application/json", pattern=r"^[A-Za-z0-9!#$&^_.+-]+/[A-Za-z0-9!#$&^_.+-]+"
                                                          r"(\s*;\s*[^\r\n\x00;]+)*$", max_length=256,
                              description="ContentType of each InvokeEndpoint request.")


class Serving(StrictModel):
    """How the model is served, for the load_test and cost gates: the request shape, the target, the prices.

    The target is ``sagemaker`` when that section is given, else the manifest's ``serving_endpoint`` (an
    HTTP(S) URL). A manifest may have both (e.g. the URL for humans, the endpoint for the gate): ``sagemaker``
    wins. Either way the target must be allowed by ``CLEARANCE_LOAD_TEST_ALLOWED_HOSTS``.
    """

    method: Literal["GET", "POST", "PUT"] = Field("POST", description="HTTP method of each request (HTTP target).")
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, max_length=32, description="Literal headers of each request (no secrets here: "
                                                         "see secret_headers).")
    secret_headers: dict[HeaderName, SecretBlockName] = Field(
        default_factory=dict, max_length=16,
        description="Header → name of the Prefect Secret block holding its value (e.g. Authorization: "
                    "churn-api-token). Resolved by the load test task; the value is never logged.")
    body: ServingBody = Field(default_factory=ServingBody, description="How request bodies are sampled.")
    sagemaker: SageMakerEndpoint | None = Field(
        None, description="Load an AWS SageMaker endpoint instead of serving_endpoint (wins over it when both "
                          "are given).")
    expected_traffic_rps: float | None = Field(
        None, gt=0, allow_inf_nan=False,
        description="Mean requests/s in production: the cost gate's monthly cost is at this rate.")
    instance_type: InstanceType | None = Field(
        None, description="Instance type behind the endpoint, looked up in configs/prices.yaml unless "
                          "instance_price_per_hour is given.")
    instance_price_per_hour: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="USD per instance-hour; overrides the price table.")
    instances: int = Field(1, ge=1, le=10_000, description="Instances behind the endpoint when it is load-tested.")

    @model_validator(mode="after")
    def _headers_once(self) -> Serving:
        seen: dict[str, str] = {}
        for where, names in (("headers", self.headers), ("secret_headers", self.secret_headers)):
            for name in names:
                other = seen.get(name.lower())
                if other is not None:
                    raise ValueError(f"header {name!r} is set twice (in {other} and {where}; header names are "
                                     f"case-insensitive)")
                seen[name.lower()] = where
        return self


class PriceTable(StrictModel):
    """``configs/prices.yaml`` (optional): instance type → USD per instance-hour, for the cost gate.

    A manifest's ``serving.instance_price_per_hour`` overrides it. List prices change: say when they were read.
    """

    prices: dict[InstanceType, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        max_length=10_000, description="Instance type (e.g. ml.m5.large) → on-demand USD per instance-hour.")
    as_of: date | None = Field(None, description="When the prices were read (ISO date).")
    source: str | None = Field(None, min_length=1, max_length=1000, description="Where the prices were read.")


ModelCardSection = Literal[
    "intended_use", "out_of_scope", "training_data", "evaluation", "limitations",
    "ethical_considerations", "owner_contact", "risk_tier", "regulatory_tags",
]
assert set(ModelCardSection.__args__) == set(SECTIONS)  # type: ignore[attr-defined]  # one list of sections

ModelCardText = Annotated[str, Field(max_length=20_000)]


class ModelManifest(StrictModel):
    """A model and its versions (``configs/models/<name>.yaml``)."""

    name: Identifier
    owner: str = Field(description="Principal id of the accountable owner.")
    authors: list[str] = Field(default_factory=list, description="Principal ids; they may not approve their own model.")
    risk_tier: Identifier
    intended_use: str = ""
    kpi: Kpi | None = None
    serving_endpoint: str | None = Field(
        None, description="HTTP(S) URL the model is served at (the load_test gate's target unless serving.sagemaker "
                          "is given).")
    serving: Serving | None = Field(
        None, description="Request shape, target, expected traffic and prices for the load_test and cost gates.")
    versions: dict[str, ModelVersion] = Field(min_length=1)
    policy_overrides: PolicyOverrides = Field(default_factory=PolicyOverrides)
    notify: Notify = Field(default_factory=Notify, description="This model's Slack channel / Jira project "
                                                               "(over the tier's).")
    sponsor: str | None = Field(None, min_length=1, max_length=200,
                                description="Executive sponsor (name and title) who wants the model in production.")
    regulatory_tags: list[RegulatoryTag] = Field(
        default_factory=list, max_length=32,
        description="Regulatory tags of this model (added to its tier's): each selects controls of "
                    "configs/regulatory.yaml that the compliance_review gate requires evidence for.")
    operations: Operations | None = Field(None, description="Consumers, runbook, on-call, monitoring, CI.")
    personal_data: dict[Annotated[str, Field(min_length=1, max_length=200)], PersonalDataDeclaration] = Field(
        default_factory=dict, max_length=500,
        description="Column → lawful basis and retention, for columns that hold personal data by design (the same "
                    "column name in every dataset). Undeclared personal data fails compliance_review.")
    model_card: dict[ModelCardSection, ModelCardText | list[ModelCardText]] | None = Field(
        None, max_length=len(SECTIONS),
        description="Model card: section → text (or list of paragraphs). Sections: intended_use, out_of_scope, "
                    "training_data, evaluation, limitations, ethical_considerations, owner_contact, risk_tier, "
                    "regulatory_tags. Else the version's model_card Markdown file is read.")
    recertification: ModelRecertification | None = Field(
        None, description="This model's re-certification schedule and production sample.")

    @field_validator("regulatory_tags")
    @classmethod
    def _unique_tags(cls, value: list[str]) -> list[str]:
        return _unique(value, "tag")

    @field_validator("versions")
    @classmethod
    def _version_names(cls, value: dict[str, ModelVersion]) -> dict[str, ModelVersion]:
        for version in value:
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", version):
                raise ValueError(f"version {version!r} must be 1-64 letters, digits, '.', '_', '+' or '-'")
        return value


# --------------------------------------------------------------------------- principals


class Principal(StrictModel):
    """A person who can initiate or approve, with their identity in every channel."""

    id: Identifier
    name: str = ""
    email: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+$")
    slack_id: str | None = Field(None, pattern=r"^[UW][A-Z0-9]{2,}$")
    jira_account_id: str | None = None
    local_users: list[str] = Field(default_factory=list, description="OS user names that are this person on the CLI "
                                                                    "(a claimed identity).")
    ssh_keys: list[str] = Field(default_factory=list, description="SSH public keys ('ssh-ed25519 AAAA…') whose "
                                                                  "signatures are this person's (verified CLI).")
    roles: list[Identifier] = Field(default_factory=list)

    @field_validator("ssh_keys")
    @classmethod
    def _keys_parse(cls, value: list[str]) -> list[str]:
        for line in value:
            PublicKey.parse(line)  # SignatureError (a ValueError) names the problem
        return value

    def public_keys(self) -> list[PublicKey]:
        """This person's SSH keys."""
        return [PublicKey.parse(line) for line in self.ssh_keys]


class Principals(StrictModel):
    """``configs/principals.yaml``."""

    principals: list[Principal]
    service_keys: list[str] = Field(
        default_factory=list, description="SSH public keys of the clearance service: its signatures attest the "
                                          "decisions it verified (Slack, Jira) and its ledger entries.")

    @field_validator("service_keys")
    @classmethod
    def _service_keys_parse(cls, value: list[str]) -> list[str]:
        for line in value:
            PublicKey.parse(line)
        return value

    @model_validator(mode="after")
    def _unique_identities(self) -> Principals:
        for attr in ("id", "email", "slack_id", "jira_account_id"):
            seen: set[str] = set()
            for person in self.principals:
                value = getattr(person, attr)
                if value is None:
                    continue
                if value in seen:
                    raise ValueError(f"{attr} {value!r} belongs to two principals")
                seen.add(value)
        # One OS login is one person: two principals listing it would make every CLI decision ambiguous.
        logins: set[str] = set()
        for person in self.principals:
            for user in dict.fromkeys(person.local_users):
                if user in logins:
                    raise ValueError(f"local_users {user!r} belongs to two principals")
                logins.add(user)
        return self

    def by_id(self, principal_id: str) -> Principal | None:
        """The principal with this id."""
        return next((p for p in self.principals if p.id == principal_id), None)

    def by_local_user(self, user: str) -> Principal | None:
        """The principal who lists this OS user in ``local_users`` (a claimed identity: the OS user is whatever
        ``LOGNAME``/``USER`` say). A principal id that happens to equal the user name does not count."""
        return next((p for p in self.principals if user in p.local_users), None)

    def by_slack_id(self, slack_id: str) -> Principal | None:
        """The principal with this Slack user id."""
        return next((p for p in self.principals if p.slack_id == slack_id), None)

    def by_email(self, email: str) -> Principal | None:
        """The principal with this e-mail address (case-insensitive)."""
        return next((p for p in self.principals if p.email and p.email.lower() == email.lower()), None)

    def by_jira_account(self, account_id: str) -> Principal | None:
        """The principal with this Jira account id."""
        return next((p for p in self.principals if p.jira_account_id == account_id), None)


# --------------------------------------------------------------------------- waivers


class Waivers(StrictModel):
    """``configs/waivers.yaml`` (optional): accepted failures of gate checks, each with an expiry.

    The :class:`~gates.waivers.Waiver` model lives with the gates (which apply it and may not
    import ``clearance``); the rules across files (gate registered, model and approver exist,
    approver not an author) are checked by the loader.
    """

    waivers: list[Waiver] = Field(default_factory=list)
