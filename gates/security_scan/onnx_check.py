"""ONNX models checked from their protobuf bytes, without importing ``onnx`` or loading the model.

What is checked (``ModelProto`` field numbers from ``onnx.proto``):

- every ``TensorProto`` that can carry external data — graph initializers (GraphProto 5), sparse
  initializers (GraphProto 15: values and indices), node attributes (``t``, ``tensors``,
  ``sparse_tensor``, ``sparse_tensors``), in subgraphs (``g``, ``graphs``), training-info graphs
  (ModelProto 20) and model-local functions (ModelProto 25) — has ``external_data`` locations that
  stay inside the model's bundle: no empty path, no absolute path, no drive letter or UNC path, no
  ``..`` component, no NUL, and (for a model on disk) no symlink that resolves outside the model's
  directory → ``Problem(kind="path", FAIL)``; a tensor marked EXTERNAL without a location →
  ``Problem(kind="format", FAIL)``;
- nodes of an operator domain outside the ONNX standard (``""``, ``ai.onnx``, ``ai.onnx.ml``,
  ``ai.onnx.preview.training``) that no model-local function defines → one
  ``Problem(kind="custom_op", WARN)`` per domain: such operators are native code of the runtime
  or of a plugin library;
- bytes that are not a well-formed protobuf ``ModelProto`` → ``Problem(kind="corrupt", ERROR)``
  with the offset; a model without a graph → ``Problem(kind="format", FAIL)``.

:class:`OnnxInfo` records the IR version, producer and opsets for the evidence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from gates.security_scan.findings import Problem, Severity
from gates.security_scan.protowire import LEN, VARINT, Field, WireError, iter_fields, text

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training"})
MAX_GRAPH_DEPTH = 32

_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class OnnxInfo:
    """What the model says about itself (for the evidence)."""

    ir_version: int | None = None
    producer: str = ""
    producer_version: str = ""
    opsets: dict[str, int] = field(default_factory=dict)  # domain ("" = ai.onnx) → version
    custom_domains: list[str] = field(default_factory=list)
    external_locations: list[str] = field(default_factory=list)
    nodes: int = 0
    tensors: int = 0


@dataclass
class OnnxCheck:
    """The problems found in one ONNX model and what it says about itself."""

    problems: list[Problem]
    info: OnnxInfo


def external_location_problem(location: str) -> str | None:
    """Why an external-data location leaves the model's bundle, lexically; ``None`` when it does not."""
    if not location:
        return "empty external data location"
    if "\x00" in location:
        return "external data location contains a NUL byte"
    if location.startswith(("/", "\\")):
        return f"absolute external data location {location!r}"
    if _DRIVE.match(location):
        return f"external data location with a drive letter {location!r}"
    if ".." in re.split(r"[/\\]", location):
        return f"external data location {location!r} leaves the model's directory (..)"
    return None


def check_onnx(buf: memoryview | bytes, file: str, *, model_dir: Path | None = None) -> OnnxCheck:
    """Check one serialized ``ModelProto``; ``model_dir`` (a model on disk) also catches symlink escapes."""
    walker = _Walker(buf, file, model_dir)
    try:
        walker.model()
    except WireError as exc:
        walker.problems.append(Problem(file, "corrupt", f"not a well-formed ONNX protobuf: {exc}",
                                       Severity.ERROR, offset=exc.offset))
    except RecursionError:
        walker.problems.append(Problem(file, "limit", "ONNX graphs nested too deeply to check", Severity.ERROR))
    walker.finish()
    return OnnxCheck(walker.problems, walker.info)


