"""The malicious and benign pickle corpus of the security_scan tests, built as bytes (nothing is loaded).

Each builder returns a :class:`Sample`: the bytes, the protocol they claim, and ``expect`` — the
findings a scanner must report, as ``(offset, dotted callable, opcode)`` with the offset of the
opcode in the bytes. Builders assemble opcodes by hand (:class:`Asm` records offsets as it
goes), so a technique can be placed in any protocol that supports it; benign builders use
``pickle.dumps``/``joblib.dump`` of real objects (pickling runs no payload: ``__reduce__`` only
names the callable).

Every payload names a harmless shell command by default (``touch <marker>`` when a marker path is
given: the never-executes test asserts the marker never appears). Reused by other tests of the
gate: import the builders, scan ``sample.data``, compare with ``sample.expect``.

Builders and what they exercise:

=============================  ==========================================================  =========
builder                        technique                                                    protocols
=============================  ==========================================================  =========
``global_reduce``              GLOBAL os.system + args + REDUCE                             0–5
``stack_global``               STACK_GLOBAL of two string literals (SHORT_BINUNICODE /      4–5
                               BINUNICODE / UNICODE spellings)
``stack_global_memo``          STACK_GLOBAL of strings fetched back from the memo (every    4–5
                               PUT/GET spelling), the strings popped in between
``inst``                       INST (module\\nname\\n after a MARK: import + call)           0–5
``obj``                        OBJ (MARK, class, args)                                      1–5
``newobj`` / ``newobj_ex``     NEWOBJ / NEWOBJ_EX of a denied class                         2–5 / 4–5
``build_setstate``             BUILD gadget: state sets ``__setstate__`` = os.system, a      0–5
                               second BUILD calls it
``extension``                  EXT1 / EXT2 / EXT4 codes + REDUCE                            2–5
``py2_spelling``               ``__builtin__.eval``, ``commands.getoutput``,                0–2
                               ``copy_reg.add_extension``
``attribute_chain``            ``numpy`` + ``testing._private.utils.os.system``             4–5
``getattr_gadget``             builtins.getattr(module, "system") then calling its result   0–5
``computed_stack_global``      STACK_GLOBAL of a string computed by _codecs.encode(rot13)   4–5
``build_global``               BUILD on an imported object (monkey-patching a module)       0–5
``persistent``                 BINPERSID / PERSID (noted, not judged)                       0–5
``concatenated``               two streams back to back, the second malicious               0–5
``joblib_after_array``         a real joblib.dump file whose stream goes on after the raw   2–5
                               array bytes with GLOBAL os.system REDUCE
``joblib_frame_trick``         the same, the evil opcodes inside the wrapper's frame        4–5
                               (joblib reads the array after the frame, then runs them)
``joblib_polyglot``            raw array bytes that pickle.load runs as opcodes             2
``benign_*``                   numpy arrays, sklearn estimators, collections, joblib        2–5
=============================  ==========================================================  =========
"""

from __future__ import annotations

import io
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Expect = tuple[int, str, str]  # (offset, dotted callable, opcode)


@dataclass
class Sample:
    """A pickle built for a test: its bytes and what a scanner must report about it."""

    name: str
    protocol: int
    data: bytes
    expect: list[Expect] = field(default_factory=list)  # denied findings, each at its offset


