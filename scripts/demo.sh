#!/usr/bin/env bash
# A newcomer's first command: set everything up, then run the demo, a real DPO run on the
# embedded SmolLM2-135M-Instruct with the built-in data and the preset for this machine.
#   bash scripts/demo.sh            # = setup + `smol-align dpo`
#   bash scripts/demo.sh orpo       # the same with ORPO; extra flags go to smol-align
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh
method=${1:-dpo}; shift || true
exec $PY -m smol_align "$method" "$@"
