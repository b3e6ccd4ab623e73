"""Issue 17 ("the first hour"): `clearance validate` reports every problem of a config set in one run.

A schema error (an unknown key, a wrong type) used to hide the rules across files of the same file
and of the rest of the set: a newcomer fixed one mistake per run. Now the parts that validated still
take part in every check that can run on them, and a check whose inputs are broken says nothing
rather than a consequence ("unknown tier" for a tier file that merely failed to parse).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from clearance.app.cli import app
from clearance.config import validate_paths

REPO = Path(__file__).resolve().parents[2]


def edit(path: Path, old: str, new: str) -> None:
    """Replace the only ``old`` in ``path`` (a test that edits nothing must not pass)."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} found {text.count(old)} times in {path}"
    path.write_text(text.replace(old, new))


def line_of(path: Path, needle: str) -> int:
    hits = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if needle in line]
    assert len(hits) == 1, f"{needle!r} found {len(hits)} times in {path}"
    return hits[0]


def found(configs: Path) -> list[str]:
    return [str(issue) for issue in validate_paths([configs])]


def five_mistakes(configs: Path) -> list[str]:
    """The example configs with five mistakes of different kinds; the issues they must give, by file and line."""
    people = configs / "principals.yaml"
    edit(people, "    name: Dana Data-Scientist\n", "    name: Dana Data-Scientist\n    nickname: dd\n")  # schema
    edit(people, "local_users: [sol]", "local_users: [sol, bea]")                           # bea's login twice
    edit(people, "roles: [security]\n\n  - id: bea", "roles: [securty]\n\n  - id: bea")      # a role typo
    medium = configs / "policies" / "medium.yaml"
    edit(medium, "timeout: 48h", "timeout: [48h]")                                          # a wrong type
    manifest = configs / "models" / "churn-classifier.yaml"
    manifest.write_text(manifest.read_text() + "policy_overrides:\n  approvals:\n    timeout: 7d\n")  # loosens
    return [
        f"configs/models/churn-classifier.yaml:{line_of(manifest, 'timeout: 7d')}: policy_overrides.approvals.timeout: "
        "7d is looser than the high tier's 24h",
        f"configs/policies/medium.yaml:{line_of(medium, 'timeout: [48h]')}: approvals.timeout: must be a duration "
        "like 30m, 24h or 7d",
        f"configs/principals.yaml:{line_of(people, 'nickname: dd')}: principals.0.nickname: unknown key (allowed: id, "
        "name, email, slack_id, jira_account_id, local_users, ssh_keys, roles)",
        f"configs/principals.yaml:{line_of(people, 'roles: [securty]')}: principals.1.roles.0: role 'securty' is asked "
        "for by no policy or manifest: did you mean 'security'? (roles in use: business, security, sre)",
        f"configs/principals.yaml:{line_of(people, 'local_users: [sol, bea]')}: principals.4.local_users.1: 'bea' is "
        "also the local_users of principals.2",
    ]


def test_a_schema_error_hides_no_other_problem_of_the_config_set(configs: Path) -> None:
    expected = five_mistakes(configs)
    # The login clash and the role typo used to stay hidden behind principals.yaml's unknown key.
    assert sorted(found(configs)) == sorted(expected)


