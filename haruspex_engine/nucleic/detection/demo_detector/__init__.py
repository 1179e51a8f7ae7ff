"""The bundled demo detector: two small networks trained by this project on simulated maps, NOT CryoREAD's networks.

``haruspex detect-na --demo-model`` runs it (``nucleic.detection.demo_network``) so that nucleic-acid building can be
tried offline; ``demo_detector.json`` (written by ``scripts/make_demo_detector.py`` with the weights) holds its
training data, settings, time and measured metrics. This module imports no framework.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
#: The weights: a torch state dict of ``demo_network.DemoDetector``.
DEMO_DETECTOR_WEIGHTS = HERE / "demo_detector.pt"
#: The base-type network's weights (half precision): a torch state dict of a 4-output ``DemoDetector``.
DEMO_BASE_TYPE_WEIGHTS = HERE / "demo_base_types.pt"
#: JSON card: what the network is, how it was trained, its size and metrics.
DEMO_DETECTOR_CARD = HERE / "demo_detector.json"
#: Says what the demo detector is wherever its outputs are reported.
DEMO_DETECTOR_LABEL = ("DEMO MODEL: a small detection network trained by scipion-em-haruspex on simulated maps, not "
                       "CryoREAD's published networks; for trying nucleic-acid building only")
#: Å: the resolutions of the maps it was trained on.
DEMO_RESOLUTION_A = (2.5, 5.0)
