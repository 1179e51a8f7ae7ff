"""Viewer of ProtHaruspexBuildNucleicAcids: the build in ChimeraX (model coloured by per-residue confidence or by
base type, over the input map and the detection maps), and plots of the per-residue confidence along each chain and
of the coverage of the chain sequences.

The file-producing functions take the protocol and return the file they wrote, so they run headless (tests,
scripts); the ProtocolViewer only wires them to the GUI.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import mrcfile
import pyworkflow.protocol.params as params
from pwem.viewers import ChimeraView, EmPlotter
from pyworkflow.viewer import DESKTOP_TKINTER, ProtocolViewer

from haruspex_engine.nucleic.classes import STAGE2_CLASSES

from ..constants import NA_DETECTION_OUTPUT, NA_MODEL_OUTPUT
from ..protocols import ProtHaruspexBuildNucleicAcids
from ..protocols.worker_protocol import read_json
from ..wizards import proposed_contour
from .chimerax import MODEL_COLOURINGS, SHOWN_DETECTION_MAPS, write_nucleic_chimerax_script
from .plots import (
    confidence_figure_size,
    coverage_figure_size,
    draw_confidence_profiles,
    draw_sequence_coverage,
    plot_confidence_profiles,
    plot_sequence_coverage,
    read_chain_sequences,
    read_confidence_table,
)

COLOURING_CHOICES = tuple(MODEL_COLOURINGS)  # the viewer's enum order: confidence, bases


@dataclass(frozen=True)
class BuildFiles:
    """Absolute paths of what a finished build run shows: the converted input map, the model (None when nothing was
    built), the detection maps (class name -> MRC, in CryoREAD's stage-2 order), build-na's confidence table (None
    without a model), the chain sequences given (FASTA, None without), and the folder the viewer writes into."""

    input_map: str
    model: str | None
    detection_maps: dict[str, str]
    confidence_table: str | None
    fasta: str | None
    extra: str


def build_files(protocol: ProtHaruspexBuildNucleicAcids) -> BuildFiles:
    """The files of *protocol*'s outputs and of its build report; ValueError when it has not finished."""
    detection = getattr(protocol, NA_DETECTION_OUTPUT, None)
    report_path = _abs_project_path(protocol, protocol.getBuildReportPath())
    if detection is None or not os.path.exists(report_path):
        raise ValueError(f"{protocol.getRunName()}: no detection maps or build report (the protocol has not finished)")
    found = {volume.getObjLabel(): _abs_project_path(protocol, volume.getFileName()) for volume in detection}
    model = getattr(protocol, NA_MODEL_OUTPUT, None)
    extra = _abs_project_path(protocol, protocol._getExtraPath())
    # The report names the worker's files by absolute path at run time; the project may have moved since.
    confidence = read_json(report_path).get("outputs", {}).get("confidence")
    return BuildFiles(
        input_map=_abs_project_path(protocol, protocol.getInputMapPath()),
        model=None if model is None else _abs_project_path(protocol, model.getFileName()),
        detection_maps={name: found[name] for name in STAGE2_CLASSES if name in found},
        confidence_table=None if confidence is None else os.path.join(extra, os.path.basename(confidence)),
        fasta=_abs_project_path(protocol, protocol.getFastaPath()) if protocol.hasSequences() else None,
        extra=extra)


def input_map_level(contour: float | None, input_map: str | os.PathLike) -> float:
    """Surface level (map units) showing the input map: the author-like level the detection's contour stands for.
    CryoREAD's contour is half the author's recommended level, so a positive *contour* gives twice it; otherwise
    the level the contour wizard proposes half of (solvent median + 3 robust standard deviations, at least 0)."""
    if contour is not None and contour > 0:
        return 2.0 * contour
    with mrcfile.open(input_map, permissive=True) as mrc:
        return 2.0 * proposed_contour(mrc.data)


def chimerax_build_script_for_protocol(protocol: ProtHaruspexBuildNucleicAcids,
                                       colour_by: str = "confidence") -> Path:
    """Write ``<prefix>_build_chimerax.cxc`` in the protocol's extra folder: input map, model coloured *colour_by*
    (a key of ``MODEL_COLOURINGS``) and the detection maps."""
    files = build_files(protocol)
    script = os.path.join(files.extra, f"{protocol.getPrefix()}_build_chimerax.cxc")
    level = input_map_level(protocol.contourLevel.get(), files.input_map)
    return write_nucleic_chimerax_script(files.input_map, level, files.model, files.detection_maps, script,
                                         colour_by)


def confidence_plot_for_protocol(protocol: ProtHaruspexBuildNucleicAcids) -> Path:
    """Write ``<prefix>_confidence.png`` in the protocol's extra folder; ValueError when no model was built."""
    files = build_files(protocol)
    png = os.path.join(files.extra, f"{protocol.getPrefix()}_confidence.png")
    return plot_confidence_profiles(_confidence_table(protocol, files), png, _title(protocol))


def coverage_plot_for_protocol(protocol: ProtHaruspexBuildNucleicAcids) -> Path:
    """Write ``<prefix>_coverage.png`` in the protocol's extra folder; ValueError without a sequence or a model."""
    files = build_files(protocol)
    png = os.path.join(files.extra, f"{protocol.getPrefix()}_coverage.png")
    return plot_sequence_coverage(_fasta(protocol, files), _confidence_table(protocol, files), png, _title(protocol))


class HaruspexBuildNucleicAcidsViewer(ProtocolViewer):
    """Shows a nucleic-acid build in ChimeraX (model by confidence or base type, detection maps) and as plots of
    the per-residue confidence and the sequence coverage."""
    _label = "viewer Haruspex nucleic-acid build"
    _targets = [ProtHaruspexBuildNucleicAcids]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("modelColouring", params.EnumParam, choices=list(COLOURING_CHOICES), default=0,
                      display=params.EnumParam.DISPLAY_HLIST, label="Colour the model by",
                      help="confidence: per-residue confidence from red (0) through yellow (0.5) to blue (1). "
                           "bases: base type, as ChimeraX colours nucleotides (A red, C yellow, G green, U cyan, "
                           "T blue). In ChimeraX, the commands 'confidence' and 'bases' switch between them.")
        form.addParam("displayChimeraX", params.LabelParam, label="Model and maps in ChimeraX",
                      help="Opens the input map (transparent grey surface), the model, and the eight detection "
                           f"maps at probability 0.5 ({' and '.join(SHOWN_DETECTION_MAPS)} shown, the others "
                           "hidden: show them from ChimeraX's model panel).")
        form.addParam("displayConfidence", params.LabelParam, label="Per-residue confidence along each chain",
                      help="Each residue's confidence (0..1, the model's B-factor) at its residue number, one panel "
                           "per chain, points in the base's colour.")
        form.addParam("displayCoverage", params.LabelParam, label="Sequence coverage",
                      help="For each chain sequence given, which residues the model covers, with the sequence's "
                           "base or another one. Only when chain sequences were given.")

    def _getVisualizeDict(self):
        return {"displayChimeraX": self._showChimeraX, "displayConfidence": self._showConfidence,
                "displayCoverage": self._showCoverage}

    def _showChimeraX(self, paramName=None):
        colour_by = COLOURING_CHOICES[self.modelColouring.get()]
        return self._shown(lambda: [ChimeraView(str(chimerax_build_script_for_protocol(self.protocol, colour_by)))])

    def _showConfidence(self, paramName=None):
        def plot():
            chains = read_confidence_table(_confidence_table(self.protocol, build_files(self.protocol)))
            plotter = EmPlotter(windowTitle="Haruspex per-residue confidence",
                                figsize=confidence_figure_size(len(chains)))
            draw_confidence_profiles(plotter.getFigure(), chains, _title(self.protocol))
            return [plotter]
        return self._shown(plot)

    def _showCoverage(self, paramName=None):
        def plot():
            files = build_files(self.protocol)
            chains = read_confidence_table(_confidence_table(self.protocol, files))
            sequences = read_chain_sequences(_fasta(self.protocol, files))
            plotter = EmPlotter(windowTitle="Haruspex sequence coverage", figsize=coverage_figure_size(len(sequences)))
            draw_sequence_coverage(plotter.getFigure(), sequences, chains, _title(self.protocol))
            return [plotter]
        return self._shown(plot)

    def _shown(self, make_views):
        """The views *make_views* returns, or an error window saying why there is nothing to show."""
        try:
            return make_views()
        except (OSError, ValueError) as exc:  # the engine's SequenceError is a ValueError
            return [self.errorMessage(str(exc), "Nothing to show")]


def _confidence_table(protocol: ProtHaruspexBuildNucleicAcids, files: BuildFiles) -> str:
    if files.model is None or files.confidence_table is None:
        raise ValueError(f"{protocol.getRunName()}: no model was built (no nucleic acid found), so there is no "
                         "per-residue confidence")
    return files.confidence_table


def _fasta(protocol: ProtHaruspexBuildNucleicAcids, files: BuildFiles) -> str:
    if files.fasta is None:
        raise ValueError(f"{protocol.getRunName()}: no chain sequences were given, so there is no coverage to show")
    return files.fasta


def _abs_project_path(protocol: ProtHaruspexBuildNucleicAcids, path: str) -> str:
    return os.path.join(protocol.getProject().getPath(), path)


def _title(protocol: ProtHaruspexBuildNucleicAcids) -> str:
    return f"Nucleic-acid model of {protocol.getPrefix()}"
