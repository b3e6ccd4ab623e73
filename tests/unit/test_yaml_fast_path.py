"""clearance/config/yaml_source.py reads a well-formed file with libyaml and anything else with PyYAML's Python
loader: both must give the same data, the same line of every key and item, and the same problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from clearance.config import yaml_source
from clearance.config.yaml_source import read_yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for folder in ("configs", "deploy", "clearance") for p in (REPO / folder).rglob("*.yaml"))
AWKWARD = {
    "anchors.yaml": ("base: &b {a: 1, b: [x, y]}\nfirst:\n  <<: *b\n  c: 3\nsecond: *b\n"
                     "list:\n  - *b\n  - {<<: *b, a: 2}\n"),
    "scalars.yaml": "yes_: yes\nnull_: ~\nfloat: 1e3\ndate: 2026-12-02\nstr: '007'\nmulti: |\n  line one\n  line two\n",
    "duplicate.yaml": "a: 1\nb: 2\na: 3\n",
    "syntax.yaml": "a: [1, 2\nb: 3\n",
    "deep.yaml": "a: " + "[" * 80 + "]" * 80 + "\n",
    "empty.yaml": "",
    "unicode.yaml": "name: \"caf\\u00e9 — ✓\"\nlist:\n- é\n- 😀\n",
}


def read_both(path: Path, monkeypatch) -> tuple[object, object]:
    fast = read_yaml(path)
    with monkeypatch.context() as m:
        m.setattr(yaml_source, "_FAST_LOADER", None)
        slow = read_yaml(path)
    return fast, slow


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_every_shipped_file_reads_the_same_either_way(path, monkeypatch):
    fast, slow = read_both(path, monkeypatch)
    assert (fast.data, fast.lines, fast.issues) == (slow.data, slow.lines, slow.issues)  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", sorted(AWKWARD))
def test_awkward_documents_read_the_same_either_way(name, tmp_path, monkeypatch):
    path = tmp_path / name
    path.write_text(AWKWARD[name], encoding="utf-8")
    fast, slow = read_both(path, monkeypatch)
    assert (fast.data, fast.lines, fast.issues) == (slow.data, slow.lines, slow.issues)  # type: ignore[attr-defined]


def test_the_fast_path_is_taken_for_a_well_formed_file(tmp_path, monkeypatch):
    """Not only the same: libyaml does read it (a regression to the slow path would cost every command)."""
    if yaml_source._FAST_LOADER is None:
        pytest.skip("this PyYAML has no libyaml")
    path = tmp_path / "ok.yaml"
    path.write_text("a: 1\n", encoding="utf-8")
    monkeypatch.setattr(yaml_source, "_BoundedLoader", None)  # the slow path would fail on this
    assert read_yaml(path).data == {"a": 1}
