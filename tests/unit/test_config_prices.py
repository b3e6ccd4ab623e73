"""configs/prices.yaml (the cost gate's price table) and the manifest's ``serving`` section: loaded, validated,
exposed by the config set, errors at file:line."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from clearance.config import ConfigError, PriceTable, Serving, load_config_dir, load_prices, validate_paths
from clearance.config.jsonschema_export import build_schema
from clearance.config.schema import ModelManifest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "configs"


def issues(path: Path) -> list[str]:
    return [str(issue) for issue in validate_paths([path])]


def line_of(path: Path, needle: str) -> int:
    return next(i + 1 for i, line in enumerate(path.read_text().splitlines()) if needle in line)


# --------------------------------------------------------------------------- the shipped price table


def test_the_shipped_table_loads_and_is_exposed_by_the_config_set() -> None:
    config = load_config_dir(EXAMPLES)
    raw = yaml.safe_load((EXAMPLES / "prices.yaml").read_text())
    assert config.prices == raw["prices"]
    as_json = config.price_table_json()
    assert as_json == raw["prices"] and json.loads(json.dumps(as_json)) == as_json  # {instance_type: USD/hour}
    assert as_json is not config.prices  # a copy: the gate cannot change the config set
    assert any(file.endswith("prices.yaml") for file in config.files)
    table = load_prices(EXAMPLES / "prices.yaml")
    assert isinstance(table, PriceTable) and table.prices == config.prices and table.as_of is not None
    for instance in ("ml.m5.large", "ml.m5.xlarge", "ml.c5.large", "ml.c5.xlarge", "ml.g4dn.xlarge", "m5.large",
                     "c5.large"):
        assert 0 < table.prices[instance] < 5, instance
    assert table.prices["ml.m5.large"] > table.prices["m5.large"]  # SageMaker hosting costs more than bare EC2


def test_no_price_file_means_no_table(configs: Path) -> None:
    (configs / "prices.yaml").unlink()
    config = load_config_dir(configs)
    assert config.prices is None and config.price_table_json() is None


def test_bad_price_file_errors_name_file_line_and_field(configs: Path) -> None:
    path = configs / "prices.yaml"
    path.write_text(
        "as_of: 2026-12-01\n"                   # 1
        "prices:\n"                             # 2
        "  ml.m5.large: 0.115\n"                # 3
        "  ml.m5.xlarge: -1\n"                  # 4
        "  'bad type!': 0.1\n"                  # 5
        "  ml.c5.large: cheap\n"                # 6
        "  ml.c5.xlarge: .inf\n"                # 7
        "currency: EUR\n"                       # 8
    )
    found = issues(configs)
    assert all(f.startswith("configs/prices.yaml:") for f in found), found
    assert any(f.startswith("configs/prices.yaml:4: prices.ml.m5.xlarge: must be >= 0") for f in found), found
    assert any(f.startswith("configs/prices.yaml:5: prices") and "bad type!" in f for f in found), found
    assert any(f.startswith("configs/prices.yaml:6: prices.ml.c5.large:") for f in found), found
    assert any(f.startswith("configs/prices.yaml:7: prices.ml.c5.xlarge:") for f in found), found
    assert any(f.startswith("configs/prices.yaml:8: currency: unknown key") for f in found), found
    with pytest.raises(ConfigError):
        load_config_dir(configs)
    with pytest.raises(ConfigError) as info:
        load_prices(path)
    assert [str(i) for i in info.value.issues] == found


def test_a_price_file_needs_its_table(configs: Path) -> None:
    (configs / "prices.yaml").write_text("as_of: 2026-12-01\n")
    [found] = issues(configs)
    assert found.startswith("configs/prices.yaml:1: prices:") and "required" in found, found


def test_a_lone_price_file_is_recognised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lone = tmp_path / "elsewhere" / "table.yaml"
    lone.parent.mkdir()
    lone.write_text("prices:\n  ml.m5.large: -0.5\n")
    [found] = issues(Path("elsewhere/table.yaml"))
    assert found.startswith("elsewhere/table.yaml:2: prices.ml.m5.large: must be >= 0"), found
    shutil.copy(EXAMPLES / "prices.yaml", tmp_path / "prices.yaml")
    assert issues(Path("prices.yaml")) == []


def test_the_json_schema_accepts_the_shipped_table_and_rejects_a_negative_price() -> None:
    schema = json.loads((EXAMPLES / "schemas" / "prices.schema.json").read_text())
    assert schema == json.loads(json.dumps(build_schema(PriceTable, title=schema["title"])))
    validator = jsonschema.Draft202012Validator(schema)
    table = yaml.safe_load((EXAMPLES / "prices.yaml").read_text())
    table["as_of"] = str(table["as_of"])  # YAML reads a date; the schema sees the string an editor sees
    assert validator.is_valid(table)
    assert not validator.is_valid({"prices": {"ml.m5.large": -1}})
    assert not validator.is_valid({"prices": {}, "currency": "EUR"})


# --------------------------------------------------------------------------- the manifest's serving section

SERVING = """\
serving:
  method: POST
  headers: {Content-Type: application/json}
  secret_headers: {Authorization: churn-api-token}
  body:
    dataset_role: eval
    columns: [tenure_months, monthly_spend]
    format: records
    rows_per_request: 4
    sample: 500
  sagemaker:
    endpoint_name: churn-prod
    region: eu-west-1
  expected_traffic_rps: 40
  instance_type: ml.m5.large
  instance_price_per_hour: 0.115
  instances: 2