class _Walker:
    """One pass over the message tree, descending only into fields that can hold tensors or nodes."""

    def __init__(self, buf: memoryview | bytes, file: str, model_dir: Path | None) -> None:
        self.buf = buf
        self.file = file
        self.model_dir = model_dir
        self.problems: list[Problem] = []
        self.info = OnnxInfo()
        self.functions: set[tuple[str, str]] = set()  # (domain, name) of model-local functions
        self.custom_nodes: dict[str, dict[str, tuple[int, int]]] = {}  # domain → op → (first offset, count)
        self.has_graph = False

    def _message(self, f: Field, what: str) -> Field:
        if f.wire_type != LEN:
            raise WireError(f.offset, f"{what} (field {f.number}) is not length-delimited")
        return f

    def _int(self, f: Field, what: str) -> int:
        if f.wire_type != VARINT or f.value is None:
            raise WireError(f.offset, f"{what} (field {f.number}) is not a varint")
        return f.value

    def model(self) -> None:
        if len(self.buf) == 0:
            raise WireError(0, "empty file")
        for f in iter_fields(self.buf):
            if f.number == 1:
                self.info.ir_version = self._int(f, "ir_version")
            elif f.number == 2:
                self.info.producer = text(self.buf, self._message(f, "producer_name"))
            elif f.number == 3:
                self.info.producer_version = text(self.buf, self._message(f, "producer_version"))
            elif f.number == 8:
                self._opset(self._message(f, "opset_import"))
            elif f.number == 7:
                self.has_graph = True
                self._graph(self._message(f, "graph"), 0)
            elif f.number == 20:
                for g in iter_fields(self.buf, *_span(self._message(f, "training_info"))):
                    if g.number in (1, 2):  # initialization, algorithm
                        self._graph(self._message(g, "training graph"), 0)
            elif f.number == 25:
                self._function(self._message(f, "function"))

    def _opset(self, f: Field) -> None:
        domain, version = "", 0
        for g in iter_fields(self.buf, *_span(f)):
            if g.number == 1:
                domain = text(self.buf, self._message(g, "opset domain"))
            elif g.number == 2:
                version = self._int(g, "opset version")
        self.info.opsets[domain] = version

    def _graph(self, f: Field, depth: int) -> None:
        if depth > MAX_GRAPH_DEPTH:
            raise WireError(f.offset, f"subgraphs nested deeper than {MAX_GRAPH_DEPTH}")
        for g in iter_fields(self.buf, *_span(f)):
            if g.number == 1:
                self._node(self._message(g, "node"), depth)
            elif g.number == 5:
                self._tensor(self._message(g, "initializer"))
            elif g.number == 15:
                self._sparse(self._message(g, "sparse_initializer"))

    def _function(self, f: Field) -> None:
        name, domain = "", ""
        for g in iter_fields(self.buf, *_span(f)):
            if g.number == 1:
                name = text(self.buf, self._message(g, "function name"))
            elif g.number == 10:
                domain = text(self.buf, self._message(g, "function domain"))
            elif g.number == 7:
                self._node(self._message(g, "function node"), 0)
        self.functions.add((domain, name))

    def _node(self, f: Field, depth: int) -> None:
        self.info.nodes += 1
        domain, op_type = "", ""
        for g in iter_fields(self.buf, *_span(f)):
            if g.number == 4:
                op_type = text(self.buf, self._message(g, "op_type"))
            elif g.number == 7:
                domain = text(self.buf, self._message(g, "domain"))
            elif g.number == 5:
                self._attribute(self._message(g, "attribute"), depth)
        if domain not in STANDARD_DOMAINS:
            ops = self.custom_nodes.setdefault(domain, {})
            first, count = ops.get(op_type, (f.offset, 0))
            ops[op_type] = (first, count + 1)

    def _attribute(self, f: Field, depth: int) -> None:
        for g in iter_fields(self.buf, *_span(f)):
            if g.number in (5, 10):  # t, tensors
                self._tensor(self._message(g, "attribute tensor"))
            elif g.number in (6, 11):  # g, graphs
                self._graph(self._message(g, "attribute graph"), depth + 1)
            elif g.number in (22, 23):  # sparse_tensor, sparse_tensors
                self._sparse(self._message(g, "attribute sparse tensor"))

    def _sparse(self, f: Field) -> None:
        for g in iter_fields(self.buf, *_span(f)):
            if g.number in (1, 2):  # values, indices
                self._tensor(self._message(g, "sparse tensor part"))

    def _tensor(self, f: Field) -> None:
        self.info.tensors += 1
        name, external = "", False
        locations: list[tuple[str, int]] = []
        for g in iter_fields(self.buf, *_span(f)):
            if g.number == 8:
                name = text(self.buf, self._message(g, "tensor name"))
            elif g.number == 14:
                external = self._int(g, "data_location") == 1
            elif g.number == 13:
                key, value = "", ""
                for h in iter_fields(self.buf, *_span(self._message(g, "external_data"))):
                    if h.number == 1:
                        key = text(self.buf, self._message(h, "external_data key"))
                    elif h.number == 2:
                        value = text(self.buf, self._message(h, "external_data value"))
                if key == "location":
                    locations.append((value, g.offset))
        label = f"tensor {name!r}" if name else "an unnamed tensor"
        if external and not locations:
            self.problems.append(Problem(self.file, "format", f"{label} is marked EXTERNAL but names no location",
                                         Severity.FAIL, offset=f.offset))
        for location, offset in locations:
            self.info.external_locations.append(location)
            reason = external_location_problem(location) or self._escapes(location)
            if reason:
                self.problems.append(Problem(self.file, "path", f"{label}: {reason}", Severity.FAIL, offset=offset))

    def _escapes(self, location: str) -> str | None:
        """For a model on disk: the location resolves (through symlinks) outside the model's directory."""
        if self.model_dir is None:
            return None
        base = self.model_dir.resolve()
        target = (base / PurePosixPath(location.replace("\\", "/"))).resolve()
        if not target.is_relative_to(base):
            return f"external data location {location!r} resolves outside the model's directory (symlink)"
        return None

    def finish(self) -> None:
        if not self.has_graph and not any(p.kind == "corrupt" for p in self.problems):
            self.problems.append(Problem(self.file, "format", "ONNX model without a graph", Severity.FAIL))
        for domain, ops in sorted(self.custom_nodes.items()):
            native = {op: seen for op, seen in ops.items() if (domain, op) not in self.functions}
            if not native:
                continue  # every op of this domain is a function the model defines in ONNX itself
            self.info.custom_domains.append(domain)
            count = sum(n for _, n in native.values())
            self.problems.append(Problem(
                self.file, "custom_op",
                f"{count} node(s) of custom operator domain {domain!r} ({', '.join(sorted(native))}): "
                "custom operators run native code outside the ONNX standard",
                Severity.WARN, offset=min(at for at, _ in native.values())))


def _span(f: Field) -> tuple[int, int]:
    return f.start, f.end
