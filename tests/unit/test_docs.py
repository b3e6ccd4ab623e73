"""The README's reference tables match the code: every command it lists exists, every setting is real."""

import re
from pathlib import Path

import typer.main

from clearance.app.cli import app
from clearance.settings import Settings

README_PATH = Path(__file__).resolve().parents[2] / "README.md"
README = README_PATH.read_text()


def cli_commands() -> set[str]:
    group = typer.main.get_group(app)
    names = set()
    for name, command in group.commands.items():
        names.add(name)
        for sub in getattr(command, "commands", {}):
            names.add(f"{name} {sub}")
    return names


def test_every_documented_command_exists_and_every_command_is_documented():
    # a table row names a command and, for a group (audit, gate), its sub-command: lower-case words
    documented = set(re.findall(r"^\| `clearance ([a-z][a-z-]*(?: [a-z][a-z-]*)?)", README, flags=re.M))
    documented |= set(re.findall(r"`clearance ([a-z][a-z-]*)", README))
    commands = cli_commands()
    assert documented - commands == set(), "README names commands the CLI does not have"
    assert {c for c in commands if c != "audit"} - documented == set(), "CLI commands missing from the README"


def setting_names() -> set[str]:
    """Every environment variable a settings model of clearance reads."""
    from clearance.settings.jira import JiraSettings
    from clearance.settings.slack import SlackSettings

    names = set()
    for model in (Settings, JiraSettings, SlackSettings):
        prefix = model.model_config.get("env_prefix", "")
        names |= {f"{prefix}{name}".upper() for name in model.model_fields}
    return names


def test_every_documented_setting_exists():
    docs = README + "".join(p.read_text() for p in (README_PATH.parent / "docs").glob("*.md"))
    documented = set(re.findall(r"`(CLEARANCE_[A-Z0-9_]+)`", docs))
    assert documented and documented <= setting_names(), documented - setting_names()


def test_cli_commands_have_help():
    group = typer.main.get_group(app)
    for name, command in group.commands.items():
        assert (command.help or "").strip(), f"clearance {name} has no help text"
