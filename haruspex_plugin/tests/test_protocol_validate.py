"""ProtHaruspexValidate in a real (headless) Scipion project, launching the real worker from its own environment.

The model is the built-in example scene (three ideal helices and a 4-stranded sheet, 82 residues) and the map is
simulated from it (``haruspex example``). Annotation runs with random weights in the published layout (allowed by
the root conftest.py), so the scores are meaningless; what is checked is the pipeline: annotate then validate, or
validate against a finished 'annotate map' run, the registered model and its per-residue attributes, and that the
protocol reports exactly what the engine's ``haruspex validate`` reports on the same files. The scores themselves
are tested on annotations with known answers in haruspex_engine/tests/test_validate.py.
"""
from __future__ import annotations

import csv
import json
import os

from pwem.convert.atom_struct import NAME, RECIP, SPEC, VALUE, AtomicStructHandler
from pwem.objects import AtomStruct
from pwem.protocols import ProtImportPdb, ProtImportVolumes
from pyworkflow.tests import BaseTest, setupTestProject

from haruspex_plugin.constants import (
    CLASSES,
    OUTPUT_NAMES,
    VALIDATION_AGREEMENT_ATTRIBUTE,
    VALIDATION_ATTRIBUTES,
    VALIDATION_MODEL_OUTPUT,
)
from haruspex_plugin.protocols import ProtHaruspexAnnotate, ProtHaruspexValidate
from haruspex_plugin.protocols.protocol_validate import FROM_ANNOTATION, FROM_MAP, summary_lines
from haruspex_plugin.tests.helpers import run_worker, use_test_checkpoint
from haruspex_plugin.tests.test_protocol_annotate import _protocol_paths

VOXEL_SIZE = 1.1  # haruspex example: 1.1 Å voxels, origin 0
SCENE_RESIDUES = 3 * 18 + 4 * 7
WRITE_SCENE = ("import sys; from haruspex_engine.structures import example_scene; "
               "from haruspex_engine.nucleic.building.atoms import write_model; "
               "write_model(example_scene(), sys.argv[1])")
WATER_PDB = "HETATM    1  O   HOH W   1      10.000  10.000  10.000  1.00 20.00           O\nEND\n"


