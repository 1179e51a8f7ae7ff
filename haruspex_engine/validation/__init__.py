"""Model validation against annotation maps: per-residue secondary structure of atomic models.

The names the ``validate`` command line needs live here, so that registering the subcommand imports nothing heavy.
"""

#: Probability-map classes, in the order columns are kept and ties are broken.
CLASS_ORDER = ("helix", "sheet", "nucleic", "unassigned")
#: Minimum mean backbone density (r.m.s.d. units) of a counted residue (the paper's rule).
BACKBONE_LEVEL = 1.0


class ValidationError(ValueError):
    """Inputs that cannot be validated; the message names the file and the problem."""
