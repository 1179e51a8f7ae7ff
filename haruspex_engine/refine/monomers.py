"""The CCP4 monomer library: the restraint dictionaries (ideal bonds, angles, planes, chirality) refinement needs.

Search order:
1. ``$HARUSPEX_MONOMER_LIBRARY``: a directory laid out like the CCP4 library (``list/mon_lib_list.cif``,
   ``a/A.cif``, ``d/DA.cif``, …), e.g. ``$CLIBD_MON`` of a CCP4 install or a clone of the MonomerLibrary;
2. the copy shipped inside the ``coot-headless-api`` wheel (``coot_headless_api/share/coot/lib/data/monomers``,
   which holds A, C, G, U, DA, DC, DG, DT, the amino acids and common ligands and ions).
The package is located without importing it (its import loads Coot's shared libraries).
"""
from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

MONOMER_LIBRARY_ENV = "HARUSPEX_MONOMER_LIBRARY"
COOT_PACKAGE = "coot_headless_api"
COOT_MONOMERS = Path("share", "coot", "lib", "data", "monomers")
LINK_LIST = Path("list", "mon_lib_list.cif")
INSTALL_HINT = (f"install it into the worker environment with `pip install coot-headless-api` (its wheel ships the "
                f"CCP4 monomer library), or point ${MONOMER_LIBRARY_ENV} at a CCP4 monomer library directory "
                "(e.g. $CLIBD_MON of a CCP4 install)")


class MonomerLibraryError(RuntimeError):
    """No usable monomer library, or one without a dictionary the model needs; the message says what to do."""


def locate_monomer_library() -> Path:
    """The monomer library directory to use (see the module docstring); MonomerLibraryError when there is none."""
    given = os.environ.get(MONOMER_LIBRARY_ENV, "").strip()
    if given:
        return _checked(Path(given).expanduser(), f"${MONOMER_LIBRARY_ENV}")
    spec = importlib.util.find_spec(COOT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MonomerLibraryError(f"no CCP4 monomer library found: {INSTALL_HINT}")
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    return _checked(package_dir / COOT_MONOMERS, f"the {COOT_PACKAGE} package")


def dictionary_path(library: Path, residue_name: str) -> Path:
    """The dictionary file of ``residue_name``: ``<library>/<first letter, lower case>/<NAME>.cif``."""
    return library / residue_name[0].lower() / f"{residue_name}.cif"


def check_dictionaries(library: Path, residue_names: Iterable[str], model: str) -> None:
    """MonomerLibraryError naming ``model`` and the residues that have no dictionary in ``library``."""
    missing = sorted({name for name in residue_names if not dictionary_path(library, name).is_file()})
    if missing:
        raise MonomerLibraryError(f"{model}: no restraint dictionary for residue(s) {', '.join(missing)} in the "
                                  f"monomer library {library}; remove them from the model or point "
                                  f"${MONOMER_LIBRARY_ENV} at a library that has them")


def _checked(library: Path, source: str) -> Path:
    if not library.is_dir():
        raise MonomerLibraryError(f"{library} (from {source}): no such directory; {INSTALL_HINT}")
    if not (library / LINK_LIST).is_file():
        raise MonomerLibraryError(f"{library} (from {source}): not a CCP4 monomer library (no {LINK_LIST}); "
                                  f"{INSTALL_HINT}")
    return library