class Asm:
    """A pickle assembler: appends opcodes and remembers where each one starts."""

    def __init__(self, protocol: int, header: bool = True) -> None:
        self.protocol = protocol
        self.buf = bytearray()
        if protocol >= 2 and header:
            self.raw(b"\x80" + bytes([protocol]))

    def raw(self, data: bytes) -> int:
        """Append bytes; return the offset they start at."""
        at = len(self.buf)
        self.buf += data
        return at

    def glob(self, module: str, name: str, op: bytes = b"c") -> int:
        """GLOBAL (or INST with ``op=b"i"``): module and name on their own lines."""
        return self.raw(op + f"{module}\n{name}\n".encode())

    def text(self, value: str, spelling: str | None = None) -> int:
        """Push a str: SHORT_BINUNICODE (4+), BINUNICODE (1–3), UNICODE (0), or the spelling asked."""
        data = value.encode()
        spelling = spelling or ("short" if self.protocol >= 4 else "bin" if self.protocol >= 1 else "line")
        if spelling == "short":
            return self.raw(b"\x8c" + bytes([len(data)]) + data)
        if spelling == "bin":
            return self.raw(b"X" + struct.pack("<I", len(data)) + data)
        if spelling == "bin8":
            return self.raw(b"\x8d" + struct.pack("<Q", len(data)) + data)
        return self.raw(b"V" + value.encode("raw-unicode-escape") + b"\n")

    def tuple1(self) -> int:
        """Make a 1-tuple of the top item (TUPLE1, or MARK-less TUPLE for protocols 0–1)."""
        return self.raw(b"\x85") if self.protocol >= 2 else self.raw(b"t")

    def args(self, *values: str) -> None:
        """Push a tuple of strings (MARK … TUPLE works in every protocol)."""
        self.raw(b"(")
        for value in values:
            self.text(value)
        self.raw(b"t")

    def put(self, index: int, spelling: str) -> int:
        """Memoize the top: MEMOIZE, BINPUT, LONG_BINPUT or PUT."""
        return self.raw({"memoize": b"\x94", "binput": b"q" + bytes([index]),
                         "long_binput": b"r" + struct.pack("<I", index), "put": b"p%d\n" % index}[spelling])

    def get(self, index: int, spelling: str) -> int:
        """Push a memo entry: BINGET, LONG_BINGET or GET."""
        return self.raw({"binget": b"h" + bytes([index]), "long_binget": b"j" + struct.pack("<I", index),
                         "get": b"g%d\n" % index}[spelling])

    def stop(self) -> bytes:
        self.raw(b".")
        return bytes(self.buf)


def command(marker: str | None) -> str:
    """The shell command payloads name: touching ``marker`` (never run), else a harmless echo."""
    return f"touch {marker}" if marker else "echo corpus"


# --------------------------------------------------------------------------- malicious


def global_reduce(protocol: int, marker: str | None = None, module: str = "os", name: str = "system") -> Sample:
    """GLOBAL ``module.name`` + a 1-tuple of the command + REDUCE: the classic payload."""
    a = Asm(protocol)
    at_global = a.glob(module, name)
    a.args(command(marker))
    at_reduce = a.raw(b"R")
    return Sample("global_reduce", protocol, a.stop(),
                  [(at_global, f"{module}.{name}", "GLOBAL"), (at_reduce, f"{module}.{name}", "REDUCE")])


def stack_global(protocol: int, marker: str | None = None, spelling: str = "short") -> Sample:
    """STACK_GLOBAL over two string literals (``spelling``: short, bin, bin8 or line), then REDUCE."""
    a = Asm(protocol)
    a.text("os", spelling)
    a.text("system", spelling)
    at = a.raw(b"\x93")
    a.args(command(marker))
    at_reduce = a.raw(b"R")
    return Sample(f"stack_global_{spelling}", protocol, a.stop(),
                  [(at, "os.system", "STACK_GLOBAL"), (at_reduce, "os.system", "REDUCE")])


def stack_global_memo(protocol: int, put: str, get: str, marker: str | None = None) -> Sample:
    """The strings are memoized (``put`` spelling), popped, and fetched back (``get`` spelling) for STACK_GLOBAL."""
    a = Asm(protocol)
    a.text("subprocess")
    a.put(0, put)
    a.raw(b"0")  # POP: nothing of it stays on the stack
    a.text("getoutput")
    a.put(1, put)
    a.raw(b"0")
    a.raw(b"K\x07" b"0")  # noise: an int pushed and popped
    a.get(0, get)
    a.get(1, get)
    at = a.raw(b"\x93")
    a.args(command(marker))
    at_reduce = a.raw(b"R")
    return Sample(f"stack_global_memo_{put}_{get}", protocol, a.stop(),
                  [(at, "subprocess.getoutput", "STACK_GLOBAL"), (at_reduce, "subprocess.getoutput", "REDUCE")])


