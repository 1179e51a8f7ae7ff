"""The built-in nucleic-acid example: an ideal RNA duplex built in code, its simulated map, its sequences and the
model itself, so that map -> detect-na -> build-na -> evaluate-na can be shown on any machine (``scripts/demo.sh``).
"""
from __future__ import annotations

import os
from pathlib import Path

import gemmi

from haruspex_engine.maps import write_map
from haruspex_engine.nucleic.building.atoms import write_model
from haruspex_engine.nucleic.building.ideal import ideal_na_duplex
from haruspex_engine.testing.oracle_maps import Corruption, oracle_maps

#: Strand 1 of the example duplex (strand 2 is its reverse complement): 16 base pairs, 32 nucleotides.
EXAMPLE_DUPLEX = "GGCAUCAGUCCAAGUC"
#: Å: the example map's resolution; s.d. of its correlated noise relative to the map's near the atoms.
EXAMPLE_RESOLUTION_A, EXAMPLE_NOISE = 3.5, 0.2


def nucleic_example() -> gemmi.Structure:
    """The example structure: an ideal A-form RNA duplex of EXAMPLE_DUPLEX (chains A and B)."""
    structure = gemmi.Structure()
    structure.add_model(gemmi.Model(1))
    for chain in ideal_na_duplex(EXAMPLE_DUPLEX, ("A", "B")):
        structure[0].add_chain(chain)
    structure.setup_entities()
    return structure


def write_nucleic_example(map_path: str | os.PathLike) -> dict[str, Path]:
    """Write the example map (MRC, 1 Å voxels, EXAMPLE_RESOLUTION_A with correlated noise) at ``map_path``, its
    FASTA beside it (``.fasta``) and the model it was simulated from (``_reference.cif``); returns the paths by name
    (map, fasta, reference)."""
    map_path = Path(map_path)
    structure = nucleic_example()
    maps = oracle_maps(structure, Corruption(density_noise_sigma=EXAMPLE_NOISE, seed=0),
                       resolution_A=EXAMPLE_RESOLUTION_A, padding_A=8.0)
    stem = map_path.name.removesuffix(".mrc")
    paths = {"map": map_path, "fasta": map_path.with_name(f"{stem}.fasta"),
             "reference": map_path.with_name(f"{stem}_reference.cif")}
    map_path.parent.mkdir(parents=True, exist_ok=True)
    write_map(paths["map"], maps.density, (1.0, 1.0, 1.0), maps.origin)
    records = [f">EXAMPLE_{k}|Chain {chain.name}|ideal RNA duplex, strand {k}\n"
               f"{gemmi.one_letter_code([r.name for r in chain])}\n" for k, chain in enumerate(structure[0], 1)]
    paths["fasta"].write_text("".join(records))
    write_model(structure, paths["reference"])
    return paths
