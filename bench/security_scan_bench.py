"""Benchmark of the security_scan gate's model-file scanner against sha256, modelscan and picklescan (issue 13).

    .venv/bin/python bench/security_scan_bench.py --repeat 3
    .venv/bin/python bench/security_scan_bench.py --files opcode --tools clearance,genops --repeat 5

Files (``--files``, comma-separated; default: all), generated once, deterministically (NumPy seed 42,
scikit-learn ``random_state=0``), into ``--dir`` and reused while ``manifest.json`` there matches; each
comes clean and with a malicious twin (``*-evil``):

- ``array``    ~1 GB pickle, protocol 4: a dict of four 250 MB float64 arrays and a small fitted
               scikit-learn random forest (the arrays go in-band as ``BINBYTES``);
- ``array5``   the same object at protocol 5 (the arrays in-band as ``BYTEARRAY8``, no copy);
- ``joblib``   the same object through ``joblib.dump`` (raw array bytes between the pickle opcodes);
- ``opcode``   ~67 MB pickle, protocol 4, of a list of ~11M small ints, floats, short strings (new and
               memoized) and 2-/3-tuples: ~23M opcodes (counted once with ``pickletools.genops``).

The malicious twin holds the same data plus one more entry at the very end, after every array (for
joblib: after the last raw array): an object whose reduce is ``os.system("echo …")``, written by
``pickle`` itself (``STACK_GLOBAL 'os' 'system'`` + ``REDUCE``, the form protocols 4 and 5 use).
Nothing here ever unpickles a file.

Tools, each in its own child process (so its peak RSS — VmHWM, imports included — is its own), run
interleaved per file (sha256, clearance, modelscan, … ``--repeat`` times; the median is reported; a tool
whose first run on a file takes longer than ``--slow`` seconds runs once on that file):

- ``sha256``      hashlib over the file, 1 MiB ``readinto`` reads (the I/O floor the issue sets);
- ``clearance``   ``gates.security_scan.model_files.scan_path(path, name, CallablePolicy())`` (the default
                  policy): it hashes the file (sha256, for the evidence) and scans it, as the pre-flight
                  ``clearance gate run security_scan --artifact`` does;
- ``clearance_known`` the same with ``known_sha256=`` the manifest's digest, as the gate in a flow calls
                  it (artifact_integrity has verified the digest already): the scan alone;
- ``modelscan``   ``ModelScan(settings=DEFAULT_SETTINGS).scan(path)`` (what ``modelscan -p FILE`` runs,
                  minus printing the report);
- ``picklescan``  ``picklescan.scanner.scan_file_path(path)`` (what ``picklescan --path FILE`` runs);
- ``genops``      ``for op in pickletools.genops(f)`` over every pickle in the file (the stdlib floor of a
                  Python opcode walk; it judges nothing and stops at the first thing that is not a pickle).

Then each scanner (clearance, modelscan, picklescan) runs once on each malicious twin: did it report
``os.system`` (``posix.system``) as dangerous? And on the clean files: what did it flag (a false alarm
on a clean random forest is a finding too)?

modelscan 0.8.8 wants ``rich<15`` and Python < 3.13; this repository pins ``rich==15``, so modelscan is
not in the ``bench`` extra: it runs from its own venv, ``--modelscan-python`` (default: this
interpreter when it can import modelscan, else ``--dir/venv-modelscan``, created on first use with
``modelscan==0.8.8`` and this repository's other pins, e.g. the same NumPy). picklescan has no
dependencies and comes with ``pip install -c constraints.txt -e '.[bench]'``.

Source: the clearance runs import ``gates/`` and ``clearance/`` from a copy of this tree taken when the
run starts (``--dir/src``; its commit and a digest of ``gates/security_scan`` are printed), so an edit
made during a run cannot mix versions; ``--gate-root DIR`` imports them from another tree instead.

Timing: each tool's imports run before its clock starts and are reported separately (with the RSS
right after them); the first read of each file is done untimed, so every tool finds it in the page
cache. The load average is recorded around every run. Not a test: timings on a shared machine are
noisy; compare ratios taken side by side. ``--scale 0.001`` makes every file a thousandth of its
size, to try the harness (give it its own ``--dir``). The exit status is 1 when a tool fails,
clearance misses a payload, or clearance denies a callable in a clean file; unmet speed and memory
targets only print.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

GEN_VERSION = 2  # bump when the generated files change
SEED = 42
ARRAYS = 4
ARRAY_ELEMENTS = 31_250_000  # float64: 250 MB each, 1.00 GB in all
OPCODE_ITEMS = 11_400_000  # ~67 MB, ~23M opcodes
PAYLOAD_COMMAND = "echo clearance-bench-payload"
PAYLOAD_CALLABLES = {"os.system", "posix.system", "nt.system"}
MODELSCAN_PIN = "modelscan==0.8.8"
FILE_KINDS = ("array", "array5", "joblib", "opcode")
TOOLS = ("sha256", "clearance", "clearance_known", "modelscan", "picklescan", "genops")
SCANNERS = ("clearance", "clearance_known", "modelscan", "picklescan")
MIB = 1 << 20


_STEMS = {"array": ("array-p4", ".pkl"), "array5": ("array-p5", ".pkl"), "joblib": ("array", ".joblib"),
          "opcode": ("opcode", ".pkl")}


def file_names(kind: str) -> tuple[str, str]:
    """(clean, malicious) file names of a kind; the extensions are ones modelscan and picklescan scan as pickle."""
    stem, ext = _STEMS[kind]
    return f"{stem}{ext}", f"{stem}-evil{ext}"


# --------------------------------------------------------------------------- generation (parent, untimed)


def _system_stand_in(command: str) -> int:  # pragma: no cover - never called: only pickled by reference
    raise RuntimeError("the bench's os.system stand-in must never run")


_system_stand_in.__module__ = "os"
_system_stand_in.__name__ = _system_stand_in.__qualname__ = "system"


class Payload:
    """Pickles as ``os.system(PAYLOAD_COMMAND)``: a reference to ``os.system`` and a ``REDUCE``."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _system_stand_in, (PAYLOAD_COMMAND,)


