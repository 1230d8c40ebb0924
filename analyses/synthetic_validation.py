"""Score checkpoints on fixed unseen synthetic patches (the training-time validation protocol).

The patches are rendered by :func:`pathxai.datasets.render_patch` with a fixed seed (12345,
as in training validation), ``--n`` of them of ``--crop`` px at 0.5 µm/px, and every model
is scored on the same ones with :func:`pathxai.segment.train.validate` (Dice per label where
the label is present; centre crops, no mask post-processing).

Run::

    .venv/bin/python analyses/synthetic_validation.py [--models default other/checkpoint]
        [--crop 384 512] [--n 16] [--json out.json]

Prints one line per (crop, model) with the Dice of every synthetic label.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> dict:
    import torch

    from pathxai.segment.build import load_checkpoint
    from pathxai.segment.modeling import Vocabulary
    from pathxai.segment.train import TrainConfig, _validation_items, validate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["default"])
    ap.add_argument("--crop", nargs="+", type=int, default=[384, 512])
    ap.add_argument("--n", type=int, default=16, help="synthetic patches per crop size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    out: dict = {}
    for crop in a.crop:
        cfg = TrainConfig(crop=crop, sources={"synthetic": 1.0}, val_synthetic=a.n)
        items = _validation_items(cfg, {"heldout": {}})
        for name in a.models:
            model, ck = load_checkpoint(name)
            res = validate(model, ck, items, Vocabulary(ck["vocabulary"]), "cpu", 768)
            dice = {k.split("/", 1)[1]: round(v["dice"], 3) for k, v in res.items()
                    if isinstance(v, dict) and v.get("dice") is not None}
            out.setdefault(str(crop), {})[name] = dice
            print(crop, name, json.dumps(dice), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
    return out


if __name__ == "__main__":
    main()
