"""Discrimination metrics for survival models (vectorised numpy).

* :func:`harrell_c` -- Harrell's concordance index (ties in risk count 1/2; pairs are
  comparable when the shorter time is an event; tied times are not comparable).
* :func:`uno_c` -- Uno et al. (2011) IPCW concordance, truncated at ``tau``.
* :func:`cumulative_dynamic_auc` -- time-dependent AUC(t), cumulative cases / dynamic
  controls, with inverse-probability-of-censoring weights (Uno et al. 2007;
  Hung & Chiang 2010).
* :func:`censoring_survival` -- Kaplan--Meier estimate of the censoring distribution G(t).
"""

from __future__ import annotations

import numpy as np

__all__ = ["harrell_c", "uno_c", "cumulative_dynamic_auc", "censoring_survival", "km_curve"]


def km_curve(time, event, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan--Meier survival at the distinct times of ``time``.

    Returns
    -------
    times : ndarray (k,) distinct times ascending
    surv : ndarray (k,) S(t) just after each time (right-continuous step function)
    """
    time = np.asarray(time, float)
    event = np.asarray(event, float)
    w = np.ones_like(time) if weights is None else np.asarray(weights, float)
    times, idx = np.unique(time, return_inverse=True)
    d = np.bincount(idx, weights=w * event, minlength=times.size)
    c = np.bincount(idx, weights=w, minlength=times.size)
    at_risk = np.cumsum(c[::-1])[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(at_risk > 0, 1.0 - d / at_risk, 1.0)
    return times, np.cumprod(factor)


def _step_eval(times: np.ndarray, values: np.ndarray, t: np.ndarray, *, left: bool) -> np.ndarray:
    """Evaluate a right-continuous step function at t (or its left limit with ``left``)."""
    side = "left" if left else "right"
    idx = np.searchsorted(times, t, side=side) - 1
    return np.where(idx >= 0, values[np.clip(idx, 0, None)], 1.0)


def censoring_survival(time, event, t, *, left: bool = True) -> np.ndarray:
    """G(t) = P(C > t) by Kaplan--Meier with censorings as the 'events'.

    ``left=True`` returns G(t-), the usual IPCW weight at an event time.
    """
    times, g = km_curve(time, 1 - np.asarray(event, float))
    return _step_eval(times, g, np.asarray(t, float), left=left)


def harrell_c(time, event, risk) -> float:
    """Harrell's C-index: P(risk_i > risk_j | T_i < T_j, i had the event).

    Parameters
    ----------
    time : (n,) follow-up time; event : (n,) 0/1; risk : (n,) higher = shorter survival.
    """
    time = np.asarray(time, float)
    event = np.asarray(event, bool)
    risk = np.asarray(risk, float)
    comp = event[:, None] & (time[:, None] < time[None, :])
    if not comp.any():
        return float("nan")
    diff = risk[:, None] - risk[None, :]
    conc = (diff > 0) + 0.5 * (diff == 0)
    return float(conc[comp].sum() / comp.sum())


def uno_c(time, event, risk, *, tau: float | None = None, train_time=None,
          train_event=None) -> float:
    """Uno's IPCW C-index truncated at ``tau``.

    Parameters
    ----------
    time, event, risk : (n,) arrays (test data).
    tau : float, optional
        Truncation time (default: the largest event time).
    train_time, train_event : optional
        Data for the censoring distribution G (default: the test data itself).

    Notes
    -----
    C = sum_ij d_i G(T_i-)^-2 I(T_i < T_j, T_i < tau) I(r_i > r_j) / sum_ij d_i G(T_i-)^-2 I(T_i < T_j, T_i < tau),
    ties in risk counted 1/2. Without censoring it equals Harrell's C.
    """
    time = np.asarray(time, float)
    event = np.asarray(event, bool)
    risk = np.asarray(risk, float)
    if tau is None:
        tau = time[event].max() if event.any() else np.inf
    gt = train_time if train_time is not None else time
    ge = train_event if train_event is not None else event
    g = censoring_survival(gt, ge, time, left=True)
    with np.errstate(divide="ignore"):
        wi = np.where(event & (time < tau) & (g > 0), 1.0 / np.maximum(g, 1e-12) ** 2, 0.0)
    comp = (time[:, None] < time[None, :]) * wi[:, None]
    if comp.sum() <= 0:
        return float("nan")
    diff = risk[:, None] - risk[None, :]
    conc = (diff > 0) + 0.5 * (diff == 0)
    return float((comp * conc).sum() / comp.sum())


def cumulative_dynamic_auc(time, event, risk, horizons, *, train_time=None,
                           train_event=None) -> np.ndarray:
    """Time-dependent AUC(t): cases T_i <= t with an event, controls T_j > t, IPCW.

    Parameters
    ----------
    time, event, risk : (n,) arrays.
    horizons : (h,) times at which to evaluate (same unit as ``time``).
    train_time, train_event : optional data for the censoring distribution.

    Returns
    -------
    ndarray (h,) AUC(t); NaN where there are no cases or no controls.

    Notes
    -----
    AUC(t) = sum_i sum_j w_i I(T_i <= t, d_i) I(T_j > t) I(r_i > r_j)
             / (sum_i w_i I(T_i <= t, d_i) * sum_j I(T_j > t)),  w_i = 1 / G(T_i-).
    Ties in risk count 1/2. Without censoring it is the ordinary AUROC of
    'event by t' against 'alive after t'.
    """
    time = np.asarray(time, float)
    event = np.asarray(event, bool)
    risk = np.asarray(risk, float)
    gt = train_time if train_time is not None else time
    ge = train_event if train_event is not None else event
    g = censoring_survival(gt, ge, time, left=True)
    w = np.where(g > 0, 1.0 / np.maximum(g, 1e-12), 0.0)
    diff = risk[:, None] - risk[None, :]
    conc = (diff > 0) + 0.5 * (diff == 0)
    out = []
    for t in np.atleast_1d(horizons):
        cases = event & (time <= t)
        controls = time > t
        if not cases.any() or not controls.any():
            out.append(np.nan)
            continue
        wc = w * cases
        num = (wc[:, None] * controls[None, :] * conc).sum()
        out.append(num / (wc.sum() * controls.sum()))
    return np.asarray(out, float)
