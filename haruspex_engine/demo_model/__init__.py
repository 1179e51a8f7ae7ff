"""The bundled demo model: a small network trained by this project on simulated maps, NOT the published Haruspex.

It has the published architecture at width 8 (a quarter of the published channels per layer) and is stored in the
published checkpoint layout without the optimizer state. ``haruspex annotate --demo-model`` uses it so the tool
can be tried offline; its training settings, size and measured recall / precision are in ``demo_model.json``,
written by ``scripts/make_demo_model.py`` together with the checkpoint.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
#: Checkpoint prefix of the demo model (``.index`` + ``.data-00000-of-00001``).
DEMO_PREFIX = HERE / "demo.ckpt"
#: JSON card: what the model is, how it was trained, its size and metrics.
DEMO_CARD = HERE / "demo_model.json"
#: Says what the demo model is wherever its outputs are reported.
DEMO_LABEL = ("DEMO MODEL: a small network trained by scipion-em-haruspex on simulated maps, not the published "
              "Haruspex network; for trying the tool only")
