"""From a path's sequence fragments and its sequence-free residue choice to model chains in sequence register.

Per traced path:

* **Direction**: given (decided from geometry before the alignment, which reads every path in that direction only).
* **Residues**: the fragment-matched nodes, plus the sequence-free residues outside the node ranges the fragments
  span (the original overwrites the sequence-free letters; here the fragments also decide which nodes are
  residues where they apply, because their alignment placed them).
* **Letters**: the chain's letter where a node is matched, else the best base type of the node.
* **Numbering**: matched residues get their number in the FASTA chain (1-based); unmatched ones continue from the
  previous matched residue (or count down to the first one). Where the register breaks (another sequence, numbers
  not increasing, or more unmatched residues than the numbers between two matched ones), the path is split:
  each output chain's numbers are strictly increasing. Chains of fewer than 2 residues are dropped.
* **Confidence**: the node's score for the residue's base, divided by its maximum of 3.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from haruspex_engine.nucleic.building.atoms import ChainResidues, chain_id
from haruspex_engine.nucleic.building.attach import MAX_BASE_SCORE, PathAttachment
from haruspex_engine.nucleic.building.fragment_select import Fragment
from haruspex_engine.nucleic.building.no_sequence import ResidueChoice
from haruspex_engine.nucleic.building.sequence_assign import SequenceGroup
from haruspex_engine.nucleic.classes import BASE_TYPES

MIN_CHAIN_RESIDUES = 2


@dataclass(frozen=True)
class ModelChain:
    """residues: the chain; group: index of the sequence group most of its residues were matched to, or None."""

    residues: ChainResidues
    group: int | None


def path_chains(sugar: np.ndarray, attached: PathAttachment, choice: ResidueChoice, reverse: bool,
                fragments: list[Fragment], groups: list[SequenceGroup], dna: bool) -> list[ModelChain]:
    """Output chains of one path (see the module docstring). sugar: (L, 3) node positions, Å; reverse: the chain
    runs against the path order; dna: residue naming for chains with no matched residue (a matched chain follows
    its FASTA chain's kind)."""
    length = len(sugar)
    group_of = np.full(length, -1)
    residue_of = np.full(length, -1)
    spanned = np.zeros(length, bool)
    for fragment in fragments:
        group_of[fragment.nodes] = fragment.group
        residue_of[fragment.nodes] = fragment.residues
        spanned[fragment.nodes[0]:fragment.nodes[-1] + 1] = True
    free = np.asarray(choice.nodes, dtype=int)
    nodes = np.union1d(np.flatnonzero(group_of >= 0), free[~spanned[free]])
    order = nodes[::-1] if reverse else nodes
    chains = []
    for piece in _pieces(order, group_of, residue_of):
        if len(piece) >= MIN_CHAIN_RESIDUES:
            chains.append(_chain(piece, sugar, attached, reverse, group_of, residue_of, groups, dna))
    return chains


def chain_names(chains: list[ModelChain], groups: list[SequenceGroup]) -> list[str]:
    """Chain ids: a chain matched to a sequence group takes the group's next unused FASTA chain id; the others (and
    matched chains once the group's ids are used up) take the first ids of A–Z, a–z, 0–9, AA, … not yet taken."""
    unused = [list(g.chain_ids) for g in groups]
    names: list[str | None] = []
    for chain in chains:
        pool = unused[chain.group] if chain.group is not None else []
        names.append(pool.pop(0) if pool else None)
    taken = {n for n in names if n is not None}
    fallback = (chain_id(k) for k in range(len(chains) + len(taken) + 1) if chain_id(k) not in taken)
    return [name if name is not None else next(fallback) for name in names]


def _pieces(order: np.ndarray, group_of: np.ndarray, residue_of: np.ndarray) -> list[list[int]]:
    """Residue nodes in chain order, split where the register breaks."""
    pieces: list[list[int]] = [[]]
    last: tuple[int, int] | None = None  # (group, residue) of the piece's last matched node
    unmatched = 0  # unmatched nodes since then
    for node in order.tolist():
        group, residue = int(group_of[node]), int(residue_of[node])
        if group >= 0:
            if last is not None and (group != last[0] or residue - last[1] - 1 < unmatched):
                pieces.append([])
            last, unmatched = (group, residue), 0
        else:
            unmatched += 1
        pieces[-1].append(node)
    return [p for p in pieces if p]


def _chain(piece: list[int], sugar: np.ndarray, attached: PathAttachment, reverse: bool, group_of: np.ndarray,
           residue_of: np.ndarray, groups: list[SequenceGroup], dna: bool) -> ModelChain:
    nodes = np.asarray(piece)
    matched = group_of[nodes] >= 0
    scores = attached.scores[nodes]
    base_index = np.argmax(scores, axis=1)
    group = None
    if matched.any():
        group = int(group_of[nodes[matched]][0])
        base_index[matched] = groups[group].codes[residue_of[nodes[matched]]]
        dna = groups[group].dna
    residues = path_residues(sugar, attached, nodes, reverse, base_index, dna, _numbers(residue_of[nodes], matched))
    return ModelChain(residues, group)


def path_residues(sugar: np.ndarray, attached: PathAttachment, nodes: np.ndarray, reverse: bool,
                  base_index: np.ndarray, dna: bool, numbers: np.ndarray | None = None) -> ChainResidues:
    """Residues at path ``nodes`` (indices in chain order) as a chain. reverse: the chain runs against the path
    order, so each residue's own (5′) phosphate is its node's next P rather than its previous one. base_index:
    (len(nodes),) index into BASE_TYPES of each residue's base; confidence = the node's score for that base / 3."""
    return ChainResidues(
        p=(attached.next_p if reverse else attached.prev_p)[nodes], sugar=sugar[nodes],
        base=attached.base_xyz[nodes], bases=tuple(BASE_TYPES[int(i)] for i in base_index), dna=dna,
        confidence=attached.scores[nodes, base_index] / MAX_BASE_SCORE, numbers=numbers,
    )


def _numbers(residue: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """1-based residue numbers: matched residues their register, the others counted from their neighbours."""
    if not matched.any():
        return np.arange(1, len(residue) + 1)
    numbers = np.where(matched, residue + 1, 0)
    first = int(np.argmax(matched))
    numbers[:first] = numbers[first] - np.arange(first, 0, -1)
    for k in range(first + 1, len(numbers)):
        if not matched[k]:
            numbers[k] = numbers[k - 1] + 1
    return numbers
