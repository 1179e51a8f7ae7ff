"""Steps of a traced path that jump across a base pair instead of following a strand.

At the end of a double helix the sugars of two paired residues are 10–11 Å apart, close enough for the routing to
link them, so a path can run down one strand and come back up the other (measured on oracle maps of a 78-nt RNA:
about two such hops per model). The whole path is then read in one chain direction and half of it is wrong, and in
sequence assignment its long, wrong reading claims residues that belong to other paths. This is an addition to
CryoREAD's method, which keeps such paths whole.

A step k → k+1 of L Å is a hop when all of these hold:

* no phosphate bridges it: the two sugars do not share a phosphate (next P of k ≠ prev P of k+1, or none);
  consecutive residues of a strand are joined by one;
* it is long: L ≥ MIN_HOP_A (consecutive sugars of a strand are 5.5–7 Å apart, hopping pairs 8.5–11 Å);
* the two bases face each other across it, as paired bases do: cos(base_k − s_k, s_k+1 − s_k) +
  cos(base_k+1 − s_k+1, s_k − s_k+1) ≥ MIN_FACING (stacked bases of a strand point across the strand, giving
  cosines near 0; measured: hops 0.7–1.5, strand steps −0.2–0.7).
"""
from __future__ import annotations

import numpy as np

from haruspex_engine.nucleic.building.attach import PathAttachment

#: Å: shortest step that can be a hop across a base pair.
MIN_HOP_A = 8.0
#: Smallest sum of the two base-direction cosines for bases facing each other.
MIN_FACING = 0.5


def base_pair_hops(sugar_xyz: np.ndarray, attachment: PathAttachment) -> np.ndarray:
    """Indices k (int, increasing) of the steps k → k+1 of a path that jump across a base pair (module docstring).

    sugar_xyz: (L, 3) sugar node positions in path order, Å; attachment: ``attach_path``'s result for that path.
    Nodes without a base node (NaN base position) never make a hop.
    """
    sugar = np.asarray(sugar_xyz, dtype=np.float64).reshape(-1, 3)
    if len(sugar) < 2:
        return np.zeros(0, dtype=int)
    step = np.diff(sugar, axis=0)
    length = np.linalg.norm(step, axis=1)
    shared = shared_phosphate(attachment)
    facing = _cosine(attachment.base_xyz[:-1] - sugar[:-1], step) + _cosine(attachment.base_xyz[1:] - sugar[1:], -step)
    return np.flatnonzero(~shared & (length >= MIN_HOP_A) & (facing >= MIN_FACING))


def shared_phosphate(attachment: PathAttachment) -> np.ndarray:
    """(L − 1,) bool: whether the sugars of each step k → k+1 share a phosphate (next P of k = prev P of k+1)."""
    return (attachment.next_index[:-1] >= 0) & (attachment.next_index[:-1] == attachment.prev_index[1:])


def split_at(length: int, cuts: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) node ranges of a path of ``length`` nodes cut after each node index in ``cuts``."""
    bounds = [0, *(int(k) + 1 for k in cuts), length]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of (N, 3) vectors; NaN rows give NaN (compared as False)."""
    norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("ij,ij->i", a, b) / norm
