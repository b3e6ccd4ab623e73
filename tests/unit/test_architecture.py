"""The import contract of docs/architecture.md, checked over every product module's source.

Layers, lowest first; a module may import its own layer and the layers below, never above:

    0 core      clearance.core
    1 gates     gates
    2 domain    clearance.config, .approvals, .ledger, .render, .settings, .events, .identity
    3 tasks     tasks
    4 flows     flows
    5 app       clearance.app (CLI, serve, poller, deployments), clearance.__main__
    5 dev       clearance.dev (demo, local servers: assume a source checkout); beside app, so that
                ``clearance demo`` can start it, and above everything a worker needs

On top of the order: the pure layers (core, gates, domain) import no I/O library, flows talk to
no service directly, and the domain packages import each other without cycles. Every import
counts, including those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("clearance", "gates", "tasks", "flows")

LAYERS: list[tuple[str, int]] = [  # longest prefix wins
    ("clearance.core", 0),
    ("gates", 1),
    ("clearance.config", 2), ("clearance.approvals", 2), ("clearance.ledger", 2), ("clearance.render", 2),
    ("clearance.settings", 2), ("clearance.events", 2), ("clearance.identity", 2),
    ("tasks", 3),
    ("flows", 4),
    ("clearance.app", 5), ("clearance.__main__", 5),
    ("clearance.dev", 5),
]
LAYER_NAMES = {0: "core", 1: "gates", 2: "domain", 3: "tasks", 4: "flows", 5: "app/dev"}
IO_LIBRARIES = {"prefect", "boto3", "botocore", "s3transfer", "slack_sdk", "slack_bolt", "jira", "httpx", "requests",
                "urllib3", "starlette", "uvicorn", "websockets", "aiohttp"}
#: Libraries each layer must not import (on top of the layer order).
FORBIDDEN = {0: IO_LIBRARIES | {"pyarrow", "duckdb", "numpy"}, 1: IO_LIBRARIES, 2: IO_LIBRARIES,
             4: {"boto3", "botocore", "slack_sdk", "jira", "httpx", "requests", "urllib3"}}
NEVER_IMPORTED = ("tests", "bench", "scripts")


def layer_of(module: str) -> int | None:
    """The layer of a product module (``None`` for the bare ``clearance`` package and outside modules)."""
    best: tuple[int, int] | None = None
    for prefix, layer in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[0]):
            best = (len(prefix), layer)
    return best[1] if best else None


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every module ``source`` imports, absolute, with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # ``from clearance import x`` imports the submodule clearance.x when there is one
            names = [f"{target}.{alias.name}" for alias in node.names]
            found += [(node.lineno, name if layer_of(name) is not None else target) for name in names]
    return found


@dataclass
class Violation:
    where: str
    rule: str

    def __str__(self) -> str:
        return f"{self.where}: {self.rule}"


def check_module(module: str, source: str, *, is_package: bool = False) -> list[Violation]:
    """Each way ``module`` breaks the contract."""
    own = layer_of(module)
    problems: list[Violation] = []
    for line, target in imports_of(source, module, is_package):
        top = target.split(".")[0]
        where = f"{module}:{line} imports {target}"
        if top in NEVER_IMPORTED:
            problems.append(Violation(where, f"product code never imports {top}/"))
            continue
        if own is None:
            continue
        if top in FORBIDDEN.get(own, set()):
            problems.append(Violation(where, f"the {LAYER_NAMES[own]} layer does not use {top}"))
        theirs = layer_of(target)
        if top in PRODUCT and theirs is None and target not in ("clearance",):
            problems.append(Violation(where, "imports a module that belongs to no layer (add it to the map)"))
        elif theirs is not None and theirs > own:
            problems.append(Violation(where, f"{LAYER_NAMES[own]} imports upwards into {LAYER_NAMES[theirs]}"))
    return problems


def product_modules() -> list[tuple[str, Path]]:
    out = []
    for package in PRODUCT:
        for path in sorted((ROOT / package).rglob("*.py")):
            out.append((module_name(path, ROOT), path))
    return out


def test_every_product_module_imports_only_downwards() -> None:
    problems = []
    for module, path in product_modules():
        problems += check_module(module, path.read_text(), is_package=path.name == "__init__.py")
    assert not problems, "import contract broken (docs/architecture.md):\n" + "\n".join(map(str, problems))


def test_every_product_module_has_a_layer() -> None:
    unmapped = [m for m, _ in product_modules() if layer_of(m) is None and m != "clearance"]
    assert not unmapped, f"modules outside every layer: {unmapped}"


def test_domain_packages_import_each_other_without_cycles() -> None:
    domain = [prefix for prefix, layer in LAYERS if layer == 2]

    def package_of(module: str) -> str | None:
        return next((p for p in domain if module == p or module.startswith(p + ".")), None)

    edges: dict[str, set[str]] = {p: set() for p in domain}
    for module, path in product_modules():
        source_pkg = package_of(module)
        if source_pkg is None:
            continue
        for _, target in imports_of(path.read_text(), module, path.name == "__init__.py"):
            target_pkg = package_of(target)
            if target_pkg and target_pkg != source_pkg:
                edges[source_pkg].add(target_pkg)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in edges[start])

    cycles = sorted(p for p in domain if reaches(p, p, {p}))
    assert not cycles, f"domain packages in an import cycle: {cycles} ({ {p: sorted(edges[p]) for p in cycles} })"


# ----------------------------------------------------------------------------- the checker itself can fail


@pytest.mark.parametrize(("module", "source", "rule"), [
    ("gates.fancy", "import boto3\n", "does not use boto3"),
    ("gates.fancy", "from clearance.config.schema import Policy\n", "gates imports upwards into domain"),
    ("gates.fancy", "def f():\n    from tasks.object_store import ObjectStore\n", "imports upwards into tasks"),
    ("clearance.core.keys", "from prefect import task\n", "does not use prefect"),
    ("clearance.approvals.rules", "from tasks.approvals_record import read_record\n", "upwards into tasks"),
    ("clearance.render.report", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import flows.promote\n",
     "upwards into flows"),
    ("tasks.slack", "from clearance.app.cli import app\n", "tasks imports upwards into app/dev"),
    ("flows.promote", "from clearance.dev import devservers\n", "upwards into app/dev"),
    ("flows.promote", "import httpx\n", "does not use httpx"),
    ("clearance.app.cli", "from tests.fakes.memory_store import MemoryStore\n", "never imports tests/"),
    ("clearance.config.loader", "from ..app import cli\n", "upwards into app"),
])
def test_the_contract_catches(module: str, source: str, rule: str) -> None:
    problems = check_module(module, source, is_package=False)
    assert any(rule in str(p) for p in problems), problems


@pytest.mark.parametrize(("module", "source"), [
    ("gates.fancy", "from clearance.core.clock import utcnow\nimport numpy\n"),
    ("tasks.slack", "from clearance.render import slack\nfrom gates.base import GateResult\nimport slack_sdk\n"),
    ("clearance.app.cli", "from flows.promote import promote_model\nfrom tasks import evidence\n"),
    ("clearance.dev.demo", "from clearance.app import cli\n"),
])
def test_the_contract_allows(module: str, source: str) -> None:
    assert check_module(module, source) == []
