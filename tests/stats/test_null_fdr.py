"""Quick null calibration: with the outcome independent of the features, BH keeps the
share of runs with any q < 0.05 near 5 % (the full-size check is benchmarks/null_fdr.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "null_fdr.py"


def _load():
    spec = importlib.util.spec_from_file_location("null_fdr", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_null_any_discovery_rate_is_controlled():
    mod = _load()
    res = mod.run(reps=60, n=120, p=30, full=False, seed0=1000)
    # nominal 5 %; with 60 runs the 99 % binomial upper limit of a true 5 % is ~15 %
    assert res["share_any_q_below_0.05"] <= 0.15
