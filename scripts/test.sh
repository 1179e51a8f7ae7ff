#!/usr/bin/env bash
# The whole test suite: sets up both environments (scripts/setup-envs.sh), lints, then runs
#   - the engine tests in the worker environment (.venv-worker: TensorFlow, numpy 2), and
#   - the Scipion tests in the Scipion environment (.venv), whose protocols launch the real worker.
# Tests that need ../shared skip with a reason when it is absent. Extra arguments go to both pytest runs.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-envs.sh || exit 1
.venv/bin/ruff check . || exit 1

reports=$(mktemp -d)
status=0
.venv-worker/bin/python -m pytest haruspex_engine/tests -q -rs --junitxml="$reports/engine.xml" "$@" || status=1
.venv/bin/python -m pytest haruspex_plugin/tests -q -rs -W ignore --junitxml="$reports/plugin.xml" "$@" || status=1
.venv/bin/python scripts/sum_junit.py "$reports"/*.xml || status=1
exit $status
