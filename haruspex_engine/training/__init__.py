"""Training data for the Haruspex network: labels painted from a deposited model and 70³ training segments.

The segment geometry lives here, so that registering the subcommands imports nothing heavy.
"""

SEGMENT_SIZE = 70  # voxels per edge
SEGMENT_STRIDE = 35  # voxels between neighbouring corners
