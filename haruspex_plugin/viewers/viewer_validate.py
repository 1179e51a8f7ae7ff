"""Viewers of ProtHaruspexValidate: a plot of the agreement between the model's secondary structure and the
annotation along each chain, and pwem's attribute viewer (the model coloured by a per-residue attribute in
ChimeraX, histograms), opened on the agreement.

The file-producing function takes the protocol and returns the file it wrote, so it runs headless (tests, scripts);
the ProtocolViewer only wires it to the GUI.
"""
from __future__ import annotations

import os
from pathlib import Path

import pyworkflow.protocol.params as params
from pwem.viewers import EmPlotter
from pwem.viewers.viewer_localres import ChimeraAttributeViewer
from pyworkflow.viewer import DESKTOP_TKINTER, ProtocolViewer

from ..protocols import ProtHaruspexValidate
from ..protocols.worker_protocol import read_json
from .plots import agreement_figure_size, draw_agreement_profiles, plot_agreement_profiles, read_validation_table


def validation_table(protocol: ProtHaruspexValidate) -> str:
    """Absolute path of the finished *protocol*'s per-residue table; ValueError when it has not finished."""
    report_path = _abs_project_path(protocol, protocol.getReportPath())
    if not os.path.exists(report_path):
        raise ValueError(f"{protocol.getRunName()}: no validation report (the protocol has not finished)")
    # The report names the worker's files by absolute path at run time; the project may have moved since.
    table = read_json(report_path).get("outputs", {}).get("table")
    if not table:
        raise ValueError(f"{report_path}: lists no per-residue table")
    return os.path.join(_abs_project_path(protocol, protocol._getExtraPath()), os.path.basename(table))


def agreement_plot_for_protocol(protocol: ProtHaruspexValidate) -> Path:
    """Write ``<prefix>_agreement.png`` in the protocol's extra folder from its per-residue table."""
    png = _abs_project_path(protocol, protocol._getExtraPath(f"{protocol.getPrefix()}_agreement.png"))
    return plot_agreement_profiles(validation_table(protocol), png, _title(protocol))


class HaruspexValidateViewer(ProtocolViewer):
    """Shows, along each chain, the model's class and the annotation's predicted class of every residue."""
    _label = "viewer Haruspex validation"
    _targets = [ProtHaruspexValidate]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        form.addParam("displayAgreement", params.LabelParam, label="Agreement along each chain",
                      help="One panel per chain: the model's class (upper band) and the predicted class (lower band) "
                           "of each residue in the paper's colours (helix red, sheet blue, nucleic acid orange, "
                           "unassigned grey), residues below the backbone-density level faded, and a mark above "
                           "each counted residue where the two disagree. To colour the model itself by agreement or "
                           "another attribute, open the 'Atomic structure attributes viewer' of this run.")

    def _getVisualizeDict(self):
        return {"displayAgreement": self._showAgreement}

    def _showAgreement(self, paramName=None):
        try:
            chains = read_validation_table(validation_table(self.protocol))
            plotter = EmPlotter(windowTitle="Haruspex validation", figsize=agreement_figure_size(len(chains)))
            draw_agreement_profiles(plotter.getFigure(), chains, _title(self.protocol))
            return [plotter]
        except (OSError, ValueError) as exc:
            return [self.errorMessage(str(exc), "Nothing to show")]


class HaruspexValidateAttributeViewer(ChimeraAttributeViewer):
    """pwem's attribute viewer on the validated model: ChimeraX colouring, histogram and sequence plot of a
    per-residue attribute, opened on the agreement (the protocol's ``_ATTRNAME``)."""
    _label = "Atomic structure attributes viewer"
    _targets = [ProtHaruspexValidate]


def _abs_project_path(protocol: ProtHaruspexValidate, path: str) -> str:
    return os.path.join(protocol.getProject().getPath(), path)


def _title(protocol: ProtHaruspexValidate) -> str:
    return f"Model {protocol.getPrefix()} against its Haruspex annotation"
