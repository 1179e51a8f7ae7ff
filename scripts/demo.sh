#!/usr/bin/env bash
# The main job on the built-in example: writes demo-output/example.mrc (ideal helices and a sheet simulated at
# 4 Å) and annotates it. With the published Haruspex weights installed, the published network annotates it.
# Without them, this script says how to install them and then annotates with the bundled DEMO MODEL (a small
# network trained by this project on simulated maps, clearly labelled in every output; not the published network).
# It never runs with random weights. Extra arguments go to `haruspex annotate`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-envs.sh > .setup-envs.log 2>&1 || { echo "environment setup failed: see .setup-envs.log" >&2; exit 1; }
.venv-worker/bin/haruspex example demo-output/example.mrc
if .venv-worker/bin/haruspex weights path > /dev/null 2>&1; then
    .venv-worker/bin/haruspex annotate demo-output/example.mrc -o demo-output "$@"
else
    .venv-worker/bin/haruspex weights path || true  # explains how to install the published weights
    echo "demo: the published weights are not installed; annotating with the bundled demo model instead" >&2
    .venv-worker/bin/haruspex annotate demo-output/example.mrc -o demo-output --demo-model "$@"
fi
