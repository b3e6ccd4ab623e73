"""security_scan's pickle engine: every callable a stream can import or call, read as bytes, never loaded.

The malicious and benign corpus is built in ``tests/unit/security_corpus.py``; nothing here loads
a malicious pickle (a joblib layout is proven real by loading its harmless twin, whose tail calls
``collections.OrderedDict``).
"""

from __future__ import annotations

import ast
import collections
import io
import pickle
import pickletools
import struct
import tracemalloc
from pathlib import Path

import joblib
import numpy as np
import pytest

from gates.security_scan import pickle_opcodes
from gates.security_scan.callables import DEFAULT_FRAMEWORKS, CallablePolicy
from gates.security_scan.findings import Severity, Verdict
from gates.security_scan.pickle_scan import DENIED_REPEATS, PickleScan, scan_pickle
from tests.unit import security_corpus as corpus

POLICY = CallablePolicy(DEFAULT_FRAMEWORKS)
ENGINE = [Path(__file__).resolve().parents[2] / "gates" / "security_scan" / name
          for name in ("pickle_scan.py", "pickle_machine.py", "pickle_opcodes.py", "joblib_arrays.py", "callables.py")]


def scan(data: bytes | bytearray | memoryview, **kwargs: object) -> PickleScan:
    return scan_pickle(data, "model.pkl", POLICY, **kwargs)  # type: ignore[arg-type]


def denied(result: PickleScan) -> set[tuple[int, str, str]]:
    return {(c.offset, c.callable, c.opcode) for c in result.callables if c.verdict is Verdict.DENIED}


def verdicts(result: PickleScan) -> dict[str, Verdict]:
    return {c.callable: c.verdict for c in result.callables}


def opcode_starts(data: bytes) -> list[int]:
    """Where each opcode starts (pickletools, in the test only: the engine never uses it)."""
    return [pos for _op, _arg, pos in pickletools.genops(data)]


# --------------------------------------------------------------------------- the malicious corpus

CASES = [(name, protocol) for name, _build, protocols in corpus.MALICIOUS_BUILDERS for protocol in protocols]
BUILDERS = {name: build for name, build, _protocols in corpus.MALICIOUS_BUILDERS}


@pytest.mark.parametrize(("name", "protocol"), CASES, ids=[f"{n}-p{p}" for n, p in CASES])
def test_every_technique_is_denied_with_its_offset_and_name(name: str, protocol: int) -> None:
    sample = BUILDERS[name](protocol)
    result = scan(sample.data)
    assert sample.expect, "a malicious sample names what must be found"
    assert set(sample.expect) <= denied(result), (sample.expect, result.callables)
    assert not result.problems
    assert all(c.file == "model.pkl" for c in result.callables)


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("spelling", ["short", "bin", "bin8", "line"])
def test_stack_global_of_every_string_spelling(protocol: int, spelling: str) -> None:
    sample = corpus.stack_global(protocol, spelling=spelling)
    assert set(sample.expect) <= denied(scan(sample.data))


@pytest.mark.parametrize("protocol", [4, 5])
@pytest.mark.parametrize("put", ["memoize", "binput", "long_binput", "put"])
@pytest.mark.parametrize("get", ["binget", "long_binget", "get"])
def test_stack_global_resolved_through_the_memo(protocol: int, put: str, get: str) -> None:
    sample = corpus.stack_global_memo(protocol, put, get)
    result = scan(sample.data)
    assert set(sample.expect) <= denied(result)
    assert not result.problems


def test_extension_codes_are_denied_and_named_by_code() -> None:
    for width, code in ((1, 7), (2, 0x1234), (4, 0x12345678)):
        result = scan(corpus.extension(2, width, code).data)
        found = [c for c in result.callables if c.opcode == f"EXT{width}"]
        assert [c.callable for c in found] == [f"<extension code {code}>"]
        assert found[0].verdict is Verdict.DENIED and "extension registry" in found[0].reason


