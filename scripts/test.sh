#!/usr/bin/env bash
# Install everything (scripts/setup.sh), then run the whole test suite: core, every plugin's
# own tests, the out-of-tree template plugin, and each plugin alone in a fresh environment.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q tests plugins/tok_*/tests "$@"
