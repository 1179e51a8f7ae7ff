"""haruspex_engine: pure-compute worker for the scipion-em-haruspex plugin (never imports pyworkflow)."""

__version__ = "0.1.0"
