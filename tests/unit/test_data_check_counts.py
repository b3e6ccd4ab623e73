"""The gate's defect counts equal a second, independent implementation (pandas) on generated data."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy.stats import ks_2samp

BENCH = Path(__file__).resolve().parents[2] / "bench" / "data_check_bench.py"
spec = importlib.util.spec_from_file_location("data_check_bench", BENCH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return bench.generate(60_000, tmp_path_factory.mktemp("gen"))


def pandas_counts(current: Path, reference: Path) -> dict[str, float]:
    df, ref = pd.read_parquet(current), pd.read_parquet(reference)
    out: dict[str, float] = {"unique_key": int(df["id"].duplicated(keep=False).sum()),
                             "label_nulls": int(df["label"].isna().sum()),
                             "label_values": int((df["label"].notna() & ~df["label"].isin([0, 1])).sum())}
    lo, hi = bench.RANGE
    for name in bench.NUMERIC:
        s = df[name]
        out[f"nulls:{name}"] = int(s.isna().sum())
        out[f"range:{name}"] = int(((s < lo) | (s > hi)).sum())
        cur, rv = s.dropna().to_numpy(), ref[name].dropna().to_numpy()
        out[f"psi:{name}"] = bench.numpy_psi(cur, rv)
        out[f"ks:{name}"] = float(ks_2samp(cur, rv, method="asymp").statistic)
    for name, cats in bench.CATEGORIES.items():
        s = df[name].astype(object)
        out[f"nulls:{name}"] = int(s.isna().sum())
        out[f"categories:{name}"] = int((s.notna() & ~s.isin(cats)).sum())
    return out


@pytest.mark.parametrize("mode", ["exact", "bounded"])
def test_defect_counts_match_pandas(generated: tuple[Path, Path], mode: str) -> None:
    current, reference = generated
    got = bench.run_gate(current, reference, mode)
    want = pandas_counts(current, reference)
    assert got["unique_key"] > 0 and got["label_values"] > 0  # the defects were injected
    for key, value in want.items():
        if key.startswith("ks:") and mode == "bounded":
            assert got[key] >= value - 1e-12, key  # bounded mode reports an upper limit
        elif key.startswith(("psi:", "ks:")):
            assert got[key] == pytest.approx(value, abs=1e-9), key
        else:
            assert got[key] == value, key
    assert got["status"] == "fail"


@pytest.mark.parametrize("arrow_type", [pa.int8(), pa.int64(), pa.uint8(), pa.uint64()])
def test_integer_value_counts_equal_arrow_hashing(arrow_type: pa.DataType) -> None:
    """The counting path for small integer spans (labels) equals pyarrow's hash-based value_counts,
    including nulls, narrow types at their limits and a span too wide to count."""
    from gates.data_check.checks import value_counts

    info = np.iinfo(arrow_type.to_pandas_dtype())
    rng = np.random.default_rng(5)
    edge = [int(info.min), int(info.max), int(info.min) + 1]
    values = [*edge, *rng.integers(max(info.min, -3), min(info.max, 4), 2_000).tolist(), None, None]
    chunked = pa.chunked_array([pa.array(values[:700], arrow_type), pa.array(values[700:], arrow_type)])
    hashed = pc.value_counts(chunked)
    want = {v: c for v, c in zip(hashed.field("values").to_pylist(), hashed.field("counts").to_pylist(), strict=True)
            if v is not None}
    assert value_counts(chunked) == want
