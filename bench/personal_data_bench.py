"""Benchmark of compliance_review's personal-data scan against the data check and what a user would write (issue 14).

    .venv/bin/python bench/personal_data_bench.py                       # 1M rows, a few minutes on 2 cores
    .venv/bin/python bench/personal_data_bench.py --rows 10000000       # the data check's 10M-row dataset
    .venv/bin/python bench/personal_data_bench.py --tools pii,data_check --repeat 3

The issue asks the scan to run "at data-check speed (vectorised over Arrow columns, no Python loop per
value)" on the 10M-row dataset the data check uses. So, side by side on the same files:

Data (``--data``, default both):

- ``clean``  the data check bench's ``continuous`` family (``bench/data_check_data.py``, cached under
             ``--data-dir``): a current dataset of ``rows`` rows and a reference of ``rows // 5`` (20
             columns: id, ts, label, 12 floats, 5 dictionary strings). No personal data: the detectors
             have nothing to find, which is the common case the scan must be cheap on.
- ``pii``    the same two files plus two string columns (``--dir/<rows>/``, deterministic, seed 44/45):
             ``contact`` — 1 % e-mail addresses, the rest ``customer 1234567`` — and ``payment_ref`` —
             1 % payment-card numbers (16 digits, Luhn-valid, a third of them grouped ``4xxx xxxx …``),
             the rest ``ORD-`` and 10 digits. The detectors fire, the checksum step runs.

Tools, each in its own process (peak RSS is its own), interleaved (``--repeat``: the median is reported).
Every tool reads both datasets (current and reference), as the gate does (it scans every dataset of a
version); seconds are the work on the data (reading included), imports excluded and reported apart:

- ``pii``         clearance: what the gate's personal-data step runs (``gate.py`` ``_personal_data``): every
                  column read one at a time with the gate's ``DatasetReader`` (strings as dictionaries, as
                  the data check reads them) and ``personal_data.scan_column`` (strings and integers are
                  scanned, floats skipped, dates only under a birth-like name);
- ``data_check``  one data_check gate run on the same two files (exact KS, the continuous contract):
                  the "data-check speed" reference (``bench/data_check_bench.py``'s ``gate``);
- ``pandas``      what a user would write: ``pd.read_parquet`` of the scanned columns and, per column (as
                  ``str``) and per detector, ``Series.str.contains(pattern)`` with the gate's own patterns (no
                  Luhn / mod-97 step). pandas 3 stores ``str`` in Arrow, so this is RE2 too, one pass per
                  detector;
- ``re``          Python's ``re`` per value, the gate's patterns, on the first ``--subset`` rows of each
                  dataset; seconds are extrapolated to all rows (marked ``*``);
- ``datafog``     DataFog 4.9 (``pip install datafog``: "lightning-fast PII detection", regex, no model),
                  ``RegexAnnotator().annotate(value)`` per value, the way its API takes text, on the same
                  subset, extrapolated (``*``). Imported from ``--datafog-path`` (default: this interpreter
                  if it has it, else ``--dir/datafog-4.9.0``, installed there with ``pip install --no-deps
                  --target`` on first use; its dependencies pydantic and pydantic-settings are this venv's).
                  Telemetry is off (``DATAFOG_NO_TELEMETRY=1``). Skipped when it cannot be installed.

Each run reports rows scanned (current + reference, per tool the same files), seconds, rows/s, peak RSS
(VmHWM) and the ratio to the data check; the hit counts per detector are printed so that one sees the
detectors fire on ``pii`` and stay quiet on ``clean`` (pandas/re count regex matches only, so their card
counts include Luhn-invalid numbers; DataFog has its own patterns).

Not a test: timings on a shared 2-core machine are noisy; compare ratios taken side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.data_check_data import FAMILIES  # noqa: E402
from bench.measure import run_child, vm_hwm_mb  # noqa: E402

PII_SHARE = 0.01
DATAFOG = "datafog==4.9.0"
TOOLS = ("pii", "data_check", "pandas", "re", "datafog")
EXTRAPOLATED = ("re", "datafog")


# --------------------------------------------------------------------------- data


def _digits_matrix(rng: np.random.Generator, rows: int) -> np.ndarray:
    """``rows`` Luhn-valid 16-digit card numbers as a digit matrix (issuer prefix 4 or 51–55)."""
    digits = rng.integers(0, 10, (rows, 16), dtype=np.uint8)
    visa = rng.random(rows) < 0.5
    digits[visa, 0] = 4
    digits[~visa, 0] = 5
    digits[~visa, 1] = rng.integers(1, 6, int((~visa).sum()), dtype=np.uint8)
    # The check digit (last) makes the Luhn sum a multiple of 10: double every second digit from the right.
    body = digits[:, :15][:, ::-1].astype(np.int32)
    doubled = body[:, 0::2] * 2
    total = np.where(doubled > 9, doubled - 9, doubled).sum(axis=1) + body[:, 1::2].sum(axis=1)
    digits[:, 15] = ((10 - total % 10) % 10).astype(np.uint8)
    return digits


def _fixed_strings(chars: np.ndarray) -> Any:
    """A ``(rows, width)`` uint8 matrix of ASCII as an Arrow string array (no per-value Python)."""
    import pyarrow as pa

    rows, width = chars.shape
    offsets = pa.py_buffer((np.arange(rows + 1, dtype=np.int32) * width).tobytes())
    data = pa.py_buffer(np.ascontiguousarray(chars).tobytes())
    return pa.Array.from_buffers(pa.string(), rows, [None, offsets, data])


def pii_columns(rows: int, seed: int) -> dict[str, Any]:
    """``contact`` (1 % e-mails) and ``payment_ref`` (1 % Luhn-valid card numbers), built with Arrow kernels."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    hit = np.zeros(rows, dtype=bool)
    hit[rng.choice(rows, max(1, int(rows * PII_SHARE)), replace=False)] = True
    ids = pa.array(rng.integers(1_000_000, 9_999_999, rows)).cast(pa.string())
    domains = pa.array(np.array(["example.com", "mail.example.org", "corp.example.net"])[rng.integers(0, 3, rows)])
    email = pc.binary_join_element_wise("user.", ids, "@", domains, "")
    customer = pc.binary_join_element_wise("customer ", ids, "")
    contact = pc.if_else(pa.array(hit), email, customer)

    card_hit = np.zeros(rows, dtype=bool)
    card_hit[rng.choice(rows, max(1, int(rows * PII_SHARE)), replace=False)] = True
    digits = _digits_matrix(rng, rows) + np.uint8(ord("0"))
    plain = _fixed_strings(digits)
    spaced = np.full((rows, 19), ord(" "), dtype=np.uint8)
    for group in range(4):
        spaced[:, group * 5: group * 5 + 4] = digits[:, group * 4: group * 4 + 4]
    grouped = pc.if_else(pa.array(rng.random(rows) < 1 / 3), _fixed_strings(spaced), plain)
    orders = pc.binary_join_element_wise("ORD-", pa.array(rng.integers(10**9, 10**10 - 1, rows)).cast(pa.string()), "")
    payment = pc.if_else(pa.array(card_hit), grouped, orders)
    return {"contact": contact, "payment_ref": payment}


