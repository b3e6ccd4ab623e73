"""Lineage of a model version: every file pinned by digest, the code revision and training run recorded.

Pure: reads the manifest as JSON (a dict, as :class:`gates.base.GateInputs` carries it) and returns
:class:`gates.base.CheckResult` s. Hostile values (wrong types, huge strings, missing sections) become
failed checks that name the field; this module never raises on manifest content.

Checks, in order:

- ``lineage:version`` — only when the version (or ``versions``) cannot be read: one failed check, nothing else.
- ``lineage:artifact:<name>`` — one per artifact; ``<name>`` is its ``key``. Fails without a lower-case hex
  SHA-256 in ``sha256``.
- ``lineage:dataset:<name>`` — one per dataset; ``<name>`` is its ``role`` and ``uri`` (``train:s3://…``).
  Pinned by ``sha256``; an unpinned dataset whose role is ``train`` or ``reference`` (the model was fit on
  it or is judged against it) fails, any other role warns. An unknown or missing role counts as ``train``.
- ``lineage:code_revision`` — the version's ``lineage.code_revision`` must be a full 40-hex git commit
  (short hashes and branch names fail: they do not pin the code).
- ``lineage:training_run`` — ``lineage.training_run`` must be a non-empty string id (MLflow, Prefect…).

Decisions: a name that is not a short string (over :data:`MAX_NAME_CHARS` or not a string) is replaced by
``#<index>`` so ids stay readable and bounded; two entries with the same name get ``#<index>`` appended so ids
stay unique. Values echoed in messages are cut to :data:`MAX_ECHO_CHARS`.
"""

from __future__ import annotations

import re
from typing import Any

from gates.base import CheckResult, Status

MAX_NAME_CHARS = 256
MAX_ECHO_CHARS = 80
MAX_RUN_ID_CHARS = 256
STRICT_ROLES = frozenset({"train", "reference"})
KNOWN_ROLES = frozenset({"train", "eval", "reference", "production_sample", "predictions"})

_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def _echo(value: Any) -> str:
    """A bounded description of a value for a message (never the whole of a huge string)."""
    if isinstance(value, str):
        text = value if len(value) <= MAX_ECHO_CHARS else f"{value[:MAX_ECHO_CHARS]}… ({len(value)} chars)"
        return repr(text)
    return f"a {type(value).__name__}"


