"""Did a new checkpoint gain? Paired per-image comparison of two evaluation results.

Both files are ``model.json`` outputs of ``analyses/evaluate_default_checkpoint.py`` (or
``pathxai evaluate --out``) on the same rows; ``A`` is the reference (e.g. the shipped
checkpoint), ``B`` the candidate. Per (dataset, category) it prints the mean Dice of each,
the mean paired difference ``B - A`` with 95 % bootstrap CIs (images resampled; clusters,
e.g. GlaS patients, resampled) and how many images got better / worse, then every
known-absent prompt whose empty-mask outcome changed
(:mod:`pathxai.segment.compare`).

Run::

    .venv/bin/python analyses/evaluate_default_checkpoint.py --model default --out results/eval_a --no-baseline
    .venv/bin/python analyses/evaluate_default_checkpoint.py --model CANDIDATE --out results/eval_b --no-baseline
    .venv/bin/python analyses/compare_checkpoints.py results/eval_a/model.json \\
        results/eval_b/model.json [--out results/compare.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _f(x: float, signed: bool = False) -> str:
    if x != x:   # NaN
        return "–"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def render(a: dict, b: dict, *, n_boot: int = 2000, seed: int = 0) -> str:
    """Markdown: the paired table and the absent-object changes."""
    from pathxai.segment.compare import absent_changes, paired_dice_table

    t = paired_dice_table(a, b, n_boot=n_boot, seed=seed)
    lines = ["| dataset | category | n | Dice A | Dice B | B − A [95 % CI, images] "
             "| [95 % CI, clusters] | better / worse |",
             "|---|---|---|---|---|---|---|---|"]
    for r in t.itertuples():
        ci = (f" [{_f(r.diff_ci_low, True)}, {_f(r.diff_ci_high, True)}]"
              if r.diff_ci_low == r.diff_ci_low else "")
        cci = (f"[{_f(r.diff_ci_low_cluster, True)}, {_f(r.diff_ci_high_cluster, True)}]"
               if r.diff_ci_low_cluster == r.diff_ci_low_cluster else "–")
        lines.append(f"| {r.dataset} | {r.category} | {r.n} | {_f(r.dice_a)} | {_f(r.dice_b)} | "
                     f"{_f(r.diff, True)}{ci} | {cci} | {r.n_better} / {r.n_worse} |")
    rates = [((x.get("absent") or {}).get("overall_empty_rate")) for x in (a, b)]
    lines += ["", "Absent objects, empty-mask rate: A "
              + ("–" if rates[0] is None else f"{rates[0]:.3f}") + ", B "
              + ("–" if rates[1] is None else f"{rates[1]:.3f}")]
    ch = absent_changes(a, b)
    for r in ch.itertuples():
        lines.append(f"- {r.category} on {r.image} ({r.reason}): empty {bool(r.empty_a)} → "
                     f"{bool(r.empty_b)} (presence {r.presence_a:.2f} → {r.presence_b:.2f}, "
                     f"B keeps {100 * r.pred_fraction_b:.1f} % of the pixels)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a", type=Path, help="reference result (model.json)")
    ap.add_argument("b", type=Path, help="candidate result (model.json)")
    ap.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    text = render(json.loads(args.a.read_text()), json.loads(args.b.read_text()),
                  n_boot=args.n_boot, seed=args.seed)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(f"A: {args.a}\nB: {args.b}\n\n" + text)
    print(text, end="")
    return text


if __name__ == "__main__":
    main()
