"""How well do pathxai's segmentors' whole-slide masks match the synthetic ground truth?

For every slide of a synthetic cohort (default: the demo cohort in ``demo_out/cohort``)
and every tissue prompt, each model segments the slide with
:func:`pathxai.segment.segment_slide`; its mask is compared with the exact ground-truth
mask (resampled to the ground truth's pixel grid, nearest neighbour). Writes into
``results/segmentation_evaluation/``:

    per_slide.csv   model, slide_id, prompt, dice, iou, predicted and true area fraction
    summary.csv     per model and prompt: mean Dice with a percentile bootstrap 95 % CI
                    over slides (2000 resamples, seed 0), mean absolute area-fraction error

Usage::

    .venv/bin/python analyses/segmentation_evaluation.py [--cohort demo_out/cohort]
        [--models stain default] [--max-slides N] [--out results/segmentation_evaluation]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TISSUE_PROMPTS = ("tumor", "stroma", "necrosis", "adipose tissue", "lymphocytic infiltrate", "gland")


def _read(path: Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        arr = tifffile.imread(path)
        im = Image.fromarray((arr > 0).astype(np.uint8) * 255)
    else:
        im = Image.open(path).convert("L")
    if shape is not None and im.size != (shape[1], shape[0]):
        im = im.resize((shape[1], shape[0]), Image.Resampling.NEAREST)
    return np.asarray(im) > 0


def dice_iou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of two boolean masks; both 1.0 when both are empty."""
    inter = float(np.logical_and(pred, truth).sum())
    total = float(pred.sum() + truth.sum())
    union = float(np.logical_or(pred, truth).sum())
    if total == 0:
        return 1.0, 1.0
    return 2 * inter / total, inter / union


def bootstrap_ci(values: np.ndarray, *, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap 95 % CI of the mean."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = rng.choice(v, size=(n, len(v)), replace=True).mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", default=str(REPO / "demo_out" / "cohort"))
    ap.add_argument("--models", nargs="+", default=["stain", "default"])
    ap.add_argument("--max-slides", type=int, default=None)
    ap.add_argument("--out", default=str(REPO / "results" / "segmentation_evaluation"))
    args = ap.parse_args(argv)

    import pathxai
    from pathxai.exceptions import CheckpointError
    from pathxai.pipeline.cli import prepare_demo_cohort
    from pathxai.pipeline.stages import get_predictor
    from pathxai.segment import parse_prompt, segment_slide

    cohort_dir = Path(args.cohort)
    if not (cohort_dir / "manifest.yaml").is_file():
        prepare_demo_cohort(cohort_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    slides = pd.read_csv(cohort_dir / "slides.csv", dtype={"slide_id": str})
    if args.max_slides:
        slides = slides.head(args.max_slides)
    rows = []
    for model in args.models:
        try:
            predictor = get_predictor(model)
        except (CheckpointError, FileNotFoundError) as exc:
            print(f"skipping model {model!r}: {exc}", file=sys.stderr)
            continue
        supports = getattr(predictor, "supports", None)
        prompts = [p for p in TISSUE_PROMPTS if supports is None or supports(p)]
        if len(prompts) < len(TISSUE_PROMPTS):
            print(f"{model}: cannot segment {sorted(set(TISSUE_PROMPTS) - set(prompts))}; not scored")
        for r in slides.itertuples(index=False):
            path = Path(r.path) if Path(r.path).is_absolute() else cohort_dir / r.path
            mask_dir = out / "masks" / model / r.slide_id
            with pathxai.open_slide(path) as slide:
                segment_slide(predictor, slide, prompts, out_dir=mask_dir)
            truth_dir = cohort_dir / "ground_truth" / "masks" / r.slide_id
            for prompt in prompts:
                slug = parse_prompt(prompt).slug
                truth_file = truth_dir / f"{slug}.png"
                pred_files = [p for p in mask_dir.rglob(f"{slug}.*") if p.suffix.lower() in (".png", ".tif", ".tiff")
                              and ".instances" not in p.name]
                if not truth_file.is_file() or not pred_files:
                    continue
                truth = _read(truth_file)
                pred = _read(pred_files[0], truth.shape)
                d, j = dice_iou(pred, truth)
                rows.append({"model": model, "slide_id": r.slide_id, "prompt": prompt, "dice": d, "iou": j,
                             "area_fraction_pred": float(pred.mean()), "area_fraction_true": float(truth.mean())})
            print(f"{model}: {r.slide_id} done", flush=True)
    per_slide = pd.DataFrame(rows)
    per_slide.to_csv(out / "per_slide.csv", index=False)
    summ = []
    for (model, prompt), g in per_slide.groupby(["model", "prompt"], sort=False):
        lo, hi = bootstrap_ci(g["dice"].to_numpy())
        summ.append({"model": model, "prompt": prompt, "n_slides": len(g), "mean_dice": g["dice"].mean(),
                     "dice_ci_low": lo, "dice_ci_high": hi, "mean_iou": g["iou"].mean(),
                     "mean_abs_area_fraction_error": (g["area_fraction_pred"] - g["area_fraction_true"]).abs().mean()})
    summary = pd.DataFrame(summ)
    summary.to_csv(out / "summary.csv", index=False)
    print(summary.round(3).to_string(index=False))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
