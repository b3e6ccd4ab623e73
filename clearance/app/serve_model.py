"""``clearance serve-model``: one model file served over HTTP, with injected latency and errors, for the demo
and the tests of the load_test gate.

Why: the load_test gate needs a real endpoint to drive, and its tests need one whose latency and error rate
are known in advance. This is a small ASGI app (starlette on uvicorn) around one pickle/joblib model.

**Safety first.** The file is judged by the security scan's model-file scanner
(:func:`gates.security_scan.model_files.scan_path`, bytes only: never unpickled) with the high tier's
allowlists (the ``security_scan`` config of ``<config dir>/policies/high.yaml``, else a built-in equivalent:
the default frameworks, ``unknown_callable: fail``). A file with a denied or unknown callable, a problem that
fails or stops the scan, or a format the tier or this server does not take is refused (:class:`Refused`; the
CLI exits 2 naming why) and is never loaded. The bytes that are unpickled are the bytes that were scanned:
the file is read once, and its SHA-256 must equal the scan's.

Routes (bodies at most :data:`MAX_BODY` bytes, else 413):

- ``POST|PUT /predict`` — ``{"instances": [[v, ...], ...]}`` (values in the model's feature order) or
  ``{"records": [{"column": v, ...}, ...]}`` (columns ordered by the model's ``feature_names_in_`` when it has
  them, else by the first record) → ``{"predictions": [...], "scores": [...]}``; ``scores`` is
  ``predict_proba[:, 1]`` for a binary classifier, the probability rows for more classes, ``null`` without
  ``predict_proba``. Malformed JSON or a body of the wrong shape → 400 naming what is wrong; a wrong feature
  count, missing or unknown columns, or rows the model cannot score → 422. Never a traceback.
- ``POST /endpoints/{name}/invocations`` — the SageMaker runtime ``InvokeEndpoint`` contract (what boto3's
  ``sagemaker-runtime`` client sends with ``endpoint_url`` pointing here): the same JSON body and answer, any
  endpoint name, the ``Content-Type``/``Accept`` headers echoed as JSON, ``x-Amzn-Invoked-Production-Variant:
  AllTraffic``; errors carry ``x-amzn-ErrorType`` (``ValidationError`` for 4xx, ``ServiceUnavailable`` for 503,
  ``InternalFailure`` for other 5xx) and ``{"message": …}`` so botocore raises its usual ``ClientError``. The
  SigV4 ``Authorization`` header boto3 signs with is accepted WITHOUT verification: this is a test double, never
  an authenticated service. ``POST /invocations`` and ``GET /ping`` (the SageMaker container contract) too.
- ``GET /health`` — the model (file, sha256, format, feature count) and the counters: requests, injected errors.

Injection (prediction routes only, counted in arrival order): each request draws its latency from the given
distribution (a numpy generator seeded with ``seed``) and waits it with ``asyncio.sleep`` *before* answering
(the loop keeps serving others); then it is an injected error or is scored. Injected errors are spread
deterministically: with rate ``r`` and a seeded phase, any ``n`` consecutive requests hold ``floor(n·r)`` or
``ceil(n·r)`` errors (exactly ``n·r`` when that is whole), each answered with ``error_status`` and a JSON body.
The model's ``predict`` runs in a worker thread (``anyio.to_thread``), so injected waits and scoring overlap.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import math
import re
import socket
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import anyio.to_thread
import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clearance.app.serve.bodies import read_bounded
from gates.security_scan.checks.model_files import effective_format
from gates.security_scan.config import Action, SecurityScanConfig
from gates.security_scan.findings import FileReport, Severity, Verdict
from gates.security_scan.model_files import scan_path

__all__ = ["MAX_BODY", "ErrorSchedule", "Latency", "LoadedModel", "ModelServer", "Refused", "build_app",
           "check_model_file", "load_model", "parse_latency", "scan_config"]

MAX_BODY = 1024 * 1024  # bytes of one request body
MAX_ROWS = 10_000  # rows of one request
MAX_LATENCY_S = 300.0  # one injected wait at most (a lognormal tail is cut here)
SERVABLE_FORMATS = {"joblib", "pickle"}  # what this server can load (ONNX, safetensors: not a fitted estimator)


class Refused(Exception):
    """The model file did not pass the security scan's model-file checks (or cannot be served): not loaded."""


