"""Wall time of the full statistics stage: 500 patients x 100 features, 200 bootstraps.

Runs :func:`pathxai.stats.analyze` (univariable Cox screen, nested-CV elastic-net Cox with
held-out SHAP and 200-replicate optimism bootstrap, diagnostic logistic + gradient
boosting with SHAP, biomarker table, figures) on simulated data with planted effects and
prints the time per part. Target: <= 30 s on 2 CPU cores.

``--primary`` declares pre-specified primary features (names/fnmatch patterns, as
``pathxai analyze --primary``); the two-family BH and the cluster ranking add well under
a second.

Usage: python benchmarks/bench_stats.py [--n 500] [--p 100] [--n-bootstrap 200] [--no-label]
    [--primary feature_001,feature_00[23]]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np
import pandas as pd


def make_data(n: int, p: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    for b in range(10, 40, 5):  # correlated blocks
        X[:, b:b + 5] += 2 * rng.normal(size=(n, 1))
    X[:, 1] = np.exp(X[:, 1])
    lp = 0.7 * np.log(X[:, 1]) - 0.5 * X[:, 2]
    t_ev = rng.exponential(np.exp(-lp))
    t_c = rng.uniform(0, 3, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-1.2 * X[:, 3]))).astype(int)
    ids = [f"P{i:04d}" for i in range(n)]
    feats = pd.DataFrame(X, columns=[f"feature_{j:03d}" for j in range(p)]).assign(pid=ids)
    clin = pd.DataFrame({"pid": ids, "time": np.minimum(t_ev, t_c),
                         "event": (t_ev <= t_c).astype(int), "label": y})
    return feats, clin


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--p", type=int, default=100)
    ap.add_argument("--n-bootstrap", type=int, default=200)
    ap.add_argument("--no-label", action="store_true")
    ap.add_argument("--primary", default="none", help="primary features (default none)")
    a = ap.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    from pathxai.stats import analyze
    from pathxai.stats.families import parse_primary_option

    feats, clin = make_data(a.n, a.p)
    t0 = time.perf_counter()
    c0 = time.process_time()
    with tempfile.TemporaryDirectory() as out:
        res = analyze(feats, clin, id_col="pid", time_col="time", event_col="event",
                      label_col=None if a.no_label else "label", n_bootstrap=a.n_bootstrap,
                      seed=0, out_dir=out, primary_features=parse_primary_option(a.primary))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    c = res.multivariable["harrell_c"]
    print(f"{a.n} patients x {a.p} features, {a.n_bootstrap} bootstraps, "
          f"label={'no' if a.no_label else 'yes'}, cpus={os.cpu_count()}")
    for k, v in res.params["timings"].items():
        print(f"  {k:>14}: {v:6.1f}")
    print(f"wall time incl. saving: {wall:.1f} s (target <= 30 s); CPU time {cpu:.1f} s; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"out-of-fold Harrell C {c['estimate']:.3f} ({c['ci_low']:.3f}-{c['ci_high']:.3f}); "
          f"top 3: {', '.join(res.biomarkers['feature'].head(3))} "
          f"({', '.join(res.biomarkers['family'].head(3))})")


if __name__ == "__main__":
    main()
