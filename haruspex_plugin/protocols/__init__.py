"""Haruspex protocols (one per module)."""
from .protocol_annotate import ProtHaruspexAnnotate
from .protocol_build_nucleic_acids import ProtHaruspexBuildNucleicAcids
from .protocol_import_maps_streaming import ProtHaruspexImportMapsStreaming
from .protocol_import_sequences import ProtHaruspexImportSequences
from .protocol_refine import ProtHaruspexRefineNucleicAcids
from .protocol_train import ProtHaruspexTrain
from .protocol_validate import ProtHaruspexValidate

__all__ = ["ProtHaruspexAnnotate", "ProtHaruspexBuildNucleicAcids", "ProtHaruspexImportMapsStreaming",
           "ProtHaruspexImportSequences", "ProtHaruspexRefineNucleicAcids", "ProtHaruspexTrain",
           "ProtHaruspexValidate"]
