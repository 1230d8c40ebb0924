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
        A stationary Gaussian random field with unit variance.
    """
    field = rng.standard_normal(shape, dtype=np.float32)
    field = ndimage.gaussian_filter(field, sigma, mode="wrap")
    field -= field.mean(axis=(-2, -1), keepdims=True)
    sd = field.std(axis=(-2, -1), keepdims=True)
    field /= np.where(sd > 0, sd, 1.0)
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
    # separable linear interpolation with precomputed weights (faster than ndimage.zoom)
    out = coarse.reshape(-1, r, c)
    for axis, n in ((1, shape[0]), (2, shape[1])):
        pos = np.arange(n, dtype=np.float32) / factor
        i0 = np.floor(pos).astype(np.intp)
        w = (pos - i0).astype(np.float32)
        i1 = np.minimum(i0 + 1, out.shape[axis] - 1)
        a = np.take(out, i0, axis=axis)
        b = np.take(out, i1, axis=axis)
        wshape = [1, 1, 1]
        wshape[axis] = n
        w = w.reshape(wshape)
        out = a + (b - a) * w
    return out.reshape(*lead, shape[0], shape[1])


def fit_argmax_biases(
    scores: np.ndarray, targets: np.ndarray, *, n_iter: int = 30, step: float = 0.6
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
    for _ in range(n_iter):
        lab = np.argmax(flat + bias[:, None], axis=0)
        frac = np.bincount(lab, minlength=k) / lab.size
        frac = np.maximum(frac, 0.5 / lab.size)
        bias[present] += step * np.log(targets[present] / frac[present])
        bias[present] -= bias[present].mean()
    return bias