def prepare_data(rows: int, data_dir: Path, directory: Path) -> dict[str, tuple[Path, Path]]:
    """The ``clean`` files (the data check bench's, cached) and their ``pii`` twins (cached under ``directory``)."""
    import pyarrow.parquet as pq

    current, reference = FAMILIES["continuous"].generate(rows, data_dir / "continuous" / str(rows))
    out = directory / str(rows)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"rows": rows, "share": PII_SHARE, "version": 1, "source": [str(current), str(reference)]}
    meta_path = out / "pii.json"
    twins = (out / "current.parquet", out / "reference.parquet")
    if not (meta_path.exists() and json.loads(meta_path.read_text()) == meta and all(p.exists() for p in twins)):
        meta_path.unlink(missing_ok=True)
        for source, target, seed in ((current, twins[0], 44), (reference, twins[1], 45)):
            table = pq.read_table(source)
            for name, column in pii_columns(table.num_rows, seed).items():
                table = table.append_column(name, column)
            pq.write_table(table, target, compression="zstd", row_group_size=1 << 20)
            del table
        meta_path.write_text(json.dumps(meta))
    return {"clean": (current, reference), "pii": twins}


# --------------------------------------------------------------------------- the tools (child processes)


def _scanned_columns(schema: Any) -> list[str]:
    """The columns ``scan_column`` does work on: strings, integers, dates under a birth-like name."""
    import pyarrow as pa

    from gates.compliance_review.personal_data import birth_named

    names = []
    for field in schema:
        t = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
                or pa.types.is_integer(t) or ((pa.types.is_date(t) or pa.types.is_timestamp(t))
                                              and birth_named(field.name))):
            names.append(field.name)
    return names


