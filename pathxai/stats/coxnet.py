"""Fast Cox proportional-hazards fitting in numpy: batched and vectorised.

Two solvers share one definition of the partial likelihood (Breslow ties, optional case
weights, which also express bootstrap resamples and cross-validation folds):

* :func:`fit_cox_newton` -- unpenalised Newton-Raphson for many small problems at once
  (e.g. one univariable model per feature), with standard errors from the observed
  information; matches ``survival::coxph(..., ties = "breslow")``.
* :func:`fit_coxnet_path` -- elastic-net penalised Cox by accelerated proximal gradient
  (FISTA with backtracking and adaptive restart), warm-started along a penalty path and
  batched over folds / bootstrap replicates; :class:`CoxNet` wraps it as a scikit-learn
  estimator.

Objective (the glmnet / lifelines convention)::

    (1 / sum(w)) * NLL(beta) + lambda * (l1_ratio * |beta|_1 + (1 - l1_ratio) / 2 * |beta|_2^2)

where ``NLL`` is the negative Breslow log partial likelihood with case weights ``w``.
With ``w = 1`` and no tied event times this is the objective of
``lifelines.CoxPHFitter(penalizer=lambda, l1_ratio=l1_ratio)`` (on standardised columns).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_array, check_is_fitted

from pathxai.exceptions import StatsInputError

__all__ = [
    "CoxData",
    "CoxNet",
    "cox_loss_grad",
    "fit_cox_newton",
    "fit_coxnet_path",
    "lambda_max",
    "breslow_baseline",
    "split_survival_target",
]


def split_survival_target(y) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(time, event)`` from a survival target.

    Parameters
    ----------
    y : array-like of shape (n, 2) or structured array with fields (event, time)
        Column 0 = time (any unit, > 0), column 1 = event indicator (1 = event, 0 = censored).

    Returns
    -------
    time : ndarray (n,) float
    event : ndarray (n,) bool
    """
    if isinstance(y, np.ndarray) and y.dtype.names:
        names = y.dtype.names
        ev_name = next((n for n in names if y.dtype[n].kind == "b"), names[0])
        t_name = next(n for n in names if n != ev_name)
        return np.asarray(y[t_name], float), np.asarray(y[ev_name], bool)
    arr = np.asarray(y, dtype=float)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise StatsInputError(
            f"survival target must have shape (n, 2) = [time, event]; got shape {arr.shape}"
        )
    time, event = arr[:, 0], arr[:, 1]
    if not np.all(np.isfinite(time)):
        raise StatsInputError("survival times contain NaN/inf; remove or fix those patients first")
    if not np.all(np.isin(event, (0.0, 1.0))):
        raise StatsInputError(f"event indicator must be 0/1; got values {np.unique(event)[:5]}")
    return time, event.astype(bool)


@dataclass(frozen=True)
class CoxData:
    """Survival outcome sorted by time, with tie structure (shared by every fit).

    Attributes
    ----------
    order : ndarray (n,) int
        Permutation that sorts the original rows by ascending time.
    time, event : ndarray (n,)
        Sorted times and 0/1 events (float).
    first, last : ndarray (n,) int
        For each sorted row, the first / last sorted index with the same time (Breslow ties).
    """

    order: np.ndarray
    time: np.ndarray
    event: np.ndarray
    first: np.ndarray
    last: np.ndarray

    @classmethod
    def from_arrays(cls, time, event) -> CoxData:
        time = np.asarray(time, float)
        event = np.asarray(event, float)
        order = np.argsort(time, kind="mergesort")
        ts = time[order]
        first = np.searchsorted(ts, ts, side="left")
        last = np.searchsorted(ts, ts, side="right") - 1
        return cls(order, ts, event[order], first, last)