def inst(protocol: int, marker: str | None = None) -> Sample:
    """INST: MARK, the arguments, then ``i`` + module and name lines (imports and calls)."""
    a = Asm(protocol)
    a.raw(b"(")
    a.text(command(marker))
    at = a.glob("os", "system", b"i")
    return Sample("inst", protocol, a.stop(), [(at, "os.system", "INST")])


def obj(protocol: int, marker: str | None = None) -> Sample:
    """OBJ: MARK, the class (a GLOBAL), its arguments, OBJ calls it."""
    a = Asm(protocol)
    a.raw(b"(")
    at_global = a.glob("subprocess", "Popen")
    a.text(command(marker))
    at = a.raw(b"o")
    return Sample("obj", protocol, a.stop(),
                  [(at_global, "subprocess.Popen", "GLOBAL"), (at, "subprocess.Popen", "OBJ")])


def newobj(protocol: int, marker: str | None = None, ex: bool = False) -> Sample:
    """NEWOBJ (or NEWOBJ_EX with an empty kwargs dict) of subprocess.Popen."""
    a = Asm(protocol)
    at_global = a.glob("subprocess", "Popen")
    a.args(command(marker))
    if ex:
        a.raw(b"}")
    at = a.raw(b"\x92" if ex else b"\x81")
    op = "NEWOBJ_EX" if ex else "NEWOBJ"
    return Sample(op.lower(), protocol, a.stop(), [(at_global, "subprocess.Popen", "GLOBAL"),
                                                  (at, "subprocess.Popen", op)])


def build_setstate(protocol: int, marker: str | None = None) -> Sample:
    """The BUILD gadget: an allowed object gets ``__setstate__ = os.system`` via BUILD, a second BUILD runs it.

    The first state is ``(None, {"__setstate__": os.system})`` (slot state: set as an attribute);
    the second BUILD then calls ``obj.__setstate__(command)``, i.e. os.system.
    """
    a = Asm(protocol)
    a.glob("collections", "OrderedDict")
    a.raw(b")R")  # OrderedDict() — allowed
    a.raw(b"(N}")
    a.text("__setstate__")
    at_global = a.glob("os", "system")
    a.raw(b"st")
    a.raw(b"b")
    a.text(command(marker))
    a.raw(b"b")
    return Sample("build_setstate", protocol, a.stop(), [(at_global, "os.system", "GLOBAL")])


def extension(protocol: int, width: int, code: int = 0x42) -> Sample:
    """EXT1/EXT2/EXT4 (``width`` 1, 2, 4): a callable named by an extension code, then REDUCE."""
    a = Asm(protocol)
    op = {1: b"\x82", 2: b"\x83", 4: b"\x84"}[width]
    at = a.raw(op + code.to_bytes(width, "little"))
    a.args(command(None))
    a.raw(b"R")
    name = {1: "EXT1", 2: "EXT2", 4: "EXT4"}[width]
    return Sample(name.lower(), protocol, a.stop(), [(at, f"<extension code {code}>", name)])


def py2_spelling(protocol: int, module: str = "__builtin__", name: str = "eval",
                 judged_as: str = "builtins.eval") -> Sample:
    """A Python 2 spelling Python maps on load (``__builtin__`` → builtins, ``commands`` → subprocess)."""
    a = Asm(protocol)
    at = a.glob(module, name)
    a.args("1+1")
    at_reduce = a.raw(b"R")
    return Sample(f"py2_{module}_{name}", protocol, a.stop(),
                  [(at, judged_as, "GLOBAL"), (at_reduce, judged_as, "REDUCE")])


