"""ProtHaruspexRefineNucleicAcids in a real (headless) Scipion project, launching the real worker (servalcat) from its
own environment.

The input is an ideal 12-nt RNA strand with every atom jittered (0.3 Å per axis, fixed seed) and the map simulated
from the unjittered strand (1 Å voxels, origin away from 0), imported with two noisy half maps. The model is
imported with the map attached. Refinement runs twice: into the attached map, and against the explicitly chosen
map's half maps; each must bring the model back toward the strand it was simulated from.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyworkflow as pw
from pwem.objects import AtomStruct, Volume
from pyworkflow.tests import BaseTest, setupTestProject

from haruspex_plugin.constants import REFINED_MODEL_OUTPUT
from haruspex_plugin.protocols import ProtHaruspexRefineNucleicAcids
from haruspex_plugin.tests.helpers import (
    environment,
    import_map,
    import_model,
    read_mrc,
    run_worker,
    write_mrc,
    write_oracle_example,
)

RESOLUTION_A = 3.5
JITTER = """\
import sys
from pathlib import Path
import gemmi
import numpy as np
from haruspex_engine.nucleic.building.atoms import write_model
structure = gemmi.read_structure(sys.argv[1])
rng = np.random.default_rng(0)
for cra in structure[0].all():
    cra.atom.pos += gemmi.Position(*rng.normal(0.0, 0.3, 3))
