"""Training data for the segmentor: synthetic patches, real index rows, targets, augmentation.

Every training *sample* is one image crop at the model's µm/px plus a list of
:class:`Target` s, one per prompt label it teaches: a positive (the exact mask of an object
that is exhaustively annotated, possibly empty inside this crop) or a negative (a label
known to be absent: all-zero mask, presence 0).

Sources
-------
``synthetic``
    :func:`pathxai.datasets.render_patch` patches: exact tissue label maps and nucleus
    instances, so every label below is a positive or a negative.
``index``
    Rows of an image–mask index (``shared/data/index.csv``) with ``split == "train"`` and
    not in the held-out split (:func:`heldout_split`), resampled to the model µm/px. The
    Kather 2016 whole-tile classes are assembled into 2×2 mosaics whose per-tile class is the
    mask; classes absent from a mosaic are negatives.

Labels (canonical ontology names) and where they come from::

    synthetic tissue codes 1..6  tumor, stroma, necrosis, adipose tissue,
                                 lymphocytic infiltrate, gland; tissue (code > 0),
                                 background (code 0)
    synthetic nucleus types 1..3 neoplastic cell, lymphocyte (also inflammatory cell),
                                 connective tissue cell; nucleus (all nuclei)

Cell-level masks are nucleus masks of that cell type (the PanNuke / BiomedParse convention).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SYNTHETIC_TISSUE_LABELS",
    "SYNTHETIC_NUCLEUS_LABELS",
    "ASSUMED_MPP",
    "Target",
    "Sample",
    "SyntheticSource",
    "IndexSource",
    "KatherMosaicSource",
    "MixedSampler",
    "heldout_split",
    "row_mpp",
    "distance_target",
    "crop_and_augment",
    "stain_jitter",
    "photometric_augment",
    "HED_FROM_RGB",
    "RGB_FROM_HED",
    "save_split",
    "KATHER_CLASS_LABELS",
    "KATHER_DECIDED",
]

#: synthetic tissue codes -> canonical labels (docs/contracts.md)
SYNTHETIC_TISSUE_LABELS: dict[int, str] = {
    1: "tumor", 2: "stroma", 3: "necrosis", 4: "adipose tissue",
    5: "lymphocytic infiltrate", 6: "gland",
}
#: synthetic nucleus type codes -> canonical cell labels
SYNTHETIC_NUCLEUS_LABELS: dict[int, str] = {
    1: "neoplastic cell", 2: "lymphocyte", 3: "connective tissue cell",
}

#: assumed µm/px of index rows whose ``mpp`` is empty: (dataset, magnification) -> µm/px.
#: ``None`` magnification = any. Sources: dataset READMEs (20× TCGA ≈ 0.5, 40× ≈ 0.25;
#: BCSS ROIs 0.25 µm/px enlarged ×1–1.33 upstream) and, for CAMELYON-mini and EBHI-Seg whose
#: scale is undocumented, lymphocyte nuclei (≈ 7 µm) measured by eye (≈ 7 px and ≈ 8 px).
ASSUMED_MPP: dict[tuple[str, str | None], float] = {
    ("cpm15", "20x"): 0.5,
    ("cpm15", "40x"): 0.25,
    ("ocdc", None): 0.5,
    ("bcss_mini", None): 0.22,
    ("camelyon_mini", None): 0.97,
    ("ebhi_seg", None): 0.8,
    ("biomedparse_demo", None): 0.0625,
    ("kather2016", None): 0.495,
    ("glas", None): 0.62,
}


def row_mpp(row) -> float:
    """µm/px of an index row: its ``mpp`` column, else the evaluation module's assumed
    table (when present), else :data:`ASSUMED_MPP`.

    Raises
    ------
    MissingMPPError
        When neither gives a value for the row's dataset.
    """
    from pathxai.exceptions import MissingMPPError

    mpp = row.get("mpp") if hasattr(row, "get") else row["mpp"]
    try:
        mpp = float(mpp)
    except (TypeError, ValueError):
        mpp = float("nan")
    if np.isfinite(mpp) and mpp > 0:
        return mpp
    ds, mag = str(row["dataset"]), str(row.get("magnification", "") or "")
    for key in ((ds, mag), (ds, None)):
        if key in ASSUMED_MPP:
            return ASSUMED_MPP[key]
    raise MissingMPPError(
        f"index row {row.get('image_id', row['image'])!r} of dataset {ds!r} has no mpp and no "
        "assumed value; add it to the index or to pathxai.segment.data.ASSUMED_MPP"
    )


# --------------------------------------------------------------------------- held-out split
def heldout_split(index: pd.DataFrame | None = None) -> dict:
    """The images of the train-only datasets kept out of training, by dataset.

    Fixed, documented choices (by slide / case / source image where known):
    ``cpm15`` image03, image06 (20×) and image10, image14 (40×); ``kather2016`` the second
    tile of each class (file names sorted); ``ocdc`` the two row-35 tiles (r35c8, r35c10);
    ``camelyon_mini`` ids 10684–10691 (a contiguous block: neighbouring regions stay
    together); ``bcss_mini`` all crops of source image 1019; ``ebhi_seg`` every third case
    (cases sorted, case = file name before the first ``-``, case-insensitive); ``glas`` the
    official split (train rows train, testA rows test).

    Returns
    -------
    dict
        ``{"version": 1, "heldout": {dataset: [image_id, ...]}, "rules": {dataset: str}}``;
        ``image_id`` is the image file stem.
    """
    rules = {
        "cpm15": "image03, image06 (20x), image10, image14 (40x)",
        "kather2016": "second tile of each class (sorted file names)",
        "ocdc": "tiles r35c8 and r35c10 of slide 1009009",
        "camelyon_mini": "ids 10684-10691 (contiguous block)",
        "bcss_mini": "all crops of source image 1019",
        "ebhi_seg": "every third case, cases sorted case-insensitively",
        "glas": "official split: testA rows are the test set",
    }
    held: dict[str, list[str]] = {
        "cpm15": ["image03", "image06", "image10", "image14"],
        "ocdc": ["1009009_r35c10", "1009009_r35c8"],
        "camelyon_mini": [str(i) for i in range(10684, 10692)],
    }
    if index is not None:
        ids = {ds: sorted(set(g["image_id"])) for ds, g in index.groupby("dataset")}
        held["bcss_mini"] = [i for i in ids.get("bcss_mini", []) if i.startswith("1019_")]
        cases = sorted({i.split("-")[0].lower() for i in ids.get("ebhi_seg", [])})
        out_cases = set(cases[::3])
        held["ebhi_seg"] = [i for i in ids.get("ebhi_seg", [])
                            if i.split("-")[0].lower() in out_cases]
        k = index[index["dataset"] == "kather2016"]
        kh = []
        for _, g in k.groupby("category"):
            stems = sorted(g["image_id"])
            kh += stems[1:2]
        held["kather2016"] = sorted(kh)
    return {"version": 1, "heldout": {k: sorted(v) for k, v in held.items()}, "rules": rules}


# --------------------------------------------------------------------------- samples
@dataclass
class Target:
    """One label's supervision on one crop.

    Attributes
    ----------
    label : str
        Canonical ontology label.
    mask : ndarray of bool, shape (H, W)
        Exact target (all False for a negative).
    instances : ndarray of int32 (H, W) or None
        Instance ids when the annotation has them (cell/nuclei/glands).
    weight : ndarray of float32 (H, W) or None
        Pixel weights (0 = unknown, e.g. padding); None = all ones.
    """

    label: str
    mask: np.ndarray
    instances: np.ndarray | None = None
    weight: np.ndarray | None = None


@dataclass
class Sample:
    """An image crop ``(H, W, 3)`` uint8 with its targets, at the model µm/px (or at
    ``extra["mpp"]`` when a training run draws it at its ``tissue_mpp``)."""

    image: np.ndarray
    targets: list[Target]
    region: str | None = None
    source: str = ""
    extra: dict = field(default_factory=dict)


def _resize_np(arr: np.ndarray, size: tuple[int, int], *, nearest: bool) -> np.ndarray:
    """Resize ``(H, W[, C])`` to ``size = (h, w)`` with torch (bilinear+antialias or nearest)."""
    if arr.shape[:2] == tuple(size):
        return arr
    t = torch.from_numpy(np.array(arr, copy=True))
    if arr.ndim == 2:
        t = t[None, None]
    else:
        t = t.permute(2, 0, 1)[None]
    if nearest:
        out = F.interpolate(t.float(), size=size, mode="nearest-exact")
        out = out.to(t.dtype)
    else:
        out = F.interpolate(t.float(), size=size, mode="bilinear", antialias=True,
                            align_corners=False).round().clamp(0, 255).to(torch.uint8)
    out = out[0, 0] if arr.ndim == 2 else out[0].permute(1, 2, 0)
    return out.numpy()


def crop_and_augment(rng: np.random.Generator, image: np.ndarray, layers: list[np.ndarray],
                     crop: int, *, scale: float = 1.0, geometric: bool = True
                     ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Random crop of ``crop * scale`` source pixels resized to ``crop``, flips, rot90.

    Parameters
    ----------
    image : ndarray (H, W, 3) uint8
    layers : list of ndarray (H, W)
        Masks / instance maps cropped with the same geometry (nearest resampling).
    crop : int
        Output size in pixels.
    scale : float
        >1 zooms out (objects shrink), <1 zooms in.

    Returns
    -------
    image (crop, crop, 3), layers (crop, crop) each, valid (crop, crop) bool
        ``valid`` is False on padding (images smaller than the crop are padded by mirroring
        and the padding is still valid content; only constant padding would be invalid).
    """
    src = max(8, int(round(crop * scale)))
    h, w = image.shape[:2]
    ph, pw = max(0, src - h), max(0, src - w)
    if ph or pw:
        pad = ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
        image = np.pad(image, (*pad, (0, 0)), mode="symmetric")
        layers = [np.pad(m, pad, mode="symmetric") for m in layers]
        h, w = image.shape[:2]
    y0 = int(rng.integers(0, h - src + 1))
    x0 = int(rng.integers(0, w - src + 1))
    image = image[y0:y0 + src, x0:x0 + src]
    layers = [m[y0:y0 + src, x0:x0 + src] for m in layers]
    image = _resize_np(image, (crop, crop), nearest=False)
    layers = [_resize_np(m, (crop, crop), nearest=True) for m in layers]
    if geometric:
        k = int(rng.integers(0, 4))
        flip = bool(rng.integers(0, 2))
        def geo(a):
            a = np.rot90(a, k, axes=(0, 1))
            return np.ascontiguousarray(a[:, ::-1] if flip else a)
        image = geo(image)
        layers = [geo(m) for m in layers]
    return image, layers, np.ones((crop, crop), dtype=bool)


