"""Regulatory mapping: tags select controls, and each control must have its evidence.

The mapping file (``configs/regulatory.yaml``, loaded and validated by the config set with
:class:`RegulatoryMap`) names controls and the evidence each needs, and which controls a tag selects::

    controls:
      gdpr-art-5-minimisation:
        title: Personal data is declared with a lawful basis and retention (GDPR art. 5, 6)
        evidence: [check:personal_data]
    tags:
      gdpr: [gdpr-art-5-minimisation]

Evidence sources (:func:`parse_source`):

- ``gate:<id>`` — that gate ran earlier in the same promotion with ``pass`` or ``warn``;
- ``check:<prefix>`` — this gate's checks whose id is ``<prefix>`` or starts with ``<prefix>:``: at least
  one that was judged (not skipped) and none ``fail`` or ``error``;
- ``model_card:<section>`` — that section of the model card is written (not empty, no placeholder);
- ``manifest:<dotted.path>`` — that value of the manifest is present and not empty (``kpi.owner``,
  ``operations.monitoring``).

A control is satisfied when all its evidence is. :func:`judge_controls` gives one check per selected
control, ``regulatory:<tag>:<control>``: ``pass`` when satisfied, ``fail`` when some evidence is
missing (or the control names none), ``skipped`` when the only evidence not found is a gate that could
not have run (a pre-flight: no earlier gates at all). A tag the map does not know is an ``error``
(``regulatory:<tag>``). The evidence table has one row per (tag, control) saying which gate, check,
model card section or manifest value satisfied each source, or why not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from clearance.core.types import IDENTIFIER_MAX_LENGTH, IDENTIFIER_PATTERN
from gates.base import CheckResult, Status
from gates.compliance_review.model_card import SECTIONS, ModelCard, section_written

SOURCE_KINDS = ("gate", "check", "model_card", "manifest")
MAX_ECHO_CHARS = 64
#: At most this many tags are judged (the rest are named in one error check).
MAX_TAGS = 64

_GATE_ID = re.compile(r"[a-z][a-z0-9_]*")
_CHECK_PREFIX = re.compile(r"[A-Za-z0-9_.&:-]+")
_DOTTED = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")

#: Earlier gate statuses that count as evidence.
GATE_OK = frozenset({"pass", "warn"})


@dataclass(frozen=True)
class EvidenceSource:
    """One parsed evidence source: its kind and what it names."""

    kind: str
    target: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"


def parse_source(text: str) -> EvidenceSource:
    """Parse ``gate:<id>``, ``check:<prefix>``, ``model_card:<section>`` or ``manifest:<dotted.path>``."""
    if not isinstance(text, str):
        raise ValueError(f"an evidence source must be text, not {type(text).__name__}")
    kind, sep, target = text.partition(":")
    if not sep or kind not in SOURCE_KINDS:
        raise ValueError(f"evidence source {_echo(text)} must start with one of "
                         f"{', '.join(k + ':' for k in SOURCE_KINDS)}")
    if kind == "gate" and not _GATE_ID.fullmatch(target):
        raise ValueError(f"evidence source {_echo(text)}: a gate id is lower-case letters, digits and _")
    if kind == "check" and not _CHECK_PREFIX.fullmatch(target):
        raise ValueError(f"evidence source {_echo(text)}: a check id prefix is letters, digits and _.&:-")
    if kind == "model_card" and target not in SECTIONS:
        raise ValueError(f"evidence source {_echo(text)}: the model card sections are {', '.join(SECTIONS)}")
    if kind == "manifest" and not _DOTTED.fullmatch(target):
        raise ValueError(f"evidence source {_echo(text)}: a manifest path is dotted names, e.g. kpi.owner")
    return EvidenceSource(kind, target)


class Control(BaseModel):
    """One control of the mapping: a title and the evidence that satisfies it (all of it)."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(min_length=1, max_length=500)
    evidence: list[str] = Field(default_factory=list, max_length=32,
                                description="gate:<id> | check:<prefix> | model_card:<section> | "
                                            "manifest:<dotted.path>; all must be satisfied.")

    @field_validator("evidence")
    @classmethod
    def _sources_parse(cls, value: list[str]) -> list[str]:
        for source in value:
            parse_source(source)
        return value

    def sources(self) -> list[EvidenceSource]:
        return [parse_source(s) for s in self.evidence]


