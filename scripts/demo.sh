#!/usr/bin/env bash
# The main job on the built-in examples:
#  1. writes demo-output/example.mrc (ideal helices and a sheet simulated at 4 Å) and annotates it;
#  2. writes demo-output/na_example.mrc (an ideal 16-bp RNA duplex simulated at 3.5 Å with noise), detects its
#     nucleic acid, builds the model with its sequences and prints the model's coverage of the known structure.
# With the published weights installed, the published networks run. Without them, this script says how to install
# them and then uses the bundled DEMO MODELs (small networks trained by this project on simulated maps, clearly
# labelled in every output; not the published networks). It never runs with random weights. Extra arguments go to
# `haruspex annotate`.
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

.venv-worker/bin/haruspex example --nucleic demo-output/na_example.mrc > /dev/null
if .venv-worker/bin/haruspex weights path --set cryoread-default > /dev/null 2>&1; then
    detector=()
else
    echo "demo: CryoREAD's published weights are not installed; detecting with the bundled demo detector instead" >&2
    detector=(--demo-model)
fi
.venv-worker/bin/haruspex detect-na demo-output/na_example.mrc --resolution 3.5 -o demo-output/na "${detector[@]}" -q
.venv-worker/bin/haruspex build-na demo-output/na/na_example_summary.json --sequence demo-output/na_example.fasta
.venv-worker/bin/haruspex evaluate-na demo-output/na/na_example_model.cif demo-output/na_example_reference.cif \
    -o demo-output/na/na_example_evaluation.json > /dev/null
.venv-worker/bin/python -c "
import json
e = json.load(open('demo-output/na/na_example_evaluation.json'))
print(f\"demo: RNA duplex model demo-output/na/na_example_model.cif: {e['backbone_coverage_3A']:.0%} of the 32 \"
      f\"nucleotides built within 3 A, {e['sequence_recall']:.0%} with the right base (evaluate-na)\")"
