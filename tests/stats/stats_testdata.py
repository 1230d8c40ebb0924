"""Test data for the statistics tests: a small fixed dataset with R reference values
and a survival simulator with planted effects (imported by the test modules)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# 60 patients: time, event, x1, x2, grp (no tied times). Written once from numpy
# default_rng(42); R 4 / survival 3.5.3 / maxstat 0.7.25 values below were computed on
# exactly these literals.
R_DATA = (
    "0.1,1,0.3047,0.1858,1;0.8272,1,-1.04,0.7154,0;0.0417,1,0.7505,1.1767,2;"
    "0.1361,0,0.9406,1.7972,2;2.1056,0,-1.951,2.0365,0;0.7323,1,-1.3022,2.2108,0;"
    "0.0419,1,0.1278,0.7056,1;1.5667,0,-0.3162,0.6298,0;0.2104,0,-0.0168,2.3584,0;"
    "1.5738,0,-0.853,0.8259,0;0.1906,1,0.8794,0.2792,2;0.1727,0,0.7778,0.322,2;"
    "0.4108,0,0.066,0.3987,0;0.0423,1,1.1272,1.644,2;0.6044,0,0.4675,1.1531,1;"
    "0.3871,0,-0.8593,1.9947,0;0.6662,0,0.3688,0.6523,1;0.4768,1,-0.9589,1.1718,0;"
    "0.5319,1,0.8785,1.8693,2;0.2964,1,-0.0499,0.7339,0;0.0122,0,-0.1849,1.579,0;"
    "0.657,0,-0.6809,0.5159,0;0.2259,0,1.2225,0.6955,2;0.5884,1,-0.1545,0.6827,0;"
    "0.1599,0,-0.4283,0.3024,0;0.6043,1,-0.3521,1.6274,0;0.4223,1,0.5323,0.6254,1;"
    "0.0222,1,0.3654,1.0126,1;0.4357,0,0.4127,1.6173,1;1.8563,1,0.4308,1.5629,1;"
    "0.1297,1,2.1416,1.9452,2;2.595,0,-0.4064,0.9062,0;0.2406,1,-0.5122,0.6549,0;"
    "0.4992,0,-0.8138,0.9234,0;0.2367,1,0.616,0.185,1;0.3034,1,1.129,0.2352,2;"
    "0.9744,0,-0.1139,0.2664,0;0.2285,1,-0.8402,0.3689,0;0.3401,1,-0.8245,1.4915,0;"
    "0.8514,1,0.6506,0.4043,1;0.5839,1,0.7433,0.6851,1;0.1969,1,0.5432,3.6665,1;"
    "0.0517,0,-0.6655,0.7003,0;0.6374,1,0.2322,2.0907,1;1.7507,1,0.1167,0.3931,0;"
    "0.3075,1,0.2187,0.8143,1;0.3596,0,0.8714,0.3867,2;0.3029,1,0.2236,0.7125,1;"
    "0.1892,1,0.6789,2.3171,1;0.4889,0,0.0676,0.1778,0;0.4546,1,0.2891,1.5441,1;"
    "0.861,1,0.6313,1.2684,1;0.5982,0,-1.4572,0.552,0;0.2327,1,-0.3197,0.2355,0;"
    "0.0906,0,-0.4704,1.0748,0;0.0558,0,-0.6389,0.5889,0;1.1528,1,-0.2751,1.262,0;"
    "0.417,1,1.4949,1.0221,2;0.9091,0,-0.8658,4.9619,0;0.5544,1,0.9683,0.7871,2"
)

#: survival::coxph(Surv(time, event) ~ scale(x), ties = "breslow")
#: -> coef, se, Wald p, exp(confint) low, high
R_COX = {
    "x1": (0.6573683493, 0.2007070035, 0.00105563411, 1.302114981, 2.859786145),
    "x2": (-0.08809436147, 0.1739443812, 0.6125398552, 0.6511475026, 1.28766482),
}
#: survival::cox.zph(fit, transform = "km") -> chisq, p (R >= 3.0 uses a score test; the
#: Grambsch-Therneau approximation agrees only approximately)
R_ZPH_KM = {"x1": (0.000184253752, 0.9891698394), "x2": (0.161144029, 0.688105414)}
#: summary(survfit(Surv(time, event) ~ 1), times = c(0.25, 0.5, 1.0))$surv
R_KM = ((0.25, 0.7592179428), (0.5, 0.5697834463), (1.0, 0.2885243308))
#: survdiff(Surv(time, event) ~ grp): chisq (2 df), p
R_LOGRANK = (14.31296848, 0.000779791298)
#: maxstat.test(Surv(time, event) ~ x1, smethod = "LogRank", pmethod = "Lau92" / "Lau94")
#: -> estimate (cutpoint), statistic, p
R_MAXSTAT = {"Lau92": (0.1167, 3.254715631, 0.02833697151),
             "Lau94": (0.1167, 3.254715631, 0.02294472861)}
#: With tt = round(time, 1) + 0.1 (tied times): coxph(Surv(tt, event) ~ scale(x1),
#: ties = "breslow") coef, se; survfit at 0.3, 0.6, 1.1; survdiff chisq by grp
R_TIED = {"coef": 0.6081623612, "se": 0.1981139261,
          "km": ((0.3, 0.8993939394), (0.6, 0.5590217969), (1.1, 0.302379972)),
          "logrank_chisq": 12.82669415}




def parse_r_data() -> pd.DataFrame:
    """The fixed 60-patient dataset of the R references."""
    rows = [r.split(",") for r in "".join(R_DATA).split(";")]
    df = pd.DataFrame(rows, columns=["time", "event", "x1", "x2", "grp"]).astype(float)
    df["event"] = df["event"].astype(int)
    df["grp"] = df["grp"].astype(int)
    return df


def simulate_cohort(n: int = 300, p_noise: int = 20, seed: int = 0,
                    beta: tuple[float, float] = (0.8, -0.6), n_copies: int = 1,
                    label_effect: float = 1.5):
    """Cox data with a harmful log-normal marker, a protective normal marker, correlated
    copies of the harmful marker, noise features and a binary label driven by one noise-free
    diagnostic marker.

    Returns
    -------
    X : DataFrame; time, event : arrays; lp : true linear predictor; y : label
    """
    rng = np.random.default_rng(seed)
    s1, s2, s3 = rng.normal(size=(3, n))
    cols = {"harm": np.exp(s1), "prot": s2, "diag": s3}
    for c in range(n_copies):
        cols[f"harm_copy{c}"] = np.exp(s1 + 0.05 * rng.normal(size=n))
    for j in range(p_noise):
        cols[f"noise{j}"] = rng.normal(size=n)
    lp = beta[0] * s1 + beta[1] * s2
    t_event = rng.exponential(np.exp(-lp))
    t_cens = rng.uniform(0, 3, size=n)
    time = np.minimum(t_event, t_cens)
    event = (t_event <= t_cens).astype(int)
    y = (rng.random(n) < 1 / (1 + np.exp(-label_effect * s3))).astype(int)
    return pd.DataFrame(cols), time, event, lp, y