# --------------------------------------------------------------------------- injection


@dataclass(frozen=True)
class Latency:
    """An injected latency distribution, in milliseconds: ``none``, ``constant``, ``uniform`` or ``lognormal``."""

    kind: str = "none"
    a: float = 0.0  # constant: ms; uniform: low; lognormal: median
    b: float = 0.0  # uniform: high; lognormal: sigma

    def draw(self, rng: np.random.Generator) -> float:
        """One wait in seconds (0 for ``none``), at most :data:`MAX_LATENCY_S`."""
        if self.kind == "none":
            return 0.0
        if self.kind == "constant":
            ms = self.a
        elif self.kind == "uniform":
            ms = float(rng.uniform(self.a, self.b))
        else:
            ms = float(rng.lognormal(math.log(self.a), self.b))
        return min(ms / 1000.0, MAX_LATENCY_S)

    def describe(self) -> str:
        return {"none": "none", "constant": f"constant {self.a:g} ms", "uniform": f"uniform {self.a:g}-{self.b:g} ms",
                "lognormal": f"lognormal median {self.a:g} ms, sigma {self.b:g}"}[self.kind]


_LATENCY_FORMS = ('"constant:200", "uniform:10,30" (or uniform:low=10,high=30), "lognormal:median=50,sigma=0.5" '
                  '(milliseconds)')


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}: {text!r} must be a finite number >= 0")
    return value


def parse_latency(text: str | None, *, latency_ms: float | None = None) -> Latency:
    """``--latency`` (a distribution) or ``--latency-ms`` (a constant) → :class:`Latency`; ValueError naming the
    problem and the accepted forms."""
    if text is not None and latency_ms is not None:
        raise ValueError("give --latency-ms or --latency, not both")
    if latency_ms is not None:
        return Latency("constant", _number(str(latency_ms), "--latency-ms")) if latency_ms else Latency()
    if text is None or text.strip() in ("", "none", "0"):
        return Latency()
    kind, sep, rest = text.strip().partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in ("constant", "uniform", "lognormal"):
        raise ValueError(f"--latency {text!r}: expected {_LATENCY_FORMS}")
    parts = [p.strip() for p in rest.split(",") if p.strip()]
    named = dict(p.split("=", 1) for p in parts if "=" in p)
    plain = [p for p in parts if "=" not in p]
    named = {k.strip().lower(): v.strip() for k, v in named.items()}
    if kind == "constant":
        if len(plain) != 1 or named:
            raise ValueError(f"--latency {text!r}: constant takes one value in ms, e.g. constant:200")
        return Latency("constant", _number(plain[0], "--latency constant"))
    if kind == "uniform":
        values = plain if not named else [named.get("low", ""), named.get("high", "")]
        if len(values) != 2 or (named and set(named) != {"low", "high"}) or (named and plain):
            raise ValueError(f"--latency {text!r}: uniform takes low and high in ms, e.g. uniform:10,30")
        low, high = (_number(v, "--latency uniform") for v in values)
        if low > high:
            raise ValueError(f"--latency {text!r}: low {low:g} is above high {high:g}")
        return Latency("uniform", low, high)
    if plain or set(named) != {"median", "sigma"}:
        raise ValueError(f"--latency {text!r}: lognormal takes median (ms) and sigma, e.g. "
                         "lognormal:median=50,sigma=0.5")
    median, sigma = _number(named["median"], "--latency median"), _number(named["sigma"], "--latency sigma")
    if median <= 0:
        raise ValueError(f"--latency {text!r}: median must be > 0")
    return Latency("lognormal", median, sigma)


