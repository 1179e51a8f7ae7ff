"""The validation viewer's agreement plot on a hand-made per-residue table (the columns `haruspex validate` writes),
and its protocol-level producer on a stand-in for a finished run in the protocol's folder layout: no Scipion project
and no worker needed."""
from __future__ import annotations

import csv
import json
import os
import tempfile
import unittest
from pathlib import Path

import numpy as np
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.colors import to_rgb

from haruspex_plugin.constants import CLASS_COLORS, VALIDATION_AGREEMENT_ATTRIBUTE
from haruspex_plugin.protocols import ProtHaruspexValidate
from haruspex_plugin.tests.helpers import ProjectAt, check_png
from haruspex_plugin.viewers import (
    HaruspexValidateAttributeViewer,
    HaruspexValidateViewer,
    agreement_plot_for_protocol,
)
from haruspex_plugin.viewers.plots import (
    AGREEMENT_ROWS,
    BELOW_LEVEL_ALPHA,
    agg_figure,
    draw_agreement_profiles,
    plot_agreement_profiles,
    read_validation_table,
)
from haruspex_plugin.viewers.viewer_validate import validation_table

PREFIX = "model_1"
# `haruspex validate`'s table columns (docs/worker-contract.md).
TABLE_COLUMNS = ("chain", "residue_number", "residue_name", "model_class", "predicted_class", "p_helix", "p_sheet",
                 "p_nucleic", "p_unassigned", "model_class_probability", "backbone_density_rmsd", "counted",
                 "agreement")
# (chain, residue number as written, model class, predicted class ('' off the map), counted). Chain A skips 5-6,
# has an insertion code (8A) and a residue off the map (9); chain B is nucleic acid.
RESIDUES = [("A", "1", "unassigned", "unassigned", True), ("A", "2", "helix", "helix", True),
            ("A", "3", "helix", "sheet", True), ("A", "4", "helix", "unassigned", False),
            ("A", "7", "sheet", "sheet", False), ("A", "8A", "sheet", "helix", True),
            ("A", "9", "sheet", "", False),
            ("B", "1", "nucleic", "nucleic", True), ("B", "2", "nucleic", "helix", True),
            ("B", "3", "nucleic", "nucleic", False)]
DISAGREEMENTS = {"A": [3, 8], "B": [2]}  # counted residues whose predicted class is not the model's
AGREEMENT = {"A": 2 / 4, "B": 1 / 2}


def number(text: str) -> int:
    return int(text.rstrip("A"))