def attribute_chain(protocol: int, marker: str | None = None, via: str = "stack") -> Sample:
    """``numpy`` + ``testing._private.utils.os.system``: os.system reached through attributes (protocol 4+)."""
    a = Asm(protocol)
    if via == "stack":
        a.text("numpy")
        a.text("testing._private.utils.os.system")
        at = a.raw(b"\x93")
        op = "STACK_GLOBAL"
    else:
        at = a.glob("numpy", "testing._private.utils.os.system")
        op = "GLOBAL"
    a.args(command(marker))
    a.raw(b"R")
    return Sample(f"attribute_chain_{via}", protocol, a.stop(),
                  [(at, "numpy.testing._private.utils.os.system", op)])


def getattr_gadget(protocol: int, marker: str | None = None) -> Sample:
    """builtins.getattr(<allowed-looking module object>, "system"), then its result called (unresolved)."""
    a = Asm(protocol)
    at = a.glob("builtins", "getattr")
    a.raw(b"(")
    a.glob("sklearn.base", "os")  # a module attribute that is the os module
    a.text("system")
    a.raw(b"t")
    at_reduce = a.raw(b"R")
    a.args(command(marker))
    a.raw(b"R")
    return Sample("getattr_gadget", protocol, a.stop(),
                  [(at, "builtins.getattr", "GLOBAL"), (at_reduce, "builtins.getattr", "REDUCE")])


def computed_stack_global(protocol: int) -> Sample:
    """STACK_GLOBAL whose module is computed at load time: _codecs.encode("bf", "rot13") is "os"."""
    a = Asm(protocol)
    a.glob("_codecs", "encode")
    a.args("bf", "rot13")
    a.raw(b"R")
    a.text("system")
    at = a.raw(b"\x93")
    a.args(command(None))
    a.raw(b"R")
    return Sample("computed_stack_global", protocol, a.stop(), [(at, "<computed>.system", "STACK_GLOBAL")])


def build_global(protocol: int) -> Sample:
    """BUILD on an imported (allowed) object: sets attributes of a module-level object."""
    a = Asm(protocol)
    a.glob("collections", "OrderedDict")
    a.raw(b"}")
    a.text("__reduce__")
    a.text("x")
    a.raw(b"s")
    at = a.raw(b"b")
    return Sample("build_global", protocol, a.stop(), [(at, "collections.OrderedDict", "BUILD")])


def persistent(protocol: int) -> Sample:
    """A persistent id (BINPERSID for 1+, PERSID for 0) inside a list: noted, nothing denied."""
    a = Asm(protocol)
    a.raw(b"(")
    if protocol >= 1:
        a.text("storage")
        a.raw(b"Q")
    else:
        a.raw(b"P0\n")
    a.raw(b"l")
    return Sample("persistent", protocol, a.stop(), [])


def concatenated(protocol: int) -> Sample:
    """A benign pickle followed by a malicious one: both streams must be read."""
    first = pickle.dumps({"a": [1, 2.5, "x"]}, protocol=protocol)
    second = global_reduce(protocol, module="posix", name="system")
    return Sample("concatenated", protocol, first + second.data,
                  [(len(first) + at, name, op) for at, name, op in second.expect])


def benign_stream(protocol: int) -> bytes:
    """A small benign pickle (a dict of plain values)."""
    return pickle.dumps({"weights": [0.5, -1.25, 3], "name": "model", "ok": True, "n": None}, protocol=protocol)


# --------------------------------------------------------------------------- joblib


def joblib_bytes(value: Any, protocol: int) -> bytes:
    """``joblib.dump(value)`` into memory (uncompressed)."""
    import joblib

    out = io.BytesIO()
    joblib.dump(value, out, protocol=protocol)
    return out.getvalue()


def _tail(protocol: int, start: int, module: str, name: str, args: tuple[str, ...]) -> tuple[bytes, int, int]:
    """POP the array, then ``module.name(*args)``: the bytes and where GLOBAL and REDUCE start (file offsets)."""
    a = Asm(protocol, header=False)
    a.raw(b"0")
    at_global = a.glob(module, name)
    if args:
        a.args(*args)
    else:
        a.raw(b")")
    at_reduce = a.raw(b"R")
    return bytes(a.buf) + b".", start + at_global, start + at_reduce