def test_py2_spellings_are_judged_as_python_imports_them() -> None:
    result = scan(corpus.py2_spelling(2).data)
    finding = next(c for c in result.callables if c.opcode == "GLOBAL")
    assert finding.callable == "builtins.eval" and finding.verdict is Verdict.DENIED
    assert "__builtin__.eval" in finding.reason
    # copy_reg._reconstructor and __builtin__.object, as protocols 0-2 write them, are allowed
    plain = scan(pickle.dumps(collections.OrderedDict(a=1), protocol=0))
    assert set(verdicts(plain).values()) == {Verdict.ALLOWED}


def test_calling_what_a_call_returned_is_unresolved_and_unknown() -> None:
    result = scan(corpus.getattr_gadget(2).data)
    unresolved = [c for c in result.callables if c.callable == "unresolved"]
    assert unresolved and unresolved[0].verdict is Verdict.UNKNOWN and unresolved[0].opcode == "REDUCE"
    assert "builtins.getattr returned" in unresolved[0].reason


def test_computed_stack_global_is_denied() -> None:
    result = scan(corpus.computed_stack_global(4).data)
    (finding,) = [c for c in result.callables if c.opcode == "STACK_GLOBAL"]
    assert finding.verdict is Verdict.DENIED and "computed" in finding.reason


def test_mutating_an_imported_object_is_denied() -> None:
    a = corpus.Asm(2)
    a.glob("collections", "OrderedDict")
    at = a.raw(b"K\x01a")  # APPEND onto the class object
    result = scan(a.stop())
    assert (at + 2, "collections.OrderedDict", "APPEND") in denied(result)


def test_persistent_ids_are_counted_not_judged() -> None:
    for protocol in range(6):
        result = scan(corpus.persistent(protocol).data)
        assert result.persistent_ids == 1
        assert not result.callables and not result.problems


def test_build_reports_the_class_whose_state_is_set() -> None:
    result = scan(pickle.dumps(collections.OrderedDict(a=1), protocol=2))
    assert ("collections.OrderedDict", "REDUCE") in {(c.callable, c.opcode) for c in result.callables}


@pytest.mark.parametrize("protocol", range(0, 6))
def test_a_memoryview_slice_scans_like_bytes(protocol: int) -> None:
    data = (corpus.benign_numpy(protocol) + pickle.dumps(["x" * 300_000, 1.5, 10**30], protocol=protocol)
            + corpus.inst(protocol).data + corpus.global_reduce(protocol).data)
    padded = b"\x00" * 7 + data  # a slice at an offset: lines are found through copied windows
    expected = scan(data)
    for view in (memoryview(data), memoryview(padded)[7:], bytearray(data)):
        result = scan(view)
        assert result.callables == expected.callables and result.problems == expected.problems == []
        assert result.streams == expected.streams == 4


def test_offsets_are_shifted_by_base_offset() -> None:
    sample = corpus.global_reduce(4)
    result = scan(sample.data, base_offset=1000)
    assert {(at + 1000, name, op) for at, name, op in sample.expect} <= denied(result)


def test_repeated_names_are_reported_once_unless_denied() -> None:
    a = corpus.Asm(2)
    a.raw(b"(")
    for _ in range(5):
        a.glob("collections", "OrderedDict")
    for _ in range(DENIED_REPEATS + 5):
        a.glob("os", "system")
    a.raw(b"l")
    result = scan(a.stop())
    assert [c.callable for c in result.callables].count("collections.OrderedDict") == 1
    assert [c.callable for c in result.callables].count("os.system") == DENIED_REPEATS
    assert [p.kind for p in result.problems] == ["limit"]


def test_sparse_memo_indexes_work_like_the_unpickler() -> None:
    a = corpus.Asm(4)
    a.text("os")
    a.put(10, "binput")  # index 10 of an empty memo: the memo is a dict from here on
    a.raw(b"0")
    a.text("system")
    a.put(0, "memoize")  # MEMOIZE uses len(memo) == 1
    a.raw(b"0")
    a.get(10, "binget")
    a.get(1, "binget")
    at = a.raw(b"\x93")
    assert (at, "os.system", "STACK_GLOBAL") in denied(scan(a.stop()))


