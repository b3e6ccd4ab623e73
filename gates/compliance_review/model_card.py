"""The model card check of the compliance_review gate: pure, on plain data.

A model card comes from the manifest's ``model_card`` mapping (section → text or list of
text) or from a Markdown file of the bundle whose headings (any level, case-insensitive)
name known sections. :func:`read_model_card` turns either into a :class:`ModelCard`;
:func:`check_model_card` judges it against the sections a tier requires.

Inputs are hostile: values of any type, huge texts, duplicate headings. Messages quote at
most a short, truncated snippet of user text and escape nothing themselves (renderers do).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from gates.base import CheckResult, Status

#: The sections of a model card, in the order checks are reported.
SECTIONS: tuple[str, ...] = (
    "intended_use", "out_of_scope", "training_data", "evaluation", "limitations",
    "ethical_considerations", "owner_contact", "risk_tier", "regulatory_tags",
)

#: Sections each risk tier requires. ``low``: what the model is for, who answers for it and
#: its tier; ``medium`` adds what it must not be used for, its data, its evaluation and its
#: limits; ``high`` requires every section.
REQUIRED_BY_TIER: dict[str, frozenset[str]] = {
    "low": frozenset({"intended_use", "owner_contact", "risk_tier"}),
    "medium": frozenset({"intended_use", "owner_contact", "risk_tier", "out_of_scope", "training_data",
                         "evaluation", "limitations"}),
    "high": frozenset(SECTIONS),
}

#: A card larger than this (UTF-8 bytes of its text) is not read: the check errors.
MAX_CARD_BYTES = 256 * 1024

#: Sections whose values are short by nature (a tier, tags, a name or address): only the
#: placeholder forms fail them, not the word count.
SHORT_SECTIONS: frozenset[str] = frozenset({"owner_contact", "risk_tier", "regulatory_tags"})

_SNIPPET = 40  # characters of user text quoted in a message (several quotes stay far below 200)

# Heading (or manifest key) after normalisation → section.
_HEADINGS: dict[str, str] = {
    "intended use": "intended_use", "intended uses": "intended_use",
    "out of scope": "out_of_scope", "out of scope use": "out_of_scope", "out of scope uses": "out_of_scope",
    "training data": "training_data", "lineage": "training_data", "training data and lineage": "training_data",
    "training data lineage": "training_data", "data lineage": "training_data",
    "evaluation": "evaluation", "evaluation data": "evaluation", "evaluation results": "evaluation",
    "evaluation data and results": "evaluation",
    "limitations": "limitations", "known failure modes": "limitations",
    "limitations and known failure modes": "limitations",
    "ethical considerations": "ethical_considerations",
    "owner": "owner_contact", "contact": "owner_contact", "owner and contact": "owner_contact",
    "owner contact": "owner_contact",
    "risk tier": "risk_tier",
    "regulatory tags": "regulatory_tags",
}

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_WORD = re.compile(r"\w+")
_TRIM = " \t\r\n*_`>#-:.!;,\"'"


def _norm_heading(text: str) -> str:
    """Lower case, hyphens/underscores as spaces, no surrounding punctuation, one space between words."""
    text = re.sub(r"[-_/]+", " ", text.lower()).strip(_TRIM)
    return " ".join(text.split())


def _snippet(text: str) -> str:
    """A bounded quote of user text, on one line."""
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= _SNIPPET else flat[:_SNIPPET] + "…")


@dataclass(frozen=True)
class ModelCard:
    """A model card as read: section texts plus what went wrong reading it.

    ``source`` is ``"manifest"``, ``"markdown"`` or ``None`` (no card). ``sections`` holds the
    text of each section found (several headings of one section joined); ``invalid`` names
    sections whose value was not text; ``duplicates`` lists headings seen more than once;
    ``size`` is the card's size in UTF-8 bytes (counted up to just past the limit); ``problem``
    says why the card could not be read at all; ``manifest_risk_tier`` is the manifest's
    ``risk_tier`` (``None`` if absent or not text), which the card's must match.
    """

    source: str | None = None
    sections: dict[str, str] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)
    size: int = 0
    problem: str | None = None
    manifest_risk_tier: str | None = None

    @property
    def oversize(self) -> bool:
        return self.size > MAX_CARD_BYTES


def _add(sections: dict[str, list[str]], section: str, text: str) -> None:
    sections.setdefault(section, []).append(text)


def _join(sections: dict[str, list[str]]) -> dict[str, str]:
    return {s: "\n\n".join(t for t in texts if t.strip()) for s, texts in sections.items()}


def _from_manifest(raw: Any) -> ModelCard:
    if not isinstance(raw, Mapping):
        return ModelCard(source="manifest", problem=f"the manifest's model_card is not a mapping "
                                                     f"({type(raw).__name__})")
    size = 0
    sections: dict[str, list[str]] = {}
    invalid: dict[str, str] = {}
    for key, value in raw.items():
        section = _HEADINGS.get(_norm_heading(key)) if isinstance(key, str) else None
        if section is None:
            continue
        if isinstance(value, str):
            texts = [value]
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            texts = value
        elif value is None:
            texts = [""]
        else:
            kind = type(value).__name__
            if isinstance(value, list):
                kind = "list with non-text items"
            invalid[section] = f"not text ({kind})"
            continue
        for text in texts:
            size += len(text.encode("utf-8", "surrogatepass"))
            if size > MAX_CARD_BYTES:
                return ModelCard(source="manifest", size=size)
        _add(sections, section, "\n".join(texts))
    return ModelCard(source="manifest", sections=_join(sections), invalid=invalid, size=size)


def _from_markdown(markdown: Any) -> ModelCard:
    if not isinstance(markdown, str):
        return ModelCard(source="markdown", problem=f"the model card file is not text ({type(markdown).__name__})")
    size = len(markdown.encode("utf-8", "surrogatepass"))
    if size > MAX_CARD_BYTES:
        return ModelCard(source="markdown", size=size)
    sections: dict[str, list[str]] = {}
    seen: set[str] = set()
    duplicates: list[str] = []
    current: str | None = None  # the section text goes to
    level = 0  # the level of the heading that opened it
    fence: str | None = None
    for line in markdown.splitlines():
        if fence is not None:
            if line.strip().startswith(fence):
                fence = None
        elif (opened := _FENCE.match(line)) is not None:
            fence = opened.group(1)[:3]
        elif (heading := _ATX.match(line)) is not None:
            this_level = len(heading.group(1))
            name = _norm_heading(heading.group(2) or "")
            section = _HEADINGS.get(name)
            if section is not None:
                if name in seen:
                    duplicates.append(name)
                seen.add(name)
                current, level = section, this_level
                _add(sections, section, "")
                continue
            if current is not None and this_level > level:
                pass  # an unknown sub-heading stays in its section
            else:
                current = None
                continue
        if current is not None:
            sections[current][-1] += line + "\n"
    return ModelCard(source="markdown", sections=_join(sections), duplicates=duplicates, size=size)


def read_model_card(manifest: dict[str, Any], markdown: str | None) -> ModelCard:
    """The model card of a candidate: the manifest's ``model_card`` section if present, else the Markdown."""
    raw = manifest.get("model_card") if isinstance(manifest, Mapping) else None
    tier = manifest.get("risk_tier") if isinstance(manifest, Mapping) else None
    if raw is not None:
        card = _from_manifest(raw)
    elif markdown is not None:
        card = _from_markdown(markdown)
    else:
        card = ModelCard()
    return replace(card, manifest_risk_tier=tier if isinstance(tier, str) else None)


