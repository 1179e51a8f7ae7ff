"""Viewers of the Haruspex protocols (ChimeraX scripts, matplotlib plots)."""
from .viewer_annotate import HaruspexAnnotateViewer, chimerax_script_for_protocol, summary_plot_for_protocol
from .viewer_nucleic import (
    HaruspexBuildNucleicAcidsViewer,
    chimerax_build_script_for_protocol,
    confidence_plot_for_protocol,
    coverage_plot_for_protocol,
)
from .viewer_validate import HaruspexValidateAttributeViewer, HaruspexValidateViewer, agreement_plot_for_protocol

__all__ = ["HaruspexAnnotateViewer", "chimerax_script_for_protocol", "summary_plot_for_protocol",
           "HaruspexBuildNucleicAcidsViewer", "chimerax_build_script_for_protocol", "confidence_plot_for_protocol",
           "coverage_plot_for_protocol", "HaruspexValidateViewer", "HaruspexValidateAttributeViewer",
           "agreement_plot_for_protocol"]