def joblib_after_array(protocol: int, marker: str | None = None, module: str = "os", name: str = "system",
                       shape: tuple[int, ...] = (1000,)) -> Sample:
    """A real ``joblib.dump`` of one float array whose stream continues after the raw array bytes.

    The file ends with the array's bytes followed by STOP; the STOP is replaced by POP + GLOBAL
    ``module.name`` + args + REDUCE + STOP. joblib.load reads the array, then runs the tail: with
    ``module, name = "collections", "OrderedDict"`` (no args) it returns an OrderedDict, which is how
    the tests prove this layout is what joblib executes.
    """
    import numpy as np

    data = joblib_bytes(np.arange(int(np.prod(shape)), dtype="f8").reshape(shape), protocol)
    assert data.endswith(b".")
    body = data[:-1]
    args = () if module == "collections" else (command(marker),)
    tail, at_global, at_reduce = _tail(protocol, len(body), module, name, args)
    dotted = f"{module}.{name}"
    return Sample("joblib_after_array", protocol, body + tail, [(at_global, dotted, "GLOBAL"),
                                                                 (at_reduce, dotted, "REDUCE")])


def joblib_frame_trick(protocol: int, module: str = "os", name: str = "system", marker: str | None = None) -> Sample:
    """The wrapper's BUILD does not end its frame: the frame also holds the evil tail.

    joblib (Python's unpickler) reads a frame ahead, so the array is read from *after* the frame,
    then the rest of the frame runs, then reading goes on after the array. A scanner that skips
    the array right after the BUILD would skip the tail (as "array bytes") and parse the array as
    opcodes. Built from a real joblib.dump: the frame holding the wrapper is extended by the tail.
    """
    import numpy as np

    data = joblib_bytes(np.zeros(4, dtype="f8"), protocol)
    frame_at = data.index(b"\x95")
    frame_len = struct.unpack_from("<Q", data, frame_at + 1)[0]
    frame_end = frame_at + 9 + frame_len  # the wrapper's BUILD is the last byte of this frame
    args = () if module == "collections" else (command(marker),)
    tail, at_global, at_reduce = _tail(protocol, frame_end, module, name, args)
    tail = tail[:-1]  # the STOP stays where joblib put it, after the array
    new_frame = data[:frame_at] + b"\x95" + struct.pack("<Q", frame_len + len(tail)) + data[frame_at + 9:frame_end]
    rest = data[frame_end:]  # padding byte, padding, the array, then the rest of the stream (STOP)
    out = new_frame + tail + rest
    dotted = f"{module}.{name}"
    return Sample("joblib_frame_trick", protocol, out, [(at_global, dotted, "GLOBAL"), (at_reduce, dotted, "REDUCE")])


