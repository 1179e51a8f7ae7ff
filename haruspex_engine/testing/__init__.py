"""Test fixtures the engine can generate itself (random weights in the published layout, reference runners).

Nothing here is used by the production code paths.
"""