def distance_target(instances: np.ndarray) -> np.ndarray:
    """Normalised distance-to-boundary map of an instance label image.

    Each object's pixels get their Euclidean distance (px) to the nearest pixel outside the
    object (other objects count as outside), divided by the object's maximum, so every
    object peaks at 1 at its centre; background is 0. Shape ``(H, W)`` float32 in [0, 1].
    """
    inst = instances.astype(np.int64, copy=False)
    if inst.max() <= 0:
        return np.zeros(inst.shape, np.float32)
    # object boundaries against background and against touching objects
    pad = np.pad(inst, 1, mode="edge")
    edge = np.zeros(inst.shape, bool)
    c = pad[1:-1, 1:-1]
    for dy, dx in ((0, 1), (1, 0), (2, 1), (1, 2)):
        edge |= pad[dy:dy + inst.shape[0], dx:dx + inst.shape[1]] != c
    inner = (inst > 0) & ~edge
    d = ndimage.distance_transform_edt(inner).astype(np.float32)
    d[inst > 0] += 1.0
    ids = np.unique(inst[inst > 0])
    mx = ndimage.maximum(d, inst, ids)
    lut = np.zeros(int(inst.max()) + 1, np.float32)
    lut[ids] = np.asarray(mx, np.float32)
    den = lut[inst]
    out = np.where(inst > 0, d / np.maximum(den, 1e-6), 0.0)
    return out.astype(np.float32)


