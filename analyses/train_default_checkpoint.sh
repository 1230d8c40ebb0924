#!/usr/bin/env bash
# Rebuild the shipped segmentation checkpoint (pathxai/segment/weights/default) from scratch.
#
#   bash analyses/train_default_checkpoint.sh            # all nine phases (resumes an interrupted run), then export
#   MAX_MINUTES=30 bash analyses/train_default_checkpoint.sh   # bound each call (resume later)
#
# Phase 1: pathxai/segment/configs/default.yaml (3000 steps, synthetic share 0.36).
# Phase 2: pathxai/segment/configs/long.yaml continues that run to 8000 steps with the synthetic
#          share raised to 0.55 (tumour / gland / necrosis were weak on synthetic patches after phase 1).
# Phase 3: pathxai/segment/configs/refine.yaml, 3000 steps at a lower learning rate from the end of
#          phase 2 (fresh optimizer) with the real gland and tumour-region sets weighted up.
# Phase 4: pathxai/segment/configs/context.yaml, 2400 steps of 384-px crops (192 µm field of view
#          instead of 128 µm) from the end of phase 3, glands weighted up again (2 torch threads).
# Phase 5: pathxai/segment/configs/wide.yaml, 2000 steps from the end of phase 4 at half its learning rate;
#          30 % of the steps are wide batches (4 crops of 512 px = 256 µm from GlaS, EBHI and synthetic
#          patches), the rest phase 4's batches.
# Phase 6: pathxai/segment/configs/wide2.yaml, phase 5's recipe a second time from the end of phase 5
#          (seed 5); then the equal-weight average of the ends of phases 5 and 6 (training_runs/wide2_avg,
#          pathxai.segment.build.average_checkpoints).
# Phase 7: pathxai/segment/configs/wide640.yaml, from wide2_avg: the wide batches are 3 crops of 640 px
#          (320 µm); then the equal-weight average of wide2_avg and the end of phase 7
#          (training_runs/wide640_avg).
# Phase 8: wide640_avg grown by identity-initialised encoder blocks (pathxai.segment.build.grow_checkpoint,
#          enc_extra 0 1 1 2 2: 1.60 M -> 2.61 M parameters, same outputs) into training_runs/grown_init;
#          pathxai/segment/configs/grown.yaml (phase 7's recipe, 2400 steps) from there; then the
#          equal-weight average of grown_init and its end (training_runs/grown_avg).
# Phase 9: pathxai/segment/configs/grown3.yaml, 1500 steps from grown_avg with more synthetic patches and
#          Kather tiles; then the equal-weight average of grown_avg and its end (training_runs/grown3_avg).
# Phase 10: pathxai/segment/configs/polish.yaml, phase 9's mix at a 3x higher learning rate (6e-4) for 3000
#          steps from grown3_avg; then the equal-weight average of grown3_avg and its end
#          (training_runs/polish_avg), which is exported.
# The shipped weights are polish_avg (391.5 min of CPU training in all: 50 + 50 + 33 + 49 + 25 + 28 + 29
# + 31 + 20 + 77; the growth and the averages take seconds);
# the phase boundaries and times are recorded in config.json -> training.phases.
# Training data: the synthetic renderer (pathxai.datasets.render_patch) and the train rows of
# ../shared/data/index.csv (or $PATHXAI_SHARED_DATA/index.csv) minus the held-out split
# (pathxai/segment/configs/heldout_split.json). On a GPU the configs use bf16 autocast and cuda_batch_size.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EXTRA=()
if [[ -n "${MAX_MINUTES:-}" ]]; then EXTRA=(--max-minutes "$MAX_MINUTES"); fi
"$PY" -m pathxai.segment.train pathxai/segment/configs/default.yaml --out training_runs/default --resume "${EXTRA[@]}"
if [[ ! -d training_runs/long/last ]]; then
  mkdir -p training_runs/long
  cp -r training_runs/default/last training_runs/long/last
