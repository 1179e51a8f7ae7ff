#!/usr/bin/env bash
# Creates (or updates) the two Python environments the project uses:
#   .venv         Scipion side: scipion-pyworkflow, scipion-em, the plugin (editable), pytest, ruff, and the
#                 PHENIX / CCP4 / ChimeraX Scipion plugins (for the hand-off tests)
#   .venv-worker  engine side: TensorFlow, numpy, scipy, mrcfile, gemmi, the engine (editable), pytest
# Idempotent: once both environments are built from the current requirements, a second run returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
stamp=.venv/.haruspex-setup-$(cat requirements.txt requirements-worker.txt setup.py scripts/setup-envs.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ -x .venv-worker/bin/python ]; then
  exit 0
fi

make_env() {  # make_env DIR
  [ -x "$1/bin/python" ] || "$PYTHON" -m venv "$1"
  "$1/bin/python" -m pip install --quiet --upgrade pip
}

make_env .venv-worker
.venv-worker/bin/python -m pip install --quiet -r requirements-worker.txt pytest
.venv-worker/bin/python -m pip install --quiet --no-deps -e .

make_env .venv
.venv/bin/python -m pip install --quiet "scipion-pyworkflow==3.11.7" "scipion-em==3.11.1" pytest ruff
.venv/bin/python -m pip install --quiet -e .
# Downstream Scipion protocols our AtomStructs feed (PHENIX, CCP4 refmac, ChimeraX): their protocols are tested to
# accept our outputs (haruspex_plugin/tests/test_downstream_protocols.py); the programs themselves are not needed.
.venv/bin/python -m pip install --quiet "scipion-em-phenix==3.2.1" "scipion-em-ccp4==3.2.0" "scipion-em-chimera==4.0.1"
rm -f .venv/.haruspex-setup-*
touch "$stamp"
echo "environments ready: .venv (Scipion) and .venv-worker (engine)"
