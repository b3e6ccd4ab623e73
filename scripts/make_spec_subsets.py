"""Cut the public API specs down to what the contract tests use, so a fresh clone tests without ../shared.

    python scripts/make_spec_subsets.py            # every subset
    python scripts/make_spec_subsets.py slack      # one of them

One function per spec (``make_<name>_subset``), registered in ``SUBSETS``; each reads its source
from ``--source-dir`` (default ``../shared/specs``) and writes under ``tests/specs/<name>/``.
The outputs are committed; rerun after changing the list of operations a fake server serves.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "specs"
V3_SCHEMAS = "#/components/schemas/"  # where OpenAPI 3 keeps named schemas


def _refs(node: Any, prefix: str = "#/definitions/") -> set[str]:
    """Every schema name referenced as ``<prefix><name>`` inside ``node`` (OpenAPI 2 or 3)."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(prefix):
            found.add(ref.removeprefix(prefix))
        for value in node.values():
            found |= _refs(value, prefix)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value, prefix)
    return found


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return path


# =============================================================================== Slack (Web API)

#: Web API methods the Slack channel and its fake server use.
SLACK_METHODS = ["/auth.test", "/chat.postMessage", "/chat.update", "/chat.postEphemeral", "/views.open",
                 "/users.info"]


SLACK_SUBSET = REPO / "tests" / "specs" / "slack" / "slack_web_openapi_v2.subset.json"


def make_slack_subset(source_dir: Path) -> Path:
    """``tests/specs/slack/slack_web_openapi_v2.subset.json``: the Slack methods above and their definitions."""
    return _write(SLACK_SUBSET, slack_subset(source_dir / "slack_web_openapi_v2.json"))


def slack_subset(source: Path) -> dict[str, Any]:
    """The subset document (without writing it), e.g. to check the committed one is current."""
    spec = json.loads(source.read_text())
    paths = {name: spec["paths"][name] for name in SLACK_METHODS}
    needed: set[str] = set()
    todo = _refs(paths)
    while todo:  # definitions referring to definitions
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo |= _refs(spec["definitions"][name]) - needed
    subset = {
        "x-subset-of": {"file": source.name, "repository": "slackapi/slack-api-specs",
                        "path": "web-api/slack_web_openapi_v2.json",
                        "commit": "bc08db49625630e3585bf2f1322128ea04f2a7f3",
                        "made-by": "scripts/make_spec_subsets.py (make_slack_subset)"},
        **{k: spec[k] for k in ("swagger", "info", "basePath", "host", "schemes", "securityDefinitions")},
        "paths": paths,
        "definitions": {name: spec["definitions"][name] for name in sorted(needed)},
    }
    return subset


# =============================================================================== (other specs: add below)


# =============================================================================== Jira (Cloud platform REST v3)

#: v3 operations whose response schemas the fake Jira validates against. The ``jira`` library
#: calls the v2 paths (``/rest/api/2/...``); the fake maps each v2 path onto the v3 path with
#: the same suffix (``/rest/api/2/issue/{issueIdOrKey}`` → ``/rest/api/3/issue/{issueIdOrKey}``).
#: Only the response *shapes* are checked: v2 text fields (description, comment body) are
#: plain strings where v3 has Atlassian Document Format, and the v3 schemas leave them open.
JIRA_OPERATIONS = {
    "/rest/api/3/serverInfo": ["get"],
    "/rest/api/3/myself": ["get"],
    "/rest/api/3/field": ["get"],
    "/rest/api/3/project/{projectIdOrKey}": ["get"],
    "/rest/api/3/issue": ["post"],
    "/rest/api/3/issue/{issueIdOrKey}": ["get", "put"],
    "/rest/api/3/issue/{issueIdOrKey}/comment": ["get", "post"],
    "/rest/api/3/issue/{issueIdOrKey}/comment/{id}": ["get", "put"],
    "/rest/api/3/issue/{issueIdOrKey}/transitions": ["get", "post"],
    "/rest/api/3/issue/{issueIdOrKey}/attachments": ["post"],
    "/rest/api/3/issue/{issueIdOrKey}/remotelink": ["get", "post"],
    "/rest/api/3/search": ["get", "post"],
    "/rest/api/3/search/jql": ["get", "post"],
}


def make_jira_subset(source_dir: Path) -> Path:
    """``tests/specs/jira/jira_platform_v3.subset.json``: the operations above (responses only) and their schemas."""
    source = source_dir / "jira_cloud_platform_swagger-v3.v3.json"
    spec = json.loads(source.read_text())
    paths: dict[str, Any] = {}
    for path, methods in JIRA_OPERATIONS.items():
        paths[path] = {}
        for method in methods:
            operation = spec["paths"][path][method]
            paths[path][method] = {"operationId": operation.get("operationId"),
                                   "deprecated": operation.get("deprecated", False),
                                   "responses": {code: answer for code, answer in operation["responses"].items()
                                                 if code.startswith("2")}}
    schemas = spec["components"]["schemas"]
    needed: set[str] = set()
    todo = _refs(paths, V3_SCHEMAS)
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo |= _refs(schemas[name], V3_SCHEMAS) - needed
    subset = {
        "x-subset-of": {"file": source.name, "repository": "cfdude/mcp-jira", "path": "swagger-v3.v3.json",
                        "commit": "8bc7903", "made-by": "scripts/make_spec_subsets.py (make_jira_subset)",
                        "v2-mapping": "/rest/api/2/<suffix> is validated against /rest/api/3/<suffix>"},
        "openapi": spec["openapi"], "info": spec["info"],
        "paths": paths,
        "components": {"schemas": {name: schemas[name] for name in sorted(needed)}},
    }
    return _write(REPO / "tests" / "specs" / "jira" / "jira_platform_v3.subset.json", subset)


SUBSETS_JIRA = {"jira": make_jira_subset}


SUBSETS: dict[str, Callable[[Path], Path]] = {
    "slack": make_slack_subset,
}


SUBSETS.update(SUBSETS_JIRA)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", choices=[[], *SUBSETS], help="subsets to make (default: all)")
    parser.add_argument("--source-dir", type=Path, default=DEFAULT_SOURCE)
    args = parser.parse_args()
    for name in args.names or list(SUBSETS):
        print(SUBSETS[name](args.source_dir).relative_to(REPO))


if __name__ == "__main__":
    main()
