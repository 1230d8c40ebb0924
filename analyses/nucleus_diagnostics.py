"""Where the nucleus Dice of a checkpoint is lost, on every CPM-15 image (held-out and train).

For each image of ``cpm15`` in ``../shared/data/index.csv`` (µm/px from the magnification, as
in ``pathxai evaluate``), three Dice scores against the ground-truth mask (> 0) on the image's
own grid:

* ``dice_mask``: the predictor's answer to "nuclei" (watershed instances, their union; what
  ``pathxai evaluate`` scores);
* ``dice_raw``: its probability map > 0.5 with no post-processing (if this is higher, the
  instance post-processing loses Dice);
* ``dice_stride2_ceiling``: no model at all: the true mask resampled to the model's grid,
  averaged over 2 × 2 blocks (what a perfect map at the decoder's stride 2 could hold), turned
  into logits, bilinearly upsampled and thresholded at 0 like the model's maps, and brought
  back to the image's grid: the Dice a mask kept at the decoder's resolution can reach.

Rows are marked ``heldout`` from ``pathxai/segment/configs/heldout_split.json`` (the other
images are training images of the shipped model). Figures only, no assertions.

Run::

    .venv/bin/python analyses/nucleus_diagnostics.py [--model default] [--json out.json]
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


def stride2_ceiling(truth: np.ndarray, mpp: float, model_mpp: float) -> np.ndarray:
    """The mask ``truth (H, W)`` at ``mpp`` as the model's stride-2 maps could at best hold it
    (block fractions at ``2 * model_mpp`` µm/px as logits, bilinear back up, > 0), on the
    input grid ``(H, W)``."""
    import torch
    from torch.nn import functional as F

    t = torch.from_numpy(truth.astype(np.float32))[None, None]
    h, w = truth.shape
    gh, gw = max(2, round(h * mpp / model_mpp)), max(2, round(w * mpp / model_mpp))
    grid = F.interpolate(t, size=(gh, gw), mode="area" if mpp < model_mpp else "bilinear",
                         align_corners=None if mpp < model_mpp else False)
    s2 = F.avg_pool2d(grid, 2, ceil_mode=True)
    logit = torch.logit(s2.clamp(1e-3, 1 - 1e-3))
    up = F.interpolate(logit, size=(gh, gw), mode="bilinear", align_corners=False)
    back = F.interpolate(up, size=(h, w), mode="bilinear", align_corners=False)
    return (back[0, 0] > 0).numpy()


def main(argv: list[str] | None = None) -> dict:
    import pandas as pd

    from pathxai.datasets.index import read_index
    from pathxai.segment.evaluate import iter_targets
    from pathxai.segment.metrics import dice
    from pathxai.segment.predictor import Segmentor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--index", default=str(SHARED / "index.csv"))
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    index = Path(a.index)
    if not index.is_file():
        raise SystemExit(f"no index at {index}: set PATHXAI_SHARED_DATA or pass --index")
    rows = read_index(index, datasets="cpm15")
    split = json.loads((REPO / "pathxai/segment/configs/heldout_split.json").read_text())
    held = set(split["heldout"]["cpm15"])
    seg = Segmentor.from_pretrained(a.model)
    out = []
    for r, img, truth, mpp in iter_targets(rows):
        seg.set_image(img, mpp=mpp)
        (res,) = seg.predict(["nuclei"])
        name = Path(r["image"]).stem
        out.append({"image": name, "heldout": name in held, "mpp": mpp,
                    "dice_mask": dice(res.mask, truth),
                    "dice_raw": dice(res.probability > 0.5, truth),
                    "dice_stride2_ceiling": dice(stride2_ceiling(truth, mpp, seg.mpp), truth)})
    df = pd.DataFrame(out)
    print(df.round(3).to_string(index=False))
    means = df.groupby("heldout")[["dice_mask", "dice_raw", "dice_stride2_ceiling"]].mean()
    print(means.round(3).to_string())
    res = {"model": a.model, "rows": out,
           "means": {("heldout" if k else "train"): v for k, v in
                     means.round(4).to_dict(orient="index").items()}}
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return res


if __name__ == "__main__":
    main()