def _placeholder(text: str) -> str | None:
    """The placeholder form ``text`` is, if it is one."""
    core = " ".join(text.lower().split()).lstrip(">").strip(_TRIM.replace(">", ""))
    if core in {"tbd", "todo", "tba", "fixme", "n/a", "na", "coming soon", "same as above"}:
        return core.upper() if len(core) <= 5 else core
    if re.fullmatch(r"(?:tbd|todo|fixme)\b.*", core, flags=re.DOTALL):
        return core.split()[0].strip(_TRIM).upper()
    if "lorem ipsum" in core:
        return "lorem ipsum"
    if re.fullmatch(r"x{2,}", core):
        return "xxx"
    if re.fullmatch(r"[?\s]+", text.strip()):
        return "?"
    if re.fullmatch(r"<[^<>]*>", core) or "<fill in" in core:
        return "<fill in>"
    return None


def _defect(section: str, text: str, min_words: int) -> str | None:
    """Why a present section's text does not count as written, if it does not."""
    if not text.strip():
        return "empty"
    form = _placeholder(text)
    if form is not None:
        return f"a placeholder ({form!r})"
    if section in SHORT_SECTIONS:
        return None
    words = len(_WORD.findall(text))
    if words <= 1:
        return "a one-word answer"
    if words < min_words:
        return f"{words} words, fewer than {min_words}"
    return None


