"""Viewers of the Haruspex protocols (ChimeraX scripts, matplotlib plots)."""
from .viewer_annotate import HaruspexAnnotateViewer, chimerax_script_for_protocol, summary_plot_for_protocol

__all__ = ["HaruspexAnnotateViewer", "chimerax_script_for_protocol", "summary_plot_for_protocol"]