class NoTellFile(io.RawIOBase):
    """A write-only file without tell(): joblib then writes arrays without alignment padding (as joblib < 1.2)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.data += bytes(b)
        return len(b)

    def tell(self) -> int:
        raise io.UnsupportedOperation("tell")


def joblib_polyglot(module: str = "os", name: str = "system", marker: str | None = None) -> Sample:
    """A joblib file whose raw array bytes are also pickle opcodes: joblib reads a uint8 array,
    ``pickle.load`` runs ``module.name`` from the array bytes (no alignment padding, as joblib < 1.2).

    With ``module, name = "collections", "OrderedDict"`` (no args), ``pickle.loads`` returns an OrderedDict.
    """
    import joblib
    import numpy as np

    a = Asm(2, header=False)
    a.raw(b"0")
    at_global = a.glob(module, name)
    if module == "collections":
        a.raw(b")")
    else:
        a.args(command(marker))
    at_reduce = a.raw(b"R")
    payload = bytes(a.stop())
    out = NoTellFile()
    joblib.dump(np.frombuffer(payload, dtype="u1").copy(), out, protocol=2)
    data = bytes(out.data)
    start = data.index(payload)
    dotted = f"{module}.{name}"
    return Sample("joblib_polyglot", 2, data, [(start + at_global, dotted, "GLOBAL"),
                                               (start + at_reduce, dotted, "REDUCE")])


# --------------------------------------------------------------------------- benign


def benign_numpy(protocol: int) -> bytes:
    """numpy arrays of several dtypes and orders, a scalar, a structured and an object array."""
    import numpy as np

    value = {"f": np.arange(12, dtype="f4").reshape(3, 4), "F": np.asfortranarray(np.ones((2, 3))),
             "i": np.arange(5, dtype=">i8"), "u": np.array(["ab", "c"]), "s": np.float64(2.5),
             "rec": np.zeros(2, dtype=[("x", "<f8"), ("y", "i2", (2,))]), "o": np.array([1, "x", None], dtype=object),
             "b": np.array([True, False]), "t": np.array(["2020-01-01"], dtype="M8[D]")}
    return pickle.dumps(value, protocol=protocol)


def benign_estimators() -> dict[str, Any]:
    """Fitted scikit-learn estimators the tests require to come out ALLOWED (not unknown)."""
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(0)
    x = rng.rand(80, 4)
    y = (x[:, 0] + rng.rand(80) > 1).astype(int)
    return {
        "logistic_regression": LogisticRegression().fit(x, y),
        "random_forest": RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y),
        "gradient_boosting": GradientBoostingClassifier(n_estimators=3, random_state=0).fit(x, y),
        "scaler_pipeline": Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())]).fit(x, y),
    }


def benign_collections(protocol: int) -> bytes:
    """collections types and plain builtin containers."""
    import collections

    value = collections.OrderedDict(d=collections.defaultdict(list, a=[1]), q=collections.deque([1, 2]),
                                    c=collections.Counter("abca"), s={1, 2}, f=frozenset({3}), sl=slice(1, 5),
                                    z=complex(1, 2), ba=bytearray(b"xy"), r=range(3), by=b"\x00\x01")
    return pickle.dumps(value, protocol=protocol)


def benign_joblib(protocol: int) -> bytes:
    """joblib.dump of a dict of several arrays (float, int Fortran, 0-d, empty, object, structured with objects)."""
    import numpy as np

    value = {"w": np.linspace(0, 1, 1000), "i": np.asfortranarray(np.arange(12, dtype="i4").reshape(3, 4)),
             "scalar": np.array(3.0), "empty": np.zeros((0, 5)), "obj": np.array(["x", 1, None], dtype=object),
             "rec": np.zeros(3, dtype=[("x", "<f8"), ("y", "O")]), "u": np.array(["abc", "de"]),
             "after": "all arrays", "list": [np.ones(3, dtype="u1"), 7]}
    return joblib_bytes(value, protocol)


MALICIOUS_BUILDERS: list[tuple[str, Callable[[int], Sample], range]] = [
    ("global_reduce", global_reduce, range(0, 6)),
    ("stack_global", stack_global, range(4, 6)),
    ("inst", inst, range(0, 6)),
    ("obj", obj, range(1, 6)),
    ("newobj", newobj, range(2, 6)),
    ("newobj_ex", lambda p: newobj(p, ex=True), range(4, 6)),
    ("build_setstate", build_setstate, range(0, 6)),
    ("ext1", lambda p: extension(p, 1), range(2, 6)),
    ("ext2", lambda p: extension(p, 2), range(2, 6)),
    ("ext4", lambda p: extension(p, 4), range(2, 6)),
    ("py2_builtin_eval", py2_spelling, range(0, 3)),
    ("py2_commands", lambda p: py2_spelling(p, "commands", "getoutput", "subprocess.getoutput"), range(0, 3)),
    ("py2_copy_reg", lambda p: py2_spelling(p, "copy_reg", "add_extension", "copyreg.add_extension"), range(0, 3)),
    ("attribute_chain_stack", attribute_chain, range(4, 6)),
    ("attribute_chain_global", lambda p: attribute_chain(p, via="global"), range(4, 6)),
    ("getattr_gadget", getattr_gadget, range(0, 6)),
    ("computed_stack_global", computed_stack_global, range(4, 6)),
    ("build_global", build_global, range(0, 6)),
    ("concatenated", concatenated, range(0, 6)),
]
