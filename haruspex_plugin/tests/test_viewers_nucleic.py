"""The nucleic-acid build viewer's file producers on a hand-made finished run (input map, two-chain mmCIF model with
its confidence table, build report, detection maps, FASTA) in the protocol's folder layout: no Scipion project and
no worker needed."""
from __future__ import annotations

import csv
import json
import os
import tempfile
import unittest
from pathlib import Path

import numpy as np
from matplotlib.colors import to_rgba
from pwem.objects import AtomStruct, Volume

from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_plugin.protocols import ProtHaruspexBuildNucleicAcids
from haruspex_plugin.tests.helpers import ProjectAt, check_png, parse_cxc, synthetic_map, write_mrc
from haruspex_plugin.viewers import (
    chimerax_build_script_for_protocol,
    confidence_plot_for_protocol,
    coverage_plot_for_protocol,
)
from haruspex_plugin.viewers.chimerax import (
    DETECTION_COLORS,
    NUCLEOTIDE_COLORS,
    write_nucleic_chimerax_script,
)
from haruspex_plugin.viewers.plots import (
    CONFIDENCE_COLUMNS,
    COVERAGE_COLORS,
    ChainConfidence,
    agg_figure,
    draw_confidence_profiles,
    draw_sequence_coverage,
    plot_confidence_profiles,
    plot_sequence_coverage,
    read_chain_sequences,
    read_confidence_table,
    sequence_coverage,
)
from haruspex_plugin.viewers.viewer_nucleic import build_files, input_map_level
from haruspex_plugin.wizards import MAD_TO_SIGMA

PREFIX = "emd_1"
# The model: (chain, residue number, residue name, confidence). Chain A skips 4-5; chain C matches no sequence.
RESIDUES = [("A", 1, "G", 0.91), ("A", 2, "G", 0.85), ("A", 3, "A", 0.40), ("A", 6, "C", 0.77),
            ("B", 2, "U", 0.12), ("B", 3, "U", 0.55), ("B", 4, "G", 1.0),
            ("C", 1, "A", 0.0), ("C", 2, "C", 0.33)]
SEQUENCES = {"A": "GGCAUCA", "B": "CUUGA"}
# Coverage states (0 not modelled, 1 the sequence's base, 2 another base) each sequence residue should get.
EXPECTED_COVERAGE = {"A": [1, 1, 2, 0, 0, 1, 0], "B": [0, 1, 1, 1, 0]}
SHOWN_MAPS = {"sugar", "phosphate"}


def write_model_cif(path: Path) -> str:
    """A minimal mmCIF of RESIDUES, one P atom per residue, B-factor = confidence (as build-na writes it)."""
    columns = ["group_PDB", "id", "type_symbol", "label_atom_id", "label_comp_id", "label_asym_id", "label_seq_id",
               "Cartn_x", "Cartn_y", "Cartn_z", "occupancy", "B_iso_or_equiv", "auth_seq_id", "auth_asym_id",
               "pdbx_PDB_model_num"]
    rows = [f"ATOM {i} P P {name} {chain} {number} {6.0 * i:.3f} 1.000 2.000 1.00 {conf:.4f} {number} {chain} 1"
            for i, (chain, number, name, conf) in enumerate(RESIDUES, start=1)]
    path.write_text("data_model\nloop_\n" + "".join(f"_atom_site.{c}\n" for c in columns) + "\n".join(rows) + "\n")
    return str(path)


def write_confidence_csv(path: Path, residues=RESIDUES) -> str:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CONFIDENCE_COLUMNS)
        writer.writerows((chain, number, name, f"{conf:.4f}") for chain, number, name, conf in residues)
    return str(path)