def test_memo_side_store_round_trips() -> None:
    from gates.security_scan.pickle_machine import Dict, Side

    side = Side()
    values = [(), (3, 17), tuple(range(16)), tuple(range(17)), ("x",), Dict(), (Dict(), 4)]
    codes = [side.code(v) for v in values]
    assert all(c < 0 for c in codes)
    assert [side.value(c) for c in codes] == values
    assert side.value(42) == 42


# --------------------------------------------------------------------------- the policy


@pytest.mark.parametrize(("dotted", "module", "verdict"), [
    ("os.system", "os", Verdict.DENIED),
    ("posix.system", "posix", Verdict.DENIED),
    ("nt.system", "nt", Verdict.DENIED),
    ("OS.system", "OS", Verdict.DENIED),
    ("builtins.getattr", "builtins", Verdict.DENIED),
    ("builtins.eval", "builtins", Verdict.DENIED),
    ("builtins.__import__", "builtins", Verdict.DENIED),
    ("builtins.set", "builtins", Verdict.ALLOWED),
    ("builtins.type", "builtins", Verdict.UNKNOWN),
    ("subprocess.Popen", "subprocess", Verdict.DENIED),
    ("runpy._run_code", "runpy", Verdict.DENIED),
    ("importlib.import_module", "importlib", Verdict.DENIED),
    ("_pickle.loads", "_pickle", Verdict.DENIED),
    ("marshal.loads", "marshal", Verdict.DENIED),
    ("types.FunctionType", "types", Verdict.DENIED),
    ("socket.create_connection", "socket", Verdict.DENIED),
    ("shutil.rmtree", "shutil", Verdict.DENIED),
    ("webbrowser.open", "webbrowser", Verdict.DENIED),
    ("pty.spawn", "pty", Verdict.DENIED),
    ("ctypes.CDLL", "ctypes", Verdict.DENIED),
    ("code.InteractiveInterpreter", "code", Verdict.DENIED),
    ("pdb.run", "pdb", Verdict.DENIED),
    ("operator.attrgetter", "operator", Verdict.DENIED),
    ("operator.methodcaller", "operator", Verdict.DENIED),
    ("operator.itemgetter", "operator", Verdict.UNKNOWN),
    ("functools.partial", "functools", Verdict.UNKNOWN),
    ("numpy.load", "numpy", Verdict.DENIED),
    ("numpy.testing._private.utils.runstring", "numpy.testing._private.utils", Verdict.DENIED),
    ("numpy.core._ufunc_reconstruct", "numpy.core", Verdict.DENIED),
    ("numpy.testing._private.utils.os.system", "numpy", Verdict.DENIED),
    ("numpy._core.multiarray._reconstruct", "numpy._core.multiarray", Verdict.ALLOWED),
    ("numpy.core.multiarray._reconstruct", "numpy.core.multiarray", Verdict.ALLOWED),
    ("numpy.linalg.norm", "numpy.linalg", Verdict.UNKNOWN),
    ("sklearn.linear_model._logistic.LogisticRegression", "sklearn.linear_model._logistic", Verdict.ALLOWED),
    ("sklearn.base.os", "sklearn.base", Verdict.DENIED),
    ("sklearn.base.os.system", "sklearn", Verdict.DENIED),
    ("sklearn.utils.Bunch.__init__.__globals__", "sklearn.utils", Verdict.DENIED),
    ("sklearn.datasets.fetch_openml", "sklearn.datasets", Verdict.DENIED),
    ("sklearn.externals.joblib.load", "sklearn.externals.joblib", Verdict.DENIED),
    ("scipy.sparse._csr.csr_matrix", "scipy.sparse._csr", Verdict.ALLOWED),
    ("scipy.io.loadmat", "scipy.io", Verdict.DENIED),
    ("xgboost.core.Booster", "xgboost.core", Verdict.ALLOWED),
    ("lightgbm.basic.Booster", "lightgbm.basic", Verdict.ALLOWED),
    ("torch._utils._rebuild_tensor_v2", "torch._utils", Verdict.ALLOWED),
    ("torch.FloatStorage", "torch", Verdict.ALLOWED),
    ("torch.load", "torch", Verdict.DENIED),
    ("collections.OrderedDict", "collections", Verdict.ALLOWED),
    ("copyreg._reconstructor", "copyreg", Verdict.ALLOWED),
    ("copyreg.add_extension", "copyreg", Verdict.DENIED),
    ("_codecs.encode", "_codecs", Verdict.ALLOWED),
    ("joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle", Verdict.ALLOWED),
    ("joblib.load", "joblib", Verdict.DENIED),
    ("mypackage.Model", "mypackage", Verdict.UNKNOWN),
])
def test_policy_verdicts(dotted: str, module: str, verdict: Verdict) -> None:
    got, reason = POLICY.judge(dotted, module=module)
    assert got is verdict, reason
    assert reason