def _patterns() -> dict[str, str]:
    """The gate's detector patterns (what pandas and ``re`` are given)."""
    from gates.compliance_review import personal_data as pd_

    return {**pd_._SIMPLE, "payment_card": pd_._CARD, "iban": pd_._IBAN}


def run_pii(files: tuple[Path, Path]) -> dict[str, Any]:
    """clearance's scan over both datasets, as the gate runs it (``gate.py`` ``_personal_data``): every column,
    read one at a time by the gate's ``DatasetReader``, through ``scan_column``; hits per detector."""
    from clearance.config.schema import DatasetRef
    from gates.compliance_review.personal_data import scan_column
    from gates.data_check.reader import DatasetReader
    from tasks.datasets import locate_dataset

    hits: dict[str, int] = {}
    flagged = []
    rows = 0
    for role, path in zip(("current", "reference"), files, strict=True):
        reader = DatasetReader(locate_dataset(DatasetRef(role="eval", uri=str(path)), compute_digest=False))
        rows += reader.num_rows
        for name in reader.columns:
            scan = scan_column(reader.column(name), name)
            for d in scan.detections:
                hits[d.detector] = hits.get(d.detector, 0) + d.hits
            if scan.found(0.01):
                flagged.append(f"{role}:{scan.column}")
    return {"rows": rows, "hits": hits, "flagged": flagged}


def run_data_check(files: tuple[Path, Path]) -> dict[str, Any]:
    """One data_check gate run (exact KS, the continuous contract) on the same current and reference."""
    import pyarrow.parquet as pq

    from bench.data_check_bench import gate_result

    current, reference = files
    result = gate_result(current, reference, "exact", FAMILIES["continuous"].contract())
    rows = pq.read_metadata(current).num_rows + pq.read_metadata(reference).num_rows
    return {"rows": rows, "status": result.status.value}


def _pandas_frames(files: tuple[Path, Path]) -> list[Any]:
    import pandas as pd
    import pyarrow.parquet as pq

    return [pd.read_parquet(path, columns=_scanned_columns(pq.read_schema(path))) for path in files]


def run_pandas(files: tuple[Path, Path]) -> dict[str, Any]:
    """``Series.str.contains(pattern)`` per column and detector, the gate's patterns."""
    patterns = _patterns()
    hits = dict.fromkeys(patterns, 0)
    rows = 0
    for df in _pandas_frames(files):
        rows += len(df)
        for column in df.columns:
            text = df[column].astype("str")  # pandas 3: Arrow-backed strings; missing values stay missing
            for name, pattern in patterns.items():
                hits[name] += int(text.str.contains(pattern, regex=True, na=False).sum())
    return {"rows": rows, "hits": {k: v for k, v in hits.items() if v}}


def _subset_values(files: tuple[Path, Path], subset: int) -> tuple[list[list[str | None]], int, int]:
    """The first ``subset`` rows of every scanned column of each file as Python strings (not timed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: list[list[str | None]] = []
    taken = total = 0
    for path in files:
        parquet = pq.ParquetFile(path)
        total += parquet.metadata.num_rows
        names = _scanned_columns(parquet.schema_arrow)
        batch = next(parquet.iter_batches(batch_size=subset, columns=names))
        taken += batch.num_rows
        for column in batch.columns:
            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            columns.append(column.cast(pa.string()).to_pylist())
    return columns, taken, total


def run_re(files: tuple[Path, Path], subset: int) -> tuple[dict[str, Any], list[list[str | None]]]:
    columns, taken, total = _subset_values(files, subset)
    return {"rows": total, "subset_rows": taken}, columns


def work_re(columns: list[list[str | None]]) -> dict[str, int]:
    """Python ``re`` per value and detector, the gate's patterns."""
    compiled = {name: re.compile(p) for name, p in _patterns().items()}
    hits = dict.fromkeys(compiled, 0)
    for values in columns:
        for name, pattern in compiled.items():
            search = pattern.search
            hits[name] += sum(1 for v in values if v is not None and search(v))
    return {k: v for k, v in hits.items() if v}


