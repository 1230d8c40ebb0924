"""Where the gland Dice of a checkpoint is lost on GlaS, and what inference-time changes buy.

For each GlaS image of a split of ``../shared/data/index.csv`` (default: ``test`` and
``train``), the model's answer to the row's prompt ("gland") is scored against the true mask
(> 0) on the image's own grid, and split into its errors:

* ``dice``: the predictor's mask (what ``pathxai evaluate`` scores);
* ``fp``, ``fn``: false-positive and false-negative pixels as shares of the image;
* ``fp_on_glass``: the share of the false positives that lie outside the slide tissue
  detector's mask (:func:`pathxai.slides.tissue_mask_from_rgb` at 4 µm/px, holes filled: the
  detector that keeps slide masks off glass in :func:`pathxai.segment.segment_slide`);
* ``dice_in_tissue``: the mask restricted to that detector's tissue, as slides are (does
  the same rule help on images?);
* ``dice_raw``: probability > 0.5 with no closing or hole filling;
* ``dice_tissue_mpp_X``: tissue-level prompts answered on a coarser grid of X µm/px (a
  wider field of view per pixel; the checkpoint's ``tissue_mpp``), for X in ``--tissue-mpp``.

Choices made from these figures should be made on the ``train`` split (the shipped model
was trained on it, so its figures are optimistic) and only confirmed on ``test``. Figures
only, no assertions.

Run::

    .venv/bin/python analyses/gland_diagnostics.py [--model default] [--split test --split train]
        [--tissue-mpp 0.6 --tissue-mpp 0.7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PATHXAI_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))

#: µm/px at which the tissue detector runs here (fine enough for 0.5 mm GlaS images)
DETECTOR_MPP = 4.0


def tissue_on_image(rgb: np.ndarray, mpp: float, detector_mpp: float = DETECTOR_MPP
                    ) -> np.ndarray:
    """The slide tissue detector's mask of ``rgb (H, W, 3)`` uint8 at ``mpp`` µm/px: the
    image opened as a slide and :func:`pathxai.slides.tissue_mask` run at ``detector_mpp``
    µm/px (as slides are, coarse), brought back to ``(H, W)`` bool."""
    from PIL import Image

    from pathxai.slides import open_slide, tissue_mask

    low = tissue_mask(open_slide(rgb, mpp=mpp), mpp=max(detector_mpp, mpp)).mask
    up = Image.fromarray(low.astype(np.uint8) * 255).resize(rgb.shape[1::-1], Image.NEAREST)
    return np.asarray(up) > 0


def error_shares(mask: np.ndarray, truth: np.ndarray, tissue: np.ndarray) -> dict:
    """False positives and negatives of ``mask`` against ``truth`` as shares of the image,
    and the share of the false positives outside ``tissue`` (all ``(H, W)`` bool)."""
    fp = mask & ~truth
    n_fp = int(fp.sum())
    return {"fp": n_fp / truth.size, "fn": int((~mask & truth).sum()) / truth.size,
            "fp_on_glass": int((fp & ~tissue).sum()) / n_fp if n_fp else 0.0}


def main(argv: list[str] | None = None) -> dict:
    import pandas as pd

    from pathxai.datasets.index import read_index
    from pathxai.segment.evaluate import iter_targets
    from pathxai.segment.metrics import dice
    from pathxai.segment.predictor import Segmentor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--index", default=str(SHARED / "index.csv"))
    ap.add_argument("--split", action="append", default=None,
                    help="GlaS split(s) to score (default: test and train)")
    ap.add_argument("--tissue-mpp", action="append", type=float, default=None,
                    help="coarser grids for tissue-level prompts, µm/px (default 0.6, 0.7)")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    index = Path(a.index)
    if not index.is_file():
        raise SystemExit(f"no index at {index}: set PATHXAI_SHARED_DATA or pass --index")
    splits = a.split or ["test", "train"]
    coarse = a.tissue_mpp or [0.6, 0.7]
    rows = read_index(index, split=splits, datasets="glas")
    seg = Segmentor.from_pretrained(a.model)
    seg_coarse = {}
    for g in coarse:
        s = Segmentor.from_pretrained(a.model)
        s.config = {**s.config, "tissue_mpp": g}
        seg_coarse[g] = s
    out = []
    for r, img, truth, mpp in iter_targets(rows):
        seg.set_image(img, mpp=mpp)
        (res,) = seg.predict([r["category"]])
        tissue = tissue_on_image(img, mpp)
        rec = {"image": Path(r["image"]).stem, "split": r["split"], "mpp": mpp,
               "dice": dice(res.mask, truth), **error_shares(res.mask, truth, tissue),
               "dice_in_tissue": dice(res.mask & tissue, truth),
               "dice_raw": dice(res.probability > seg.mask_threshold, truth)}
        for g, s in seg_coarse.items():
            s.set_image(img, mpp=mpp)
            rec[f"dice_tissue_mpp_{g:g}"] = dice(s.predict([r["category"]])[0].mask, truth)
        out.append(rec)
    df = pd.DataFrame(out)
    cols = [c for c in df.columns if c not in ("image", "split", "mpp")]
    worst = df.sort_values("dice").head(8)
    print(worst[["image", "split", "dice", "fp", "fn", "fp_on_glass", "dice_in_tissue"]]
          .round(3).to_string(index=False))
    means = df.groupby("split")[cols].mean()
    print(means.round(4).T.to_string())
    res = {"model": a.model, "detector_mpp": DETECTOR_MPP, "rows": out,
           "means": means.round(4).to_dict(orient="index")}
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
