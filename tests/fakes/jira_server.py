"""A stateful local Jira REST server speaking the contract the ``jira`` library uses.

Served on 127.0.0.1 (a thread), v2 paths (``/rest/api/2/...``; ``/rest/api/3/search/jql`` too):
serverInfo, myself, field, project, createmeta, issue create/get/update, comments (list, add,
update), transitions (list, do) with a configurable workflow, search (``search`` answers on
Server only, ``search/jql`` on Cloud only, like the real products), attachments (multipart),
remote links. Every JSON answer is validated against the v3 response schema of the same path
suffix in ``tests/specs/jira/jira_platform_v3.subset.json``; a mismatch is recorded in
``contract_errors`` (tests assert it stays empty) and answered 500.

Users (``add_user``) look like the real ones: Cloud shows an ``accountId``, Server/DC a ``name``
(renameable) and a ``key`` (stable; here the account id). Histories carry ``created`` to the
millisecond and webhook payloads the ``timestamp`` (ms since the epoch) of the change, as Jira's do.

Switches for tests: ``deployment`` ("Cloud"/"Server"), ``down`` (every call answers 503),
``fail_next`` (status codes for the next calls, e.g. ``[429, 500]``), ``webhooks`` (the
``jira:issue_updated`` payloads a real Jira would send after each transition), ``hold()``
(the next N matching requests wait for each other, so that two clients race for real).
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import jsonschema

SPEC = Path(__file__).resolve().parents[1] / "specs" / "jira" / "jira_platform_v3.subset.json"

DEFAULT_STATUSES = ["Open", "Gates running", "Awaiting approval", "Approved", "Rejected", "Promoted", "Failed"]
#: name → target status; every transition is global (available from any status) unless listed in ``only_from``.
DEFAULT_WORKFLOW = {
    "Run gates": "Gates running",
    "Request approval": "Awaiting approval",
    "Approve": "Approved",
    "Reject": "Rejected",
    "Promote": "Promoted",
    "Fail": "Failed",
}


def _now() -> str:
    """Jira's timestamp format, to the millisecond (as Jira gives it)."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _parse_jira_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")


def _jql_since(value: str) -> datetime:
    """A JQL date: relative (``-2d``, ``-12h``, ``-30m``, ``-1w``) or ``yyyy-MM-dd[ HH:mm]``."""
    relative = re.fullmatch(r"-(\d+)([mhdw])", value)
    if relative:
        unit = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[relative.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(relative.group(1))})
    fmt = "%Y-%m-%d %H:%M" if " " in value else "%Y-%m-%d"
    return datetime.strptime(value, fmt).replace(tzinfo=UTC)


class ContractValidator:
    """Validates answers of v2 paths against the v3 response schema of the same suffix."""

    def __init__(self, spec_path: Path = SPEC) -> None:
        self.spec = json.loads(spec_path.read_text())
        self.templates = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$"), path)
                          for path in self.spec["paths"]]

    def schema_for(self, path: str, method: str, status: int) -> dict[str, Any] | None:
        suffix = re.sub(r"^/rest/api/(2|3|latest)/", "/rest/api/3/", path)
        for pattern, template in self.templates:
            if pattern.match(suffix):
                operation = self.spec["paths"][template].get(method.lower())
                if operation is None:
                    raise LookupError(f"{method} {template} is not in the spec subset")
                answer = operation["responses"].get(str(status))
                if answer is None:
                    raise LookupError(f"{method} {template} has no {status} response in the spec")
                return (answer.get("content") or {}).get("application/json", {}).get("schema")
        raise LookupError(f"{path} maps to no path of the spec subset")

    def validate(self, path: str, method: str, status: int, body: Any) -> None:
        schema = self.schema_for(path, method, status)
        if schema is None:
            return
        if template := _fix_known_spec_bugs(path, method, schema):
            schema = template
        document = {"components": self.spec["components"], **schema}
        jsonschema.Draft7Validator(document).validate(body)


