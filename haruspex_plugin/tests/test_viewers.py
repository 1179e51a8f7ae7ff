"""The viewer's file producers on hand-made maps: no Scipion project and no worker needed."""
from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import numpy as np

from haruspex_plugin.tests.helpers import (
    ORIGIN_XYZ,
    PROBABILITY_KEYS,
    SHAPE_ZYX,
    VOXEL_SIZE,
    check_cxc,
    check_png,
    parse_cxc,
    synthetic_map,
    write_mrc,
)
from haruspex_plugin.viewers.chimerax import write_chimerax_script
from haruspex_plugin.viewers.plots import class_profiles, plot_annotation_summary, read_label_map


def hand_made_annotation(directory: Path) -> tuple[str, dict, str]:
    """(input map, class -> probability map, label map) files: softmax of random logits, and their argmax."""
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(4, *SHAPE_ZYX)).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=0)
    # Probability maps in PROBABILITY_KEYS order; label values follow CLASSES (0 unassigned, 1 helix, ...).
    maps = {name: write_mrc(directory / f"m_{name}.mrc", probabilities[i]) for i, name in enumerate(PROBABILITY_KEYS)}
    labels = np.array([3, 0, 1, 2])[probabilities.argmax(axis=0)]  # channel index -> label value
    return write_mrc(directory / "m.mrc", synthetic_map()), maps, write_mrc(directory / "m_labels.mrc", labels)


class TestViewerFiles(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.dir = Path(self.tmp.name)
        self.input_map, self.class_maps, self.labels_map = hand_made_annotation(self.dir)

    def test_chimerax_script_opens_and_colours_every_map(self):
        script = write_chimerax_script(self.input_map, self.class_maps, self.dir / "show.cxc")
        self.assertEqual(script, self.dir / "show.cxc")
        check_cxc(self, script, self.class_maps)

    def test_chimerax_script_check_rejects_other_commands(self):
        script = write_chimerax_script(self.input_map, self.class_maps, self.dir / "show.cxc")
        script.write_text(script.read_text() + "volume #2 colour red\n")
        with self.assertRaises(AssertionError):
            parse_cxc(script)

    def test_label_map_profiles(self):
        labels, z_angstrom = read_label_map(self.labels_map)
        self.assertEqual(labels.shape, SHAPE_ZYX)
        np.testing.assert_allclose(z_angstrom, ORIGIN_XYZ[2] + VOXEL_SIZE * np.arange(SHAPE_ZYX[0]), rtol=1e-6)
        profiles = class_profiles(labels)
        np.testing.assert_allclose(sum(profiles.values()), 1.0)
        helix_in_slice_3 = np.mean(labels[3] == 1)
        self.assertAlmostEqual(profiles["helix"][3], helix_in_slice_3)

    def test_summary_plot_is_a_png(self):
        png = plot_annotation_summary(self.labels_map, self.dir / "summary.png", title="hand-made")
        self.assertEqual(png, self.dir / "summary.png")
        check_png(self, png, min_size=(1000, 400))
