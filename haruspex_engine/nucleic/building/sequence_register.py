"""The sequence register of the traced paths' residues: which residue of which chain sequence each one is, if any.

A path's residues are those the sequence-free model built on it (its node choice, in chain order 5′→3′); the
sequence never removes one. The fragments sequence assignment chose for a path (``sequence_assign``) label the
residues whose nodes they matched with (sequence group, 0-based index in the group's sequence).

Evidence. A residue read as sequence letter s agrees with the map when s is among its base calls (the best-scoring
base types, ties included; a residue with no base evidence has no calls and tells nothing). A wrong register
agrees by chance with probability q, the sequence's base composition summed over the calls; the right one with
probability ``accuracy``, the agreement measured over the kept runs of the whole model (step 2; between 0.5 and
0.99). In residues with the right letter, a reading and the map's own letters differ only where they disagree: if
the register is right the reading gains them all, if it is wrong it loses at most as many. So a reading gains in
expectation when its register is more likely right than wrong, the rule of every step below; register numbers are
kept by the same rule. Where that chance is only bounded (steps 2 and 5), the bound must be below NOISE_MAX = 0.2
rather than 1/2: a wrong reading also takes numbers and can be carried on, and at 0.3–0.5 one or two of 52
oracle-map builds (white and network-like noise, six structures) lost a letter to the sequence, at 0.2 none.

1. **Runs.** Labelled residues, in chain order, form runs of one group whose indices increase with room for the
   residues between (index step ≥ residue step).
2. **Kept runs.** A run was chosen out of many registers, so its chance of being wrong is bounded by a
   multiple-testing count: with K residues with calls agreeing at m, P(wrong) ≤ registers × P(Binomial(K, q̄) ≥ m)
   (``noise_probability``; q̄ the mean of q over the run), registers = the placements of its span (the sequence
   residues from its first label to its last) in the sequences, L − span + 1 summed over sequences of length L
   ≥ span (a chain read end to end has one; a repeat-rich sequence can then still be placed), × the ways its
   alignment could place its residue skips (g sequence residues skipped inside the run: C(K + g, g)) and node
   skips (s unlabelled residues inside it: C(K + s, s)). The run is kept when that bound is below NOISE_MAX.
   A run is also kept only when no other register (the same reading shifted anywhere in any sequence) agrees
   with as many of its calls: in a repeat the binomial bound does not hold, and the register is undecided.
   A run that fails is tested again block by block (its stretches of consecutive residues read as consecutive
   sequence residues; registers = the placements of the block's span): a path that runs off its chain (onto the
   paired strand) keeps the part that reads right. Residues of rejected runs and blocks are unplaced. Within a kept run,
   where the alignment skipped sequence residues or residues between two blocks, the block after the skip (then,
   going back, the block before it) is renumbered by carrying its neighbour's register across the skip (as in
   step 4) when that numbering agrees better with its calls (Σ log likelihood ratio: accuracy / q for an
   agreeing residue, (1 − accuracy) / (1 − q) for a disagreeing one), counting log FILL_PRIOR_ODDS in its favour
   when the steps between cannot hold the residues the skip implies (round(d / STEP_A) − 1 at most per step of
   d Å): an alignment that reads a stretch off by one to match a confused base or two is put back in step with
   the geometry, while a skip where the trace jumps along the chain stays. Then each block must hold on its own,
   given the rest of the run: it is kept when its posterior odds of being in register, FILL_PRIOR_ODDS × Π
   likelihood ratios, exceed 1; and so must its ends: the prefix or suffix (2 to K − 1 residues) that reads worst
   is unplaced when its posterior odds are at most 1 / (K − 2) (a path that runs off its chain at an end while the
   alignment reads on in sequence order: on clean 6POM and 1GID maps 6 and 5 residues read in a wrong register).
3. **Fill.** Residues between two kept labels of one group (the residues a run's alignment skipped, and whole
   stretches between two kept runs) take the numbers between when the register gap fits: with n residues between
   labels i < j, the j − i − 1 numbers must hold them (≥ n), and the surplus (residues the trace lost) must fit the
   path's geometry: each step between the residues hides round(d / STEP_A) − 1 residues at most (d the C4′–C4′
   node distance, Å); the surplus goes to the longest steps first. The fill is kept when its posterior odds
   (as for a block in step 2) exceed 1.
4. **Carrying on.** Into each stretch still unplaced the register is carried residue by residue along the path,
   forward from the label before it, then backward from the label after it (a step of d Å advancing
   max(1, round(d / STEP_A)) numbers), while the number stays in the sequence and no residue of the path has it.
   Of the carried residues the longest prefix with the highest posterior odds (CARRY_PRIOR_ODDS × the likelihood
   ratios so far) is kept when those odds exceed 1: carrying stops where the path leaves its chain.
5. **Across trace breaks.** A stretch of unplaced residues at a path's 5′ end continues the placed 3′-end residue
   (number r) of another path when the two end residues are at most CONTINUITY_REACH_A apart (d Å): its first
   residue is r + 1 + lost, lost = 0 … max(1, round(d / STEP_A)) − 1 residues lost in the break, the rest carried
   on as in step 4 (a 3′-end stretch likewise, backwards from another path's placed 5′ end), numbers that as
   many other paths as the group has copies already hold excluded. Each candidate is a register chosen out of
   the candidates: the best-agreeing one is kept when its bound (as in step 2, registers = the number of
   candidates) is below NOISE_MAX. Repeated until nothing changes (a newly placed path may anchor the next).

Unplaced residues keep the map's letters and get chains of their own (``sequence_model``).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from haruspex_engine.nucleic.building.fragment_select import Fragment
from haruspex_engine.nucleic.building.sequence_assign import CONTINUITY_REACH_A, true_runs

#: Readings whose bound on the chance of a wrong register is at least this are not kept (steps 2 and 5).
NOISE_MAX = 0.2
#: Prior odds that the residues between two kept labels continue their register (step 3).
FILL_PRIOR_ODDS = 9.0
#: Prior odds that the residues next to a kept label continue its register along the path (step 4).
CARRY_PRIOR_ODDS = 3.0
#: Bounds on the agreement of the map's calls with a right register (a few kept residues do not measure it well).
ACCURACY_RANGE = (0.5, 0.99)
#: Å: typical distance between the sugar nodes of consecutive residues; a step of d hides round(d / STEP_A) − 1.
STEP_A = 6.0
#: A base score this small (out of 3) is no base call.
MIN_CALL_SCORE = 1e-6

Labels = list[tuple[np.ndarray, np.ndarray, int]]


@dataclass(frozen=True)
class PathRegister:
    """Per residue of a path (chain order): group (−1: unplaced) and index (0-based in the group's sequence, −1:
    unplaced), arrays that later steps may change in place; kept_runs / rejected_runs: label runs that passed /
    failed step 2; bridged: residues placed across a trace break (step 5)."""

    group: np.ndarray
    index: np.ndarray
    kept_runs: int
    rejected_runs: int
    bridged: int


def place_paths(xyz: list[np.ndarray], scores: list[np.ndarray], labels: list[Labels], codes: list[np.ndarray],
                copies: list[int]) -> list[PathRegister]:
    """The register of every path's residues (see the module docstring). Per path: xyz (R, 3) sugar node positions
    of its residues in chain order, Å; scores (R, 4) their base-type scores (A, U/T, C, G); labels: its chosen
    fragments' readings (``fragment_labels``). codes: each group's sequence as base codes (A=0, U/T=1, C=2, G=3);
    copies: each group's number of chains."""
    group = [np.full(len(x), -1) for x in xyz]
    index = [np.full(len(x), -1) for x in xyz]
    for g, i, path_labels in zip(group, index, labels):
        for positions, indices, label_group in path_labels:
            g[positions], i[positions] = label_group, indices
    counts = [_keep_supported_runs(g, i, s, codes) for g, i, s in zip(group, index, scores)]
    accuracy = _accuracy(group, index, scores, codes)
    for g, i, x, s in zip(group, index, xyz, scores):
        _settle_blocks(g, i, x, s, codes, accuracy)
        _fill(g, i, x, s, codes, accuracy)
        _carry_on(g, i, x, s, codes, accuracy)
    bridged = _bridge_breaks(xyz, scores, group, index, codes, copies)
    return [PathRegister(g, i, kept, rejected, b) for g, i, (kept, rejected), b in zip(group, index, counts, bridged)]


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


