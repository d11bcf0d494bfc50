#!/usr/bin/env bash
# The main job: install everything (scripts/setup.sh), train the quick gaze tokenizer on the
# embedded generated clips, evaluate its held-out split with `tokcore eval` (tokenize, decode,
# measure) beside a DCT codec with the same bits per clip, and say where the report is.
# CAMERA=1 bash scripts/demo.sh does the same for the camera tokenizer afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
# One thread, as the README's table was made: the figures then do not depend on the machine's
# load (tokcore's own choice of threads adapts to it; OMP_NUM_THREADS overrides it).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "installed in $((SECONDS - start)) s"
run=runs/demo-gaze
rm -rf "$run"
job() {  # train, then evaluate the held-out split (tokenize, decode, measure beside the DCT codec)
  local cfg=$1 run=$2
  rm -rf "$run"
  tokcore train --config "$cfg" --output "$run"
  tokcore eval --checkpoint "$run" --quiet
}
job tok-gaze:quick "$run"
if [ "${CAMERA:-0}" = 1 ]; then
  job tok-camera:quick runs/demo-camera
fi
echo "training samples: $run/samples/   tokens and report: $run/eval-val/   total $((SECONDS - start)) s"
