"""Scipion's GUI on our protocols and viewers, on a virtual X display (Xvfb): every protocol form and every viewer
form opens as Scipion opens it (pyworkflow's FormWindow) without error, with a widget for each of its parameters,
and a screenshot of each is taken.

The screenshots go to a temporary folder; with HARUSPEX_SCREENSHOTS=DIR they are written to DIR, which is how the
README's docs/screenshots/ are made:
    HARUSPEX_SCREENSHOTS=docs/screenshots .venv/bin/python -m pytest haruspex_plugin/tests/test_gui_forms.py -W ignore
The forms show a project with real inputs: the built-in example map and its model, FASTA sequences, a finished
validation run (annotation with random weights in the published layout).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from unittest import mock

import pyworkflow as pw
import pyworkflow.gui.project  # noqa: F401  (Scipion's import order: importing pyworkflow.gui.form first is circular)
from pwem.protocols import ProtImportPdb, ProtImportVolumes
from pyworkflow.gui import Window
from pyworkflow.gui.form import FormWindow
from pyworkflow.gui.gui import image_cache
from pyworkflow.tests import BaseTest, setupTestProject
from pyworkflow.utils.properties import Message
from pyworkflow.viewer import DESKTOP_TKINTER

from haruspex_plugin.protocols import (
    ProtHaruspexAnnotate,
    ProtHaruspexBuildNucleicAcids,
    ProtHaruspexImportMapsStreaming,
    ProtHaruspexImportSequences,
    ProtHaruspexRefineNucleicAcids,
    ProtHaruspexTrain,
    ProtHaruspexValidate,
)
from haruspex_plugin.protocols.protocol_validate import FROM_MAP
from haruspex_plugin.tests.helpers import check_png, class_environment, run_worker, use_test_checkpoint
from haruspex_plugin.tests.test_protocol_validate import WRITE_SCENE
from haruspex_plugin.tests.virtual_display import VirtualDisplay, grab_window, xvfb_problem
from haruspex_plugin.viewers import (
    HaruspexAnnotateViewer,
    HaruspexBuildNucleicAcidsViewer,
    HaruspexValidateAttributeViewer,
    HaruspexValidateViewer,
)

SCREENSHOTS_ENV = "HARUSPEX_SCREENSHOTS"
# Parameters every protocol has that the form draws without a parameter widget: the run name (an entry of the run
# header) and the run mode (a header widget of protocol forms; viewer forms have no run header).
_COMMON_PARAMS = {"runName", "runMode"}
FASTA = ">hairpin_1|Chain A|RNA hairpin|synthetic construct (32630)\nGGACUUCGGUCCAAGUCGGACUUCGGUCC\n"


class TestGuiForms(BaseTest):
    """Each protocol form and viewer form of the plugin, opened in a headless project on Xvfb."""

    @classmethod
    def setUpClass(cls):
        problem = xvfb_problem()
        if problem:
            raise cls.skipException(problem)
        display = VirtualDisplay().__enter__()
        cls.addClassCleanup(display.__exit__, None, None, None)
        class_environment(cls, DISPLAY=display.name)
        cls.display = display.name
        cls.mainWindow = Window("Haruspex GUI test")  # the forms' master, as Scipion's project window is
        cls.addClassCleanup(_close_tk, cls.mainWindow)
        cls.screenshots = Path(os.environ.get(SCREENSHOTS_ENV) or cls._temporaryFolder()).resolve()
        setupTestProject(cls)
        use_test_checkpoint(cls)
        mapPath, modelPath, fastaPath = (cls.getOutputPath(name) for name in ("map.mrc", "model.cif", "rna.fasta"))
        run_worker("-m", "haruspex_engine", "example", mapPath)
        run_worker("-c", WRITE_SCENE, modelPath)
        Path(fastaPath).write_text(FASTA)
        cls.volume = cls.launched(ProtImportVolumes, filesPath=mapPath, samplingRate=1.1).outputVolume
        cls.model = cls.launched(ProtImportPdb, inputPdbData=ProtImportPdb.IMPORT_FROM_FILES, pdbFile=modelPath,
                                 inputVolume=cls.volume).outputPdb
        cls.fasta = os.path.abspath(fastaPath)
        cls.sequences = cls.launched(ProtHaruspexImportSequences, fastaFile=cls.fasta).outputSequences
        cls.validation = cls.launched(ProtHaruspexValidate, inputStructure=cls.model, annotationSource=FROM_MAP,
                                      inputVolume=cls.volume, useGpu=False)

    @classmethod
    def _temporaryFolder(cls) -> str:
        folder = tempfile.TemporaryDirectory(prefix="haruspex-screenshots-")
        cls.addClassCleanup(folder.cleanup)
        return folder.name

    @classmethod
    def launched(cls, protocolClass, **values):
        prot = cls.newProtocol(protocolClass, **values)
        cls.launchProtocol(prot)
        return prot

    # --- protocol forms -----------------------------------------------------------------------------------------
    def test_annotate_form(self):
        self.checkProtocolForm(self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.volume), "form_annotate")

    def test_build_nucleic_acids_form(self):
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.volume, resolution=3.5,
                                inputSequences=self.sequences)
        self.checkProtocolForm(prot, "form_build_nucleic_acids")

    def test_import_sequences_form(self):
        prot = self.newProtocol(ProtHaruspexImportSequences, fastaFile=self.fasta)
        self.checkProtocolForm(prot, "form_import_sequences")

    def test_import_maps_streaming_form(self):
        prot = self.newProtocol(ProtHaruspexImportMapsStreaming, filesPath=os.path.dirname(self.fasta),
                                filesPattern="map_###.mrc", samplingRate=1.0)
        self.checkProtocolForm(prot, "form_import_maps_streaming")

    def test_refine_form(self):
        prot = self.newProtocol(ProtHaruspexRefineNucleicAcids, inputStructure=self.model, resolution=3.5)
        self.checkProtocolForm(prot, "form_refine")

    def test_train_form(self):
        prot = self.newProtocol(ProtHaruspexTrain)
        prot.inputStructures.append(self.model)
        self.checkProtocolForm(prot, "form_train")

    def test_validate_form(self):
        prot = self.newProtocol(ProtHaruspexValidate, inputStructure=self.model, annotationSource=FROM_MAP,
                                inputVolume=self.volume)
        self.checkProtocolForm(prot, "form_validate")

    # --- viewer forms -------------------------------------------------------------------------------------------
    def test_annotate_viewer(self):
        prot = self.newProtocol(ProtHaruspexAnnotate, inputVolume=self.volume)
        self.checkViewerForm(HaruspexAnnotateViewer, prot, "viewer_annotate")

    def test_build_nucleic_acids_viewer(self):
        prot = self.newProtocol(ProtHaruspexBuildNucleicAcids, inputVolume=self.volume, resolution=3.5)
        self.checkViewerForm(HaruspexBuildNucleicAcidsViewer, prot, "viewer_build_nucleic_acids")

    def test_validate_viewer(self):
        self.checkViewerForm(HaruspexValidateViewer, self.validation, "viewer_validate")

    def test_validate_attribute_viewer(self):
        self.checkViewerForm(HaruspexValidateAttributeViewer, self.validation, "viewer_validate_attributes")

    # --- helpers ------------------------------------------------------------------------------------------------
    def checkProtocolForm(self, prot, name: str) -> None:
        """Open *prot*'s form as Scipion's project window does, check it and take its screenshot."""
        form = FormWindow(Message.TITLE_NAME_RUN + prot.getClassName(), prot, lambda *args: None, self.mainWindow)
        form.adjustSize()
        with mock.patch.object(FormWindow, "show", self._capture(name)):
            form.show(center=True)
        self.checkForm(form, name)

    def checkViewerForm(self, viewerClass, prot, name: str) -> None:
        """Open *viewerClass* on *prot* as Scipion's "Analyze results" does, once Scipion lists it among the viewers
        of *prot*; check its form and take its screenshot. Every visualization the viewer offers has its widget."""
        self.assertIn(viewerClass, pw.Config.getDomain().findViewers(prot, DESKTOP_TKINTER))
        viewer = viewerClass(project=self.proj, protocol=prot, parent=self.mainWindow)
        with mock.patch.object(FormWindow, "show", self._capture(name)):
            viewer.visualize(prot, windows=self.mainWindow)
        self.checkForm(viewer.formWindow, name)
        self.assertLessEqual(set(viewer._getVisualizeDict()), set(viewer.formWindow.widgetDict))

    def checkForm(self, form, name: str) -> None:
        """The form has a widget for every parameter of its protocol that is not hidden, and its screenshot is a
        PNG of at least 600 x 300 pixels that is not blank."""
        definition = form.protocol.getDefinition()
        shown = {paramName for paramName, param in definition.iterParams() if param.condition.get() != "False"}
        self.assertLessEqual(shown - _COMMON_PARAMS, set(form.widgetDict), name)
        check_png(self, self.screenshots / f"{name}.png", min_size=(600, 300))

    def _capture(self, name: str):
        """A FormWindow.show that saves a screenshot of the form and closes it instead of entering Tk's loop."""
        def show(form, center: bool = True, modal: bool = False) -> None:
            grab_window(form.root, self.display, self.screenshots / f"{name}.png")
            form.root.destroy()
        return show


def _close_tk(mainWindow: Window) -> None:
    """Destroy *mainWindow* and its Tk interpreter, and forget pyworkflow's images, which belonged to it."""
    tkRoot = mainWindow.root.master
    mainWindow.root.destroy()
    tkRoot.destroy()
    image_cache.clear()

