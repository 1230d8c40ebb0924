"""Null calibration of the biomarker screen: outcome independent of the features.

Repeats the analysis on data where survival (and the label) are independent of every
feature and prints the share of runs in which any feature reaches q < 0.05 (BH across
features). With correct FDR control under the global null this family-wise share is at
most ~5 %. Default: univariable screen only (fast); ``--full`` also runs the whole
:func:`pathxai.stats.analyze` and counts tier-1 calls.

``--primary K`` declares the first K features (correlated and skewed ones among them) a
pre-specified primary family: BH is then applied within the primary and within the
exploratory family (:func:`pathxai.stats.families.family_qvalues`, the code path of
``analyze(primary_features=...)``), and the share of runs with any q < 0.05 is reported
per family (each should stay near or under 5 %) and overall (at most ~2 x 5 %).

Usage: python benchmarks/null_fdr.py [--reps 200] [--n 200] [--p 50] [--full] [--primary K]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from pathxai.stats import analyze, univariable_cox
from pathxai.stats.families import family_qvalues


def null_data(n: int, p: int, seed: int, correlated: bool = True):
    """Features (half of them in correlated blocks) and an independent outcome."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    if correlated:  # blocks of 5 features sharing a factor (rho ~ 0.5)
        for b in range(0, p // 2, 5):
            X[:, b:b + 5] += rng.normal(size=(n, 1))
    X[:, ::3] = np.exp(X[:, ::3])  # some skewed features
    t_ev = rng.exponential(1.0, n)
    t_c = rng.uniform(0, 2.5, n)
    time_ = np.minimum(t_ev, t_c)
    event = (t_ev <= t_c).astype(int)
    label = rng.integers(0, 2, n)
    cols = [f"f{j:03d}" for j in range(p)]
    return pd.DataFrame(X, columns=cols), time_, event, label


def run(reps: int, n: int, p: int, full: bool, seed0: int = 0,
        n_primary: int = 0) -> dict[str, float]:
    """Share of null runs with any q < 0.05: overall and, with ``n_primary``, per family."""
    if not 0 <= n_primary <= p:
        raise ValueError(f"n_primary={n_primary} must be between 0 and p={p}")
    family = np.array(["primary"] * n_primary + ["exploratory"] * (p - n_primary), dtype=object)
    any_q = 0
    any_fam = {"primary": 0, "exploratory": 0}
    tier1 = 0
    for r in range(reps):
        X, t, e, y = null_data(n, p, seed0 + r)
        if full:
            ids = [f"P{i}" for i in range(n)]
            res = analyze(X.assign(pid=ids), pd.DataFrame({"pid": ids, "t": t, "e": e, "y": y}),
                          id_col="pid", time_col="t", event_col="e", label_col="y",
                          seed=r, n_bootstrap=50, inner_folds=3, figures=False,
                          primary_features=list(X.columns[:n_primary]) or None)
            b = res.biomarkers
            q = np.fmin(b["q"].to_numpy(float), b["q_label"].to_numpy(float))
            fam = b["family"].to_numpy(object)
            tier1 += int((b["tier"] == 1).any())
        else:
            pv = univariable_cox(X, t, e, skew_transform="auto_log").summary["p"].to_numpy(float)
            q = family_qvalues(pv, family)
            fam = family
        hit = np.nan_to_num(q, nan=1.0) < 0.05
        any_q += int(hit.any())
        for f in any_fam:
            any_fam[f] += int(hit[fam == f].any())
    out = {"reps": reps, "share_any_q_below_0.05": any_q / reps}
    if n_primary:
        out["share_any_q_below_0.05_primary"] = any_fam["primary"] / reps
        out["share_any_q_below_0.05_exploratory"] = any_fam["exploratory"] / reps
    if full:
        out["share_any_tier1"] = tier1 / reps
    return out


def _line(label: str, share: float, reps: int, target: str) -> str:
    se = np.sqrt(max(share * (1 - share), 1e-12) / reps)
    return f"{label}: {share:.3f} (+/- {1.96 * se:.3f}, 95 % CI half-width; SE {se:.3f}; {target})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--p", type=int, default=50)
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--primary", type=int, default=0, metavar="K",
                    help="the first K features form a pre-specified primary family")
    ap.add_argument("--seed0", type=int, default=0)
    a = ap.parse_args()
    t0 = time.perf_counter()
    res = run(a.reps, a.n, a.p, a.full, seed0=a.seed0, n_primary=a.primary)
    print(f"null data: {a.reps} runs x {a.n} patients x {a.p} features "
          f"({'full analysis' if a.full else 'univariable screen'}"
          f"{f'; primary family = first {a.primary} features' if a.primary else ''})")
    print(_line("share of runs with any q < 0.05", res["share_any_q_below_0.05"], a.reps,
                "target <= 0.05" if not a.primary else "two families: target <= ~0.10"))
    if a.primary:
        for fam in ("primary", "exploratory"):
            print(_line(f"  within the {fam} family", res[f"share_any_q_below_0.05_{fam}"],
                        a.reps, "target <= 0.05"))
    if a.full:
        print(f"share of runs with any tier-1 biomarker: {res['share_any_tier1']:.3f}")
    print(f"wall time {time.perf_counter() - t0:.1f} s")

if __name__ == "__main__":
    main()