# --------------------------------------------------------------------------- sources
class SyntheticSource:
    """Crops of procedurally rendered H&E patches (:func:`pathxai.datasets.render_patch`).

    A pool of rendered patches is kept and ``refresh`` of them are re-rendered per call, so
    the renderer's cost is amortised while the data stay effectively unlimited.

    Parameters
    ----------
    mpp : float
        Model µm/px.
    patch : int
        Rendered patch side (px); crops are taken from it.
    pool : int
        Patches kept.
    refresh : float
        Expected number of patches re-rendered per :meth:`sample` call.
    mpp_jitter : tuple of float
        Render µm/px range, as factors of ``mpp`` (scale augmentation).
    """

    name = "synthetic"

    def __init__(self, rng: np.random.Generator, *, mpp: float, patch: int = 320,
                 pool: int = 48, refresh: float = 0.25, mpp_jitter=(0.8, 1.25)):
        from pathxai.datasets import render_patch

        self._render = render_patch
        self.mpp, self.patch, self.refresh = float(mpp), int(patch), float(refresh)
        self.mpp_jitter = tuple(mpp_jitter)
        self.pool = [self._new(rng) for _ in range(int(pool))]

    def _new(self, rng: np.random.Generator):
        m = self.mpp * float(rng.uniform(*self.mpp_jitter))
        p = self._render(rng, (self.patch, self.patch), mpp=m)
        types = np.zeros(int(p.nuclei.max()) + 1, np.int16)
        for k, v in p.nucleus_types.items():
            if int(k) < types.size:
                types[int(k)] = int(v)
        return p.image, p.tissue.astype(np.uint8), p.nuclei.astype(np.int32), types

    def sample(self, rng: np.random.Generator, crop: int) -> Sample:
        n_new = int(rng.poisson(self.refresh))
        for _ in range(n_new):
            self.pool[int(rng.integers(len(self.pool)))] = self._new(rng)
        image, tissue, nuclei, types = self.pool[int(rng.integers(len(self.pool)))]
        img, (tis, nuc), _ = crop_and_augment(rng, image, [tissue, nuclei], crop, scale=1.0)
        ntype = types[nuc]
        targets: list[Target] = []
        for code, lab in SYNTHETIC_TISSUE_LABELS.items():
            targets.append(Target(lab, tis == code))
        targets.append(Target("tissue", tis > 0))
        targets.append(Target("background", tis == 0))
        for code, lab in SYNTHETIC_NUCLEUS_LABELS.items():
            sel = ntype == code
            targets.append(Target(lab, sel, np.where(sel, nuc, 0)))
        targets.append(Target("inflammatory cell", ntype == 2, np.where(ntype == 2, nuc, 0)))
        targets.append(Target("nucleus", nuc > 0, nuc))
        return Sample(img, targets, region=None, source=self.name)