write_model(structure, Path(sys.argv[2]))
"""
UNKNOWN_RESIDUE_PDB = ("HETATM    1  C1  ZZZ A   1      20.000  20.000  20.000  1.00 20.00           C\n"
                       "HETATM    2  C2  ZZZ A   1      21.500  20.000  20.000  1.00 20.00           C\nEND\n")


def rmsd_to(model: str, reference: str) -> float:
    """All-atom r.m.s.d. (Å) of *model* from *reference* over matched nucleotides (``haruspex evaluate-na``)."""
    scores = json.loads(run_worker("-m", "haruspex_engine", "evaluate-na", os.path.abspath(model), reference))
    return scores["rmsd_all_atoms_A"]


class TestHaruspexRefineNucleicAcids(BaseTest):
    """Two refinements (attached map; explicit map's half maps), their outputs and summaries; a failing run,
    validation and the menu."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        cls.reference = cls.getOutputPath("rna_reference.cif")
        mapPath = cls.getOutputPath("rna_map.mrc")
        write_oracle_example(cls.reference, mapPath)
        cls.jittered = cls.getOutputPath("rna_jittered.cif")
        run_worker("-c", JITTER, cls.reference, cls.jittered)
        density, voxel, origin = read_mrc(mapPath)
        rng = np.random.default_rng(1)
        halves = [write_mrc(cls.getOutputPath(f"rna_half{k}.mrc"),
                            density + rng.normal(0.0, 0.05 * float(density.max()), density.shape), voxel[0], origin)
                  for k in (1, 2)]
        cls.inputVolume = import_map(cls, mapPath, halves)
        cls.inputStructure = import_model(cls, cls.jittered, cls.inputVolume)

        cls.attached = cls.newProtocol(ProtHaruspexRefineNucleicAcids, inputStructure=cls.inputStructure,
                                       resolution=RESOLUTION_A)
        cls.launchProtocol(cls.attached)
        cls.halfMaps = cls.newProtocol(ProtHaruspexRefineNucleicAcids, inputStructure=cls.inputStructure,
                                       inputVolume=cls.inputVolume, useHalfMaps=True, resolution=RESOLUTION_A)
        cls.launchProtocol(cls.halfMaps)

    # --- refinement into the attached map -------------------------------------------------------------------
    def test_refined_model_is_an_mmcif_atom_struct_with_the_map_attached(self):
        """What downstream Scipion protocols read (phenix real-space refine / validation / molprobity, ccp4 refmac,
        ChimeraX rigid fit): the model file (.cif), the attached volume's file, sampling rate, origin and size, and
        the model's own origin, which ChimeraX would move the model by (none: the coordinates are in the map's
        frame)."""
        for prot in (self.attached, self.halfMaps):
            model = getattr(prot, REFINED_MODEL_OUTPUT)
            with self.subTest(protocol=prot.getObjLabel()):
                self.assertIsInstance(model, AtomStruct)
                self.assertTrue(model.getFileName().endswith(".cif") and os.path.isfile(model.getFileName()))
                self.assertTrue(os.path.samefile(model.getFileName(), prot.getReport()["outputs"]["model"]))
                self.assertTrue(model.hasVolume())
                volume = model.getVolume()
                self.assertEqual(volume.getFileName(), self.inputVolume.getFileName())
                self.assertEqual(volume.getSamplingRate(), self.inputVolume.getSamplingRate())
                np.testing.assert_allclose(volume.getOrigin(force=True).getShifts(),
                                           self.inputVolume.getOrigin(force=True).getShifts())
                self.assertEqual(volume.getDim(), self.inputVolume.getDim())
                self.assertFalse(model.hasOrigin())
                parents = {p.getObjId() for p in self.proj.getSourceParents(model)}
                self.assertIn(self.inputStructure.getObjId(), parents)

    def test_refinement_brings_the_model_back_to_the_strand(self):
        before = rmsd_to(self.jittered, self.reference)
        self.assertGreater(before, 0.3)
        for prot in (self.attached, self.halfMaps):
            with self.subTest(protocol=prot.getObjLabel()):
                after = rmsd_to(getattr(prot, REFINED_MODEL_OUTPUT).getFileName(), self.reference)
                self.assertLess(after, 0.6 * before)

    def test_geometry_and_fit_improve_and_the_strand_stays_whole(self):
        for prot in (self.attached, self.halfMaps):
            report = prot.getReport()
            with self.subTest(protocol=prot.getObjLabel()):
                before, after = report["geometry"]["before"], report["geometry"]["after"]
                self.assertLess(after["bond_rmsd_A"], 0.5 * before["bond_rmsd_A"])
                self.assertLess(after["angle_rmsd_deg"], before["angle_rmsd_deg"])
                self.assertGreater(report["fsc_average"]["after"], report["fsc_average"]["before"])
                self.assertEqual(report["backbone"]["breaks"], [])
                self.assertEqual(report["backbone"]["linked"] + len(report["backbone"]["bridged"]), 11)
                self.assertEqual(report["residues"], 12)
                self.assertEqual(report["resolution_A"], RESOLUTION_A)

    def test_summary_and_methods_report_before_and_after(self):
        report = self.attached.getReport()
        summary = "\n".join(self.attached.summary())
        before, after = report["geometry"]["before"], report["geometry"]["after"]
        self.assertIn(f"bond r.m.s.d. {before['bond_rmsd_A']:g} → {after['bond_rmsd_A']:g} Å", summary)
        self.assertIn(f"FSCaverage {report['fsc_average']['before']:g} → {report['fsc_average']['after']:g}", summary)
        self.assertIn("chain breaks kept open: 0.", summary)
        self.assertIn("into the map at 3.5 Å", summary)
        self.assertIn("into the two half maps", "\n".join(self.halfMaps.summary()))
        methods = "\n".join(self.attached.methods())
        self.assertIn("its attached map", methods)
        self.assertIn("servalcat refine_spa_norefmac", methods)

    def test_maps_go_to_the_worker_with_the_scipion_origin(self):
        origin = self.inputVolume.getOrigin(force=True).getShifts()
        self.assertEqual(len(self.attached.getMapPaths()), 1)
        self.assertEqual(len(self.halfMaps.getMapPaths()), 2)
        for prot in (self.attached, self.halfMaps):
            listed = [entry["path"] for entry in prot.getReport()["maps"]]
            self.assertEqual(len(listed), len(prot.getMapPaths()))
            for path, given in zip(prot.getMapPaths(), listed):
                self.assertTrue(os.path.samefile(path, given))
                _, voxel, header = read_mrc(path)
                np.testing.assert_allclose(header, origin)
                np.testing.assert_allclose(voxel, (1.0, 1.0, 1.0))
        self.assertTrue(self.halfMaps.getReport()["half_maps"])
        half1 = read_mrc(self.halfMaps.getMapPaths()[0])[0]
        self.assertFalse(np.allclose(half1, read_mrc(self.attached.getMapPaths()[0])[0]))

    # --- failing run and validation ---------------------------------------------------------------------------
    def test_residue_without_dictionary_fails_with_the_worker_message(self):
        path = Path(self.getOutputPath("unknown_ligand.pdb"))
        path.write_text(UNKNOWN_RESIDUE_PDB)
        prot = self.newProtocol(ProtHaruspexRefineNucleicAcids, inputStructure=import_model(self, str(path)),
                                inputVolume=self.inputVolume, resolution=RESOLUTION_A)
        self.assertEqual(prot.validate(), [])
        self.proj.launchProtocol(prot, wait=True)
        self.assertTrue(prot.isFailed(), prot.getStatus())
        self.assertIn("haruspex: error:", prot.getErrorMessage())
        self.assertIn("no restraint dictionary for residue(s) ZZZ", prot.getErrorMessage())
        self.assertEqual(list(prot.iterOutputAttributes()), [])

    def test_validate_needs_a_map(self):
        bare = import_model(self, self.jittered)
        prot = self.newProtocol(ProtHaruspexRefineNucleicAcids, inputStructure=bare, resolution=RESOLUTION_A)
        self.assertEqual(prot.validate(), ["The atomic model has no map attached: choose the map to refine into."])
        prot = self.newProtocol(ProtHaruspexRefineNucleicAcids, inputStructure=bare, inputVolume=self.inputVolume,
                                resolution=RESOLUTION_A)
        self.assertEqual(prot.validate(), [])

    def test_validate_needs_two_half_maps_and_a_sampling_rate(self):
        volume = Volume()
        volume.setFileName(self.inputVolume.getFileName())
        prot = self.newProtocol(ProtHaruspexRefineNucleicAcids, inputStructure=self.inputStructure,
                                inputVolume=volume, useHalfMaps=True, resolution=RESOLUTION_A)
        errors = prot.validate()
        self.assertEqual(len(errors), 2, errors)
        self.assertIn("no sampling rate", errors[0])
        self.assertIn("0 half maps attached, not 2", errors[1])

    def test_validate_reports_a_missing_monomer_library_as_the_worker_does(self):
        missing = self.getOutputPath("no-such-monomer-library")
        prot = self.newProtocol(ProtHaruspexRefineNucleicAcids, inputStructure=self.inputStructure,
                                resolution=RESOLUTION_A)
        with environment(HARUSPEX_MONOMER_LIBRARY=missing):
            errors = prot.validate()
        self.assertEqual(len(errors), 1, errors)
        self.assertTrue(errors[0].startswith("Refinement with servalcat not possible: "), errors[0])
        self.assertIn(f"{missing} (from $HARUSPEX_MONOMER_LIBRARY): no such directory", errors[0])

    def test_menu_lists_the_protocol(self):
        from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig

        config = ProtocolTreeConfig.load(pw.Config.getDomain(), self.getOutputPath("no-user-menu.conf"))
        found = [child for section in config["Model building"].childs if section.text == "Refinement"
                 for child in section.childs]
        self.assertIn("ProtHaruspexRefineNucleicAcids", [node.value for node in found])