def test_policy_allow_deny_and_frameworks() -> None:
    assert CallablePolicy(allow=frozenset({"mypackage.Model"})).judge("mypackage.Model")[0] is Verdict.ALLOWED
    # an exact allow never lifts a built-in denial
    assert CallablePolicy(allow=frozenset({"os.system"})).judge("os.system")[0] is Verdict.DENIED
    strict = CallablePolicy(deny=frozenset({"sklearn.ensemble"}))
    assert strict.judge("sklearn.ensemble._forest.RandomForestClassifier")[0] is Verdict.DENIED
    assert strict.judge("sklearn.linear_model._logistic.LogisticRegression")[0] is Verdict.ALLOWED
    no_sklearn = CallablePolicy(frameworks=DEFAULT_FRAMEWORKS - {"sklearn"})
    assert no_sklearn.judge("sklearn.linear_model._logistic.LogisticRegression")[0] is Verdict.UNKNOWN
    with pytest.raises(ValueError, match="unknown framework"):
        CallablePolicy(frameworks=frozenset({"numpyy"}))
    # without module, the module is everything before the last dot
    assert POLICY.judge("numpy.testing.foo")[0] is Verdict.DENIED
    assert POLICY.judge("sklearn.pipeline.Pipeline")[0] is Verdict.ALLOWED


# --------------------------------------------------------------------------- benign


@pytest.mark.parametrize("protocol", range(0, 6))
def test_benign_numpy_collections_and_plain_values_have_nothing_denied(protocol: int) -> None:
    for data in (corpus.benign_numpy(protocol), corpus.benign_collections(protocol), corpus.benign_stream(protocol)):
        result = scan(data)
        assert not result.problems
        assert set(verdicts(result).values()) <= {Verdict.ALLOWED}, result.callables


@pytest.fixture(scope="module")
def estimators() -> dict[str, object]:
    return corpus.benign_estimators()


@pytest.mark.parametrize("protocol", range(0, 6))
def test_common_sklearn_estimators_come_out_allowed(estimators: dict[str, object], protocol: int) -> None:
    for name, estimator in estimators.items():
        for data in (pickle.dumps(estimator, protocol=protocol),
                     corpus.joblib_bytes(estimator, protocol) if protocol >= 2 else b""):
            if not data:
                continue
            result = scan(data)
            assert not result.problems, (name, result.problems)
            not_allowed = [c for c in result.callables if c.verdict is not Verdict.ALLOWED]
            assert not not_allowed, (name, not_allowed)
            assert any(c.callable.startswith("sklearn.") for c in result.callables)


# --------------------------------------------------------------------------- joblib


@pytest.mark.parametrize("protocol", range(0, 6))
def test_benign_joblib_skips_every_raw_array(protocol: int) -> None:
    data = corpus.benign_joblib(protocol)
    result = scan(data)
    assert not result.problems, result.problems
    assert result.end == len(data) and result.streams == 1
    assert result.joblib_arrays == 8  # w, i, scalar, empty, obj, rec, u, list[0]
    assert set(verdicts(result).values()) == {Verdict.ALLOWED}, result.callables
    # the object arrays' nested streams were scanned: their numpy reconstruct calls are there
    assert any(c.callable.endswith("multiarray._reconstruct") for c in result.callables)


