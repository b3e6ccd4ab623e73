"""configs/regulatory.yaml: loaded and validated by the config set, tags checked against it, file:line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from clearance.config import ConfigError, load_config_dir, load_regulatory, validate_paths
from gates.compliance_review.regulatory import RegulatoryMap

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "configs"


def issues(path: Path) -> list[str]:
    return [str(issue) for issue in validate_paths([path])]


def line_of(path: Path, needle: str, nth: int = 0) -> int:
    hits = [i + 1 for i, line in enumerate(path.read_text().splitlines()) if needle in line]
    return hits[nth]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


# --------------------------------------------------------------------------- the shipped file


def test_the_shipped_map_loads_and_is_exposed_by_the_config_set() -> None:
    config = load_config_dir(EXAMPLES)
    assert isinstance(config.regulatory, RegulatoryMap)
    assert {"gdpr", "eu-ai-act-high-risk", "sr-26-02", "hipaa"} <= set(config.regulatory.tags)
    as_json = config.regulatory_map_json()
    assert as_json is not None and RegulatoryMap.model_validate(as_json) == config.regulatory
    assert as_json == yaml.safe_load((EXAMPLES / "regulatory.yaml").read_text())
    assert any(file.endswith("regulatory.yaml") for file in config.files)
    assert load_regulatory(EXAMPLES / "regulatory.yaml") == config.regulatory


def test_every_shipped_control_is_selected_and_names_real_evidence() -> None:
    mapping = load_regulatory(EXAMPLES / "regulatory.yaml")
    selected = {control for controls in mapping.tags.values() for control in controls}
    assert selected == set(mapping.controls), "a control no tag selects"
    from gates.base import registered_gates

    for control_id, control in mapping.controls.items():
        assert control.evidence, control_id
        for source in control.sources():
            if source.kind == "gate":
                assert source.target in registered_gates(), (control_id, source)
            if source.kind == "check":
                assert source.target in {"model_card", "fairness", "personal_data", "lineage", "kpi",
                                         "business"}, (control_id, source)


def test_the_tags_of_the_shipped_configs_are_known() -> None:
    config = load_config_dir(EXAMPLES)
    assert config.regulatory is not None
    used = set(config.manifest("churn-classifier").regulatory_tags)
    for policy in config.policies.values():
        used |= set(policy.regulatory_tags)
    assert used and used <= set(config.regulatory.tags)


def test_no_mapping_file_means_no_map(configs: Path) -> None:
    (configs / "regulatory.yaml").unlink()
    for path in [configs / "models" / "churn-classifier.yaml", *sorted((configs / "policies").glob("*.yaml"))]:
        text = path.read_text()
        path.write_text("\n".join(line for line in text.splitlines()
                                  if not line.startswith("regulatory_tags:")) + "\n")
    _strip_gate_tags(configs)
    config = load_config_dir(configs)
    assert config.regulatory is None and config.regulatory_map_json() is None


def _strip_gate_tags(configs: Path) -> None:
    for path in sorted((configs / "policies").glob("*.yaml")):
        lines = [line for line in path.read_text().splitlines()
                 if not line.strip().startswith("tags: [") or line.strip().startswith("tags: []")]
        path.write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- a broken mapping file


def test_bad_mapping_file_errors_name_file_line_and_field(configs: Path) -> None:
    path = configs / "regulatory.yaml"
    path.write_text(
        "controls:\n"                                                # 1
        "  good-control:\n"                                          # 2
        "    title: Fine (GDPR art. 5)\n"                            # 3
        "    evidence: [check:personal_data]\n"                      # 4
        "  no-title:\n"                                              # 5
        "    evidence: [gate:data_check]\n"                          # 6
        "  bad-source:\n"                                            # 7
        "    title: Bad source\n"                                    # 8
        "    evidence: [report:whatever]\n"                          # 9
        "  bad-section:\n"                                           # 10
        "    title: Bad section\n"                                   # 11
        "    evidence: [model_card:favourite_colour]\n"              # 12
        "    evidnce: []\n"                                          # 13
        "tags:\n"                                                    # 14
        "  gdpr: [good-control]\n"                                   # 15
    )
    found = issues(configs)
    assert "configs/regulatory.yaml:5: controls.no-title.title: required" in found[0] or any(
        f.startswith("configs/regulatory.yaml:5: controls.no-title.title:") for f in found), found
    assert any(f.startswith("configs/regulatory.yaml:9: controls.bad-source.evidence:") and "report:whatever" in f
               and "gate:" in f for f in found), found
    assert any(f.startswith("configs/regulatory.yaml:12: controls.bad-section.evidence:") and "favourite_colour" in f
               for f in found), found
    assert any(f.startswith("configs/regulatory.yaml:13: controls.bad-section.evidnce: unknown key") for f in found), \
        found
    assert all(f.startswith("configs/regulatory.yaml:") for f in found), found
    with pytest.raises(ConfigError):
        load_config_dir(configs)
    with pytest.raises(ConfigError) as info:
        load_regulatory(path)
    assert [str(i) for i in info.value.issues] == [f for f in found if f.startswith("configs/regulatory.yaml")]


def test_a_tag_naming_an_unknown_control_is_located_on_its_item(configs: Path) -> None:
    path = configs / "regulatory.yaml"
    edit(path, "    - gdpr-art-25-data-protection-by-design\n",
         "    - gdpr-art-25-data-protection-by-design\n    - gdpr-art-99-made-up\n")
    line = line_of(path, "gdpr-art-99-made-up")
    found = issues(configs)
    assert found == [f"configs/regulatory.yaml:{line}: tags.gdpr.2: unknown control 'gdpr-art-99-made-up' "
                     f"(controls: {', '.join(sorted(load_regulatory(EXAMPLES / 'regulatory.yaml').controls)[:20])})"]


def test_bad_ids_and_yaml_errors(configs: Path) -> None:
    path = configs / "regulatory.yaml"
    path.write_text("controls:\n  Bad Id:\n    title: x\n    evidence: [check:kpi]\ntags: {}\n")
    [found] = [f for f in issues(configs) if "regulatory.yaml" in f]
    assert found.startswith("configs/regulatory.yaml:1: controls:") and "Bad Id" in found
    path.write_text("controls: {}\ncontrols: {}\ntags: {}\n")
    assert "configs/regulatory.yaml:2: controls: duplicate key (first defined on line 1)" in issues(configs)


def test_a_lone_mapping_file_is_recognised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lone = tmp_path / "elsewhere" / "mapping.yaml"
    lone.parent.mkdir()
    lone.write_text("controls:\n  c:\n    title: t\n    evidence: [nope]\ntags: {c: [c]}\n")
    [found] = issues(Path("elsewhere/mapping.yaml"))
    assert found.startswith("elsewhere/mapping.yaml:4: controls.c.evidence:"), found
    good = tmp_path / "regulatory.yaml"
    shutil.copy(EXAMPLES / "regulatory.yaml", good)
    assert issues(Path("regulatory.yaml")) == []


# --------------------------------------------------------------------------- tags the mapping does not know


def test_unknown_tag_in_a_manifest_names_file_and_line(configs: Path) -> None:
    path = configs / "models" / "churn-classifier.yaml"
    text = path.read_text()
    start = text.index("regulatory_tags: [")
    end = text.index("]", start)
    path.write_text(text[:start] + "regulatory_tags: [gdpr, gdrp" + text[end:])
    line = line_of(path, "regulatory_tags: [")
    known = ", ".join(sorted(load_regulatory(EXAMPLES / "regulatory.yaml").tags))
    found = issues(configs)
    assert found == [f"configs/models/churn-classifier.yaml:{line}: regulatory_tags.1: unknown regulatory tag "
                     f"'gdrp' (configs/regulatory.yaml knows: {known})"]
    assert issues(path) == found  # the file alone, inside its layout, reports it too


def test_unknown_tag_in_a_policy_and_in_a_gate_config(configs: Path) -> None:
    path = configs / "policies" / "high.yaml"
    text = path.read_text()
    path.write_text(text + "regulatory_tags: [sox]\n")
    found = issues(configs)
    assert any(f.startswith("configs/policies/high.yaml:") and "regulatory_tags" in f and "'sox'" in f
               for f in found), found
    # the tags of a compliance_review entry (policy or a manifest's override) are checked too
    path.write_text(text)
    tags_line = next(line for line in text.splitlines() if line.strip().startswith("tags: ["))
    path.write_text(text.replace(tags_line, tags_line.replace("tags: [", "tags: [pci-dss, "), 1))
    line = line_of(path, "pci-dss")
    [found_one] = issues(configs)
    assert found_one.startswith(f"configs/policies/high.yaml:{line}: gates.") and \
        ".config.regulatory.tags.0: unknown regulatory tag 'pci-dss'" in found_one, found_one


def test_tags_without_a_mapping_file_are_an_issue(configs: Path) -> None:
    (configs / "regulatory.yaml").unlink()
    found = issues(configs)
    assert found and all("there is no configs/regulatory.yaml" in f for f in found), found
    assert any(f.startswith("configs/models/churn-classifier.yaml:") for f in found)


# --------------------------------------------------------------------------- the manifest additions


def test_the_example_manifest_carries_every_new_field() -> None:
    manifest = load_config_dir(EXAMPLES).manifest("churn-classifier")
    assert manifest.sponsor and manifest.regulatory_tags == ["gdpr"]
    assert manifest.kpi is not None and manifest.kpi.owner and manifest.kpi.review_date is not None
    assert manifest.operations is not None and manifest.operations.monitoring and manifest.operations.runbook
    assert manifest.model_card is not None and set(manifest.model_card) == {
        "intended_use", "out_of_scope", "training_data", "evaluation", "limitations", "ethical_considerations",
        "owner_contact", "risk_tier", "regulatory_tags"}
    version = next(iter(manifest.versions.values()))
    assert {d.role for d in version.datasets} == {"train", "eval", "predictions"}
    assert version.lineage is not None and version.evaluation is not None
    assert version.evaluation.protected_attributes == ["gender", "age_band"]
    as_json = manifest.model_dump(mode="json")
    assert as_json["kpi"]["review_date"] == "2027-06-30"  # what the gate reads: an ISO date string


def test_bad_manifest_additions_name_file_and_line(configs: Path) -> None:
    path = configs / "models" / "churn-classifier.yaml"
    edit(path, 'review_date: "2027-06-30"', "review_date: 2027-13-01")
    edit(path, "threshold: 0.5", "threshold: 1.5")
    edit(path, "  on_call: ml-platform-oncall", "  on_call: ml-platform-oncall\n  pager: nobody")
    found = issues(configs)
    assert found == [
        f"configs/models/churn-classifier.yaml:{line_of(path, 'review_date:')}: kpi.review_date: must be a valid "
        "date or datetime, month value is outside expected range of 1-12",
        f"configs/models/churn-classifier.yaml:{line_of(path, 'pager:')}: operations.pager: unknown key (allowed: "
        "consumers, runbook, on_call, monitoring, ci, cost_model)",
        f"configs/models/churn-classifier.yaml:{line_of(path, 'threshold: 1.5')}: "
        "versions.1.0.0.evaluation.threshold: must be <= 1.0",
    ]


def test_evaluation_intersections_name_protected_attributes(configs: Path) -> None:
    path = configs / "models" / "churn-classifier.yaml"
    edit(path, "intersections: [[gender, age_band]]", "intersections: [[gender, region]]")
    assert issues(configs) == [
        f"configs/models/churn-classifier.yaml:{line_of(path, '    evaluation:')}: versions.1.0.0.evaluation: "
        "intersection ['gender', 'region'] names 'region', which is not in protected_attributes"]
