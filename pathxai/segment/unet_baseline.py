"""Single-task U-Net baseline: one plain :class:`~pathxai.segment.modeling.UNet` per category.

The question it answers: does one text-prompted model for many prompts cost accuracy
against a single-task network of similar size trained on the same data for the same
time? :func:`train_unet` trains a U-Net on one category with the segmentor's own data
sources (:mod:`pathxai.segment.data`: the same crops, the same resampling to the model
µm/px, the same held-out images), and :class:`UNetPredictor` gives it the predictor API
(``set_image`` / ``predict``) so :func:`pathxai.segment.evaluate.evaluate_index` scores it
like :class:`~pathxai.segment.Segmentor` and :class:`~pathxai.segment.StainSegmentor`.

Recipe (fixed unless a keyword says otherwise)
----------------------------------------------
* crops of ``crop`` px at ``mpp`` µm/px; random flips and 90° rotations always;
* ``scale_aug``: crops of ``U_log(scale_jitter)`` × ``crop`` source px resized to ``crop``
  (real images), rendering µm/px jittered by the same factors (synthetic patches);
* ``stain_aug``: :func:`pathxai.segment.data.photometric_augment` (H&E stain jitter in
  optical density, saturation/contrast/brightness jitter, blur, noise): the segmentor's
  own colour augmentation;
* loss: BCE + soft Dice (Dice over the crops whose target is non-empty);
* AdamW (``weight_decay`` 0.05), ``warmup_steps`` linear warm-up, then cosine decay to 2 %
  of ``lr`` over the budget, which is **process CPU time** (:func:`time.process_time`,
  data preparation included, set-up excluded), so other jobs on the machine do not change
  how much training a run gets; wall time and steps are recorded too;
* seeds: ``numpy`` generator ``seed`` (data), ``torch.manual_seed(seed)`` (weights),
  ``torch.Generator(seed + 1)`` (colour augmentation): the sequence of steps is
  deterministic; how many steps fit in the budget depends on the machine.

Checkpoints are a folder with ``model.safetensors`` + ``config.json`` (never pickle).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from scipy import ndimage
from torch.nn import functional as F

from pathxai.exceptions import CheckpointError, UnsupportedPromptError

from . import data as D
from .build import (
    _PICKLE_SUFFIXES,
    CONFIG_NAME,
    IMAGENET_MEAN,
    IMAGENET_STD,
    WEIGHTS_NAME,
    write_checkpoint_files,
)
from .modeling.unet import UNET_STRIDE, UNet
from .predictor import _check_mpp, _ramp, _to_uint8_rgb, resample_rgb
from .types import PromptResult

__all__ = ["train_unet", "UNetPredictor", "save_unet", "load_unet", "unet_loss",
           "SYNTHETIC_CATEGORIES", "UNET_FORMAT"]

#: ``config.json`` "format" of a U-Net checkpoint folder
UNET_FORMAT = "pathxai-unet"
#: categories the synthetic source has exact targets for
SYNTHETIC_CATEGORIES: tuple[str, ...] = tuple(sorted(
    {*D.SYNTHETIC_TISSUE_LABELS.values(), *D.SYNTHETIC_NUCLEUS_LABELS.values(),
     "tissue", "background", "inflammatory cell", "nucleus"}))
#: extra canonical labels a category answers (under the PanNuke / BiomedParse convention a
#: cell mask is a nucleus mask, so "every cell" is "every nucleus")
_ALSO_ANSWERS: dict[str, tuple[str, ...]] = {"nucleus": ("cell",)}


def _config_error(msg: str) -> Exception:
    from .train import TrainConfigError

    return TrainConfigError(msg)


# --------------------------------------------------------------------------- loss
def unet_loss(logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """BCE + soft Dice of one-channel logits.

    Parameters
    ----------
    logits : Tensor (B, 1, H, W)
    target : Tensor (B, 1, H, W), float in {0, 1}

    Returns
    -------
    dict of scalar Tensors
        ``loss`` (= ``bce + dice``), ``bce``, ``dice`` (1 − soft Dice, +1 smoothed, averaged
        over the crops whose target is non-empty; 0 when none is).
    """
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = logits.sigmoid()
    inter = (prob * target).flatten(1).sum(1)
    den = prob.flatten(1).sum(1) + target.flatten(1).sum(1)
    dice_all = 1 - (2 * inter + 1) / (den + 1)
    pos = target.flatten(1).amax(1) > 0
    dice = dice_all[pos].mean() if pos.any() else logits.sum() * 0
    return {"loss": bce + dice, "bce": bce.detach(), "dice": dice.detach()}


# --------------------------------------------------------------------------- data
def _build_sampler(sources: dict[str, float], category: str, rng: np.random.Generator, *,
                   mpp: float, crop: int, scale_jitter: tuple[float, float],
                   index: str | Path | None, synthetic_pool: int
                   ) -> tuple[D.MixedSampler, dict]:
    """The sampler of ``sources`` for ``category`` and a description of its data."""
    from .train import TrainConfig

    wanted = {k: float(v) for k, v in sources.items() if float(v) > 0}
    if not wanted:
        raise _config_error(f"sources {sources!r} select no data; give e.g. {{'glas': 1.0}}")
    built: dict[str, tuple[Any, float]] = {}
    described: dict[str, Any] = {"heldout": {}, "n_train_images": {}}
    if "synthetic" in wanted:
        if category not in SYNTHETIC_CATEGORIES:
            raise _config_error(f"the synthetic source has no {category!r} targets; it has "
                                f"{list(SYNTHETIC_CATEGORIES)}")
        built["synthetic"] = (D.SyntheticSource(rng, mpp=mpp, patch=crop + 64,
                                                pool=synthetic_pool, refresh=0.5,
                                                mpp_jitter=scale_jitter), wanted["synthetic"])
        described["n_train_images"]["synthetic"] = "unlimited (rendered)"
    real = [k for k in wanted if k != "synthetic"]
    if real:
        from pathxai.datasets.index import read_index

        idx_path = TrainConfig(index=None if index is None else str(index)).index_path()
        full = read_index(idx_path)
        held = D.heldout_split(full)["heldout"]
        idx = full[full["split"] == "train"]
        for ds in real:
            rows = idx[(idx["dataset"] == ds) & (idx["category"] == category)
                       & ~idx["image_id"].isin(held.get(ds, []))]
            if rows.empty:
                have = sorted(set(idx.loc[idx["dataset"] == ds, "category"]))
                raise _config_error(
                    f"source {ds!r} has no training rows of category {category!r} in "
                    f"{str(idx_path)!r} (its train categories: {have or 'none'})")
            built[ds] = (D.IndexSource(ds, rows, mpp=mpp, scale_jitter=scale_jitter,
                                       instance_targets=False), wanted[ds])
            described["heldout"][ds] = list(held.get(ds, []))
            described["n_train_images"][ds] = int(rows["image_id"].nunique())
        described["index"] = str(idx_path)
    total = sum(w for _, w in built.values())
    described["weights"] = {k: w / total for k, (_, w) in built.items()}
    return D.MixedSampler(built), described


def _batch(samples: Sequence[D.Sample], category: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(B, 3, H, W)`` float in [0, 1] and targets ``(B, 1, H, W)`` float {0, 1}."""
    masks = []
    for s in samples:
        t = next((t for t in s.targets if t.label == category), None)
        if t is None:  # pragma: no cover - the sources are checked when built
            raise _config_error(f"a {s.source!r} sample has no {category!r} target")
        masks.append(torch.from_numpy(np.ascontiguousarray(t.mask, dtype=np.float32)))
    x = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2)
    return x.float() / 255.0, torch.stack(masks)[:, None]


