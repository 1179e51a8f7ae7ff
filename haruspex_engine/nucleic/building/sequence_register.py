"""The sequence register of the traced paths' residues: which residue of which chain sequence each one is, if any.

A path's residues are those the sequence-free model built on it (its node choice, in chain order 5′→3′), plus the
nodes sequence assignment matched (``sequence_model``); the sequence never removes one.

1. **Calls.** A residue's base calls are the base types scoring at least CALL_SHARE (1/2) of its best (a residue
   with no base evidence has none and tells nothing). A network that sees a base's size (purine or pyrimidine) but
   not its edges scores the two types of the class alike, and calling only the best would be a coin toss between
   them; both called, the pair agrees with the sequence about as often as the class does. A map that scores one
   type per base calls it alone: on the corpus oracle maps (one type painted per base, noise on all four) the
   clean builds were unchanged and the realistic register recall moved 0.280 → 0.273 (30 builds).
2. **Call accuracy.** How often the calls hold the right letter is estimated from the data by expectation
   maximisation: every path read on its own (``register_posterior``) at START_ACCURACY, then ACCURACY_ROUNDS
   rounds of the posterior-weighted agreement of the calls with the sequence letters, (agree + 1) / (counted + 2),
   within ACCURACY_RANGE. Corpus oracle maps (30 builds each): 0.92–0.99 clean, 0.57–0.91 network-like. (The
   accuracy of greatest marginal likelihood instead runs high, 0.98 on a path with one confused call in 24, because
   a disagreeing call can be explained away as an extra node; it placed 1.3 % fewer residues right on those maps.)
   The estimate feeds itself: the posterior favours the alignments that agree, so their agreement looks like skill.
   It therefore starts low, so that only real agreement raises it, yet above the 1/2 chance of a called pair, which
   must still count as evidence (from 0.5 a map that tells only purines from pyrimidines places nothing). Random
   sequences of the entries' lengths set against realistic oracle maps (6v5b, 6POM, 3SIU, 1EHZ, 1GID, seed 0, eight
   each): from 0.75 in three rounds their agreement was estimated at 0.50–0.73 and 17 of the 40 builds placed
   residues (186 in all); from 0.6 in six rounds, 6 builds (74 residues). The right sequences of the ten corpus
   entries (seed 0) placed 304 residues right and 57 wrong, against 305 and 59; over the corpus benchmark (30
   realistic builds) register recall went 0.341 → 0.331, the weak readings of 3SIU (two 28-nt chains) losing most.
3. **Posterior.** With that accuracy every path is read against the sequences with the evidence of the paths
   continuing it across trace breaks (``register_posterior.path_posteriors``): per residue, the probability of each
   sequence residue, summed over all alignments (extra nodes, lost residues, stretches in no register).
4. **Placement.** A residue takes its most probable sequence residue when that probability is at least
   PLACE_POSTERIOR (1/2: the number is then more likely right than wrong, and the sequence letter more likely right
   than the map's own call, which the posterior includes). Each sequence residue is one nucleotide per chain of its
   sequence, so the paths are read a second time (``register_posterior``, ``free``) with the sequence residues that
   other paths own weighed HELD_WEIGHT: a residue whose most probable sequence residue has posterior ≥
   HOLD_POSTERIOR claims it, and the most probable claims, as many as the sequence has chains, own it. Within a
   path, a sequence residue that residues of the path are placed at (posterior ≥ PLACE_POSTERIOR), as many as the
   sequence has chains, is held off the path's other residues the same way: the hidden Markov model cannot forbid
   a path to read one stretch twice, and a path that closes on itself in a repeated sequence (1KF1's ring in
   (TTAGGG)n) otherwise reads its second half equally well in two registers and places neither. Two strands
   of a near-palindromic duplex read alike in either chain's sequence; the chain the other strand does not own is
   the one left (1D66). On the 40 builds below this second reading placed 40 more residues right on clean maps
   (1,635 → 1,675) and 3 fewer wrong. (Weighing every path's whole posterior instead, as a mean field, lost 7 % of
   the right placements: two medium-confidence readings of one stretch suppressed each other residue by residue.)
   A number is then held by at most as many residues as its sequence has chains, the most probable first.
   Numbers may fall along a path: a trace that runs from the 3′ end of one chain onto the 5′ end of another copy
   of its sequence, or jumps back along its chain, goes on in the numbers it reads (``sequence_model`` gives each
   increasing segment its own copy). Requiring one increasing set of numbers per path instead unplaced such
   continuations: on 1GID (two chains of one sequence) a path reading residues 143–155 of one chain and 0–141 of
   the other lost the first 14 at posteriors 0.93–0.98; over the 40 builds below 77 residues placed right were
   lost that way.

The fragments sequence assignment chose (``sequence_assign``, CP-SAT) are one alignment of all paths at once; they
are counted against the posterior (labels confirmed: placed where a fragment put them; overruled: placed elsewhere
or unplaced) but do not decide the register: a fragment that reads a 7-nt stretch of a 78-nt sequence is, with
network-like calls, no better than chance, while the posterior weighs it with everything around it. Measured on
the register inputs of 40 corpus builds (10 entries, seeds 0–1; residues whose sugar node lies within 3 Å of a
reference C4′): clean maps, 1,675 residues placed right and 64 wrong (the former run-by-run evidence test with its
filling, carrying and bridging steps: 1,474 and 135); realistic maps, 292 and 120 (184 and 146). The priors of
``register_posterior`` were set beforehand, not fitted: LINK 0.25–0.75, ENTER 0.03–0.3, LEAVE 0.005–0.06, EXTRA_NODE
0.02–0.12 or START_UNPLACED 0.05–0.5 move the right counts by at most 4 % (clean) and 13 % (realistic); SKIP_DECAY
1 loses 8 % and 37 %, 3 gains 2 % and 18 % but places 48 % more wrong on realistic maps.

Unplaced residues keep the map's letters and get chains of their own (``sequence_model``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from haruspex_engine.nucleic.building.fragment_select import Fragment
from haruspex_engine.nucleic.building.register_posterior import agreement, path_posteriors, sequence_of
from haruspex_engine.nucleic.building.sequences import UNKNOWN_CODE

#: A residue is placed at its most probable sequence residue when that probability is at least this.
PLACE_POSTERIOR = 0.5
#: The call accuracy estimate (step 2) starts here, takes this many rounds and stays within this range.
START_ACCURACY = 0.6
ACCURACY_ROUNDS = 6
ACCURACY_RANGE = (0.5, 0.99)
#: A residue holds its most probable sequence residue against the other paths from this posterior (step 4).
HOLD_POSTERIOR = 0.9
#: Weight of a sequence residue the other paths hold, in the second reading (step 4).
HELD_WEIGHT = 0.01
#: A base type is called when it scores at least this share of the residue's best.
CALL_SHARE = 0.5
#: A base score this small (out of 3) is no base call.
MIN_CALL_SCORE = 1e-6

Labels = list[tuple[np.ndarray, np.ndarray, int]]


@dataclass(frozen=True)
class PathRegister:
    """Per residue of a path (chain order): group (−1: unplaced) and index (0-based in the group's sequence, −1:
    unplaced), arrays that later steps may change in place; confirmed / overruled: residues whose fragment label
    the placement keeps / does not keep; linked: residues placed only with the evidence of the paths beside it
    (read on its own, the path would leave them unplaced or elsewhere)."""

    group: np.ndarray
    index: np.ndarray
    confirmed: int
    overruled: int
    linked: int


@dataclass(frozen=True)
class Registers:
    """paths: the register of every path; call_accuracy: the estimated agreement of the map's base calls with the
    right letters (step 2)."""

    paths: list[PathRegister]
    call_accuracy: float


def place_paths(xyz: list[np.ndarray], scores: list[np.ndarray], labels: list[Labels], codes: list[np.ndarray],
                copies: list[int], bridged: list[np.ndarray] | None = None) -> Registers:
    """The register of every path's residues (see the module docstring). Per path: xyz (R, 3) sugar node positions
    of its residues in chain order, Å; scores (R, 4) their base-type scores (A, UT, C, G); labels: its chosen
    fragments' readings (``fragment_labels``). codes: each group's sequence as base codes (A=0, U/T=1, C=2, G=3,
    N=4);
    copies: each group's number of chains; bridged: per path, (R − 1,) bool, whether a phosphate joins the two
    residues of each step (``register_posterior``; None: all are joined)."""
    calls = [_calls(np.asarray(s).reshape(-1, 4)) for s in scores]
    accuracy, alone = _estimate_accuracy(xyz, calls, codes, bridged)
    linked = path_posteriors(xyz, calls, codes, accuracy, linked=True, bridged=bridged)
    offsets = np.cumsum([0] + [len(c) for c in codes])
    group_of = sequence_of(codes)
    capacity = np.concatenate([np.full(len(c), n) for c, n in zip(codes, copies)])
    free = _free_for_each(linked, capacity)
    if free is not None:
        linked = path_posteriors(xyz, calls, codes, accuracy, linked=True, free=free, bridged=bridged)
    placements = [_most_probable(p, offsets, group_of) for p in linked]
    _limit_copies(placements, copies)
    registers = []
    for (group, index, _), path_labels, own in zip(placements, labels, alone):
        solo_group, solo_index, _ = _most_probable(own, offsets, group_of)
        labelled = _label_arrays(len(group), path_labels)
        confirmed = int(np.sum((labelled[0] >= 0) & (labelled[0] == group) & (labelled[1] == index)))
        linked_only = int(np.sum((group >= 0) & ((solo_group != group) | (solo_index != index))))
        registers.append(PathRegister(group, index, confirmed, int(np.sum(labelled[0] >= 0)) - confirmed,
                                      linked_only))
    return Registers(registers, accuracy)


def fragment_labels(nodes: np.ndarray, fragments: list[Fragment]) -> Labels:
    """Per fragment, the (residue positions, sequence indices, group) of the residues whose node it matched;
    nodes: (R,) the path node of each residue, chain order."""
    position = {int(n): k for k, n in enumerate(np.asarray(nodes).tolist())}
    labels = []
    for fragment in fragments:
        pairs = [(position[n], r) for n, r in zip(fragment.nodes.tolist(), fragment.residues.tolist())
                 if n in position]
        if pairs:
            positions, indices = np.array(pairs).T
            labels.append((positions, indices, fragment.group))
    return labels


def _calls(scores: np.ndarray) -> np.ndarray:
    """(K, 4) bool: each residue's base calls, the base types scoring at least CALL_SHARE of its best (none
    without a score)."""
    best = scores.max(axis=1) if len(scores) else np.zeros(0)
    return (scores >= CALL_SHARE * best[:, None] - MIN_CALL_SCORE) & (best[:, None] > MIN_CALL_SCORE)


def _estimate_accuracy(xyz: list[np.ndarray], calls: list[np.ndarray], codes: list[np.ndarray],
                       bridged: list[np.ndarray] | None) -> tuple[float, list[np.ndarray]]:
    """Step 2: the call accuracy and, at that accuracy, each path's posterior read on its own."""
    letters = np.concatenate(codes)
    accuracy = START_ACCURACY
    alone = path_posteriors(xyz, calls, codes, accuracy, bridged=bridged)
    for _ in range(ACCURACY_ROUNDS):
        agree = counted = 0.0
        for posterior, path_calls in zip(alone, calls):
            has = path_calls.any(axis=1)
            agree += float((posterior * agreement(path_calls, letters))[has].sum())
            counted += float(posterior[has][:, letters != UNKNOWN_CODE].sum())
        accuracy = float(np.clip((agree + 1) / (counted + 2), *ACCURACY_RANGE))
        alone = path_posteriors(xyz, calls, codes, accuracy, bridged=bridged)
    return accuracy, alone


