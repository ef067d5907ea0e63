#!/usr/bin/env bash
# Run the whole test suite, slow tests on the embedded SmolLM2 and notebooks included, after
# the same setup a newcomer runs. This is exactly what CI (.ci/run) calls.
#   bash scripts/test.sh            # extra arguments go to pytest, e.g. -k presets
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1
set +e
$PY -m pytest -ra --durations=15 "$@"
status=$?
set -e
case $status in
  0) echo "test.sh: all tests passed" ;;
  5) echo "test.sh: pytest collected no tests: the suite is missing" >&2 ;;
  *) echo "test.sh: pytest exited with $status" >&2 ;;
esac
exit $status