@contextmanager
def _pickles_as_os_system():
    """While pickling, ``os.system`` is the stand-in, so pickle writes the global ``os system`` (not ``posix``)
    and checks it resolves to the very object; the real function is back right after."""
    real = os.system
    os.system = _system_stand_in  # type: ignore[assignment]
    try:
        yield
    finally:
        os.system = real


def _array_object(scale: float) -> dict[str, Any]:
    import numpy as np
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(SEED)
    obj: dict[str, Any] = {f"weights_{i}": rng.standard_normal(int(ARRAY_ELEMENTS * scale))
                           for i in range(ARRAYS)}
    x = rng.standard_normal((2000, 20))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    obj["model"] = RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0, n_jobs=1).fit(x, y)
    obj["meta"] = {"name": "bench", "features": [f"f{i}" for i in range(20)]}
    return obj


def _with_payload(obj: Any) -> Any:
    """The same data with the payload as its very last entry (after every array and the model)."""
    if isinstance(obj, dict):
        return {**obj, "payload": Payload()}
    return [*obj, Payload()]


def _opcode_object(scale: float) -> list[Any]:
    """~11M small items: ints (BININT1), floats (BINFLOAT), strings (new: SHORT_BINUNICODE + MEMOIZE;
    repeated: BINGET), 2- and 3-tuples; ~2.9 bytes per opcode at protocol 4."""
    words = [f"w{i}" for i in range(512)]
    out: list[Any] = []
    append = out.append
    for i in range(int(OPCODE_ITEMS * scale)):
        k = i % 8
        if k < 2:
            append(i % 251)
        elif k < 4:
            append((i % 200) / 7.0)
        elif k == 4:
            append(words[i % 512])
        elif k == 5:
            append(f"s{i % 100003:x}")
        elif k == 6:
            append((i % 97, i % 89))
        else:
            append((i % 50, words[(i * 7) % 512], i % 13))
    return out


def _write(kind: str, path: Path, obj: Any) -> None:
    import pickle

    tmp = path.with_name(path.name + ".tmp")
    with _pickles_as_os_system():
        if kind == "joblib":
            import joblib

            joblib.dump(obj, tmp)
        else:
            with open(tmp, "wb") as f:
                pickle.dump(obj, f, protocol=5 if kind == "array5" else 4)
    tmp.replace(path)


