"""Sub-commands ``pathxai segment``, ``pathxai evaluate`` and ``pathxai train``.

Thin: arguments are parsed here and the work is done by the segmentation API.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pathxai.exceptions import CheckpointError, MissingMPPError, PathXAIError, SlideReadError

__all__ = ["register", "load_predictor", "write_results", "IMAGE_SUFFIXES"]

#: files read as plain images (everything else is opened as a slide)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
#: slides up to this many level-0 pixels are segmented whole when no slide streamer exists
_MAX_WHOLE_PIXELS = 8192 * 8192


def load_predictor(name: str, *, tta: bool | str | None = None) -> Any:
    """``"stain"`` -> :class:`StainSegmentor`; anything else -> ``Segmentor.from_pretrained(name)``
    (with flip test-time augmentation when ``tta`` is ``True``/``"all"`` or, for tissue-level
    prompts only, ``"tissue"``; the stain baseline refuses ``tta``).

    Raises
    ------
    CheckpointError
        When the neural model code is not installed in this build.
    """
    if name == "stain":
        from pathxai.segment.stain import StainSegmentor

        if tta:
            raise PathXAIError("--tta applies to a model; the stain baseline has no network "
                               "to augment: drop --tta or pass --model")
        return StainSegmentor()
    try:
        predictor_mod = importlib.import_module("pathxai.segment.predictor")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("pathxai.segment"):
            raise CheckpointError(
                f"model {name!r} needs pathxai.segment.predictor, which is not in this build; "
                "use --model stain for the classical baseline"
            ) from exc
        raise
    return predictor_mod.Segmentor.from_pretrained(name, tta=tta)


def write_results(results: list, out_dir: Path, *, mpp: float | None, extra: dict | None = None
                  ) -> list[dict]:
    """Write one mask per prompt in the plain mask layout and return the JSON summaries.

    Files: ``<slug>.png`` (uint8, 255 inside), ``<slug>.instances.png`` (uint16) or
    ``.instances.tif`` (uint32, more than 65,535 objects) for cell/nucleus prompts, and
    ``meta.json`` (``mpp``, prompts, predictor).
    """
    from PIL import Image

    out_dir.mkdir(parents=True, exist_ok=True)
    summaries = []
    for res in results:
        p = res.prompt
        mask_path = out_dir / f"{p.slug}.png"
        Image.fromarray(np.asarray(res.mask, bool).astype(np.uint8) * 255).save(mask_path)
        inst_path = None
        if res.instances is not None:
            inst = np.asarray(res.instances)
            if inst.max(initial=0) <= np.iinfo(np.uint16).max:
                inst_path = out_dir / f"{p.slug}.instances.png"
                Image.fromarray(inst.astype(np.uint16)).save(inst_path)
            else:
                import tifffile

                inst_path = out_dir / f"{p.slug}.instances.tif"
                tifffile.imwrite(inst_path, inst.astype(np.uint32), compression="zlib")
        summaries.append({
            "prompt": p.text, "label": p.label, "canonical": p.canonical, "slug": p.slug,
            "structure": p.structure, "region": p.region, "qualifier": p.qualifier,
            "match": p.match, "presence": float(res.presence),
            "area_fraction": float(res.area_fraction), "n_objects": res.n_objects,
            "mask": str(mask_path), "instances": None if inst_path is None else str(inst_path),
        })
    meta = {"mpp": mpp, "prompts": [s["prompt"] for s in summaries],
            "labels": [s["label"] for s in summaries], **(extra or {})}
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
    return summaries


def _unique_prompts(texts: list[str]):
    from pathxai.segment.ontology import parse_prompt

    seen: dict[str, Any] = {}
    for t in texts:
        p = parse_prompt(t)
        seen.setdefault(p.slug, p)
    return list(seen.values())


def _provenance(args, predictor) -> dict:
    """What produced the masks: input, model name, weights hash, mask rules, version."""
    from pathxai import __version__
    from pathxai.segment.evaluate import model_provenance

    return {"source": str(Path(args.input).resolve()), "model": args.model,
            "pathxai_version": __version__, **model_provenance(predictor)}


def _segment_image(args, predictor, prompts) -> list[dict]:
    from pathxai.datasets.index import load_image

    image = load_image(args.input)
    mpp = args.mpp
    extra = _provenance(args, predictor)
    if mpp is None:
        mpp = float(getattr(predictor, "mpp", 0.5))
        extra["mpp_assumed"] = True
        print(f"pathxai segment: warning: no --mpp given; assuming the image is at the "
              f"predictor's {mpp} µm/px (areas and scale-dependent rules may be wrong)",
              file=sys.stderr)
    predictor.set_image(image, mpp=mpp)
    results = predictor.predict(prompts)
    return write_results(results, Path(args.out), mpp=mpp, extra=extra)


def _segment_slide(args, predictor, prompts) -> list[dict] | dict:
    try:
        from pathxai.slides import open_slide
    except ModuleNotFoundError as exc:  # pragma: no cover - slides stage absent
        raise MissingMPPError(
            f"{args.input!r} is not a plain image and pathxai.slides is not installed"
        ) from exc
    reader = open_slide(args.input, mpp=args.mpp)
    try:
        slide_mod = importlib.import_module("pathxai.segment.slide")
    except ModuleNotFoundError as exc:
        if not (exc.name and exc.name.startswith("pathxai.segment")):
            raise
        slide_mod = None
    if slide_mod is not None and hasattr(slide_mod, "segment_slide"):
        # generic streamer: segment_slide(predictor, slide, prompts, *, out_dir, slide_mpp, ...)
        return slide_mod.segment_slide(predictor, reader, prompts, out_dir=Path(args.out),
                                       slide_mpp=args.mpp)
    # no streamer: segment the whole slide as one image at the predictor's resolution
    w, h = reader.dimensions
    if reader.mpp is None:
        raise MissingMPPError(f"slide {args.input!r} has no mpp in its metadata; pass --mpp")
    work_mpp = float(getattr(predictor, "mpp", reader.mpp))
    scale = reader.mpp / work_mpp
    ow, oh = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    if ow * oh > _MAX_WHOLE_PIXELS:
        raise PathXAIError(
            f"slide {args.input!r} is {ow}x{oh} px at {work_mpp} µm/px, too large to segment "
            "whole without pathxai.segment.slide.segment_slide (not in this build)"
        )
    image = reader.read_region_mpp((0, 0), (ow, oh), mpp=work_mpp)
    predictor.set_image(image, mpp=work_mpp)
    results = predictor.predict(prompts)
    return write_results(results, Path(args.out), mpp=work_mpp, extra=_provenance(args, predictor))


def _cmd_segment(args: argparse.Namespace) -> int:
    if not Path(args.input).exists():
        raise SlideReadError(args.input, "file does not exist")
    if args.mpp is not None and not (args.mpp > 0):
        raise MissingMPPError(f"--mpp must be a positive number of µm per pixel, got {args.mpp}")
    prompts = _unique_prompts(args.prompt)
    predictor = load_predictor(args.model, tta=args.tta)
    if Path(args.input).suffix.lower() in IMAGE_SUFFIXES:
        summary = _segment_image(args, predictor, prompts)
    else:
        summary = _segment_slide(args, predictor, prompts)
    print(json.dumps(summary, indent=1, default=str))
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pathxai.segment.evaluate import evaluate_index

    name = args.baseline or args.model or "default"
    predictor = load_predictor(name, tta=args.tta)
    result = evaluate_index(args.index, predictor, split=args.split, datasets=args.dataset,
                            out=args.out, n_boot=args.n_boot, seed=args.seed,
                            absent_check=not args.no_absent)
    print(f"{'dataset':18s} {'category':24s} {'n':>4s} {'dice':>6s} {'95% CI':>15s} {'aji':>6s}")
    for r in result["summary"]:
        d = r["dice"]
        ci = (f"[{r['dice_ci_low']:.3f}, {r['dice_ci_high']:.3f}]"
              if r["dice_ci_low"] is not None else "-")
        print(f"{r['dataset']:18s} {r['category']:24s} {r['n']:4d} "
              f"{'-' if d is None else f'{d:.3f}':>6s} {ci:>15s} "
              f"{'-' if r['aji'] is None else format(r['aji'], '.3f'):>6s}"
              + (f"  ({r['n_unsupported']} unsupported)" if r["n_unsupported"] else ""))
    ab = result["absent"]
    if ab.get("overall_empty_rate") is not None:
        print(f"absent objects: empty-mask rate {ab['overall_empty_rate']:.3f} "
              f"over {sum(s['n'] for s in ab['summary'])} prompts")
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    try:
        train_mod = importlib.import_module("pathxai.segment.train")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("pathxai.segment"):
            raise CheckpointError("training needs pathxai.segment.train, which is not in this build") from exc
        raise
    kwargs: dict[str, Any] = {}
    if args.resume:
        kwargs["resume"] = True
    if args.max_minutes is not None:
        kwargs["max_minutes"] = args.max_minutes
    if args.out is not None:
        kwargs["out_dir"] = args.out
    out = train_mod.train_from_config(args.config, **kwargs)
    if out is not None:
        print(json.dumps(out, indent=1, default=str) if isinstance(out, (dict, list)) else out)
    return 0


def add_tta_option(parser: argparse.ArgumentParser) -> None:
    """``--tta [all|tissue]``: flip test-time augmentation for every prompt (``--tta``) or for
    tissue-level prompts only (``--tta tissue``); ``None`` when absent (see ``Segmentor(tta=)``)."""
    parser.add_argument("--tta", nargs="?", const="all", default=None, choices=["all", "tissue"],
                        help="test-time augmentation: average the model over 4 flips (about 4x "
                             "slower); '--tta tissue' for tissue-level prompts only")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``segment``, ``evaluate`` and ``train`` to the ``pathxai`` command."""
    p = subparsers.add_parser(
        "segment", help="segment an image or slide from text prompts",
        description="Write one binary mask PNG per prompt (and instance labels for cell/nucleus "
                    "prompts) to --out, and print a JSON summary per prompt.")
    p.add_argument("input", help="image (PNG/JPEG) or whole-slide file")
    p.add_argument("--prompt", action="append", required=True,
                   help="text prompt, e.g. 'tumour' or 'cell-level lymphocyte in breast pathology'; repeatable")
    p.add_argument("--mpp", type=float, default=None, help="µm per pixel of the input (level 0)")
    p.add_argument("--model", default="default",
                   help="checkpoint name or path, or 'stain' for the classical baseline (default: default)")
    p.add_argument("--out", required=True, help="output folder")
    add_tta_option(p)
    p.set_defaults(func=_cmd_segment)

    e = subparsers.add_parser(
        "evaluate", help="score a predictor on an image-mask index",
        description="Dice/IoU/AJI per (dataset, category) with bootstrap CIs, plus an absent-object check.")
    e.add_argument("--index", required=True, help="index CSV in the shared/data/index.csv format")
    e.add_argument("--split", default=None, help="keep only this split (train/test)")
    e.add_argument("--dataset", action="append", default=None, help="keep only this dataset; repeatable")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--model", default=None, help="checkpoint name or path")
    g.add_argument("--baseline", choices=["stain"], default=None, help="classical baseline")
    e.add_argument("--out", default=None, help="metrics JSON to write")
    e.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--no-absent", action="store_true", help="skip the absent-object check")
    add_tta_option(e)
    e.set_defaults(func=_cmd_evaluate)

    t = subparsers.add_parser("train", help="train a segmentation model from a config file")
    t.add_argument("config", help="training config (YAML)")
    t.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    t.add_argument("--max-minutes", type=float, default=None,
                   help="stop (after saving) after this many minutes")
    t.add_argument("--out", default=None, help="run folder (overrides the config's out_dir)")
    t.set_defaults(func=_cmd_train)