@dataclass
class ErrorSchedule:
    """Which requests (0, 1, 2, … in arrival order) are answered with an injected error.

    Request ``i`` errs when ``floor((k + (i+1)·p) / q)`` exceeds ``floor((k + i·p) / q)``, with the rate as the
    fraction ``p/q`` and the phase ``k`` in ``[0, q)`` drawn from the seed: the errors are spread evenly and any
    ``n`` consecutive requests hold ``floor(n·p/q)`` or ``ceil(n·p/q)`` of them.
    """

    rate: float = 0.0
    seed: int = 0
    _p: int = field(init=False, default=0)
    _q: int = field(init=False, default=1)
    _k: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        if not (0.0 <= self.rate <= 1.0) or not math.isfinite(self.rate):
            raise ValueError(f"--error-rate {self.rate!r} must be between 0 and 1")
        fraction = Fraction(repr(self.rate)).limit_denominator(10**9)
        self._p, self._q = fraction.numerator, fraction.denominator
        self._k = int(np.random.default_rng([self.seed, 1]).integers(0, self._q)) if self._q > 1 else 0

    def hits(self, index: int) -> bool:
        """Whether request ``index`` is an injected error."""
        return (self._k + (index + 1) * self._p) // self._q > (self._k + index * self._p) // self._q

    def count(self, n: int) -> int:
        """Injected errors among requests ``0 … n-1``."""
        return (self._k + n * self._p) // self._q - self._k // self._q


# --------------------------------------------------------------------------- the model file


def scan_config(policy_file: Path | None) -> SecurityScanConfig:
    """The ``security_scan`` config of the policy at ``policy_file`` (the high tier's); when there is no such
    file, the built-in equivalent: the default frameworks and formats, ``unknown_callable: fail``.

    Only that gate's entry is read (the rest of the policy is not this server's business); a malformed one is
    :class:`Refused`, naming the file.
    """
    if policy_file is None or not policy_file.is_file():
        return SecurityScanConfig(unknown_callable=Action.FAIL)
    import yaml

    try:
        data = yaml.safe_load(policy_file.read_text(encoding="utf-8"))
        gates = data.get("gates") if isinstance(data, dict) else None
        entry = next((g for g in gates or [] if isinstance(g, dict) and g.get("id") == "security_scan"), None)
        if entry is None:
            raise Refused(f"{policy_file} runs no security_scan gate: no allowlists to judge the model file with")
        return SecurityScanConfig.model_validate(entry.get("config") or {})
    except Refused:
        raise
    except Exception as exc:  # noqa: BLE001 — YAML or validation: the policy cannot be used, say which and why
        raise Refused(f"{policy_file}: its security_scan config cannot be read: {exc}") from None


def _refusal(path: Path, config: SecurityScanConfig, reports: list[FileReport]) -> str | None:
    """Why the scanned file may not be loaded (None: it may)."""
    top = next((r for r in reports if r.file == path.name), reports[0] if reports else None)
    if top is None:
        return "the scan reported nothing"
    why: list[str] = []
    for report in reports:
        for problem in report.problems:
            if problem.severity in (Severity.FAIL, Severity.ERROR):
                at = f" at byte {problem.offset}" if problem.offset is not None else ""
                why.append(f"{report.file}: {problem.kind}{at}: {problem.message}")
        for finding in report.callables:
            # An unknown callable is refused whatever the tier's unknown_callable: this process unpickles it.
            if finding.verdict is not Verdict.ALLOWED:
                why.append(f"{report.file}: {finding.verdict.value} callable {finding.callable} ({finding.opcode} "
                           f"at byte {finding.offset}{': ' + finding.reason if finding.reason else ''})")
    fmt, mismatch = effective_format(path.name, None, top.format)
    if mismatch:
        why.append(mismatch)
    elif fmt not in config.allowed_formats:
        why.append(f"format {fmt!r} is not allowed by the tier (allowed: {', '.join(config.allowed_formats)})")
    elif fmt not in SERVABLE_FORMATS:
        why.append(f"format {fmt!r}: serve-model serves joblib and pickle models only")
    if not why:
        return None
    unique = list(dict.fromkeys(why))
    more = f"; and {len(unique) - 10} more" if len(unique) > 10 else ""
    return "; ".join(unique[:10]) + more