def count_opcodes(path: Path) -> dict[str, Any]:
    """Opcodes of every pickle in the file with ``pickletools.genops``, until EOF or the first error."""
    import pickletools

    size = path.stat().st_size
    ops = 0
    error = None
    with open(path, "rb") as f:
        while f.tell() < size:
            try:
                for _ in pickletools.genops(f):
                    ops += 1
            except Exception as exc:
                error = f"{type(exc).__name__} near byte {f.tell()}: {str(exc)[:120]}"
                break
        return {"opcodes": ops, "bytes_read": f.tell(), "size": size, "error": error}


def _tail_has_payload(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 4096))
        tail = f.read()
    return b"system" in tail and b"os" in tail and PAYLOAD_COMMAND.encode() in tail


def generate(kinds: list[str], directory: Path, scale: float = 1.0) -> dict[str, Any]:
    """Write the files that are missing or stale; return the manifest (sizes, opcode counts)."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest_path = directory / "manifest.json"
    manifest: dict[str, Any] = {}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
    if manifest.get("version") != GEN_VERSION or manifest.get("scale") != scale:
        manifest = {"version": GEN_VERSION, "scale": scale, "files": {}}
    files = manifest["files"]
    built: dict[str, Any] = {}  # "array" / "opcode": the clean object, built once
    for kind in kinds:
        for evil, name in enumerate(file_names(kind)):
            path = directory / name
            entry = files.get(name)
            if entry and path.exists() and path.stat().st_size == entry["size"]:
                continue
            t0 = time.perf_counter()
            family = "opcode" if kind == "opcode" else "array"
            if family not in built:
                built[family] = _opcode_object(scale) if family == "opcode" else _array_object(scale)
            _write(kind, path, _with_payload(built[family]) if evil else built[family])
            if evil and not _tail_has_payload(path):
                raise SystemExit(f"{path}: the payload is not in its last 4 KB")
            counted = count_opcodes(path)
            files[name] = {"kind": kind, "evil": bool(evil), "size": path.stat().st_size,
                           "sha256": run_tool("sha256", path, {})[1]["sha256"], **counted}
            manifest_path.write_text(json.dumps(manifest, indent=1))
            print(f"# wrote {name}: {files[name]['size'] / 1e6:.1f} MB, {counted['opcodes']:,} opcodes "
                  f"(genops read {counted['bytes_read']:,} bytes{'; ' + counted['error'] if counted['error'] else ''})"
                  f" in {time.perf_counter() - t0:.1f} s", flush=True)
    return manifest


# --------------------------------------------------------------------------- the tools (child processes)


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(tool: str, gate_root: Path | None = None) -> dict[str, Any]:
    """Import what a tool needs (not timed); returns its context and version."""
    if tool.startswith("clearance"):
        sys.path.insert(0, str(gate_root or ROOT))
        from gates.security_scan.callables import DEFAULT_FRAMEWORKS, CallablePolicy
        from gates.security_scan.model_files import scan_path

        origin = Path(sys.modules["gates.security_scan.model_files"].__file__ or "?").parents[2]
        return {"scan_path": scan_path, "policy": CallablePolicy(frameworks=DEFAULT_FRAMEWORKS),
                "version": f"source in {origin}"}
    if tool == "modelscan":
        import copy

        from modelscan._version import __version__
        from modelscan.modelscan import ModelScan
        from modelscan.settings import DEFAULT_SETTINGS

        return {"scanner": ModelScan(settings=copy.deepcopy(DEFAULT_SETTINGS)), "version": __version__}
    if tool == "picklescan":
        from importlib.metadata import version

        from picklescan.scanner import scan_file_path

        return {"scan": scan_file_path, "version": version("picklescan")}
    if tool == "genops":
        import pickletools  # noqa: F401
    return {"version": sys.version.split()[0]}


def run_tool(tool: str, path: Path, ctx: dict[str, Any],
             sha256: str | None = None) -> tuple[bool | None, dict[str, Any]]:
    """Run one tool on one file: (payload reported as dangerous, or None for tools that judge nothing; details).
    ``sha256``: the file's known digest (``clearance_known`` passes it to ``scan_path``)."""
    if tool == "sha256":
        digest = hashlib.sha256()
        buf = bytearray(MIB)
        view = memoryview(buf)
        with open(path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                digest.update(view[:n])
        return None, {"sha256": digest.hexdigest()}
    if tool == "genops":
        return None, count_opcodes(path)
    if tool.startswith("clearance"):
        known = sha256 if tool == "clearance_known" else None
        reports = ctx["scan_path"](path, path.name, ctx["policy"], known_sha256=known)
        callables = [c for r in reports for c in r.callables]
        verdict = {c.callable: str(getattr(c.verdict, "value", c.verdict)) for c in callables}
        denied = sorted({c.callable for c in callables if verdict[c.callable] == "denied"})
        unknown = sorted({c.callable for c in callables if verdict[c.callable] == "unknown"})
        problems = [f"{p.kind}/{getattr(p.severity, 'value', p.severity)}: {p.message[:100]}"
                    for r in reports for p in r.problems]
        found = any(c.callable in PAYLOAD_CALLABLES and verdict[c.callable] == "denied" for c in callables)
        return found, {"files": len(reports), "formats": sorted({r.format for r in reports}),
                       "sha256": reports[0].sha256 if reports else None, "callables": len(callables),
                       "distinct_callables": len(verdict), "denied": denied, "unknown": unknown[:20],
                       "problems": problems[:10],
                       "payload_offsets": [c.offset for c in callables if c.callable in PAYLOAD_CALLABLES]}
    if tool == "modelscan":
        report = ctx["scanner"].scan(str(path))
        issues = report.get("issues", [])
        flagged = sorted({f"{i.get('module')}.{i.get('operator')} ({i.get('severity')})" for i in issues})
        found = any(f"{i.get('module')}.{i.get('operator')}" in PAYLOAD_CALLABLES for i in issues)
        return found, {"issues": flagged, "errors": [str(e.get("description", e))[:160] for e in report["errors"]],
                       "skipped": [s["description"][:160] for s in report["summary"]["skipped"]["skipped_files"]],
                       "scanned": report["summary"]["scanned"]["total_scanned"]}
    if tool == "picklescan":
        result = ctx["scan"](str(path))
        dangerous = sorted({f"{g.module}.{g.name}" for g in result.globals if g.safety.value == "dangerous"})
        suspicious = sorted({f"{g.module}.{g.name}" for g in result.globals if g.safety.value == "suspicious"})
        found = any(name in PAYLOAD_CALLABLES for name in dangerous)
        return found, {"dangerous": dangerous, "suspicious": suspicious[:20], "globals": len(result.globals),
                       "scan_err": result.scan_err, "issues_count": result.issues_count}
    raise SystemExit(f"unknown tool {tool}")


def child(tool: str, path: Path, sha256: str | None, gate_root: Path | None) -> None:
    t0 = time.perf_counter()
    ctx = prepare(tool, gate_root)
    imports = time.perf_counter() - t0
    rss_after_imports = _status_mb("VmRSS")
    started = time.perf_counter()
    found, details = run_tool(tool, path, ctx, sha256)
    seconds = time.perf_counter() - started
    print(json.dumps({"tool": tool, "file": path.name, "seconds": seconds, "imports": imports,
                      "peak_rss_mb": _status_mb("VmHWM"), "rss_after_imports_mb": rss_after_imports,
                      "found": found, "version": ctx.get("version"), "details": details}, default=str))


# --------------------------------------------------------------------------- driver


def _modelscan_python(args: argparse.Namespace) -> str:
    """An interpreter that can import modelscan: the flag, this one, or a venv in --dir made on first use."""
    if args.modelscan_python:
        return str(args.modelscan_python)
    probe = subprocess.run([sys.executable, "-c", "import modelscan"], capture_output=True)
    if probe.returncode == 0:
        return sys.executable
    venv = args.dir / "venv-modelscan"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"# creating {venv} with {MODELSCAN_PIN} (this repository's pins except rich, which modelscan "
              "wants < 15)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pins = venv / "constraints.txt"
        pins.write_text("".join(line + "\n" for line in (ROOT / "constraints.txt").read_text().splitlines()
                                if not line.lower().startswith("rich==")))
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-c", str(pins), MODELSCAN_PIN], check=True)
    return str(python)


def _run_child(python: str, tool: str, path: Path, timeout: float, sha256: str,
               gate_root: Path | None) -> dict[str, Any] | None:
    command = [python, str(Path(__file__).resolve()), "--child", tool, "--path", str(path), "--sha256", sha256]
    if gate_root is not None and tool.startswith("clearance"):
        command += ["--gate-root", str(gate_root)]
    load_before = os.getloadavg()[0]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=str(path.parent))
    except subprocess.TimeoutExpired:
        print(f"  {tool}: TIMED OUT after {timeout:.0f} s", flush=True)
        return None
    if out.returncode:
        print(f"  {tool}: FAILED (exit {out.returncode})\n{out.stderr[-3000:]}", flush=True)
        return None
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["load"] = [load_before, os.getloadavg()[0]]
    return res


