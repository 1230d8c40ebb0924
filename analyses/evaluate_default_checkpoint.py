"""Score a segmentor checkpoint beside the stain baseline on the test + held-out rows.

Rows: the ``test`` split of ``../shared/data/index.csv`` plus the ``train`` rows that the
training recipe held out (``pathxai/segment/configs/heldout_split.json``: by case / source
image / slide block). Scored with :func:`pathxai.segment.evaluate.evaluate_index` (Dice
with bootstrap CIs, AJI for instance masks, absent-object empty-mask rate).

Run::

    .venv/bin/python analyses/evaluate_default_checkpoint.py [--model default]
        [--out results/segment_eval] [--no-baseline] [--tta [all|tissue]]

Writes ``model.json``, ``stain.json`` and ``table.md`` (a Markdown table for the README
and the model card) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PATHXAI_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))


def heldout_rows(index_path: Path):
    """Test rows + held-out train rows of an index, with a ``subset`` column."""
    from pathxai.datasets.index import read_index

    idx = read_index(index_path)
    split = json.loads((REPO / "pathxai/segment/configs/heldout_split.json").read_text())
    held = split["heldout"]
    is_held = idx.apply(lambda r: r["image_id"] in held.get(r["dataset"], []), axis=1)
    sel = (idx["split"] == "test") | ((idx["split"] == "train") & is_held)
    out = idx[sel].copy()
    out["subset"] = out["split"].where(out["split"] == "test", "held-out train")
    return out.reset_index(drop=True)


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.3f}"


def table(model_res: dict, stain_res: dict | None) -> str:
    """Markdown table: dataset, category, n, model Dice [95% CI], stain Dice, AJI."""
    base = {(r["dataset"], r["category"]): r for r in (stain_res or {}).get("summary", [])}
    lines = ["| dataset | category | n | model Dice [95% CI] | model AJI | stain Dice | stain AJI |",
             "|---|---|---|---|---|---|---|"]
    for r in model_res["summary"]:
        b = base.get((r["dataset"], r["category"]), {})
        ci = (f" [{_fmt(r['dice_ci_low'])}, {_fmt(r['dice_ci_high'])}]"
              if r.get("dice_ci_low") is not None else "")
        lines.append(f"| {r['dataset']} | {r['category']} | {r['n']} | {_fmt(r['dice'])}{ci} | "
                     f"{_fmt(r.get('aji'))} | {_fmt(b.get('dice'))} | {_fmt(b.get('aji'))} |")
    for name, res in (("model", model_res), ("stain", stain_res)):
        ab = (res or {}).get("absent", {})
        if ab.get("overall_empty_rate") is not None:
            n = sum(s["n"] for s in ab["summary"])
            lines.append(f"\nAbsent objects ({name}): empty-mask rate "
                         f"{ab['overall_empty_rate']:.3f} over {n} prompts.")
            if ab.get("n_may_contain"):
                lines.append(f"Not counted ({name}): stroma on Kather tumour/mucosa/debris tiles, "
                             f"which may hold some: empty in {ab['may_contain_empty_rate']:.3f} "
                             f"of {ab['n_may_contain']}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from pathxai.segment.cli import add_tta_option

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", default="results/segment_eval")
    ap.add_argument("--no-baseline", action="store_true")
    add_tta_option(ap)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n-boot", type=int, default=1000)
    a = ap.parse_args(argv)
    import torch

    from pathxai.segment.evaluate import evaluate_index
    from pathxai.segment.predictor import Segmentor

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = heldout_rows(SHARED / "index.csv")
    seg = Segmentor.from_pretrained(a.model, tta=a.tta)
    model_res = evaluate_index(rows, seg, out=out / "model.json", n_boot=a.n_boot,
                               root=SHARED)
    stain_res = None
    if not a.no_baseline:
        from pathxai.segment.stain import StainSegmentor

        stain_res = evaluate_index(rows, StainSegmentor(), out=out / "stain.json",
                                   n_boot=a.n_boot, root=SHARED)
    md = table(model_res, stain_res)
    (out / "table.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
