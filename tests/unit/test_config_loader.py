"""Loading configs: exact ``file:line: field: message`` errors, cross-file rules, examples, schemas."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from datetime import UTC
from pathlib import Path

import jsonschema
import pytest
import yaml

from clearance.config import (
    ConfigError,
    ConfigIssue,
    ConfigSet,
    load_config_dir,
    load_manifest,
    load_policy,
    load_principals,
    validate_paths,
    write_schemas,
)
from clearance.config.schema import Channel, ModelManifest, Policy, Principals
from gates.base import registered_gates


def known_gates() -> str:
    """The registry's gate ids as the loader lists them (other test modules may register more)."""
    return ", ".join(sorted(registered_gates()))

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "configs"


def write(path: Path | str, text: str) -> Path:
    """Write dedented YAML (first line = line 1) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def messages(path: Path | str, kind: str) -> list[str]:
    loader = {"policy": load_policy, "manifest": load_manifest, "principals": load_principals}[kind]
    with pytest.raises(ConfigError) as info:
        loader(path)
    return [str(issue) for issue in info.value.issues]


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in an empty directory so issues name files as configs/… like a user would see them."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def configs(cwd: Path) -> Path:
    """A copy of the example configs in ./configs, free to break."""
    shutil.copytree(EXAMPLES, cwd / "configs")
    return Path("configs")


GOOD_POLICY = """
    tier: high
    gates:
      - id: artifact_integrity
    approvals:
      roles:
        security: {min: 1}
"""


# --------------------------------------------------------------------------- one file, each error style


def test_below_minimum_is_reported_at_its_line(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        # A policy with a quorum of zero, which is no quorum at all.
        tier: high
        description: >-
          Customer-facing models.
        gates:
          - id: artifact_integrity
            mode: blocking
            config:
              allowed_formats: [joblib]
        on_warn: require_approval
        approvals:
          roles:
            security: {min: 1}
            compliance: {min: 0}
          channels: [cli]
    """)
    assert messages(path, "policy") == [
        "configs/policies/high.yaml:14: approvals.roles.compliance.min: must be >= 1",
    ]


def test_unknown_key_lists_the_allowed_keys(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        tier: high
        gates:
          - id: artifact_integrity
        approvals:
          rolez:
            security: {min: 1}
    """)
    assert messages(path, "policy") == [
        "configs/policies/high.yaml:5: approvals.rolez: unknown key (allowed: roles, channels, timeout, "
        "timeout_outcome, assurance, reminders)",
    ]


def test_unknown_top_level_key(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", GOOD_POLICY + "    gatess: []\n")
    [message] = messages(path, "policy")
    assert message == ("configs/policies/high.yaml:7: gatess: unknown key "
                       "(allowed: tier, description, gates, on_warn, approvals, promotion, notify, "
                       "regulatory_tags, recertification, rollback)")


def test_notify_names_real_slack_channel_ids_and_jira_project_keys(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        tier: high
        gates:
          - id: artifact_integrity
        notify:
          slack_channel: "#ml-promotions"
          jira_project: mlops
          jira_board: 7
    """)
    found = messages(path, "policy")
    assert found[0].startswith("configs/policies/high.yaml:5: notify.slack_channel: ")
    assert "^[CG][A-Z0-9]{8,}$" in found[0] and "#ml-promotions" in found[0]
    assert found[1].startswith("configs/policies/high.yaml:6: notify.jira_project: ")
    assert found[2] == ("configs/policies/high.yaml:7: notify.jira_board: unknown key "
                        "(allowed: slack_channel, jira_project, jira_issue_type)")
    good = write("configs/policies/low.yaml", """
        tier: low
        gates:
          - id: artifact_integrity
        notify: {slack_channel: C0123456789, jira_project: MLOPS, jira_issue_type: Story}
    """)
    assert load_policy(good).notify.jira_issue_type == "Story"


def test_wrong_type(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        tier: high
        gates:
          - id: artifact_integrity
        approvals:
          roles:
            security:
              min: two
          timeout: soon
    """)
    assert messages(path, "policy") == [
        "configs/policies/high.yaml:7: approvals.roles.security.min: must be an integer (got 'two')",
        "configs/policies/high.yaml:8: approvals.timeout: must be a duration like 30m, 24h or 7d (got 'soon')",
    ]


def test_wrong_enum_value_and_mapping_where_list_expected(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        tier: high
        gates:
          id: artifact_integrity
        on_warn: maybe
    """)
    assert messages(path, "policy") == [
        "configs/policies/high.yaml:2: gates: must be a list",
        "configs/policies/high.yaml:4: on_warn: must be one of: continue, require_approval (got 'maybe')",
    ]


def test_missing_required_at_parent_line(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        description: no tier
        gates:
          - id: artifact_integrity
          - mode: advisory
    """)
    assert messages(path, "policy") == [
        "configs/policies/high.yaml:1: tier: required",
        "configs/policies/high.yaml:4: gates.1.id: required",
    ]


def test_duplicate_key_is_an_error(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        tier: high
        gates:
          - id: artifact_integrity
        approvals:
          roles:
            security: {min: 2}
            business: {min: 1}
            security: {min: 1}
    """)
    assert messages(path, "policy") == [
        "configs/policies/high.yaml:8: approvals.roles.security: duplicate key (first defined on line 6)",
    ]