def _warm(path: Path) -> float:
    """Read the file once (untimed for the tools) so every tool finds it in the page cache."""
    t0 = time.perf_counter()
    buf = bytearray(8 * MIB)
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    return time.perf_counter() - t0


def _ratio(a: float | None, b: float | None) -> str:
    """``a ÷ b``: 1.004 (three decimals near 1, where the sha256 target is decided), 0.00274, 5.03, 134."""
    if not a or not b:
        return "—"
    r = a / b
    if r >= 100:
        return f"{r:.0f}"
    if r >= 10:
        return f"{r:.1f}"
    if r >= 0.1:
        return f"{r:.3f}" if 0.9 <= r < 1.1 else f"{r:.2f}"
    return f"{r:.3g}"


def _source_digest(root: Path) -> str:
    """A digest of the scanner's source files under ``root`` (names and bytes of gates/security_scan/**/*.py)."""
    digest = hashlib.sha256()
    files = sorted((root / "gates" / "security_scan").rglob("*.py"))
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return f"{len(files)} files in gates/security_scan, sha256 of their text {digest.hexdigest()[:12]}"


def _snapshot(directory: Path) -> tuple[Path, str]:
    """Copy this tree's ``gates/`` and ``clearance/`` (what the scanner imports) to ``directory/src`` so every
    clearance run of this benchmark imports the same source even if the working tree changes meanwhile."""
    import shutil

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "gates", "clearance"],
                           capture_output=True, text=True).stdout.strip()
    dst = directory / "src"
    shutil.rmtree(dst, ignore_errors=True)
    for package in ("gates", "clearance"):
        shutil.copytree(ROOT / package, dst / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    where = f"HEAD {head.stdout.strip() or '?'}{' + uncommitted changes' if dirty else ''}"
    return dst, f"{where}, copied to {dst}; {_source_digest(dst)}"


def _machine() -> str:
    """CPU model and RAM (Linux)."""
    model, ram = "?", "?"
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
        kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal:"))
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} CPUs, {model}, {ram} RAM"