@pytest.mark.parametrize("protocol", range(2, 6))
def test_joblib_callable_after_a_raw_array_is_found_at_its_offset(protocol: int) -> None:
    sample = corpus.joblib_after_array(protocol)
    result = scan(sample.data)
    assert set(sample.expect) <= denied(result)
    assert not result.problems and result.joblib_arrays == 1
    # and the layout is real: its harmless twin loads through the tail
    twin = corpus.joblib_after_array(protocol, module="collections", name="OrderedDict")
    assert isinstance(joblib.load(io.BytesIO(twin.data)), collections.OrderedDict)


@pytest.mark.parametrize("protocol", [4, 5])
def test_joblib_array_read_after_its_frame_then_the_frame_runs(protocol: int) -> None:
    sample = corpus.joblib_frame_trick(protocol)
    result = scan(sample.data)
    assert set(sample.expect) <= denied(result)
    assert not any("pickle.load" in c.reason for c in result.callables)  # joblib.load runs them
    assert not result.problems
    twin = corpus.joblib_frame_trick(protocol, module="collections", name="OrderedDict")
    assert isinstance(joblib.load(io.BytesIO(twin.data)), collections.OrderedDict)


def test_joblib_without_alignment_padding() -> None:
    out = corpus.NoTellFile()
    joblib.dump({"a": np.arange(7, dtype="i2"), "b": np.ones((3, 3))}, out)
    data = bytes(out.data)
    assert b"numpy_array_alignment_bytes" in data
    result = scan(data + corpus.global_reduce(2).data)
    assert not result.problems and result.joblib_arrays == 2 and result.streams == 2
    assert {c.callable for c in result.callables if c.verdict is Verdict.DENIED} == {"os.system"}


def test_joblib_array_bytes_that_pickle_load_would_run_are_denied() -> None:
    sample = corpus.joblib_polyglot()
    result = scan(sample.data)
    assert set(sample.expect) <= denied(result), result.callables
    assert all("pickle.load" in c.reason for c in result.callables if c.verdict is Verdict.DENIED)
    assert result.joblib_arrays == 1 and not result.problems
    twin = corpus.joblib_polyglot("collections", "OrderedDict")
    assert isinstance(pickle.loads(twin.data), collections.OrderedDict)  # pickle.load runs the array bytes
    assert isinstance(joblib.load(io.BytesIO(twin.data)), np.ndarray)  # joblib reads an array


def test_array_bytes_that_stay_valid_opcodes_too_long_are_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    from gates.security_scan import joblib_arrays

    monkeypatch.setattr(joblib_arrays, "PLAIN_LOAD_BYTES", 1024)
    for length, kinds in ((4096, ["polyglot"]), (512, [])):
        out = corpus.NoTellFile()
        joblib.dump(np.full(length, ord("N"), dtype="u1"), out)  # NONE opcodes, as many as bytes
        result = scan(bytes(out.data))
        assert [p.kind for p in result.problems] == kinds
        assert all(p.severity is Severity.WARN for p in result.problems)


def test_joblib_truncated_inside_an_array_is_an_error_at_the_array() -> None:
    data = corpus.joblib_bytes(np.arange(1000, dtype="f8"), 4)
    build = data.rindex(b"ub") + 1  # the wrapper's BUILD (its state dict ends with SETITEMS)
    result = scan(data[: build + 100])
    (problem,) = result.problems
    assert problem.kind == "truncated" and problem.severity is Severity.ERROR and problem.offset == build + 1
    assert any(c.callable == "joblib.numpy_pickle.NumpyArrayWrapper" for c in result.callables)


def test_joblib_wrapper_without_a_size_stops_with_an_error() -> None:
    a = corpus.Asm(2)
    a.glob("joblib.numpy_pickle", "NumpyArrayWrapper")
    a.raw(b")\x81}")
    a.text("shape")
    a.glob("os", "getcwd")  # not a tuple: the array's size cannot be known
    a.raw(b"sb")
    result = scan(a.stop() + b"\x00" * 64)
    assert [p.kind for p in result.problems] == ["corrupt"]
    assert result.problems[0].severity is Severity.ERROR


