"""ProtHaruspexBuildNucleicAcids in a real (headless) Scipion project, launching the real worker from its own
environment.

The input is the simulated map of an ideal 12-nt RNA strand (1 Å voxels, 38 × 39 × 54). Detection runs with random
CryoREAD weights in the published layout (allowed by the root conftest.py), so its maps are meaningless but every
file, grid and registration is real. To test building on maps that mean something, the protocol is then continued
from its build step after the detection maps in its extra folder were replaced by oracle maps of the same RNA on
the detection's own working grid (``haruspex_engine.testing.oracle_detection``): first with the working map
missing, so the build step fails, then, the map restored, continued again as a user would after a failure.
Detection runs once on the RNA map (~1-2 min of CPU); everything else reuses it, which is itself the restartability
check. The build refines its model with servalcat (the default), so the continued run also shows the refined model
and the nucleic-acid-masked map. A nearly empty map (two positive voxels: every box is skipped) gives the "no nucleic
acid" result in seconds.
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import types
from pathlib import Path
from unittest import mock

import numpy as np
import pyworkflow as pw
from pwem.convert.atom_struct import NAME, RECIP, SPEC, VALUE, AtomicStructHandler
from pwem.objects import AtomStruct, Sequence, SetOfSequences, Volume
from pwem.protocols import EMProtocol
from pwem.viewers.viewer_localres import replaceOcuppancyWithAttribute
from pyworkflow.protocol import STATUS_NEW
from pyworkflow.tests import BaseTest, setupTestProject

from haruspex_plugin.constants import (
    NA_CONFIDENCE_ATTRIBUTE,
    NA_DETECTION_OUTPUT,
    NA_MAP_OUTPUTS,
    NA_MASKED_MAP_OUTPUT,
    NA_MODEL_NO_SEQUENCE_OUTPUT,
    NA_MODEL_OUTPUT,
    NA_MODEL_REFINED_OUTPUT,
)
from haruspex_plugin.protocols import ProtHaruspexBuildNucleicAcids
from haruspex_plugin.tests.helpers import (
    CRYOREAD_WEIGHTS,
    environment,
    import_map,
    read_mrc,
    run_worker,
    worker_writing,
    write_mrc,
    write_oracle_example,
)
from haruspex_plugin.wizards import HaruspexContourWizard, proposed_contour

CLASSES = ("sugar", "phosphate", "A", "UT", "C", "G", "protein", "base")  # docs/worker-contract.md, in order
RNA_SEQUENCE = "GGCAUCAGUCCA"  # oracle_detection.EXAMPLE_SEQUENCE: the strand the example map is simulated from
RNA_HEADER = "7XYZ_1|Chain R|ideal RNA"
PROTEIN_HEADER = "7XYZ_2|Chain P|a protein"
FAST_BUILD = {"traceSolutions": 100, "traceTimeLimit": 30.0, "assignTimeLimit": 10.0}


class TestHaruspexBuildNucleicAcids(BaseTest):
    """One detection with random weights, two continued builds on oracle maps (failing, then after the fix), the
    checks on each; no nucleic acid, failing runs, validation, the wizard and the menu."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        weights = cls.getOutputPath("cryoread-weights")
        run_worker("-m", "haruspex_engine.testing.random_cryoread_weights", weights)
        stack = contextlib.ExitStack()
        cls.addClassCleanup(stack.close)
        stack.enter_context(environment(**{CRYOREAD_WEIGHTS: weights}))
        cls.reference = cls.getOutputPath("rna_reference.cif")
        mapPath = cls.getOutputPath("rna_map.mrc")
        write_oracle_example(cls.reference, mapPath)
        cls.inputVolume = import_map(cls, mapPath)
        cls.sequences = cls.registerSequences({RNA_HEADER: RNA_SEQUENCE, PROTEIN_HEADER: "MKVLAAGIVGLLLAGCSS"})

        cls.prot = cls.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=cls.inputVolume, resolution=3.5,
                                   inputSequences=cls.sequences, useGpu=False, **FAST_BUILD)
        cls.launchProtocol(cls.prot)
        cls.detectionMtime = os.stat(cls.prot.getDetectionSummaryPath()).st_mtime_ns
        cls.detectEnd = cls.stepEndTimes(cls.prot)["detectStep"]
        cls.randomRun = cls.snapshot(cls.prot)

        # Oracle maps on the detection's grid; the build first fails (working map missing), then is continued.
        summary = cls.prot.getDetectionSummaryPath()
        run_worker("-m", "haruspex_engine.testing.oracle_detection", "replace", summary, cls.reference)
        working = cls.prot.getDetectionSummary()["outputs"]["working"]
        shutil.move(working, working + ".aside")
        cls.resetSteps(cls.prot, "buildStep", "createOutputStep", "refineStep", "createRefinedOutputStep")
        cls.proj.launchProtocol(cls.prot, wait=True)
        cls.failedBuild = cls.snapshot(cls.prot)
        shutil.move(working + ".aside", working)
        cls.launchProtocol(cls.prot)  # continue: only the failed build step and the output step run
        cls.oracleRun = cls.snapshot(cls.prot)

    # --- set-up helpers -----------------------------------------------------------------------------------------
    @classmethod
    def registerSequences(cls, records: dict[str, str]) -> SetOfSequences:
        """A SetOfSequences made of pwem objects, registered as the output of a saved (not run) protocol; ids and
        descriptions as Biopython gives them (id = first word, description = the whole header)."""
        holder = cls.newProtocol(EMProtocol)
        holder.setObjLabel("chain sequences")
        cls.proj.saveProtocol(holder)
        holder.makePathsAndClean()
        sequences = SetOfSequences(filename=holder._getPath("sequences.sqlite"))
        for header, letters in records.items():
            sequences.append(Sequence(id=header.split()[0], name=header.split("|")[0], description=header,
                                      sequence=letters, isAminoacids=header == PROTEIN_HEADER))
        sequences.write()
        holder._defineOutputs(outputSequences=sequences)
        holder.setFinished()
        cls.proj._storeProtocol(holder)
        return holder.outputSequences

    @classmethod
    def resetSteps(cls, prot, *names: str) -> None:
        """Mark steps as new, one at a time as the Reset button of the GUI's steps window does, so that continuing
        reruns them."""
        for step in prot.loadSteps():
            if step.funcName.get() in names:
                prot._updateSteps(lambda s: s.setStatus(STATUS_NEW), where=f"id='{step.getObjId()}'")
        assert {s.funcName.get() for s in prot.loadSteps() if s.isNew()} == set(names)

    @classmethod
    def stepEndTimes(cls, prot) -> dict[str, str]:
        return {step.funcName.get(): step.endTime.get() for step in prot.loadSteps()}

    @classmethod
    def snapshot(cls, prot) -> types.SimpleNamespace:
        """What a run left: status, error, outputs (name -> object), reports, summary text, step end times."""
        build = prot.getBuildReport() if os.path.exists(prot.getBuildReportPath()) else None
        refine = prot.getRefineReport() if os.path.exists(prot.getRefineReportPath()) else None
        return types.SimpleNamespace(
            status=prot.getStatus(), error=prot.getErrorMessage(), outputs=dict(prot.iterOutputAttributes()),
            detection=prot.getDetectionSummary(), build=build, refine=refine, summary="\n".join(prot.summary()),
            methods="\n".join(prot.methods()), steps=cls.stepEndTimes(prot),
            detectionMtime=os.stat(prot.getDetectionSummaryPath()).st_mtime_ns,
        )

    # --- the detection (random weights) -------------------------------------------------------------------------
    def test_detection_maps_are_registered_on_the_working_grid(self):
        run = self.randomRun
        self.assertEqual(run.status, "finished")
        grid = run.detection["working_grid"]
        detection = run.outputs[NA_DETECTION_OUTPUT]
        self.assertEqual(detection.getSize(), 8)
        self.assertEqual(detection.getSamplingRate(), 1.0)
        self.assertEqual([v.getObjLabel() for v in detection], list(CLASSES))
        for volume in detection:
            with self.subTest(volume=volume.getObjLabel()):
                self.assertEqual(volume.getSamplingRate(), 1.0)
                np.testing.assert_allclose(volume.getOrigin(force=True).getShifts(), grid["origin_xyz"])
                self.assertTrue(os.path.samefile(volume.getFileName(), run.detection["outputs"][volume.getObjLabel()]))
                data, voxel, origin = read_mrc(volume.getFileName())
                self.assertEqual(list(data.shape), grid["shape_zyx"])
                self.assertEqual(volume.getDim(), tuple(grid["shape_zyx"][::-1]))
                np.testing.assert_allclose(voxel, (1.0, 1.0, 1.0))
                np.testing.assert_allclose(origin, grid["origin_xyz"])
                self.assertTrue(np.isfinite(data).all() and 0 <= data.min() and data.max() <= 1)

    def test_working_grid_overlays_the_input_map(self):
        grid = self.randomRun.detection["working_grid"]
        inputOrigin = np.array(self.inputVolume.getOrigin(force=True).getShifts())
        np.testing.assert_allclose(grid["origin_xyz"], inputOrigin + np.array(grid["crop_start_zyx"][::-1]))
        _, _, header = read_mrc(self.prot.getInputMapPath())
        np.testing.assert_allclose(header, inputOrigin)  # the converted input keeps Scipion's origin

    def test_named_maps_are_the_sugar_phosphate_and_protein_maps(self):
        run = self.randomRun
        for cls, name in NA_MAP_OUTPUTS.items():
            volume = run.outputs[name]
            self.assertEqual(volume.getObjLabel(), cls)
            self.assertTrue(os.path.samefile(volume.getFileName(), run.detection["outputs"][cls]))
            self.assertEqual(volume.getSamplingRate(), 1.0)

    def test_models_registered_exactly_as_the_build_report_lists(self):
        run = self.randomRun
        listed = run.build["outputs"]
        self.assertEqual(NA_MODEL_OUTPUT in run.outputs, "model" in listed)
        self.assertEqual(NA_MODEL_NO_SEQUENCE_OUTPUT in run.outputs, "model_without_sequence" in listed)
        self.assertEqual(run.build["residues"] > 0, "model" in listed)
        self.assertEqual(NA_MODEL_REFINED_OUTPUT in run.outputs, "model" in listed)  # refined by default
        self.assertEqual(run.refine is not None, "model" in listed)
        self.assertIn(NA_MASKED_MAP_OUTPUT, run.outputs)

    def test_sequences_go_to_the_worker_as_fasta_and_protein_is_skipped(self):
        fasta = Path(self.prot.getFastaPath()).read_text()
        self.assertEqual(fasta, f">{RNA_HEADER}\n{RNA_SEQUENCE}\n>{PROTEIN_HEADER}\nMKVLAAGIVGLLLAGCSS\n")
        self.assertTrue(os.path.samefile(self.randomRun.build["sequence"], self.prot.getFastaPath()))
        self.assertTrue(any("a protein" in w and "skipped" in w for w in self.randomRun.build["warnings"]))
        self.assertIn("skipped", self.randomRun.summary)

    def test_summary_reports_weights_device_and_the_test_weights_warning(self):
        text = self.randomRun.summary
        self.assertIn("weights cryoread-default (resolution 3.5 Å in [3, 5] Å)", text)
        self.assertIn("device cpu", text)
        self.assertIn("RANDOM TEST WEIGHTS", text)

    # --- continued from the build step on oracle maps ----------------------------------------------------------
    def test_failed_build_gives_the_worker_message(self):
        run = self.failedBuild
        self.assertEqual(run.status, "failed")
        self.assertIn("haruspex: error:", run.error)
        self.assertIn("_working.mrc", run.error)
        self.assertIsNone(run.build)

    def test_continue_reruns_only_the_build(self):
        for run in (self.failedBuild, self.oracleRun):
            self.assertEqual(run.detectionMtime, self.detectionMtime)
            self.assertEqual(run.steps["detectStep"], self.detectEnd)
        self.assertNotEqual(self.oracleRun.steps["buildStep"], self.randomRun.steps["buildStep"])
        self.assertEqual(self.oracleRun.status, "finished")

    def test_oracle_build_gives_the_rna_in_the_sequence_register(self):
        build = self.oracleRun.build
        self.assertEqual([(c["id"], c["first"], c["last"]) for c in build["chains"]], [("R", 1, 12)])
        self.assertEqual(build["chains"][0]["sequence"], RNA_SEQUENCE)
        model = self.oracleRun.outputs[NA_MODEL_OUTPUT]
        scores = json.loads(run_worker("-m", "haruspex_engine", "evaluate-na", os.path.abspath(model.getFileName()),
                                       self.reference))
        self.assertGreaterEqual(scores["backbone_coverage_3A"], 0.9)
        self.assertGreaterEqual(scores["sequence_recall"], 0.9)
        self.assertIn("Model: 1 chain, 12 nucleotides", self.oracleRun.summary)
        self.assertIn("Sequence coverage: 12 of 12 nucleotides", self.oracleRun.summary)
        self.assertIn("[Wang2023]", self.oracleRun.methods)

    def test_models_are_atom_structs_with_the_input_volume(self):
        for name in (NA_MODEL_OUTPUT, NA_MODEL_NO_SEQUENCE_OUTPUT):
            model = self.oracleRun.outputs[name]
            with self.subTest(output=name):
                self.assertIsInstance(model, AtomStruct)
                self.assertTrue(model.getFileName().endswith(".cif") and os.path.isfile(model.getFileName()))
                self.assertTrue(model.hasVolume())
                self.assertEqual(model.getVolume().getFileName(), self.inputVolume.getFileName())
                self.assertEqual(model.getVolume().getSamplingRate(), self.inputVolume.getSamplingRate())
                parents = {p.getObjId() for p in self.proj.getSourceParents(model)}
                self.assertEqual(parents, {self.inputVolume.getObjId(), self.sequences.getObjId()})

    def test_masked_map_keeps_the_working_density_where_nucleic_acid_was_detected(self):
        run = self.oracleRun
        grid = run.detection["working_grid"]
        volume = run.outputs[NA_MASKED_MAP_OUTPUT]
        self.assertIsInstance(volume, Volume)
        self.assertTrue(os.path.samefile(volume.getFileName(), run.build["outputs"]["na_masked_map"]))
        self.assertEqual(volume.getSamplingRate(), 1.0)
        np.testing.assert_allclose(volume.getOrigin(force=True).getShifts(), grid["origin_xyz"])
        masked, voxel, origin = read_mrc(volume.getFileName())
        np.testing.assert_allclose(voxel, (1.0, 1.0, 1.0))
        np.testing.assert_allclose(origin, grid["origin_xyz"])
        working = read_mrc(run.detection["outputs"]["working"])[0]
        self.assertEqual(masked.shape, working.shape)
        self.assertTrue(np.all((masked == 0) | (masked == working)))  # density kept or zeroed, nothing else
        nucleic = sum(read_mrc(run.detection["outputs"][cls])[0] for cls in ("sugar", "phosphate", "base"))
        self.assertFalse(masked[nucleic < 0.05].any())  # sugar + phosphate + base at most 0.1: zeroed
        kept = (nucleic > 0.5) & (working > 0)
        self.assertTrue(kept.any())
        np.testing.assert_array_equal(masked[kept], working[kept])

    def test_refined_model_is_registered_with_the_input_map_and_summarised(self):
        run = self.oracleRun
        model = run.outputs[NA_MODEL_REFINED_OUTPUT]
        self.assertIsInstance(model, AtomStruct)
        self.assertTrue(os.path.samefile(model.getFileName(), run.refine["outputs"]["model"]))
        self.assertTrue(model.getFileName().endswith(".cif"))
        self.assertEqual(model.getVolume().getFileName(), self.inputVolume.getFileName())
        np.testing.assert_allclose(model.getVolume().getOrigin(force=True).getShifts(),
                                   self.inputVolume.getOrigin(force=True).getShifts())
        self.assertTrue(os.path.samefile(run.refine["model"], self.prot.getModelPath()))
        self.assertTrue(os.path.samefile(run.refine["maps"][0]["path"], self.prot.getInputMapPath()))
        self.assertEqual(run.refine["resolution_A"], 3.5)
        before, after = run.refine["geometry"]["before"], run.refine["geometry"]["after"]
        self.assertLess(after["bond_rmsd_A"], 0.05)  # the built model starts ideal; restraints keep it near
        self.assertGreater(run.refine["fsc_average"]["after"], run.refine["fsc_average"]["before"])
        built, refined = (json.loads(run_worker("-m", "haruspex_engine", "evaluate-na", os.path.abspath(path),
                                                self.reference))
                          for path in (run.outputs[NA_MODEL_OUTPUT].getFileName(), model.getFileName()))
        self.assertGreaterEqual(refined["backbone_coverage_3A"], 0.9)  # still in the input map's frame
        # closer to the strand the map shows, or (the built model already fitted into clean maps, ~0.1 Å) as close
        self.assertLess(refined["rmsd_all_atoms_A"], max(0.5 * built["rmsd_all_atoms_A"], 0.3))
        self.assertIn(f"bond r.m.s.d. {before['bond_rmsd_A']:g} → {after['bond_rmsd_A']:g} Å", run.summary)
        self.assertIn("chain breaks kept open", run.summary)
        self.assertIn("It was then refined into the map at 3.5 Å with servalcat", run.methods)
        parents = {p.getObjId() for p in self.proj.getSourceParents(model)}
        self.assertEqual(parents, {self.inputVolume.getObjId(), self.sequences.getObjId()})

    def test_confidence_is_a_per_residue_scipion_attribute(self):
        model = self.oracleRun.outputs[NA_MODEL_OUTPUT]
        cif = AtomicStructHandler().readLowLevel(model.getFileName())
        self.assertEqual(set(cif[NAME]), {NA_CONFIDENCE_ATTRIBUTE})
        self.assertEqual(set(cif[RECIP]), {"residues"})
        with open(self.oracleRun.build["outputs"]["confidence"], newline="") as handle:
            table = {f"{r['chain']}:{r['residue_number']}": float(r["confidence"]) for r in csv.DictReader(handle)}
        self.assertEqual(len(table), 12)
        attribute = dict(zip(cif[SPEC], map(float, cif[VALUE])))
        self.assertEqual(set(attribute), set(table))
        for spec, value in table.items():
            self.assertAlmostEqual(attribute[spec], value, places=3)
        # pwem's ChimeraX attribute viewer puts the attribute into the occupancy column: it must read our file
        colored = replaceOcuppancyWithAttribute(model.getFileName(), NA_CONFIDENCE_ATTRIBUTE,
                                                self.getOutputPath("confidence_as_occupancy.cif"))
        occupancy = AtomicStructHandler().readLowLevel(colored)["_atom_site.occupancy"]
        self.assertEqual(len(occupancy), len(cif["_atom_site.id"]))
        self.assertGreater(len(set(occupancy)), 1)

    # --- demo detector -----------------------------------------------------------------------------------------
    def test_the_demo_detector_builds_the_rna_without_any_weights_installed(self):
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume, resolution=3.5,
                                inputSequences=self.sequences, useDemoModel=True, refineModel=False, useGpu=False,
                                **FAST_BUILD)
        with environment(**{CRYOREAD_WEIGHTS: self.getOutputPath("no-weights-here")}):
            self.assertEqual(prot.validate(), [])  # no published weights needed
            self.assertIn("--demo-model", prot._detectArgs())
            self.assertNotIn("--weight-set", prot._detectArgs())
            self.launchProtocol(prot)
        run = self.snapshot(prot)
        self.assertEqual(run.detection["network"], "demo")
        self.assertTrue(any(w.startswith("DEMO MODEL") for w in run.detection["warnings"]))
        self.assertTrue(any("DEMO MODEL" in w for w in run.build["warnings"]))  # the label follows the maps
        self.assertGreater(run.build["residues"], 0)  # a weak demo network: 5 of the 12 nucleotides when written
        self.assertIn(NA_MODEL_OUTPUT, run.outputs)
        self.assertIn("demo detection network", run.methods)

    # --- no nucleic acid ---------------------------------------------------------------------------------------
    def test_no_nucleic_acid_registers_the_maps_only(self):
        density = np.zeros((30, 30, 30), np.float32)
        density[1, 1, 1], density[28, 27, 26] = 1.0, 0.5  # too little density for any box to be run
        volume = import_map(self, write_mrc(self.getOutputPath("specks.mrc"), density, 1.2, (5.0, -3.0, 2.0)))
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=volume, resolution=3.5, useGpu=False)
        self.launchProtocol(prot)
        run = self.snapshot(prot)
        self.assertEqual(run.build["residues"], 0)
        self.assertEqual(run.detection["stages"]["stage1"]["skipped"], run.detection["stages"]["stage1"]["boxes"])
        self.assertEqual(set(run.outputs), {NA_DETECTION_OUTPUT, *NA_MAP_OUTPUTS.values(), NA_MASKED_MAP_OUTPUT})
        self.assertFalse(read_mrc(run.outputs[NA_MASKED_MAP_OUTPUT].getFileName())[0].any())
        self.assertIsNone(run.refine)
        self.assertIn("No nucleic acid found", run.summary)
        self.assertIn("Refinement: skipped, no model was built.", run.summary)
        self.assertIn("No nucleic-acid chain could be traced", run.methods)
        grid = run.detection["working_grid"]  # 1 Å grid starting at the input's first voxel, cropped
        np.testing.assert_allclose(grid["origin_xyz"], np.array([5.0, -3.0, 2.0]) + grid["crop_start_zyx"][::-1])
        for item in run.outputs[NA_DETECTION_OUTPUT]:
            self.assertEqual(item.getSamplingRate(), 1.0)
            np.testing.assert_allclose(item.getOrigin(force=True).getShifts(), grid["origin_xyz"])
            np.testing.assert_allclose(read_mrc(item.getFileName())[2], grid["origin_xyz"])

    # --- failing runs and validation ---------------------------------------------------------------------------
    def test_bad_weights_are_refused_naming_the_file_and_register_nothing(self):
        bad = Path(self.getOutputPath("bad-weights"))
        bad.mkdir(exist_ok=True)
        for name in ("stage1_network.pth", "stage2_network.pth"):
            (bad / name).write_bytes(b"not a checkpoint")
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume, resolution=3.5,
                                useGpu=False)
        with environment(**{CRYOREAD_WEIGHTS: str(bad)}):
            errors = prot.validate()  # the files exist, but their hashes are not the published ones
            self.assertEqual(len(errors), 1, errors)
            self.assertIn("stage1_network.pth", errors[0])
            self.assertIn("haruspex weights download", errors[0])
            self.proj.launchProtocol(prot, wait=True)  # a scheduled launch validates too
        self.assertTrue(prot.isFailed(), prot.getStatus())
        self.assertIn("stage1_network.pth: not the published", prot.getErrorMessage())
        self.assertEqual(list(prot.iterOutputAttributes()), [])

    def test_validate_accepts_a_complete_setup(self):
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume, resolution=2.5,
                                inputSequences=self.sequences, useGpu=False)
        self.assertEqual(prot.validate(), [])

    def test_validate_reports_missing_weights(self):
        missing = self.getOutputPath("no-such-weights")
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume, resolution=3.5,
                                useGpu=False)
        with environment(**{CRYOREAD_WEIGHTS: missing}):
            errors = prot.validate()
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("CryoREAD weights not usable", errors[0])
        self.assertIn(missing, errors[0])

    def test_validate_reports_missing_refinement_tools_unless_refinement_is_off(self):
        missing = self.getOutputPath("no-such-monomer-library")
        with environment(HARUSPEX_MONOMER_LIBRARY=missing):
            errors = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume, resolution=3.5,
                                      useGpu=False).validate()
            self.assertEqual(len(errors), 1, errors)
            self.assertIn(f"{missing} (from $HARUSPEX_MONOMER_LIBRARY): no such directory", errors[0])
            self.assertIn("answer No to 'Refine the model with servalcat?'", errors[0])
            self.assertEqual(self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume,
                                              resolution=3.5, useGpu=False, refineModel=False).validate(), [])

    def test_validate_refuses_resolutions_beyond_10_A(self):
        for resolution in (12.0, 0.0):
            prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume,
                                    resolution=resolution, useGpu=False)
            errors = prot.validate()
            self.assertTrue(any("from 0 to 10 Å" in e for e in errors), errors)

    def test_validate_refuses_protein_only_sequences(self):
        protein = Sequence(id="P1", description="P1 a protein", sequence="MKVLAAGIVGLLLAGCSSHHHHHH")
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume, resolution=3.5,
                                inputSequences=protein, useGpu=False)
        errors = prot.validate()
        self.assertEqual(len(errors), 1, errors)
        self.assertIn("only protein", errors[0])

    def test_validate_requires_a_sampling_rate(self):
        volume = Volume()
        volume.setFileName(self.inputVolume.getFileName())
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=volume, resolution=3.5, useGpu=False)
        self.assertTrue(any("no sampling rate" in e for e in prot.validate()))

    def test_through_a_queue_the_worker_keeps_the_gpus_the_queue_allocated(self):
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume, resolution=3.5,
                                useGpu=True, gpuList="1")
        prot.setWorkingDir(self.getOutputPath("unlaunched-queue"))
        prot._useQueue.set(True)  # "Use a queue engine?" in the form
        with mock.patch.object(ProtHaruspexBuildNucleicAcids, "runJob",
                               side_effect=worker_writing(prot.getDetectionSummaryPath())) as runJob:
            prot.detectStep(prot._detectArgs())
        program, arguments = runJob.call_args.args
        self.assertNotIn("CUDA_VISIBLE_DEVICES", program)  # SLURM's allocation stands
        self.assertNotIn("%%", arguments)  # nothing for runJob to %-format
        self.assertIn("--device auto", arguments)

    def test_single_rna_sequence_is_written_with_its_header(self):
        rna = Sequence(id="21051_3", description="21051_3 mol:na", sequence="ggcaucagucca")
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume, resolution=3.5,
                                inputSequences=rna, useGpu=False)
        self.assertEqual(prot.getFastaText(), ">21051_3 mol:na\nggcaucagucca\n")
        self.assertEqual(prot.validate(), [])

    def test_gpu_selection_and_worker_arguments(self):
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume, resolution=6.0,
                                contourLevel=0.25, stride=16, weightSet=2, dna=True, useGpu=True, gpuList="1",
                                sugarNodes=1)
        prot.setWorkingDir(self.getOutputPath("unlaunched-gpu"))
        worker = worker_writing(prot.getDetectionSummaryPath(), prot.getBuildReportPath())
        with mock.patch.object(ProtHaruspexBuildNucleicAcids, "runJob", side_effect=worker) as runJob:
            prot.detectStep(prot._detectArgs())
            prot.buildStep(prot._buildArgs())
        (detectProgram, detectArgs), (buildProgram, buildArgs) = (c.args for c in runJob.call_args_list)
        self.assertTrue(detectProgram.startswith("CUDA_VISIBLE_DEVICES=%(GPU)s "), detectProgram)
        for option in ("--device auto", "--resolution 6.0", "--contour 0.25", "--stride 16", "--weight-set paper"):
            self.assertIn(option, detectArgs)
        self.assertFalse(buildProgram.startswith("CUDA_VISIBLE_DEVICES"), buildProgram)  # building is CPU work
        self.assertIn("--dna", buildArgs)
        self.assertIn("--sugar-nodes mean-shift", buildArgs)
        self.assertNotIn("--sequence", buildArgs)
        refine = prot._refineArgs()
        self.assertEqual(refine[:3], ["refine-na", os.path.abspath(prot.getModelPath()),
                                      os.path.abspath(prot.getInputMapPath())])
        self.assertIn("--resolution 6.0", " ".join(refine))

    # --- wizard, citations, menu -------------------------------------------------------------------------------
    def test_contour_wizard_proposes_half_a_noise_based_author_level(self):
        rng = np.random.default_rng(0)
        density = rng.normal(0.2, 0.1, (40, 40, 40))
        density[10:20, 10:20, 10:20] += 5.0  # 1.6 % of the voxels: the molecule barely moves median and MAD
        self.assertAlmostEqual(proposed_contour(density), 0.5 * (0.2 + 3 * 0.1), delta=0.01)
        self.assertEqual(proposed_contour(np.full((4, 4, 4), -1.0)), 0.0)

        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.inputVolume)
        self.assertEqual(pw.Config.getDomain().findWizards(prot, "tkinter"), {"contourLevel": HaruspexContourWizard})
        form = types.SimpleNamespace(protocol=prot, root=None, setVar=mock.Mock())
        HaruspexContourWizard().show(form)
        (name, value), _ = form.setVar.call_args
        self.assertEqual(name, "contourLevel")
        expected = proposed_contour(read_mrc(self.inputVolume.getFileName())[0])
        self.assertAlmostEqual(value, expected, delta=1e-3 * max(expected, 1e-6))

    def test_citations(self):
        self.assertEqual(self.prot._citations(), ["Wang2023"])
        self.assertTrue(any("Wang et al., Nature Methods, 2023" in c for c in self.prot.citations()))

    def test_menu_lists_the_protocol(self):
        from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig

        config = ProtocolTreeConfig.load(pw.Config.getDomain(), self.getOutputPath("no-user-menu.conf"))
        found = [child for section in config["Model building"].childs if section.text == "Initial model"
                 for child in section.childs]
        self.assertIn("ProtHaruspexBuildNucleicAcids", [node.value for node in found])
