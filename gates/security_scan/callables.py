"""Which callables a pickle may import or call: the allow/deny policy of the security_scan gate.

A pickle can only run code it imports by name (``GLOBAL``, ``STACK_GLOBAL``, ``INST``) and then
calls (``REDUCE``, ``NEWOBJ``, ``OBJ``, ``BUILD`` …), so every name the pickle scanner collects is
judged here, as a full dotted name (``module`` + ``.`` + qualified name):

``denied``  code execution, process, file, network or import machinery, attribute-access
            gadgets, and loaders of further pickles. Matched case-insensitively as a prefix on
            dot boundaries (``os`` denies ``os.system`` and ``os.path.join``), on every *suffix*
            of the attribute chain after the module (``numpy`` + ``testing._private.utils.os.system``
            reaches ``os.system`` through attributes), and on single attribute names that only
            gadgets use (``eval``, ``getattr``, ``open``, ``load``, ``system``, any ``__dunder__``).
``allowed`` on the allowlist of a framework the policy accepts (exact names, or a module prefix
            for a framework whose every class is data, such as ``sklearn.``), or named in ``allow``.
``unknown`` on no list: the gate warns and a human looks.

Precedence, first match wins: the policy's ``deny`` → the built-in denylist → exact allows
(built-in for an accepted framework, or the policy's ``allow``) → the attribute-chain rules →
framework prefixes → unknown. An exact ``allow`` therefore cannot lift a built-in denial (a
waiver is the escape hatch for those), but it does override the chain heuristics.

Decisions worth knowing (docs for reviewers):

* ``functools.partial`` is *unknown*, not denied: the callable it wraps has to be imported by
  name too and is judged on its own (``partial(os.system, …)`` fails on ``os.system``), while
  scikit-learn pipelines legitimately hold partials. ``functools.reduce`` likewise.
* ``operator.attrgetter`` / ``methodcaller`` / ``operator.call`` are denied: they reach
  attributes and methods that are never imported by name, so the import list would not show them.
* ``builtins``: only plain data types are allowed (set, frozenset, slice, complex, bytes, …,
  ``object`` which protocol 0/1 reconstructors need); eval/exec/compile/getattr/setattr/
  delattr/``__import__``/open/input/breakpoint/globals/locals/vars/help/exit/quit are denied; the
  rest (``type``, ``print``, ``map`` …) is unknown.
* ``copyreg._reconstructor`` / ``__newobj__`` / ``__newobj_ex__`` are allowed (they only call the
  class they are given, which is judged on its own); the rest of ``copyreg`` is denied because
  it registers reducers and extension codes.
* ``numpy`` is allowed by exact names only (array/scalar/dtype reconstruction, scalar types, the
  random-generator constructors, common ufuncs): numpy also has file readers (``load``,
  ``fromfile``, ``memmap``, ``lib.format``), ``ctypeslib``, ``testing`` (runs subprocesses) and
  ``_ufunc_reconstruct`` (imports any module by name), all denied.
* ``sklearn.`` is allowed as a prefix, minus ``sklearn.datasets`` (network and files),
  ``sklearn.externals`` (the vendored joblib loads pickles), test helpers and the global config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gates.security_scan.findings import Verdict

# --------------------------------------------------------------------------- denylist

#: Modules (and exact names) denied with everything under them. Matched case-insensitively.
_DENY_MODULES: dict[str, str] = {}


def _deny(reason: str, *names: str) -> None:
    for name in names:
        _DENY_MODULES[name.lower()] = reason


_deny("runs processes or system calls", "os", "posix", "nt", "subprocess", "_posixsubprocess", "pty", "commands",
      "multiprocessing", "_multiprocessing", "asyncio", "signal", "_signal", "threading", "_thread", "concurrent",
      "sys", "resource", "fcntl", "platform.popen", "popen2")
_deny("imports or runs code", "runpy", "importlib", "imp", "pkgutil", "zipimport", "code", "codeop", "types",
      "marshal", "timeit", "trace", "profile", "cProfile", "pdb", "bdb", "doctest", "idlelib", "site",
      "distutils", "setuptools", "pip", "ctypes", "_ctypes", "cffi", "numexpr.evaluate", "pandas.eval",
      "IPython", "jinja2", "sympy.sympify", "inspect", "gc", "_xxsubinterpreters", "_interpreters")
_deny("loads a further pickle or serialized code", "pickle", "_pickle", "cPickle", "pickletools", "dill",
      "cloudpickle", "jsonpickle", "shelve", "yaml.load", "yaml.unsafe_load", "yaml.full_load",
      "yaml.unsafe_load_all", "yaml.load_all", "pandas.read_pickle", "pandas.io", "torch.load",
      "torch.serialization.load", "torch.storage._load_from_bytes", "torch.hub", "torch.jit", "torch.package",
      "torch.utils.cpp_extension", "torch.ops", "torch.classes", "joblib.load", "joblib.numpy_pickle.load",
      "joblib.numpy_pickle_compat", "joblib.externals", "joblib.parallel", "joblib.memory",
      "joblib._store_backends", "sklearn.externals", "sklearn.utils._joblib", "keras.models.load_model")
_deny("reads or writes files", "io", "_io", "pathlib", "tempfile", "shutil", "glob", "fileinput", "zipfile",
      "tarfile", "gzip.open", "bz2.open", "lzma.open", "dbm", "sqlite3", "mmap", "linecache", "filecmp",
      "joblib.dump", "numpy.load", "numpy.save", "numpy.savez", "numpy.savez_compressed", "numpy.savetxt",
      "numpy.loadtxt", "numpy.genfromtxt", "numpy.fromfile", "numpy.fromregex", "numpy.memmap",
      "numpy.lib.npyio", "numpy.lib._npyio_impl", "numpy.lib.format", "numpy.lib._datasource", "numpy.DataSource",
      "numpy.ma.load", "numpy.ma.dump", "numpy.ma.core.load", "numpy.ma.core.dump",
      "scipy.io", "scipy.sparse.load_npz", "scipy.sparse.save_npz", "scipy.sparse._matrix_io",
      "scipy.datasets", "scipy.misc", "sklearn.datasets")
_deny("network access", "socket", "_socket", "ssl", "socketserver", "http", "urllib", "urllib2", "urllib3",
      "httplib", "ftplib", "smtplib", "telnetlib", "poplib", "imaplib", "nntplib", "xmlrpc", "xmlrpclib",
      "webbrowser", "requests", "httpx", "aiohttp", "paramiko", "boto3", "botocore")
_deny("loads native code or calls through raw pointers", "numpy.ctypeslib", "numpy.f2py", "numpy.distutils",
      "scipy.LowLevelCallable", "scipy._lib._ccallback", "scipy.weave")
_deny("test helpers that run subprocesses or touch files", "numpy.testing", "scipy._lib._testutils",
      "sklearn.utils._testing", "sklearn.utils.estimator_checks", "sklearn.conftest", "sklearn.tests",
      "sklearn._build_utils", "sklearn.__check_build", "sklearn.utils._show_versions")
_deny("changes global configuration", "sklearn._config", "sklearn.set_config", "sklearn.config_context",
      "numpy.seterr", "numpy.seterrcall", "numpy.set_printoptions")
_deny("imports any module by name (numpy's ufunc reconstructor)", "numpy.core._ufunc_reconstruct",
      "numpy._core._ufunc_reconstruct", "numpy.core.umath._ufunc_reconstruct")
_deny("attribute or method access gadget", "operator.attrgetter", "operator.methodcaller", "operator.call",
      "_operator.attrgetter", "_operator.methodcaller", "_operator.call")
_deny("registers reducers or extension codes", "copyreg.add_extension", "copyreg.remove_extension",
      "copyreg.clear_extension_cache", "copyreg.pickle", "copyreg.constructor", "copyreg._inverted_registry",
      "copyreg._extension_registry", "copyreg.dispatch_table")

#: Builtins that execute code, reach arbitrary attributes, open files, or go interactive.
DANGEROUS_BUILTINS = frozenset({
    "eval", "exec", "execfile", "compile", "getattr", "setattr", "delattr", "__import__", "open", "input",
    "raw_input", "breakpoint", "globals", "locals", "vars", "help", "exit", "quit", "__build_class__",
    "__loader__", "__spec__", "__builtins__", "file", "reload",
})
for _name in DANGEROUS_BUILTINS:
    _deny("builtin that executes code, reaches arbitrary attributes or opens files",
          f"builtins.{_name}", f"__builtin__.{_name}")

#: Attribute names that only gadgets use: denied wherever they appear in an attribute chain
#: (the names of denied top-level modules are added below: ``….os.system`` is ``os.system``).
CHAIN_NAMES = frozenset(DANGEROUS_BUILTINS | {
    "system", "popen", "spawn", "spawnv", "spawnve", "spawnl", "spawnlp", "execv", "execve", "execl", "execlp",
    "execvp", "fork", "forkpty", "load", "loads", "load_module", "exec_module", "import_module", "run_path",
    "run_module", "check_output", "check_call", "call", "Popen", "remove", "unlink", "rmtree", "rmdir",
    "kill", "killpg", "putenv", "chmod", "chown", "rename", "symlink",
    "attrgetter", "methodcaller",
})

# --------------------------------------------------------------------------- allowlists

_NUMPY_SCALARS = (
    "bool_", "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "intc", "uintc",
    "intp", "uintp", "int_", "uint", "longlong", "ulonglong", "short", "ushort", "byte", "ubyte", "half",
    "single", "double", "longdouble", "float16", "float32", "float64", "float128", "complex64", "complex128",
    "complex256", "csingle", "cdouble", "clongdouble", "object_", "str_", "bytes_", "void", "datetime64",
    "timedelta64", "generic", "number", "integer", "signedinteger", "unsignedinteger", "floating",
    "complexfloating", "inexact", "character", "flexible",
)
_NUMPY_UFUNCS = (
    "absolute", "abs", "add", "subtract", "multiply", "divide", "true_divide", "floor_divide", "negative",
    "positive", "power", "float_power", "remainder", "mod", "fmod", "sign", "exp", "exp2", "expm1", "log", "log2",
    "log10", "log1p", "sqrt", "cbrt", "square", "reciprocal", "sin", "cos", "tan", "arcsin", "arccos",
    "arctan", "arctan2", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh", "floor", "ceil", "trunc",
    "rint", "maximum", "minimum", "fmax", "fmin", "clip", "isnan", "isinf", "isfinite", "logical_and",
    "logical_or", "logical_not", "logical_xor", "greater", "less", "equal", "not_equal", "greater_equal",
    "less_equal", "hypot", "logaddexp", "logaddexp2", "deg2rad", "rad2deg",
)
_NUMPY_CORE = (
    "multiarray._reconstruct", "multiarray.scalar", "numeric._frombuffer", "multiarray.dtype",
    "multiarray.ndarray", "_multiarray_umath._reconstruct", "_multiarray_umath.scalar",
    "numerictypes.dtype",
)
_NUMPY = frozenset(
    {"numpy.dtype", "numpy.ndarray", "numpy.matrix", "numpy.recarray", "numpy.record", "numpy.ma.core._mareconstruct",
     "numpy.ma.core.MaskedArray", "numpy.ma.core.MaskedConstant", "numpy.ma.core.mvoid",
     "numpy.random._pickle.__randomstate_ctor", "numpy.random._pickle.__generator_ctor",
     "numpy.random._pickle.__bit_generator_ctor", "numpy.random.mtrand.RandomState",
     "numpy.random._generator.Generator", "numpy.random._mt19937.MT19937", "numpy.random._pcg64.PCG64",
     "numpy.random._pcg64.PCG64DXSM", "numpy.random._philox.Philox", "numpy.random._sfc64.SFC64",
     "numpy.random.bit_generator.SeedSequence", "numpy.random.bit_generator.__pyx_unpickle_SeedSequence"}
    | {f"numpy.{core}.{name}" for core in ("core", "_core") for name in _NUMPY_CORE}
    | {f"numpy.{name}" for name in _NUMPY_SCALARS + _NUMPY_UFUNCS}
    | {f"numpy.dtypes.{kind}DType" for kind in (
        "Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float16", "Float32",
        "Float64", "LongDouble", "Complex64", "Complex128", "CLongDouble", "Object", "Bytes", "Str", "Void",
        "DateTime64", "TimeDelta64", "StringDType")}
)
_TORCH_STORAGES = ("Float", "Double", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte", "Bool",
                   "ComplexFloat", "ComplexDouble", "QInt8", "QUInt8", "QInt32", "QUInt4x2", "QUInt2x4")
_TORCH_DTYPES = ("float32", "float64", "float16", "bfloat16", "float", "double", "half", "int8", "int16", "int32",
                 "int64", "uint8", "bool", "complex64", "complex128", "long", "int", "short", "qint8", "quint8",
                 "qint32", "float8_e4m3fn", "float8_e5m2", "uint16", "uint32", "uint64")
_TORCH = frozenset(
    {f"torch._utils.{name}" for name in (
        "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_parameter",
        "_rebuild_parameter_with_state", "_rebuild_qtensor", "_rebuild_sparse_tensor", "_rebuild_nested_tensor",
        "_rebuild_device_tensor_from_numpy", "_rebuild_meta_tensor_no_storage", "_rebuild_wrapper_subclass")}
    | {f"torch.{kind}Storage" for kind in _TORCH_STORAGES}
    | {f"torch.cuda.{kind}Storage" for kind in _TORCH_STORAGES}
    | {f"torch.{name}" for name in _TORCH_DTYPES}
    | {"torch.storage.TypedStorage", "torch.storage.UntypedStorage", "torch.UntypedStorage", "torch.TypedStorage",
       "torch.Size", "torch.device", "torch.Tensor", "torch.strided", "torch.sparse_coo", "torch.sparse_csr",
       "torch.nn.parameter.Parameter", "torch.nn.parameter.Buffer", "torch._tensor._rebuild_from_type",
       "torch._tensor._rebuild_from_type_v2", "torch.serialization._get_layout", "torch.per_tensor_affine",
       "torch.per_channel_affine", "torch.contiguous_format", "torch.channels_last"}
)
_STDLIB = frozenset(
    {f"builtins.{name}" for name in (
        "set", "frozenset", "slice", "complex", "bytearray", "bytes", "range", "int", "float", "str", "list",
        "dict", "tuple", "bool", "object", "Ellipsis", "NotImplemented")}
    | {"copyreg._reconstructor", "copyreg.__newobj__", "copyreg.__newobj_ex__", "_codecs.encode",
       "datetime.datetime", "datetime.date", "datetime.time", "datetime.timedelta", "datetime.timezone",
       "decimal.Decimal", "fractions.Fraction", "uuid.UUID", "enum.Enum"}
)

#: Each framework: exact dotted names, and module prefixes whose every name is allowed.
FRAMEWORKS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "numpy": (_NUMPY, ()),
    "sklearn": (frozenset(), ("sklearn.",)),
    "scipy": (frozenset(), ("scipy.sparse.", "scipy.interpolate.", "scipy.spatial._kdtree.",
                            "scipy.spatial._ckdtree.", "scipy.stats._distn_infrastructure.",
                            "scipy.stats._continuous_distns.", "scipy.stats._discrete_distns.")),
    "xgboost": (frozenset({"xgboost.core.Booster"}), ("xgboost.sklearn.",)),
    "lightgbm": (frozenset({"lightgbm.basic.Booster"}), ("lightgbm.sklearn.",)),
    "torch": (_TORCH, ("torch.nn.modules.",)),
    "collections": (frozenset({"collections.OrderedDict", "collections.defaultdict", "collections.deque",
                               "collections.Counter", "collections.ChainMap", "collections.UserDict",
                               "collections.UserList", "collections.UserString"}), ()),
    "joblib": (frozenset({"joblib.numpy_pickle.NumpyArrayWrapper"}), ()),
    "stdlib": (_STDLIB, ()),
}
DEFAULT_FRAMEWORKS: frozenset[str] = frozenset(FRAMEWORKS)

# Names of denied top-level modules are attribute names a chain must not pass through.
_CHAIN_MODULES = frozenset(name for name in _DENY_MODULES if "." not in name)


def _prefixes(dotted: str) -> list[str]:
    """``a.b.c`` → ``["a", "a.b", "a.b.c"]``."""
    parts = dotted.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _is_dunder(name: str) -> bool:
    return len(name) > 4 and name.startswith("__") and name.endswith("__")


@dataclass(frozen=True)
class CallablePolicy:
    """The frameworks a tier accepts, plus exact names it allows and names or prefixes it denies."""

    frameworks: frozenset[str] = DEFAULT_FRAMEWORKS
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    _exact: frozenset[str] = field(init=False, repr=False, compare=False)
    _prefix: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = sorted(set(self.frameworks) - set(FRAMEWORKS))
        if unknown:
            raise ValueError(f"unknown framework(s) {', '.join(unknown)}; known: {', '.join(sorted(FRAMEWORKS))}")
        exact: set[str] = set(self.allow)
        prefix: list[str] = []
        for name in self.frameworks:
            names, prefixes = FRAMEWORKS[name]
            exact |= names
            prefix += prefixes
        object.__setattr__(self, "_exact", frozenset(exact))
        object.__setattr__(self, "_prefix", tuple(sorted(prefix)))
        object.__setattr__(self, "deny", frozenset(d.lower() for d in self.deny))

    def judge(self, dotted: str, *, module: str | None = None) -> tuple[Verdict, str]:
        """The verdict on one full dotted name and why.

        ``module`` is the part of ``dotted`` that is imported (the rest is an attribute chain on
        it); the pickle scanner always passes it. Without it, everything before the last dot is
        taken as the module.
        """
        if module is None or not (dotted == module or dotted.startswith(module + ".")):
            module = dotted.rpartition(".")[0]
        lowered = dotted.lower()
        for prefix in _prefixes(lowered):
            if prefix in self.deny:
                return Verdict.DENIED, f"denied by this policy ({prefix})"
            reason = _DENY_MODULES.get(prefix)
            if reason:
                return Verdict.DENIED, f"{reason} ({prefix})"
        if dotted in self._exact:
            return Verdict.ALLOWED, "on the allowlist"
        chain = dotted[len(module) + 1:].split(".") if len(dotted) > len(module) else []
        for i, name in enumerate(chain):
            if name in CHAIN_NAMES or name.lower() in _CHAIN_MODULES:
                # the chain reaches a denied module or name: judge it from there
                reached = ".".join(chain[i:])
                for prefix in _prefixes(reached.lower()):
                    reason = _DENY_MODULES.get(prefix)
                    if reason:
                        return Verdict.DENIED, f"attribute chain reaches {prefix}: {reason}"
                return Verdict.DENIED, f"attribute chain reaches {name!r}, a name only gadgets use"
            if _is_dunder(name):
                return Verdict.DENIED, f"attribute chain goes through {name}"
        if any(dotted.startswith(p) for p in self._prefix):
            return Verdict.ALLOWED, "in an allowed framework"
        return Verdict.UNKNOWN, "on no allowlist"