def _short(details: dict[str, Any], tool: str) -> str:
    """What a scanner flagged, in a few words."""
    if tool.startswith("clearance"):
        bits = [f"denied {', '.join(details['denied']) or 'none'}", f"{len(details['unknown'])} unknown"]
        if details["problems"]:
            bits.append("problems: " + "; ".join(details["problems"][:2]))
        return "; ".join(bits)
    if tool == "modelscan":
        bits = [f"issues {', '.join(details['issues']) or 'none'}"]
        if details["errors"]:
            bits.append("errors: " + "; ".join(details["errors"][:2]))
        if details["skipped"]:
            bits.append("skipped: " + "; ".join(details["skipped"][:2]))
        return "; ".join(bits)
    if tool == "picklescan":
        bits = [f"dangerous {', '.join(details['dangerous']) or 'none'}",
                f"{len(details['suspicious'])} suspicious"]
        if details["scan_err"]:
            bits.append("scan error")
        return "; ".join(bits)
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/clearance-security-bench"))
    parser.add_argument("--files", default=",".join(FILE_KINDS), help=f"comma-separated, of {', '.join(FILE_KINDS)}")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated, of {', '.join(TOOLS)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool, interleaved; the median is reported")
    parser.add_argument("--slow", type=float, default=30.0,
                        help="a tool whose first run on a file takes longer than this many seconds runs once there")
    parser.add_argument("--no-evil", action="store_true", help="skip the malicious twins")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per child process")
    parser.add_argument("--modelscan-python", type=Path, help="interpreter that can import modelscan")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="size of the generated files relative to the issue's (e.g. 0.001 to try the harness)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--path", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sha256", help=argparse.SUPPRESS)
    parser.add_argument("--gate-root", type=Path,
                        help="source tree to import the scanner (gates/, clearance/) from; default: a copy of this "
                             "tree's, taken when the run starts")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.path, args.sha256, args.gate_root)
        return
    kinds = [k for k in args.files.split(",") if k]
    tools = [t for t in args.tools.split(",") if t]
    for name in kinds:
        if name not in FILE_KINDS:
            parser.error(f"unknown file kind {name}")
    for name in tools:
        if name not in TOOLS:
            parser.error(f"unknown tool {name}")
    pythons = dict.fromkeys(tools, sys.executable)
    if "modelscan" in tools:
        pythons["modelscan"] = _modelscan_python(args)
    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; nproc {os.cpu_count()}; "
          f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}; tools {','.join(tools)}; --repeat {args.repeat}; "
          f"modelscan from {pythons.get('modelscan', '-')}", flush=True)
    print(f"# machine: {_machine()}; Python {sys.version.split()[0]}", flush=True)
    source = None
    gate_root: Path | None = args.gate_root
    if any(t.startswith("clearance") for t in tools):
        if gate_root is None:
            gate_root, source = _snapshot(args.dir)
        else:
            gate_root = gate_root.resolve()
            source = f"{gate_root}; {_source_digest(gate_root)}"
        print(f"# clearance: {source}", flush=True)
    manifest = generate(kinds, args.dir, args.scale)
    fatal: list[str] = []
    dump: dict[str, Any] = {"manifest": manifest, "runs": {}}
    results: dict[str, dict[str, dict[str, Any]]] = {}  # file -> tool -> median run
    versions: dict[str, str] = {}
    loads: list[float] = []
    for kind in kinds:
        clean, evil = file_names(kind)
        path = args.dir / clean
        info = manifest["files"][clean]
        print(f"# {clean}: {info['size'] / 1e6:.1f} MB, {info['opcodes']:,} opcodes by genops"
              + (f" (genops stops at byte {info['bytes_read']:,}: {info['error']})" if info["error"] else "")
              + f"; warm read {_warm(path):.2f} s", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
        for rep in range(args.repeat):
            for tool in tools:
                if rep and runs[tool] and runs[tool][0]["seconds"] > args.slow:
                    continue
                res = _run_child(pythons[tool], tool, path, args.timeout, info["sha256"], gate_root)
                if res is None:
                    fatal.append(f"{clean}: {tool} failed")
                    continue
                runs[tool].append(res)
                versions[tool] = res["version"]
                loads += res["load"]
                print(f"  {tool:15s} {res['seconds']:8.3f} s  peak {res['peak_rss_mb']:7.0f} MB  "
                      f"(after imports {res['rss_after_imports_mb']:.0f} MB; imports {res['imports']:.2f} s; "
                      f"load {res['load'][0]:.2f}→{res['load'][1]:.2f})", flush=True)
        results[clean] = {}
        for tool, got in runs.items():
            if not got:
                continue
            median = statistics.median(r["seconds"] for r in got)
            closest = min(got, key=lambda r: abs(r["seconds"] - median))
            results[clean][tool] = {**closest, "seconds": median, "all_seconds": [r["seconds"] for r in got],
                                    "peak_rss_mb": max(r["peak_rss_mb"] for r in got)}
        digests = {t: results[clean][t]["details"].get("sha256") for t in ("sha256", "clearance")
                   if t in results[clean]}
        if len(digests) == 2 and digests["clearance"] is not None and digests["sha256"] != digests["clearance"]:
            fatal.append(f"{clean}: clearance sha256 {digests['clearance']} != {digests['sha256']}")
        for tool in SCANNERS:
            if tool in results[clean]:
                res = results[clean][tool]
                print(f"  {tool} on {clean}: {_short(res['details'], tool)}", flush=True)
                if tool.startswith("clearance") and res["details"]["denied"]:
                    fatal.append(f"{clean}: clearance denies {res['details']['denied']} in a clean file")
        dump["runs"][clean] = runs
        if args.no_evil:
            continue
        evil_path = args.dir / evil
        _warm(evil_path)
        results[evil] = {}
        for tool in tools:
            if tool not in SCANNERS:
                continue
            res = _run_child(pythons[tool], tool, evil_path, args.timeout, manifest["files"][evil]["sha256"],
                             gate_root)
            if res is None:
                fatal.append(f"{evil}: {tool} failed")
                continue
            loads += res["load"]
            results[evil][tool] = {**res, "all_seconds": [res["seconds"]]}
            print(f"  {tool:15s} {evil}: payload {'FOUND' if res['found'] else 'MISSED'}  "
                  f"({res['seconds']:.3f} s, peak {res['peak_rss_mb']:.0f} MB; {_short(res['details'], tool)})",
                  flush=True)
            if tool.startswith("clearance") and not res["found"]:
                fatal.append(f"{evil}: clearance missed the payload")
        dump["runs"][evil] = results[evil]

    # ------------------------------------------------------------------ tables
    print("\n| file | MB | opcodes | tool | seconds (median) | all runs | imports s | RSS after imports MB "
          "| peak RSS MB | × sha256 | ÷ clearance | payload in -evil twin |"
          "\n|---|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---|")
    for kind in kinds:
        clean, evil = file_names(kind)
        info = manifest["files"][clean]
        base = results.get(clean, {})
        sha = base.get("sha256", {}).get("seconds")
        ours = base.get("clearance", {}).get("seconds")
        for tool in tools:
            res = base.get(tool)
            if res is None:
                continue
            vs_sha = _ratio(res["seconds"], sha)
            vs_ours = _ratio(res["seconds"], ours) if tool != "clearance" else "—"
            twin = results.get(evil, {}).get(tool)
            found = "—" if twin is None else ("found" if twin["found"] else "**missed**")
            shown = " ".join(f"{x:.3f}" for x in res["all_seconds"])
            print(f"| {clean} | {info['size'] / 1e6:,.0f} | {info['opcodes']:,} | {tool} | {res['seconds']:.3f} "
                  f"| {shown} | {res['imports']:.2f} | {res['rss_after_imports_mb']:.0f} | {res['peak_rss_mb']:.0f} "
                  f"| {vs_sha} | {vs_ours} | {found} |")
    print("\nRatios (median seconds; clearance_known = the scan without hashing)")
    targets: list[str] = []
    for kind in kinds:
        clean, _ = file_names(kind)
        res = {t: r["seconds"] for t, r in results.get(clean, {}).items()}
        for ours in ("clearance", "clearance_known"):
            if ours not in res:
                continue
            mine = res[ours]
            parts = [f"{ours} ÷ sha256 {_ratio(mine, res['sha256'])}"] if "sha256" in res else []
            parts += [f"{t} ÷ {ours} {_ratio(res[t], mine)}" for t in ("modelscan", "picklescan", "genops") if t in res]
            print(f"  {clean}: " + ", ".join(parts))
            peak = results[clean][ours]["peak_rss_mb"]
            if kind == "opcode":
                if "modelscan" in res:
                    ratio = res["modelscan"] / mine
                    targets.append(f"{clean} {ours}: ≥ 3× faster than modelscan: "
                                   f"{'met' if ratio >= 3 else 'NOT met'} ({_ratio(res['modelscan'], mine)}×)")
                targets.append(f"{clean} {ours}: peak < 500 MB: {'met' if peak < 500 else 'NOT met'} ({peak:.0f} MB)")
            else:
                if "sha256" in res:
                    ratio = mine / res["sha256"]
                    targets.append(f"{clean} {ours}: ≤ sha256 time: {'met' if ratio <= 1 else 'NOT met'} "
                                   f"({_ratio(mine, res['sha256'])}× sha256)")
                targets.append(f"{clean} {ours}: peak < 100 MB: {'met' if peak < 100 else 'NOT met'} ({peak:.0f} MB)")
    if targets:
        print("\nTargets (issue 13):\n  " + "\n  ".join(targets))
    if loads:
        print(f"\nload average (1 min) around the runs: {min(loads):.2f}–{max(loads):.2f}")
    print("versions: " + ", ".join(f"{t} {v}" for t, v in sorted(versions.items())))
    if source and args.gate_root is None and _source_digest(ROOT) not in source:
        print(f"note: the working tree's scanner changed during the run (now {_source_digest(ROOT)}); "
              "every clearance run used the copy taken at the start")
    if args.json:
        dump["clearance_source"] = source
        args.json.write_text(json.dumps(dump, indent=1, default=str))
        print(f"wrote {args.json}")
    if fatal:
        print("\n** FAILED:\n  " + "\n  ".join(fatal))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