def noise_probability(scores: np.ndarray, letters: np.ndarray, composition: np.ndarray,
                      registers: float) -> float:
    """Bound on the chance that reading ``letters`` (K,), chosen out of ``registers`` registers, is a wrong register
    agreeing with the calls of residues with base-type scores (K, 4) by chance: registers × P(Binomial(K', q̄) ≥ m),
    capped at 1 (step 2 of the module docstring); composition: (4,) base fractions of the sequence."""
    counted, agree, chance = _agreement(scores, letters, composition)
    if not counted.any():
        return 1.0
    q = min(float(chance[counted].mean()), 1.0)
    log_p = math.log(registers) + float(binom.logsf(int(agree.sum()) - 1, int(counted.sum()), q))
    return float(math.exp(min(log_p, 0.0)))


def _agreement(scores: np.ndarray, letters: np.ndarray,
               composition: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per residue: whether it has base calls, whether ``letters`` is among them, and the chance q that a random
    residue of the sequence is."""
    called = _calls(scores)
    return called.any(axis=1), called[np.arange(len(letters)), letters], called @ composition


def _calls(scores: np.ndarray) -> np.ndarray:
    """(K, 4) bool: each residue's base calls, its best-scoring base types (ties included; none without a score)."""
    best = scores.max(axis=1)
    return (scores >= best[:, None] - MIN_CALL_SCORE) & (best[:, None] > MIN_CALL_SCORE)


def _log_ratios(scores: np.ndarray, letters: np.ndarray, composition: np.ndarray, accuracy: float) -> np.ndarray:
    """(K,) log likelihood ratio, right register against chance, of each residue's agreement (0 without calls)."""
    counted, agree, chance = _agreement(scores, letters, composition)
    chance = np.clip(chance, 1e-6, 1 - 1e-6)
    ratio = np.where(agree, np.log(accuracy / chance), np.log((1 - accuracy) / (1 - chance)))
    return np.where(counted & (chance < accuracy), ratio, 0.0)


def _composition(code: np.ndarray) -> np.ndarray:
    return np.bincount(code, minlength=4) / len(code)


def _unambiguous(scores: np.ndarray, index: np.ndarray, group: int, codes: list[np.ndarray]) -> bool:
    """Whether the reading of residues with base-type scores (K, 4) as ``index`` (K,) of sequence ``group`` agrees
    with their calls at more residues than the same reading shifted to any other place in any sequence (a repeat,
    such as a telomeric G-quadruplex, reads the same in several registers: the binomial bound, which takes a wrong
    register to agree by chance, does not hold there)."""
    offsets = index - index[0]
    called = _calls(scores)
    own = int(called[np.arange(len(index)), codes[group][index]].sum())
    for other, code in enumerate(codes):
        starts = np.arange(len(code) - int(offsets[-1]))
        if other == group:
            starts = starts[starts != index[0]]
        letters = code[starts[:, None] + offsets[None, :]]  # (starts, K)
        if starts.size and called[np.arange(len(index))[None, :], letters].sum(axis=1).max() >= own:
            return False
    return True


def _registers(codes: list[np.ndarray], span: int) -> int:
    """How many registers a stretch covering ``span`` consecutive sequence residues could take: its placements
    inside every sequence long enough to hold it (at least 1)."""
    return max(1, sum(max(0, len(code) - span + 1) for code in codes))


def _keep_supported_runs(group: np.ndarray, index: np.ndarray, scores: np.ndarray,
                         codes: list[np.ndarray]) -> tuple[int, int]:
    """Step 2 on one path, in place; (kept, rejected) runs."""
    kept = rejected = 0
    for run in _runs(group, index):
        code = codes[int(group[run[0]])]
        composition = _composition(code)
        gaps = int(np.sum(np.diff(index[run]) - np.diff(run)))
        skipped = int(run[-1] - run[0] + 1 - len(run))
        alternatives = (_registers(codes, len(run) + gaps) * math.comb(len(run) + gaps, gaps)
                        * math.comb(len(run) + skipped, skipped))
        if (noise_probability(scores[run], code[index[run]], composition, alternatives) < NOISE_MAX
                and _unambiguous(scores[run], index[run], int(group[run[0]]), codes)):
            kept += 1
            continue
        rejected += 1
        for block in _blocks(run, index):
            if (len(block) < len(run)
                    and noise_probability(scores[block], code[index[block]], composition,
                                          _registers(codes, len(block))) < NOISE_MAX
                    and _unambiguous(scores[block], index[block], int(group[block[0]]), codes)):
                kept += 1
            else:
                group[block], index[block] = -1, -1
    return kept, rejected


def _settle_blocks(group: np.ndarray, index: np.ndarray, xyz: np.ndarray, scores: np.ndarray,
                   codes: list[np.ndarray], accuracy: float) -> None:
    """The blocks of kept runs put in step with their neighbours where that reads better, and those whose letters
    refute them unplaced (step 2), in place."""
    for run in _runs(group, index):
        code = codes[int(group[run[0]])]
        blocks = _blocks(run, index)
        for k in range(1, len(blocks)):
            _renumber_if_better(group, index, xyz, scores, code, accuracy, blocks[k - 1][-1], blocks[k])
        for k in range(len(blocks) - 2, -1, -1):
            _renumber_if_better(group, index, xyz, scores, code, accuracy, blocks[k + 1][0], blocks[k])
        for block in blocks:
            ratios = _log_ratios(scores[block], code[index[block]], _composition(code), accuracy)
            if math.log(FILL_PRIOR_ODDS) + ratios.sum() <= 0:
                group[block], index[block] = -1, -1
            else:
                refuted = _refuted_ends(ratios)
                group[block[refuted]], index[block[refuted]] = -1, -1


def _refuted_ends(ratios: np.ndarray) -> np.ndarray:
    """(K,) bool: the residues of a block's refuted ends. The end stretch (prefix or suffix, 2 to K − 1 residues)
    whose log likelihood ratios (``_log_ratios``, in block order) sum lowest is refuted when its posterior odds of
    being in register, FILL_PRIOR_ODDS × Π ratios, are at most 1 / (K − 2), the number of end stretches tried
    (the worst of many reads worse than one by chance: with 1 as the bound, two or three confused bases at the end
    of a right reading were refuted). A path that leaves its chain at an end (onto a strand stacked or paired
    there) while the alignment reads on in sequence order keeps the part that reads right. The prefix is tested
    first, then the suffix of what remains."""
    start = _refuted_prefix(ratios)
    stop = len(ratios) - _refuted_prefix(ratios[start:][::-1])
    refuted = np.ones(len(ratios), dtype=bool)
    refuted[start:stop] = False
    return refuted


def _refuted_prefix(ratios: np.ndarray) -> int:
    """How many leading residues ``_refuted_ends`` refutes (0: none)."""
    if len(ratios) < 3:
        return 0
    sums = np.cumsum(ratios)[1:-1]  # prefixes of 2 .. K − 1 residues
    length = int(np.argmin(sums)) + 2
    return length if math.log(FILL_PRIOR_ODDS) + sums[length - 2] <= -math.log(len(sums)) else 0


def _renumber_if_better(group: np.ndarray, index: np.ndarray, xyz: np.ndarray, scores: np.ndarray,
                        code: np.ndarray, accuracy: float, anchor: int, block: np.ndarray) -> None:
    """Block (residue positions, increasing) renumbered by carrying the register of residue ``anchor`` (just before
    or just after it) across the residues between, when the whole block gets numbers and they read better, by
    log FILL_PRIOR_ODDS when the block's own numbers skip more residues than the steps between can hold."""
    if block[0] > anchor:
        steps, direction, positions = _steps(xyz, anchor, block[-1] + 1), 1, block
    else:
        steps, direction, positions = _steps(xyz, anchor, block[0] - 1), -1, block[::-1]
    taken = _taken(group, index, int(group[anchor])) - set(index[block].tolist())
    numbers = _carried(int(index[anchor]), steps, len(code), taken, direction)
    offsets = np.abs(positions - anchor) - 1
    if len(numbers) <= offsets[-1]:
        return
    carried = np.asarray(numbers)[offsets]
    near = positions[0]
    skipped = abs(int(index[near]) - int(index[anchor])) - abs(int(near) - anchor)
    room = np.maximum(np.round(steps[:offsets[0] + 1] / STEP_A).astype(int) - 1, 0).sum()
    composition = _composition(code)
    prior = math.log(FILL_PRIOR_ODDS) if skipped > room else 0.0
    if (prior + _log_ratios(scores[positions], code[carried], composition, accuracy).sum()
            > _log_ratios(scores[positions], code[index[positions]], composition, accuracy).sum()):
        index[positions] = carried


def _accuracy(group: list[np.ndarray], index: list[np.ndarray], scores: list[np.ndarray],
              codes: list[np.ndarray]) -> float:
    """Agreement of the calls with the kept labels of all paths, (agree + 1) / (counted + 2), in ACCURACY_RANGE."""
    agree = counted = 0
    for g, i, s in zip(group, index, scores):
        for label_group in np.unique(g[g >= 0]).tolist():
            rows = np.flatnonzero(g == label_group)
            has, hit, _ = _agreement(s[rows], codes[label_group][i[rows]], np.zeros(4))
            agree += int(hit.sum())
            counted += int(has.sum())
    return float(np.clip((agree + 1) / (counted + 2), *ACCURACY_RANGE))


def _runs(group: np.ndarray, index: np.ndarray) -> list[np.ndarray]:
    """Residue positions of each run of labels (step 1 of the module docstring)."""
    runs: list[list[int]] = []
    last = None
    for k in np.flatnonzero(group >= 0).tolist():
        if last is None or group[k] != group[last] or index[k] - index[last] < k - last:
            runs.append([])
        runs[-1].append(k)
        last = k
    return [np.asarray(run) for run in runs]


def _blocks(run: np.ndarray, index: np.ndarray) -> list[np.ndarray]:
    """A run split where a residue or a sequence residue is skipped: consecutive residues, consecutive indices."""
    breaks = np.flatnonzero((np.diff(run) != 1) | (np.diff(index[run]) != 1)) + 1
    return np.split(run, breaks)


def _fill(group: np.ndarray, index: np.ndarray, xyz: np.ndarray, scores: np.ndarray, codes: list[np.ndarray],
          accuracy: float) -> None:
    """Numbers between consecutive labels of one group where the gap fits and the letters do not refute it
    (step 3), in place."""
    labelled = np.flatnonzero(group >= 0)
    for a, b in zip(labelled[:-1].tolist(), labelled[1:].tolist()):
        between = b - a - 1
        surplus = int(index[b] - index[a] - 1 - between)
        if between == 0 or group[a] != group[b] or surplus < 0:
            continue
        hidden = _hidden_residues(xyz[a:b + 1], surplus)
        if hidden is None:
            continue
        numbers = index[a] + np.cumsum(1 + hidden[:-1])
        code = codes[int(group[a])]
        odds = math.log(FILL_PRIOR_ODDS) + _log_ratios(scores[a + 1:b], code[numbers], _composition(code),
                                                       accuracy).sum()
        if odds > 0:
            group[a + 1:b], index[a + 1:b] = group[a], numbers


def _hidden_residues(xyz: np.ndarray, surplus: int) -> np.ndarray | None:
    """Residues lost in each step of a stretch of residues (M, 3) Å: ``surplus`` of them, longest steps first, each
    step holding at most round(d / STEP_A) − 1; None when the steps cannot hold them all."""
    steps = np.linalg.norm(np.diff(xyz, axis=0), axis=1)
    room = np.maximum(np.round(steps / STEP_A).astype(int) - 1, 0)
    if room.sum() < surplus:
        return None
    hidden = np.zeros(len(steps), int)
    for _ in range(surplus):
        free = np.flatnonzero(hidden < room)
        hidden[free[np.argmax(steps[free] / (hidden[free] + 1))]] += 1
    return hidden


def _carry_on(group: np.ndarray, index: np.ndarray, xyz: np.ndarray, scores: np.ndarray, codes: list[np.ndarray],
              accuracy: float) -> None:
    """The register carried into each unplaced stretch from the label before it (forward) and then from the label
    after it (backward), along the path, as far as the letters support it (step 4), in place."""
    if not (group >= 0).any():
        return
    for start, stop in true_runs(group < 0):
        if start > 0:
            start += _carry(group, index, xyz, scores, codes, accuracy, start - 1, stop)
        if stop < len(group) and start < stop:
            _carry(group, index, xyz, scores, codes, accuracy, stop, start - 1)


def _carry(group: np.ndarray, index: np.ndarray, xyz: np.ndarray, scores: np.ndarray, codes: list[np.ndarray],
           accuracy: float, label: int, end: int) -> int:
    """Residues label ± 1, … (up to, not including, ``end``) numbered on from ``label`` as far as the posterior odds
    are best and above 1; returns how many were placed."""
    g = int(group[label])
    direction = 1 if end > label else -1
    numbers = np.array(_carried(int(index[label]), _steps(xyz, label, end), len(codes[g]),
                                _taken(group, index, g), direction), dtype=int)
    if not len(numbers):
        return 0
    positions = label + direction * np.arange(1, len(numbers) + 1)
    code = codes[g]
    odds = math.log(CARRY_PRIOR_ODDS) + np.cumsum(_log_ratios(scores[positions], code[numbers], _composition(code),
                                                               accuracy))
    best = int(np.argmax(odds))
    if odds[best] <= 0:
        return 0
    group[positions[:best + 1]], index[positions[:best + 1]] = g, numbers[:best + 1]
    return best + 1


def _bridge_breaks(xyz: list[np.ndarray], scores: list[np.ndarray], group: list[np.ndarray],
                   index: list[np.ndarray], codes: list[np.ndarray], copies: list[int]) -> list[int]:
    """Step 5, in place; residues placed per path."""
    bridged = [0] * len(group)
    changed = True
    while changed:
        changed = False
        for b in range(len(group)):
            for end in (0, len(group[b]) - 1):
                if len(group[b]) and group[b][end] < 0:
                    placed = _bridge(b, end, xyz, scores, group, index, codes, copies)
                    bridged[b] += placed
                    changed |= placed > 0
    return bridged


def _bridge(b: int, end: int, xyz: list[np.ndarray], scores: list[np.ndarray], group: list[np.ndarray],
            index: list[np.ndarray], codes: list[np.ndarray], copies: list[int]) -> int:
    """Place the unplaced stretch at residue ``end`` (0: the 5′ end, else the 3′ end) of path b from the facing
    ends of the other paths (step 5); returns how many residues it placed."""
    direction = 1 if end == 0 else -1  # into the path from this end
    stretch = true_runs(group[b] < 0)[0 if end == 0 else -1]
    stop = stretch[1] if end == 0 else stretch[0] - 1  # first residue past the stretch, in carry order
    holders = Counter((int(h), int(i)) for a in range(len(group)) if a != b
                      for h, i in set(zip(group[a].tolist(), index[a].tolist())) if h >= 0)
    candidates = []
    for a in range(len(group)):
        facing = len(group[a]) - 1 if end == 0 else 0  # the other path's 3′ end meets this 5′ end
        if a == b or not len(group[a]) or group[a][facing] < 0:
            continue
        distance = float(np.linalg.norm(xyz[a][facing] - xyz[b][end]))
        if distance > CONTINUITY_REACH_A:
            continue
        g = int(group[a][facing])
        taken = _taken(group[b], index[b], g) | {i for (h, i), n in holders.items() if h == g and n >= copies[g]}
        for lost in range(max(1, round(distance / STEP_A))):
            first = int(index[a][facing]) + direction * (1 + lost)
            if not 0 <= first < len(codes[g]) or first in taken:
                continue
            numbers = [first] + _carried(first, _steps(xyz[b], end, stop), len(codes[g]), taken, direction)
            candidates.append((g, numbers))
    best = None
    for g, numbers in candidates:
        positions = end + direction * np.arange(len(numbers))
        p = noise_probability(scores[b][positions], codes[g][numbers], _composition(codes[g]), len(candidates))
        if p < NOISE_MAX and (best is None or p < best[0]):
            best = (p, g, positions, numbers)
    if best is None:
        return 0
    _, g, positions, numbers = best
    group[b][positions], index[b][positions] = g, numbers
    return len(numbers)


def _steps(xyz: np.ndarray, label: int, end: int) -> np.ndarray:
    """Distances, Å, from residue label to label ± 1 and so on up to (not including) ``end``, each to the one
    before."""
    direction = 1 if end > label else -1
    order = np.arange(label, end, direction)
    return np.linalg.norm(np.diff(xyz[order], axis=0), axis=1)


def _carried(number: int, steps: np.ndarray, length: int, taken: set[int], direction: int = 1) -> list[int]:
    """Numbers of consecutive residues carried on from ``number`` (the residue before the first) across ``steps``
    (Å, each residue's distance from the one before): each advances max(1, round(d / STEP_A)) in ``direction``;
    stops before leaving 0 … length − 1 or reaching a number in ``taken``."""
    numbers = []
    for distance in steps.tolist():
        number += direction * max(1, round(distance / STEP_A))
        if not 0 <= number < length or number in taken:
            break
        numbers.append(number)
    return numbers


def _taken(group: np.ndarray, index: np.ndarray, g: int) -> set[int]:
    return set(index[group == g].tolist())