def write_validation_csv(path: Path, residues=RESIDUES) -> str:
    """The table as validate writes it: probabilities and density empty off the map."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        for chain, residue, model, predicted, counted in residues:
            on_map = predicted != ""
            value = "0.2500" if on_map else ""
            writer.writerow({"chain": chain, "residue_number": residue, "residue_name": "ALA", "model_class": model,
                             "predicted_class": predicted, "p_helix": value, "p_sheet": value, "p_nucleic": value,
                             "p_unassigned": value, "model_class_probability": value,
                             "backbone_density_rmsd": ("2.000" if counted else "0.500") if on_map else "",
                             "counted": str(int(counted)), "agreement": str(int(model == predicted)) if on_map else ""})
    return str(path)


def drawn_bands(axes) -> dict[tuple[str, int], tuple[str, bool]]:
    """(band, residue number) -> (class, counted) of every bar the panel draws, read back from its colours."""
    colours = {name: to_rgb(colour) for name, colour in CLASS_COLORS.items()}
    drawn = {}
    for bars in axes.collections:
        if not isinstance(bars, PolyCollection):
            continue
        rgba = bars.get_facecolor()[0]
        name = next(n for n, rgb in colours.items() if np.allclose(rgba[:3], rgb))
        counted = bool(np.isclose(rgba[3], 1.0))
        if not counted:
            assert np.isclose(rgba[3], BELOW_LEVEL_ALPHA), rgba
        for path in bars.get_paths():
            (x0, y0), (x1, y1) = path.vertices.min(axis=0), path.vertices.max(axis=0)
            assert np.isclose(x1 - x0, 1.0) and np.isclose(y1 - y0, 0.8)
            key = (AGREEMENT_ROWS[round((y0 + y1) / 2)], round((x0 + x1) / 2))
            assert key not in drawn, key
            drawn[key] = (name, counted)
    return drawn


class TestAgreementPlot(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.csv = write_validation_csv(self.dir / "m_validation.csv")

    def test_table_is_read_by_chain(self):
        chains = read_validation_table(self.csv)
        self.assertEqual([c.chain for c in chains], ["A", "B"])
        rows = [(c.chain, int(n), model, predicted, bool(counted))
                for c in chains for n, model, predicted, counted in zip(c.numbers, c.model_class,
                                                                       c.predicted_class, c.counted)]
        self.assertEqual(rows, [(c, number(n), m, p, k) for c, n, m, p, k in RESIDUES])
        for chain in chains:
            self.assertEqual(chain.disagreements.tolist(), DISAGREEMENTS[chain.chain])
            self.assertAlmostEqual(chain.agreement, AGREEMENT[chain.chain])
        self.assertIsNone(read_validation_table(write_validation_csv(
            self.dir / "uncounted.csv", [("A", "1", "helix", "sheet", False)]))[0].agreement)

    def test_table_errors_name_the_file(self):
        other = self.dir / "other.csv"
        other.write_text("chain,residue_number,confidence\nA,1,0.5\n")
        with self.assertRaisesRegex(ValueError, f"{other}: not a validate table .*model_class"):
            read_validation_table(other)
        for wrong in (("A", "x1", "helix", "helix", True), ("A", "1", "coil", "helix", True),
                      ("A", "1", "helix", "strand", True)):
            path = write_validation_csv(self.dir / "wrong.csv", [RESIDUES[0], wrong])
            with self.assertRaisesRegex(ValueError, f"{path}, line 3: expected", msg=wrong):
                read_validation_table(path)
        counted = self.dir / "counted.csv"
        counted.write_text(Path(self.csv).read_text().replace(",2.000,1,1", ",2.000,yes,1", 1))
        with self.assertRaisesRegex(ValueError, f"{counted}, line 2: expected"):
            read_validation_table(counted)

    def test_plot_draws_the_table(self):
        chains = read_validation_table(self.csv)
        figure = draw_agreement_profiles(agg_figure((11, 5)), chains, "test")
        self.assertEqual(len(figure.axes), 2)
        for axes, chain in zip(figure.axes, "AB"):
            residues = [r for r in RESIDUES if r[0] == chain]
            expected = {("model", number(n)): (model, counted) for _, n, model, _, counted in residues}
            expected |= {("predicted", number(n)): (predicted, counted)
                         for _, n, _, predicted, counted in residues if predicted}
            self.assertEqual(drawn_bands(axes), expected)
            (marks,) = [c for c in axes.collections if isinstance(c, PathCollection)]
            np.testing.assert_array_equal(marks.get_offsets(),
                                          [(n, AGREEMENT_ROWS.index("disagreement")) for n in DISAGREEMENTS[chain]])
            counted = sum(r[4] for r in residues)
            self.assertIn(f"chain {chain}: {counted} of {len(residues)} residues counted, agreement "
                          f"{100 * AGREEMENT[chain]:.0f}%, {len(DISAGREEMENTS[chain])} disagreeing", axes.get_title())
            self.assertEqual([t.get_text() for t in axes.get_yticklabels()], list(AGREEMENT_ROWS))
        with self.assertRaisesRegex(ValueError, "no validated residues"):
            draw_agreement_profiles(agg_figure((11, 5)), [])

    def test_plot_is_a_png(self):
        png = plot_agreement_profiles(self.csv, self.dir / "agreement.png", title="hand-made")
        self.assertEqual(png, self.dir / "agreement.png")
        check_png(self, png, min_size=(1000, 450))


class FinishedValidateRun:
    """Stand-in for a finished ProtHaruspexValidate in a project folder: the methods the viewer reads, its report and
    table where the protocol and validate put them, paths relative to the project like Scipion's."""

    RUN = "Runs/000042_ProtHaruspexValidate"
    METHODS = ("getProject", "getRunName", "getPrefix", "_getExtraPath", "getReportPath")

    def __init__(self, project: Path, finished: bool = True):
        self.project = project
        extra = project / self._getExtraPath()
        extra.mkdir(parents=True)
        write_validation_csv(extra / f"{PREFIX}_validation.csv")
        if finished:
            # The report lists the worker's absolute paths of the time: another folder than the project's now.
            outputs = {"table": f"/elsewhere/{PREFIX}_validation.csv", "model": f"/elsewhere/{PREFIX}_validation.cif"}
            (project / self.getReportPath()).write_text(json.dumps({"outputs": outputs}))

    def getProject(self):
        return ProjectAt(str(self.project))

    def getRunName(self) -> str:
        return "validate model (fake run)"

    def getPrefix(self) -> str:
        return PREFIX

    def _getExtraPath(self, *names: str) -> str:
        return os.path.join(self.RUN, "extra", *names)

    def getReportPath(self) -> str:
        return self._getExtraPath(f"{PREFIX}_validation.json")


class TestValidateViewerFiles(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.project = Path(tmp.name)

    def test_stand_in_has_the_protocol_methods(self):
        for name in FinishedValidateRun.METHODS:
            self.assertTrue(callable(getattr(ProtHaruspexValidate, name, None)), name)

    def test_plot_of_a_finished_run(self):
        run = FinishedValidateRun(self.project)
        extra = self.project / run._getExtraPath()
        self.assertEqual(validation_table(run), str(extra / f"{PREFIX}_validation.csv"))
        png = agreement_plot_for_protocol(run)
        self.assertEqual(png, extra / f"{PREFIX}_agreement.png")
        check_png(self, png, min_size=(1000, 450))

    def test_unfinished_run_has_nothing_to_show(self):
        with self.assertRaisesRegex(ValueError, "has not finished"):
            agreement_plot_for_protocol(FinishedValidateRun(self.project, finished=False))

    def test_scipion_offers_both_viewers_for_the_protocol(self):
        import pyworkflow as pw
        from pwem.viewers.viewer_localres import ChimeraAttributeViewer
        from pyworkflow.viewer import DESKTOP_TKINTER

        viewers = pw.Config.getDomain().findViewers(ProtHaruspexValidate(), DESKTOP_TKINTER)
        self.assertEqual(set(viewers), {HaruspexValidateViewer, HaruspexValidateAttributeViewer})
        self.assertTrue(issubclass(HaruspexValidateAttributeViewer, ChimeraAttributeViewer))
        self.assertEqual(ProtHaruspexValidate._ATTRNAME, VALIDATION_AGREEMENT_ATTRIBUTE)


if __name__ == "__main__":
    unittest.main()
