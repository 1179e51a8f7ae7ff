"""Viewer of ProtHaruspexAnnotate: the map coloured by class in ChimeraX, and a summary plot.

The file-producing functions take the protocol and return the file they wrote, so they run headless (tests,
scripts); the ProtocolViewer only wires them to the GUI.
"""
import os
from pathlib import Path

import pyworkflow.protocol.params as params
from pwem.viewers import ChimeraView, EmPlotter
from pyworkflow.viewer import DESKTOP_TKINTER, ProtocolViewer

from ..constants import BATCH_OUTPUT_NAMES, DISPLAY_ORDER, OUTPUT_NAMES
from ..protocols import ProtHaruspexAnnotate
from .chimerax import write_chimerax_script
from .plots import draw_annotation_summary, plot_annotation_summary, read_label_map


def chimerax_script_for_protocol(protocol: ProtHaruspexAnnotate) -> Path:
    """Write ``<prefix>_chimerax.cxc`` in the protocol's extra folder: its input map coloured by class and the 4
    probability maps."""
    class_maps = {name: _output_file(protocol, OUTPUT_NAMES[name]) for name in DISPLAY_ORDER}
    script = _abs_extra_path(protocol, f"{protocol.getPrefix()}_chimerax.cxc")
    return write_chimerax_script(_abs_project_path(protocol, protocol.getInputMapPath()), class_maps, script,
                                 labels_map=_output_file(protocol, OUTPUT_NAMES["labels"]))


def summary_plot_for_protocol(protocol: ProtHaruspexAnnotate) -> Path:
    """Write ``<prefix>_summary.png`` in the protocol's extra folder from its label map."""
    png = _abs_extra_path(protocol, f"{protocol.getPrefix()}_summary.png")
    return plot_annotation_summary(_output_file(protocol, OUTPUT_NAMES["labels"]), png, _title(protocol))


class HaruspexAnnotateViewer(ProtocolViewer):
    """Shows a Haruspex annotation in ChimeraX (paper colours) and as class-fraction plots."""
    _label = "viewer Haruspex annotation"
    _targets = [ProtHaruspexAnnotate]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("displayChimeraX", params.LabelParam, label="Map coloured by class in ChimeraX",
                      help="Opens the input map (grey mesh) with the helix (red), sheet (blue), nucleic-acid "
                           "(orange) and unassigned (grey, hidden) probability maps at probability 0.5.")
        form.addParam("displaySummaryPlot", params.LabelParam, label="Class fractions and profile along z",
                      help="Share of map voxels in each class, overall and slice by slice along z.")

    def _getVisualizeDict(self):
        return {"displayChimeraX": self._showChimeraX, "displaySummaryPlot": self._showSummaryPlot}

    def _showChimeraX(self, paramName=None):
        problem = self._whyNothingToShow()
        if problem:
            return [self.errorMessage(problem, "No annotation")]
        return [ChimeraView(str(chimerax_script_for_protocol(self.protocol)))]

    def _showSummaryPlot(self, paramName=None):
        problem = self._whyNothingToShow()
        if problem:
            return [self.errorMessage(problem, "No annotation")]
        plotter = EmPlotter(x=1, y=2, windowTitle="Haruspex annotation", figsize=(11, 4.5))
        labels, z_angstrom = read_label_map(_output_file(self.protocol, OUTPUT_NAMES["labels"]))
        draw_annotation_summary(plotter.getFigure(), labels, z_angstrom, _title(self.protocol))
        return [plotter]


    def _whyNothingToShow(self) -> str:
        """Why this viewer cannot show the run ('' when it can): unfinished, or a set of maps annotated."""
        if self.protocol.hasAttribute(OUTPUT_NAMES["labels"]):
            return ""
        if self.protocol.hasAttribute(BATCH_OUTPUT_NAMES["labels"]):
            return ("This run annotated a set of maps: open the maps of each class from its output sets "
                    f"({', '.join(BATCH_OUTPUT_NAMES.values())}); this viewer shows runs on a single map.")
        return "The protocol has no outputs yet."


def _output_file(protocol: ProtHaruspexAnnotate, name: str) -> str:
    output = getattr(protocol, name, None)
    if output is None:
        raise ValueError(f"{protocol.getRunName()}: no output {name} (the protocol has not finished)")
    return _abs_project_path(protocol, output.getFileName())


def _abs_project_path(protocol: ProtHaruspexAnnotate, path: str) -> str:
    return os.path.join(protocol.getProject().getPath(), path)


def _abs_extra_path(protocol: ProtHaruspexAnnotate, name: str) -> str:
    return _abs_project_path(protocol, protocol._getExtraPath(name))


def _title(protocol: ProtHaruspexAnnotate) -> str:
    return f"Haruspex annotation of {protocol.getPrefix()}"
