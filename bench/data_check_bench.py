"""Benchmark of the data_check gate against one DuckDB scan (the limit) and Great Expectations.

    .venv/bin/python bench/data_check_bench.py --rows 1000000 --rows 10000000

For each size it generates (deterministically, seed 42) a current dataset of ``rows`` × 20 columns
and a reference of ``rows // 5`` rows (Parquet, zstd) with injected defects (out-of-range values,
nulls, unknown categories, duplicate keys, bad labels) and a shifted reference, then runs, each in
its own process (so peak RSS is its own):

- ``scan``          one DuckDB scan reading every value of both files (the physical limit);
- ``gate``          clearance's data_check gate, exact KS;
- ``gate_bounded``  the same with ``ks_mode: bounded``;
- ``ge``            Great Expectations 1.x (pandas) with the same contract checks, plus
                    ``scipy.stats.ks_2samp`` and a NumPy PSI for drift (GE has no PSI/KS);

checks that the gate and GE report the same defect counts and the same PSI/KS (1e-9), and prints
times, peak RSS and ratios. Not a test: timings on a shared machine are noisy; compare ratios.

Timing: each tool's libraries (duckdb; the gate package and the flow's ``tasks.datasets`` with
Prefect; great_expectations, pandas and scipy) are imported before the clock starts, so the
seconds are the work on the data; the import time is reported separately. ``--repeat N`` runs
the tools N times, interleaved (scan, gate, gate_bounded, ge, scan, …), and reports the median
of each, so a burst of load from other processes on a shared machine hits every tool alike.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NUMERIC = [f"f{i}" for i in range(12)]
CATEGORIES = {f"c{i}": [f"v{j}" for j in range(3 + 2 * i)] for i in range(5)}
SHIFTED = {"f0": 0.3, "f1": 0.05, "f2": 0.5}  # reference mean offsets (drift on these)
NOW = datetime(2025, 6, 1, tzinfo=UTC)
RANGE = (-4.0, 4.0)


def make_table(rows: int, seed: int, reference: bool) -> Any:
    """20 columns: id, ts, label, f0..f11 (float), c0..c4 (string); defects only in the current data."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    ids = np.arange(rows, dtype=np.int64)
    if not reference:
        dup = rng.choice(rows, rows // 1000, replace=False)
        ids[dup] = ids[(dup + 1) % rows]  # ~0.2% of rows share a key
    cols["id"] = ids
    cols["ts"] = pa.array((NOW - timedelta(hours=2)).timestamp() * 1e6 - rng.integers(0, 86_400_000_000, rows),
                          pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    label = rng.integers(0, 2, rows).astype(np.float64)
    if not reference:
        label[rng.choice(rows, rows // 2000, replace=False)] = 2
        label[rng.choice(rows, rows // 5000, replace=False)] = np.nan
    cols["label"] = pa.array(label, from_pandas=True).cast(pa.int64())
    for i, name in enumerate(NUMERIC):
        shift = SHIFTED.get(name, 0.0) if reference else 0.0
        values = rng.normal(shift, 1.0, rows) if i % 3 else rng.lognormal(0.0, 0.5, rows) - 1.5 + shift
        mask = None
        if not reference:
            values[rng.choice(rows, rows // 500, replace=False)] = rng.choice([-50.0, 99.0, 1e9], rows // 500)
            mask = np.zeros(rows, dtype=bool)
            mask[rng.choice(rows, rows // (100 + 50 * i), replace=False)] = True
        cols[name] = pa.array(values, mask=mask)
    for i, (name, cats) in enumerate(CATEGORIES.items()):
        dictionary = cats + ["UNKNOWN"]
        p = np.linspace(1, 2, len(cats))
        if reference and i == 0:
            p = p[::-1]
        idx = rng.choice(len(cats), rows, p=p / p.sum()).astype(np.int32)
        mask = None
        if not reference:
            idx[rng.choice(rows, rows // 1000, replace=False)] = len(cats)
            mask = np.zeros(rows, dtype=bool)
            mask[rng.choice(rows, rows // 800, replace=False)] = True
        cols[name] = pa.DictionaryArray.from_arrays(pa.array(idx, mask=mask), pa.array(dictionary))
    return pa.table(cols)


def contract() -> dict[str, Any]:
    columns: dict[str, Any] = {"id": {"type": "int", "nullable": False}, "ts": {"type": "timestamp"}}
    for name in NUMERIC:
        columns[name] = {"type": "float", "min": RANGE[0], "max": RANGE[1], "max_null_rate": 0.05}
    for name, cats in CATEGORIES.items():
        columns[name] = {"type": "string", "categories": cats, "max_null_rate": 0.01}
    return {"columns": columns, "key": ["id"], "label": {"column": "label", "values": [0, 1], "min_class_share": 0.2},
            "event_time": {"column": "ts", "max_age": "2d"}, "min_rows": 1000}


def generate(rows: int, directory: Path) -> tuple[Path, Path]:
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    current, reference = directory / "current.parquet", directory / "reference.parquet"
    if not current.exists():
        pq.write_table(make_table(rows, 42, False), current, compression="zstd", row_group_size=1 << 20)
    if not reference.exists():
        pq.write_table(make_table(max(1000, rows // 5), 43, True), reference, compression="zstd",
                       row_group_size=1 << 20)
    return current, reference


# --------------------------------------------------------------------------- the tools (child processes)


def run_scan(current: Path, reference: Path) -> dict[str, Any]:
    """One DuckDB pass reading every value of every column of both files."""
    import duckdb

    con = duckdb.connect()
    for path in (current, reference):
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall()]
        exprs = []
        for n in names:
            if n.startswith("c"):
                exprs.append(f"sum(length({n}))")
            elif n == "ts":
                exprs.append(f"sum(epoch_us({n}))")
            else:
                exprs.append(f"sum({n})")
        con.execute(f"SELECT {', '.join(exprs)} FROM '{path}'").fetchall()
    return {}


def run_gate(current: Path, reference: Path, mode: str) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from clearance.config.schema import DatasetRef
    from gates.base import GateInputs
    from gates.base import run_gate as run
    from tasks.datasets import locate_dataset

    refs = [DatasetRef(role="reference", uri=str(reference)), DatasetRef(role="eval", uri=str(current),
                                                                          contract=contract())]
    locators = {r.role: locate_dataset(r, compute_digest=False) for r in refs}
    inputs = GateInputs(model="bench", version="1",
                        manifest={"versions": {"1": {"datasets": [r.model_dump(mode="json") for r in refs]}}},
                        datasets=locators, extra={"evidence_dir": str(current.parent / f"evidence-{mode}"),
                                                  "now": NOW.isoformat()})
    result = run("data_check", inputs, {"ks_mode": mode})
    checks = {c.id: c for c in result.checks}
    if result.message.startswith("gate could not decide"):
        raise RuntimeError(result.message)
    counts: dict[str, Any] = {"unique_key": checks["unique_key:eval"].observed,
                              "label_values": checks["label_values:eval"].observed,
                              "label_nulls": checks["label_nulls:eval"].observed}
    for name in NUMERIC:
        counts[f"range:{name}"] = checks[f"range:eval:{name}"].observed
        counts[f"nulls:{name}"] = int(result.metrics[f"eval.{name}.nulls"])
        counts[f"psi:{name}"] = checks[f"psi:eval:{name}"].observed
        counts[f"ks:{name}"] = checks[f"ks:eval:{name}"].observed
    for name in CATEGORIES:
        counts[f"categories:{name}"] = checks[f"categories:eval:{name}"].observed
        counts[f"nulls:{name}"] = int(result.metrics[f"eval.{name}.nulls"])
    counts["status"] = result.status.value
    return counts


def numpy_psi(current: np.ndarray, reference: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float:
    edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
    c = np.bincount(np.searchsorted(edges, current, side="right"), minlength=edges.size + 1).astype(float)
    r = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1).astype(float)
    c, r = np.maximum(c / c.sum(), eps), np.maximum(r / r.sum(), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def run_ge(current: Path, reference: Path) -> dict[str, Any]:
    """Great Expectations 1.x on pandas: the same contract checks; drift with scipy + NumPy as a GE user would."""
    import logging

    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd
    from scipy.stats import ks_2samp

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    df = pd.read_parquet(current)
    ref = pd.read_parquet(reference)
    for name in CATEGORIES:
        df[name] = df[name].astype(object)
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("bench").add_dataframe_asset("current") \
        .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df})
    suite = gx.ExpectationSuite(name="contract")
    plan: list[tuple[str, Any]] = [("unique_key", gxe.ExpectColumnValuesToBeUnique(column="id")),
                                   ("label_values", gxe.ExpectColumnValuesToBeInSet(column="label", value_set=[0, 1])),
                                   ("label_nulls", gxe.ExpectColumnValuesToNotBeNull(column="label"))]
    for name in NUMERIC:
        plan.append((f"range:{name}", gxe.ExpectColumnValuesToBeBetween(column=name, min_value=RANGE[0],
                                                                         max_value=RANGE[1])))
        plan.append((f"nulls:{name}", gxe.ExpectColumnValuesToNotBeNull(column=name)))
    for name, cats in CATEGORIES.items():
        plan.append((f"categories:{name}", gxe.ExpectColumnValuesToBeInSet(column=name, value_set=cats)))
        plan.append((f"nulls:{name}", gxe.ExpectColumnValuesToNotBeNull(column=name)))
    plan.append(("freshness", gxe.ExpectColumnMaxToBeBetween(column="ts", min_value=NOW - timedelta(days=2))))
    for _, expectation in plan:
        suite.add_expectation(expectation)
    suite = context.suites.add(suite)
    results = batch.validate(suite, result_format="BASIC")
    counts: dict[str, Any] = {}
    for (key, _), res in zip(plan, results.results, strict=True):  # one result per expectation, in order
        if key != "freshness":
            counts[key] = int(res.result.get("unexpected_count", 0))
    for name in NUMERIC:
        cur = df[name].dropna().to_numpy()
        rv = ref[name].dropna().to_numpy()
        counts[f"psi:{name}"] = numpy_psi(cur, rv)
        counts[f"ks:{name}"] = float(ks_2samp(cur, rv, method="asymp").statistic)
    return counts


def _vm_hwm_mb() -> float:
    """Peak RSS of this process since exec (ru_maxrss would include the parent's pre-exec peak)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(tool: str) -> None:
    """Import what a tool needs (not timed: it is the same for any data size)."""
    if tool == "scan":
        import duckdb  # noqa: F401
    elif tool.startswith("gate"):
        sys.path.insert(0, str(ROOT))
        import gates.data_check  # noqa: F401
        import tasks.datasets  # noqa: F401
    elif tool == "ge":
        import great_expectations  # noqa: F401
        import great_expectations.expectations  # noqa: F401
        import pandas  # noqa: F401
        import scipy.stats  # noqa: F401


def child(tool: str, directory: Path) -> None:
    current, reference = directory / "current.parquet", directory / "reference.parquet"
    t0 = time.perf_counter()
    prepare(tool)
    imports = time.perf_counter() - t0
    started = time.perf_counter()
    if tool == "scan":
        counts = run_scan(current, reference)
    elif tool == "gate":
        counts = run_gate(current, reference, "exact")
    elif tool == "gate_bounded":
        counts = run_gate(current, reference, "bounded")
    elif tool == "ge":
        counts = run_ge(current, reference)
    else:
        raise SystemExit(f"unknown tool {tool}")
    seconds = time.perf_counter() - started
    peak = _vm_hwm_mb()
    print(json.dumps({"tool": tool, "seconds": seconds, "imports": imports, "peak_rss_mb": peak, "counts": counts}))


# --------------------------------------------------------------------------- driver


def compare(gate: dict[str, Any], other: dict[str, Any]) -> list[str]:
    problems = []
    for key, value in other.items():
        mine = gate.get(key)
        if key.startswith(("psi:", "ks:")):
            if mine is None or abs(mine - value) > 1e-9:
                problems.append(f"{key}: gate {mine} vs {value}")
        elif mine != value:
            problems.append(f"{key}: gate {mine} vs {value}")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows of the current dataset (repeatable)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/clearance-data-check-bench"))
    parser.add_argument("--tools", default="scan,gate,gate_bounded,ge")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool, interleaved; the median is reported")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir)
        return
    sizes = args.rows or [1_000_000]
    tools = args.tools.split(",")
    table = []
    for rows in sizes:
        directory = args.dir / str(rows)
        t0 = time.perf_counter()
        current, reference = generate(rows, directory)
        print(f"# {rows:,} rows: data ready in {time.perf_counter() - t0:.1f} s "
              f"({current.stat().st_size / 1e6:.0f} MB + {reference.stat().st_size / 1e6:.0f} MB)", flush=True)
        runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
        for _ in range(args.repeat):
            for tool in tools:
                out = subprocess.run([sys.executable, __file__, "--child", tool, "--dir", str(directory)],
                                     capture_output=True, text=True)
                if out.returncode:
                    print(f"  {tool}: FAILED\n{out.stderr[-3000:]}", flush=True)
                    continue
                res = json.loads(out.stdout.strip().splitlines()[-1])
                runs[tool].append(res)
                print(f"  {tool:13s} {res['seconds']:8.2f} s  {res['peak_rss_mb']:8.0f} MB  "
                      f"(imports {res['imports']:.2f} s)", flush=True)
        results = {}
        for tool, got in runs.items():
            if got:
                got = sorted(got, key=lambda r: r["seconds"])
                median = got[len(got) // 2]
                results[tool] = {**median, "all_seconds": [r["seconds"] for r in runs[tool]],
                                 "peak_rss_mb": max(r["peak_rss_mb"] for r in got)}
        if "gate" in results:
            for other in ("gate_bounded", "ge"):
                if other in results:
                    diff = compare(results["gate"]["counts"], results[other]["counts"])
                    if other == "gate_bounded":  # bounded KS is an upper limit; everything else must match
                        diff = [d for d in diff if not d.startswith("ks:")]
                    print(f"  gate vs {other}: " + ("same counts and PSI/KS" if not diff else "; ".join(diff[:8])))
            if "gate_bounded" in results:
                gaps = [results["gate_bounded"]["counts"][k] - results["gate"]["counts"][k]
                        for k in results["gate"]["counts"] if k.startswith("ks:")]
                print(f"  bounded KS - exact KS: max {max(gaps):.2e} (never negative: {min(gaps) >= -1e-12})")
        scan = results.get("scan", {}).get("seconds")
        for tool, res in results.items():
            table.append((rows, tool, res["seconds"], res["all_seconds"], res["imports"], res["peak_rss_mb"],
                          res["seconds"] / scan if scan else float("nan"),
                          results["ge"]["seconds"] / res["seconds"] if "ge" in results else float("nan")))
    print("\n| rows | tool | seconds (median) | all runs | imports s | peak RSS MB | × one scan | GE ÷ tool |"
          "\n|---:|---|---:|---|---:|---:|---:|---:|")
    for rows, tool, sec, runs_, imports, rss, vs_scan, ge_ratio in table:
        shown = " ".join(f"{x:.2f}" for x in runs_)
        print(f"| {rows:,} | {tool} | {sec:.2f} | {shown} | {imports:.2f} | {rss:.0f} | {vs_scan:.2f} "
              f"| {ge_ratio:.1f} |")


if __name__ == "__main__":
    main()
