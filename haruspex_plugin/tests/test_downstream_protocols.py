"""Our AtomStruct output as the input of the standard downstream Scipion refinement and validation protocols.

The model is the real output of ProtHaruspexRefineNucleicAcids (an mmCIF AtomStruct with a copy of its map attached,
``convert.model_with_volume``, which the build protocol's models use too), run on an ideal 12-nt RNA strand
and its map simulated at 1.2 Å/voxel with the origin a whole number of voxels away from 0 (the downstream protocols
write the origin as an MRC start index, in whole voxels). Each downstream protocol then gets that AtomStruct alone
as its input and must:

- take the attached volume as its map (file, sampling rate, origin);
- raise no validation error about its input: only that its external program (PHENIX, CCP4's refmac5, ChimeraX) is
  not installed here, whereas the same protocol given the model without a map asks for a volume;
- write, with its own conversion step, the map the external program would read: our data, voxel size and origin,
  with the model's atoms on the density (PHENIX, refmac); or the ChimeraX script that opens our map at our voxel
  size and origin and our model unmoved.

Each plugin (scipion-em-phenix, scipion-em-ccp4, scipion-em-chimera) is optional: its tests skip when it is not
installed in the Scipion environment. No Scipion plugin for servalcat exists in the package registry; our own
ProtHaruspexRefineNucleicAcids runs servalcat (see test_protocol_refine.py).
"""
from __future__ import annotations

import importlib.util
import os
import unittest
from pathlib import Path
from unittest import mock

import numpy as np
from pwem.convert.atom_struct import AtomicStructHandler
from pwem.objects import Volume
from pyworkflow.tests import BaseTest, setupTestProject
from scipy import ndimage

from haruspex_engine.maps import read_map
from haruspex_plugin.constants import REFINED_MODEL_OUTPUT
from haruspex_plugin.protocols import ProtHaruspexRefineNucleicAcids
from haruspex_plugin.tests.helpers import import_map, import_model, run_worker

RESOLUTION_A = 3.5
VOXEL_SIZE_A = 1.2
RESIDUES = 12
PROVIDE_A_VOLUME = "Error: You should provide a volume.\n"  # what the downstream protocols say without a map
# Run by the worker: an ideal RNA strand (mmCIF) and its map simulated by the engine on a grid of VOXEL_SIZE_A
# (argv[3]) whose first voxel is a whole number of voxels from 0, with 8 Å of padding around the atoms.
SIMULATE_EXAMPLE = """\
import sys
from pathlib import Path
import gemmi
import numpy as np
from haruspex_engine.maps import write_map
from haruspex_engine.nucleic.building.atoms import write_model
from haruspex_engine.simulate import density_on_grid
from haruspex_engine.testing.oracle_detection import EXAMPLE_SEQUENCE
from haruspex_engine.testing.rna_models import ideal_rna
structure = ideal_rna(EXAMPLE_SEQUENCE)
write_model(structure, Path(sys.argv[1]))
voxel, resolution = float(sys.argv[3]), float(sys.argv[4])
xyz = np.array([cra.atom.pos.tolist() for cra in structure[0].all()])
first = np.floor((xyz.min(axis=0) - 8.0) / voxel) * voxel
shape_xyz = np.ceil((xyz.max(axis=0) + 8.0 - first) / voxel).astype(int)
model = structure[0]
model.transform_pos_and_adp(gemmi.Transform(gemmi.Mat33(), gemmi.Vec3(*(-first))))
density = density_on_grid(model, tuple(int(n) for n in shape_xyz[::-1]), voxel, resolution)
write_map(sys.argv[2], density, (voxel,) * 3, tuple(float(v) for v in first))
"""


def requires(module: str, distribution: str):
    """Skip a test unless the Scipion plugin package *module* (pip package *distribution*) is importable here."""
    return unittest.skipUnless(importlib.util.find_spec(module) is not None,
                               f"{distribution} is not installed in this Scipion environment "
                               f"(pip install {distribution})")


