"""Train the text-prompted segmentor from a YAML config (resumable, seeded, time-boxed).

Usage::

    python -m pathxai.segment.train pathxai/segment/configs/default.yaml [--resume]
        [--max-minutes M] [--out DIR]

or ``pathxai train CONFIG`` / :func:`train_from_config`. A run folder (``out_dir`` of the
config, under the git-ignored ``training_runs/``) holds::

    last/model.safetensors, last/config.json   the latest checkpoint (loadable by Segmentor)
    last/optimizer.safetensors                 AdamW moments + RNG states (safetensors)
    last/train_state.json                      step, elapsed time, numpy RNG state
    log.txt                                    human-readable progress
    metrics.jsonl                              one JSON record per log / validation event
    heldout_split.json                         the images kept out of training

Recipe: AdamW, linear warm-up then cosine decay over ``total_steps``, gradient clipping,
BCE + Dice mask loss, presence BCE (negative prompts: labels absent from the crop get an
all-zero target and presence 0), instance-head BCE against the normalised
distance-to-boundary map (cell/nuclei/gland instances). bf16 autocast and the config's
``cuda_batch_size`` on CUDA; fp32 and ``num_threads`` CPU threads otherwise.

Two scales (optional): with ``tissue_mpp`` set (e.g. 1.0), a share ``tissue_scale_prob`` of
the crops is drawn from the same sources resampled to that coarser µm/px, with only their
tissue-level targets; tissue-level validation is scored at that scale, and the checkpoint
records ``tissue_mpp`` so :class:`~pathxai.segment.predictor.Segmentor` answers tissue-level
prompts there (``analyses/configs/tissue_scale_experiment.yaml`` holds the measured trial).

Wide batches (optional): with ``wide_crop`` and ``wide_prob`` set, that share of the steps
trains on a batch of ``wide_batch_size`` larger crops (same µm/px, a wider field of view) from
``wide_sources`` only, e.g. the gland sets, while every other step is a normal batch; a
config without them samples exactly as before.

Parent prompts are *not* trained separately except ``inflammatory cell`` (the synthetic
inflammatory cells are lymphocytes) and ``connective tissue cell`` (annotated as such):
at inference a group prompt is answered by the union of its trained leaves and itself
(see :class:`pathxai.segment.predictor.Segmentor`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from pathxai.exceptions import CheckpointError, PathXAIError

from . import data as D
from .build import (
    build_segmentor,
    encode_labels,
    label_segments,
    load_checkpoint,
    save_checkpoint,
)
from .modeling import Vocabulary

__all__ = ["TrainConfig", "train_from_config", "train", "main", "compute_losses",
           "dice_score"]

REPO_ROOT = Path(__file__).resolve().parents[2]


class TrainConfigError(PathXAIError, ValueError):
    """A training config is invalid (names the key and the fix)."""


@dataclass
class TrainConfig:
    """Training settings (one YAML mapping; unknown keys are an error)."""

    name: str = "default"
    architecture: str = "tiny"
    seed: int = 0
    mpp: float = 0.5
    tile_size: int = 256
    crop: int = 256
    batch_size: int = 8
    cuda_batch_size: int = 32
    labels_per_sample: int = 6
    total_steps: int = 6000
    warmup_steps: int = 200
    lr: float = 2e-3
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    num_threads: int = 1
    max_minutes: float | None = None
    checkpoint_every_minutes: float = 5.0
    validate_every_minutes: float = 15.0
    log_every_steps: int = 25
    out_dir: str = "training_runs/default"
    index: str | None = None
    sources: dict = field(default_factory=lambda: {"synthetic": 1.0})
    region_dropout: float = 0.5
    stain_sigma: float = 0.15
    scale_jitter: tuple = (0.8, 1.25)
    loss_weights: dict = field(default_factory=lambda: {
        "bce": 1.0, "dice": 1.0, "presence": 0.5, "instance": 1.0})
    val_max_side: int = 768
    val_synthetic: int = 8
    license: str = ""
    notes: str = ""
    #: fine-tune: start from this checkpoint (a packaged name such as "default", or a folder)
    #: instead of random weights; ignored when resuming a run that already has ``last/``
    init_from: str | None = None
    #: µm/px at which tissue-level labels are answered (None: ``mpp`` for every label). When
    #: set, a share ``tissue_scale_prob`` of the crops is drawn at this coarser µm/px (same
    #: crop size in px, so a larger field of view) with only their tissue-level targets; the
    #: checkpoint records it and the predictor encodes tissue prompts at it
    tissue_mpp: float | None = None
    tissue_scale_prob: float = 0.5
    #: wide batches: a share ``wide_prob`` of the steps trains on ``wide_batch_size`` (default
    #: ``batch_size``) crops of ``wide_crop`` px at the same µm/px (a wider field of view),
    #: drawn from ``wide_sources`` only (default ``sources``; e.g. the gland sets), so labels
    #: that need context see more of it while the other sources keep ``crop``
    wide_crop: int | None = None
    wide_prob: float = 0.0
    wide_batch_size: int | None = None
    wide_sources: dict | None = None

    def __post_init__(self) -> None:
        if self.tissue_mpp is not None and not (float(self.tissue_mpp) > 0):
            raise TrainConfigError(f"tissue_mpp={self.tissue_mpp!r} must be a positive µm/px "
                                   "(e.g. 1.0) or null to answer every label at mpp")
        if not 0.0 <= float(self.tissue_scale_prob) <= 1.0:
            raise TrainConfigError(f"tissue_scale_prob={self.tissue_scale_prob!r} must be a "
                                   "share of crops between 0 and 1")
        if not 0.0 <= float(self.wide_prob) <= 1.0:
            raise TrainConfigError(f"wide_prob={self.wide_prob!r} must be a share of steps "
                                   "between 0 and 1")
        if self.wide_prob > 0 and self.wide_crop is None:
            raise TrainConfigError(f"wide_prob={self.wide_prob!r} needs wide_crop (px, e.g. 512)")
        if self.wide_crop is not None and not (isinstance(self.wide_crop, int)
                                               and self.wide_crop >= 32):
            raise TrainConfigError(f"wide_crop={self.wide_crop!r} must be a crop side in px "
                                   ">= 32 (e.g. 512) or null")
        if self.wide_batch_size is not None and not (isinstance(self.wide_batch_size, int)
                                                     and self.wide_batch_size >= 1):
            raise TrainConfigError(f"wide_batch_size={self.wide_batch_size!r} must be a "
                                   "positive number of crops or null (= batch_size)")
        if self.wide_sources is not None and not (
                isinstance(self.wide_sources, dict)
                and all(float(v) >= 0 for v in self.wide_sources.values())
                and sum(float(v) for v in self.wide_sources.values()) > 0):
            raise TrainConfigError(f"wide_sources={self.wide_sources!r} must map source names "
                                   "to weights >= 0 (not all 0), or be null (= sources)")

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read a YAML config; raises :class:`TrainConfigError` naming unknown keys."""
        p = Path(path)
        if not p.is_file():
            raise TrainConfigError(f"training config {str(p)!r} does not exist")
        raw = yaml.safe_load(p.read_text()) or {}
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise TrainConfigError(
                f"{str(p)!r}: unknown key(s) {unknown}; known keys: {sorted(known)}"
            )
        if "scale_jitter" in raw:
            raw["scale_jitter"] = tuple(raw["scale_jitter"])
        return cls(**raw)

    def index_path(self) -> Path:
        """The image–mask index (``index`` key, else ``$PATHXAI_SHARED_DATA`` or ../shared/data)."""
        if self.index:
            return Path(self.index).expanduser()
        root = os.environ.get("PATHXAI_SHARED_DATA", str(REPO_ROOT.parent / "shared" / "data"))
        return Path(root) / "index.csv"


