"""Field types shared by the config schema, the gates and the domain models."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> Any:
    """Accept ``"30m"``, ``"24h"``, ``"7d"`` besides ISO 8601 and seconds, for humane YAML."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="Lower-case hex SHA-256.")]
#: Names of models, tiers, roles, principals, tags: lower-case letters, digits, ``_ . -``, a letter or digit first.
IDENTIFIER_PATTERN = r"^[a-z0-9][a-z0-9_.-]*$"
IDENTIFIER_MAX_LENGTH = 64
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, max_length=IDENTIFIER_MAX_LENGTH)]


class StrictModel(BaseModel):
    """Base for config models: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
