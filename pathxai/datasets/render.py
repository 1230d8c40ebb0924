"""Procedural H&E-like images with exact ground truth (tissue labels and nuclei).

:func:`render_patch` draws a field of view in three steps, all vectorised:

1. **Layout** (tissue label map): one smooth random field per tissue zone on a
   coarse grid (4 µm cells), biased so that ``argmax`` hits the wanted area
   fractions, upsampled to a 1 µm label grid; tumor zones split into nests with
   stroma septa, gland zones filled with glands (epithelial ring around a lumen)
   in stroma; optionally a tissue-section outline with glass around it.
2. **Nuclei**: Poisson points per zone at densities per mm², thinned so nuclei do
   not overlap, drawn as perturbed ellipses with type-specific size, shape and
   chromatin (large vesicular pleomorphic tumor nuclei with nucleoli, small round
   dark 7 µm lymphocytes, spindle fibroblasts along the collagen, basal epithelial
   nuclei around glands); nuclear debris and pale ghosts in necrosis (drawn, not
   labelled: they are not cells).
3. **Colour**: haematoxylin and eosin concentration maps (textured collagen
   fibres, granular cytoplasm, fat-cell membranes, mottled necrosis) mixed in
   optical-density space by Beer–Lambert, ``I = I0 · exp(-(c_H·v_H + c_E·v_E))``,
   with per-slide stain vectors and strengths (:class:`StainStyle`), optical blur
   and sensor noise.

All sizes are in µm and converted with ``mpp`` (µm per pixel), so the same
composition renders at the right physical scale at any resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from pathxai.datasets.fields import fit_argmax_biases, lowres_shape, smooth_noise, upsample
from pathxai.datasets.nuclei import NucleusBatch, rasterise, sample_points, thin_overlaps

__all__ = [
    "TISSUE_CODES",
    "NUCLEUS_TYPE_CODES",
    "Composition",
    "StainStyle",
    "SyntheticPatch",
    "render_patch",
]

#: Tissue label map codes (uint8), see docs/contracts.md.
TISSUE_CODES: dict[str, int] = {
    "background": 0,
    "tumor": 1,
    "stroma": 2,
    "necrosis": 3,
    "adipose tissue": 4,
    "lymphocytic infiltrate": 5,
    "gland": 6,
}

#: Nucleus type codes of the instance ground truth (``epithelial cell`` = the
#: non-neoplastic epithelium lining normal glands).
NUCLEUS_TYPE_CODES: dict[str, int] = {
    "neoplastic cell": 1,
    "lymphocyte": 2,
    "connective tissue cell": 3,
    "epithelial cell": 4,
}

_ZONES = ("background", "tumor", "stroma", "necrosis", "adipose_tissue",
          "lymphocytic_infiltrate", "gland")


@dataclass(frozen=True)
class Composition:
    """What a rendered field of view is made of.

    Zone weights (``background`` ... ``gland``) are relative target areas; they are
    normalised to sum 1. They are targets, not exact: tumor zones lose their septa
    (``1 - nest_fraction``) to stroma and gland zones keep stroma between glands,
    so read realised areas from the ground truth.

    Attributes
    ----------
    background, tumor, stroma, necrosis, adipose_tissue, lymphocytic_infiltrate, gland : float
        Relative target areas of the zones (≥ 0).
    tumor_cells_per_mm2 : float
        Neoplastic nuclei per mm² of tumor nests.
    lymphocytes_in_tumor_per_mm2 : float
        Scattered tumor-infiltrating lymphocytes per mm² of tumor.
    lymphocytes_in_stroma_per_mm2 : float
        Scattered lymphocytes per mm² of stroma.
    lymphocytes_in_aggregates_per_mm2 : float
        Lymphocytes per mm² of lymphocytic infiltrate (dense aggregates).
    fibroblasts_per_mm2 : float
        Spindle connective-tissue nuclei per mm² of stroma.
    region_scale_um : float
        Correlation length of the zone layout, µm.
    nest_scale_um : float
        Correlation length of tumor nests, µm.
    nest_fraction : float
        Share of a tumor zone that is nests (the rest is stromal septa), in (0, 1].
    section : bool
        Draw a tissue-section outline surrounded by glass (for slides); otherwise
        background appears only as a zone like the others.
    """

    background: float = 0.05
    tumor: float = 0.35
    stroma: float = 0.25
    necrosis: float = 0.05
    adipose_tissue: float = 0.08
    lymphocytic_infiltrate: float = 0.07
    gland: float = 0.10
    tumor_cells_per_mm2: float = 5500.0
    lymphocytes_in_tumor_per_mm2: float = 500.0
    lymphocytes_in_stroma_per_mm2: float = 600.0
    lymphocytes_in_aggregates_per_mm2: float = 11000.0
    fibroblasts_per_mm2: float = 1800.0
    region_scale_um: float = 110.0
    nest_scale_um: float = 28.0
    nest_fraction: float = 0.8
    section: bool = False

    def zone_fractions(self) -> np.ndarray:
        """Normalised zone target fractions in label-code order, shape (7,)."""
        w = np.array([max(float(getattr(self, z)), 0.0) for z in _ZONES])
        if w.sum() <= 0:
            raise ValueError("Composition needs at least one zone with weight > 0")
        return w / w.sum()

    @classmethod
    def random(cls, rng: np.random.Generator, *, section: bool = False) -> Composition:
        """A diverse random composition (each zone absent with some probability).

        Used by :func:`render_patch` when no composition is given, so that training
        patches cover every category, their absence, and a wide range of densities.
        """
        present = rng.random(7) < np.array([0.35, 0.75, 0.95, 0.3, 0.35, 0.45, 0.35])
        present[2] |= not present.any()
        weights = np.where(present, rng.gamma(1.5, 1.0, 7), 0.0)
        kw = dict(zip(_ZONES, weights.tolist()))
        return cls(
            **kw,
            tumor_cells_per_mm2=float(rng.uniform(3500, 7500)),
            lymphocytes_in_tumor_per_mm2=float(rng.lognormal(np.log(400), 0.9)),
            lymphocytes_in_stroma_per_mm2=float(rng.lognormal(np.log(500), 0.7)),
            lymphocytes_in_aggregates_per_mm2=float(rng.uniform(8000, 14000)),
            fibroblasts_per_mm2=float(rng.uniform(1000, 2600)),
            region_scale_um=float(rng.uniform(70, 160)),
            nest_scale_um=float(rng.uniform(20, 40)),
            nest_fraction=float(rng.uniform(0.65, 0.95)),
            section=section,
        )


@dataclass(frozen=True)
class StainStyle:
    """Stain vectors, strengths and optics of one slide (Beer–Lambert mixing).

    Attributes
    ----------
    haematoxylin, eosin : (3,) tuple of float
        Unit optical-density vectors (R, G, B) of the stains. Defaults: Ruifrok &
        Johnston's haematoxylin; an eosin between Ruifrok's (magenta) and the
        Macenko reference matrix's (pinker). Nuclei keep some eosin (counterstain),
        which makes them violet rather than blue.
    h_strength, e_strength : float
        Multipliers of the stain concentrations (staining intensity).
    illuminant : (3,) tuple of float
        Light through glass, 0-255 per channel.
    blur_um : float
        Optical blur (Gaussian SD), µm.
    noise : float
        Sensor noise SD, grey levels.
    """

    haematoxylin: tuple[float, float, float] = (0.650, 0.704, 0.286)
    eosin: tuple[float, float, float] = (0.100, 0.931, 0.350)
    h_strength: float = 1.0
    e_strength: float = 1.0
    illuminant: tuple[float, float, float] = (244.0, 243.0, 247.0)
    blur_um: float = 0.35
    noise: float = 2.5

    @classmethod
    def random(cls, rng: np.random.Generator) -> StainStyle:
        """Slide-to-slide stain variation: rotated vectors, strengths, light, blur."""
        def jitter(v: tuple[float, ...], sd: float) -> tuple[float, float, float]:
            x = np.asarray(v) * np.exp(rng.normal(0, sd, 3))
            x = np.abs(x) / np.linalg.norm(x)
            return (float(x[0]), float(x[1]), float(x[2]))

        base = cls()
        return cls(
            haematoxylin=jitter(base.haematoxylin, 0.10),
            eosin=jitter(base.eosin, 0.15),
            h_strength=float(np.exp(rng.normal(0, 0.15))),
            e_strength=float(np.exp(rng.normal(0, 0.2))),
            illuminant=tuple(float(v) for v in np.clip(rng.normal(244, 4, 3), 230, 255)),
            blur_um=float(rng.uniform(0.25, 0.55)),
            noise=float(rng.uniform(1.5, 4.0)),
        )


@dataclass
class SyntheticPatch:
    """A rendered image with its exact ground truth.

    Attributes
    ----------
    image : ndarray (h, w, 3) uint8
        RGB.
    tissue : ndarray (h, w) uint8
        Tissue label codes (:data:`TISSUE_CODES`).
    nuclei : ndarray (h, w) int32
        Nucleus instance ids, 0 = none, ``1..n`` consecutive.
    nucleus_types : dict of int to int
        Instance id -> type code (:data:`NUCLEUS_TYPE_CODES`).
    mpp : float
        µm per pixel.
    composition : Composition
    stain : StainStyle
    """

    image: np.ndarray
    tissue: np.ndarray
    nuclei: np.ndarray
    nucleus_types: dict[int, int]
    mpp: float
    composition: Composition
    stain: StainStyle = field(default_factory=StainStyle)

    def nucleus_type_map(self) -> np.ndarray:
        """Per-pixel nucleus type code, shape (h, w) uint8 (0 = no nucleus)."""
        lut = np.zeros(int(self.nuclei.max()) + 1, dtype=np.uint8)
        for k, t in self.nucleus_types.items():
            lut[k] = t
        return lut[self.nuclei]

    def instances_of(self, type_code: int) -> np.ndarray:
        """Instance map of one nucleus type, relabelled ``1..n``, shape (h, w) int32."""
        ids = np.array(sorted(k for k, t in self.nucleus_types.items() if t == type_code),
                       dtype=np.intp)
        lut = np.zeros(int(self.nuclei.max()) + 1, dtype=np.int32)
        lut[ids] = np.arange(1, ids.size + 1, dtype=np.int32)
        return lut[self.nuclei]

    def metadata(self) -> dict:
        """JSON-ready description (mpp, composition, stain, counts)."""
        types, counts = np.unique(list(self.nucleus_types.values()), return_counts=True)
        return {
            "mpp": self.mpp,
            "composition": asdict(self.composition),
            "stain": asdict(self.stain),
            "nucleus_counts": {int(t): int(c) for t, c in zip(types, counts)},
        }


def render_patch(
    rng: np.random.Generator,
    shape: tuple[int, int] = (512, 512),
    *,
    mpp: float = 0.5,
    composition: Composition | None = None,
    stain: StainStyle | None = None,
) -> SyntheticPatch:
    """Render one H&E-like field of view with exact tissue and nucleus ground truth.

    Parameters
    ----------
    rng : numpy.random.Generator
        All randomness comes from here (same state -> same patch).
    shape : (rows, cols)
        Output size in pixels.
    mpp : float
        µm per pixel; all sizes are physical, so the content scales with it.
    composition : Composition, optional
        What to draw; default :meth:`Composition.random` (diverse, for training).
    stain : StainStyle, optional
        Stain vectors and optics; default :meth:`StainStyle.random`.

    Returns
    -------
    SyntheticPatch
        ``image (h, w, 3) uint8``, ``tissue (h, w) uint8``, ``nuclei (h, w) int32``,
        ``nucleus_types {id: type}``.

    Raises
    ------
    ValueError
        On a non-positive ``mpp`` or an empty ``shape``.
    """
    h, w = (int(shape[0]), int(shape[1]))
    if h < 1 or w < 1:
        raise ValueError(f"shape must be positive (rows, cols), got {shape!r}")
    if not np.isfinite(mpp) or mpp <= 0:
        raise ValueError(f"mpp must be a positive number of µm per pixel, got {mpp!r}")
    comp = composition if composition is not None else Composition.random(rng)
    style = stain if stain is not None else StainStyle.random(rng)

    lay = _layout(rng, (h, w), mpp, comp)
    tissue = lay.labels
    haem, eos = _base_stains(rng, lay, mpp)
    nuclei, types, tumor_centres = _draw_nuclei(rng, lay, comp, mpp, haem)
    _cell_borders(lay.labels == TISSUE_CODES["tumor"], tumor_centres, mpp, eos)
    in_nuc = nuclei > 0
    eos[in_nuc] *= 0.75
    image = _to_rgb(rng, haem, eos, style, mpp)
    return SyntheticPatch(image, tissue, nuclei, types, float(mpp), comp, style)


# --------------------------------------------------------------------------- layout


@dataclass
class _Layout:
    labels: np.ndarray        # (h, w) uint8 tissue codes
    lumen: np.ndarray         # (h, w) bool, gland lumen (inside label gland)
    fat_membrane: np.ndarray  # (h, w) float32 in [0, 1]
    fibre_angle: np.ndarray   # (h, w) float32, radians, collagen direction
    fibres: np.ndarray        # (h, w) float32 in [0, 1], collagen texture
    grain: np.ndarray         # (h, w) float32, fine texture (SD 1, ~0.6 µm)
    ring_nuclei: tuple[np.ndarray, np.ndarray, np.ndarray]  # rows, cols, angle
    mpp: float


def _layout(rng: np.random.Generator, shape: tuple[int, int], mpp: float,
            comp: Composition) -> _Layout:
    h, w = shape
    # label grid: ~1 µm cells at <= 2 px per cell, ~0.5 µm cells at higher resolution
    lf = max(1, int(round(1.0 / mpp))) if mpp >= 0.5 else max(1, int(round(0.5 / mpp)))
    cf = max(1, int(round(4.0 / (lf * mpp))))      # coarse grid: ~4 µm cells (in label cells)
    cell_um = lf * cf * mpp
    lh, lw = int(np.ceil(h / lf)), int(np.ceil(w / lf))
    ch, cw = lowres_shape((lh, lw), cf)

    sig = comp.region_scale_um / cell_um
    zones = smooth_noise(rng, (7, ch, cw), (0, sig, sig))
    zones[5] = smooth_noise(rng, (ch, cw), sig * 0.45) * 1.2      # aggregates: rounder, smaller
    zones += 0.25 * smooth_noise(rng, (7, ch, cw), (0, 3.0, 3.0))  # ragged borders
    targets = comp.zone_fractions()
    if comp.section:
        yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
        ry = ((yy + 0.5) / ch - 0.5) / 0.40
        rx = ((xx + 0.5) / cw - 0.5) / 0.40
        wobble = np.clip(smooth_noise(rng, (ch, cw), max(ch, cw) / 6.0), -2.0, 2.0)
        rad = np.sqrt(ry**2 + rx**2) + 0.07 * wobble
        outside = rad > 1.0
        zones[0] = np.where(outside, 50.0, zones[0] - 2.0)
        inner = targets.copy()
        inner[0] *= 0.15
        inner /= inner.sum()
        bias = fit_argmax_biases(zones[:, ~outside][:, None, :], inner)
        bias[0] = 0.0 if inner[0] > 0 else -1e3
    else:
        bias = fit_argmax_biases(zones, targets)
    bias = np.where(np.isfinite(bias), bias, -1e6).astype(np.float32)
    nests = smooth_noise(rng, (ch, cw), comp.nest_scale_um / cell_um)
    angle = smooth_noise(rng, (ch, cw), sig * 0.8)
    coarse = np.concatenate([zones + bias[:, None, None], nests[None], angle[None]])
    fine = upsample(coarse, cf, (lh, lw))
    zone = np.argmax(fine[:7], axis=0).astype(np.uint8)
    labels = zone.copy()
    # tumor nests with stromal septa
    tz = zone == 1
    if tz.any() and comp.nest_fraction < 1:
        thr = np.quantile(fine[7][tz], 1.0 - comp.nest_fraction)
        labels[tz & (fine[7] < thr)] = 2
    # glands in stroma
    gz = zone == 6
    labels[gz] = 2
    lumen = np.zeros((lh, lw), dtype=bool)
    ring = (np.empty(0), np.empty(0), np.empty(0))
    if gz.any():
        ring = _draw_glands(rng, gz, labels, lumen, mpp * lf)
    # adipocyte membranes (Voronoi edges of adipocyte centres)
    membrane = np.zeros((lh, lw), dtype=np.float32)
    az = labels == 4
    if az.any():
        membrane = _fat_membranes(rng, az, mpp * lf)
    fibre_angle = (np.pi / 2 * np.tanh(fine[8])).astype(np.float32) * 1.6
    fibres = _fibre_texture(rng, (lh, lw), mpp * lf, fibre_angle)
    if lf > 1:
        fibres = upsample(fibres, lf, (lh * lf, lw * lf))

    def full(a: np.ndarray) -> np.ndarray:
        if lf > 1:
            a = np.repeat(np.repeat(a, lf, axis=0), lf, axis=1)
        return np.ascontiguousarray(a[:h, :w])

    rows, cols, ang = ring
    grain = smooth_noise(rng, (h, w), 0.6 / mpp)
    return _Layout(grain=grain,

        labels=full(labels), lumen=full(lumen), fat_membrane=full(membrane),
        fibre_angle=full(fibre_angle), fibres=np.ascontiguousarray(fibres[:h, :w]),
        ring_nuclei=(rows * lf + (lf - 1) / 2, cols * lf + (lf - 1) / 2, ang), mpp=mpp,
    )


def _poisson_disk(rng: np.random.Generator, mask: np.ndarray, spacing: float,
                  max_n: int = 20000) -> np.ndarray:
    """Approximate Poisson-disk points (row, col) in a mask: dart throwing + thinning."""
    area = float(mask.sum())
    n = min(int(3 * area / (spacing**2)) + 1, max_n)
    r, c = sample_points(rng, mask, n / max(area, 1.0))
    if r.size < 2:
        return np.column_stack([r, c])
    pts = np.column_stack([r, c])
    pairs = cKDTree(pts).query_pairs(spacing, output_type="ndarray")
    alive = np.ones(len(pts), dtype=bool)
    for i, j in np.sort(pairs, axis=1).tolist():
        if alive[i] and alive[j]:
            alive[j] = False
    return pts[alive]


def _draw_glands(rng: np.random.Generator, zone: np.ndarray, labels: np.ndarray,
                 lumen: np.ndarray, cell_um: float):
    """Glands (label 6, epithelial ring + lumen) in a gland zone, on the label grid."""
    r_mean = 38.0 / cell_um
    centres = _poisson_disk(rng, zone, 2.3 * r_mean)
    if len(centres) == 0:
        return (np.empty(0), np.empty(0), np.empty(0))
    n = len(centres)
    ra = rng.uniform(26, 50, n) / cell_um
    rb = ra / rng.uniform(1.0, 1.6, n)
    ang = rng.uniform(0, np.pi, n)
    thick = rng.uniform(11, 16, n) / cell_um
    half = int(np.ceil(ra.max() * 1.15)) + 1
    off = np.arange(-half, half + 1)
    hh, ww = labels.shape
    cy = np.round(centres[:, 0]).astype(np.intp)
    cx = np.round(centres[:, 1]).astype(np.intp)
    yy = cy[:, None, None] + off[None, :, None]
    xx = cx[:, None, None] + off[None, None, :]
    dy = (yy - centres[:, 0, None, None]).astype(np.float32)
    dx = (xx - centres[:, 1, None, None]).astype(np.float32)
    ca, sa = np.cos(ang)[:, None, None], np.sin(ang)[:, None, None]
    u = dx * ca + dy * sa
    v = -dx * sa + dy * ca
    rr = np.sqrt((u / ra[:, None, None]) ** 2 + (v / rb[:, None, None]) ** 2)
    th = np.arctan2(v * ra[:, None, None], u * rb[:, None, None])
    wob = 1 + 0.06 * np.cos(3 * th + rng.uniform(0, 6.3, n)[:, None, None]) \
        + 0.04 * np.cos(5 * th + rng.uniform(0, 6.3, n)[:, None, None])
    rr = rr / wob
    ok = (yy >= 0) & (yy < hh) & (xx >= 0) & (xx < ww)
    inner = 1.0 - thick / np.sqrt(ra * rb)
    inside = ok & (rr < 1.0)
    iy = np.broadcast_to(yy, inside.shape)[inside]
    ix = np.broadcast_to(xx, inside.shape)[inside]
    keep = labels[iy, ix] != 0
    labels[iy[keep], ix[keep]] = 6
    lum = ok & (rr < inner[:, None, None])
    ly = np.broadcast_to(yy, lum.shape)[lum]
    lx = np.broadcast_to(xx, lum.shape)[lum]
    keep = labels[ly, lx] == 6
    lumen[ly[keep], lx[keep]] = True
    # basal epithelial nuclei along the ring, long axis radial
    rows, cols, angles = [], [], []
    spacing = 7.5 / cell_um
    for k in range(n):
        perim = np.pi * (ra[k] + rb[k])
        m = max(int(perim / spacing), 6)
        t = np.linspace(0, 2 * np.pi, m, endpoint=False) + rng.uniform(0, 2 * np.pi)
        t = t + rng.normal(0, 0.25 / m * 2 * np.pi, m)
        rad = 1.0 - 0.42 * thick[k] / np.sqrt(ra[k] * rb[k])
        uu, vv = rad * ra[k] * np.cos(t), rad * rb[k] * np.sin(t)
        rows.append(centres[k, 0] + uu * np.sin(ang[k]) + vv * np.cos(ang[k]))
        cols.append(centres[k, 1] + uu * np.cos(ang[k]) - vv * np.sin(ang[k]))
        angles.append(np.arctan2(rows[-1] - centres[k, 0], cols[-1] - centres[k, 1]))
    rows_a, cols_a, ang_a = (np.concatenate(x) for x in (rows, cols, angles))
    ri = np.clip(np.round(rows_a).astype(int), 0, hh - 1)
    ci = np.clip(np.round(cols_a).astype(int), 0, ww - 1)
    good = (rows_a >= 0) & (rows_a < hh) & (cols_a >= 0) & (cols_a < ww)
    good &= (labels[ri, ci] == 6) & ~lumen[ri, ci]
    return rows_a[good], cols_a[good], ang_a[good]


def _fat_membranes(rng: np.random.Generator, zone: np.ndarray, cell_um: float) -> np.ndarray:
    """Adipocyte membranes: 1 on Voronoi edges between fat-cell centres, 0 inside."""
    seeds = _poisson_disk(rng, zone, 55.0 / cell_um)
    out = np.zeros(zone.shape, dtype=np.float32)
    if len(seeds) < 2:
        return out
    pts = np.argwhere(zone)
    d, _ = cKDTree(seeds).query(pts, k=2)
    gap = (d[:, 1] - d[:, 0]) * cell_um
    out[pts[:, 0], pts[:, 1]] = np.exp(-((gap / 1.6) ** 2))
    # the fat zone's border is a membrane too
    edge = zone & ~ndimage.binary_erosion(zone, iterations=max(1, int(round(1.0 / cell_um))),
                                          border_value=1)
    out[edge] = np.maximum(out[edge], 0.8)
    return out


# --------------------------------------------------------------------------- stains


def _fibre_texture(rng: np.random.Generator, shape: tuple[int, int], cell_um: float,
                   angle: np.ndarray) -> np.ndarray:
    """Streaky collagen-fibre texture in [0, 1] following the local fibre angle.

    Fine isotropic noise is smeared along four directions (a line-integral blur of
    ~25 µm made of shifted copies) and the four results are blended by how close
    each direction is to the local fibre angle, then squashed to bright fibres
    with darker gaps and occasional breaks.

    Parameters
    ----------
    shape : (rows, cols)
        Grid shape (the ~1 µm label grid).
    cell_um : float
        Grid spacing, µm.
    angle : ndarray (rows, cols)
        Fibre direction, radians from the column axis.
    """
    base = smooth_noise(rng, shape, 0.9 / cell_um)
    half = 12.0 / cell_um
    steps = np.linspace(-half, half, 9)
    acc = np.zeros(shape, dtype=np.float32)
    wsum = np.full(shape, 1e-6, dtype=np.float32)
    for o in np.linspace(0, np.pi, 4, endpoint=False):
        streak = np.zeros(shape, dtype=np.float32)
        for t in steps:
            streak += np.roll(base, (int(round(t * np.sin(o))), int(round(t * np.cos(o)))),
                              axis=(0, 1))
        c2 = np.cos(angle - np.float32(o)) ** 2
        wk = (c2 * c2) ** 3
        acc += wk * streak
        wsum += wk
    tex = acc / wsum
    tex /= max(float(tex.std()), 1e-6)
    f = max(1, int(round(6.0 / cell_um)))
    breaks = upsample(smooth_noise(rng, lowres_shape(shape, f), 2.0), f, shape)
    fib = 0.5 + 0.5 * np.tanh(1.3 * tex)
    return (fib * (0.7 + 0.3 * np.tanh(1.5 * breaks))).astype(np.float32)


def _base_stains(rng: np.random.Generator, lay: _Layout, mpp: float):
    """Haematoxylin and eosin concentration maps of everything but the nuclei."""
    lab = lay.labels
    shape = lab.shape
    #                 bg    tumor stroma necro  fat   lymph gland
    h_lut = np.array([0.01, 0.13, 0.05, 0.10, 0.01, 0.10, 0.14], dtype=np.float32)
    e_lut = np.array([0.015, 0.34, 0.30, 0.40, 0.02, 0.16, 0.30], dtype=np.float32)
    haem = h_lut[lab]
    eos = e_lut[lab]
    grain = lay.grain
    mott = upsample(smooth_noise(rng, lowres_shape(shape, 4), 2.0), 4, shape)
    is_str = lab == 2
    if is_str.any():
        fib = lay.fibres[is_str]
        eos[is_str] = (0.26 + 0.42 * fib) * (1 + 0.1 * grain[is_str])
    tum = lab == 1
    eos[tum] *= 1 + 0.15 * grain[tum] + 0.12 * mott[tum]
    nec = lab == 3
    if nec.any():
        eos[nec] *= 1 + 0.22 * mott[nec] + 0.15 * grain[nec]
        haem[nec] += 0.04 * np.clip(-mott[nec], 0, None)
        dots = nec & (grain > 2.0)
        haem[dots] += 0.45 + 0.3 * grain[dots]
    fat = lab == 4
    eos[fat] += 0.42 * lay.fat_membrane[fat]
    haem[fat] += 0.03 * lay.fat_membrane[fat]
    eos[lay.lumen] = 0.03 + 0.03 * np.clip(mott[lay.lumen], 0, None)
    haem[lay.lumen] = 0.01
    ly = lab == 5
    eos[ly] *= 1 + 0.2 * grain[ly]
    bg = lab == 0
    eos[bg] += 0.004 * mott[bg]
    np.clip(haem, 0, None, out=haem)
    np.clip(eos, 0, None, out=eos)
    return haem, eos


# --------------------------------------------------------------------------- nuclei


def _draw_nuclei(rng: np.random.Generator, lay: _Layout, comp: Composition, mpp: float,
                 haem: np.ndarray):
    lab = lay.labels
    px_mm2 = (mpp * 1e-3) ** 2      # mm² per pixel
    um = 1.0 / mpp                   # pixels per µm

    def batch(rows, cols, a_um, b_um, angle, code, dark, ves=0.0, irr=0.08):
        n = rows.size
        return NucleusBatch(rows, cols, np.broadcast_to(a_um, n) * um,
                            np.broadcast_to(b_um, n) * um, np.broadcast_to(angle, n).copy(),
                            code, np.broadcast_to(dark, n).copy(), ves, irr)

    tumor = lab == 1
    stroma = lab == 2
    batches: list[NucleusBatch] = []
    # 1 neoplastic: large, pleomorphic, vesicular
    r, c = sample_points(rng, tumor, comp.tumor_cells_per_mm2 * px_mm2)
    n = r.size
    a = rng.lognormal(np.log(6.2), 0.18, n)
    batches.append(batch(r, c, a, a / rng.uniform(1.0, 1.6, n), rng.uniform(0, np.pi, n),
                         1, rng.uniform(0.5, 1.0, n), ves=0.75, irr=0.14))
    # 4 epithelial (normal glands): basal, oval, radially oriented
    rr, cc, ang = lay.ring_nuclei
    n = rr.size
    batches.append(batch(rr, cc, rng.uniform(4.2, 5.5, n), rng.uniform(2.6, 3.3, n), ang,
                         4, rng.uniform(0.75, 1.0, n), ves=0.2, irr=0.06))
    # 2 lymphocytes: aggregates, tumor-infiltrating, stromal
    dens = np.zeros(7)
    dens[5] = comp.lymphocytes_in_aggregates_per_mm2
    dens[1] = comp.lymphocytes_in_tumor_per_mm2
    dens[2] = comp.lymphocytes_in_stroma_per_mm2
    dens[4] = 60.0
    dens_px = (dens * px_mm2).astype(np.float32)
    r, c = _points_by_density(rng, lab, dens_px)
    n = r.size
    a = rng.normal(3.5, 0.25, n)
    batches.append(batch(r, c, a, a * rng.uniform(0.85, 1.0, n), rng.uniform(0, np.pi, n),
                         2, rng.uniform(1.15, 1.45, n), irr=0.05))
    # 3 connective tissue: spindle, along the collagen
    r, c = sample_points(rng, stroma, comp.fibroblasts_per_mm2 * px_mm2)
    n = r.size
    ri = np.clip(np.round(r).astype(int), 0, lab.shape[0] - 1)
    ci = np.clip(np.round(c).astype(int), 0, lab.shape[1] - 1)
    fib = lay.fibre_angle[ri, ci]
    batches.append(batch(r, c, rng.uniform(6.5, 10.0, n), rng.uniform(1.5, 2.3, n), fib,
                         3, rng.uniform(0.75, 1.05, n), irr=0.05))
    # thin overlaps: lymphocytes first inside tumor is not needed; priority by list order
    order = [1, 0, 2, 3]   # epithelial, neoplastic, lymphocyte, connective
    kept = thin_overlaps([batches[i] for i in order], gap=0.85)
    tumor_centres = np.column_stack([kept[1].rows, kept[1].cols])
    chromatin = lay.grain
    nuclei = np.zeros(lab.shape, dtype=np.int32)
    types: dict[int, int] = {}
    next_id = 1
    for b in kept:
        start = next_id
        next_id = rasterise(b, rng, nuclei, haem, next_id, chromatin, mpp=mpp)
        types.update(dict.fromkeys(range(start, next_id), b.type_code))
    # necrosis: pale ghost nuclei (drawn only)
    nec = lab == 3
    if nec.any():
        r, c = sample_points(rng, nec, 1500 * px_mm2)
        n = r.size
        a = rng.uniform(3.5, 6.0, n)
        ghosts = batch(r, c, a, a * rng.uniform(0.7, 1.0, n), rng.uniform(0, np.pi, n), 0,
                       rng.uniform(0.18, 0.32, n), irr=0.15)
        rasterise(ghosts, rng, nuclei, haem, next_id, chromatin, mpp=mpp)
    nuclei, types = _relabel_visible(nuclei, types)
    return nuclei, types, tumor_centres


def _cell_borders(tumor: np.ndarray, centres: np.ndarray, mpp: float, eos: np.ndarray) -> None:
    """Pale membranes/retraction halos between tumor cells (Voronoi edges), in place.

    Computed on a ~1 µm grid over tumor pixels only: ``gap`` = distance to the
    second-nearest minus the nearest nucleus centre; eosin is lowered near gap 0.
    """
    if len(centres) < 2 or not tumor.any():
        return
    f = max(1, int(round(1.0 / mpp)))
    sub = tumor[::f, ::f]
    pts = np.argwhere(sub)
    d, _ = cKDTree(centres / f).query(pts, k=2)
    gap_um = (d[:, 1] - d[:, 0]) * f * mpp
    border = np.zeros(sub.shape, dtype=np.float32)
    border[pts[:, 0], pts[:, 1]] = np.exp(-((gap_um / 0.9) ** 2))
    if f > 1:
        border = np.repeat(np.repeat(border, f, axis=0), f, axis=1)
    border = border[: tumor.shape[0], : tumor.shape[1]]
    eos *= 1.0 - 0.55 * border


def _points_by_density(rng: np.random.Generator, lab: np.ndarray, dens_px: np.ndarray):
    """Poisson points with a per-label density (points per pixel), in one pass."""
    rows, cols = [], []
    for code in np.flatnonzero(dens_px > 0):
        r, c = sample_points(rng, lab == code, float(dens_px[code]))
        rows.append(r)
        cols.append(c)
    if not rows:
        return np.empty(0), np.empty(0)
    return np.concatenate(rows), np.concatenate(cols)


def _relabel_visible(nuclei: np.ndarray, types: dict[int, int]):
    """Drop ids with no pixel left and renumber ``1..n`` keeping order."""
    present = np.unique(nuclei)
    present = present[present > 0]
    lut = np.zeros(int(nuclei.max()) + 1 if nuclei.size else 1, dtype=np.int32)
    lut[present] = np.arange(1, present.size + 1, dtype=np.int32)
    new_types = {int(lut[k]): int(types[int(k)]) for k in present}
    return lut[nuclei], new_types


# --------------------------------------------------------------------------- colour


def _to_rgb(rng: np.random.Generator, haem: np.ndarray, eos: np.ndarray, style: StainStyle,
            mpp: float) -> np.ndarray:
    """Beer–Lambert mixing of the stain maps, blur and noise -> uint8 RGB."""
    sigma = style.blur_um / mpp
    if sigma > 0.2:
        haem = ndimage.gaussian_filter(haem, sigma)
        eos = ndimage.gaussian_filter(eos, sigma)
    vh = np.asarray(style.haematoxylin, dtype=np.float32) * style.h_strength
    ve = np.asarray(style.eosin, dtype=np.float32) * style.e_strength
    light = np.asarray(style.illuminant, dtype=np.float32)
    out = np.empty((*haem.shape, 3), dtype=np.uint8)
    noise = rng.standard_normal(haem.shape, dtype=np.float32)
    for ch in range(3):
        od = haem * (2.3 * vh[ch]) + eos * (2.3 * ve[ch])
        val = light[ch] * np.exp(-od) + style.noise * noise
        np.clip(val, 0, 255, out=val)
        out[..., ch] = (val + 0.5).astype(np.uint8)
    return out


def with_section(comp: Composition, section: bool = True) -> Composition:
    """A copy of ``comp`` with the tissue-section outline switched on or off."""
    return replace(comp, section=section)