def test_yaml_merge_keys_are_not_duplicates(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        tier: high
        gates:
          - &strict
            id: artifact_integrity
            mode: blocking
        approvals:
          roles:
            security: &one {min: 1}
            business:
              <<: *one
              min: 2
    """)
    policy = load_policy(path)
    assert policy.approvals.roles["business"].min == 2


def test_yaml_syntax_error_is_one_issue_with_its_line(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        tier: high
        gates:
          - id: artifact_integrity
           mode: blocking
    """)
    assert messages(path, "policy") == [
        "configs/policies/high.yaml:4: YAML syntax error: expected <block end>, but found "
        "'<block mapping start>' (while parsing a block collection on line 3)",
    ]


def test_unclosed_bracket_names_where_it_opened(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        tier: high
        gates: [
          {id: artifact_integrity}
        on_warn: continue
    """)
    [message] = messages(path, "policy")
    assert message.startswith("configs/policies/high.yaml:4: YAML syntax error: ")
    assert message.endswith("(while parsing a flow sequence on line 2)")


def test_empty_and_missing_files(cwd: Path) -> None:
    empty = write("configs/policies/high.yaml", "")
    assert messages(empty, "policy") == ["configs/policies/high.yaml:1: the file is empty"]
    assert messages("configs/policies/none.yaml", "policy") == ["configs/policies/none.yaml: file not found"]


def test_top_level_must_be_a_mapping(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", "- tier: high\n")
    assert messages(path, "policy") == ["configs/policies/high.yaml:1: must be a mapping (key: value)"]


def test_unknown_gate_lists_known_gates(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        tier: high
        gates:
          - id: artifact_integrity
          - id: data_chek
            mode: advisory
    """)
    assert messages(path, "policy") == [
        f"configs/policies/high.yaml:4: gates.1.id: unknown gate 'data_chek' (known: {known_gates()})",
    ]


def test_bad_gate_config_is_reported_at_its_line(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", """
        tier: high
        gates:
          - id: artifact_integrity
            config:
              allowed_formats: []
              max_size_bytes: 0
              max_sise: 10
    """)
    assert messages(path, "policy") == [
        "configs/policies/high.yaml:5: gates.0.config.allowed_formats: must have at least 1 item(s)",
        "configs/policies/high.yaml:6: gates.0.config.max_size_bytes: must be > 0",
        "configs/policies/high.yaml:7: gates.0.config.max_sise: unknown key (allowed: allowed_formats, "
        "max_size_bytes)",
    ]


def test_bad_gate_config_in_manifest_overrides(cwd: Path) -> None:
    path = write("configs/models/churn.yaml", """
        name: churn
        owner: dana
        risk_tier: high
        versions:
          "1.0.0":
            artifacts:
              - key: candidates/churn/1.0.0/model.joblib
                sha256: "0000000000000000000000000000000000000000000000000000000000000000"
        policy_overrides:
          gates:
            - id: artifact_integrity
              config: {max_size_bytes: -5}
            - id: nope
    """)
    assert messages(path, "manifest") == [
        "configs/models/churn.yaml:12: policy_overrides.gates.0.config.max_size_bytes: must be > 0",
        f"configs/models/churn.yaml:13: policy_overrides.gates.1.id: unknown gate 'nope' (known: {known_gates()})",
    ]


def test_every_issue_is_reported_not_just_the_first(cwd: Path) -> None:
    path = write("configs/models/churn.yaml", """
        name: Churn Model
        owner: dana
        risk_tier: high
        extra: 1
        versions:
          "1.0.0":
            artifacts:
              - key: candidates/churn/1.0.0/model.joblib
                sha256: ABC
                size: -1
    """)
    assert messages(path, "manifest") == [
        "configs/models/churn.yaml:1: name: must be lower-case letters, digits, '_', '.' or '-', "
        "starting with a letter or digit (got 'Churn Model')",
        "configs/models/churn.yaml:4: extra: unknown key (allowed: name, owner, authors, risk_tier, intended_use, "
        "kpi, serving_endpoint, serving, versions, policy_overrides, notify, sponsor, regulatory_tags, operations, "
        "personal_data, model_card, recertification)",
        "configs/models/churn.yaml:9: versions.1.0.0.artifacts.0.sha256: must be a SHA-256: 64 lower-case hex "
        "characters (got 'ABC')",
        "configs/models/churn.yaml:10: versions.1.0.0.artifacts.0.size: must be >= 0",
    ]


def test_config_error_str_lists_one_issue_per_line(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", "tier: high\ngates: []\non_warn: never\n")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(info.value) == (
        "configs/policies/high.yaml:2: gates: must have at least 1 item(s)\n"
        "configs/policies/high.yaml:3: on_warn: must be one of: continue, require_approval (got 'never')"
    )
    assert all(isinstance(issue, ConfigIssue) for issue in info.value.issues)
    assert info.value.issues[0] == ConfigIssue("configs/policies/high.yaml", 2, "gates",
                                               "must have at least 1 item(s)")


def test_model_validator_errors_point_at_the_second_holder(cwd: Path) -> None:
    path = write("configs/principals.yaml", """
        principals:
          - id: sam
            slack_id: U04SAMSEC02
          - id: sol
            slack_id: U04SAMSEC02
    """)
    assert messages(path, "principals") == [
        "configs/principals.yaml:5: principals.1.slack_id: 'U04SAMSEC02' is also the slack_id of principals.0",
    ]


def test_principal_identity_patterns(cwd: Path) -> None:
    path = write("configs/principals.yaml", """
        principals:
          - id: sam
            slack_id: sam
            email: sam.example.com
    """)
    assert messages(path, "principals") == [
        "configs/principals.yaml:3: principals.0.slack_id: must be a Slack user id like U0123ABCD (got 'sam')",
        "configs/principals.yaml:4: principals.0.email: must be an e-mail address (got 'sam.example.com')",
    ]


def test_policy_with_roles_but_no_channels(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", GOOD_POLICY + "      channels: []\n")
    assert messages(path, "policy") == [
        "configs/policies/high.yaml:7: approvals.channels: is empty, but approvals.roles needs sign-off: "
        "nobody could approve",
    ]


def test_absolute_paths_outside_cwd_are_kept_absolute(tmp_path: Path) -> None:
    path = write(tmp_path / "high.yaml", "tier: high\ngates: []\n")
    assert messages(path, "policy") == [f"{path}:2: gates: must have at least 1 item(s)"]


# --------------------------------------------------------------------------- examples


def test_example_configs_load_cleanly() -> None:
    configs = load_config_dir(EXAMPLES)
    assert isinstance(configs, ConfigSet)
    assert set(configs.policies) == {"low", "medium", "high"}
    assert set(configs.manifests) == {"churn-classifier"}
    assert {p.id for p in configs.principals.principals} == {"dana", "sam", "bea", "carl", "sol", "pia"}
    assert validate_paths([EXAMPLES]) == []
    assert validate_paths(sorted(EXAMPLES.rglob("*.yaml"))) == []


def test_example_high_policy_is_what_the_demo_expects() -> None:
    high = load_policy(EXAMPLES / "policies" / "high.yaml")
    gate = high.gate("artifact_integrity")
    assert gate is not None and gate.mode.value == "blocking"
    assert gate.config["allowed_formats"] == ["joblib", "onnx", "safetensors"]
    assert {role: q.min for role, q in high.approvals.roles.items()} == {"security": 1, "business": 1}
    assert set(high.approvals.channels) == {Channel.CLI, Channel.PREFECT_UI, Channel.SLACK, Channel.JIRA}
    assert high.approvals.timeout.total_seconds() == 24 * 3600
    assert high.approvals.timeout_outcome.value == "reject"
    low = load_policy(EXAMPLES / "policies" / "low.yaml")
    assert set(low.approvals.roles) <= {"business"}


def test_example_people_and_model() -> None:
    people = load_principals(EXAMPLES / "principals.yaml")
    for person in people.principals:
        assert person.local_users == [person.id]
        assert person.email == f"{person.id}@example.com"
        assert person.slack_id and re.fullmatch(r"U[A-Z0-9]{8,}", person.slack_id)
        assert person.jira_account_id
    assert people.by_id("dana").roles == []
    assert {p.id for p in people.principals if "security" in p.roles} == {"sam", "sol"}
    model = load_manifest(EXAMPLES / "models" / "churn-classifier.yaml")
    assert (model.risk_tier, model.owner, model.authors) == ("high", "dana", ["dana"])
    artifact = model.versions["1.0.0"].artifacts[0]
    assert artifact.key == "candidates/churn-classifier/1.0.0/model.joblib"
    assert artifact.sha256 == "0" * 64
    assert model.kpi is not None


def test_effective_policy_of_the_example_model() -> None:
    configs = load_config_dir(EXAMPLES)
    assert configs.effective_policy("churn-classifier") == configs.policies["high"]
    with pytest.raises(KeyError, match="known: churn-classifier"):
        configs.effective_policy("nope")


def test_config_dir_accepts_the_repository_root(configs: Path) -> None:
    assert set(load_config_dir(".").policies) == {"low", "medium", "high"}


# --------------------------------------------------------------------------- cross-file rules


def test_policy_tier_must_match_file_name(configs: Path) -> None:
    shutil.copy(configs / "policies" / "high.yaml", configs / "policies" / "critical.yaml")
    line = _line_of(configs / "policies" / "critical.yaml", "tier: high")
    assert [str(i) for i in validate_paths([configs])] == [
        f"configs/policies/critical.yaml:{line}: tier: 'high' does not match the file name critical.yaml "
        "(a policy lives in policies/<tier>.yaml)",
    ]


def test_manifest_name_tier_owner_authors(configs: Path) -> None:
    write(configs / "models" / "fraud.yaml", """
        name: fraud-scorer
        owner: dan
        authors: [dana, zoe]
        risk_tier: critical
        versions:
          "2":
            artifacts:
              - key: candidates/fraud/2/model.onnx
                sha256: "1111111111111111111111111111111111111111111111111111111111111111"
    """)
    known = "bea, carl, dana, pia, sam, sol"
    assert [str(i) for i in validate_paths([configs])] == [
        "configs/models/fraud.yaml:1: name: 'fraud-scorer' does not match the file name fraud.yaml "
        "(a model lives in models/<name>.yaml)",
        f"configs/models/fraud.yaml:2: owner: 'dan' is not in principals.yaml (known: {known})",
        f"configs/models/fraud.yaml:3: authors.1: 'zoe' is not in principals.yaml (known: {known})",
        "configs/models/fraud.yaml:4: risk_tier: no policy for tier 'critical' (known: high, low, medium)",
    ]
    with pytest.raises(ConfigError):
        load_config_dir(configs)


ZEROS = '"' + "0" * 64 + '"'
ONES = '"' + "1" * 64 + '"'


def test_two_artifacts_with_one_production_file_name_are_refused(cwd: Path) -> None:
    # Finding 5 (issue 11): production keeps only the file name, so these two would collide on
    # production/churn/1.0.0/model.joblib after passing the gates, leaving half a version there for good.
    path = write("configs/models/churn.yaml", f"""
        name: churn
        owner: dana
        risk_tier: high
        versions:
          "1.0.0":
            artifacts:
              - key: candidates/churn/1.0.0/a/model.joblib
                sha256: {ZEROS}
              - key: candidates/churn/1.0.0/tokenizer.json
                sha256: {ONES}
              - key: candidates/churn/1.0.0/b/model.joblib
                sha256: {ONES}
          "1.0.1":
            artifacts:
              - key: candidates/churn/1.0.1/model.joblib
                sha256: {ZEROS}
              - key: candidates/churn/1.0.1/
                sha256: {ONES}
          "2.0.0":  # the same file name in two versions lands in two folders: fine
            artifacts:
              - key: candidates/churn/1.0.0/a/model.joblib
                sha256: {ZEROS}
    """)
    assert messages(path, "manifest") == [
        "configs/models/churn.yaml:11: versions.1.0.0.artifacts.2.key: 'candidates/churn/1.0.0/b/model.joblib' and "
        "'candidates/churn/1.0.0/a/model.joblib' (versions.1.0.0.artifacts.0.key) have the same file name "
        "'model.joblib': promotion keeps only the file name, so both would be copied to churn/1.0.0/model.joblib "
        "under the promotion prefix and the second would collide with the first; rename one",
        "configs/models/churn.yaml:17: versions.1.0.1.artifacts.1.key: 'candidates/churn/1.0.1/' names no file "
        "(it ends with '/'): promotion copies artifacts by their file name",
    ]


def test_production_name_clash_fails_the_config_dir_and_validate(configs: Path) -> None:
    manifest = configs / "models" / "churn-classifier.yaml"
    manifest.write_text(manifest.read_text().replace(
        "        format: joblib\n",
        "        format: joblib\n"
        "      - key: candidates/churn-classifier/1.0.0/v2/model.joblib\n"
        f"        sha256: {ONES}\n", 1))
    line = _line_of(manifest, "v2/model.joblib")
    [issue] = validate_paths([configs])
    assert str(issue).startswith(f"configs/models/churn-classifier.yaml:{line}: versions.1.0.0.artifacts.1.key: "
                                 "'candidates/churn-classifier/1.0.0/v2/model.joblib' and "
                                 "'candidates/churn-classifier/1.0.0/model.joblib' (versions.1.0.0.artifacts.0.key) "
                                 "have the same file name 'model.joblib'")
    with pytest.raises(ConfigError, match="same file name 'model.joblib'"):
        load_config_dir(configs)


def test_quorum_that_can_never_be_met(configs: Path) -> None:
    high = configs / "policies" / "high.yaml"
    high.write_text(high.read_text().replace("security: {min: 1}", "security: {min: 3}")
                    .replace("business: {min: 1}", "business: {min: 1}\n    legal: {min: 1}"))
    security = _line_of(high, "security: {min: 3}", after=0)
    legal = _line_of(high, "legal: {min: 1}")
    rollback = _line_of(high, "security: {min: 3}", after=_line_of(high, "\nrollback:".strip()))
    assert [str(i) for i in validate_paths([configs])] == [
        f"configs/policies/high.yaml:{security}: approvals.roles.security.min: needs 3 approver(s) with role "
        "security but 2 principal(s) (sam, sol) may approve with it: the quorum can never be met",
        f"configs/policies/high.yaml:{legal}: approvals.roles.legal.min: needs 1 approver(s) with role legal "
        "but no principal(s) may approve with it: the quorum can never be met",
        f"configs/policies/high.yaml:{rollback}: rollback.approvals.roles.security.min: needs 3 approver(s) with "
        "role security but 2 principal(s) (sam, sol) may approve with it: the quorum can never be met",
    ]


def test_authors_cannot_fill_a_quorum(configs: Path) -> None:
    people = configs / "principals.yaml"
    people.write_text(people.read_text().replace("roles: [business]", "roles: []"))
    people.write_text(people.read_text().replace("roles: []                     # authors",
                                                 "roles: [business]            # authors"))
    # dana now holds the only business role, but she authored churn-classifier.
    line = _line_of(configs / "models" / "churn-classifier.yaml", "authors: [dana]")
    assert [str(i) for i in validate_paths([configs])] == [
        f"configs/models/churn-classifier.yaml:{line}: authors: the high tier needs 1 business approver(s); with "
        "dana excluded as author(s), 0 remain: the quorum can never be met",
    ]


def test_override_quorum_that_can_never_be_met(configs: Path) -> None:
    manifest = configs / "models" / "churn-classifier.yaml"
    manifest.write_text(manifest.read_text() + "policy_overrides:\n  approvals:\n    roles:\n"
                                               "      compliance: {min: 2}\n")
    line = _line_of(manifest, "compliance: {min: 2}")
    assert [str(i) for i in validate_paths([configs])] == [
        f"configs/models/churn-classifier.yaml:{line}: policy_overrides.approvals.roles.compliance.min: needs 2 "
        "approver(s) with role compliance but 1 principal(s) (carl) may approve with it: the quorum can never be met",
    ]


def test_loosening_override_fails_the_config_dir(configs: Path) -> None:
    manifest = configs / "models" / "churn-classifier.yaml"
    manifest.write_text(manifest.read_text() + "policy_overrides:\n  approvals:\n    timeout: 7d\n")
    line = _line_of(manifest, "timeout: 7d")
    expected = (f"configs/models/churn-classifier.yaml:{line}: policy_overrides.approvals.timeout: "
                "7d is looser than the high tier's 24h")
    with pytest.raises(ConfigError) as info:
        load_config_dir(configs)
    assert str(info.value) == expected
    # A single file inside a config layout is checked against its tier as well.
    assert [str(i) for i in validate_paths([manifest])] == [expected]


def test_errors_in_several_files_are_all_reported(configs: Path) -> None:
    (configs / "principals.yaml").write_text("principals:\n  - id: Sam\n")
    low = configs / "policies" / "low.yaml"
    low.write_text(low.read_text().replace("on_warn: continue", "on_warn: carry_on"))
    found = [str(i) for i in validate_paths([configs])]
    assert any(s.startswith("configs/principals.yaml:2: principals.0.id: must be lower-case") for s in found)
    assert any(s.startswith("configs/policies/low.yaml:") and "on_warn: must be one of" in s for s in found)
    # Broken principals do not cascade into "owner not known" noise.
    assert not any("is not in principals.yaml" in s for s in found)


def test_broken_policy_does_not_cascade_into_unknown_tier(configs: Path) -> None:
    high = configs / "policies" / "high.yaml"
    high.write_text(high.read_text().replace("on_warn: require_approval", "on_warn: nope"))
    found = [str(i) for i in validate_paths([configs])]
    assert len(found) == 1 and "on_warn" in found[0]


def test_missing_layout_parts(cwd: Path) -> None:
    Path("configs").mkdir()
    assert [str(i) for i in validate_paths([Path("configs")])] == [
        "configs/principals.yaml: file not found",
        "configs/policies: directory not found (one policies/<tier>.yaml per risk tier)",
    ]


def test_validate_paths_lone_files_and_dedup(cwd: Path) -> None:
    bad = write("somewhere/strict.yaml", "tier: strict\ngates: []\n")
    unknown = write("somewhere/other.yaml", "hello: world\n")
    issues = validate_paths([bad, bad, unknown])
    assert [str(i) for i in issues] == [
        "somewhere/strict.yaml:2: gates: must have at least 1 item(s)",
        "somewhere/other.yaml:1: cannot tell what this is: expected a policy (tier, gates), a model manifest "
        "(name, risk_tier, versions), principals or a regulatory map (controls, tags)",
    ]


def test_validate_paths_reports_duplicate_keys_and_schema_errors_together(cwd: Path) -> None:
    path = write("p/high.yaml", "tier: high\ntier: high\ngates: []\n")
    assert [str(i) for i in validate_paths([path])] == [
        "p/high.yaml:2: tier: duplicate key (first defined on line 1)",
        "p/high.yaml:3: gates: must have at least 1 item(s)",
    ]


def _line_of(path: Path, needle: str, after: int | None = None) -> int:
    """The line of the only ``needle`` in ``path`` (with ``after``: of the first one after that line)."""
    lines = path.read_text().splitlines()
    hits = [i + 1 for i, line in enumerate(lines) if needle in line and i + 1 > (after or 0)]
    if after is None:
        assert len(hits) == 1, f"{needle!r} found {len(hits)} times in {path}"
    assert hits, f"{needle!r} not found after line {after} in {path}"
    return hits[0]


# --------------------------------------------------------------------------- JSON Schemas


def _validator(schema_path: Path) -> jsonschema.protocols.Validator:
    schema = json.loads(schema_path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def test_schemas_are_written_and_examples_validate(tmp_path: Path) -> None:
    written = write_schemas(tmp_path / "schemas")
    assert sorted(p.name for p in written) == ["model.schema.json", "policy.schema.json", "prices.schema.json",
                                               "principals.schema.json", "regulatory.schema.json",
                                               "waivers.schema.json"]
    by_kind = {"policies": "policy", "models": "model"}
    for example in sorted(EXAMPLES.rglob("*.yaml")):
        kind = by_kind.get(example.parent.name, example.stem if example.stem in ("waivers", "regulatory", "prices")
                           else "principals")
        validator = _validator(tmp_path / "schemas" / f"{kind}.schema.json")
        errors = list(validator.iter_errors(yaml.safe_load(example.read_text())))
        assert errors == [], f"{example}: {[e.message for e in errors]}"


def test_schemas_reject_what_the_loader_rejects(tmp_path: Path) -> None:
    [policy_schema, model_schema, *_] = write_schemas(tmp_path)
    policy = _validator(policy_schema)
    good = yaml.safe_load((EXAMPLES / "policies" / "high.yaml").read_text())
    assert policy.is_valid(good)
    assert not policy.is_valid({**good, "gatess": []})
    assert not policy.is_valid({**good, "approvals": {"timeout": "soon"}})
    assert policy.is_valid({**good, "approvals": {"timeout": 3600}})
    bad_gate = {**good, "gates": [{"id": "artifact_integrity", "config": {"allowed_formats": "joblib"}}]}
    assert not policy.is_valid(bad_gate)
    unknown_gate_key = {**good, "gates": [{"id": "artifact_integrity", "config": {"max_sise": 1}}]}
    assert not policy.is_valid(unknown_gate_key)
    model = _validator(model_schema)
    manifest = yaml.safe_load((EXAMPLES / "models" / "churn-classifier.yaml").read_text())
    assert model.is_valid(manifest)
    manifest["versions"]["1.0.0"]["artifacts"][0]["sha256"] = "abc"
    assert not model.is_valid(manifest)


def test_committed_schemas_are_current(tmp_path: Path) -> None:
    written = write_schemas(tmp_path)
    for path in written:
        committed = EXAMPLES / "schemas" / path.name
        assert committed.is_file() and committed.read_text() == path.read_text(), (
            f"{committed} is stale: run python -c 'from clearance.config import write_schemas; "
            f"write_schemas(\"configs/schemas\")'"
        )


def test_example_yamls_point_editors_at_their_schema() -> None:
    for example in sorted(EXAMPLES.rglob("*.yaml")):
        first = example.read_text().splitlines()[0]
        match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
        assert match, f"{example} lacks the yaml-language-server schema comment"
        assert (example.parent / match.group(1)).resolve().is_file()


def test_models_are_the_schema_models() -> None:
    # The loader returns the schema's own classes, so other modules can isinstance-check them.
    assert isinstance(load_policy(EXAMPLES / "policies" / "low.yaml"), Policy)
    assert isinstance(load_manifest(EXAMPLES / "models" / "churn-classifier.yaml"), ModelManifest)
    assert isinstance(load_principals(EXAMPLES / "principals.yaml"), Principals)


# --------------------------------------------------------------------------- waivers.yaml


GOOD_WAIVER = """
    waivers:
      - gate: artifact_integrity
        check: "format:*"
        model: churn-classifier
        versions: ["1.0.*", "2.0.0"]
        reason: Legacy pickle, ONNX export in ML-482
        approved_by: sam
        expires_at: 2030-01-31T00:00:00Z
"""


def _waivers(configs: Path, text: str) -> Path:
    return write(configs / "waivers.yaml", text)


def test_example_waivers_file_is_valid_and_waives_nothing() -> None:
    from clearance.config import load_waivers

    assert load_waivers(EXAMPLES / "waivers.yaml").waivers == []
    assert load_config_dir(EXAMPLES).waivers == []


def test_waivers_file_is_optional(configs: Path) -> None:
    (configs / "waivers.yaml").unlink()
    assert load_config_dir(configs).waivers == []


def test_waivers_are_loaded_into_the_config_set(configs: Path) -> None:
    from datetime import datetime

    _waivers(configs, GOOD_WAIVER)
    loaded = load_config_dir(configs)
    [waiver] = loaded.waivers
    assert (waiver.gate, waiver.check, waiver.approved_by) == ("artifact_integrity", "format:*", "sam")
    assert waiver.expires_at == datetime(2030, 1, 31, tzinfo=UTC)
    assert loaded.waivers_for("churn-classifier", "1.0.0") == [waiver]
    assert loaded.waivers_for("churn-classifier", "2.0.0") == [waiver]
    assert loaded.waivers_for("churn-classifier", "1.1.0") == []
    assert loaded.waivers_for("other", "1.0.0") == []
    assert "configs/waivers.yaml" in loaded.files


def test_an_expired_waiver_is_valid_config(configs: Path) -> None:
    # Expiry is judged when a waiver is applied; an old waiver must not break every promotion.
    _waivers(configs, GOOD_WAIVER.replace("2030-01-31", "2001-01-31"))
    assert len(load_config_dir(configs).waivers) == 1


def test_waiver_schema_errors_name_file_line_and_field(configs: Path) -> None:
    path = _waivers(configs, """
        waivers:
          - gate: artifact_integrity
            check: "*"
            model: churn-classifier
            versions: ["1.0.0", "*"]
            reason: "  "
            approved_by: sam
            expires_at: 2030-01-31T00:00:00
          - gate: artifact_integrity
            check: format:*
            model: churn-classifier
            versions: []
            reason: ok
            approved_by: sam
            ticket: ML-1
    """)
    assert [str(i) for i in validate_paths([configs])] == [
        f"{path}:3: waivers.0.check: must be a check id, or a prefix of one ending in * (format:*); no spaces, "
        "and not * alone (got '*')",
        f"{path}:5: waivers.0.versions.1: must be a version (1.4.2) or a prefix of one ending in * (1.4.*); "
        "not * alone (got '*')",
        f"{path}:6: waivers.0.reason: must say why the failure is acceptable (it cannot be blank)",
        f"{path}:8: waivers.0.expires_at: must be a date-time with a timezone, like 2025-01-31T12:00:00Z",
        f"{path}:9: waivers.1.expires_at: required",
        f"{path}:12: waivers.1.versions: must have at least 1 item(s)",
        f"{path}:15: waivers.1.ticket: unknown key (allowed: gate, check, model, versions, reason, approved_by, "
        "expires_at)",
    ]
    with pytest.raises(ConfigError):
        load_config_dir(configs)


def test_waiver_cross_file_rules(configs: Path) -> None:
    path = _waivers(configs, """
        waivers:
          - gate: artifact_integrity
            check: format:*
            model: churn-classifier
            versions: ["1.0.0"]
            reason: accepted by security
            approved_by: dana
            expires_at: 2030-01-31T00:00:00Z
          - gate: model_card
            check: sections:*
            model: fraud-scorer
            versions: ["2.*"]
            reason: accepted by security
            approved_by: zoe
            expires_at: 2030-01-31T00:00:00Z
    """)
    known_people = "bea, carl, dana, pia, sam, sol"
    expected = [
        f"{path}:7: waivers.0.approved_by: 'dana' is an author of churn-classifier: "
        "nobody may waive checks of their own model",
        f"{path}:9: waivers.1.gate: unknown gate 'model_card' (known: {known_gates()})",
        f"{path}:11: waivers.1.model: no model 'fraud-scorer' in models/ (known: churn-classifier)",
        f"{path}:14: waivers.1.approved_by: 'zoe' is not in principals.yaml (known: {known_people})",
    ]
    assert [str(i) for i in validate_paths([configs])] == expected
    # The lone file, inside its layout, is checked against its neighbours too.
    assert [str(i) for i in validate_paths([path])] == expected
    with pytest.raises(ConfigError) as info:
        load_config_dir(configs)
    assert [str(i) for i in info.value.issues] == expected


def test_broken_manifest_does_not_cascade_into_unknown_model(configs: Path) -> None:
    _waivers(configs, GOOD_WAIVER)
    manifest = configs / "models" / "churn-classifier.yaml"
    manifest.write_text(manifest.read_text().replace("risk_tier: high", "risk_tier: High"))
    found = [str(i) for i in validate_paths([configs])]
    assert len(found) == 1 and "risk_tier" in found[0]


def test_lone_waivers_file_outside_a_layout(cwd: Path) -> None:
    path = write("elsewhere/waivers.yaml", textwrap.dedent(GOOD_WAIVER).replace("artifact_integrity", "nope"))
    assert [str(i) for i in validate_paths([path])] == [
        f"elsewhere/waivers.yaml:2: waivers.0.gate: unknown gate 'nope' (known: {known_gates()})",
    ]
    renamed = write("elsewhere/exceptions.yaml", GOOD_WAIVER)
    assert validate_paths([renamed]) == []  # recognised by its top-level key


def test_cli_validate_covers_waivers(configs: Path) -> None:
    from typer.testing import CliRunner

    from clearance.app.cli import app

    _waivers(configs, GOOD_WAIVER.replace("approved_by: sam", "approved_by: dana"))
    result = CliRunner().invoke(app, ["validate", str(configs)])
    assert result.exit_code == 2
    assert "configs/waivers.yaml:7: waivers.0.approved_by: 'dana' is an author of churn-classifier" in result.output


def test_waiver_schema_rejects_what_the_loader_rejects(tmp_path: Path) -> None:
    written = {p.name: p for p in write_schemas(tmp_path)}
    schema = _validator(written["waivers.schema.json"])
    good = yaml.safe_load(textwrap.dedent(GOOD_WAIVER).replace("2030-01-31T00:00:00Z", "'2030-01-31T00:00:00Z'"))
    assert schema.is_valid(good)
    assert schema.is_valid({"waivers": []})
    item = good["waivers"][0]
    for bad in ({"check": "*"}, {"versions": ["*"]}, {"versions": []}, {"reason": ""}, {"reason": "  "},
                {"ticket": "ML-1"}):
        assert not schema.is_valid({"waivers": [item | bad]}), bad
    missing = {k: v for k, v in item.items() if k != "expires_at"}
    assert not schema.is_valid({"waivers": [missing]})


# --------------------------------------------------------------------------- lifecycle sections (issue 16)


def test_a_bad_cron_is_named_with_its_line(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", GOOD_POLICY + """
    recertification:
      schedule: "61 6 * * *"
      gates:
        - id: artifact_integrity
    """)
    assert messages(path, "policy") == [
        "configs/policies/high.yaml:9: recertification.schedule: cron '61 6 * * *': Bad minute",
    ]


def test_a_cron_with_four_fields_says_which_five_it_needs(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", GOOD_POLICY + """
    recertification:
      schedule: "0 6 * *"
      timezone: Mars/Olympus
      gates:
        - id: artifact_integrity
    """)
    assert messages(path, "policy") == [
        "configs/policies/high.yaml:9: recertification.schedule: cron '0 6 * *' must have five fields: minute hour "
        "day-of-month month day-of-week",
        "configs/policies/high.yaml:10: recertification.timezone: 'Mars/Olympus' is not an IANA time zone (e.g. UTC, "
        "Europe/Berlin)",
    ]


def test_recertification_gates_are_checked_like_the_promotion_gates(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", GOOD_POLICY + """
    recertification:
      gates:
        - id: data_chek
        - id: artifact_integrity
          config: {allowed_formats: joblib}
    """)
    found = messages(path, "policy")
    assert found[0] == f"configs/policies/high.yaml:10: recertification.gates.0.id: unknown gate 'data_chek' (known: " \
                       f"{known_gates()})"
    assert found[1].startswith("configs/policies/high.yaml:12: recertification.gates.1.config.allowed_formats: ")
    assert len(found) == 2


def test_reminders_must_say_when_and_to_whom(cwd: Path) -> None:
    path = write("configs/policies/high.yaml", GOOD_POLICY + """
      reminders:
        every: 8h
        escalate_to: [pia]
    """)
    [problem] = messages(path, "policy")
    assert problem.startswith("configs/policies/high.yaml:8: approvals.reminders: ")
    assert "every needs after" in problem


def test_escalation_to_an_unknown_principal_fails_the_config_dir(configs: Path) -> None:
    high = configs / "policies" / "high.yaml"
    high.write_text(high.read_text().replace("escalate_to: [pia]", "escalate_to: [pia, piaa]"))
    line = _line_of(high, "escalate_to: [pia, piaa]")
    [issue] = validate_paths([configs])
    assert str(issue).startswith(f"configs/policies/high.yaml:{line}: approvals.reminders.escalate_to.1: 'piaa' is "
                                 "not in principals.yaml (known: bea, carl, dana, pia, sam, sol)")


def test_a_production_sample_must_have_its_role(cwd: Path) -> None:
    manifest = yaml.safe_load((EXAMPLES / "models" / "churn-classifier.yaml").read_text())
    manifest["recertification"]["production_sample"]["role"] = "eval"
    path = Path("configs/models/churn-classifier.yaml")
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    [problem] = messages(path, "manifest")
    assert "recertification.production_sample: must have role production_sample, not eval" in problem


def test_the_shipped_tiers_recertify_and_say_who_signs_off_a_rollback() -> None:
    for tier in ("low", "medium", "high"):
        policy = load_policy(EXAMPLES / "policies" / f"{tier}.yaml")
        assert policy.recertification is not None, tier
        assert [g.id for g in policy.recertification.gates][:2] == ["artifact_integrity", "data_check"]
    high = load_policy(EXAMPLES / "policies" / "high.yaml")
    assert high.rollback.approvals is not None and high.rollback.approvals.roles == {"security": {"min": 1}} \
        or high.rollback.approvals.roles["security"].min == 1
    assert high.rollback.emergency_roles == ["sre"]
    assert high.approvals.reminders.escalate_to == ["pia"]


# --------------------------------------------------------------------------- gaps `validate` used to let through


def test_one_os_login_for_two_principals_is_named_where_it_repeats(configs: Path) -> None:
    people = configs / "principals.yaml"
    people.write_text(people.read_text().replace("local_users: [sol]", "local_users: [solo, sam]"))
    line = _line_of(people, "local_users: [solo, sam]")
    [issue] = validate_paths([configs])
    assert str(issue) == (f"configs/principals.yaml:{line}: principals.4.local_users.1: 'sam' is also the local_users "
                          "of principals.1")


def test_a_misspelt_role_is_caught_with_the_role_it_was_meant_to_be(configs: Path) -> None:
    people = configs / "principals.yaml"
    people.write_text(people.read_text().replace("roles: [security]\n\n  - id: bea", "roles: [securty]\n\n  - id: bea"))
    line = _line_of(people, "roles: [securty]")
    assert [str(i) for i in validate_paths([configs])] == [
        f"configs/principals.yaml:{line}: principals.1.roles.0: role 'securty' is asked for by no policy or manifest: "
        "did you mean 'security'? (roles in use: business, security, sre)",
    ]


def test_a_role_kept_for_later_is_not_a_mistake(configs: Path) -> None:
    # carl's `compliance` is near no role a policy asks for: it is left alone (the shipped configs validate)
    assert validate_paths([configs]) == []
    people = configs / "principals.yaml"
    people.write_text(people.read_text().replace("roles: [compliance]", "roles: [compliance, auditor]"))
    assert validate_paths([configs]) == []


@pytest.mark.parametrize("gate", ["artifact_integrity", "security_scan"])
def test_an_unknown_format_in_allowed_formats_is_an_error(cwd: Path, gate: str) -> None:
    path = write("configs/policies/high.yaml", f"""
        tier: high
        gates:
          - id: {gate}
            config:
              allowed_formats: [joblib, jobilb]
    """)
    [problem] = messages(path, "policy")
    assert problem.startswith("configs/policies/high.yaml:5: gates.0.config.allowed_formats: ")
    assert "unknown format(s) 'jobilb' (known: " in problem and "joblib" in problem.split("known:")[1]
