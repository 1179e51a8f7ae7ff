"""Oracle maps in place of a real ``detect-na`` output, to test model building (and the Scipion protocol that runs
it) on maps that mean something, where random test weights can only give noise.

    python -m haruspex_engine.testing.oracle_detection example MODEL.cif MAP.mrc [--sequence S]
        an ideal A-form RNA strand of S (``rna_models.ideal_rna``) and its simulated density map (1 Å voxels,
        origin on whole Å, the molecule plus --padding Å on every side)
    python -m haruspex_engine.testing.oracle_detection replace SUMMARY.json MODEL
        overwrite the eight class maps that detect-na's SUMMARY lists with oracle maps of MODEL
        (``oracle_maps.oracle_maps``, clean corruption) on the detection's own working grid

The working map and the summary are left as they are, so ``build-na SUMMARY`` then builds from the oracle maps.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import gemmi
import numpy as np
from scipy import ndimage

from haruspex_engine.maps import write_like, write_map
from haruspex_engine.nucleic.building.atoms import write_model
from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_engine.nucleic.detection_outputs import read_detection_summary
from haruspex_engine.testing.oracle_maps import CLEAN, Corruption, oracle_maps
from haruspex_engine.testing.rna_models import ideal_rna

#: A 12-nt strand: with 8 Å of padding its map is 38 × 39 × 54 voxels of 1 Å (x, y, z), small enough for CPU tests.
EXAMPLE_SEQUENCE = "GGCAUCAGUCCA"
EXAMPLE_PADDING_A = 8.0


def write_example(model_path: str | Path, map_path: str | Path, sequence: str = EXAMPLE_SEQUENCE,
                  padding_A: float = EXAMPLE_PADDING_A) -> gemmi.Structure:
    """Write an ideal RNA strand of ``sequence`` (mmCIF) and its simulated density (MRC, 1 Å voxels, header origin
    on whole Å, ``padding_A`` Å around the atoms); return the structure."""
    structure = ideal_rna(sequence)
    maps = oracle_maps(structure, Corruption(), padding_A=padding_A)
    write_map(map_path, maps.density, (1.0, 1.0, 1.0), maps.origin)
    write_model(structure, Path(model_path))
    return structure


def replace_detection_maps(summary_path: str | Path, structure: gemmi.Structure,
                           corruption: Corruption = CLEAN) -> list[Path]:
    """Overwrite the class maps listed in detect-na's summary with oracle maps of ``structure``; return their paths.

    The oracle maps are made on their own 1 Å grid around the model and moved onto the detection's working grid
    (1 Å voxels, origin from the working map's header) by linear interpolation; voxels outside the oracle grid get 0.
    """
    _, outputs, working = read_detection_summary(summary_path)
    oracle = oracle_maps(structure, corruption)
    offset_zyx = (np.asarray(working.first_voxel_position) - np.asarray(oracle.origin))[::-1]
    written = []
    for name, values in zip(STAGE2_CLASSES, oracle.stage2):
        moved = ndimage.affine_transform(values, np.ones(3), offset=offset_zyx, output_shape=working.data.shape,
                                         order=1, mode="constant", cval=0.0)
        write_like(outputs[name], moved.astype(np.float32), working)
        written.append(Path(outputs[name]))
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    example = commands.add_parser("example", help="write an ideal RNA model and its simulated map")
    example.add_argument("model", type=Path)
    example.add_argument("map", type=Path)
    example.add_argument("--sequence", default=EXAMPLE_SEQUENCE)
    example.add_argument("--padding", type=float, default=EXAMPLE_PADDING_A, help="Å around the atoms")
    replace = commands.add_parser("replace", help="replace detect-na's class maps with oracle maps of a model")
    replace.add_argument("summary", type=Path)
    replace.add_argument("model", type=Path)
    args = parser.parse_args(argv)
    if args.command == "example":
        write_example(args.model, args.map, args.sequence, args.padding)
    else:
        print("\n".join(map(str, replace_detection_maps(args.summary, gemmi.read_structure(str(args.model))))))


if __name__ == "__main__":
    main()