#: labels an index row's annotation also is (ontology ancestors that are exact here)
_ALSO = {"metastatic tumor": ("tumor",), "tumor epithelium": ("tumor",)}


class IndexSource:
    """Random crops of index rows (one dataset), resampled to the model µm/px on load.

    Parameters
    ----------
    rows : DataFrame
        Rows of :func:`pathxai.datasets.index.read_index` for one dataset.
    mpp : float
        Model µm/px.
    instance_targets : bool
        Train the instance head on this dataset's instance masks.
    """

    def __init__(self, name: str, rows, *, mpp: float, scale_jitter=(0.8, 1.25),
                 instance_targets: bool = True):
        from pathxai.datasets.index import load_pair

        self.name = name
        self.scale_jitter = tuple(scale_jitter)
        self.items = []
        for _, r in rows.iterrows():
            image, mask, _ = load_pair(r)
            f = row_mpp(r) / mpp
            size = (max(8, int(round(image.shape[0] * f))), max(8, int(round(image.shape[1] * f))))
            image = _resize_np(image, size, nearest=False)
            inst = mask.astype(np.int32) if mask.dtype != bool else mask.astype(np.int32)
            inst = _resize_np(inst, size, nearest=True)
            is_inst = r["mask_kind"] == "instance" and instance_targets
            self.items.append((image, inst, str(r["category"]), is_inst,
                               None if r["region"] in ("", "unspecified") else str(r["region"])))

    def sample(self, rng: np.random.Generator, crop: int) -> Sample:
        image, inst, label, is_inst, region = self.items[int(rng.integers(len(self.items)))]
        scale = float(np.exp(rng.uniform(*np.log(self.scale_jitter))))
        img, (m,), _ = crop_and_augment(rng, image, [inst], crop, scale=scale)
        targets = [Target(label, m > 0, m if is_inst else None)]
        targets += [Target(a, m > 0) for a in _ALSO.get(label, ())]
        return Sample(img, targets, region=region, source=self.name)


