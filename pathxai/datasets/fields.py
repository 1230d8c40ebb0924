"""Random smooth fields and fast resampling used by the procedural H&E renderer.

All functions are vectorised numpy/scipy; sizes are in pixels of the array they
act on (callers convert µm with the slide's µm/px).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["smooth_noise", "upsample", "lowres_shape", "fit_argmax_biases"]


def lowres_shape(shape: tuple[int, int], factor: int) -> tuple[int, int]:
    """Shape of a grid that covers ``shape`` pixels with cells of ``factor`` pixels.

    Parameters
    ----------
    shape : (rows, cols)
        Full-resolution shape in pixels.
    factor : int
        Cell size of the coarse grid, in full-resolution pixels.

    Returns
    -------
    (rows, cols)
        ``ceil(shape / factor) + 1`` so that linear upsampling covers every pixel.
    """
    return (int(np.ceil(shape[0] / factor)) + 1, int(np.ceil(shape[1] / factor)) + 1)


def smooth_noise(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    sigma: float | tuple[float, ...],
    *,
    dtype: type = np.float32,
) -> np.ndarray:
    """Gaussian-filtered white noise, standardised to mean 0 and SD 1.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : tuple of int
        Output shape; leading axes beyond the last two are independent fields
        when ``sigma`` has zeros on them.
    sigma : float or tuple of float
        Correlation length (Gaussian SD) in pixels of this array, per axis.
    dtype : numpy dtype
        Output dtype.

    Returns
    -------
    ndarray of ``shape``
        A stationary Gaussian random field with mean 0 and unit variance (in
        expectation; a crop much smaller than ``sigma`` is nearly constant).
    """
    ndim = len(shape)
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (ndim,))
    # long correlation lengths: draw on a coarser grid (≥ 3 nodes per sigma) and
    # interpolate; the field is smooth at that scale, and filtering is O(sigma) per pixel
    if ndim >= 2 and sig[-1] == sig[-2] and sig[-1] >= 6 and all(s == 0 for s in sig[:-2]):
        d = int(sig[-1] // 3)
        cs = lowres_shape(tuple(shape[-2:]), d)
        coarse = smooth_noise(rng, (*shape[:-2], *cs), (*sig[:-2], sig[-1] / d, sig[-1] / d),
                              dtype=np.float32)
        return upsample(coarse, d, tuple(shape[-2:])).astype(dtype, copy=False)
    # generate on a domain at least ~3 correlation lengths larger than asked and crop,
    # so that periodic wrap-around never shows; normalise by the exact variance of
    # filtered white noise (not the sample SD), so small crops keep their variability
    big = tuple(int(n + (np.ceil(6 * s) if s > 0 else 0)) for n, s in zip(shape, sig))
    field = rng.standard_normal(big, dtype=np.float32)
    field = ndimage.gaussian_filter(field, tuple(sig), mode="wrap")
    field = field[tuple(slice(0, n) for n in shape)]
    var = 1.0
    for s in sig:
        if s > 0:
            delta = np.zeros(2 * int(np.ceil(4 * s)) + 1)
            delta[delta.size // 2] = 1.0
            var *= float(np.sum(ndimage.gaussian_filter1d(delta, s) ** 2))
    field = field * np.float32(1.0 / np.sqrt(var))
    return field.astype(dtype, copy=False)


def upsample(coarse: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinearly upsample the last two axes of ``coarse`` by ``factor`` and crop.

    Parameters
    ----------
    coarse : ndarray, shape (..., r, c)
        Values on a grid whose node ``i`` sits at full-resolution pixel ``i * factor``.
    factor : int
        Integer upsampling factor.
    shape : (rows, cols)
        Full-resolution shape to crop to (must be ``<= (r - 1) * factor + 1``).

    Returns
    -------
    ndarray, shape (..., rows, cols), float32
    """
    coarse = np.asarray(coarse, dtype=np.float32)
    if factor == 1:
        return coarse[..., : shape[0], : shape[1]].copy()
    lead = coarse.shape[:-2]
    r, c = coarse.shape[-2:]
    flat = coarse.reshape(-1, r, c)
    out = _interp_axis(flat, factor, shape[0], axis=1)
    out = _interp_axis(out, factor, shape[1], axis=2)
    return out.reshape(*lead, shape[0], shape[1])


def _interp_axis(a: np.ndarray, factor: int, n: int, axis: int) -> np.ndarray:
    """Linear interpolation by an integer factor along ``axis`` (elementwise, no BLAS)."""
    a = np.moveaxis(a, axis, -1)
    w = (np.arange(factor, dtype=np.float32) / factor)
    lo, hi = a[..., :-1, None], a[..., 1:, None]
    out = (lo + (hi - lo) * w).reshape(*a.shape[:-1], -1)
    out = np.concatenate([out, a[..., -1:]], axis=-1)
    if out.shape[-1] < n:  # grid a little short: extend with the edge value
        out = np.concatenate([out, np.repeat(out[..., -1:], n - out.shape[-1], axis=-1)],
                             axis=-1)
    out = out[..., :n]
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))


def fit_argmax_biases(
    scores: np.ndarray, targets: np.ndarray, *, n_iter: int = 60, step: float = 0.5
) -> np.ndarray:
    """Additive biases so that ``argmax(scores + bias)`` hits target class fractions.

    Parameters
    ----------
    scores : ndarray, shape (k, r, c)
        Per-class score fields (typically coarse, for speed).
    targets : ndarray, shape (k,)
        Wanted area fractions (sum 1); a class with target 0 gets bias ``-inf``.
    n_iter : int
        Number of multiplicative-update iterations.
    step : float
        Step size on the log-ratio of target to realised fraction.

    Returns
    -------
    ndarray, shape (k,)
        Biases (``-inf`` for absent classes).
    """
    k = scores.shape[0]
    targets = np.asarray(targets, dtype=np.float64)
    present = targets > 0
    bias = np.zeros(k, dtype=np.float64)
    bias[~present] = -np.inf
    if present.sum() <= 1:
        return bias
    flat = scores.reshape(k, -1)
    # start from per-class offsets that equalise the fields' medians
    bias[present] = -np.median(flat[present], axis=1)
    best, best_err = bias.copy(), np.inf
    for it in range(n_iter):
        lab = np.argmax(flat + bias[:, None], axis=0)
        frac = np.bincount(lab, minlength=k) / lab.size
        err = float(np.abs(frac - targets).sum())
        if err < best_err:
            best, best_err = bias.copy(), err
        if err < 0.01:
            break
        frac = np.maximum(frac, 0.5 / lab.size)
        decay = step * (0.93**it)
        bias[present] += np.clip(decay * np.log(targets[present] / frac[present]), -0.3, 0.3)
        bias[present] -= bias[present].mean()
    return best