def check_model_file(path: Path, config: SecurityScanConfig) -> tuple[bytes, FileReport]:
    """Read ``path`` once and judge those bytes with the security scan; :class:`Refused` naming why, else the bytes
    (what may be unpickled) and the file's report."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Refused(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        reports = scan_path(path, path.name, config.callable_policy(), config.limits.to_scan_limits())
    except Exception as exc:  # noqa: BLE001 — a scanner crash is a refusal, never a pass
        raise Refused(f"{path}: the scan failed: {type(exc).__name__}: {exc}") from None
    why = _refusal(path, config, reports)
    if why is not None:
        raise Refused(f"{path} did not pass the security scan, so it was not loaded: {why}")
    top = next(r for r in reports if r.file == path.name)
    digest = hashlib.sha256(data).hexdigest()
    if top.sha256 is not None and top.sha256 != digest:
        raise Refused(f"{path} changed while it was scanned (sha256 {digest[:12]}… read, {top.sha256[:12]}… "
                      "scanned): not loaded")
    return data, top


@dataclass
class LoadedModel:
    """A model that passed the scan, loaded from the scanned bytes."""

    model: Any
    name: str
    sha256: str
    format: str
    n_features: int | None
    feature_names: list[str] | None

    def score(self, rows: Any) -> dict[str, Any]:
        """``{"predictions": [...], "scores": [...] | None}`` of the rows (runs in a worker thread)."""
        predictions = np.asarray(self.model.predict(rows))
        scores: Any = None
        proba = getattr(self.model, "predict_proba", None)
        if proba is not None:
            p = np.asarray(proba(rows))
            scores = p[:, 1].tolist() if p.ndim == 2 and p.shape[1] == 2 else p.tolist()
        return {"predictions": predictions.tolist(), "scores": scores}


def load_model(path: Path, config: SecurityScanConfig) -> LoadedModel:
    """Scan ``path`` (:func:`check_model_file`), then unpickle exactly the scanned bytes."""
    data, report = check_model_file(path, config)
    try:
        import joblib
    except ImportError:  # pragma: no cover - joblib comes with the demo extra (and scikit-learn)
        raise Refused("serve-model needs joblib to load models: pip install -e '.[demo]'") from None
    try:
        model = joblib.load(io.BytesIO(data))
    except Exception as exc:  # noqa: BLE001 — a file that passed the scan but does not load: say why
        raise Refused(f"{path} passed the scan but could not be loaded: {type(exc).__name__}: {exc}") from None
    if not callable(getattr(model, "predict", None)):
        raise Refused(f"{path} holds a {type(model).__name__}, which has no predict(): not a model")
    names = getattr(model, "feature_names_in_", None)
    n_features = getattr(model, "n_features_in_", None)
    return LoadedModel(model=model, name=path.name, sha256=report.sha256 or hashlib.sha256(data).hexdigest(),
                       format=report.format, n_features=int(n_features) if n_features is not None else None,
                       feature_names=[str(n) for n in names] if names is not None else None)


# --------------------------------------------------------------------------- requests


class BadRequest(Exception):
    """A request the server answers with ``status`` and ``message`` (never a traceback)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_SCALARS = (int, float, str, bool, type(None))


