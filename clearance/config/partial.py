"""What of a broken config file the rules across files may still rely on.

Why: one unknown key in one principal used to hide every other problem of the config set (a
quorum nobody can meet, a misspelt role, a manifest that loosens its tier) until it was fixed, one
run of ``clearance validate`` per mistake. Here a file that fails its schema is kept field by field
(:func:`salvage`), principals.yaml entry by entry (:class:`People`), so that every check whose inputs
are intact still runs. A check never reads a field that has an issue: what it would say could be a
consequence of the broken part, not a problem of its own.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from clearance.config.issues import ConfigIssue, ConfigPath, issue_at
from clearance.config.schema import Principal, Principals
from clearance.config.yaml_source import YamlDocument

__all__ = ["People", "asked_roles", "broken_fields", "identity_clashes", "people_of", "salvage"]

_SALVAGE_ERRORS = (ValidationError, ValueError, TypeError, AttributeError)


def broken_fields(issues: Iterable[ConfigIssue]) -> frozenset[str]:
    """The top-level keys the issues are under (``""``: an issue about the whole file)."""
    return frozenset(issue.field.split(".")[0] for issue in issues)


def salvage(model_cls: type[BaseModel], data: Any) -> tuple[BaseModel | None, frozenset[str]]:
    """``model_cls`` built from the top-level fields of ``data`` that validate on their own, and the names of
    those that do not (or are required and absent). Fields not set are the model's defaults, so a caller must
    read only fields it knows are intact (see :func:`broken_fields`)."""
    if not isinstance(data, dict):
        return None, frozenset({""})
    values: dict[str, Any] = {}
    failed: set[str] = set()
    for name, info in model_cls.model_fields.items():
        if name not in data:
            if info.is_required():
                failed.add(name)
            continue
        annotation: Any = info.annotation
        if info.metadata:
            annotation = typing.Annotated.__class_getitem__((annotation, *info.metadata))  # type: ignore[attr-defined]
        try:
            values[name] = TypeAdapter(annotation).validate_python(data[name])
        except _SALVAGE_ERRORS:
            failed.add(name)
    return model_cls.model_construct(**values), frozenset(failed)


# --------------------------------------------------------------------------- principals


@dataclass(frozen=True)
class Person:
    """One entry of principals.yaml as far as it can be read: ``id`` None when it has an issue, ``roles`` None
    when they do (then the entry might hold any role)."""

    label: str
    id: str | None
    roles: frozenset[str] | None


@dataclass
class People:
    """principals.yaml for the rules across files, also when some entries are broken.

    A broken entry counts at its most permissive: it may hold any role it lists (any role at all when its
    roles are unreadable), and when its id is unreadable, nobody can be said to be missing from the file.
    """

    entries: list[Person]
    valid: list[tuple[int, Principal]] = field(default_factory=list)  # entries without issues, by file index
    model: Principals | None = None  # the whole file, when it has no issue

    def lacks(self, person_id: str) -> bool:
        """Whether ``person_id`` is certainly not in principals.yaml."""
        if any(p.id is None for p in self.entries):
            return False
        return all(p.id != person_id for p in self.entries)

    def known(self) -> str:
        """The ids, for messages."""
        return ", ".join(sorted(p.id for p in self.entries if p.id is not None))

    def holders(self, role: str) -> list[Person]:
        """The entries that hold (or, broken, might hold) ``role``."""
        return [p for p in self.entries if p.roles is None or role in p.roles]


def people_of(doc: YamlDocument, model: Principals | None) -> People | None:
    """The people of a loaded principals.yaml, or None when its list of principals cannot be read."""
    data = doc.data
    items = data.get("principals") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    by_entry: dict[int, set[str]] = {}
    for issue in doc.issues:
        parts = issue.field.split(".")
        if parts[0] == "":
            return None  # a problem of the whole file: nothing in it is trusted
        if parts[0] != "principals":
            continue  # service_keys, an unknown top-level key: the principals are unaffected
        if len(parts) < 2 or not parts[1].isdigit():
            return None  # the list itself (e.g. a duplicate `principals:` key)
        by_entry.setdefault(int(parts[1]), set()).add(parts[2] if len(parts) > 2 else "")
    people = People(entries=[], model=model if not doc.issues else None)
    for i, raw in enumerate(items):
        bad = by_entry.get(i)
        if bad is None:
            person = model.principals[i] if model is not None else _valid_principal(raw)
            if person is not None:
                people.entries.append(Person(person.id, person.id, frozenset(person.roles)))
                people.valid.append((i, person))
                continue
            bad = {""}
        people.entries.append(_loose(i, raw, bad))
    return people


def _valid_principal(raw: Any) -> Principal | None:
    try:
        return Principal.model_validate(raw)
    except _SALVAGE_ERRORS:
        return None


def _loose(index: int, raw: Any, bad: set[str]) -> Person:
    """A broken entry, read from the YAML where its fields have no issue."""
    if not isinstance(raw, dict) or "" in bad:
        return Person(f"principals.{index}", None, None)
    person_id = raw.get("id") if "id" not in bad and isinstance(raw.get("id"), str) else None
    roles: frozenset[str] | None = None
    listed = raw.get("roles", [])
    if "roles" not in bad and isinstance(listed, list) and all(isinstance(r, str) for r in listed):
        roles = frozenset(listed)
    return Person(person_id or f"principals.{index}", person_id, roles)


def identity_clashes(doc: YamlDocument) -> list[ConfigIssue]:
    """Every id, e-mail, Slack id, Jira account or OS login that two valid principals share, at the second.

    The schema's own check (:meth:`Principals._unique_identities`) stops at the first clash and runs only when
    every entry is valid; this one names them all, among the entries that are valid on their own.
    """
    items = doc.data.get("principals") if isinstance(doc.data, dict) else None
    valid = [(i, p) for i, p in enumerate(_valid_principal(raw) for raw in items or []) if p is not None] \
        if isinstance(items, list) else []
    issues = []
    for attr in ("id", "email", "slack_id", "jira_account_id"):
        first: dict[str, int] = {}
        for i, person in valid:
            value = getattr(person, attr)
            if value is None:
                continue
            if value in first:
                issues.append(issue_at(doc.file, doc.lines, ("principals", i, attr),
                                       f"'{value}' is also the {attr} of principals.{first[value]}"))
            else:
                first[value] = i
    logins: dict[str, int] = {}
    for i, person in valid:
        mine: dict[str, int] = {}
        for j, user in enumerate(person.local_users):
            mine.setdefault(user, j)
        for user, j in mine.items():
            if user in logins:
                path: ConfigPath = ("principals", i, "local_users", j)
                issues.append(issue_at(doc.file, doc.lines, path,
                                       f"'{user}' is also the local_users of principals.{logins[user]}"))
            else:
                logins[user] = i
    return issues


# --------------------------------------------------------------------------- roles


def asked_roles(data: Any, sections: Iterable[ConfigPath]) -> set[str] | None:
    """The role names the YAML gives meaning to under ``sections`` (a mapping of roles, or a list of them), or
    None when a section cannot be read (then which roles it asks for is unknown)."""
    if not isinstance(data, dict):
        return None
    found: set[str] = set()
    for section in sections:
        value: Any = data
        for part in section:
            if value is None:
                break
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        if value is None:
            continue
        if isinstance(value, dict):
            found |= {str(role) for role in value}
        elif isinstance(value, list):
            found |= {str(role) for role in value}
        else:
            return None
    return found