class TestHaruspexValidate(BaseTest):
    """Annotate-then-validate in one run, validation of a finished annotate run, the checks on each; failing runs,
    validation of the form and the menu."""

    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)
        use_test_checkpoint(cls)
        mapPath, modelPath = cls.getOutputPath("scene.mrc"), cls.getOutputPath("scene_model.cif")
        run_worker("-m", "haruspex_engine", "example", mapPath)
        run_worker("-c", WRITE_SCENE, modelPath)
        cls.inputVolume = cls.importMap(mapPath)
        cls.inputStructure = cls.importModel(modelPath)

        cls.prot = cls.newProtocol(ProtHaruspexValidate, inputStructure=cls.inputStructure,
                                   annotationSource=FROM_MAP, inputVolume=cls.inputVolume, useGpu=False)
        cls.launchProtocol(cls.prot)
        cls.annotation = cls.newProtocol(ProtHaruspexAnnotate, inputVolume=cls.inputVolume, useGpu=False)
        cls.launchProtocol(cls.annotation)
        cls.fromRun = cls.newProtocol(ProtHaruspexValidate, inputStructure=cls.inputStructure,
                                      annotationSource=FROM_ANNOTATION, inputAnnotation=cls.annotation)
        cls.launchProtocol(cls.fromRun)

    @classmethod
    def importMap(cls, path: str):
        prot = cls.newProtocol(ProtImportVolumes, filesPath=path, samplingRate=VOXEL_SIZE,
                               setOrigCoord=True, x=0.0, y=0.0, z=0.0)  # the form asks for -origin
        cls.launchProtocol(prot)
        return prot.outputVolume

    @classmethod
    def importModel(cls, path: str):
        prot = cls.newProtocol(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES, pdbFile=path)
        cls.launchProtocol(prot)
        return prot.outputPdb

    # --- the runs -----------------------------------------------------------------------------------------------
    def test_model_registered_with_the_annotated_map(self):
        for prot in (self.prot, self.fromRun):
            model = getattr(prot, VALIDATION_MODEL_OUTPUT)
            self.assertIsInstance(model, AtomStruct)
            self.assertTrue(os.path.isfile(model.getFileName()))
            self.assertEqual(model.getVolume().getSamplingRate(), VOXEL_SIZE)
            parents = {p.getObjId() for p in self.proj.getSourceParents(model)}
            self.assertIn(self.inputStructure.getObjId(), parents)
        self.assertIn(self.inputVolume.getObjId(),
                      {p.getObjId() for p in self.proj.getSourceParents(getattr(self.prot, VALIDATION_MODEL_OUTPUT))})

    def test_residue_attributes_are_the_worker_table(self):
        model = getattr(self.prot, VALIDATION_MODEL_OUTPUT)
        cif = AtomicStructHandler().readLowLevel(model.getFileName())
        self.assertEqual(set(cif[NAME]), set(VALIDATION_ATTRIBUTES))
        self.assertEqual(set(cif[RECIP]), {"residues"})
        values = {}
        for name, spec, value in zip(cif[NAME], cif[SPEC], cif[VALUE]):
            values.setdefault(name, {})[spec] = float(value)
        with open(self.prot.getReport()["outputs"]["table"], newline="") as handle:
            rows = list(csv.DictReader(handle))
        self.assertEqual(len(rows), SCENE_RESIDUES)
        for name, column in VALIDATION_ATTRIBUTES.items():
            expected = {f"{r['chain']}:{r['residue_number']}": float(CLASSES.index(r[column]))
                        if column.endswith("_class") else float(r[column]) for r in rows}
            self.assertEqual(values[name], expected, name)
        agreement = values[VALIDATION_AGREEMENT_ATTRIBUTE]
        self.assertEqual(agreement, {f"{r['chain']}:{r['residue_number']}": float(r["model_class"] ==
                                                                                   r["predicted_class"]) for r in rows})

    def test_metrics_equal_the_engine_report_on_the_same_files(self):
        outdir = self.getOutputPath("engine-validate")
        model = os.path.abspath(self.inputStructure.getFileName())
        summary = os.path.abspath(self.prot.getAnnotationSummaryPath())
        run_worker("-m", "haruspex_engine", "validate", model, summary, "-o", outdir)
        engine = json.loads(open(os.path.join(outdir, f"{self.prot.getPrefix()}_validation.json")).read())
        report = self.prot.getReport()
        for key in ("metrics", "counts", "chains", "rmsd", "warnings"):
            self.assertEqual(report[key], engine[key], key)
        self.assertEqual(report["counts"]["residues"], SCENE_RESIDUES)
        self.assertTrue(any("RANDOM TEST WEIGHTS" in w for w in report["warnings"]), report["warnings"])
        self.assertEqual(self.prot.summary(), summary_lines(engine))
        overall = engine["metrics"]["overall"]
        recall = "n/a" if overall["recall"] is None else f"{100 * overall['recall']:.1f}%"
        self.assertIn(f"Recall {recall}", "\n".join(self.prot.summary()))

    def test_a_finished_annotation_gives_the_same_scores(self):
        """Same map, same weights: validating against the annotate run equals annotating here."""
        labels = getattr(self.annotation, OUTPUT_NAMES["labels"]).getFileName()
        self.assertEqual(self.fromRun.getAnnotationSummaryPath(), labels.replace("_labels.mrc", "_summary.json"))
        report = self.fromRun.getReport()
        self.assertEqual(report["annotation"], os.path.abspath(self.annotation.getSummaryPath()))
        self.assertEqual(report["metrics"], self.prot.getReport()["metrics"])
        self.assertEqual(report["map"]["path"], os.path.abspath(self.annotation.getInputMapPath()))

    def test_methods_and_citations(self):
        self.assertIn("[Mostosi2020]", "\n".join(self.prot.methods()))
        self.assertEqual(self.prot._citations(), ["Mostosi2020"])

    # --- failing runs and the form -----------------------------------------------------------------------------
    def test_a_model_without_residues_to_validate_fails_and_registers_nothing(self):
        path = self.getOutputPath("waters.pdb")
        with open(path, "w") as handle:
            handle.write(WATER_PDB)
        prot = self.newProtocol(ProtHaruspexValidate, inputStructure=self.importModel(path),
                                annotationSource=FROM_ANNOTATION, inputAnnotation=self.annotation)
        self.proj.launchProtocol(prot, wait=True)
        self.assertTrue(prot.isFailed(), prot.getStatus())
        self.assertIn("haruspex: error:", prot.getErrorMessage())
        self.assertIn("no amino-acid or nucleotide residue", prot.getErrorMessage())
        self.assertEqual(list(prot.iterOutputAttributes()), [])

    def test_validate_asks_for_a_finished_annotation_of_one_map(self):
        prot = self.newProtocol(ProtHaruspexValidate, inputStructure=self.inputStructure,
                                annotationSource=FROM_ANNOTATION)
        self.assertTrue(any("Choose a finished 'annotate map' run" in e for e in prot.validate()), prot.validate())
        unfinished = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.inputVolume, useGpu=False)
        self.proj.saveProtocol(unfinished)
        prot = self.newProtocol(ProtHaruspexValidate, inputStructure=self.inputStructure,
                                annotationSource=FROM_ANNOTATION, inputAnnotation=unfinished)
        self.assertTrue(any("has no label map" in e for e in prot.validate()), prot.validate())
        prot = self.newProtocol(ProtHaruspexValidate, inputStructure=self.inputStructure,
                                annotationSource=FROM_ANNOTATION, inputAnnotation=self.annotation)
        self.assertEqual(prot.validate(), [])

    def test_validate_asks_for_the_map_to_annotate(self):
        prot = self.newProtocol(ProtHaruspexValidate, inputStructure=self.inputStructure, annotationSource=FROM_MAP,
                                useGpu=False)
        self.assertTrue(any("Choose the map to annotate" in e for e in prot.validate()), prot.validate())

    def test_menu_lists_the_protocol(self):
        import pyworkflow as pw
        from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig

        config = ProtocolTreeConfig.load(pw.Config.getDomain(), self.getOutputPath("no-user-menu.conf"))
        self.assertIn(("Validation", "ProtHaruspexValidate"), _protocol_paths(config["Model building"]))

