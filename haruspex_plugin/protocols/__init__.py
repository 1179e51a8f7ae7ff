"""Haruspex protocols (one per module)."""
from .protocol_annotate import ProtHaruspexAnnotate
from .protocol_build_nucleic_acids import ProtHaruspexBuildNucleicAcids
from .protocol_import_sequences import ProtHaruspexImportSequences

__all__ = ["ProtHaruspexAnnotate", "ProtHaruspexBuildNucleicAcids", "ProtHaruspexImportSequences"]
