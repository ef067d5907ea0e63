#!/usr/bin/env bash
# Run ruff (lint and format check), the whole test suite (slow tests on the embedded SmolLM2 and
# notebooks included), the package check (scripts/check_package.sh) and the docs build (mkdocs
# build --strict), after the same setup a newcomer runs. This is exactly what CI (.ci/run) calls.
#   bash scripts/test.sh            # extra arguments go to pytest, e.g. -k presets
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRL_EXPERIMENTAL_SILENCE=1
set +e
# Style first (ruff, configured in pyproject.toml): a lint or format finding fails the run, after the tests.
$PY -m ruff check smol_align tests scripts && $PY -m ruff format --check smol_align tests scripts
style=$?
$PY -m pytest -ra --durations=15 "$@"
status=$?
set -e
case $status in
  0) echo "test.sh: all tests passed" ;;
  5) echo "test.sh: pytest collected no tests: the suite is missing" >&2 ;;
  *) echo "test.sh: pytest exited with $status" >&2 ;;
esac
# The package as users get it: wheel and sdist built and checked, the wheel installed in a fresh virtualenv
# and run from outside the checkout (scripts/check_package.sh); the whole run only, not `test.sh -k x`
package=0
if [ "$#" -eq 0 ]; then
  set +e
  bash scripts/check_package.sh
  package=$?
  set -e
fi
# The documentation site (mkdocs.yml, docs/, the API pages from the docstrings), built with --strict: a broken
# link, a missing page or a docstring griffe cannot read fails the run; the whole run only. The docs extra is
# installed here, not by scripts/setup.sh: the demo does not need mkdocs. No --quiet: it hides the warnings
# that --strict counts, and the build passes with them.
docs=0
if [ "$#" -eq 0 ]; then
  set +e
  $PY -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e ".[docs]" &&
    NO_MKDOCS_2_WARNING=1 $PY -m mkdocs build --strict --site-dir site
  docs=$?
  set -e
fi
if [ "$docs" -ne 0 ]; then
  echo "test.sh: the docs build failed (mkdocs build --strict above)" >&2
  [ "$status" -eq 0 ] && status=1
fi
if [ "$package" -ne 0 ]; then
  echo "test.sh: the package check failed (scripts/check_package.sh above)" >&2
  [ "$status" -eq 0 ] && status=1
fi
if [ "$status" -eq 0 ] && [ "$style" -ne 0 ]; then
  echo "test.sh: ruff found style problems (ruff check / ruff format --check above)" >&2
  status=1
fi
exit $status