def _fix_known_spec_bugs(path: str, method: str, schema: dict[str, Any]) -> dict[str, Any] | None:
    """GET .../remotelink returns an array, while the spec declares one RemoteIssueLink."""
    if path.endswith("/remotelink") and method == "GET":
        return {"type": "array", "items": schema}
    return None


class FakeJira:
    """The state and switches of one fake Jira; ``start()`` serves it, ``url`` is its base URL."""

    def __init__(self, deployment: str = "Cloud", project: str = "CLR") -> None:
        self.deployment = deployment
        self.project = {"id": "10000", "key": project, "name": "Model promotions"}  # the default one
        self.projects = {project: self.project}
        self.issue_types = [{"id": "10001", "name": "Task", "subtask": False}]
        self.statuses = {name: str(i + 1) for i, name in enumerate(DEFAULT_STATUSES)}
        self.workflow: dict[str, str] = dict(DEFAULT_WORKFLOW)
        self.only_from: dict[str, list[str]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, str] = {}
        self.issues: dict[str, dict[str, Any]] = {}
        self.webhooks: list[dict[str, Any]] = []
        self.contract_errors: list[str] = []
        self.requests: list[tuple[str, str]] = []
        self.down = False
        self.fail_next: list[int] = []
        self.holds: list[dict[str, Any]] = []
        self.lock = threading.RLock()
        self._ids = itertools.count(10100)
        self._keys = itertools.count(1)
        self.validator = ContractValidator()
        self.add_user("clearance-bot", "bot-password", account_id="acc-bot", email="bot@example.com",
                      token="bot-pat")
        self._server: ThreadingHTTPServer | None = None

    # ----------------------------------------------------------------- setup

    def add_user(self, name: str, password: str, *, account_id: str, email: str, token: str | None = None,
                 key: str | None = None) -> None:
        """A user; on Server/DC its ``key`` (stable, unlike the renameable ``name``) defaults to ``account_id``."""
        self.users[name] = {"name": name, "key": key or account_id, "accountId": account_id, "emailAddress": email,
                            "displayName": name.title(), "password": password}
        if token:
            self.tokens[token] = name

    def hold(self, method: str, path_pattern: str, parties: int = 2, timeout: float = 1.0) -> None:
        """The next ``parties`` requests ``method`` on a path matching ``path_pattern`` wait for each other.

        They are answered together once all have arrived, or after ``timeout`` seconds (then one at
        a time): two clients that check-then-act both check before either acts, if nothing
        (e.g. a claim) keeps the second one away.
        """
        self.holds.append({"method": method, "path": re.compile(path_pattern), "left": parties,
                           "barrier": threading.Barrier(parties, timeout=timeout)})

    def _wait_on_hold(self, method: str, path: str) -> None:
        for held in self.holds:
            if held["method"] != method or not held["path"].search(path):
                continue
            with self.lock:
                mine = held["left"] > 0
                held["left"] -= mine
            if mine:
                try:
                    held["barrier"].wait()
                except threading.BrokenBarrierError:
                    pass  # timed out: the others never came
            return

    def start(self) -> FakeJira:
        fake = self

        class Handler(_Handler):
            jira = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ----------------------------------------------------------------- views for tests

    def issues_with_label(self, label: str) -> list[dict[str, Any]]:
        return [i for i in self.issues.values() if label in i["fields"]["labels"]]

    def status_of(self, key: str) -> str:
        return self.issues[key]["fields"]["status"]["name"]

    def status_history(self, key: str) -> list[str]:
        return [item["toString"] for h in self.issues[key]["histories"] for item in h["items"]
                if item["field"] == "status"]

    # ----------------------------------------------------------------- representations

    def user_json(self, name: str) -> dict[str, Any]:
        u = self.users[name]
        base = {"self": f"{self.url}/rest/api/2/user?username={name}", "displayName": u["displayName"],
                "active": True, "emailAddress": u["emailAddress"]}
        if self.deployment == "Cloud":
            return base | {"accountId": u["accountId"], "accountType": "atlassian"}
        return base | {"name": u["name"], "key": u["key"]}

    def status_json(self, name: str) -> dict[str, Any]:
        return {"self": f"{self.url}/rest/api/2/status/{self.statuses[name]}", "id": self.statuses[name],
                "name": name, "description": ""}

    def issue_json(self, issue: dict[str, Any], expand: str = "") -> dict[str, Any]:
        fields = dict(issue["fields"])
        fields["comment"] = self.comments_page(issue)
        fields["attachment"] = [a["json"] for a in issue["attachments"]]
        body = {"id": issue["id"], "key": issue["key"], "self": f"{self.url}/rest/api/2/issue/{issue['id']}",
                "expand": "renderedFields,names,schema,transitions,changelog", "fields": fields}
        if "changelog" in (expand or ""):
            body["changelog"] = {"startAt": 0, "maxResults": len(issue["histories"]),
                                 "total": len(issue["histories"]), "histories": issue["histories"]}
        return body

    def comments_page(self, issue: dict[str, Any]) -> dict[str, Any]:
        return {"startAt": 0, "maxResults": len(issue["comments"]), "total": len(issue["comments"]),
                "comments": issue["comments"]}

    def transitions_for(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        current = issue["fields"]["status"]["name"]
        out = []
        for i, (name, to) in enumerate(self.workflow.items()):
            if name in self.only_from and current not in self.only_from[name]:
                continue
            out.append({"id": str(11 + i * 10), "name": name, "to": self.status_json(to), "hasScreen": False,
                        "isGlobal": name not in self.only_from, "isInitial": False, "isAvailable": True,
                        "isConditional": False, "looped": False})
        return out

    # ----------------------------------------------------------------- behaviour

    def do_transition(self, key: str, transition_id: str, user: str) -> tuple[int, Any]:
        issue = self.issues[key]
        match = next((t for t in self.transitions_for(issue) if t["id"] == str(transition_id)), None)
        if match is None:
            return 400, {"errorMessages": [f"Transition id '{transition_id}' is not valid for this issue."],
                         "errors": {}}
        before = issue["fields"]["status"]["name"]
        after = match["to"]["name"]
        issue["fields"]["status"] = self.status_json(after)
        issue["fields"]["updated"] = _now()
        history = {"id": str(next(self._ids)), "author": self.user_json(user), "created": _now(),
                   "items": [{"field": "status", "fieldtype": "jira", "fieldId": "status",
                              "from": self.statuses[before], "fromString": before,
                              "to": self.statuses[after], "toString": after}]}
        issue["histories"].append(history)
        self.webhooks.append({"timestamp": int(time.time() * 1000), "webhookEvent": "jira:issue_updated",
                              "issue_event_type_name": "issue_generic", "user": self.user_json(user),
                              "issue": {"id": issue["id"], "key": key,
                                        "self": f"{self.url}/rest/api/2/issue/{issue['id']}",
                                        "fields": {"labels": list(issue["fields"]["labels"]),
                                                   "status": self.status_json(after),
                                                   "summary": issue["fields"]["summary"]}},
                              "changelog": {"id": history["id"], "items": history["items"]}})
        return 204, None

    def transition_as(self, user: str, key: str, transition_name: str) -> None:
        """A person moves the ticket (what they would do in the Jira UI)."""
        with self.lock:
            issue = self.issues[key]
            match = next(t for t in self.transitions_for(issue) if t["name"] == transition_name)
            status, body = self.do_transition(key, match["id"], user)
            assert status == 204, body

    def add_project(self, key: str, name: str = "Another project") -> None:
        """A second project promotions may be routed to (same issue types and workflow)."""
        self.projects[key] = {"id": str(10000 + len(self.projects)), "key": key, "name": name}

    def project_of(self, ref: dict[str, Any]) -> dict[str, Any] | None:
        return next((p for p in self.projects.values() if ref.get("key") == p["key"] or ref.get("id") == p["id"]),
                    None)

    def matches(self, issue: dict[str, Any], jql: str) -> bool:
        jql = re.split(r"\s+ORDER\s+BY\s+", jql, flags=re.IGNORECASE)[0].strip()
        for clause in re.split(r"\s+AND\s+", jql, flags=re.IGNORECASE):
            m = re.fullmatch(r'(\w+)\s*(>=|=|in)\s*(.+)', clause.strip(), flags=re.IGNORECASE)
            if not m:
                raise ValueError(f"unsupported JQL clause: {clause}")
            field, op, raw = m.group(1).lower(), m.group(2).lower(), m.group(3).strip()
            if field == "updated" and op == ">=":
                if _parse_jira_time(issue["fields"]["updated"]) < _jql_since(raw.strip('"')):
                    return False
                continue
            values = [v.strip().strip('"') for v in raw.strip("()").split(",")] if op == "in" else [raw.strip('"')]
            if field == "project":
                ok = issue["fields"]["project"]["key"] in values
            elif field == "labels":
                ok = any(v in issue["fields"]["labels"] for v in values)
            elif field == "status":
                ok = issue["fields"]["status"]["name"].lower() in {v.lower() for v in values}
            elif field in ("key", "issuekey"):
                ok = issue["key"] in values
            else:
                raise ValueError(f"unsupported JQL field: {field}")
            if not ok:
                return False
        return True


class _Handler(BaseHTTPRequestHandler):
    jira: FakeJira
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    # ----------------------------------------------------------------- plumbing

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _user(self) -> str | None:
        auth = self.headers.get("Authorization") or ""
        if auth.startswith("Basic "):
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            known = self.jira.users.get(user) or next(
                (u for u in self.jira.users.values() if u["emailAddress"] == user), None)
            if known and known["password"] == password:
                return known["name"]
        if auth.startswith("Bearer "):
            return self.jira.tokens.get(auth[7:])
        return None

    def _dispatch(self, method: str) -> None:
        jira = self.jira
        parsed = urlparse(self.path)
        body = self._body()
        jira.requests.append((method, parsed.path))
        jira._wait_on_hold(method, parsed.path)
        if jira.down:
            return self._send(503, {"errorMessages": ["Service unavailable"]})
        if jira.fail_next:
            code = jira.fail_next.pop(0)
            return self._send(code, {"errorMessages": [f"injected {code}"]},
                              {"Retry-After": "1"} if code == 429 else None)
        user = self._user()
        if user is None:
            return self._send(401, {"errorMessages": ["You are not authenticated."]})
        m = re.match(r"^/rest/api/(2|3|latest)(/.*)$", parsed.path)
        if not m:
            return self._send(404, {"errorMessages": ["not found"]})
        version, route = m.group(1), m.group(2)
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        with jira.lock:
            try:
                status, answer = self._route(method, version, route, query, body, user)
            except KeyError as exc:
                status, answer = 404, {"errorMessages": [f"Issue does not exist: {exc}"], "errors": {}}
            except ValueError as exc:
                status, answer = 400, {"errorMessages": [str(exc)], "errors": {}}
            if 200 <= status < 300 and answer is not None:
                try:
                    jira.validator.validate(parsed.path, method, status, answer)
                except (jsonschema.ValidationError, LookupError) as exc:
                    jira.contract_errors.append(f"{method} {parsed.path}: {str(exc)[:500]}")
                    status, answer = 500, {"errorMessages": ["fake answer breaks the contract"]}
        self._send(status, answer)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # ----------------------------------------------------------------- routes

    def _route(self, method: str, version: str, route: str, query: dict[str, str], body: bytes,
               user: str) -> tuple[int, Any]:
        jira = self.jira
        if route == "/serverInfo" and method == "GET":
            cloud = jira.deployment == "Cloud"
            return 200, {"baseUrl": jira.url, "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.2",
                         "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 2], "deploymentType": jira.deployment,
                         "buildNumber": 100257, "buildDate": "2025-01-01T00:00:00.000+0000",
                         "scmInfo": "abc", "serverTitle": "Fake Jira"}
        if route == "/myself" and method == "GET":
            return 200, jira.user_json(user)
        if route == "/field" and method == "GET":
            return 200, [{"id": f, "key": f, "name": f.title(), "custom": False, "navigable": True,
                          "searchable": True, "orderable": True, "clauseNames": [f]}
                         for f in ("summary", "status", "labels", "description", "attachment", "comment")]
        if m := re.fullmatch(r"/project/([^/]+)", route):
            project = jira.project_of({"key": m.group(1), "id": m.group(1)})
            if project is None:
                raise KeyError(m.group(1))
            return 200, {**project, "self": f"{jira.url}/rest/api/2/project/{project['id']}",
                         "issueTypes": [{**t, "self": f"{jira.url}/rest/api/2/issuetype/{t['id']}"}
                                        for t in jira.issue_types]}
        if route == "/issue" and method == "POST":
            return self._create(json.loads(body), user)
        if route == "/search" and method == "GET":
            if jira.deployment == "Cloud":
                return 410, {"errorMessages": ["The requested API has been removed. Use /rest/api/3/search/jql."]}
            found = [i for i in jira.issues.values() if jira.matches(i, query.get("jql", ""))]
            return 200, {"startAt": 0, "maxResults": 50, "total": len(found),
                         "issues": [jira.issue_json(i, query.get("expand", "")) for i in found]}
        if route == "/search/jql" and method == "GET":
            if jira.deployment != "Cloud":
                return 404, {"errorMessages": ["null for uri: search/jql"]}
            found = [i for i in jira.issues.values() if jira.matches(i, query.get("jql", ""))]
            return 200, {"isLast": True, "issues": [jira.issue_json(i, query.get("expand", "")) for i in found]}
        m = re.fullmatch(r"/issue/([^/]+)(/.*)?", route)
        if m:
            issue = self._issue(m.group(1))
            return self._issue_route(method, issue, m.group(2) or "", query, body, user)
        return 404, {"errorMessages": [f"no route {method} {route}"]}

    def _issue(self, ident: str) -> dict[str, Any]:
        issue = self.jira.issues.get(ident) or next((i for i in self.jira.issues.values() if i["id"] == ident), None)
        if issue is None:
            raise KeyError(ident)
        return issue

    def _create(self, data: dict[str, Any], user: str) -> tuple[int, Any]:
        jira = self.jira
        fields = data.get("fields") or {}
        project = jira.project_of(fields.get("project") or {})
        if project is None:
            return 400, {"errorMessages": [], "errors": {"project": "valid project is required"}}
        itype = fields.get("issuetype") or {}
        kind = next((t for t in jira.issue_types if t["name"] == itype.get("name") or t["id"] == itype.get("id")),
                    None)
        if kind is None:
            return 400, {"errorMessages": [], "errors": {"issuetype": "valid issue type is required"}}
        if not fields.get("summary"):
            return 400, {"errorMessages": [], "errors": {"summary": "You must specify a summary of the issue."}}
        for label in fields.get("labels") or []:
            if " " in label:
                return 400, {"errorMessages": [], "errors": {"labels": "The label must not contain spaces."}}
        issue_id = str(next(jira._ids))
        key = f"{project['key']}-{next(jira._keys)}"
        stored = {k: v for k, v in fields.items() if k not in ("project", "issuetype")}
        stored.update({"project": {"id": project["id"], "key": project["key"],
                                   "name": project["name"], "self": f"{jira.url}/rest/api/2/project/{project['id']}"},
                       "issuetype": {**kind, "self": f"{jira.url}/rest/api/2/issuetype/{kind['id']}"},
                       "status": jira.status_json("Open"), "labels": list(fields.get("labels") or []),
                       "created": _now(), "updated": _now(), "reporter": jira.user_json(user)})
        jira.issues[key] = {"id": issue_id, "key": key, "fields": stored, "comments": [], "attachments": [],
                            "remotelinks": [], "histories": []}
        return 201, {"id": issue_id, "key": key, "self": f"{jira.url}/rest/api/2/issue/{issue_id}"}

    def _issue_route(self, method: str, issue: dict[str, Any], sub: str, query: dict[str, str], body: bytes,
                     user: str) -> tuple[int, Any]:
        jira = self.jira
        base = f"{jira.url}/rest/api/2/issue/{issue['id']}"
        if sub == "" and method == "GET":
            return 200, jira.issue_json(issue, query.get("expand", ""))
        if sub == "" and method == "PUT":
            issue["fields"].update((json.loads(body) or {}).get("fields") or {})
            return 204, None
        if sub == "/comment" and method == "GET":
            return 200, jira.comments_page(issue)
        if sub == "/comment" and method == "POST":
            text = json.loads(body).get("body")
            if not isinstance(text, str) or not text:
                return 400, {"errorMessages": [], "errors": {"comment": "Comment body can not be empty!"}}
            cid = str(next(jira._ids))
            comment = {"id": cid, "self": f"{base}/comment/{cid}", "body": text, "author": jira.user_json(user),
                       "created": _now(), "updated": _now()}
            issue["comments"].append(comment)
            return 201, comment
        if m := re.fullmatch(r"/comment/(\d+)", sub):
            comment = next((c for c in issue["comments"] if c["id"] == m.group(1)), None)
            if comment is None:
                raise KeyError(m.group(1))
            if method == "PUT":
                comment["body"] = json.loads(body)["body"]
                comment["updated"] = _now()
                comment["updateAuthor"] = jira.user_json(user)
            return 200, comment
        if sub == "/transitions" and method == "GET":
            return 200, {"expand": "transitions", "transitions": jira.transitions_for(issue)}
        if sub == "/transitions" and method == "POST":
            data = json.loads(body)
            return jira.do_transition(issue["key"], str(data["transition"]["id"]), user)
        if sub == "/attachments" and method == "POST":
            if self.headers.get("X-Atlassian-Token") != "no-check":
                return 403, {"errorMessages": ["XSRF check failed"]}
            message = BytesParser(policy=HTTP).parsebytes(
                f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + body)
            created = []
            for part in message.iter_parts():
                data = part.get_payload(decode=True) or b""
                aid = str(next(jira._ids))
                attachment = {"id": aid, "self": f"{jira.url}/rest/api/2/attachment/{aid}",
                              "filename": part.get_filename(), "size": len(data), "mimeType": part.get_content_type(),
                              "content": f"{jira.url}/secure/attachment/{aid}/{part.get_filename()}",
                              "created": _now(), "author": jira.user_json(user)}
                issue["attachments"].append({"json": attachment, "data": data})
                created.append(attachment)
            return 200, created
        if sub == "/remotelink" and method == "GET":
            return 200, list(issue["remotelinks"])
        if sub == "/remotelink" and method == "POST":
            data = json.loads(body)
            obj = data.get("object") or {}
            if not obj.get("url") or not obj.get("title"):
                return 400, {"errorMessages": [], "errors": {"object": "url and title are required"}}
            lid = next(jira._ids)
            issue["remotelinks"].append({"id": lid, "self": f"{base}/remotelink/{lid}", "object": obj,
                                         **({"globalId": data["globalId"]} if data.get("globalId") else {})})
            return 201, {"id": lid, "self": f"{base}/remotelink/{lid}"}
        return 404, {"errorMessages": [f"no route {method} issue{sub}"]}