class RegulatoryMap(BaseModel):
    """The mapping file: controls by id, and the controls each tag selects."""

    model_config = ConfigDict(extra="forbid")

    controls: dict[str, Control] = Field(default_factory=dict)
    tags: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("controls")
    @classmethod
    def _control_ids(cls, value: dict[str, Control]) -> dict[str, Control]:
        for control_id in value:
            if not re.match(IDENTIFIER_PATTERN, control_id) or len(control_id) > 128:
                raise ValueError(f"control id {_echo(control_id)} must be lower-case letters, digits, '.', '_', "
                                 f"'-' (at most 128)")
        return value

    @field_validator("tags")
    @classmethod
    def _tag_names(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for tag in value:
            if not re.match(IDENTIFIER_PATTERN, tag) or len(tag) > IDENTIFIER_MAX_LENGTH:
                raise ValueError(f"tag {_echo(tag)} must be lower-case letters, digits, '.', '_', '-' (at most 64)")
        return value

    @model_validator(mode="after")
    def _tags_name_known_controls(self) -> RegulatoryMap:
        for tag, controls in self.tags.items():
            unknown = [c for c in controls if c not in self.controls]
            if unknown:
                raise ValueError(f"tag {tag!r} names unknown control(s): {', '.join(_echo(c) for c in unknown)}")
        return self


def _echo(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return repr(text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "…")


def manifest_value(manifest: Mapping[str, Any], path: str) -> Any:
    """The value at ``path`` (dotted keys) of the manifest, or None."""
    value: Any = manifest
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def present(value: Any) -> bool:
    """Present and not empty (None, blank text and empty collections are absent)."""
    if value is None:
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, Mapping | list | tuple | set):
        return bool(value)
    return True


def gate_status(entry: Any) -> str | None:
    """The status of an ``earlier_gates`` entry as text (``pass``, ``warn``…), or None."""
    raw = entry.get("status") if isinstance(entry, Mapping) else getattr(entry, "status", entry)
    raw = getattr(raw, "value", raw)
    return raw if isinstance(raw, str) else None


@dataclass(frozen=True)
class _Outcome:
    source: str
    satisfied: bool
    by: str  # what satisfied it, or why not
    undecidable: bool = False  # a gate that could not have run here (pre-flight)


def _judge_source(source: EvidenceSource, checks: list[CheckResult], earlier_gates: Mapping[str, Any] | None,
                  card: ModelCard | None, manifest: Mapping[str, Any], min_words: int) -> _Outcome:
    name = str(source)
    if source.kind == "gate":
        if earlier_gates is None:
            return _Outcome(name, False, f"no earlier gates given (pre-flight): {source.target} not judged here",
                            undecidable=True)
        status = gate_status(earlier_gates.get(source.target))
        if status is None:
            return _Outcome(name, False, f"gate {source.target} did not run before this gate")
        return _Outcome(name, status in GATE_OK, f"gate {source.target} {status}")
    if source.kind == "check":
        prefix = source.target
        hits = [c for c in checks if c.id == prefix or c.id.startswith(prefix + ":")]
        judged = [c for c in hits if c.status is not Status.SKIPPED]
        bad = [c for c in judged if c.status in (Status.FAIL, Status.ERROR)]
        if not judged:
            why = "all skipped" if hits else "none ran"
            return _Outcome(name, False, f"checks {prefix}*: {why}")
        if bad:
            shown = ", ".join(c.id for c in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
            return _Outcome(name, False, f"checks {prefix}*: {len(bad)} of {len(judged)} failed ({shown})")
        warned = sum(1 for c in judged if c.status is Status.WARN)
        note = f", {warned} warn" if warned else ""
        return _Outcome(name, True, f"checks {prefix}*: {len(judged)} judged, none failed{note}")
    if source.kind == "model_card":
        if card is not None and section_written(card, source.target, min_words=min_words):
            return _Outcome(name, True, f"model card ({card.source}) section {source.target}")
        return _Outcome(name, False, f"model card section {source.target} is not written")
    value = manifest_value(manifest, source.target)
    if present(value):
        return _Outcome(name, True, f"manifest {source.target}")
    return _Outcome(name, False, f"manifest {source.target} is not set")


def judge_controls(tags: Iterable[str], regulatory_map: RegulatoryMap, checks_so_far: list[CheckResult],
                   earlier_gates: Mapping[str, Any] | None, card: ModelCard | None, manifest: Mapping[str, Any], *,
                   min_words: int = 3) -> tuple[list[CheckResult], list[dict[str, Any]]]:
    """One check per control the tags select, and the evidence table (one row per tag and control).

    ``earlier_gates`` None means none could have run (pre-flight): controls whose only unmet evidence
    is a gate are then ``skipped``, not failed.
    """
    checks: list[CheckResult] = []
    table: list[dict[str, Any]] = []
    tags = list(dict.fromkeys(tags))
    if len(tags) > MAX_TAGS:
        checks.append(CheckResult(id="regulatory", status=Status.ERROR, observed=len(tags), threshold=MAX_TAGS,
                                  message=f"{len(tags)} regulatory tags, more than {MAX_TAGS}: the rest are not "
                                          f"judged"))
        tags = tags[:MAX_TAGS]
    for tag in tags:
        shown_tag = tag if isinstance(tag, str) and len(tag) <= MAX_ECHO_CHARS else _echo(tag)[1:-1]
        if tag not in regulatory_map.tags:
            known = ", ".join(sorted(regulatory_map.tags)[:20]) or "none"
            checks.append(CheckResult(id=f"regulatory:{shown_tag}", status=Status.ERROR, observed=shown_tag,
                                      message=f"unknown regulatory tag {_echo(tag)}: the mapping file knows {known}"))
            table.append({"tag": shown_tag, "control": None, "title": None, "status": Status.ERROR.value,
                          "satisfied_by": [], "evidence": [], "why": "unknown tag"})
            continue
        for control_id in regulatory_map.tags[tag]:
            control = regulatory_map.controls[control_id]
            outcomes = [_judge_source(s, checks_so_far, earlier_gates, card, manifest, min_words)
                        for s in control.sources()]
            missing = [o for o in outcomes if not o.satisfied and not o.undecidable]
            undecided = [o for o in outcomes if o.undecidable]
            satisfied = [o for o in outcomes if o.satisfied]
            if not outcomes:
                status, message = Status.FAIL, "the mapping names no evidence for this control"
            elif missing:
                status = Status.FAIL
                message = "missing evidence: " + "; ".join(f"{o.source} ({o.by})" for o in missing)
            elif undecided:
                status = Status.SKIPPED
                message = "not judged here: " + "; ".join(o.by for o in undecided)
            else:
                status = Status.PASS
                message = "satisfied by " + "; ".join(o.by for o in satisfied)
            title = control.title if len(control.title) <= 120 else control.title[:120] + "…"
            checks.append(CheckResult(
                id=f"regulatory:{tag}:{control_id}", status=status,
                observed={"satisfied_by": [o.by for o in satisfied], "missing": [o.source for o in missing]},
                threshold=list(control.evidence), message=f"{title}: {message}"))
            table.append({"tag": tag, "control": control_id, "title": control.title, "status": status.value,
                          "satisfied_by": [o.by for o in satisfied],
                          "evidence": [{"source": o.source, "satisfied": o.satisfied, "by": o.by}
                                       for o in outcomes]})
    return checks, table