# --------------------------------------------------------------------------- several streams, truncation, corruption


def test_concatenated_streams_are_all_scanned() -> None:
    data = b"".join(corpus.benign_stream(p) for p in range(6)) + corpus.global_reduce(3).data
    result = scan(data)
    assert result.streams == 7 and result.end == len(data) and not result.problems
    assert "os.system" in {c.callable for c in result.callables}


def test_a_cut_second_stream_is_an_error_and_the_first_is_kept() -> None:
    first = corpus.global_reduce(4).data
    second = corpus.benign_stream(4)
    result = scan(first + second[:-5])
    assert result.streams == 2 and "os.system" in {c.callable for c in result.callables}
    assert [(p.kind, p.severity) for p in result.problems] == [("truncated", Severity.ERROR)]
    assert result.problems[0].offset is not None and result.problems[0].offset >= len(first)


def test_trailing_zero_padding_ends_cleanly_and_other_bytes_warn() -> None:
    data = corpus.benign_stream(4)
    padded = scan(data + bytes(4096))
    assert padded.streams == 1 and not padded.problems and padded.end == len(data)
    trailing = scan(data + b"\x00\x01garbage")
    assert [(p.kind, p.severity, p.offset) for p in trailing.problems] == [("trailing", Severity.WARN, len(data))]


def test_max_streams_stops_and_says_where() -> None:
    one = corpus.benign_stream(2)
    result = scan(one * 3, max_streams=2)
    assert result.streams == 2 and result.end == 2 * len(one) and not result.problems


@pytest.mark.parametrize("protocol", range(0, 6))
def test_every_truncation_is_an_error_at_the_opcode_it_cuts(protocol: int) -> None:
    data = corpus.global_reduce(protocol).data[:-1] + corpus.benign_stream(protocol)[2 if protocol >= 2 else 0:]
    starts = opcode_starts(data)
    for cut in range(0, len(data)):
        result = scan(data[:cut])
        assert len(result.problems) == 1, (cut, result.problems)
        (problem,) = result.problems
        assert problem.kind == "truncated" and problem.severity is Severity.ERROR
        assert problem.offset == max([s for s in starts if s <= cut], default=0), (cut, problem)
        assert str(problem.offset) in problem.message
    # what came before the cut is still reported
    global_at = next(at for at, _n, op in corpus.global_reduce(protocol).expect if op == "GLOBAL")
    assert "os.system" in {c.callable for c in scan(data[: len(data) - 3]).callables}
    assert global_at < len(data) - 3


@pytest.mark.parametrize(("mutate", "offset"), [
    (lambda d: d[:13] + b"\xff" + d[14:], 13),  # an invalid opcode (in place of the MARK)
    (lambda d: d[:2] + b"R" + d[2:], 2),  # REDUCE on an empty stack
    (lambda d: d[:2] + b"h\x63" + d[2:], 2),  # BINGET of an entry the memo does not have
    (lambda d: b"\x80\x07" + d[2:], 0),  # an unsupported protocol
])
def test_corrupt_streams_are_errors_at_their_offset(mutate: object, offset: int) -> None:
    data = corpus.global_reduce(2).data[:-1] + b"0" + corpus.benign_stream(2)[2:]
    result = scan(mutate(data))  # type: ignore[operator]
    assert [(p.kind, p.severity, p.offset) for p in result.problems] == [("corrupt", Severity.ERROR, offset)]


def test_corruption_after_a_finding_keeps_the_finding() -> None:
    data = corpus.global_reduce(2).data[:-1] + b"\xff"
    result = scan(data)
    assert "os.system" in {c.callable for c in result.callables}
    assert [p.kind for p in result.problems] == ["corrupt"]


def test_empty_input_is_an_error() -> None:
    result = scan(b"")
    assert [(p.kind, p.severity) for p in result.problems] == [("truncated", Severity.ERROR)]


# --------------------------------------------------------------------------- never executes, never copies


