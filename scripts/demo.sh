#!/usr/bin/env bash
# Install everything (scripts/setup.sh), then run the main job.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
tokcore plugins --check
tokcore list
tokcore config --config cfgs/examples/reconstruction.yaml