def _most_probable(posterior: np.ndarray, offsets: np.ndarray,
                   group_of: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 4 on one path: (group, index, probability) per residue, −1 / 0 where unplaced."""
    length = len(posterior)
    group, index, probability = np.full(length, -1), np.full(length, -1), np.zeros(length)
    if length == 0 or posterior.shape[1] == 0:
        return group, index, probability
    best = posterior.argmax(axis=1)
    chance = posterior[np.arange(length), best]
    placed = chance >= PLACE_POSTERIOR
    group[placed] = group_of[best[placed]]
    index[placed] = best[placed] - offsets[group[placed]]
    probability[placed] = chance[placed]
    return group, index, probability


def _free_for_each(posteriors: list[np.ndarray], capacity: np.ndarray) -> list[np.ndarray] | None:
    """Per path, (R, N) weight of each sequence residue for each of its residues in the second reading (step 4):
    HELD_WEIGHT where other residues own it, else 1; None when no residue is owned. Across paths, a residue whose
    most probable sequence residue has posterior ≥ HOLD_POSTERIOR claims it, and of the claims on one sequence
    residue the ``capacity`` (chains of its sequence) most probable own it (ties: the earlier path). Within a path,
    the residues placed at a sequence residue (posterior ≥ PLACE_POSTERIOR), as many as its capacity, own it
    against the path's other residues."""
    claims: dict[int, list[tuple[float, int, int]]] = {}
    free = [np.ones((len(posterior), len(capacity))) for posterior in posteriors]
    owned = False
    for p, posterior in enumerate(posteriors):
        if not len(posterior):
            continue
        best, chance = posterior.argmax(axis=1), posterior.max(axis=1)
        for k in np.flatnonzero(chance >= HOLD_POSTERIOR).tolist():
            claims.setdefault(int(best[k]), []).append((float(chance[k]), p, k))
        placed = np.flatnonzero(chance >= PLACE_POSTERIOR)
        for j in np.unique(best[placed]).tolist():
            holders = placed[best[placed] == j]
            if len(holders) >= capacity[j]:
                free[p][:, j] = HELD_WEIGHT
                free[p][holders, j] = 1.0
                owned = True
    for j, held in claims.items():
        paths = {p for _, p, _ in sorted(held, key=lambda c: (-c[0], c[1], c[2]))[:int(capacity[j])]}
        if len(paths) >= capacity[j]:
            for p, weights in enumerate(free):
                if p not in paths:
                    weights[:, j] = HELD_WEIGHT
            owned = True
    return free if owned else None


def _limit_copies(placements: list[tuple[np.ndarray, np.ndarray, np.ndarray]], copies: list[int]) -> None:
    """A number held by more residues than its group has chains keeps the most probable ones (step 4), in place."""
    holders: dict[tuple[int, int], list[tuple[float, int, int]]] = {}
    for p, (group, index, probability) in enumerate(placements):
        for k in np.flatnonzero(group >= 0).tolist():
            holders.setdefault((int(group[k]), int(index[k])), []).append((float(probability[k]), p, k))
    for (g, _), held in holders.items():
        for _, p, k in sorted(held, reverse=True)[copies[g]:]:
            group, index, probability = placements[p]
            group[k], index[k], probability[k] = -1, -1, 0.0


def _label_arrays(length: int, labels: Labels) -> tuple[np.ndarray, np.ndarray]:
    """(group, index) per residue from fragment labels, −1 where none."""
    group, index = np.full(length, -1), np.full(length, -1)
    for positions, indices, label_group in labels:
        group[positions], index[positions] = label_group, indices
    return group, index
