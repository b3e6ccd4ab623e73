"""Pydantic validation errors, worded for the person editing the YAML.

Why: pydantic speaks to programmers (``Input should be greater than or equal to 1`` at
``('approvals', 'roles', 'compliance', 'min')``); a config author needs
``approvals.roles.compliance.min: must be >= 1`` on the right line, the keys allowed where an
unknown one was written, and the constrained-string patterns of ``schema.py`` said in words.
Used for whole config files and for each gate's own config model.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from clearance.config.issues import ConfigIssue, ConfigPath, LineMap, dotted, line_of
from clearance.config.tighten import fmt
from clearance.core.types import IDENTIFIER_PATTERN
from gates.waivers import CHECK_PATTERN, VERSION_PATTERN

__all__ = ["humanize", "issues_from_validation"]


def issues_from_validation(errors: Iterable[Mapping[str, Any]], model: type[BaseModel], file: str,
                           lines: LineMap, prefix: ConfigPath = ()) -> list[ConfigIssue]:
    """Turn pydantic errors (relative to ``model`` at ``prefix``) into located, human issues."""
    issues = []
    for err in errors:
        loc = tuple(err["loc"])
        key_error = bool(loc) and loc[-1] == "[key]"  # a bad dict key, e.g. a role name
        if key_error:
            loc = loc[:-1]
        path = prefix + loc
        message = humanize(err, model, loc)
        if key_error:
            message = f"invalid key: {message}"
        issues.append(ConfigIssue(file, line_of(lines, path), dotted(path), message))
    return issues


# pydantic's wording → ours; {…} are filled from the error's ctx.
_BY_TYPE = {
    "missing": "required",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "multiple_of": "must be a multiple of {multiple_of}",
    "string_too_short": "must be at least {min_length} characters",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must have at least {min_length} item(s)",
    "too_long": "must have at most {max_length} item(s)",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "set_type": "must be a list",
    "tuple_type": "must be a list",
    "dict_type": "must be a mapping (key: value)",
    "model_type": "must be a mapping (key: value)",
    "model_attributes_type": "must be a mapping (key: value)",
    "time_delta_type": "must be a duration like 30m, 24h or 7d",
    "time_delta_parsing": "must be a duration like 30m, 24h or 7d",
    "datetime_type": "must be a date-time like 2025-01-31T12:00:00Z",
    "datetime_parsing": "must be a date-time like 2025-01-31T12:00:00Z",
    "datetime_from_date_parsing": "must be a date-time like 2025-01-31T12:00:00Z",
    "timezone_aware": "must be a date-time with a timezone, like 2025-01-31T12:00:00Z",
    "date_type": "must be a date like 2025-01-31",
    "date_parsing": "must be a date like 2025-01-31",
    "url_parsing": "must be a URL",
    "none_required": "must be null",
}
# Patterns of schema.py's constrained strings, said in words.
_PATTERNS = {
    IDENTIFIER_PATTERN: "must be lower-case letters, digits, '_', '.' or '-', starting with a letter or digit",
    r"^[0-9a-f]{64}$": "must be a SHA-256: 64 lower-case hex characters",
    r"^[UW][A-Z0-9]{2,}$": "must be a Slack user id like U0123ABCD",
    r"^[^@\s]+@[^@\s]+$": "must be an e-mail address",
    CHECK_PATTERN: "must be a check id, or a prefix of one ending in * (format:*); no spaces, and not * alone",
    VERSION_PATTERN: "must be a version (1.4.2) or a prefix of one ending in * (1.4.*); not * alone",
}
# Show what was given for type-ish errors, where it helps spotting the typo.
_SHOW_INPUT = {"enum", "literal_error", "int_parsing", "float_parsing", "bool_parsing", "string_pattern_mismatch",
               "time_delta_parsing", "int_type", "float_type", "string_type", "bool_type", "int_from_float"}


def humanize(err: Mapping[str, Any], model: type[BaseModel], loc: ConfigPath) -> str:
    """A short message for one pydantic error (``must be >= 1``, ``unknown key (allowed: …)``…)."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        return f"unknown key (allowed: {', '.join(allowed)})" if allowed else "unknown key"
    if kind in ("enum", "literal_error"):
        options = re.findall(r"'([^']*)'", str(ctx.get("expected", ""))) or [str(ctx.get("expected", ""))]
        message = f"must be one of: {', '.join(options)}"
    elif kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        message = _PATTERNS.get(pattern, f"must match the pattern {pattern}")
    elif kind in ("value_error", "assertion_error"):
        message = re.sub(r"^(Value|Assertion) error, ", "", err["msg"])
    elif kind in _BY_TYPE:
        try:
            message = _BY_TYPE[kind].format(**ctx)
        except (KeyError, IndexError):
            message = _BY_TYPE[kind].split(" {")[0]
    else:  # a type we did not word ourselves: pydantic's, in the same voice
        msg = err["msg"].replace("Input should be", "must be")
        message = msg[:1].lower() + msg[1:]
    given = err.get("input")
    if kind in _SHOW_INPUT and (given is None or isinstance(given, (str, int, float, bool))):
        message += f" (got {_show(given)})"
    return message


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    return fmt(value)


def _fields_at(model: type[BaseModel], path: ConfigPath) -> list[str]:
    """Names of the keys allowed at ``path`` inside ``model`` (for "unknown key" messages)."""
    tp: Any = model
    for part in path:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            info = tp.model_fields.get(str(part))
            if info is None:
                return []
            tp = info.annotation
        elif origin in (list, tuple, set, frozenset):
            tp = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        elif origin is dict:
            tp = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        else:
            return []
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, …]`` → X; ``X | None`` → X (the part that can hold keys)."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = next((a for a in options if isinstance(a, type) and issubclass(a, BaseModel)), options[0])
        else:
            return tp