def test_the_cli_prints_them_all_by_file_and_line_and_exits_2(configs: Path) -> None:
    expected = five_mistakes(configs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLEARANCE_")}
    run = subprocess.run([sys.executable, "-m", "clearance", "validate", str(configs)], capture_output=True,
                         text=True, env=env | {"PYTHONPATH": str(REPO)}, timeout=600)
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert lines == expected + ["5 problem(s)"]  # five_mistakes lists them sorted by file, then line


def test_cli_lists_each_problem_once_even_for_a_path_given_twice(configs: Path) -> None:
    expected = five_mistakes(configs)
    manifest = configs / "models" / "churn-classifier.yaml"
    result = CliRunner().invoke(app, ["validate", str(configs), str(manifest)])
    assert result.exit_code == 2
    shown = [line for line in result.output.splitlines() if line.startswith("configs/")]
    assert shown == expected


def test_a_broken_principal_is_neither_called_missing_nor_dropped_from_a_quorum(configs: Path) -> None:
    people = configs / "principals.yaml"
    # bea is the only business approver the high tier needs, and dana owns and wrote the example model
    edit(people, "    name: Bea Business\n", "    name: Bea Business\n    nick: b\n")
    edit(people, "  - id: dana", "  - id: Dana")
    assert found(configs) == [
        f"configs/principals.yaml:{line_of(people, 'id: Dana')}: principals.0.id: must be lower-case letters, "
        "digits, '_', '.' or '-', starting with a letter or digit (got 'Dana')",
        f"configs/principals.yaml:{line_of(people, 'nick: b')}: principals.2.nick: unknown key (allowed: id, name, "
        "email, slack_id, jira_account_id, local_users, ssh_keys, roles)",
    ]  # no "business quorum can never be met", no "'dana' is not in principals.yaml"


def test_the_other_principals_are_still_checked_against_the_policies(configs: Path) -> None:
    people = configs / "principals.yaml"
    edit(people, "    name: Bea Business\n", "    name: Bea Business\n    nick: b\n")
    high = configs / "policies" / "high.yaml"
    edit(high, "escalate_to: [pia]", "escalate_to: [pia, zoe]")
    edit(high, "    security: {min: 1}\n    business", "    security: {min: 3}\n    business")
    assert sorted(found(configs)) == sorted([
        f"configs/principals.yaml:{line_of(people, 'nick: b')}: principals.2.nick: unknown key (allowed: id, name, "
        "email, slack_id, jira_account_id, local_users, ssh_keys, roles)",
        f"configs/policies/high.yaml:{line_of(high, 'security: {min: 3}')}: approvals.roles.security.min: needs 3 "
        "approver(s) with role security but 2 principal(s) (sam, sol) may approve with it: the quorum can never be met",
        f"configs/policies/high.yaml:{line_of(high, 'escalate_to: [pia, zoe]')}: approvals.reminders.escalate_to.1: "
        "'zoe' is not in principals.yaml (known: bea, carl, dana, pia, sam, sol)",
    ])


def test_every_clash_of_identities_is_named_not_just_the_first(configs: Path) -> None:
    people = configs / "principals.yaml"
    edit(people, "local_users: [sol]", "local_users: [sol, sam, bea]")
    edit(people, "  - id: pia", "  - id: carl")
    edit(people, "    name: Dana Data-Scientist\n", "    name: Dana Data-Scientist\n    nickname: dd\n")
    clash = line_of(people, "local_users: [sol, sam, bea]")
    second_carl = line_of(people, "name: Pia Platform-Lead") - 1
    assert found(configs) == [
        f"configs/principals.yaml:{line_of(people, 'nickname: dd')}: principals.0.nickname: unknown key (allowed: id, "
        "name, email, slack_id, jira_account_id, local_users, ssh_keys, roles)",
        f"configs/principals.yaml:{clash}: principals.4.local_users.1: 'sam' is also the local_users of principals.1",
        f"configs/principals.yaml:{clash}: principals.4.local_users.2: 'bea' is also the local_users of principals.2",
        f"configs/principals.yaml:{second_carl}: principals.5.id: 'carl' is also the id of "
        "principals.3",
    ]


def test_a_broken_tier_hides_only_what_depends_on_it(configs: Path) -> None:
    high = configs / "policies" / "high.yaml"
    edit(high, "  timeout: 24h\n", "  timeout: 24h\n  deadline: 1d\n")  # approvals of the high tier: broken
    manifest = configs / "models" / "churn-classifier.yaml"
    manifest.write_text(manifest.read_text() + "policy_overrides:\n  approvals:\n    timeout: 7d\n")
    medium = configs / "policies" / "medium.yaml"
    edit(medium, "reminders: {after: 24h}", "reminders: {after: 24h, escalate_after: 30h, escalate_to: [zoe]}")
    people = configs / "principals.yaml"
    edit(people, "roles: [sre]", "roles: [sr]")
    assert sorted(found(configs)) == sorted([
        f"configs/policies/high.yaml:{line_of(high, 'deadline: 1d')}: approvals.deadline: unknown key (allowed: "
        "roles, channels, timeout, timeout_outcome, assurance, reminders)",
        f"configs/policies/medium.yaml:{line_of(medium, 'escalate_to: [zoe]')}: approvals.reminders.escalate_to.0: "
        "'zoe' is not in principals.yaml (known: bea, carl, dana, pia, sam, sol)",
        f"configs/principals.yaml:{line_of(people, 'roles: [sr]')}: principals.5.roles.0: role 'sr' is asked for by "
        "no policy or manifest: did you mean 'sre'? (roles in use: business, security, sre)",
    ])  # whether 7d loosens the high tier cannot be judged while its approvals are broken: nothing is said


def test_a_policy_that_does_not_parse_is_no_unknown_tier(configs: Path) -> None:
    high = configs / "policies" / "high.yaml"
    edit(high, "tier: high", "tier: [high")
    manifest = configs / "models" / "churn-classifier.yaml"
    edit(manifest, "\nowner: dana ", "\nowner: zed ")
    problems = found(configs)
    assert len(problems) == 2, problems
    assert problems[0].startswith("configs/policies/high.yaml:") and "YAML syntax error" in problems[0]
    assert problems[1] == (f"configs/models/churn-classifier.yaml:{line_of(manifest, 'owner: zed')}: owner: 'zed' "
                           "is not in principals.yaml (known: bea, carl, dana, pia, sam, sol)")


def test_a_manifest_with_a_schema_error_is_still_checked_across_files(configs: Path) -> None:
    manifest = configs / "models" / "churn-classifier.yaml"
    edit(manifest, "sponsor: Maria Lopez, VP Customer Success", "sponsor: 3")
    edit(manifest, "authors: [dana]", "authors: [dana, dan]")
    manifest.write_text(manifest.read_text() + "policy_overrides:\n  on_warn: continue\n")
    assert sorted(found(configs)) == sorted([
        f"configs/models/churn-classifier.yaml:{line_of(manifest, 'authors: [dana, dan]')}: authors.1: 'dan' is not "
        "in principals.yaml (known: bea, carl, dana, pia, sam, sol)",
        f"configs/models/churn-classifier.yaml:{line_of(manifest, 'sponsor: 3')}: sponsor: must be a string (got 3)",
        f"configs/models/churn-classifier.yaml:{line_of(manifest, 'on_warn: continue')}: policy_overrides.on_warn: "
        "continue is looser than the high tier's require_approval",
    ])


def test_in_file_rules_run_beside_schema_errors(configs: Path) -> None:
    low = configs / "policies" / "low.yaml"
    edit(low, "roles: {}                       # empty: the promotion proceeds once the gates pass",
         "roles: {business: {min: 1}}")
    edit(low, "channels: [cli, prefect-ui]", "channels: []")
    edit(low, "on_warn: continue", "on_warn: carry_on")
    problems = found(configs)
    assert problems == [
        f"configs/policies/low.yaml:{line_of(low, 'on_warn: carry_on')}: on_warn: must be one of: continue, "
        "require_approval (got 'carry_on')",
        f"configs/policies/low.yaml:{line_of(low, 'channels: []')}: approvals.channels: is empty, but approvals.roles "
        "needs sign-off: nobody could approve",
    ]  # the in-file rule used to wait until on_warn was fixed


def test_one_broken_waiver_does_not_hide_the_others(configs: Path) -> None:
    waivers = configs / "waivers.yaml"
    entry = ("  - gate: artifact_integrity\n    check: \"{check}\"\n    model: churn-classifier\n"
             "    versions: [\"1.*\"]\n    reason: accepted\n    approved_by: {who}\n"
             "    expires_at: \"2030-03-31T00:00:00Z\"\n")
    waivers.write_text("waivers:\n" + entry.format(check="*", who="sam") + entry.format(check="format:*", who="dana"))
    assert found(configs) == [
        "configs/waivers.yaml:3: waivers.0.check: must be a check id, or a prefix of one ending in * (format:*); no "
        "spaces, and not * alone (got '*')",
        "configs/waivers.yaml:14: waivers.1.approved_by: 'dana' is an author of churn-classifier: nobody may waive "
        "checks of their own model",
    ]


# --------------------------------------------------------------------------- never a traceback

_WRONG: list[Any] = [None, [], {}, 3, "Z Z", [None], {"a": None}, [{"id": None}]]


def _breakages() -> list[tuple[str, tuple[Any, ...], Any]]:
    """Each top-level value of principals.yaml, a principal, the high tier and the example manifest, replaced by a
    value of another shape (the wrong values take turns)."""
    examples = REPO / "configs"
    targets: list[tuple[str, tuple[Any, ...]]] = []
    for name, below in (("principals.yaml", ()), ("principals.yaml", ("principals", 0)),
                        ("policies/high.yaml", ()), ("models/churn-classifier.yaml", ())):
        data = yaml.safe_load((examples / name).read_text())
        for part in below:
            data = data[part]
        targets += [(name, below + (key,)) for key in data]
    return [(name, path, _WRONG[i % len(_WRONG)]) for i, (name, path) in enumerate(targets)]


def test_no_broken_field_makes_validate_crash_or_pass(configs: Path) -> None:
    originals = {name: (configs / name).read_text() for name, _, _ in _breakages()}
    for name, path, value in _breakages():
        data = yaml.safe_load(originals[name])
        here = data
        for part in path[:-1]:
            here = here[part]
        here[path[-1]] = value
        (configs / name).write_text(yaml.safe_dump(data, sort_keys=False))
        try:
            problems = validate_paths([configs])  # raises nothing
        finally:
            (configs / name).write_text(originals[name])
        assert all(str(p).startswith("configs/") for p in problems), (name, path, value)
        if value not in ("Z Z", [], {}, None):  # those may be allowed values (a name, an empty list)
            assert problems, (name, path, value)


@pytest.mark.parametrize("text", ["principals: [\n", "principals: 3\n", "principals:\n  - 3\n  - [a]\n",
                                  "principals:\n  - {id: sam, roles: 3}\n  - {id: 4}\n", "- a\n"])
def test_odd_principals_files_give_issues_not_tracebacks(configs: Path, text: str) -> None:
    (configs / "principals.yaml").write_text(text)
    result = CliRunner().invoke(app, ["validate", str(configs)])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "configs/principals.yaml:" in result.output
    assert "is not in principals.yaml" not in result.output  # nobody is known to be missing from a broken file
