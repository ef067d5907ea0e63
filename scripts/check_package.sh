#!/usr/bin/env bash
# Build the wheel and the sdist, check them (twine check), install the wheel in a fresh virtualenv
# and use it from outside the checkout: `pip check`, a 2-step DPO demo, a packaged recipe by name;
# then run a few of the sdist's own tests from the unpacked sdist. scripts/test.sh (CI) calls it.
#   bash scripts/check_package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
Q="--quiet --disable-pip-version-check --root-user-action=ignore"

$PY -m build --sdist --wheel --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 \
  || { cat "$WORK/build.log"; exit 1; }
$PY -m twine check --strict "$WORK"/dist/*
$PY -m venv "$WORK/venv"
VPY=$WORK/venv/bin/python
# torch as setup.sh would (the CPU build here); the rest as a user's `pip install smol-align` would
$VPY -m pip install $Q "$($PY -c 'import torch; print("torch==" + torch.__version__.split("+")[0])')"
$VPY -m pip install $Q "$WORK"/dist/*.whl
cd "$WORK"   # outside the checkout: only the installed wheel can answer
$VPY -m pip check
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1
"$WORK/venv/bin/smol-align" dpo --max-steps 2 --max-eval-pairs 8 --output-dir "$WORK/demo" --quiet
test -f "$WORK/demo/metrics.json"
# The sdist's tests run from the unpacked sdist, against the installed wheel
tar -xzf "$WORK"/dist/*.tar.gz -C "$WORK"
$VPY -m pip install $Q pytest hypothesis
(cd "$WORK"/smol_align-*/ && $VPY -m pytest -q -p no:cacheprovider tests/test_reference.py tests/test_structure.py)
echo "check_package: wheel and sdist built and checked; the wheel runs the demo outside the checkout"
