#!/usr/bin/env bash
# The main job: install everything (scripts/setup.sh), train the quick gaze tokenizer on the
# embedded generated clips, tokenize and decode its held-out split, print its metrics beside
# a DCT codec with the same bits per clip, and say where the plots are.
# CAMERA=1 bash scripts/demo.sh does the same for the camera tokenizer afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# These models are small: a second thread gains little, and on a shared machine it loses a lot.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "installed in $((SECONDS - start)) s"
run=runs/demo-gaze
rm -rf "$run"
tokcore train --config cfgs/gaze/quick.yaml --output "$run"
tokcore gaze-report --run "$run"
if [ "${CAMERA:-0}" = 1 ]; then
  rm -rf runs/demo-camera
  tokcore train --config cfgs/camera/quick.yaml --output runs/demo-camera
  tokcore camera-report --run runs/demo-camera
fi
echo "training samples: $run/samples/   report: $run/report/   total $((SECONDS - start)) s"