class FinishedBuildRun:
    """Stand-in for a finished ProtHaruspexBuildNucleicAcids in a project folder: the methods and outputs the viewer
    reads (real pwem output objects), its files where the protocol and build-na put them, paths relative to the
    project like Scipion's."""

    RUN = "Runs/000042_ProtHaruspexBuildNucleicAcids"
    METHODS = ("getProject", "getRunName", "getPrefix", "_getExtraPath", "getInputMapPath", "getBuildReportPath",
               "getFastaPath", "hasSequences")

    def __init__(self, project: Path, model: bool = True, sequences: bool = True, contour: float | None = None):
        self.project = project
        extra = project / self._getExtraPath()
        extra.mkdir(parents=True)
        self.sequences = sequences
        self.contourLevel = _Value(contour)
        write_mrc(extra / f"{PREFIX}.mrc", synthetic_map())
        rng = np.random.default_rng(3)
        self.outputDetectionMaps = []
        for cls in reversed(STAGE2_CLASSES):  # a set's order is not the stage-2 order
            volume = Volume()
            volume.setFileName(self._getExtraPath(f"{PREFIX}_{cls}.mrc"))
            volume.setObjLabel(cls)
            write_mrc(project / volume.getFileName(), rng.uniform(0, 1, (20, 22, 24)), voxel_size=1.0)
            self.outputDetectionMaps.append(volume)
        outputs = {}
        if model:
            self.outputModel = AtomStruct(filename=self._getExtraPath(f"{PREFIX}_model_scipion.cif"))
            write_model_cif(project / self.outputModel.getFileName())
            # The report lists the worker's absolute paths of the time: another folder than the project's now.
            outputs = {"model": f"/elsewhere/{PREFIX}_model.cif", "confidence": f"/elsewhere/{PREFIX}_confidence.csv"}
            write_confidence_csv(extra / f"{PREFIX}_confidence.csv")
        if sequences:
            (extra / f"{PREFIX}_sequences.fasta").write_text("".join(f">{k}\n{v}\n" for k, v in SEQUENCES.items()))
        (project / self.getBuildReportPath()).write_text(json.dumps({"outputs": outputs}))

    def getProject(self):
        return ProjectAt(str(self.project))

    def getRunName(self) -> str:
        return "build nucleic acids (fake run)"

    def getPrefix(self) -> str:
        return PREFIX

    def _getExtraPath(self, *names: str) -> str:
        return os.path.join(self.RUN, "extra", *names)

    def getInputMapPath(self) -> str:
        return self._getExtraPath(f"{PREFIX}.mrc")

    def getBuildReportPath(self) -> str:
        return self._getExtraPath(f"{PREFIX}_build.json")

    def getFastaPath(self) -> str:
        return self._getExtraPath(f"{PREFIX}_sequences.fasta")

    def hasSequences(self) -> bool:
        return self.sequences


class _Value:
    def __init__(self, value):
        self.value = value

    def get(self):
        return self.value


def scatter_points(axes) -> np.ndarray:
    """(n, 2) points (residue number, confidence) of the one scatter plot of *axes*."""
    (points,) = axes.collections
    return np.asarray(points.get_offsets())