def _is_digest(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 64 and _SHA256.fullmatch(value) is not None


def _name(value: Any, index: int, seen: set[str]) -> str:
    name = value if isinstance(value, str) and 0 < len(value) <= MAX_NAME_CHARS else f"#{index}"
    if name in seen:
        name = f"{name}#{index}"
    seen.add(name)
    return name


def _entries(version: dict[str, Any], field: str, checks: list[CheckResult]) -> list[Any]:
    raw = version.get(field, [])
    if raw is None:
        return []
    if not isinstance(raw, list):
        checks.append(CheckResult(id=f"lineage:{field}", status=Status.FAIL, observed=type(raw).__name__,
                                  message=f"{field} must be a list, got {_echo(raw)}"))
        return []
    return raw


def _artifacts(version: dict[str, Any], checks: list[CheckResult]) -> None:
    entries = _entries(version, "artifacts", checks)
    if not entries and not any(c.id == "lineage:artifacts" for c in checks):
        checks.append(CheckResult(id="lineage:artifacts", status=Status.FAIL, observed=0,
                                  message="the version lists no artifacts"))
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            name = _name(None, i, seen)
            checks.append(CheckResult(id=f"lineage:artifact:{name}", status=Status.FAIL,
                                      message=f"artifacts[{i}] must be a mapping, got {_echo(entry)}"))
            continue
        name = _name(entry.get("key"), i, seen)
        digest = entry.get("sha256")
        if _is_digest(digest):
            checks.append(CheckResult(id=f"lineage:artifact:{name}", status=Status.PASS, observed=digest,
                                      message=f"artifact {name} pinned by sha256"))
        else:
            what = "missing" if digest is None else f"not a lower-case hex SHA-256: {_echo(digest)}"
            checks.append(CheckResult(id=f"lineage:artifact:{name}", status=Status.FAIL,
                                      message=f"artifacts[{i}].sha256 of {name} is {what}"))


def _datasets(version: dict[str, Any], checks: list[CheckResult]) -> None:
    seen: set[str] = set()
    for i, entry in enumerate(_entries(version, "datasets", checks)):
        if not isinstance(entry, dict):
            name = _name(None, i, seen)
            checks.append(CheckResult(id=f"lineage:dataset:{name}", status=Status.FAIL,
                                      message=f"datasets[{i}] must be a mapping, got {_echo(entry)}"))
            continue
        role, uri = entry.get("role"), entry.get("uri")
        known = isinstance(role, str) and role in KNOWN_ROLES
        label = f"{role}:{uri}" if known and isinstance(uri, str) else None
        name = _name(label, i, seen)
        digest = entry.get("sha256")
        if _is_digest(digest):
            checks.append(CheckResult(id=f"lineage:dataset:{name}", status=Status.PASS, observed=digest,
                                      message=f"dataset {name} pinned by sha256"))
            continue
        strict = not known or role in STRICT_ROLES
        role_text = role if known else f"unknown role {_echo(role)}"
        what = ("not pinned (no sha256)" if digest is None
                else f"sha256 is not a lower-case hex SHA-256: {_echo(digest)}")
        checks.append(CheckResult(
            id=f"lineage:dataset:{name}", status=Status.FAIL if strict else Status.WARN,
            observed=role if known else None,
            threshold="sha256 required" if strict else "sha256 expected",
            message=f"datasets[{i}] ({role_text}) is {what}"
                    + ("; a train or reference dataset must be pinned" if strict else "")))


def _lineage(version: dict[str, Any], checks: list[CheckResult]) -> None:
    raw = version.get("lineage")
    if not isinstance(raw, dict):
        what = "missing" if raw is None else f"not a mapping ({_echo(raw)})"
        raw = {}
        note = f"lineage is {what}; "
    else:
        note = ""
    rev = raw.get("code_revision")
    if isinstance(rev, str) and len(rev) == 40 and _COMMIT.fullmatch(rev):
        checks.append(CheckResult(id="lineage:code_revision", status=Status.PASS, observed=rev,
                                  message=f"trained from commit {rev}"))
    else:
        what = "missing" if rev is None else f"not a full 40-hex git commit: {_echo(rev)}"
        checks.append(CheckResult(id="lineage:code_revision", status=Status.FAIL, threshold="40-hex git commit",
                                  message=f"{note}lineage.code_revision is {what}"))
    run = raw.get("training_run")
    if isinstance(run, str) and run.strip() and len(run) <= MAX_RUN_ID_CHARS:
        checks.append(CheckResult(id="lineage:training_run", status=Status.PASS, observed=run,
                                  message=f"training run {run}"))
    else:
        if run is None:
            what = "missing"
        elif isinstance(run, str) and run.strip():
            what = f"longer than {MAX_RUN_ID_CHARS} characters: {_echo(run)}"
        else:
            what = f"not a non-empty string: {_echo(run)}"
        checks.append(CheckResult(id="lineage:training_run", status=Status.FAIL, threshold="a run id",
                                  message=f"{note}lineage.training_run is {what}"))


def check_lineage(manifest: dict[str, Any], version: str) -> list[CheckResult]:
    """Lineage checks of ``version`` in ``manifest`` (the ModelManifest as JSON)."""
    versions = manifest.get("versions") if isinstance(manifest, dict) else None
    if not isinstance(versions, dict):
        return [CheckResult(id="lineage:version", status=Status.FAIL,
                            message=f"manifest versions must be a mapping, got {_echo(versions)}")]
    entry = versions.get(version) if isinstance(version, str) else None
    if not isinstance(entry, dict):
        what = "not in the manifest" if entry is None else f"not a mapping ({_echo(entry)})"
        return [CheckResult(id="lineage:version", status=Status.FAIL, observed=_echo(version),
                            message=f"version {_echo(version)} is {what}")]
    checks: list[CheckResult] = []
    _artifacts(entry, checks)
    _datasets(entry, checks)
    _lineage(entry, checks)
    return checks