#: Kather 2016 class folder -> labels the tile is a positive of
KATHER_CLASS_LABELS: dict[str, tuple[str, ...]] = {
    "01_TUMOR": ("tumor epithelium", "tumor", "tissue"),
    "02_STROMA": ("stroma", "tissue"),
    "03_COMPLEX": ("stroma", "tissue"),
    "04_LYMPHO": ("lymphocytic infiltrate", "tissue"),
    "05_DEBRIS": ("debris", "tissue"),
    "06_MUCOSA": ("normal mucosa", "tissue"),
    "07_ADIPOSE": ("adipose tissue", "tissue"),
    "08_EMPTY": ("background",),
}
#: labels whose presence a Kather mosaic decides everywhere (absent where no tile has it)
KATHER_DECIDED = ("tumor epithelium", "tumor", "stroma", "lymphocytic infiltrate", "debris",
                  "normal mucosa", "adipose tissue", "background", "tissue")


class KatherMosaicSource:
    """2×2 mosaics of Kather 2016 tiles (150 px at 0.495 µm/px); per-tile class is the mask.

    Parameters
    ----------
    root : Path
        The ``kather2016`` folder (``labels.csv``, ``tiles/``).
    exclude : sequence of str
        Tile file stems held out.
    grid : int or None
        Tiles per mosaic side (2: a 2×2 mosaic). Each mosaic is resized to the crop, so a
        crop shows tiles at their own µm/px only when ``grid * tile side ≈ crop``; None
        picks that grid (at least 2) for the requested crop.
    """

    name = "kather2016"

    def __init__(self, root: Path, *, mpp: float, exclude: Sequence[str] = (),
                 grid: int | None = 2):
        self.grid = None if grid is None else int(grid)
        if self.grid is not None and self.grid < 1:
            raise ValueError(f"grid={grid!r} must be a positive number of tiles per side")
        import pandas as pd

        from pathxai.datasets.index import load_image

        lab = pd.read_csv(Path(root) / "labels.csv", dtype=str, keep_default_na=False)
        ex = set(exclude)
        self.tiles = []
        for _, r in lab.iterrows():
            if Path(r["file"]).stem in ex:
                continue
            img = load_image(Path(root) / r["file"])
            f = float(r["mpp"] or 0.495) / mpp
            img = _resize_np(img, (int(round(img.shape[0] * f)), int(round(img.shape[1] * f))),
                             nearest=False)
            self.tiles.append((img, r["class"]))
        if not self.tiles:
            raise ValueError(f"no Kather tiles under {root}")

    def sample(self, rng: np.random.Generator, crop: int) -> Sample:
        side = min(t[0].shape[0] for t in self.tiles)
        g = self.grid or max(2, round(crop / side))
        picks = [self.tiles[int(rng.integers(len(self.tiles)))] for _ in range(g * g)]
        rows = []
        cls = np.zeros((g * side, g * side), np.int16)
        names = sorted({c for _, c in picks})
        for i in range(g):
            row = []
            for j in range(g):
                img, c = picks[g * i + j]
                k = int(rng.integers(0, 4))
                row.append(np.rot90(img[:side, :side], k))
                cls[i * side:(i + 1) * side, j * side:(j + 1) * side] = names.index(c) + 1
            rows.append(np.concatenate(row, 1))
        mosaic = np.ascontiguousarray(np.concatenate(rows, 0))
        img, (c,), _ = crop_and_augment(rng, mosaic, [cls], crop, scale=g * side / crop)
        targets = []
        for lab in KATHER_DECIDED:
            m = np.zeros(c.shape, bool)
            for n, name in enumerate(names):
                if lab in KATHER_CLASS_LABELS[name]:
                    m |= c == n + 1
            targets.append(Target(lab, m))
        return Sample(img, targets, region="colon", source=self.name)


