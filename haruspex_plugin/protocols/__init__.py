"""Haruspex protocols (one per module)."""
from .protocol_annotate import ProtHaruspexAnnotate

__all__ = ["ProtHaruspexAnnotate"]