"""


def _with_serving(configs: Path, text: str = SERVING) -> Path:
    path = configs / "models" / "churn-classifier.yaml"
    lines = path.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("serving_endpoint:"))
    path.write_text("".join(lines[:at + 1]) + text + "".join(lines[at + 1:]))
    return path


def test_a_serving_section_loads_with_both_targets(configs: Path) -> None:
    _with_serving(configs)
    serving = load_config_dir(configs).manifest("churn-classifier").serving
    assert serving is not None and serving.sagemaker is not None
    assert serving.sagemaker.endpoint_name == "churn-prod" and serving.sagemaker.content_type == "application/json"
    assert serving.secret_headers == {"Authorization": "churn-api-token"}
    assert serving.body.format == "records" and serving.body.columns == ["tenure_months", "monthly_spend"]
    assert (serving.expected_traffic_rps, serving.instance_type, serving.instance_price_per_hour,
            serving.instances) == (40.0, "ml.m5.large", 0.115, 2)


def test_serving_defaults() -> None:
    serving = Serving()
    assert serving.method == "POST" and serving.headers == {} and serving.secret_headers == {}
    assert serving.body.dataset_role == "eval" and serving.body.columns is None
    assert serving.body.format == "instances" and serving.body.rows_per_request == 1 and serving.body.sample == 1000
    assert serving.sagemaker is None and serving.instances == 1
    assert serving.expected_traffic_rps is None and serving.instance_price_per_hour is None
    manifest = ModelManifest.model_validate(yaml.safe_load((EXAMPLES / "models" / "churn-classifier.yaml").read_text()))
    assert manifest.model_dump(mode="json")["serving"] == (manifest.serving.model_dump(mode="json")
                                                           if manifest.serving else None)


def test_bad_serving_fields_name_file_and_line(configs: Path) -> None:
    bad = (SERVING.replace("method: POST", "method: PATCH")
           .replace("rows_per_request: 4", "rows_per_request: 1001")
           .replace("region: eu-west-1", "region: Ireland")
           .replace("expected_traffic_rps: 40", "expected_traffic_rps: 0")
           .replace("instance_price_per_hour: 0.115", "instance_price_per_hour: -1")
           .replace("instances: 2", "instances: 0")
           .replace("churn-api-token", "Churn API Token"))
    path = _with_serving(configs, bad)
    found = issues(configs)
    expected = {
        "method: PATCH": "serving.method:",
        "secret_headers:": "serving.secret_headers.Authorization:",
        "rows_per_request:": "serving.body.rows_per_request: must be <= 1000",
        "region: Ireland": "serving.sagemaker.region:",
        "expected_traffic_rps:": "serving.expected_traffic_rps: must be > 0",
        "instance_price_per_hour:": "serving.instance_price_per_hour: must be >= 0",
        "instances: 0": "serving.instances: must be >= 1",
    }
    for needle, prefix in expected.items():
        where = f"configs/models/churn-classifier.yaml:{line_of(path, needle)}: {prefix}"
        assert any(f.startswith(where) for f in found), (where, found)
    assert len(found) == len(expected), found


@pytest.mark.parametrize("headers, secret", [
    ({"Authorization": "Bearer x"}, {"authorization": "token-block"}),
    ({"X-A": "1", "x-a": "2"}, {}),
])
def test_a_header_is_set_once(headers: dict[str, str], secret: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="is set twice"):
        Serving(headers=headers, secret_headers=secret)


@pytest.mark.parametrize("serving", [
    {"headers": {"X-Evil": "a\r\nHost: elsewhere"}},  # a value cannot smuggle in another header
    {"headers": {"Bad Name": "x"}},
    {"headers": {f"X-{i}": "v" for i in range(33)}},  # bounded
    {"body": {"sample": 0}},
    {"body": {"sample": 100_001}},
    {"body": {"columns": ["a", "a"]}},
    {"body": {"format": "csv"}},
    {"sagemaker": {"endpoint_name": "churn_prod", "region": "eu-west-1"}},
    {"sagemaker": {"endpoint_name": "churn-prod", "region": "eu-west-1", "content_type": "text/csv\r\nX: y"}},
    {"expected_traffic_rps": math.inf},
    {"instance_price_per_hour": math.nan},
    {"instance_type": "ml m5 large"},
])
def test_bad_serving_values_are_refused(serving: dict) -> None:
    with pytest.raises(ValueError):
        Serving.model_validate(serving)


def test_the_model_schema_knows_serving() -> None:
    schema = json.loads((EXAMPLES / "schemas" / "model.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(schema)
    manifest = yaml.safe_load((EXAMPLES / "models" / "churn-classifier.yaml").read_text())
    manifest["kpi"]["review_date"] = str(manifest["kpi"]["review_date"])
    manifest["serving"] = yaml.safe_load(SERVING)["serving"]
    assert validator.is_valid(manifest), [e.message for e in validator.iter_errors(manifest)]
    manifest["serving"]["instances"] = 0
    assert not validator.is_valid(manifest)