def _revcumsum(a: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.flip(np.cumsum(np.flip(a, axis), axis), axis)


def cox_loss_grad(eta: np.ndarray, w: np.ndarray, data: CoxData, *, grad: bool = True):
    """Weighted mean negative Breslow log partial likelihood and its gradient in ``eta``.

    Parameters
    ----------
    eta : ndarray (..., n)
        Linear predictors in *sorted* row order (``data.order``).
    w : ndarray (..., n) or (n,)
        Non-negative case weights in sorted order (0 = row not in this fit).
    data : CoxData

    Returns
    -------
    loss : ndarray (...)
    g_eta : ndarray (..., n) or None
    """
    m = eta.max(axis=-1, keepdims=True)
    e = w * np.exp(eta - m)
    s = _revcumsum(e)[..., data.first]
    s = np.maximum(s, 1e-300)
    wd = w * data.event
    wsum = np.sum(w, axis=-1)
    loss = -np.sum(wd * (eta - np.log(s) - m), axis=-1) / wsum
    if not grad:
        return loss, None
    r = np.cumsum(wd / s, axis=-1)[..., data.last]
    g = -(wd - e * r) / wsum[..., None]
    return loss, g


def lambda_max(X: np.ndarray, w: np.ndarray, data: CoxData, l1_ratio: float,
               penalty_factor: np.ndarray | None = None) -> np.ndarray:
    """Smallest penalty with all coefficients zero, per batch element.

    Parameters
    ----------
    X : ndarray (B, n, p) in sorted row order
    w : ndarray (B, n)

    Returns
    -------
    ndarray (B,)
    """
    _, g = cox_loss_grad(np.zeros(w.shape), w, data)
    grad = np.einsum("bn,bnp->bp", g, X)
    if penalty_factor is not None:
        pf = np.asarray(penalty_factor, float)
        grad = np.where(pf > 0, np.abs(grad) / np.where(pf > 0, pf, 1.0), 0.0)
    return np.max(np.abs(grad), axis=-1) / max(l1_ratio, 1e-3)


def fit_coxnet_path(
    X: np.ndarray,
    w: np.ndarray,
    data: CoxData,
    lambdas: np.ndarray,
    *,
    l1_ratio: float = 0.5,
    beta0: np.ndarray | None = None,
    penalty_factor: np.ndarray | None = None,
    max_iter: int = 2000,
    tol: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Elastic-net Cox along a decreasing penalty path, batched over B problems.

    Parameters
    ----------
    X : ndarray (B, n, p) or (n, p)
        Features in sorted row order (``data.order``); (n, p) is shared by every problem.
        Columns that should stay out of a problem can simply be all zero there.
    w : ndarray (B, n)
        Case weights (0 = row excluded: test fold; k = bootstrap multiplicity).
    data : CoxData
    lambdas : ndarray (L,) or (B, L)
        Penalties, decreasing along the last axis; solved in that order with warm starts.
    l1_ratio : float in [0, 1]
    beta0 : ndarray (B, p), optional
        Warm start for the first penalty.
    penalty_factor : ndarray (p,), optional
        Per-column multiplier of the penalty (0 = unpenalised, e.g. clinical covariates).
    max_iter, tol : FISTA iteration cap per penalty and max |change| tolerance.

    Returns
    -------
    betas : ndarray (B, L, p)
    n_iter : ndarray (L,) iterations used per penalty (max over batch).
    """
    w = np.atleast_2d(np.asarray(w, float))
    B, n = w.shape
    shared = X.ndim == 2
    p = X.shape[-1]
    XT = np.ascontiguousarray(np.swapaxes(X, -1, -2))  # (B, p, n) or (p, n)
    lambdas = np.asarray(lambdas, float)
    if lambdas.ndim == 1:
        lambdas = np.broadcast_to(lambdas, (B, lambdas.size))
    L = lambdas.shape[1]

    def eta_of(beta):  # (B, p) -> (B, n)
        if shared:
            return beta @ XT
        return np.matmul(beta[:, None, :], XT)[:, 0]

    def grad_of(g):  # (B, n) -> (B, p)
        if shared:
            return g @ X
        return np.matmul(g[:, None, :], X)[:, 0]

    # initial step from the curvature scale of the data (backtracking corrects it)
    sq = (X**2).sum(-1) if shared else np.einsum("bnp,bnp->bn", X, X)
    wsum = w.sum(-1)
    curv = (w * sq).sum(-1) / wsum if not shared else (w * sq[None, :]).sum(-1) / wsum
    # initial step ~ 2 / (mean squared entry): optimistic on purpose, backtracking shrinks it
    step = 2.0 / np.maximum(curv / max(p, 1), 1e-8)

    beta = np.zeros((B, p)) if beta0 is None else np.array(beta0, float)
    out = np.empty((B, L, p))
    iters = np.zeros(L, int)
    for li in range(L):
        lam = lambdas[:, li][:, None]
        pf = np.ones((1, p)) if penalty_factor is None else np.asarray(penalty_factor,
                                                                             float).reshape(1, p)
        l1 = lam * l1_ratio * pf
        l2 = lam * (1.0 - l1_ratio) * pf

        def penalty(b, l1=l1, l2=l2):
            return (l1 * np.abs(b)).sum(-1) + 0.5 * (l2 * b**2).sum(-1)

        def prox(v, s, l1=l1, l2=l2):
            s = s[:, None]
            return np.sign(v) * np.maximum(np.abs(v) - s * l1, 0.0) / (1.0 + s * l2)

        eta_x = eta_of(beta)
        f_x, _ = cox_loss_grad(eta_x, w, data, grad=False)
        obj_x = f_x + penalty(beta)
        y, eta_y = beta.copy(), eta_x.copy()
        t = np.ones(B)
        it = 0
        for it in range(1, max_iter + 1):  # noqa: B007
            f_y, g_eta = cox_loss_grad(eta_y, w, data)
            gy = grad_of(g_eta)
            for _ in range(40):
                cand = prox(y - step[:, None] * gy, step)
                eta_c = eta_of(cand)
                f_c, _ = cox_loss_grad(eta_c, w, data, grad=False)
                d = cand - y
                bound = f_y + (gy * d).sum(-1) + (d**2).sum(-1) / (2 * step) + 1e-12
                bad = f_c > bound
                if not bad.any():
                    break
                step = np.where(bad, step * 0.5, step)
            obj_c = f_c + penalty(cand)
            restart = obj_c > obj_x  # adaptive restart (O'Donoghue & Candes 2015)
            change = np.max(np.abs(cand - beta), axis=-1)
            x_prev, eta_prev = beta, eta_x
            beta, eta_x, obj_x = cand, eta_c, obj_c
            if np.all(change < tol):
                break
            t_new = 0.5 * (1 + np.sqrt(1 + 4 * t * t))
            mom = np.where(restart, 0.0, (t - 1) / t_new)[:, None]
            y = beta + mom * (beta - x_prev)
            eta_y = eta_x + mom * (eta_x - eta_prev)  # X is linear: no extra product
            t = np.where(restart, 1.0, t_new)
        out[:, li] = beta
        iters[li] = it
    return out, iters


def fit_cox_newton(
    X: np.ndarray,
    w: np.ndarray,
    data: CoxData,
    *,
    max_iter: int = 50,
    tol: float = 1e-9,
    max_abs_beta: float = 15.0,
) -> dict[str, np.ndarray]:
    """Unpenalised Cox models by Newton-Raphson, batched over B problems.

    Parameters
    ----------
    X : ndarray (B, n, d) in sorted row order
    w : ndarray (B, n)
        Case weights (0 drops a row, e.g. a missing feature value).
    data : CoxData
    max_iter, tol : Newton cap and log-likelihood change tolerance.
    max_abs_beta : float
        A coefficient larger than this (per unit of X) is reported as non-convergence
        (monotone likelihood / separation: the MLE is infinite).

    Returns
    -------
    dict with ``beta`` (B, d), ``se`` (B, d), ``cov`` (B, d, d), ``loglik`` (B,) (sum, not mean),
    ``loglik0`` (B,) at beta = 0, ``n_iter`` (B,), ``converged`` (B,) bool,
    ``message`` (B,) object (why a problem failed, '' if it did not).
    """
    X = np.asarray(X, float)
    B, n, d = X.shape
    w = np.asarray(w, float)
    wd = w * data.event

    def parts(beta):
        eta = np.einsum("bnd,bd->bn", X, beta)
        m = eta.max(-1, keepdims=True)
        e = w * np.exp(eta - m)
        s0 = np.maximum(_revcumsum(e)[:, data.first], 1e-300)
        s1 = _revcumsum(e[..., None] * X, axis=1)[:, data.first]
        s2 = _revcumsum(e[..., None, None] * X[..., :, None] * X[..., None, :], axis=1)[
            :, data.first
        ]
        xbar = s1 / s0[..., None]
        ll = np.sum(wd * (eta - np.log(s0) - m), -1)
        g = np.einsum("bn,bnd->bd", wd, X - xbar)
        info = np.einsum("bn,bnde->bde", wd, s2 / s0[..., None, None]) - np.einsum(
            "bn,bnd,bne->bde", wd, xbar, xbar
        )
        return ll, g, info, xbar

    beta = np.zeros((B, d))
    ll, g, info, _ = parts(beta)
    ll0 = ll.copy()
    converged = np.zeros(B, bool)
    n_iter = np.zeros(B, int)
    message = np.array([""] * B, dtype=object)
    active = np.ones(B, bool)
    for it in range(1, max_iter + 1):
        reg = info + 1e-12 * np.eye(d)
        try:
            delta = np.linalg.solve(reg, g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            delta = np.stack([np.linalg.lstsq(r, gg, rcond=None)[0] for r, gg in zip(reg, g)])
        delta = np.where(active[:, None], delta, 0.0)
        new = beta + delta
        ll_new, g_new, info_new, _ = parts(new)
        # step halving where the likelihood went down
        for _ in range(20):
            worse = active & ~(ll_new >= ll - 1e-12)
            if not worse.any():
                break
            delta = np.where(worse[:, None], delta * 0.5, delta)
            new = beta + delta
            ll_new, g_new, info_new, _ = parts(new)
        done = active & (np.abs(ll_new - ll) < tol * (1 + np.abs(ll)))
        beta, ll, g, info = new, ll_new, g_new, info_new
        n_iter[active] = it
        converged |= done
        active &= ~done
        runaway = active & (np.abs(beta).max(-1) > max_abs_beta)
        active &= ~runaway
        message[runaway] = (
            "coefficient diverges (monotone likelihood: the feature separates events)"
        )
        if not active.any():
            break
    message[active] = f"did not converge in {max_iter} Newton iterations"
    bad_info = ~np.all(np.isfinite(info), axis=(1, 2))
    with np.errstate(invalid="ignore"):
        try:
            cov = np.linalg.inv(info)
        except np.linalg.LinAlgError:
            cov = np.stack([np.linalg.pinv(i) for i in info])
    se = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None))
    fail = ~converged | bad_info | ~np.all(np.isfinite(beta), -1) | ~np.all(se > 0, -1)
    for b in np.flatnonzero(fail & (message == "")):
        message[b] = "singular information matrix (no variation among events?)"
    converged &= ~fail
    return {
        "beta": beta,
        "se": se,
        "cov": cov,
        "loglik": ll,
        "loglik0": ll0,
        "n_iter": n_iter,
        "converged": converged,
        "message": message,
    }


def breslow_baseline(eta: np.ndarray, data: CoxData, w: np.ndarray | None = None):
    """Breslow estimate of the cumulative baseline hazard at the distinct event times.

    Parameters
    ----------
    eta : ndarray (n,) linear predictor in sorted row order.
    data : CoxData
    w : ndarray (n,), optional case weights.

    Returns
    -------
    times : ndarray (k,) distinct event times (ascending)
    cumhaz : ndarray (k,) H0 at those times (for eta = 0)
    """
    w = np.ones_like(eta) if w is None else w
    e = w * np.exp(eta)
    s = _revcumsum(e)[data.first]
    wd = w * data.event
    dh = np.where(wd > 0, wd / np.maximum(s, 1e-300), 0.0)
    times, idx = np.unique(data.time, return_inverse=True)
    inc = np.bincount(idx, weights=dh, minlength=times.size)
    keep = inc > 0
    return times[keep], np.cumsum(inc)[keep]


class CoxNet(BaseEstimator):
    """Elastic-net Cox proportional-hazards model (scikit-learn estimator).

    Parameters
    ----------
    alpha : float
        Penalty strength ``lambda`` (per observation, glmnet/lifelines convention).
    l1_ratio : float in [0, 1]
        Share of the L1 penalty (1 = lasso, 0 = ridge).
    max_iter, tol : solver settings (FISTA iterations and coefficient tolerance).

    Attributes
    ----------
    coef_ : ndarray (p,)
        Log hazard ratios per unit of each input column.
    baseline_times_, baseline_cumhaz_ : ndarray
        Breslow cumulative baseline hazard at the training event times (for eta = 0).
    n_iter_ : int

    Notes
    -----
    ``y`` is an (n, 2) array ``[time, event]`` (see :func:`split_survival_target`).
    ``predict`` returns the log partial hazard ``X @ coef_`` (higher = higher risk);
    ``score`` returns Harrell's C-index.
    """

    def __init__(self, alpha: float = 0.05, l1_ratio: float = 0.5, max_iter: int = 3000,
                 tol: float = 1e-7):
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y, sample_weight=None):
        X = check_array(X, dtype=float)
        time, event = split_survival_target(y)
        if event.sum() < 1:
            raise StatsInputError("CoxNet.fit: no events in y (all censored)")
        data = CoxData.from_arrays(time, event)
        Xs = X[data.order]
        w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, float)
        w = w[data.order][None, :]
        betas, it = fit_coxnet_path(Xs, w, data, np.array([self.alpha]), l1_ratio=self.l1_ratio,
                                    max_iter=self.max_iter, tol=self.tol)
        self.coef_ = betas[0, 0]
        self.n_iter_ = int(it[0])
        self.n_features_in_ = X.shape[1]
        self.baseline_times_, self.baseline_cumhaz_ = breslow_baseline(Xs @ self.coef_, data,
                                                                       w[0])
        return self

    def predict(self, X) -> np.ndarray:
        """Log partial hazard ``X @ coef_``, shape (n,)."""
        check_is_fitted(self, "coef_")
        return check_array(X, dtype=float) @ self.coef_

    def predict_survival(self, X, times) -> np.ndarray:
        """Survival probabilities S(t | x) = exp(-H0(t) exp(eta)), shape (n, len(times))."""
        check_is_fitted(self, "coef_")
        h0 = self._cumhaz_at(np.atleast_1d(np.asarray(times, float)))
        return np.exp(-np.outer(np.exp(self.predict(X)), h0))

    def _cumhaz_at(self, times: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(self.baseline_times_, times, side="right") - 1
        return np.where(idx >= 0, self.baseline_cumhaz_[np.clip(idx, 0, None)], 0.0)

    def score(self, X, y) -> float:
        """Harrell's C-index of the predicted risk."""
        from pathxai.stats.metrics import harrell_c

        time, event = split_survival_target(y)
        return harrell_c(time, event, self.predict(X))