class TestBuildChimeraXScript(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.input_map = write_mrc(self.dir / "map.mrc", synthetic_map())
        self.model = write_model_cif(self.dir / "model.cif")
        rng = np.random.default_rng(5)
        self.maps = {cls: write_mrc(self.dir / f"map_{cls}.mrc", rng.uniform(0, 1, (10, 11, 12)), voxel_size=1.0)
                     for cls in STAGE2_CLASSES}

    def check_maps(self, matches, first_model: int, level=0.5):
        """The detection maps are models first_model, … in STAGE2_CLASSES order, each a surface at *level* in its
        colour, hidden unless sugar or phosphate."""
        opened = [m["path"] for m in matches if "path" in m.groupdict()]
        hidden = {int(m["model"]) for m in matches if m.re.pattern.endswith("hide")}
        for model, cls in enumerate(STAGE2_CLASSES, start=first_model):
            self.assertTrue(os.path.samefile(opened[model - 1], self.maps[cls]), cls)
            self.assertIn(f"rename #{model} detect_{cls}", [m.group(0) for m in matches])
            (style,) = [m for m in matches if m.groupdict().get("color") and m["model"] == str(model)]
            self.assertEqual((style["color"], float(style["level"])), (DETECTION_COLORS[cls], level))
            self.assertEqual(model in hidden, cls not in SHOWN_MAPS, cls)

    def test_script_opens_the_build_and_colours_the_model(self):
        for colour_by in ("confidence", "bases"):
            script = write_nucleic_chimerax_script(self.input_map, 0.123, self.model, self.maps,
                                                   self.dir / "build.cxc", colour_by)
            matches = parse_cxc(script)
            opened = [m["path"] for m in matches if "path" in m.groupdict()]
            self.assertEqual(len(opened), 2 + len(STAGE2_CLASSES))
            self.assertTrue(all(os.path.isabs(path) and os.path.isfile(path) for path in opened))
            self.assertTrue(os.path.samefile(opened[0], self.input_map))
            self.assertTrue(os.path.samefile(opened[1], self.model))
            (input_style,) = [m for m in matches if m.groupdict().get("color") and m["model"] == "1"]
            self.assertEqual((float(input_style["level"]), input_style["color"]), (0.123, "lightgray"))
            self.assertGreater(float(input_style["transparency"]), 0.0)
            aliases = {m["alias"]: m for m in matches if "alias" in m.groupdict()}
            self.assertEqual(set(aliases), {"confidence", "bases"})
            self.assertEqual({m["model"] for m in aliases.values()}, {"2"})
            self.assertEqual(aliases["confidence"]["confidence_palette"], "0,red:0.5,yellow:1,blue")
            applied = [m["colouring"] for m in matches if "colouring" in m.groupdict()]
            self.assertEqual(applied, [colour_by])
            # The colouring is applied after both aliases are defined.
            self.assertGreater(matches.index(next(m for m in matches if "colouring" in m.groupdict())),
                               max(matches.index(m) for m in aliases.values()))
            self.check_maps(matches, first_model=3)
            self.assertEqual(matches[-1].group(0), "view")

    def test_script_without_a_model_shows_the_maps(self):
        script = write_nucleic_chimerax_script(self.input_map, -2.5e-05, None, self.maps, self.dir / "maps.cxc")
        matches = parse_cxc(script)
        self.assertEqual([m for m in matches if {"alias", "colouring"} & set(m.groupdict())], [])
        (input_style,) = [m for m in matches if m.groupdict().get("color") and m["model"] == "1"]
        self.assertEqual(float(input_style["level"]), -2.5e-05)
        self.check_maps(matches, first_model=2)

    def test_script_refuses_unknown_colourings_and_classes(self):
        with self.assertRaisesRegex(ValueError, "rainbow"):
            write_nucleic_chimerax_script(self.input_map, 1.0, self.model, self.maps, self.dir / "x.cxc", "rainbow")
        with self.assertRaisesRegex(ValueError, "helix"):
            write_nucleic_chimerax_script(self.input_map, 1.0, self.model, {"helix": self.input_map}, self.dir / "x")

    def test_script_check_rejects_other_command_forms(self):
        script = write_nucleic_chimerax_script(self.input_map, 1.0, self.model, self.maps, self.dir / "build.cxc")
        for wrong in ("color #2 bfactor palette 0,red:1,blue", "alias conf color bfactor #2 palette 0,red:1,blue",
                      "colour_by_confidence"):
            script.write_text(script.read_text() + wrong + "\n")
            with self.assertRaises(AssertionError, msg=wrong):
                parse_cxc(script)


class TestBuildPlots(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = Path(tmp.name)
        self.csv = write_confidence_csv(self.dir / "m_confidence.csv")
        self.fasta = self.dir / "m.fasta"
        self.fasta.write_text("".join(f">{chain}\n{sequence}\n" for chain, sequence in SEQUENCES.items()))

    def test_confidence_table_is_read_by_chain(self):
        chains = read_confidence_table(self.csv)
        self.assertEqual([c.chain for c in chains], ["A", "B", "C"])
        rows = [(c.chain, int(n), name, float(conf)) for c in chains
                for n, name, conf in zip(c.numbers, c.names, c.confidence)]
        self.assertEqual(rows, RESIDUES)
        self.assertEqual(chains[0].letters, "GGAC")

    def test_confidence_table_errors_name_the_file(self):
        bad_header = self.dir / "header.csv"
        bad_header.write_text("chain,number,confidence\nA,1,0.5\n")
        out_of_range = write_confidence_csv(self.dir / "range.csv", [("A", 1, "G", 12.5)])
        not_a_number = self.dir / "number.csv"
        not_a_number.write_text(",".join(CONFIDENCE_COLUMNS) + "\nA,one,G,0.5\n")
        for path, problem in ((bad_header, "not a build-na confidence table"), (out_of_range, "line 2"),
                              (not_a_number, "line 2")):
            with self.assertRaisesRegex(ValueError, f"{path}.*{problem}"):
                read_confidence_table(path)

    def test_confidence_plot_draws_the_table(self):
        chains = read_confidence_table(self.csv)
        figure = draw_confidence_profiles(agg_figure((11, 7)), chains, "test")
        self.assertEqual(len(figure.axes), 3)
        for axes, (chain, expected) in zip(figure.axes, [(c, [r for r in RESIDUES if r[0] == c]) for c in "ABC"]):
            self.assertIn(f"chain {chain}", axes.get_title())
            np.testing.assert_allclose(scatter_points(axes), [(n, conf) for _, n, _, conf in expected])
            colours = axes.collections[0].get_facecolors()
            np.testing.assert_allclose(colours, [to_rgba(NUCLEOTIDE_COLORS[name]) for _, _, name, _ in expected])
        # Chain A's line breaks at its numbering gap (3 -> 6), the others run unbroken.
        self.assertEqual([int(np.isnan(axes.lines[0].get_xdata()).sum()) for axes in figure.axes], [1, 0, 0])

    def test_confidence_plot_is_a_png(self):
        png = plot_confidence_profiles(self.csv, self.dir / "confidence.png", title="hand-made")
        self.assertEqual(png, self.dir / "confidence.png")
        check_png(self, png, min_size=(1000, 500))

    def test_sequence_coverage_states(self):
        chains = {c.chain: c for c in read_confidence_table(self.csv)}
        for chain, sequence in SEQUENCES.items():
            self.assertEqual(sequence_coverage(sequence, chains[chain]).tolist(), EXPECTED_COVERAGE[chain])
        self.assertEqual(sequence_coverage("ACG", None).tolist(), [0, 0, 0])
        # DNA residue names count by their base, T as U; residues numbered outside the sequence cover nothing.
        dna = ChainConfidence("D", np.array([0, 1, 2, 4]), ("DA", "DT", "DG", "DG"), np.full(4, 0.5))
        self.assertEqual(sequence_coverage("UCG", dna).tolist(), [1, 2, 0])

    def test_coverage_plot_draws_the_states(self):
        sequences = read_chain_sequences(self.fasta)
        self.assertEqual(sequences, list(SEQUENCES.items()))
        figure = draw_sequence_coverage(agg_figure((11, 3.4)), sequences, read_confidence_table(self.csv))
        (axes,) = figure.axes
        drawn = {chain: np.full(len(sequence), -1) for chain, sequence in SEQUENCES.items()}
        for bars in axes.collections:
            state = [to_rgba(c) for c in COVERAGE_COLORS].index(tuple(bars.get_facecolor()[0]))
            for path in bars.get_paths():
                (x0, y0), (x1, _) = path.vertices.min(axis=0), path.vertices.max(axis=0)
                chain = list(SEQUENCES)[round(y0 + 0.35)]
                drawn[chain][round(x0 + 0.5) - 1:round(x1 + 0.5) - 1] = state
        self.assertEqual({chain: states.tolist() for chain, states in drawn.items()}, EXPECTED_COVERAGE)
        self.assertIn("7 of 12 nucleotides modelled (58%), 6 with the sequence's base; 2 model residues in chains "
                      "without a sequence", axes.get_title())

    def test_coverage_plot_is_a_png(self):
        png = plot_sequence_coverage(self.fasta, self.csv, self.dir / "coverage.png", title="hand-made")
        check_png(self, png, min_size=(1000, 250))


class TestBuildViewerFiles(unittest.TestCase):
    """The protocol-level producers on a stand-in for a finished run."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.project = Path(tmp.name)

    def test_stand_in_has_the_protocol_methods(self):
        for name in FinishedBuildRun.METHODS:
            self.assertTrue(callable(getattr(ProtHaruspexBuildNucleicAcids, name, None)), name)

    def test_files_of_a_finished_run(self):
        run = FinishedBuildRun(self.project)
        files = build_files(run)
        extra = self.project / run._getExtraPath()
        self.assertEqual(files.input_map, str(extra / f"{PREFIX}.mrc"))
        self.assertEqual(files.model, str(extra / f"{PREFIX}_model_scipion.cif"))
        self.assertEqual(list(files.detection_maps), list(STAGE2_CLASSES))
        self.assertEqual(files.detection_maps["UT"], str(extra / f"{PREFIX}_UT.mrc"))
        self.assertEqual(files.confidence_table, str(extra / f"{PREFIX}_confidence.csv"))
        self.assertEqual(files.fasta, str(extra / f"{PREFIX}_sequences.fasta"))

    def test_viewer_files_of_a_finished_run(self):
        run = FinishedBuildRun(self.project, contour=0.2)
        extra = self.project / run._getExtraPath()
        script = chimerax_build_script_for_protocol(run, "bases")
        self.assertEqual(script, extra / f"{PREFIX}_build_chimerax.cxc")
        matches = parse_cxc(script)
        self.assertEqual([m["colouring"] for m in matches if "colouring" in m.groupdict()], ["bases"])
        self.assertEqual(float(next(m for m in matches if m.groupdict().get("color"))["level"]), 0.4)
        for png, size in ((confidence_plot_for_protocol(run), (1000, 500)),
                          (coverage_plot_for_protocol(run), (1000, 250))):
            self.assertEqual(png.parent, extra)
            check_png(self, png, size)

    def test_runs_without_model_or_sequences(self):
        no_model = FinishedBuildRun(self.project / "a", model=False)
        self.assertIsNone(build_files(no_model).model)
        matches = parse_cxc(chimerax_build_script_for_protocol(no_model))
        self.assertEqual(len([m for m in matches if "path" in m.groupdict()]), 1 + len(STAGE2_CLASSES))
        for plot in (confidence_plot_for_protocol, coverage_plot_for_protocol):
            with self.assertRaisesRegex(ValueError, "no model was built"):
                plot(no_model)
        with self.assertRaisesRegex(ValueError, "no chain sequences were given"):
            coverage_plot_for_protocol(FinishedBuildRun(self.project / "b", sequences=False))
        unfinished = FinishedBuildRun(self.project / "c")
        os.remove(self.project / "c" / unfinished.getBuildReportPath())
        with self.assertRaisesRegex(ValueError, "has not finished"):
            build_files(unfinished)

    def test_input_map_level(self):
        run = FinishedBuildRun(self.project)
        path = build_files(run).input_map
        self.assertEqual(input_map_level(0.3, path), 0.6)
        density = synthetic_map().astype(np.float64)
        median = np.median(density)
        author_level = median + 3 * MAD_TO_SIGMA * np.median(np.abs(density - median))
        self.assertGreater(author_level, 0)
        for contour in (None, -1.0, 0.0):
            self.assertAlmostEqual(input_map_level(contour, path), author_level, places=5)


if __name__ == "__main__":
    unittest.main()