class MixedSampler:
    """Draw samples from several sources with fixed probabilities.

    Parameters
    ----------
    sources : dict name -> (source, weight)
    """

    def __init__(self, sources: dict):
        self.names = list(sources)
        self.sources = [sources[n][0] for n in self.names]
        w = np.asarray([float(sources[n][1]) for n in self.names])
        self.p = w / w.sum()

    def sample(self, rng: np.random.Generator, crop: int) -> Sample:
        i = int(rng.choice(len(self.sources), p=self.p))
        return self.sources[i].sample(rng, crop)


# --------------------------------------------------------------------------- colour
#: skimage's H&E-DAB stain matrices (Ruifrok & Johnston 2001): OD = hed @ RGB_FROM_HED
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]],
                        dtype=np.float32)
RGB_FROM_HED[2] = np.cross(RGB_FROM_HED[0], RGB_FROM_HED[1])
RGB_FROM_HED /= np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED).astype(np.float32)


def stain_jitter(x: torch.Tensor, generator: torch.Generator, *, sigma: float = 0.15,
                 bias: float = 0.05) -> torch.Tensor:
    """Random H&E stain augmentation in optical-density (HED) space.

    Parameters
    ----------
    x : Tensor (B, 3, H, W), float RGB in [0, 1]
    sigma : float
        Stain concentrations are multiplied by ``U(1 - sigma, 1 + sigma)`` per image and stain.
    bias : float
        Plus ``U(-bias, bias)`` optical-density units.

    Returns
    -------
    Tensor (B, 3, H, W) in [0, 1].
    """
    b = x.shape[0]
    od = -torch.log(x.clamp(min=1.0 / 255.0))
    m_inv = torch.as_tensor(HED_FROM_RGB, dtype=x.dtype, device=x.device)
    m = torch.as_tensor(RGB_FROM_HED, dtype=x.dtype, device=x.device)
    hed = torch.einsum("bchw,cd->bdhw", od, m_inv)
    a = 1 + (torch.rand(b, 3, 1, 1, generator=generator) * 2 - 1).to(x) * sigma
    c = (torch.rand(b, 3, 1, 1, generator=generator) * 2 - 1).to(x) * bias
    a[:, 2] = 1.0
    c[:, 2] = 0.0
    hed = hed * a + c * (hed > 0.02).to(x)
    od2 = torch.einsum("bdhw,dc->bchw", hed, m)
    return torch.exp(-od2).clamp(0, 1)


def photometric_augment(x: torch.Tensor, generator: torch.Generator, *,
                        stain_sigma: float = 0.15, p_blur: float = 0.2,
                        noise: float = 0.02) -> torch.Tensor:
    """Stain jitter, brightness/contrast/saturation jitter, Gaussian blur and noise.

    ``x (B, 3, H, W)`` float RGB in [0, 1] → same shape, in [0, 1].
    """
    b = x.shape[0]
    x = stain_jitter(x, generator, sigma=stain_sigma)
    r = lambda lo, hi: (lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=generator)).to(x)  # noqa: E731
    grey = x.mean(1, keepdim=True)
    x = grey + (x - grey) * r(0.8, 1.2)  # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * r(0.85, 1.15) + mean + r(-0.06, 0.06)  # contrast, brightness
    blur = torch.rand(b, generator=generator) < p_blur
    if blur.any():
        k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], dtype=x.dtype, device=x.device)
        k = (k[:, None] * k[None, :]) / 256.0
        xb = F.conv2d(F.pad(x[blur], (2, 2, 2, 2), mode="reflect"),
                      k.expand(3, 1, 5, 5), groups=3)
        x = x.clone()
        x[blur] = xb
    x = x + torch.randn(x.shape, generator=generator).to(x) * noise * torch.rand(
        b, 1, 1, 1, generator=generator).to(x)
    return x.clamp(0, 1)


def save_split(path: Path, split: dict) -> None:
    """Write the held-out split JSON (sorted keys, stable)."""
    Path(path).write_text(json.dumps(split, indent=2, sort_keys=True) + "\n")
