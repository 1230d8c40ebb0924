#!/usr/bin/env bash
# Rebuild the shipped segmentation checkpoint (pathxai/segment/weights/default) from scratch.
#
#   bash analyses/train_default_checkpoint.sh            # train (resumes an interrupted run), export
#   RUN=training_runs/my_run bash analyses/train_default_checkpoint.sh --max-minutes 30
#
# Training data: the synthetic renderer (pathxai.datasets.render_patch) and the train rows of
# ../shared/data/index.csv (or $PATHXAI_SHARED_DATA/index.csv) minus the held-out split
# (pathxai/segment/configs/heldout_split.json). Recipe: pathxai/segment/configs/default.yaml.
# The shipped run: 3000 steps, 49.9 min of training on 1 shared CPU thread (see the model card); on a GPU
# the same config uses bf16 autocast and cuda_batch_size.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RUN=${RUN:-training_runs/default}
CONFIG=${CONFIG:-pathxai/segment/configs/default.yaml}
"$PY" -m pathxai.segment.train "$CONFIG" --out "$RUN" --resume "$@"
"$PY" - "$RUN/last" pathxai/segment/weights/default <<'PYEOF'
import sys
from pathxai.segment.build import export_checkpoint
print(export_checkpoint(sys.argv[1], sys.argv[2]))
PYEOF