def _normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device)[None, :, None, None]
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device)[None, :, None, None]
    return (x - mean) / std


# --------------------------------------------------------------------------- training
def train_unet(
    sources: dict[str, float],
    *,
    cpu_seconds: float,
    stain_aug: bool,
    scale_aug: bool,
    category: str,
    seed: int,
    mpp: float = 0.5,
    crop: int = 256,
    batch_size: int = 8,
    lr: float = 2e-3,
    weight_decay: float = 0.05,
    warmup_steps: int = 20,
    grad_clip: float = 1.0,
    channels: Sequence[int] | str = "small",
    scale_jitter: tuple[float, float] = (0.8, 1.25),
    stain_sigma: float = 0.15,
    index: str | Path | None = None,
    synthetic_pool: int = 32,
    max_steps: int | None = None,
    log_every: int = 25,
    log: Callable[[str], Any] | None = print,
) -> tuple[UNet, dict]:
    """Train a single-task U-Net for ``category`` within a process-CPU-time budget.

    Parameters
    ----------
    sources : dict of str to float
        Sampling weight of each source per crop: ``"synthetic"`` (rendered patches) and/or
        dataset names of the index (their ``train`` rows of ``category``, minus the
        :func:`~pathxai.segment.data.heldout_split` images), e.g. ``{"cpm15": 0.5,
        "synthetic": 0.5}``.
    cpu_seconds : float
        Training budget in seconds of process CPU time (:func:`time.process_time`).
    stain_aug : bool
        Apply :func:`~pathxai.segment.data.photometric_augment` (stain and colour jitter).
    scale_aug : bool
        Jitter the scale by ``scale_jitter`` (otherwise every crop is exactly at ``mpp``).
    category : str
        Canonical label trained (``"gland"``, ``"nucleus"``, ...).
    seed : int
        Seed of the data, weights and augmentation (see the module docstring).
    mpp : float
        Model µm/px (images are resampled to it).
    crop, batch_size : int
        Training crop side (px) and crops per step.
    lr, weight_decay : float
        AdamW peak learning rate and weight decay.
    warmup_steps : int
        Linear warm-up steps before the cosine decay.
    grad_clip : float
        Gradient-norm clip.
    channels : sequence of 4 int or str
        U-Net widths or a :data:`~pathxai.segment.modeling.UNET_SIZES` name (``"small"``
        ≈ 0.49 M, ``"medium"`` ≈ 1.6 M parameters).
    scale_jitter : (float, float)
        Scale factors range used when ``scale_aug``.
    stain_sigma : float
        Stain concentration jitter of ``photometric_augment``.
    index : path, optional
        Image–mask index (default ``$PATHXAI_SHARED_DATA/index.csv`` or
        ``../shared/data/index.csv``).
    synthetic_pool : int
        Rendered patches kept by the synthetic source.
    max_steps : int, optional
        Stop after this many steps even if CPU budget is left.
    log_every : int
        Log (and record in ``info["log"]``) every this many steps.
    log : callable, optional
        Called with progress lines; None for silence.

    Returns
    -------
    model : UNet
        In eval mode, on CPU.
    info : dict
        ``steps``, ``cpu_seconds`` (training loop), ``setup_cpu_seconds``, ``wall_seconds``,
        ``first_loss``, ``final_loss`` (running mean), ``n_parameters``, ``log`` (list of
        ``{step, cpu_s, wall_s, lr, loss, bce, dice}``), ``data`` (source weights, training
        images per dataset, held-out images) and ``recipe`` (every argument).

    Raises
    ------
    TrainConfigError
        When a source has no data for ``category``.
    """
    say = log or (lambda _msg: None)
    cpu_setup0 = time.process_time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    jitter = tuple(float(s) for s in scale_jitter) if scale_aug else (1.0, 1.0)
    sampler, data_info = _build_sampler(sources, category, rng, mpp=mpp, crop=crop,
                                        scale_jitter=jitter, index=index,
                                        synthetic_pool=synthetic_pool)
    model = UNet(3, 1, channels)
    model.train()
    n_params = int(sum(p.numel() for p in model.parameters()))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    recipe = {
        "sources": dict(sources), "category": category, "cpu_seconds_budget": float(cpu_seconds),
        "stain_aug": bool(stain_aug), "scale_aug": bool(scale_aug), "seed": int(seed),
        "mpp": float(mpp), "crop": int(crop), "batch_size": int(batch_size), "lr": float(lr),
        "weight_decay": float(weight_decay), "warmup_steps": int(warmup_steps),
        "grad_clip": float(grad_clip), "channels": list(model.channels),
        "scale_jitter": list(jitter), "stain_sigma": float(stain_sigma) if stain_aug else None,
        "geometric": "random crop, flips and 90-degree rotations",
        "loss": "BCE + soft Dice", "optimizer": "AdamW, linear warm-up, cosine decay in CPU time",
        "synthetic_pool": int(synthetic_pool), "max_steps": max_steps,
        "torch_threads": torch.get_num_threads(),
    }
    setup_cpu = time.process_time() - cpu_setup0
    say(f"unet[{category}] sources={data_info['weights']} params={n_params} "
        f"stain_aug={stain_aug} scale_aug={scale_aug} budget={cpu_seconds:.0f} CPU-s "
        f"(setup took {setup_cpu:.1f} CPU-s)")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    step, first_loss, run = 0, None, {}
    history: list[dict] = []
    while True:
        used = time.process_time() - cpu0
        if used >= cpu_seconds or (max_steps is not None and step >= max_steps):
            break
        frac = min(1.0, used / max(cpu_seconds, 1e-9))
        lr_now = lr * min(1.0, (step + 1) / max(1, warmup_steps)) * (
            0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr_now
        x, y = _batch([sampler.sample(rng, crop) for _ in range(batch_size)], category)
        if stain_aug:
            x = D.photometric_augment(x, gen, stain_sigma=stain_sigma)
        losses = unet_loss(model(_normalize(x)), y)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        step += 1
        vals = {k: float(v.detach()) for k, v in losses.items()}
        if first_loss is None:
            first_loss = vals["loss"]
        for k, v in vals.items():
            run[k] = 0.95 * run.get(k, v) + 0.05 * v
        if step == 1 or step % log_every == 0:
            rec = {"step": step, "cpu_s": round(time.process_time() - cpu0, 2),
                   "wall_s": round(time.perf_counter() - wall0, 2), "lr": lr_now,
                   **{k: round(v, 4) for k, v in run.items()}}
            history.append(rec)
            say(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in rec.items()))
    cpu_used = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    model.eval()
    say(f"unet[{category}] stopped after {step} steps, {cpu_used:.1f} CPU-s, {wall:.1f} wall-s")
    info = {
        "steps": step, "cpu_seconds": cpu_used, "setup_cpu_seconds": setup_cpu,
        "wall_seconds": wall, "first_loss": first_loss,
        "final_loss": run.get("loss"), "n_parameters": n_params, "log": history,
        "data": data_info, "recipe": recipe, "torch": torch.__version__,
    }
    return model, info