def test_scanning_never_runs_the_payload(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    samples = [build(p) for _n, build, protocols in corpus.MALICIOUS_BUILDERS for p in protocols]
    samples += [corpus.global_reduce(p, str(marker)) for p in range(6)]
    samples += [corpus.inst(p, str(marker)) for p in range(6)]
    samples += [corpus.build_setstate(p, str(marker)) for p in range(6)]
    samples += [corpus.attribute_chain(p, str(marker)) for p in (4, 5)]
    samples += [corpus.joblib_after_array(p, str(marker)) for p in range(2, 6)]
    samples += [corpus.joblib_frame_trick(p, marker=str(marker)) for p in (4, 5)]
    samples += [corpus.joblib_polyglot(marker=str(marker))]
    for sample in samples:
        assert denied(scan(sample.data))
    assert not marker.exists()


def test_scanning_uses_no_unpickler(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the scanner unpickled something")

    for name in ("loads", "load", "Unpickler", "_Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(pickletools, "genops", refuse)
    monkeypatch.setattr(joblib, "load", refuse)
    result = scan(corpus.benign_joblib(4) + corpus.global_reduce(4).data)
    assert result.streams == 2 and not result.problems


@pytest.mark.parametrize("path", ENGINE, ids=[p.name for p in ENGINE])
def test_engine_imports_no_unpickler_and_calls_no_loader(path: Path) -> None:
    forbidden_modules = {"pickle", "_pickle", "cPickle", "pickletools", "dill", "cloudpickle", "joblib", "numpy",
                         "torch", "importlib", "marshal", "runpy", "builtins"}
    forbidden_calls = {"eval", "exec", "compile", "__import__", "loads", "load", "import_module", "find_class"}
    forbidden_methods = forbidden_calls - {"compile"}  # re.compile is fine
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & forbidden_modules, ast.dump(node)
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in forbidden_modules, ast.dump(node)
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                assert func.id not in forbidden_calls, f"{path.name}:{node.lineno} calls {func.id}"
            elif isinstance(func, ast.Attribute):
                assert func.attr not in forbidden_methods, f"{path.name}:{node.lineno} calls {func.attr}"


def test_big_payloads_are_skipped_without_copying() -> None:
    payload = 64 << 20
    head = b"\x80\x05(\x8e" + struct.pack("<Q", payload)
    tail = b"\x96" + struct.pack("<Q", 16) + bytes(16) + b"l."
    data = bytearray(head) + bytearray(payload) + bytearray(tail)
    view = memoryview(data)
    tracemalloc.start()
    try:
        result = scan(view)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not result.problems and result.end == len(data)
    assert peak < 1 << 20, peak


def test_joblib_arrays_are_skipped_without_copying() -> None:
    data = corpus.joblib_bytes({"a": np.zeros(4 << 20), "b": np.ones((512, 1024), dtype="f4")}, 4)
    tracemalloc.start()
    try:
        result = scan(memoryview(data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert not result.problems and result.joblib_arrays == 2 and result.skipped_bytes == (4 << 20) * 8 + (512 << 10) * 4
    assert peak < 1 << 20, peak


def test_opcode_table_matches_the_protocol() -> None:
    # every opcode of pickletools is known with its name; nothing else is
    assert {op.code.encode("latin-1")[0]: op.name for op in pickletools.opcodes} == {
        code: pickle_opcodes.NAMES[code] for code in pickle_opcodes.VALID}


def test_a_stream_that_only_pushes_is_stopped_at_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sizes are bounded: a stream of pushes never popped (nothing a real pickler writes) ends as a
    `limit` error at a checkpoint instead of growing the scanner's memory with the file."""
    from gates.security_scan import pickle_machine

    monkeypatch.setattr(pickle_machine, "MAX_STACK", 100_000)  # the bound itself, scaled down for a fast test
    body = b"\x80\x02" + b"K\x01" * 1_500_000 + b"."  # 1.5M BININT1 pushes, 3 MB
    scan = scan_pickle(body, "pushes.pkl", CallablePolicy())
    limits = [p for p in scan.problems if p.kind == "limit"]
    assert limits and limits[0].severity is Severity.ERROR
    assert limits[0].offset is not None and limits[0].offset <= 2 * (1 << 20) + 2
