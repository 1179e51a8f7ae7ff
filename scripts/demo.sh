#!/usr/bin/env bash
# The main job on the built-in example: writes demo-output/example.mrc (ideal helices and a sheet simulated at
# 4 Å) and annotates it with the published Haruspex network. Without the published weights installed, the
# annotate step explains how to install them and exits non-zero: it never runs with random weights.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-envs.sh > .setup-envs.log 2>&1 || { echo "environment setup failed: see .setup-envs.log" >&2; exit 1; }
.venv-worker/bin/haruspex example demo-output/example.mrc
.venv-worker/bin/haruspex annotate demo-output/example.mrc -o demo-output "$@"