def work_datafog(columns: list[list[str | None]]) -> dict[str, int]:
    """DataFog's regex annotator per value (its API takes one text at a time)."""
    from datafog.processing.text_processing.regex_annotator import RegexAnnotator

    annotator = RegexAnnotator()
    hits: dict[str, int] = {}
    for values in columns:
        for v in values:
            if v is None:
                continue
            for label, found in annotator.annotate(v).items():
                if found:
                    hits[label] = hits.get(label, 0) + 1
    return hits


def prepare(tool: str) -> None:
    """Import what a tool needs (not timed)."""
    if tool == "pii":
        import gates.compliance_review.personal_data  # noqa: F401
        import gates.data_check.reader  # noqa: F401
        import tasks.datasets  # noqa: F401
    elif tool == "data_check":
        import bench.data_check_bench  # noqa: F401
        import gates.data_check  # noqa: F401
        import tasks.datasets  # noqa: F401
    elif tool in ("pandas", "re"):
        import pandas  # noqa: F401

        import gates.compliance_review.personal_data  # noqa: F401
    elif tool == "datafog":
        os.environ["DATAFOG_NO_TELEMETRY"] = "1"
        from datafog.processing.text_processing.regex_annotator import RegexAnnotator  # noqa: F401


def child(tool: str, files: tuple[Path, Path], subset: int) -> None:
    t0 = time.perf_counter()
    prepare(tool)
    imports = time.perf_counter() - t0
    started = time.perf_counter()
    if tool == "pii":
        out = run_pii(files)
    elif tool == "data_check":
        out = run_data_check(files)
    elif tool == "pandas":
        out = run_pandas(files)
    elif tool in EXTRAPOLATED:
        out, columns = run_re(files, subset)  # reading the subset into Python is not timed
        started = time.perf_counter()
        out["hits"] = work_re(columns) if tool == "re" else work_datafog(columns)
    else:
        raise SystemExit(f"unknown tool {tool}")
    seconds = time.perf_counter() - started
    if tool in EXTRAPOLATED:
        out["subset_seconds"] = seconds
        seconds *= out["rows"] / out["subset_rows"]
    print(json.dumps({"tool": tool, "seconds": seconds, "imports": imports, "peak_rss_mb": vm_hwm_mb(), **out}))


# --------------------------------------------------------------------------- driver


def _datafog_path(args: argparse.Namespace) -> Path | None:
    """Where DataFog is imported from (None: this interpreter has it); installed on first use."""
    if args.datafog_path is not None:
        return args.datafog_path
    probe = subprocess.run([sys.executable, "-c", "import datafog"], capture_output=True)
    if probe.returncode == 0:
        return None
    target = args.dir / "datafog-4.9.0"
    if not (target / "datafog").exists():
        print(f"# installing {DATAFOG} into {target} (pip --no-deps --target)", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), DATAFOG],
                       check=False)
    return target if (target / "datafog").exists() else None


