"""Refinement of a built model into its map with servalcat (``refine_spa_norefmac``, no REFMAC needed).

monomers: where the CCP4 monomer library (restraint dictionaries) is; links: which consecutive nucleotides are
bonded in refinement and which chain breaks stay open; refine: runs servalcat and reads what it reports;
refine_command: the ``haruspex refine-na`` subcommand. servalcat and the monomer library are optional
dependencies of the worker environment: nothing here imports them at module level.

The defaults the command line shows live here, so that registering the subcommand imports nothing heavy.
"""

DEFAULT_CYCLES = 10
DEFAULT_MASK_RADIUS_A = 3.0
