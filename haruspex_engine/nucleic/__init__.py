"""CryoREAD-style nucleic-acid detection and model building."""