def _rows_of(payload: Any, model: LoadedModel) -> Any:
    """The request's rows as the model's input (a float matrix when it can be one; a DataFrame for a model fitted
    on named columns when pandas is there); :class:`BadRequest` naming what is wrong."""
    if not isinstance(payload, dict):
        raise BadRequest(400, f'the body must be a JSON object {{"instances": [[...]]}} or {{"records": [{{...}}]}}, '
                              f"not a JSON {type(payload).__name__}")
    keys = set(payload)
    if len(keys & {"instances", "records"}) != 1 or keys - {"instances", "records"}:
        raise BadRequest(400, f'the body must have exactly one key, "instances" or "records" '
                              f"(got {', '.join(map(repr, sorted(keys))) or 'none'})")
    key = "instances" if "instances" in payload else "records"
    items = payload[key]
    if not isinstance(items, list) or not items:
        raise BadRequest(400, f"{key} must be a non-empty list")
    if len(items) > MAX_ROWS:
        raise BadRequest(413, f"{key} holds {len(items)} rows; at most {MAX_ROWS} per request")
    columns: list[str] | None
    if key == "instances":
        rows = items
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                raise BadRequest(400, f"instances[{i}] must be a list of feature values, not a JSON "
                                      f"{type(row).__name__}")
        columns = model.feature_names
    else:
        rows, columns = _records(items, model)
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            if not isinstance(value, _SCALARS):
                where = f"[{j}]" if key == "instances" or columns is None else f".{columns[j]}"
                raise BadRequest(400, f"{key}[{i}]{where} must be a number, string, boolean or null")
    widths = {len(row) for row in rows}
    expected = model.n_features
    if expected is not None and widths != {expected}:
        i = next(i for i, row in enumerate(rows) if len(row) != expected)
        raise BadRequest(422, f"{key}[{i}] has {len(rows[i])} values; the model expects {expected} features")
    if len(widths) != 1:
        raise BadRequest(422, f"the rows of {key} have different lengths ({', '.join(map(str, sorted(widths)))})")
    if model.feature_names is not None:
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - pandas is in the test extra
            pd = None
        if pd is not None:
            return pd.DataFrame(rows, columns=model.feature_names)
    try:
        return np.asarray(rows, dtype=float)
    except (TypeError, ValueError):
        return np.asarray(rows, dtype=object)


def _records(items: list[Any], model: LoadedModel) -> tuple[list[list[Any]], list[str]]:
    for i, record in enumerate(items):
        if not isinstance(record, dict):
            raise BadRequest(400, f"records[{i}] must be a JSON object of column → value, not a JSON "
                                  f"{type(record).__name__}")
    first = list(items[0])
    columns = model.feature_names or first
    wanted = set(columns)
    for i, record in enumerate(items):
        missing = [c for c in columns if c not in record]
        unknown = [c for c in record if c not in wanted]
        if missing or unknown:
            said = []
            if missing:
                said.append(f"lacks {', '.join(map(repr, missing[:10]))}")
            if unknown:
                said.append(f"has unknown column(s) {', '.join(map(repr, unknown[:10]))}")
            source = "the model's features" if model.feature_names else "records[0]"
            raise BadRequest(422, f"records[{i}] {' and '.join(said)} (columns: those of {source})")
    return [[record[c] for c in columns] for record in items], list(columns)


# --------------------------------------------------------------------------- the server


