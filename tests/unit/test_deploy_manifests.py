"""deploy/: the Kubernetes manifests are valid Kubernetes and agree with the code they run.

No cluster or Docker engine runs here, so the manifests are checked offline: against the
Kubernetes OpenAPI schemas (kubernetes-validate), and against clearance itself — the commands
exist, the settings are real, secrets stay out of the ConfigMap, probes hit served paths, the
pool is the one deployments are registered on, and the image copies every package.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.test_docs import cli_commands, setting_names

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBERNETES = "1.31.0"


def documents() -> list[tuple[str, dict[str, Any]]]:
    """Every Kubernetes object in deploy/k8s (the kustomization itself is not one)."""
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def containers() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for name, doc in documents():
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        out += [(f"{name}:{c['name']}", c) for c in spec.get("containers", [])]
    return out


def secret_settings() -> set[str]:
    """Environment names of settings typed SecretStr (tokens, keys, passwords)."""
    from pydantic import SecretStr

    from clearance.settings import Settings
    from clearance.settings.jira import JiraSettings
    from clearance.settings.slack import SlackSettings

    names = set()
    for model in (Settings, JiraSettings, SlackSettings):
        prefix = model.model_config.get("env_prefix", "")
        for field_name, field in model.model_fields.items():
            if SecretStr in (getattr(field.annotation, "__args__", None) or (field.annotation,)):
                names.add(f"{prefix}{field_name}".upper())
    return names


@pytest.mark.parametrize("name,doc", documents(), ids=lambda v: v if isinstance(v, str) else v.get("kind", "?"))
def test_every_manifest_is_valid_kubernetes(name: str, doc: dict[str, Any]) -> None:
    try:
        kubernetes_validate.validate(doc, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"deploy/k8s/{name}: {doc.get('kind')} {doc['metadata'].get('name')}: {exc.message} "
                    f"at {'.'.join(map(str, exc.path))}")


def test_the_kustomization_lists_existing_files_and_leaves_the_secret_out() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    resources = kustomization["resources"]
    assert all((K8S / r).is_file() for r in resources), resources
    assert "secret.example.yaml" not in resources  # real secrets come from the operator's store
    if shutil.which("kubectl"):  # render it as `kubectl apply -k` would (offline)
        rendered = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, check=True)
        kinds = [d["kind"] for d in yaml.safe_load_all(rendered.stdout) if d]
        assert {"Deployment", "Service", "ConfigMap", "Job", "Namespace"} <= set(kinds)
        assert "image: clearance:0.1.0" in rendered.stdout


def test_containers_run_real_commands_on_the_registered_pool() -> None:
    commands = cli_commands()
    prefect_yaml = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text())
    pools = {d["work_pool"]["name"] for d in prefect_yaml["deployments"]}
    seen = set()
    for where, container in containers():
        argv = container["command"]
        assert container["image"] == "clearance", where
        if argv[0] == "clearance":
            assert argv[1] in commands, f"{where}: `clearance {argv[1]}` is not a command"
            seen.add(argv[1])
            if argv[1] in ("deploy", "worker"):
                assert argv[argv.index("--pool") + 1] in pools, where
        else:
            assert argv[:3] == ["prefect", "worker", "start"], where
            assert argv[argv.index("--pool") + 1] in pools, f"{where}: the worker polls another pool"
            seen.add("worker")
    assert {"serve", "deploy", "jira-poll", "worker"} <= seen


def test_the_sweep_runs_in_a_long_lived_process_not_as_a_deployment() -> None:
    """Suspended promotions need a sweep; it runs in `clearance worker` (or `clearance sweep --every`), never as
    a Prefect deployment that starts a process and a flow run every minute."""
    prefect_yaml = yaml.safe_load((ROOT / "deploy" / "prefect.yaml").read_text())
    assert not [d["name"] for d in prefect_yaml["deployments"] if "deadlines" in d["entrypoint"]]
    assert not [d["name"] for d in prefect_yaml["deployments"] if d.get("schedules")]
    sweepers = [where for where, c in containers()
                if c["command"][:2] == ["clearance", "worker"] or c["command"][:3] == ["clearance", "sweep", "--every"]]
    assert sweepers, "no container sweeps"


def test_settings_are_real_and_secrets_never_sit_in_the_configmap() -> None:
    known = setting_names()
    secrets = secret_settings()
    assert {"CLEARANCE_S3_SECRET_ACCESS_KEY", "CLEARANCE_SLACK_BOT_TOKEN", "CLEARANCE_JIRA_API_TOKEN"} <= secrets
    for name, doc in documents():
        if doc["kind"] == "ConfigMap":
            keys = set(doc["data"])
            commented = set(re.findall(r"#\s*(CLEARANCE_[A-Z0-9_]+):", (K8S / name).read_text()))
            assert (keys | commented) - {"PREFECT_API_URL"} <= known, (keys | commented) - known
            assert not keys & secrets, f"{name}: secrets in a ConfigMap: {keys & secrets}"
        if doc["kind"] == "Secret":
            assert set(doc["stringData"]) <= known, set(doc["stringData"]) - known
            assert all(value == "" for value in doc["stringData"].values()), "an example Secret holds a value"
    for where, container in containers():
        refs = {s.get("configMapRef", s.get("secretRef", {})).get("name") for s in container.get("envFrom", [])}
        assert "clearance-settings" in refs, where
        for env in container.get("env", []):
            assert not env["name"].startswith("CLEARANCE_") or env["name"] in known, where


def test_probes_hit_paths_that_are_served() -> None:
    from clearance.app.serve.app import build_app

    served = {route.path for route in build_app().routes}
    for where, container in containers():
        for probe in ("readinessProbe", "livenessProbe"):
            if probe not in container:
                continue
            path = container[probe]["httpGet"]["path"]
            if container["command"][:2] != ["clearance", "worker"] and container["command"][0] == "clearance":
                assert path in served, f"{where}: {probe} on {path}, served: {sorted(served)}"
            else:  # Prefect's worker health server (--with-healthcheck) answers /health
                assert path == "/health" and "--with-healthcheck" in container["command"], where


def test_the_image_copies_every_package_and_its_pinned_versions() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    copied = set()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            copied |= set(shlex.split(line)[1:-1])
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages <= copied, packages - copied
    assert {"pyproject.toml", "constraints.txt", "configs"} <= copied
    assert all((ROOT / c).exists() for c in copied), [c for c in copied if not (ROOT / c).exists()]
    assert "-c constraints.txt" in dockerfile and "CLEARANCE_HOME=/opt/clearance" in dockerfile
