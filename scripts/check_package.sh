#!/usr/bin/env bash
# Build the wheel and the sdist, check them (twine check), install the wheel in a fresh virtualenv
# and use it from outside the checkout: `pip check`, a 2-step DPO demo, a packaged recipe and the
# accelerate configs by name, the 4-bit preset's message without the qlora extra;
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
# A shipped recipe by name (its own dataset is on the Hub: HH-RLHF-shaped rows from a file instead, as the
# recipe's comment says for offline use), and the accelerate configs by name
$VPY - "$WORK/hh.jsonl" <<'PYEOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(12):
        q = f"\n\nHuman: What is {i} plus {i}?\n\nAssistant:"
        f.write(json.dumps({"chosen": f"{q} It is {2 * i}.", "rejected": f"{q} Go away."}) + "\n")
PYEOF
"$WORK/venv/bin/smol-align" dpo --config hh-rlhf-cpu --dataset "$WORK/hh.jsonl" --max-steps 1 \
  --max-eval-pairs 4 --output-dir "$WORK/recipe" --quiet
test -f "$WORK/recipe/metrics.json"
for name in multi-gpu fsdp zero2 zero3; do test -f "$("$WORK/venv/bin/smol-align" recipes --path "$name")"; done
# bitsandbytes comes only with the qlora extra: without it, the 4-bit preset says how to get it
if "$WORK/venv/bin/smol-align" dpo --preset qlora-4bit --max-steps 1 --output-dir "$WORK/q" >"$WORK/q.log" 2>&1; then
  echo "check_package: --preset qlora-4bit ran without bitsandbytes installed" >&2; exit 1
fi
grep -q "pip install 'smol-align\[qlora\]'" "$WORK/q.log" || { cat "$WORK/q.log"; exit 1; }
test ! -e "$WORK/q"
# The sdist's tests run from the unpacked sdist, against the installed wheel
tar -xzf "$WORK"/dist/*.tar.gz -C "$WORK"
$VPY -m pip install $Q pytest hypothesis
(cd "$WORK"/smol_align-*/ && $VPY -m pytest -q -p no:cacheprovider tests/test_reference.py tests/test_structure.py)
echo "check_package: wheel and sdist built and checked; the wheel runs the demo outside the checkout"