@dataclass
class ModelServer:
    """One loaded model, its injections and its counters (touched on the event loop only)."""

    model: LoadedModel
    latency: Latency = field(default_factory=Latency)
    errors: ErrorSchedule = field(default_factory=ErrorSchedule)
    error_status: int = 503
    seed: int = 0
    requests: int = 0
    injected_errors: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 400 <= self.error_status <= 599:
            raise ValueError(f"--error-status {self.error_status} must be a 4xx or 5xx status")
        self._rng = np.random.default_rng([self.seed, 0])

    def health(self) -> dict[str, Any]:
        return {"status": "ok", "model": self.model.name, "sha256": self.model.sha256, "format": self.model.format,
                "n_features": self.model.n_features, "feature_names": self.model.feature_names,
                "latency": self.latency.describe(), "error_rate": self.errors.rate, "error_status": self.error_status,
                "requests": self.requests, "injected_errors": self.injected_errors}

    async def answer(self, request: Request) -> tuple[int, dict[str, Any]]:
        """``(status, JSON body)`` of one prediction request: bounded read, injected wait, injected error, score."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
            return 413, {"error": f"the body is {declared} bytes; at most {MAX_BODY}"}
        body = await read_bounded(request, MAX_BODY)
        if body is None:
            return 413, {"error": f"the body is over {MAX_BODY} bytes"}
        index = self.requests
        self.requests += 1
        wait = self.latency.draw(self._rng)
        if wait > 0:
            await asyncio.sleep(wait)
        if self.errors.hits(index):
            self.injected_errors += 1
            return self.error_status, {"error": f"injected error (request {index}, rate {self.errors.rate:g})"}
        try:
            payload = json.loads(body.decode("utf-8"))  # JSON over HTTP is UTF-8 (RFC 8259)
        except UnicodeDecodeError:
            return 400, {"error": "the body is not UTF-8 JSON"}
        except json.JSONDecodeError as exc:
            return 400, {"error": f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"}
        except RecursionError:
            return 400, {"error": "the body nests too deeply"}
        try:
            rows = _rows_of(payload, self.model)
            return 200, await anyio.to_thread.run_sync(self._score, rows)
        except BadRequest as exc:
            return exc.status, {"error": exc.message}

    def _score(self, rows: Any) -> dict[str, Any]:
        try:
            return self.model.score(rows)
        except (ValueError, TypeError) as exc:  # the model refused the values: the request's fault
            raise BadRequest(422, f"the model could not score the rows: {_short(exc)}") from None
        except Exception as exc:  # noqa: BLE001 — the model failed: a JSON 500 naming it, never a traceback
            raise BadRequest(500, f"the model failed: {type(exc).__name__}: {_short(exc)}") from None


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[:limit] + "…"


_ENDPOINT = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
_AWS_ERROR = {503: "ServiceUnavailable"}


def build_app(server: ModelServer) -> Starlette:
    """The ASGI app serving ``server``'s model."""

    async def predict(request: Request) -> Response:
        status, body = await server.answer(request)
        return JSONResponse(body, status_code=status)

    async def invocations(request: Request) -> Response:
        name = request.path_params.get("name", "")
        if name and not _ENDPOINT.fullmatch(name):
            return _aws_error(400, f"endpoint name {name!r} is not a valid SageMaker endpoint name")
        status, body = await server.answer(request)
        if status != 200:
            return _aws_error(status, body["error"])
        return JSONResponse(body, headers={"x-Amzn-Invoked-Production-Variant": "AllTraffic"})

    async def health(request: Request) -> Response:
        return JSONResponse(server.health())

    async def ping(request: Request) -> Response:
        return Response(status_code=200)

    return Starlette(routes=[
        Route("/predict", predict, methods=["POST", "PUT"]),
        Route("/endpoints/{name}/invocations", invocations, methods=["POST"]),
        Route("/invocations", invocations, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/ping", ping, methods=["GET"]),
    ])


def _aws_error(status: int, message: str) -> Response:
    kind = "ValidationError" if status < 500 else _AWS_ERROR.get(status, "InternalFailure")
    return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": kind})


def announcement(model: LoadedModel, url: str, latency: Latency, error_rate: float, error_status: int) -> str:
    """The line ``serve-model`` prints once its socket listens; :data:`ANNOUNCED_URL` finds the URL in it."""
    return (f"serving {model.name} (sha256 {model.sha256[:12]}…, {model.format}, "
            f"{model.n_features if model.n_features is not None else '?'} features) on {url}: "
            f"POST /predict, POST /endpoints/<name>/invocations, GET /health; latency {latency.describe()}, "
            f"error rate {error_rate:g} ({error_status})")


ANNOUNCED_URL = re.compile(r"^serving .* on (http://\S+?): POST /predict", re.MULTILINE)
"""The base URL in :func:`announcement`'s line (what a launcher waits for, e.g. with ``--port 0``)."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` and listening (port 0: a free one the kernel picks), so the URL announced
    is the one bound, and connections made once it is announced wait in the backlog until uvicorn accepts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise Refused(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def run(model_file: Path, *, host: str, port: int, latency: Latency, error_rate: float, error_status: int,
        seed: int, policy_file: Path | None) -> None:
    """Scan and load ``model_file`` and serve it until interrupted (:class:`Refused` / ValueError: nothing
    served). ``port`` 0 takes a free port; the announcement names the one bound."""
    import uvicorn

    model = load_model(model_file, scan_config(policy_file))
    server = ModelServer(model, latency=latency, errors=ErrorSchedule(error_rate, seed), error_status=error_status,
                         seed=seed)
    sock = listening_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://[{bound_host}]:{bound_port}" if ":" in bound_host else f"http://{bound_host}:{bound_port}"
    print(announcement(model, url, latency, error_rate, error_status), flush=True)
    config = uvicorn.Config(build_app(server), log_level="warning", access_log=False)
    with sock:
        uvicorn.Server(config).run(sockets=[sock])
