"""Conversions between Scipion objects and the worker's files: input maps written as the worker reads them, models
registered with their map attached, and per-residue Scipion attributes on worker models (pwem's
``_scipion_attributes`` mmCIF category, which pwem's ChimeraAttributeViewer reads to colour a model: specifier
``chain:number``, recipient ``residues``)."""
from __future__ import annotations

import os
from collections.abc import Mapping

from pwem.convert.atom_struct import AtomicStructHandler, addScipionAttribute
from pwem.convert.headers import Ccp4Header
from pwem.objects import AtomStruct, Volume

from .constants import NA_CONFIDENCE_ATTRIBUTE


def write_worker_map(volume: Volume, path: str, voxels: Volume | None = None) -> None:
    """Write the map of *volume* (or the voxels of *voxels*, e.g. one of its half maps) as a standard MRC file at
    *path* with *volume*'s Scipion sampling rate and origin in its header, which is how the worker reads maps."""
    Ccp4Header.fixFile(voxels or volume, path, volume.getOrigin(force=True).getShifts(),
                       sampling=volume.getSamplingRate(), originField=Ccp4Header.ORIGIN)


def model_with_volume(path: str, volume: Volume) -> AtomStruct:
    """An AtomStruct for the model file at *path* with a copy of *volume* attached (a copy: storing the model gives
    its volume a new id, which must not be the input's), so downstream protocols find the map, its sampling rate
    and its origin."""
    model = AtomStruct(filename=path)
    attached = Volume()
    attached.copy(volume, copyId=False)
    model.setVolume(attached)
    return model


def read_model_cif(model_path: str) -> dict:
    """The mmCIF model at *model_path* as pwem's low-level (Biopython) dictionary, ready to be written back.

    Biopython cannot write empty values: those become '?' (unknown).
    """
    cif = AtomicStructHandler().readLowLevel(model_path)
    for key, value in cif.items():
        if isinstance(value, list):
            cif[key] = [item if item != "" else "?" for item in value]
        elif value == "":
            cif[key] = "?"
    return cif


def residue_bfactors(cif: dict) -> dict[str, str]:
    """``chain:number`` -> the B-factor of the residue's first atom, for every residue of a low-level mmCIF."""
    values: dict[str, str] = {}
    for chain, number, bfactor in zip(cif["_atom_site.auth_asym_id"], cif["_atom_site.auth_seq_id"],
                                      cif["_atom_site.B_iso_or_equiv"]):
        values.setdefault(f"{chain}:{number}", bfactor)
    return values


def write_residue_attributes(cif: dict, attributes: Mapping[str, Mapping[str, object]], output_path: str) -> None:
    """Write the low-level mmCIF *cif* to *output_path* with per-residue Scipion attributes: attribute name ->
    {``chain:number``: value}. Written under a temporary name and renamed when complete."""
    for name, values in attributes.items():
        addScipionAttribute(cif, dict(values), name)
    partial = output_path + ".part.cif"
    AtomicStructHandler()._writeLowLevel(partial, cif)
    os.replace(partial, output_path)


def write_confidence_attribute(model_path: str, output_path: str) -> None:
    """Copy the mmCIF model at *model_path* to *output_path* with each residue's confidence (its B-factor, which
    build-na sets to the residue's confidence 0..1) as the per-residue Scipion attribute ``NA_CONFIDENCE_ATTRIBUTE``.
    """
    cif = read_model_cif(model_path)
    write_residue_attributes(cif, {NA_CONFIDENCE_ATTRIBUTE: residue_bfactors(cif)}, output_path)