# --------------------------------------------------------------------------- losses
def dice_score(pred: np.ndarray, target: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty."""
    p, t = pred.astype(bool), target.astype(bool)
    s = p.sum() + t.sum()
    return 1.0 if s == 0 else float(2.0 * (p & t).sum() / s)


def compute_losses(out: dict, masks: torch.Tensor, inst: torch.Tensor, has_inst: torch.Tensor,
                   weights: dict) -> dict:
    """Segmentor losses for ``N`` (image, prompt) pairs.

    Parameters
    ----------
    out : dict
        Model outputs ``mask_logits (N, H, W)``, ``inst_logits (N, H, W)``, ``presence_logits (N,)``.
    masks : Tensor (N, H, W) float {0, 1}
    inst : Tensor (N, H, W) float in [0, 1]
        Normalised distance-to-boundary targets (rows without instances are ignored).
    has_inst : BoolTensor (N,)
    weights : dict
        ``bce``, ``dice``, ``presence``, ``instance`` multipliers.

    Returns
    -------
    dict of scalar Tensors: ``loss`` (weighted sum), ``bce``, ``dice``, ``presence``, ``instance``.
    """
    logits = out["mask_logits"].float()
    bce = F.binary_cross_entropy_with_logits(logits, masks)
    present = masks.flatten(1).amax(1)
    prob = logits.sigmoid()
    inter = (prob * masks).flatten(1).sum(1)
    den = prob.flatten(1).sum(1) + masks.flatten(1).sum(1)
    dice_all = 1 - (2 * inter + 1) / (den + 1)
    pos = present > 0
    dice = dice_all[pos].mean() if pos.any() else logits.sum() * 0
    pres = F.binary_cross_entropy_with_logits(out["presence_logits"].float(), present)
    if has_inst.any():
        il = out["inst_logits"].float()[has_inst]
        ins = F.binary_cross_entropy_with_logits(il, inst[has_inst])
    else:
        ins = logits.sum() * 0
    w = weights
    loss = (w.get("bce", 1) * bce + w.get("dice", 1) * dice + w.get("presence", 0.5) * pres
            + w.get("instance", 1) * ins)
    return {"loss": loss, "bce": bce.detach(), "dice": dice.detach(), "presence": pres.detach(),
            "instance": ins.detach()}


# --------------------------------------------------------------------------- data setup
def _sources(cfg: TrainConfig, rng: np.random.Generator, split: dict, *,
             mpp: float | None = None, tissue_only: bool = False) -> D.MixedSampler:
    """The training data mixture at ``mpp`` (default ``cfg.mpp``); ``tissue_only`` keeps only
    the tissue-level rows of index datasets (none of nuclei-only CPM-15) and sizes Kather
    mosaics to the crop."""
    mpp = float(cfg.mpp if mpp is None else mpp)
    wanted = {k: float(v) for k, v in cfg.sources.items() if float(v) > 0}
    sources: dict[str, tuple[Any, float]] = {}
    real = [k for k in wanted if k != "synthetic"]
    if "synthetic" in wanted:
        sources["synthetic"] = (D.SyntheticSource(rng, mpp=mpp, patch=cfg.crop + 64,
                                                  pool=32, refresh=0.5,
                                                  mpp_jitter=cfg.scale_jitter),
                                wanted["synthetic"])
    if real:
        from pathxai.datasets.index import read_index

        idx_path = cfg.index_path()
        idx = read_index(idx_path, split="train")
        held = split["heldout"]
        for ds in real:
            if ds == "kather2016":
                # fine: 2×2 mosaics (as trained so far); coarse: tiles near their own µm/px
                sources[ds] = (D.KatherMosaicSource(idx_path.parent / "kather2016", mpp=mpp,
                                                    exclude=held.get(ds, []),
                                                    grid=None if tissue_only else 2),
                               wanted[ds])
                continue
            rows = idx[(idx["dataset"] == ds) & ~idx["image_id"].isin(held.get(ds, []))]
            if rows.empty:
                raise TrainConfigError(
                    f"source {ds!r} has no training rows in {str(idx_path)!r}; "
                    f"known datasets: {sorted(set(idx['dataset']))}"
                )
            if tissue_only:   # coarse crops keep tissue-level targets only
                rows = rows[rows["structure"] == "tissue"]
                if rows.empty:
                    continue
            sources[ds] = (D.IndexSource(ds, rows, mpp=mpp, scale_jitter=cfg.scale_jitter),
                           wanted[ds])
    if not sources:
        raise TrainConfigError("config 'sources' selects no data; give e.g. {synthetic: 1.0}")
    return D.MixedSampler(sources)


@dataclass
class _Batch:
    images: torch.Tensor          # (B, 3, H, W) float [0, 1]
    ids: torch.Tensor             # (P, T)
    pad: torch.Tensor             # (P, T)
    image_index: torch.Tensor     # (N,)
    prompt_index: torch.Tensor    # (N,)
    masks: torch.Tensor           # (N, H, W)
    inst: torch.Tensor            # (N, H, W)
    has_inst: torch.Tensor        # (N,)
    labels: list                  # (N,) label names
    sources: list                 # (N,) source names


def _make_batch(samples: list[D.Sample], rng: np.random.Generator, cfg: TrainConfig,
                vocab: Vocabulary, label_texts: dict, max_len: int, regions: list[str]
                ) -> _Batch:
    prompts: dict[tuple, int] = {}
    seg_list: list[list[str]] = []
    ii, pi, masks, insts, has, labs, srcs = [], [], [], [], [], [], []
    for b, s in enumerate(samples):
        targets = list(s.targets)
        if len(targets) > cfg.labels_per_sample:
            sel = rng.choice(len(targets), cfg.labels_per_sample, replace=False)
            targets = [targets[i] for i in sorted(sel)]
        region = s.region
        if rng.random() < cfg.region_dropout:
            region = None
        elif region is None and regions and rng.random() < 0.5:
            region = regions[int(rng.integers(len(regions)))]
        for t in targets:
            lt = label_texts.get(t.label)
            if lt is None:
                raise TrainConfigError(
                    f"training label {t.label!r} is not in the ontology; add it to ontology.yaml"
                )
            key = (t.label, region)
            if key not in prompts:
                prompts[key] = len(seg_list)
                seg_list.append(label_segments(t.label, lt["structure"], region,
                                               lt["description"]))
            ii.append(b)
            pi.append(prompts[key])
            masks.append(torch.from_numpy(t.mask.astype(np.float32)))
            if t.instances is not None:
                insts.append(torch.from_numpy(D.distance_target(t.instances)))
                has.append(True)
            else:
                insts.append(torch.zeros(t.mask.shape, dtype=torch.float32))
                has.append(False)
            labs.append(t.label)
            srcs.append(s.source)
    ids, pad = encode_labels(vocab, seg_list, max_len)
    imgs = torch.from_numpy(np.stack([s.image for s in samples])).permute(0, 3, 1, 2)
    return _Batch(images=imgs.float() / 255.0, ids=ids, pad=pad,
                  image_index=torch.tensor(ii), prompt_index=torch.tensor(pi),
                  masks=torch.stack(masks), inst=torch.stack(insts),
                  has_inst=torch.tensor(has), labels=labs, sources=srcs)


def _normalize(x: torch.Tensor, ckpt_cfg: dict) -> torch.Tensor:
    n = ckpt_cfg["normalization"]
    mean = torch.tensor(n["mean"], dtype=x.dtype, device=x.device)[None, :, None, None]
    std = torch.tensor(n["std"], dtype=x.dtype, device=x.device)[None, :, None, None]
    return (x - mean) / std


# --------------------------------------------------------------------------- validation
def _validation_items(cfg: TrainConfig, split: dict) -> list[dict]:
    """Held-out real images + fixed synthetic patches with their targets, each label at the
    µm/px the predictor answers it at (``tissue_mpp`` for tissue-level labels when set)."""
    if not cfg.tissue_mpp:
        return _validation_items_at(cfg, split, cfg.mpp)
    from .ontology import load_ontology

    onto = load_ontology()

    def keep(items, tissue: bool):
        out = []
        for it in items:
            t = {k: v for k, v in it["targets"].items()
                 if (onto.structure(k) == "tissue") == tissue}
            if t:
                out.append({**it, "targets": t})
        return out

    return (keep(_validation_items_at(cfg, split, cfg.mpp), False)
            + keep(_validation_items_at(cfg, split, float(cfg.tissue_mpp)), True))


def _validation_items_at(cfg: TrainConfig, split: dict, mpp: float) -> list[dict]:
    items: list[dict] = []
    rng = np.random.default_rng(12345)
    if "synthetic" in cfg.sources and cfg.val_synthetic > 0:
        from pathxai.datasets import render_patch

        for _ in range(cfg.val_synthetic):
            p = render_patch(rng, (cfg.crop, cfg.crop), mpp=mpp)
            types = {int(k): int(v) for k, v in p.nucleus_types.items()}
            ntype = np.zeros(p.nuclei.shape, np.int16)
            for k, v in types.items():
                ntype[p.nuclei == k] = v
            t = {lab: p.tissue == c for c, lab in D.SYNTHETIC_TISSUE_LABELS.items()}
            t["tissue"] = p.tissue > 0
            t.update({lab: ntype == c for c, lab in D.SYNTHETIC_NUCLEUS_LABELS.items()})
            t["nucleus"] = p.nuclei > 0
            items.append({"dataset": "synthetic", "image": p.image, "region": None,
                          "targets": t})
    real = [k for k in cfg.sources if k != "synthetic"]
    if real:
        from pathxai.datasets.index import load_pair, read_index

        idx = read_index(cfg.index_path(), split="train")
        for ds in real:
            for img_id in split["heldout"].get(ds, []):
                rows = idx[(idx["dataset"] == ds) & (idx["image_id"] == img_id)]
                for _, r in rows.iterrows():
                    image, mask, _ = load_pair(r)
                    f = D.row_mpp(r) / mpp
                    size = (int(round(image.shape[0] * f)), int(round(image.shape[1] * f)))
                    image = D._resize_np(image, size, nearest=False)
                    mask = D._resize_np(mask.astype(np.uint8) if mask.dtype == bool
                                        else (mask > 0).astype(np.uint8), size,
                                        nearest=True) > 0
                    t = {str(r["category"]): mask}
                    if ds == "kather2016":  # other decided Kather classes are absent
                        for lab in ("tumor epithelium", "stroma", "lymphocytic infiltrate",
                                    "debris", "normal mucosa", "adipose tissue"):
                            t.setdefault(lab, np.zeros_like(mask))
                    region = None if r["region"] in ("", "unspecified") else str(r["region"])
                    items.append({"dataset": ds, "image": image, "region": region,
                                  "targets": t, "image_id": img_id})
    return items


@torch.no_grad()
def validate(model, ckpt_cfg: dict, items: list[dict], vocab: Vocabulary, device,
             max_side: int = 768) -> dict:
    """Per (dataset, label) mean Dice and presence accuracy on ``items``.

    Dice is computed where the target is non-empty (a present object); for empty targets
    the record counts whether the prediction was empty (``empty_rate``).
    """
    model.eval()
    from .modeling import STRIDE

    label_texts = ckpt_cfg["label_texts"]
    recs: dict[tuple, dict] = {}
    for it in items:
        img = it["image"]
        h, w = img.shape[:2]
        ch, cw = min(h, max_side), min(w, max_side)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        img = img[y0:y0 + ch, x0:x0 + cw]
        ph, pw = (-ch) % STRIDE, (-cw) % STRIDE
        x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float() / 255
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = _normalize(x.to(device), ckpt_cfg)
        labels = list(it["targets"])
        segs = [label_segments(lab, label_texts[lab]["structure"], it["region"],
                               label_texts[lab]["description"]) for lab in labels]
        ids, pad = encode_labels(vocab, segs, model.cfg.max_text_len)
        n = len(labels)
        out = model(x, ids.to(device), pad.to(device), torch.zeros(n, dtype=torch.long,
                    device=device), torch.arange(n, device=device))
        prob = out["mask_logits"].float().sigmoid()[:, :ch, :cw].cpu().numpy()
        pres = out["presence_logits"].float().sigmoid().cpu().numpy()
        for k, lab in enumerate(labels):
            tgt = it["targets"][lab][y0:y0 + ch, x0:x0 + cw]
            pred = (prob[k] > 0.5) & (pres[k] > ckpt_cfg.get("presence_threshold", 0.5))
            r = recs.setdefault((it["dataset"], lab), {"dice": [], "empty": [], "present_acc": []})
            if tgt.any():
                r["dice"].append(dice_score(pred, tgt))
                r["present_acc"].append(float(pres[k] > 0.5))
            else:
                r["empty"].append(float(not pred.any()))
                r["present_acc"].append(float(pres[k] <= 0.5))
    model.train()
    out = {}
    for (ds, lab), r in sorted(recs.items()):
        out[f"{ds}/{lab}"] = {
            "dice": float(np.mean(r["dice"])) if r["dice"] else None,
            "n_present": len(r["dice"]),
            "empty_rate": float(np.mean(r["empty"])) if r["empty"] else None,
            "n_absent": len(r["empty"]),
            "presence_acc": float(np.mean(r["present_acc"])),
        }
    return out


# --------------------------------------------------------------------------- state i/o
def _save_optimizer(opt: torch.optim.Optimizer, path: Path, extra_tensors: dict) -> None:
    """AdamW moments keyed by parameter index (``state.<index>.<name>``) + extra tensors."""
    tensors: dict[str, torch.Tensor] = {}
    for pid, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"state.{int(pid)}.{k}"] = (
                v if torch.is_tensor(v) else torch.tensor(v)).contiguous()
    tensors.update(extra_tensors)
    save_file(tensors, str(path) + ".tmp")
    Path(str(path) + ".tmp").replace(path)


def _load_optimizer(opt: torch.optim.Optimizer, path: Path, log=print) -> dict:
    """Restore AdamW moments saved by :func:`_save_optimizer`.

    Moments whose shape does not match their parameter (a file written by an older,
    buggy version that keyed them by position) are dropped: the optimizer then restarts
    its moments (logged), the weights are unaffected. Returns the extra tensors.
    """
    t = load_file(str(path))
    sd = opt.state_dict()
    params = [p for g in opt.param_groups for p in g["params"]]
    state: dict[int, dict] = {}
    for key, v in t.items():
        if key.startswith("state."):
            _, i, k = key.split(".", 2)
            state.setdefault(int(i), {})[k] = v
    ok = all(0 <= i < len(params) and st.get("exp_avg") is not None
             and st["exp_avg"].shape == params[i].shape for i, st in state.items())
    if ok:
        sd["state"] = state
        opt.load_state_dict(sd)
    else:
        log(f"optimizer state in {path} does not match the parameters; AdamW moments restart")
    return {k: v for k, v in t.items() if not k.startswith("state.")}


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.total_steps - cfg.warmup_steps)
    return cfg.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, frac))))


# --------------------------------------------------------------------------- main loop
def train(cfg: TrainConfig, *, resume: bool = False, max_minutes: float | None = None,
          out_dir: str | Path | None = None, log=print) -> Path:
    """Train (or resume) a run; returns the run folder (its ``last/`` is a checkpoint).

    Parameters
    ----------
    cfg : TrainConfig
    resume : bool
        Continue from ``<out_dir>/last`` when it exists (weights, AdamW moments, step,
        RNG states); otherwise start from scratch.
    max_minutes : float, optional
        Stop (after saving) when this invocation has run this long; overrides the config.
    out_dir : path, optional
        Overrides ``cfg.out_dir``.
    """
    run_dir = Path(out_dir or cfg.out_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    last = run_dir / "last"
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if not cuda:
        torch.set_num_threads(max(1, int(cfg.num_threads)))
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    logf = open(run_dir / "log.txt", "a", buffering=1)
    metf = open(run_dir / "metrics.jsonl", "a", buffering=1)

    def say(msg: str) -> None:
        line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {msg}"
        logf.write(line + "\n")
        log(line)

    model, ckpt_cfg = build_segmentor(cfg.architecture)
    step, elapsed_before = 0, 0.0
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if resume and (last / "model.safetensors").is_file():
        model, ckpt_cfg = load_checkpoint(last)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        extra = _load_optimizer(opt, last / "optimizer.safetensors", log=say)
        st = json.loads((last / "train_state.json").read_text())
        step, elapsed_before = int(st["step"]), float(st["elapsed_s"])
        rng.bit_generator.state = st["numpy_rng"]
        torch.set_rng_state(extra["torch_rng"])
        gen.set_state(extra["aug_rng"])
        say(f"resumed {last} at step {step} ({elapsed_before / 60:.1f} min trained)")
    elif resume:
        say(f"--resume given but {last} has no checkpoint: starting from scratch")
    if step == 0 and cfg.init_from:
        model, ckpt_cfg = load_checkpoint(cfg.init_from)
        ck_mpp = float(ckpt_cfg.get("mpp", cfg.mpp))
        if abs(ck_mpp - float(cfg.mpp)) > 1e-9:
            raise TrainConfigError(
                f"init_from={cfg.init_from!r} was trained at {ck_mpp} µm/px but the config asks "
                f"for mpp={cfg.mpp}; set mpp: {ck_mpp} to fine-tune it")
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        say(f"fine-tuning from checkpoint {cfg.init_from!r} "
            f"(architecture {ckpt_cfg.get('architecture', '?')}; fresh optimizer)")
    model.to(device).train()
    vocab = Vocabulary(ckpt_cfg["vocabulary"])
    split = D.heldout_split(_maybe_index(cfg))
    D.save_split(run_dir / "heldout_split.json", split)
    sampler = _sources(cfg, rng, split)
    coarse = (_sources(cfg, rng, split, mpp=cfg.tissue_mpp, tissue_only=True)
              if cfg.tissue_mpp else None)
    wide = (_sources(dataclasses.replace(cfg, sources=cfg.wide_sources or cfg.sources,
                                         crop=cfg.wide_crop), rng, split)
            if cfg.wide_crop and cfg.wide_prob > 0 else None)
    val_items = _validation_items(cfg, split)
    from .ontology import load_ontology

    onto = load_ontology()
    regions = sorted(onto.regions)

    def draw() -> D.Sample:
        """One crop: at ``tissue_mpp`` with its tissue-level targets (share
        ``tissue_scale_prob``), else at ``mpp`` with all targets."""
        if coarse is not None and rng.random() < cfg.tissue_scale_prob:
            # every coarse source has tissue-level targets (tissue rows only; synthetic
            # patches always carry tissue and background), so the list is never empty
            s = coarse.sample(rng, cfg.crop)
            s.targets = [t for t in s.targets if onto.structure(t.label) == "tissue"]
            s.extra["mpp"] = float(cfg.tissue_mpp)
            return s
        return sampler.sample(rng, cfg.crop)

    bs = cfg.cuda_batch_size if cuda else cfg.batch_size
    wide_bs = cfg.wide_batch_size or cfg.batch_size
    if cuda:   # the CPU ratio of wide to normal batch sizes, scaled to the CUDA batch
        wide_bs = max(1, round(cfg.cuda_batch_size * wide_bs / cfg.batch_size))
    budget = max_minutes if max_minutes is not None else cfg.max_minutes
    t0 = time.time()
    last_ckpt = last_val = t0
    trained_labels: set[str] = set(ckpt_cfg.get("trained_labels", []))
    inst_labels: set[str] = set(ckpt_cfg.get("instance_labels", []))
    run_avg: dict[str, float] = {}
    say(f"training {cfg.name}: arch={cfg.architecture} params="
        f"{sum(p.numel() for p in model.parameters())} device={device} batch={bs} "
        f"crop={cfg.crop} steps={step}->{cfg.total_steps} sources={sampler.names}")

    def checkpoint(final: bool = False) -> None:
        ckpt_cfg.pop("tissue_mpp", None)   # recorded below only when this run sets it
        ckpt_cfg.update({
            "mpp": cfg.mpp, "tile_size": cfg.tile_size,
            **({"tissue_mpp": float(cfg.tissue_mpp)} if cfg.tissue_mpp else {}),
            "trained_labels": sorted(trained_labels),
            "instance_labels": sorted(inst_labels),
            "license": cfg.license,
            "training": {
                "config": {k: (list(v) if isinstance(v, tuple) else v)
                           for k, v in cfg.__dict__.items()},
                "step": step, "total_steps": cfg.total_steps,
                "wall_minutes": round((elapsed_before + time.time() - t0) / 60, 2),
                "device": str(device), "torch": torch.__version__,
                "heldout_split": split["heldout"],
            },
        })
        save_checkpoint(model, ckpt_cfg, last)
        _save_optimizer(opt, last / "optimizer.safetensors",
                        {"torch_rng": torch.get_rng_state(), "aug_rng": gen.get_state()})
        (last / "train_state.json").write_text(json.dumps({
            "step": step, "elapsed_s": elapsed_before + time.time() - t0,
            "numpy_rng": rng.bit_generator.state, "final": final}, indent=1))

    def run_validation() -> None:
        res = validate(model, ckpt_cfg, val_items, vocab, device, cfg.val_max_side)
        ckpt_cfg["metrics"] = {"validation": res, "step": step}
        metf.write(json.dumps({"event": "validation", "step": step, "results": res}) + "\n")
        summary = ", ".join(f"{k}={v['dice']:.3f}" for k, v in res.items()
                            if v["dice"] is not None)
        say(f"validation step {step}: {summary}")

    while step < cfg.total_steps:
        if budget is not None and time.time() - t0 > budget * 60:
            say(f"time budget of {budget} min reached")
            break
        lr = _lr_at(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr
        if wide is not None and rng.random() < cfg.wide_prob:
            samples = [wide.sample(rng, cfg.wide_crop) for _ in range(wide_bs)]
        else:
            samples = [draw() for _ in range(bs)]
        batch = _make_batch(samples, rng, cfg, vocab, ckpt_cfg["label_texts"],
                            model.cfg.max_text_len, regions)
        trained_labels.update(batch.labels)
        inst_labels.update(lab for lab, h in zip(batch.labels, batch.has_inst.tolist()) if h)
        x = D.photometric_augment(batch.images, gen, stain_sigma=cfg.stain_sigma)
        x = _normalize(x.to(device), ckpt_cfg)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            out = model(x, batch.ids.to(device), batch.pad.to(device),
                        batch.image_index.to(device), batch.prompt_index.to(device))
        losses = compute_losses(out, batch.masks.to(device), batch.inst.to(device),
                                batch.has_inst.to(device), cfg.loss_weights)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        for k, v in losses.items():
            fv = float(v.detach())
            run_avg[k] = 0.95 * run_avg.get(k, fv) + 0.05 * fv
        if step % cfg.log_every_steps == 0 or step == 1:
            rec = {"event": "train", "step": step, "lr": lr, "grad_norm": float(gnorm),
                   "elapsed_min": round((elapsed_before + time.time() - t0) / 60, 2),
                   **{k: round(v, 4) for k, v in run_avg.items()}}
            metf.write(json.dumps(rec) + "\n")
            say(" ".join(f"{k}={v}" for k, v in rec.items() if k != "event"))
        now = time.time()
        if now - last_val > cfg.validate_every_minutes * 60:
            run_validation()
            last_val = time.time()
        if now - last_ckpt > cfg.checkpoint_every_minutes * 60:
            checkpoint()
            last_ckpt = time.time()
            say(f"checkpoint saved at step {step}")
    run_validation()
    checkpoint(final=step >= cfg.total_steps)
    say(f"stopped at step {step}; checkpoint in {last}")
    logf.close()
    metf.close()
    return run_dir


def _maybe_index(cfg: TrainConfig):
    if all(k == "synthetic" for k in cfg.sources):
        return None
    from pathxai.datasets.index import read_index

    return read_index(cfg.index_path())


def train_from_config(path: str | Path, *, resume: bool = False,
                      max_minutes: float | None = None, out_dir: str | Path | None = None
                      ) -> Path:
    """Train from a YAML config file (see :class:`TrainConfig`); returns the run folder."""
    return train(TrainConfig.from_yaml(path), resume=resume, max_minutes=max_minutes,
                 out_dir=out_dir)


def main(argv: list[str] | None = None) -> int:
    """``python -m pathxai.segment.train CONFIG [--resume] [--max-minutes M] [--out DIR]``."""
    ap = argparse.ArgumentParser(prog="python -m pathxai.segment.train",
                                 description="Train the text-prompted segmentor.")
    ap.add_argument("config")
    ap.add_argument("--resume", action="store_true",
                    help="continue from <out_dir>/last when it exists")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop (after saving) after this many minutes")
    ap.add_argument("--out", default=None, help="run folder (overrides the config's out_dir)")
    a = ap.parse_args(argv)
    try:
        train_from_config(a.config, resume=a.resume, max_minutes=a.max_minutes, out_dir=a.out)
    except (PathXAIError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
