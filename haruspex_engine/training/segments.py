"""Training segments (70³ voxels) cut from a labelled map, with the Haruspex paper's selection rules
("Network Training": "Each segment had to contain at least 100 atoms ≥ 1.0 r.m.s.d., a backbone mean density of
≥ 3 r.m.s.d., and at least 5 % of the total segment volume annotated").

Everything happens on the working grid of ``labels.working_map`` (where the labels were painted). Segment corners
form a regular grid: per axis 0, stride, 2·stride … with the last one moved back to end at the map edge
(``tiling.sliding_starts``). An axis shorter than the segment is padded after the map (density 0, labels masked).
Optional jitter moves each corner by a random whole number of voxels in [−jitter, jitter] per axis (seeded), kept
inside the padded map.

Selection, as chosen where the paper is terse (levels are in units of the whole map's r.m.s.d., ``LabelVolume.rmsd``;
density at an atom as in ``labels``; an atom is inside a segment when its nearest voxel is):
- at least 100 model atoms (any atom of the first model) inside the segment with density ≥ 1 r.m.s.d.;
- the mean density over the backbone atoms inside the segment ≥ 3 r.m.s.d. (a segment without one is rejected);
- at least 5 % of the segment's voxels labelled sheet, helix or nucleic acid (unassigned and masked voxels are not
  "annotated").
Densities are kept as they are on the working grid (no normalisation: the network is run on raw map values).
"""
from __future__ import annotations

import itertools
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

from haruspex_engine import tiling
from haruspex_engine.atomic_files import atomic_path
from haruspex_engine.maps import DensityMap, describe_grid, same_grid
from haruspex_engine.training import SEGMENT_SIZE, SEGMENT_STRIDE
from haruspex_engine.training.labels import (
    MASKED,
    UNASSIGNED_CHANNEL,
    LabelVolume,
    density_at,
    model_atoms,
    voxel_indices,
    working_map,
)

MIN_DENSE_ATOMS = 100
ATOM_LEVEL = 1.0  # r.m.s.d.
BACKBONE_LEVEL = 3.0  # r.m.s.d.
MIN_ANNOTATED_FRACTION = 0.05


@dataclass(frozen=True)
class TrainingSegment:
    """density: float32 (size, size, size), axes (z, y, x), working-grid density. labels: int8, same shape, network
    channel index (CHANNELS order) or −1 for masked. corner: (z, y, x) voxel index of density[0, 0, 0] on the
    working grid."""

    density: np.ndarray
    labels: np.ndarray
    corner: tuple[int, int, int]


def training_segments(
    density: DensityMap,
    labels: LabelVolume,
    structure: gemmi.Structure,
    *,
    size: int = SEGMENT_SIZE,
    stride: int = SEGMENT_STRIDE,
    jitter: int = 0,
    seed: int = 0,
) -> list[TrainingSegment]:
    """The segments of ``density`` that pass the selection rules (module docstring), in C order of their corners.

    density: the map ``labels`` was painted from (its input grid or the working grid). labels: from
    ``paint_labels``. structure: the model the labels were painted from. size, stride, jitter: voxels.
    """
    if size < 1 or stride < 1 or jitter < 0:
        raise ValueError(f"need size >= 1, stride >= 1 and jitter >= 0 voxels, got {size}, {stride} and {jitter}")
    grid = working_map(density)
    _check_same_grid(grid, labels, density.path)
    atoms = model_atoms(structure)
    level = density_at(grid, atoms.xyz) / labels.rmsd
    on_grid = np.isfinite(level)
    voxel = np.rint(voxel_indices(grid, atoms.xyz)).astype(np.int64)

    padding = [(0, max(size - n, 0)) for n in grid.data.shape]
    volume = np.pad(grid.data, padding)
    label_volume = np.pad(labels.labels, padding, constant_values=MASKED)
    last_corner = np.asarray(volume.shape) - size
    rng = np.random.default_rng(seed)
    kept = []
    for start in itertools.product(*(tiling.sliding_starts(n, size, stride) for n in grid.data.shape)):
        corner = np.asarray(start)
        if jitter:
            corner = np.clip(corner + rng.integers(-jitter, jitter + 1, size=3), 0, last_corner)
        inside = on_grid & np.all((voxel >= corner) & (voxel < corner + size), axis=1)
        window = tuple(slice(c, c + size) for c in corner)
        segment_labels = label_volume[window]
        if _passes(level[inside], atoms.backbone[inside], segment_labels):
            kept.append(TrainingSegment(density=volume[window].astype(np.float32),
                                        labels=segment_labels.copy(), corner=tuple(int(c) for c in corner)))
    return kept