def _run_child(tool: str, files: tuple[Path, Path], subset: int, datafog: Path | None) -> dict[str, Any] | None:
    command = [sys.executable, __file__, "--child", tool, "--files", str(files[0]), str(files[1]),
               "--subset", str(subset)]
    env = dict(os.environ, DATAFOG_NO_TELEMETRY="1")
    if tool == "datafog" and datafog is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(datafog), *filter(None, [env.get("PYTHONPATH")])])
    return run_child(tool, command, env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the current dataset (reference: 1/5)")
    parser.add_argument("--data", action="append", choices=("clean", "pii"), help="data variant (default: both)")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool, interleaved; the median is reported")
    parser.add_argument("--subset", type=int, default=1_000_000,
                        help="rows per dataset the per-value tools (re, datafog) run on; extrapolated to all")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/clearance-data-check-bench"),
                        help="the data check bench's cache (the clean data is shared with it)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/clearance-pii-bench"))
    parser.add_argument("--datafog-path", type=Path, help="a directory DataFog is imported from")
    parser.add_argument("--json", type=Path, help="write every run here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--files", type=Path, nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, tuple(args.files), args.subset)
        return
    tools = args.tools.split(",")
    datafog = _datafog_path(args) if "datafog" in tools else None
    if "datafog" in tools and datafog is None and subprocess.run(
            [sys.executable, "-c", "import datafog"], capture_output=True).returncode:
        print(f"# {DATAFOG} could not be installed: skipped", flush=True)
        tools.remove("datafog")
    t0 = time.perf_counter()
    data = prepare_data(args.rows, args.data_dir, args.dir)
    sizes = {k: sum(p.stat().st_size for p in v) / 1e6 for k, v in data.items()}
    print(f"# {args.rows:,} current + {max(1000, args.rows // 5):,} reference rows: data ready in "
          f"{time.perf_counter() - t0:.1f} s (clean {sizes['clean']:.0f} MB, pii {sizes['pii']:.0f} MB); "
          f"tools {','.join(tools)}; --repeat {args.repeat}; per-value subset {args.subset:,} rows per dataset; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    table: list[tuple[Any, ...]] = []
    dump: list[dict[str, Any]] = []
    failed = []
    for variant in args.data or ["clean", "pii"]:
        files = data[variant]
        runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
        for _ in range(args.repeat):
            for tool in tools:
                res = _run_child(tool, files, args.subset, datafog)
                if res is None:
                    failed.append(f"{variant}: {tool}")
                    continue
                runs[tool].append(res)
                mark = "*" if tool in EXTRAPOLATED else " "
                print(f"  {variant:5s} {tool:10s} {res['seconds']:8.2f} s{mark} {res['peak_rss_mb']:7.0f} MB  "
                      f"(imports {res['imports']:.2f} s; load {os.getloadavg()[0]:.2f})  "
                      f"hits {json.dumps(res.get('hits', {}), sort_keys=True)}"
                      + (f"  flagged {', '.join(res['flagged']) or 'none'}" if "flagged" in res else ""), flush=True)
        medians = {}
        for tool, got in runs.items():
            if got:
                ordered = sorted(got, key=lambda r: r["seconds"])
                medians[tool] = {**ordered[len(ordered) // 2], "all_seconds": [r["seconds"] for r in got],
                                 "peak_rss_mb": max(r["peak_rss_mb"] for r in got)}
        reference = medians.get("data_check", {}).get("seconds")
        for tool, res in medians.items():
            table.append((variant, tool, res, reference))
        dump.append({"variant": variant, "rows": args.rows, "runs": runs})
    print("\n| data | tool | rows scanned | seconds (median) | all runs | rows/s | imports s | peak RSS MB "
          "| × data_check |\n|---|---|---:|---:|---|---:|---:|---:|---:|")
    for variant, tool, res, reference in table:
        mark = "*" if tool in EXTRAPOLATED else ""
        ratio = f"{res['seconds'] / reference:.2f}" if reference else "—"
        runs_ = " ".join(f"{s:.2f}" for s in res["all_seconds"])
        print(f"| {variant} | {tool}{' (subset ' + format(res['subset_rows'], ',') + ' rows)' if mark else ''} "
              f"| {res['rows']:,} | {res['seconds']:.2f}{mark} | {runs_} | {res['rows'] / res['seconds']:,.0f} "
              f"| {res['imports']:.2f} | {res['peak_rss_mb']:.0f} | {ratio} |")
    if any(t in EXTRAPOLATED for t in tools):
        print("\n* extrapolated from the subset: seconds × rows / subset rows")
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1, default=str))
        print(f"\nwrote {args.json}")
    if failed:
        print("\n** FAILED: " + "; ".join(failed))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
