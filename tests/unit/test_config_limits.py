"""Finding 6 (issue 11): how much config is read. Sizes are checked before parsing; YAML bombs are refused.

A 10 MB policy of real YAML used to be accepted after 69 s and 1 GB of memory, and every command and
run loads the whole config directory. Each test here can fail: the refusals must name the file, its
size and the setting to raise, and must happen without parsing (the parser is made to explode).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from clearance.config import ConfigError, load_config_dir, load_policy, validate_paths, yaml_source
from clearance.config.limits import ConfigLimits
from clearance.config.yaml_source import read_yaml
from clearance.settings import get_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "configs"
MB10 = 10 * 1000 * 1000


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch):
    """Set CLEARANCE_* variables for one test; the settings cache is cleared before and after."""

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


@pytest.fixture
def no_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to parse YAML fails the test: a refusal by size must come before the parser."""

    def explode(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the YAML parser was started")

    monkeypatch.setattr(yaml_source, "_BoundedLoader", explode)


@pytest.fixture
def big_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Handing more than 1 MiB of text to the YAML parser fails the test (smaller neighbours may be parsed)."""
    real = yaml_source._BoundedLoader

    def guarded(text: str, max_depth: int) -> object:
        if len(text) > 1024 * 1024:
            raise AssertionError(f"{len(text)} characters were handed to the YAML parser")
        return real(text, max_depth)

    monkeypatch.setattr(yaml_source, "_BoundedLoader", guarded)


def real_yaml_policy(path: Path, size: int) -> Path:
    """The example high policy followed by real YAML (a list of small mappings) up to ``size`` bytes."""
    head = (EXAMPLES / "policies" / "high.yaml").read_text() + "padding:\n"
    line = "  - {role: security, note: 'a value long enough to be real yaml', n: 12345}\n"
    path.write_text(head + line * ((size - len(head)) // len(line) + 1))
    return path


# --------------------------------------------------------------------------- one file


def test_a_10_mb_policy_is_refused_before_parsing_naming_file_size_and_setting(configs: Path,
                                                                               big_not_parsed: None) -> None:
    big = real_yaml_policy(configs / "policies" / "high.yaml", MB10)
    size = big.stat().st_size
    expected = (f"configs/policies/high.yaml: is 9.5 MiB ({size} bytes), over the 1.0 MiB limit for one config "
                "file: not parsed (a config file this big is a mistake; if not, raise "
                "CLEARANCE_CONFIG_MAX_FILE_BYTES)")
    issues = [str(i) for i in validate_paths([configs])]
    assert expected in issues
    with pytest.raises(ConfigError) as info:
        load_config_dir(configs)
    assert expected in str(info.value).splitlines()
    with pytest.raises(ConfigError, match="over the 1.0 MiB limit"):
        load_policy(big)


def test_cli_validate_refuses_the_big_file(configs: Path, settings_env, big_not_parsed: None) -> None:
    from clearance.app.cli import app

    real_yaml_policy(configs / "policies" / "high.yaml", MB10)
    settings_env(CLEARANCE_CONFIG_DIR=str(configs))
    result = CliRunner().invoke(app, ["validate", str(configs / "policies" / "high.yaml")])
    assert result.exit_code == 2
    assert "configs/policies/high.yaml: is 9.5 MiB" in result.output
    assert "CLEARANCE_CONFIG_MAX_FILE_BYTES" in result.output


def test_the_file_limit_is_a_setting(configs: Path, settings_env) -> None:
    policy = configs / "policies" / "high.yaml"
    size = policy.stat().st_size
    settings_env(CLEARANCE_CONFIG_MAX_FILE_BYTES=str(size - 1))
    with pytest.raises(ConfigError, match=rf"is {size / 1024:.1f} KiB \({size} bytes\), over the "):
        load_policy(policy)
    settings_env(CLEARANCE_CONFIG_MAX_FILE_BYTES=str(size))
    assert load_policy(policy).tier == "high"


def test_a_file_at_the_limit_is_read_and_one_byte_more_is_not(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: 1\n")
    assert read_yaml(path, ConfigLimits(max_file_bytes=5)).data == {"a": 1}
    [issue] = read_yaml(path, ConfigLimits(max_file_bytes=4)).issues
    assert "is 5 bytes (5 bytes), over the 4 bytes limit for one config file: not parsed" in issue.message


# --------------------------------------------------------------------------- the config directory


def test_a_config_dir_over_its_byte_limit_is_refused_before_parsing(configs: Path, settings_env,
                                                                    no_parsing: None) -> None:
    files = [p for p in configs.rglob("*.yaml") if p.parent.name != "schemas"]
    total = sum(p.stat().st_size for p in files)
    settings_env(CLEARANCE_CONFIG_MAX_DIR_BYTES=str(total - 1))
    with pytest.raises(ConfigError) as info:
        load_config_dir(configs)
    [issue] = info.value.issues
    largest = max(files, key=lambda p: p.stat().st_size)
    assert str(issue).startswith(f"configs: its {len(files)} config files total {total / 1024:.1f} KiB ({total} "
                                 f"bytes), over the {(total - 1) / 1024:.1f} KiB limit for the config directory: "
                                 f"nothing was parsed; largest: {largest} (")
    assert str(issue).endswith("(raise CLEARANCE_CONFIG_MAX_DIR_BYTES if it must be this big)")
    assert [str(i) for i in validate_paths([configs])] == [str(issue)]


def test_the_dir_limit_counts_only_config_files(configs: Path, settings_env) -> None:
    # The JSON Schemas (and anything else lying around) are never read: they do not count.
    files = [p for p in configs.rglob("*.yaml") if p.parent.name != "schemas"]
    settings_env(CLEARANCE_CONFIG_MAX_DIR_BYTES=str(sum(p.stat().st_size for p in files)))
    (configs / "schemas" / "huge.json").write_bytes(b" " * 100_000)
    assert set(load_config_dir(configs).policies) == {"low", "medium", "high"}


def test_too_many_config_files_are_refused_before_parsing(configs: Path, settings_env, no_parsing: None) -> None:
    settings_env(CLEARANCE_CONFIG_MAX_FILES="4")
    for i in range(20):
        (configs / "models" / f"m{i}.yaml").write_text("name: x\n")
    with pytest.raises(ConfigError) as info:
        load_config_dir(configs)
    assert [str(i) for i in info.value.issues] == [
        "configs: holds more than 4 config files (policies/, models/, principals.yaml, waivers.yaml, "
        "regulatory.yaml): nothing was parsed (raise CLEARANCE_CONFIG_MAX_FILES if it must hold this many)"]


def test_the_examples_fit_the_default_limits() -> None:
    limits = ConfigLimits()
    assert load_config_dir(EXAMPLES, limits).policies
    assert get_settings().config_max_file_bytes == limits.max_file_bytes == 1024 * 1024
    assert get_settings().config_max_dir_bytes == limits.max_dir_bytes == 16 * 1024 * 1024
    assert get_settings().config_max_files == limits.max_files


# --------------------------------------------------------------------------- YAML bombs


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def only_issue(path: Path, limits: ConfigLimits | None = None) -> str:
    doc = read_yaml(path, limits or ConfigLimits())
    assert doc.data is None
    [issue] = doc.issues
    return str(issue)


def test_billion_laughs_is_refused_without_expanding(tmp_path: Path) -> None:
    # 10 aliases of 10 aliases of ... 9 levels: 10**9 values from 600 bytes.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    path = write(tmp_path / "bomb.yaml", "\n".join(lines) + "\n")
    assert path.stat().st_size < 1000
    limits = ConfigLimits()
    issue = only_issue(path, limits)
    assert issue.startswith(f"{path}:") and f"expands to more than {limits.max_values} values" in issue, issue
    assert "through aliases" in issue and issue.endswith("not parsed")


def test_merge_key_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["m0: &m0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9, j: 10}"]
    lines += [f"m{i}: &m{i} {{<<: [" + ", ".join([f"*m{i - 1}"] * 10) + "]}" for i in range(1, 9)]
    path = write(tmp_path / "merge.yaml", "\n".join(lines) + "\n")
    assert "expands to more than" in only_issue(path)


def test_deep_nesting_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write(tmp_path / "deep.yaml", "ok: 1\nx: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert only_issue(path) == f"{path}:2: nested deeper than 64 levels: not parsed"
    block = "".join("  " * i + f"k{i}:\n" for i in range(70)) + "  " * 70 + "leaf: 1\n"
    assert "nested deeper than 64 levels" in only_issue(write(tmp_path / "block.yaml", block))


def test_deep_nesting_through_aliases_is_refused(tmp_path: Path) -> None:
    # Each anchor nests 30 deep and ends in the previous one: composed 31 deep, built 30 * 5 deep.
    lines = [f"a{i}: &a{i} " + "[" * 30 + (f"*a{i - 1}" if i else "1") + "]" * 30 for i in range(5)]
    path = write(tmp_path / "chain.yaml", "\n".join(lines) + "\n")
    assert only_issue(path) == f"{path}:3: nests deeper than 64 levels through aliases: not parsed"


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "self.yaml", "a: 1\nb: &loop\n  c: [*loop]\n")
    assert only_issue(path) == (f"{path}:2: an alias refers to a mapping or list that contains it (a structure "
                                "that contains itself): not parsed")


def test_the_value_bound_follows_the_file_limit(tmp_path: Path) -> None:
    # 2 000 values spelled out plainly fit a file of 4 000 bytes; through aliases they need the same budget.
    path = write(tmp_path / "shared.yaml", "base: &b [" + ", ".join(["1"] * 40) + "]\nuse: [" +
                 ", ".join(["*b"] * 50) + "]\n")
    assert read_yaml(path, ConfigLimits(max_file_bytes=10_000)).data["use"][49] == [1] * 40
    assert "expands to more than 1000 values" in only_issue(path, ConfigLimits(max_file_bytes=400))


def test_ordinary_anchors_and_merges_still_work(tmp_path: Path) -> None:
    path = write(tmp_path / "ok.yaml", "base: &b {mode: blocking, config: {max: 3}}\n"
                                       "gates:\n  - {<<: *b, id: one}\n  - {<<: *b, id: two, mode: advisory}\n")
    doc = read_yaml(path, ConfigLimits())
    assert not doc.issues
    assert doc.data["gates"] == [{"mode": "blocking", "config": {"max": 3}, "id": "one"},
                                 {"mode": "advisory", "config": {"max": 3}, "id": "two"}]