def _passes(level: np.ndarray, backbone: np.ndarray, segment_labels: np.ndarray) -> bool:
    """The paper's three rules for one segment: atom levels (r.m.s.d.) and backbone flags of its atoms, its labels."""
    if np.count_nonzero(level >= ATOM_LEVEL) < MIN_DENSE_ATOMS or not backbone.any():
        return False
    if level[backbone].mean() < BACKBONE_LEVEL:
        return False
    annotated = np.count_nonzero((segment_labels != MASKED) & (segment_labels != UNASSIGNED_CHANNEL))
    return annotated >= MIN_ANNOTATED_FRACTION * segment_labels.size


def _check_same_grid(grid: DensityMap, labels: LabelVolume, path: str) -> None:
    painted = DensityMap(data=labels.labels, voxel_size=labels.voxel_size, origin=labels.origin)
    if not same_grid(grid, painted):
        raise ValueError(f"{path or 'density map'}: its working grid {describe_grid(grid)} is not the grid the "
                         f"labels were painted on ({describe_grid(painted)})")


def save_segments(segments: list[TrainingSegment], directory: str | os.PathLike, prefix: str = "segment") -> list[Path]:
    """Write each segment to ``directory/{prefix}_{n:05d}.npz`` (n from 0, numpy compressed) and return the paths.

    File layout: ``density`` float32 (size, size, size) (z, y, x); ``labels`` int8, same shape, channel index or −1;
    ``corner`` int64 (3,), (z, y, x) voxel index on the working grid. Each file is written under a temporary name
    and renamed when complete. Several maps can share a directory under different prefixes.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for number, segment in enumerate(segments):
        path = directory / f"{prefix}_{number:05d}.npz"
        with atomic_path(path) as partial, open(partial, "wb") as handle:
            np.savez_compressed(handle, density=segment.density.astype(np.float32),
                                labels=segment.labels.astype(np.int8), corner=np.asarray(segment.corner))
        paths.append(path)
    return paths


def load_segments(directory: str | os.PathLike) -> list[TrainingSegment]:
    """Read every ``*.npz`` segment file of ``directory`` (layout: :func:`save_segments`), sorted by file name.

    Raises ValueError naming the file when one is unreadable or does not hold a segment.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"{directory}: no such directory of training segments")
    segments = []
    for path in sorted(directory.glob("*.npz")):
        try:
            with np.load(path) as stored:
                density, labels, corner = stored["density"], stored["labels"], stored["corner"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: not a training segment file ({exc})") from None
        if density.ndim != 3 or len(set(density.shape)) != 1 or labels.shape != density.shape or corner.shape != (3,):
            raise ValueError(f"{path}: not a training segment (density {density.shape}, labels {labels.shape}, "
                             f"corner {corner.shape}; expected two equal cubes and 3 corner indices)")
        if density.dtype != np.float32 or labels.dtype != np.int8:
            raise ValueError(f"{path}: density must be float32 and labels int8, got {density.dtype} and {labels.dtype}")
        segments.append(TrainingSegment(density=density, labels=labels, corner=tuple(int(c) for c in corner)))
    return segments
