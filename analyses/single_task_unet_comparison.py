"""Does one model for many prompts cost accuracy against single-task U-Nets? (issue #3)

Per category, the multi-task text-prompted model (``Segmentor.from_pretrained("default")``)
is compared with plain single-task U-Nets (:mod:`pathxai.segment.unet_baseline`) trained on
the same data sources for a fixed budget of **process CPU time**, and with the classical
stain baseline (:class:`~pathxai.segment.StainSegmentor`). The nuclei configs show what
cross-site generalisation needs: CPM-15 alone, + stain and scale augmentation, + synthetic
patches.

Configs, run in this order, each skipped when its ``<out>/<name>/result.json`` exists
(delete that file to rerun one):

``glas_unet``                U-Net 0.49 M, GlaS train (44 images), flips/rotations only
``cpm15_plain``              U-Net 0.49 M, CPM-15 train minus held-out (11), no stain/scale aug
``cpm15_stain_scale``        + stain/colour jitter + scale jitter (0.8-1.25)
``cpm15_stain_scale_synth``  + synthetic patches (50 % of the crops)
``multitask_default``        the shipped multi-task model (no training here)
``stain_baseline``           the classical baseline (no training)
``glas_unet_medium``         U-Net 1.6 M (the multi-task model's size up to phase 7) on GlaS, as glas_unet
``glas_unet_coarse``         U-Net 0.49 M on GlaS at 1.0 µm/px instead of 0.5 (256-px crops see
                             256 µm instead of 128 µm): how much does the field of view matter?

Test sets (every predictor scored on those of its category; Dice with image-bootstrap 95 % CI
from :func:`pathxai.segment.evaluate.evaluate_index`)::

    gland    GlaS testA (60 images)
    nucleus  CPM-15 held-out images (image03, image06, image10, image14)
             BiomedParse/PanNuke demo images: union of the typed cell masks (neoplastic,
             inflammatory, connective) = a nuclei mask of another organ and scanner
             synthetic nuclei: 16 rendered 256x256 patches at 0.5 µm/px, seed 20250

Writes into ``--out`` (default ``results/single_task_unet/``): ``<config>/result.json``
(training info + evaluation), ``<config>/model/`` (U-Net safetensors + JSON), ``test_sets/``
(the generated test masks/patches), ``table.md`` and ``summary.json``.

Usage (2 shared CPU cores: one torch thread, low priority)::

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python analyses/single_task_unet_comparison.py \\
        [--cpu-minutes 15] [--only CONFIG ...] [--out results/single_task_unet] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PATHXAI_SHARED_DATA", REPO.parent / "shared" / "data"))
sys.path.insert(0, str(REPO))

SYNTH_SEED, SYNTH_N, SYNTH_SIDE = 20250, 16, 256
N_BOOT = 2000


@dataclass(frozen=True)
class Config:
    """One column of the comparison."""

    name: str
    kind: str                      # "unet", "multitask" or "stain"
    category: str | None = None    # U-Nets: the category trained
    sources: dict = field(default_factory=dict)
    stain_aug: bool = False
    scale_aug: bool = False
    channels: str = "small"
    mpp: float = 0.5               # U-Nets: µm/px they are trained and run at
    test_sets: tuple[str, ...] = ()
    note: str = ""


NUCLEI_TESTS = ("cpm15_heldout", "biomedparse_nuclei", "synthetic_nuclei")
ALL_TESTS = ("glas_test", *NUCLEI_TESTS)
CONFIGS: tuple[Config, ...] = (
    Config("glas_unet", "unet", "gland", {"glas": 1.0}, test_sets=("glas_test",),
           note="GlaS train, flips/rotations"),
    Config("cpm15_plain", "unet", "nucleus", {"cpm15": 1.0}, test_sets=NUCLEI_TESTS,
           note="CPM-15 train, flips/rotations"),
    Config("cpm15_stain_scale", "unet", "nucleus", {"cpm15": 1.0}, True, True,
           test_sets=NUCLEI_TESTS, note="+ stain & scale jitter"),
    Config("cpm15_stain_scale_synth", "unet", "nucleus", {"cpm15": 0.5, "synthetic": 0.5},
           True, True, test_sets=NUCLEI_TESTS, note="+ 50 % synthetic"),
    Config("multitask_default", "multitask", test_sets=ALL_TESTS,
           note="shipped multi-task model"),
    Config("stain_baseline", "stain", test_sets=ALL_TESTS, note="classical"),
    Config("glas_unet_medium", "unet", "gland", {"glas": 1.0}, channels="medium",
           test_sets=("glas_test",), note="GlaS train, flips/rotations"),
    Config("glas_unet_coarse", "unet", "gland", {"glas": 1.0}, mpp=1.0,
           test_sets=("glas_test",), note="GlaS train at 1.0 µm/px (4x the field of view)"),
)
TEST_LABELS = {
    ("glas", "gland"): "GlaS testA",
    ("cpm15", "nucleus"): "CPM-15 held-out",
    ("biomedparse_demo", "nucleus"): "PanNuke/BiomedParse (cell-mask union)",
    ("synthetic", "nucleus"): "synthetic patches",
}


# --------------------------------------------------------------------------- test sets
def build_test_sets(out: Path) -> dict[str, pd.DataFrame]:
    """Index-format rows of every test set; generated masks/patches go to ``out/test_sets``."""
    from PIL import Image

    from pathxai.datasets import render_patch
    from pathxai.datasets.index import load_pair, read_index
    from pathxai.segment.data import heldout_split

    idx = read_index(SHARED / "index.csv")
    held = heldout_split(idx)["heldout"]
    sets: dict[str, pd.DataFrame] = {}
    sets["glas_test"] = idx[(idx["dataset"] == "glas") & (idx["split"] == "test")]
    sets["cpm15_heldout"] = idx[(idx["dataset"] == "cpm15")
                                & idx["image_id"].isin(held["cpm15"])]
    # BiomedParse demo: union of the typed cell (= nucleus) masks per image
    bdir = out / "test_sets" / "biomedparse_nuclei"
    bdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for _, g in idx[idx["dataset"] == "biomedparse_demo"].groupby("image", sort=True):
        union = None
        for _, r in g.iterrows():
            m = load_pair(r)[1] > 0
            union = m if union is None else union | m
        r = g.iloc[0].copy()
        path = bdir / f"{r['image_id']}__nucleus.png"
        Image.fromarray(union.astype(np.uint8)).save(path)
        r["mask"], r["category"], r["structure"], r["mask_kind"] = str(path), "nucleus", "nuclei", "binary"
        r["source"] = f"union of {', '.join(sorted(g['category']))} masks ; " + r["source"]
        rows.append(r)
    sets["biomedparse_nuclei"] = pd.DataFrame(rows)
    # synthetic nuclei: a fixed set of rendered patches (a third "site": random stain styles)
    sdir = out / "test_sets" / "synthetic_nuclei"
    sdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SYNTH_SEED)
    rows = []
    for i in range(SYNTH_N):
        p = render_patch(rng, (SYNTH_SIDE, SYNTH_SIDE), mpp=0.5)
        img_path, mask_path = sdir / f"synth_{i:02d}.png", sdir / f"synth_{i:02d}__nucleus.png"
        Image.fromarray(p.image).save(img_path)
        Image.fromarray(p.nuclei.astype(np.uint16)).save(mask_path)
        rows.append({"dataset": "synthetic", "image": str(img_path), "mask": str(mask_path),
                     "category": "nucleus", "structure": "nuclei", "region": "unspecified",
                     "mask_kind": "instance", "mpp": 0.5, "magnification": "", "split": "test",
                     "source": f"pathxai.datasets.render_patch seed {SYNTH_SEED} #{i}",
                     "license": "synthetic", "image_id": img_path.stem})
    sets["synthetic_nuclei"] = pd.DataFrame(rows)
    return {k: v.reset_index(drop=True) for k, v in sets.items()}


# --------------------------------------------------------------------------- running
def _phase_steps(training: dict) -> int | None:
    """Optimizer steps of a multi-phase checkpoint: ``long`` continues the previous phase's
    step counter (analyses/train_default_checkpoint.sh), the other phases start at 0;
    averages of weights (``average_of``) take no step."""
    phases = [ph for ph in training.get("phases") or [] if "end_step" in ph]
    if not phases:
        return training.get("step")
    return sum(ph["end_step"] - (prev["end_step"] if ph["run"].endswith("long") else 0)
               for prev, ph in zip([{"end_step": 0}, *phases], phases))


def _predictor(cfg: Config, cpu_seconds: float, seed: int, cdir: Path, log) -> tuple:
    """(predictor, info dict) of a config: trains the U-Nets."""
    if cfg.kind == "stain":
        from pathxai.segment.stain import StainSegmentor

        return StainSegmentor(), {"n_parameters": 0, "training": None}
    if cfg.kind == "multitask":
        from pathxai.segment import Segmentor

        seg = Segmentor.from_pretrained("default", device="cpu")
        tr = seg.config.get("training", {})
        return seg, {"n_parameters": int(sum(p.numel() for p in seg.model.parameters())),
                     "checkpoint_sha256": seg.checkpoint_hash,
                     "training": {"steps": _phase_steps(tr),
                                  "wall_minutes": tr.get("total_minutes", tr.get("wall_minutes")),
                                  "phases": tr.get("phases"),
                                  "sources": tr.get("config", {}).get("sources"),
                                  "batch_size": tr.get("config", {}).get("batch_size"),
                                  "device": tr.get("device"),
                                  "cpu_seconds": None}}
    from pathxai.segment.unet_baseline import UNetPredictor, train_unet

    model, info = train_unet(cfg.sources, cpu_seconds=cpu_seconds, stain_aug=cfg.stain_aug,
                             scale_aug=cfg.scale_aug, category=cfg.category, seed=seed,
                             channels=cfg.channels, mpp=cfg.mpp, index=SHARED / "index.csv",
                             log=log)
    pred = UNetPredictor(model, cfg.category, mpp=cfg.mpp)
    pred.save(cdir / "model", config_name=cfg.name, training=info)
    return pred, {"n_parameters": info["n_parameters"], "training": info}


def run_config(cfg: Config, sets: dict[str, pd.DataFrame], *, cpu_seconds: float, seed: int,
               out: Path) -> dict:
    """Train (U-Nets) and score one config; writes ``<out>/<name>/result.json``."""
    import torch

    from pathxai.segment.evaluate import evaluate_index

    cdir = out / cfg.name
    cdir.mkdir(parents=True, exist_ok=True)
    logf = open(cdir / "log.txt", "a", buffering=1)

    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} [{cfg.name}] {msg}"
        logf.write(line + "\n")
        print(line, flush=True)

    log(f"start ({cfg.kind}; {cfg.note}; budget {cpu_seconds:.0f} CPU-s, seed {seed})")
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    pred, info = _predictor(cfg, cpu_seconds, seed, cdir, log)
    rows = pd.concat([sets[k] for k in cfg.test_sets], ignore_index=True)
    t_eval = time.process_time()
    res = evaluate_index(rows, pred, n_boot=N_BOOT, seed=0, absent_check=False, root=SHARED)
    log(f"scored {len(rows)} rows in {time.process_time() - t_eval:.0f} CPU-s")
    for r in res["summary"]:
        log(f"  {r['dataset']}/{r['category']}: Dice {_fmt_dice(r)} n={r['n']} "
            f"unsupported={r['n_unsupported']}")
    result = {"config": {**cfg.__dict__, "test_sets": list(cfg.test_sets)}, "kind": cfg.kind,
              "seed": seed if cfg.kind == "unet" else None,
              "cpu_seconds_budget": cpu_seconds if cfg.kind == "unet" else None,
              **info, "evaluation": res, "torch_threads": torch.get_num_threads(),
              "total_cpu_seconds": time.process_time() - t_cpu,
              "total_wall_seconds": time.perf_counter() - t_wall}
    tmp = cdir / "result.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, default=str))
    tmp.replace(cdir / "result.json")
    logf.close()
    return result


# --------------------------------------------------------------------------- reporting
def _fmt_dice(rec: dict | None) -> str:
    if rec is None or rec.get("dice") is None:
        return "–"
    lo, hi = rec.get("dice_ci_low"), rec.get("dice_ci_high")
    ci = f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else ""
    return f"{rec['dice']:.3f}{ci}"


def _column(cfg: Config) -> str:
    if cfg.kind == "unet":
        return f"U-Net `{cfg.name}`"
    return {"multitask": "multi-task `default`", "stain": "stain baseline"}[cfg.kind]


def write_report(out: Path, results: dict[str, dict], argv_info: dict) -> str:
    """``table.md`` and ``summary.json`` from the results present."""
    cols = [c for c in CONFIGS if c.name in results]
    keys = sorted({(r["dataset"], r["category"]) for res in results.values()
                   for r in res["evaluation"]["summary"]},
                  key=lambda k: list(TEST_LABELS).index(k) if k in TEST_LABELS else 99)
    header = ["test set", "category", "n"] + [_column(c) for c in cols]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for ds, cat in keys:
        cells, n = [], None
        for c in cols:
            rec = next((r for r in results[c.name]["evaluation"]["summary"]
                        if r["dataset"] == ds and r["category"] == cat), None)
            if rec is not None:
                n = rec["n"] or n
            cells.append(_fmt_dice(rec))
        lines.append(f"| {TEST_LABELS.get((ds, cat), ds)} | {cat} | {n} | " + " | ".join(cells) + " |")

    def fact(c: Config, what: str) -> str:
        res = results[c.name]
        tr = res.get("training") or {}
        if what == "params":
            return f"{res['n_parameters'] / 1e6:.2f} M" if res["n_parameters"] else "0"
        if c.kind == "stain":
            return "–"
        if what == "data":
            if c.kind == "multitask":
                return "mixture of 8 sources (see config)"
            aug = ["flips/rot90"] + (["stain"] if c.stain_aug else []) + (
                ["scale"] if c.scale_aug else [])
            src = " + ".join(f"{k} {v:.0%}" for k, v in tr["data"]["weights"].items())
            return f"{src}; {', '.join(aug)}"
        if what == "budget":
            if c.kind == "multitask":
                phases = tr.get("phases") or []
                n = sum("end_step" in ph for ph in phases) or 1
                n_avg = sum("average_of" in ph for ph in phases)
                return (f"{tr.get('wall_minutes')} wall-min of CPU training in {n} phase(s)"
                        + (f" and {n_avg} weight average(s)" if n_avg else "")
                        + " (1-2 torch threads; CPU time not recorded)")
            return f"{tr['cpu_seconds'] / 60:.1f} CPU-min ({tr['wall_seconds'] / 60:.1f} wall-min)"
        if what == "steps":
            if c.kind == "multitask" and tr.get("phases"):
                return f"{tr.get('steps')} steps (batch per phase: see config)"
            bs = tr.get("batch_size") or (tr.get("recipe") or {}).get("batch_size")
            return f"{tr.get('steps')} × batch {bs}"
        return ""

    for what, label in (("params", "parameters"), ("data", "training data / aug"),
                        ("budget", "training budget"), ("steps", "steps")):
        lines.append(f"| *{label}* | | | " + " | ".join(fact(c, what) for c in cols) + " |")
    unets = [results[c.name] for c in cols if c.kind == "unet"]
    seeds = ", ".join(str(s) for s in sorted({r["seed"] for r in unets}))
    budgets = ", ".join(f"{b / 60:g}" for b in sorted({r["cpu_seconds_budget"] for r in unets}))
    notes = [
        "",
        "Dice (mean over images) with a percentile bootstrap 95 % CI over images "
        f"({N_BOOT} resamples, seed 0); '–' = not applicable (a single-task U-Net answers only "
        "its own category). The PanNuke/BiomedParse target is the union of the typed "
        "cell masks of the image, so nuclei of other types count as false positives there. "
        "CPM-15 held-out has 4 images and PanNuke 2: their CIs are very wide.",
        f"U-Nets: seed(s) {seeds or '–'}, training budget(s) {budgets or '–'} CPU-min of "
        "process time (torch 1 thread; data preparation counted, set-up not); the "
        "multi-task model was trained separately (its own budget above).",
    ]
    table = "\n".join(lines + notes) + "\n"
    (out / "table.md").write_text(table)
    summary = {
        "question": "Does one model for many prompts cost accuracy against single-task "
                    "U-Nets of similar size trained on the same data for the same time?",
        "versions": _versions(), "run": argv_info,
        "configs": {
            name: {"kind": res["kind"], "config": res["config"], "seed": res.get("seed"),
                   "n_parameters": res["n_parameters"],
                   "cpu_seconds_budget": res.get("cpu_seconds_budget"),
                   "training": {k: v for k, v in (res.get("training") or {}).items()
                                if k != "log"},
                   "summary": res["evaluation"]["summary"],
                   "total_cpu_seconds": res.get("total_cpu_seconds"),
                   "total_wall_seconds": res.get("total_wall_seconds")}
            for name, res in results.items()},
        "test_sets": {"synthetic_nuclei": {"seed": SYNTH_SEED, "n": SYNTH_N, "side": SYNTH_SIDE,
                                           "mpp": 0.5}},
        "bootstrap": {"n_boot": N_BOOT, "seed": 0, "ci": 0.95, "resamples": "images"},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    return table


def _versions() -> dict:
    import scipy
    import skimage
    import torch

    import pathxai

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO,
                                    capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = None, None
    return {"pathxai": pathxai.__version__, "git_commit": commit, "git_dirty": dirty,
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "pandas": pd.__version__, "scipy": scipy.__version__,
            "scikit-image": skimage.__version__, "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cpu-minutes", type=float, default=15.0,
                    help="training budget of each U-Net in process CPU minutes (default 15)")
    ap.add_argument("--only", nargs="+", choices=[c.name for c in CONFIGS], default=None,
                    help="run only these configs (the table uses every result present)")
    ap.add_argument("--out", default=str(REPO / "results" / "single_task_unet"))
    ap.add_argument("--seed", type=int, default=0, help="U-Net training seed")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sets = build_test_sets(out)
    for c in CONFIGS:
        if args.only and c.name not in args.only:
            continue
        if (out / c.name / "result.json").is_file():
            print(f"[{c.name}] result exists, skipped", flush=True)
            continue
        run_config(c, sets, cpu_seconds=args.cpu_minutes * 60, seed=args.seed, out=out)
    results = {c.name: json.loads((out / c.name / "result.json").read_text())
               for c in CONFIGS if (out / c.name / "result.json").is_file()}
    table = write_report(out, results, {"cpu_minutes": args.cpu_minutes, "seed": args.seed,
                                        "only": args.only, "out": str(out)})
    print(table)
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
