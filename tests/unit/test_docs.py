"""The README's reference tables match the code: every command it lists exists, every setting is real."""

import re
from pathlib import Path

import typer.main

from clearance.cli import app
from clearance.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def cli_commands() -> set[str]:
    group = typer.main.get_group(app)
    names = set()
    for name, command in group.commands.items():
        names.add(name)
        for sub in getattr(command, "commands", {}):
            names.add(f"{name} {sub}")
    return names


def test_every_documented_command_exists_and_every_command_is_documented():
    documented = set(re.findall(r"^\| `clearance ([a-z]+(?: verify)?)\b", README, flags=re.M))
    documented |= {m for m in re.findall(r"`clearance ([a-z]+)\b", README)}
    commands = cli_commands()
    assert documented - commands == set(), "README names commands the CLI does not have"
    assert {c for c in commands if c != "audit"} - documented == set(), "CLI commands missing from the README"


def test_every_documented_setting_exists():
    documented = set(re.findall(r"`(CLEARANCE_[A-Z0-9_]+)`", README))
    fields = {f"CLEARANCE_{name.upper()}" for name in Settings.model_fields}
    assert documented and documented <= fields, documented - fields


def test_cli_commands_have_help():
    group = typer.main.get_group(app)
    for name, command in group.commands.items():
        assert (command.help or "").strip(), f"clearance {name} has no help text"