# --------------------------------------------------------------------------- checkpoints
def save_unet(model: UNet, config: dict, directory: str | Path) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory`` (created).

    Parameters
    ----------
    model : UNet
    config : dict
        JSON-serialisable; must hold ``category`` and ``mpp``. ``format``, ``unet`` (the
        constructor arguments), ``normalization``, ``n_parameters`` and ``weights_sha256``
        are added.

    Returns
    -------
    Path
        The folder.
    """
    if "category" not in config or "mpp" not in config:
        raise CheckpointError("a U-Net checkpoint config needs 'category' and 'mpp'")
    cfg = dict(config)
    cfg.update({
        "format": UNET_FORMAT, "unet": model.config(),
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    })
    return write_checkpoint_files(model, cfg, directory, metadata={"format": UNET_FORMAT})


def load_unet(directory: str | Path) -> tuple[UNet, dict]:
    """Load a folder written by :func:`save_unet`; returns ``(model in eval mode, config)``.

    Raises
    ------
    CheckpointError
        When the folder, its files or its format are missing or wrong, or for pickle files.
    """
    d = Path(directory)
    if d.suffix.lower() in _PICKLE_SUFFIXES:
        raise CheckpointError(f"refusing {str(d)!r}: pickle checkpoints can run arbitrary code")
    w, c = d / WEIGHTS_NAME, d / CONFIG_NAME
    if not (w.is_file() and c.is_file()):
        raise CheckpointError(f"{str(d)!r} is not a U-Net checkpoint folder "
                              "(needs model.safetensors and config.json)")
    cfg = json.loads(c.read_text())
    if cfg.get("format") != UNET_FORMAT:
        raise CheckpointError(f"{str(c)!r} has format {cfg.get('format')!r}, not {UNET_FORMAT!r}")
    model = UNet(**cfg["unet"])
    try:
        model.load_state_dict(load_file(str(w)))
    except RuntimeError as e:
        raise CheckpointError(f"weights in {str(w)!r} do not fit {cfg['unet']}: {e}") from e
    return model.eval(), cfg


# --------------------------------------------------------------------------- predictor
class UNetPredictor:
    """A single-category U-Net behind the predictor API (``set_image`` / ``predict``).

    Parameters
    ----------
    model : UNet
        One-channel U-Net trained at ``mpp``.
    category : str
        The canonical label it segments. Prompts that parse to it are answered (for
        ``"nucleus"`` also ``"cell"``: every cell = every nucleus); any other valid prompt
        raises :class:`~pathxai.exceptions.UnsupportedPromptError`.
    mpp : float
        µm per pixel the model works at; images are resampled to it and back.
    threshold : float
        Pixel probability threshold of the mask.
    max_side : int
        Images (at ``mpp``) up to this side run in one pass; larger ones in ``tile``-px
        tiles overlapping by ``tile // 4``, blended with linear ramps.
    tile, batch_size : int
        Tile side (px, multiple of 8) and tiles per forward pass.
    device : str or torch.device
    """

    name = "unet"

    def __init__(self, model: UNet, category: str, mpp: float = 0.5, *,
                 threshold: float = 0.5, max_side: int = 1024, tile: int = 512,
                 batch_size: int = 4, device: str | torch.device = "cpu"):
        from .ontology import load_ontology

        self.ontology = load_ontology()
        self.category = self.ontology.parse(category).label
        self.answers = (self.category, *_ALSO_ANSWERS.get(self.category, ()))
        self.mpp = _check_mpp(mpp)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.threshold = float(threshold)
        self.max_side, self.batch_size = int(max_side), int(batch_size)
        if tile % UNET_STRIDE:
            raise ValueError(f"tile must be a multiple of {UNET_STRIDE}, got {tile}")
        self.tile = int(tile)
        self._prob: np.ndarray | None = None
        self._input_shape: tuple[int, int] | None = None
        self._input_mpp: float | None = None

    @classmethod
    def from_pretrained(cls, directory: str | Path, **kwargs) -> UNetPredictor:
        """Load a :func:`save_unet` folder (category and µm/px from its config)."""
        model, cfg = load_unet(directory)
        return cls(model, cfg["category"], float(cfg["mpp"]), **kwargs)

    def save(self, directory: str | Path, **extra: Any) -> Path:
        """:func:`save_unet` of this model with its category, µm/px and ``extra`` keys."""
        return save_unet(self.model, {**extra, "category": self.category, "mpp": self.mpp},
                         directory)

    @property
    def supported_labels(self) -> tuple[str, ...]:
        """Canonical labels answered."""
        return self.answers

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        return f"UNetPredictor(category={self.category!r}, mpp={self.mpp}, params={n})"

    # ------------------------------------------------------------------ images
    @torch.no_grad()
    def _forward(self, tiles: np.ndarray) -> np.ndarray:
        """Probabilities ``(B, h, w)`` of uint8 tiles ``(B, h, w, 3)`` (sides multiple of 8)."""
        x = torch.from_numpy(np.ascontiguousarray(tiles)).to(self.device)
        x = _normalize(x.permute(0, 3, 1, 2).float() / 255.0)
        return self.model(x)[:, 0].float().sigmoid().cpu().numpy()

    def _probability(self, img: np.ndarray) -> np.ndarray:
        """Probability map ``(H, W)`` of ``img (H, W, 3)`` at the model µm/px."""
        h, w = img.shape[:2]
        if max(h, w) <= self.max_side:
            ph, pw = (-h) % UNET_STRIDE, (-w) % UNET_STRIDE
            padded = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="reflect" if min(h, w) > 8
                            else "edge")
            return self._forward(padded[None])[0, :h, :w]
        tile = self.tile
        overlap = tile // 4
        step = tile - overlap
        ys = list(range(0, max(1, h - tile), step)) + [max(0, h - tile)]
        xs = list(range(0, max(1, w - tile), step)) + [max(0, w - tile)]
        ph, pw = max(0, tile - h), max(0, tile - w)
        padded = np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge")
        boxes = sorted({(y, x) for y in ys for x in xs})
        acc = np.zeros(padded.shape[:2], np.float32)
        acc_w = np.zeros(padded.shape[:2], np.float32)
        wt = np.outer(_ramp(tile, overlap), _ramp(tile, overlap))
        for i in range(0, len(boxes), self.batch_size):
            chunk = boxes[i:i + self.batch_size]
            probs = self._forward(np.stack([padded[y:y + tile, x:x + tile] for y, x in chunk]))
            for p, (y, x) in zip(probs, chunk):
                acc[y:y + tile, x:x + tile] += p * wt
                acc_w[y:y + tile, x:x + tile] += wt
        return (acc / np.maximum(acc_w, 1e-6))[:h, :w]

    def set_image(self, image: np.ndarray, *, mpp: float) -> UNetPredictor:
        """Resample ``image (H, W, 3)`` at ``mpp`` µm/px to the model grid and run the U-Net.

        Raises
        ------
        MissingMPPError
            When ``mpp`` is None.
        """
        image = _to_uint8_rgb(image)
        mpp = _check_mpp(mpp)
        prob = self._probability(resample_rgb(image, mpp / self.mpp, min_side=UNET_STRIDE))
        shape = image.shape[:2]
        if prob.shape != shape:
            t = torch.from_numpy(np.ascontiguousarray(prob))[None, None]
            prob = F.interpolate(t, size=shape, mode="bilinear", align_corners=False)[0, 0].numpy()
        self._prob = prob.astype(np.float32)
        self._input_shape, self._input_mpp = shape, mpp
        return self

    def predict(self, prompts: Any) -> list[PromptResult]:
        """Answer prompts (str or ParsedPrompt, one or a sequence) on the current image.

        Returns
        -------
        list of PromptResult
            ``mask (H, W) bool`` = probability > threshold on the input grid,
            ``presence`` = the maximum pixel probability, ``instances`` (connected components,
            int32) for cell- and nucleus-level prompts.

        Raises
        ------
        UnknownPromptError
            For text that matches no label.
        UnsupportedPromptError
            For a valid label other than :attr:`supported_labels`.
        """
        if self._prob is None:
            raise RuntimeError("call set_image(image, mpp=...) before predict(prompts)")
        t0 = time.perf_counter()
        parsed = self.ontology.parse_many(prompts)
        for p in parsed:
            if p.label not in self.answers:
                raise UnsupportedPromptError(p.label, f"unet[{self.category}]", list(self.answers))
        mask = self._prob > self.threshold
        out = []
        for p in parsed:
            inst = None
            if p.is_instance_level:
                inst = ndimage.label(mask)[0].astype(np.int32)
            out.append(PromptResult(
                prompt=p, mask=mask.copy(), probability=self._prob, presence=float(self._prob.max()),
                instances=inst,
                extra={"backend": self.name, "category": self.category, "model_mpp": self.mpp,
                       "image_mpp": self._input_mpp, "seconds": time.perf_counter() - t0}))
        return out
