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
# One thread, as the README's table was made: the figures then do not depend on the machine's
# load (tokcore's own choice of threads adapts to it; OMP_NUM_THREADS overrides it).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
echo "installed in $((SECONDS - start)) s"
run=runs/demo-gaze
rm -rf "$run"
job() {  # train, tokenize the held-out split, decode it, report against the DCT codec
  local cfg=$1 run=$2 report=$3
  rm -rf "$run"
  tokcore train --config "$cfg" --output "$run"
  tokcore tokenize --checkpoint "$run" --output "$run/roundtrip-val/tokens" data.split=val
  tokcore decode --checkpoint "$run" --tokens "$run/roundtrip-val/tokens" --output "$run/roundtrip-val/decoded"
  tokcore "$report" --run "$run"
}
job tok-gaze:quick "$run" gaze-report
if [ "${CAMERA:-0}" = 1 ]; then
  job tok-camera:quick runs/demo-camera camera-report
fi
echo "training samples: $run/samples/   tokens: $run/roundtrip-val/   report: $run/report/   total $((SECONDS - start)) s"