def section_written(card: ModelCard, section: str, *, min_words: int = 3) -> bool:
    """Whether ``card`` has ``section`` written: present, text, not empty, no placeholder, enough words."""
    if card.oversize or card.problem is not None or section in card.invalid or section not in card.sections:
        return False
    return _defect(section, card.sections[section], min_words) is None


def _norm_tier(text: str) -> str:
    return " ".join(text.lower().split()).strip(_TRIM)


def check_model_card(card: ModelCard, required: set[str] | frozenset[str], *,
                     min_words: int = 3) -> list[CheckResult]:
    """Checks of ``card``: a ``model_card`` summary, one per required section, warnings, the tier match.

    The card's risk tier must match the manifest's (``card.manifest_risk_tier``).
    """
    manifest_risk_tier = card.manifest_risk_tier
    if card.oversize:
        return [CheckResult(id="model_card", status=Status.ERROR, observed=card.size, threshold=MAX_CARD_BYTES,
                            message=f"model card is {card.size} bytes, over the limit of {MAX_CARD_BYTES}: "
                                    f"not read")]
    checks: list[CheckResult] = []
    if card.source is None or card.problem is not None:
        absent = card.problem or "no model card: no model_card section in the manifest and no model card file"
        checks.append(CheckResult(id="model_card", status=Status.FAIL, message=absent))
    else:
        checks.append(CheckResult(id="model_card", status=Status.PASS, observed=card.source,
                                  message=f"model card read from the {card.source}"))
    for section in SECTIONS:
        if section in card.invalid:
            why: str | None = card.invalid[section]
        elif section in card.sections:
            why = _defect(section, card.sections[section], min_words)
        else:
            why = "missing" if section in required else None
            if why is None:
                continue
        if section in required:
            if why is None:
                checks.append(CheckResult(id=f"model_card:{section}", status=Status.PASS,
                                          message=f"{section} is written"))
            else:
                checks.append(CheckResult(id=f"model_card:{section}", status=Status.FAIL, observed=why,
                                          message=f"required section {section} is {why}"))
        elif why is not None:
            checks.append(CheckResult(id=f"model_card:{section}", status=Status.WARN, observed=why,
                                      message=f"section {section} (not required) is {why}"))
    for unknown in sorted(set(required) - set(SECTIONS)):
        checks.append(CheckResult(id=f"model_card:{unknown[:_SNIPPET]}", status=Status.ERROR,
                                  message=f"required section {_snippet(unknown)} is not a model card section"))
    if card.duplicates:
        names = sorted(set(card.duplicates))
        shown = ", ".join(_snippet(n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        checks.append(CheckResult(id="model_card:duplicate_headings", status=Status.WARN, observed=len(card.duplicates),
                                  message=f"headings appear more than once (their texts are joined): {shown}"))
    card_tier = card.sections.get("risk_tier")
    if card_tier is not None and card_tier.strip() and "risk_tier" not in card.invalid:
        if not isinstance(manifest_risk_tier, str) or not manifest_risk_tier.strip():
            checks.append(CheckResult(id="model_card:risk_tier_matches", status=Status.FAIL,
                                      observed=_snippet(card_tier),
                                      message=f"the card's risk tier {_snippet(card_tier)} cannot be compared: "
                                              f"the manifest has no risk_tier"))
        elif _norm_tier(card_tier) == _norm_tier(manifest_risk_tier):
            checks.append(CheckResult(id="model_card:risk_tier_matches", status=Status.PASS,
                                      observed=_norm_tier(card_tier)[:_SNIPPET],
                                      message="the card's risk tier matches the manifest's"))
        else:
            checks.append(CheckResult(id="model_card:risk_tier_matches", status=Status.FAIL,
                                      observed=_snippet(card_tier), threshold=_snippet(manifest_risk_tier),
                                      message=f"the card's risk tier {_snippet(card_tier)} does not match the "
                                              f"manifest's risk_tier {_snippet(manifest_risk_tier)}"))
    return checks