fi
"$PY" -m pathxai.segment.train pathxai/segment/configs/long.yaml --out training_runs/long --resume "${EXTRA[@]}"
"$PY" -m pathxai.segment.train pathxai/segment/configs/refine.yaml --out training_runs/refine --resume "${EXTRA[@]}"
"$PY" -m pathxai.segment.train pathxai/segment/configs/context.yaml --out training_runs/context --resume "${EXTRA[@]}"
"$PY" -m pathxai.segment.train pathxai/segment/configs/wide.yaml --out training_runs/wide --resume "${EXTRA[@]}"
"$PY" -m pathxai.segment.train pathxai/segment/configs/wide2.yaml --out training_runs/wide2 --resume "${EXTRA[@]}"
average() {   # average SRC1 SRC2 DST: equal-weight mean of two checkpoints (skipped when DST exists)
  if [[ ! -f "$3/model.safetensors" ]]; then
    "$PY" -c "import sys; from pathxai.segment.build import average_checkpoints as a; a(sys.argv[1:3], sys.argv[3])" "$1" "$2" "$3"
  fi
}
average training_runs/wide/last training_runs/wide2/last training_runs/wide2_avg/last
"$PY" -m pathxai.segment.train pathxai/segment/configs/wide640.yaml --out training_runs/wide640 --resume "${EXTRA[@]}"
average training_runs/wide2_avg/last training_runs/wide640/last training_runs/wide640_avg/last
grow() {   # grow SRC DST E1 E2 E3 E4 E5 SEED: SRC with E_i identity-initialised encoder blocks added at
           # level i (skipped when DST exists)
  if [[ ! -f "$2/model.safetensors" ]]; then
    "$PY" -c "import sys; from pathxai.segment.build import grow_checkpoint as g; g(sys.argv[1], sys.argv[2], enc_extra=[int(x) for x in sys.argv[3:8]], seed=int(sys.argv[8]))" "$@"
  fi
}
grow training_runs/wide640_avg/last training_runs/grown_init/last 0 1 1 2 2 0
"$PY" -m pathxai.segment.train pathxai/segment/configs/grown.yaml --out training_runs/grown --resume "${EXTRA[@]}"
average training_runs/grown_init/last training_runs/grown/last training_runs/grown_avg/last
"$PY" -m pathxai.segment.train pathxai/segment/configs/grown3.yaml --out training_runs/grown3 --resume "${EXTRA[@]}"
average training_runs/grown_avg/last training_runs/grown3/last training_runs/grown3_avg/last
"$PY" -m pathxai.segment.train pathxai/segment/configs/polish.yaml --out training_runs/polish --resume "${EXTRA[@]}"
average training_runs/grown3_avg/last training_runs/polish/last training_runs/polish_avg/last
"$PY" - training_runs/polish_avg/last pathxai/segment/weights/default <<'PYEOF'
import json
import sys
from pathlib import Path

from pathxai.segment.build import export_checkpoint

dst = export_checkpoint(sys.argv[1], sys.argv[2])
phases, before = [], 0.0
for run, cfg in (("default", "default.yaml"), ("long", "long.yaml"), ("refine", "refine.yaml"),
                 ("context", "context.yaml"), ("wide", "wide.yaml"), ("wide2", "wide2.yaml"),
                 ("wide640", "wide640.yaml"), ("grown", "grown.yaml"), ("grown3", "grown3.yaml"),
                 ("polish", "polish.yaml")):
    init = Path(f"training_runs/{run}_init/last/config.json")
    if init.exists():   # the phase starts from a grown copy of the previous checkpoint
        g = json.loads(init.read_text())["training"]["grown_from"]
        phases.append({"grown_from": g["checkpoint"], "run": f"training_runs/{run}_init",
                       "enc_extra": g["enc_extra"], "seed": g["seed"], "minutes": 0.0})
    st = json.loads(Path(f"training_runs/{run}/last/train_state.json").read_text())
    minutes = st["elapsed_s"] / 60
    # long continues the default run's clock; the later phases start fresh ones (init_from)
    own = minutes - before if run == "long" else minutes
    before = minutes if run in ("default", "long") else before
    phases.append({"config": f"pathxai/segment/configs/{cfg}", "run": f"training_runs/{run}",
                   "end_step": st["step"], "minutes": round(own, 1)})
    avg = Path(f"training_runs/{run}_avg/last/config.json")
    if avg.exists():   # the phase was followed by an average (no training): its recorded sources
        srcs = [a["checkpoint"] for a in json.loads(avg.read_text())["training"]["average_of"]]
        phases.append({"average_of": srcs, "run": f"training_runs/{run}_avg", "minutes": 0.0})
conf = json.loads((dst / "config.json").read_text())
# an average carries its first source's training block: describe the last trained phase instead
trained = [ph for ph in phases if "end_step" in ph]
last = json.loads(Path(trained[-1]["run"], "last", "config.json").read_text())["training"]
conf["training"].update({k: last[k] for k in ("config", "step", "total_steps", "wall_minutes",
                                              "device", "torch")})
conf["training"]["phases"] = phases
conf["training"]["total_minutes"] = round(sum(p["minutes"] for p in phases), 1)
(dst / "config.json").write_text(json.dumps(conf, indent=1) + "\n")
print(dst, phases)
PYEOF