class TestDownstreamProtocols(BaseTest):
    """Our refined model given to PHENIX real-space refine / validation cryo-EM / MolProbity, CCP4 refmac and the
    ChimeraX rigid fit, through each protocol's own input handling, without the external programs."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        modelPath, mapPath = cls.getOutputPath("rna_model.cif"), cls.getOutputPath("rna_map.mrc")
        run_worker("-c", SIMULATE_EXAMPLE, modelPath, mapPath, str(VOXEL_SIZE_A), str(RESOLUTION_A))
        cls.inputMap = read_map(mapPath)
        cls.inputVolume = import_map(cls, mapPath)
        refine = cls.newProtocol(ProtHaruspexRefineNucleicAcids, inputStructure=import_model(cls, modelPath),
                                 inputVolume=cls.inputVolume, resolution=RESOLUTION_A)
        cls.launchProtocol(refine)
        cls.model = getattr(refine, REFINED_MODEL_OUTPUT)
        cls.bareModel = import_model(cls, modelPath)

    def newDownstream(self, protocolClass, structureParam: str = "inputStructure", **values):
        """A saved, not launched, *protocolClass* with our model as its only input, its folders made."""
        prot = self.newProtocol(protocolClass, **{structureParam: self.model}, **values)
        self.proj.saveProtocol(prot)
        prot.makePathsAndClean()
        return prot

    # --- checks -----------------------------------------------------------------------------------------------
    def assertOurVolume(self, volume: Volume):
        """*volume* is the map attached to our model: the input map's file, sampling rate, origin and size."""
        self.assertIsNotNone(volume)
        self.assertEqual(volume.getFileName(), self.inputVolume.getFileName())
        self.assertAlmostEqual(volume.getSamplingRate(), VOXEL_SIZE_A, places=5)
        np.testing.assert_allclose(volume.getOrigin(force=True).getShifts(), self.inputMap.origin, atol=1e-4)
        self.assertEqual(volume.getDim(), self.inputMap.data.shape[::-1])

    def assertOnlyMissingProgram(self, protocolClass, structureParam: str, program: str,
                                 missingVolumeError: str | None, **values):
        """validate() with our model complains about nothing but *program* (the external program's configuration
        variable; it is not installed here). The control: given the same model without a map, the protocol reports
        the same errors plus *missingVolumeError* (None: the protocol needs no map)."""
        ours = self.newProtocol(protocolClass, **{structureParam: self.model}, **values).validate()
        bare = self.newProtocol(protocolClass, **{structureParam: self.bareModel}, **values).validate()
        self.assertFalse([e for e in ours if "volume" in e.lower() or "empty" in e.lower()], ours)
        self.assertEqual([e for e in bare if e not in ours], [missingVolumeError] if missingVolumeError else [])
        self.assertEqual([e for e in ours if e not in bare], [])
        if not os.path.exists(protocolClass.getClassPackage().Plugin.getHome()):
            self.assertIn(program, "\n".join(ours))

    def assertConvertedMap(self, path: str):
        """The map file a downstream protocol wrote for its program holds our map on our grid (voxel size, position
        of the first voxel in Å) and our model's atoms lie on its density."""
        converted = read_map(path)
        np.testing.assert_array_equal(converted.data, self.inputMap.data)
        np.testing.assert_allclose(converted.voxel_size, (VOXEL_SIZE_A,) * 3, atol=1e-4)
        np.testing.assert_allclose(converted.first_voxel_position, self.inputMap.origin, atol=1e-3)
        atoms_xyz = np.array([atom.get_coord() for atom in self.modelAtoms()])
        voxels_zyx = ((atoms_xyz - converted.first_voxel_position) / VOXEL_SIZE_A)[:, ::-1]
        at_atoms = ndimage.map_coordinates(converted.data, voxels_zyx.T, order=1)
        self.assertGreater(float(at_atoms.mean()), float(converted.data.mean() + 3 * converted.data.std()))

    def modelAtoms(self) -> list:
        """Our model's atoms, read as pwem (Biopython) reads the AtomStruct file."""
        handler = AtomicStructHandler()
        handler.read(self.model.getFileName())
        return list(handler.getStructure().get_atoms())

    # --- our output -------------------------------------------------------------------------------------------
    def test_our_model_is_mmcif_with_the_map_attached(self):
        self.assertTrue(self.model.getFileName().endswith(".cif"))
        self.assertTrue(self.model.hasVolume())
        self.assertOurVolume(self.model.getVolume())
        self.assertFalse(self.model.hasOrigin())
        residues = {atom.get_parent().get_full_id()[2:4] for atom in self.modelAtoms()}
        self.assertEqual(len(residues), RESIDUES)

    # --- PHENIX -----------------------------------------------------------------------------------------------
    @requires("phenix", "scipion-em-phenix")
    def test_phenix_real_space_refine(self):
        from phenix.protocols import PhenixProtRunRSRefine

        self.assertOnlyMissingProgram(PhenixProtRunRSRefine, "inputStructure", "PHENIX_HOME", PROVIDE_A_VOLUME,
                                      resolution=RESOLUTION_A)
        prot = self.newDownstream(PhenixProtRunRSRefine, resolution=RESOLUTION_A)
        self.assertOurVolume(prot._getInputVolume())
        prot.convertInputStep(prot.REALSPACEFILE)
        mapPath = prot._getExtraPath(prot.REALSPACEFILE)
        self.assertConvertedMap(mapPath)
        modelPath = os.path.abspath(self.model.getFileName())
        args = prot._writeArgsRSR(modelPath, os.path.abspath(mapPath)).split()
        self.assertIn(modelPath, args)
        self.assertIn(os.path.abspath(mapPath), args)
        self.assertIn(f"resolution={RESOLUTION_A:f}", args)

    @requires("phenix", "scipion-em-phenix")
    def test_phenix_validation_cryoem(self):
        from phenix.protocols import PhenixProtRunValidationCryoEM

        self.assertOnlyMissingProgram(PhenixProtRunValidationCryoEM, "inputStructure", "PHENIX_HOME",
                                      PROVIDE_A_VOLUME, resolution=RESOLUTION_A)
        prot = self.newDownstream(PhenixProtRunValidationCryoEM, resolution=RESOLUTION_A)
        prot._insertAllSteps()  # chooses the map: the chosen volume, else the model's
        self.assertOurVolume(prot.vol)
        prot.convertInputStep(prot.VALIDATIONCRYOEMFILE)
        self.assertConvertedMap(prot._getExtraPath(prot.VALIDATIONCRYOEMFILE))

    @requires("phenix", "scipion-em-phenix")
    def test_phenix_molprobity_with_the_map(self):
        from phenix.protocols import PhenixProtRunMolprobity

        self.assertOnlyMissingProgram(PhenixProtRunMolprobity, "inputStructure", "PHENIX_HOME", None,
                                      resolution=RESOLUTION_A)
        prot = self.newDownstream(PhenixProtRunMolprobity, resolution=RESOLUTION_A)
        self.assertOurVolume(prot._getInputVolume())
        prot._insertAllSteps()  # converts the map only when the model has one (or one is chosen)
        self.assertIn("convertInputStep", [step.funcName.get() for step in prot._steps])
        prot.convertInputStep(prot.MOLPROBITYFILE)
        self.assertConvertedMap(prot._getExtraPath(prot.MOLPROBITYFILE))

    # --- CCP4 refmac ------------------------------------------------------------------------------------------
    @requires("ccp4", "scipion-em-ccp4")
    def test_ccp4_refmac(self):
        from ccp4.protocols import CCP4ProtRunRefmac

        self.assertOnlyMissingProgram(CCP4ProtRunRefmac, "inputStructure", "refmac5", PROVIDE_A_VOLUME,
                                      maxResolution=RESOLUTION_A)
        prot = self.newDownstream(CCP4ProtRunRefmac, maxResolution=RESOLUTION_A)
        self.assertOurVolume(prot._getInputVolume())
        prot.convertInputStep()
        self.assertConvertedMap(prot._getVolumeFileName())
        prot.createDataDictStep()
        extent = np.array(self.inputMap.data.shape[::-1]) * VOXEL_SIZE_A
        np.testing.assert_allclose([prot.dict[f"{axis}length"] for axis in "XYZ"], extent, atol=1e-3)
        self.assertEqual([prot.dict[f"{axis}Dim"] for axis in "XYZ"], list(self.inputMap.data.shape[::-1]))
        self.assertEqual(Path(prot.dict["PDBDIR"], prot.dict["PDBFILE"]), Path(self.model.getFileName()).resolve())
        prot.createMapMtzRefmacStep()
        script = Path(prot._getMapMtzScriptFileName()).read_text()
        self.assertIn(f"MOL={os.path.basename(self.model.getFileName())}", script)
        self.assertIn(f"MAPFILE={os.path.abspath(prot._getVolumeFileName())}", script)

    # --- ChimeraX ---------------------------------------------------------------------------------------------
    @requires("chimera", "scipion-em-chimera")
    def test_chimerax_rigid_fit(self):
        import chimera
        from chimera.protocols import ChimeraProtRigidFit

        self.assertOnlyMissingProgram(ChimeraProtRigidFit, "pdbFileToBeRefined", "CHIMERA_HOME", PROVIDE_A_VOLUME)
        prot = self.newDownstream(ChimeraProtRigidFit, structureParam="pdbFileToBeRefined")
        with mock.patch.object(chimera.Plugin, "runChimeraProgram") as runChimeraX:
            prot.runChimeraStep()
        runChimeraX.assert_called_once()
        script = runChimeraX.call_args.args[1].split()[-1]
        lines = Path(script).read_text().splitlines()
        volume = self.model.getVolume()
        x, y, z = self.inputMap.origin
        self.assertEqual(lines[2:5], [f"open {os.path.abspath(volume.getFileName())}",
                                      f"volume #2 style surface voxelSize {VOXEL_SIZE_A:f}",
                                      f"volume #2 origin {x:0.2f},{y:0.2f},{z:0.2f}"])
        self.assertEqual(lines[5:], [f"open {os.path.abspath(self.model.getFileName())}"])
