"""Posterior probability of each residue of the traced paths being each residue of the chain sequences.

The residues of a path (chain order, 5′→3′) are read against the sequences by a profile hidden Markov model, summed
over every alignment rather than judged by the one an optimiser chose. Per residue k the hidden state is

* M(j): residue k is sequence residue j (j over all sequences, concatenated; no step crosses from one sequence into
  the next);
* I(j): residue k is an extra node (a false sugar node, or a second node on one nucleotide) after sequence residue j;
* U: residue k is in no register the sequences give (a false stretch, or a strand the sequences do not hold).

Emission. M(j) emits the residue's base calls with a likelihood ratio against chance: accuracy / q when the sequence
letter is among the calls, (1 − accuracy) / (1 − q) when not (q: the chance that a random residue of that sequence
is among the calls; accuracy: how often the calls hold the right letter); a residue without calls, I and U emit 1.

Transitions, from residue k to k + 1 at step distance d Å (sugar node to sugar node):

* M(j) or I(j) → M(j + 1 + s): the chain goes on, s sequence residues lost in the step (a dropped or unresolved
  nucleotide). By its length the step hides n = round(d / STEP_A) − 1 residues (at least 0); s runs over 0 … n + 1
  with weight exp(−SKIP_DECAY · |s − n|): a 6 Å step most likely loses none, a 12 Å step one;
* M(j) or I(j) → I(j) with EXTRA_NODE, M(j) or I(j) → U with LEAVE;
* at a doubtful step, one no phosphate bridges (the two residues share no phosphate node) or one at least
  DOUBTFUL_STEP_A long, M(j) or I(j) → M(j′) with JUMP / N for any j′: the trace went on along another strand (at a
  junction, across a groove or a tertiary contact). Residue steps of the realistic oracle maps (ten corpus entries,
  seed 0; both residues within 3 Å of a reference C4′) that go on more than 3 positions away or onto another
  chain: 2.1 % of the bridged steps under 8 Å (17 of 806), 26 % of the bridged steps of 8–10 Å (9 of 34), 18 % of
  the unbridged ones (9 of 50). Without the jump, a reading that changes register must pass through U (LEAVE,
  then ENTER / N) and loses the residues beside the change. At the measured rate, 0.2, the realistic register
  recall stayed 0.579 (30 builds): 1EHZ 0.640 → 0.684 and 1D66 0.561 → 0.596, but 3SIU 0.524 → 0.452, where
  doubtful steps that do go on lost their confidence; at 0.05 it rose to 0.586, no entry down more than 0.006;
* U → U with 1 − ENTER, U → M(j) with ENTER / N (a register anywhere in the N residues of the sequences: the
  chance of a chance match is paid here, once per entry, rather than per alignment considered);
* a step that would go on past the last residue of its sequence (its chain has ended there) enters a register at
  once, without the unplaced residue a path outside any register passes through: anywhere, M(j) with ENTER / N, or
  at the first residue of a sequence, with ENTER shared equally among the sequences. The rest of that step's
  weight goes nowhere: a path seldom runs on past a chain's end, and a reading that does pays for it. Where a path
  does run on past a 3′ end, the residue beside that end is most often a 5′ end: the partner strand's first
  residue at the blunt end of a duplex, or the chain's own first residue where a ring closes on its own ends
  (1KF1). A trace that runs from one chain's 3′ end onto another chain's 5′ end, or round such a ring, thus reads
  on without losing a residue, and breaks its register where a chain does end rather than anywhere (LEAVE, then
  ENTER). With ENTER / N alone the ring's closing step cost more than reading the repeat out of register: 1KF1
  ((TTAGGG)n) was read six residues off on one clean map of three. A larger weight on the first residues reads
  more chance matches: with 0.5 instead of ENTER, a random 30-nt sequence set against a clean map of a 30-nt RNA
  placed 2.6 residues on average (40 sequences; 1.4 with ENTER, 1.6 with none), up to 21, by reading round the
  sequence's ends.

A path's first residue is U with START_UNPLACED, else M(j) with the rest / N. Forward–backward sums over every
alignment; the posterior of M(j) at residue k is the probability that residue k is sequence residue j given the
calls and steps.

Trace breaks. A chain the tracer broke into several paths continues across the break: the 3′ end of one path lies
within CONTINUITY_REACH_A of the 5′ end of the next. Each path's first residue therefore also may continue the last
residue of any path ending that near (weight LINK shared equally among them, the rest the start above), its last
residue likewise the first residue of any path starting near it. The evidence crosses breaks by belief propagation:
the forward distribution at the end of a path (its own reading and what reached its start) sets the start of the
paths after it; the likelihood of the paths after it, per register of its last residue, weighs its end. LINK_ROUNDS
rounds carry evidence that many breaks along a chain. A wrong neighbour costs little: its continuation reads no
better than chance, and the start above still holds the rest of the weight.

Arrays: calls (R, 4) bool, each residue's best-scoring base types (A, UT, C, G), xyz (R, 3) sugar node positions
Å, codes one int array of base codes (A=0, U/T=1, C=2, G=3, N=4 unknown) per sequence; "N" is the total length of
the sequences.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from haruspex_engine.nucleic.building.sequence_assign import CONTINUITY_REACH_A
from haruspex_engine.nucleic.building.sequences import UNKNOWN_CODE

#: Probability that the next residue of a path is an extra node (its register waits one residue).
EXTRA_NODE = 0.05
#: Probability that a path leaves the register it is in (runs off its chain) at a step.
LEAVE = 0.02
#: Probability per residue that a path outside any register enters one.
ENTER = 0.1
#: Probability that a path's first residue is in no register.
START_UNPLACED = 0.2
#: Decay of the weight of a lost-residue count away from the count the step length implies.
SKIP_DECAY = 2.0
#: Å: typical distance between the sugar nodes of consecutive residues.
STEP_A = 6.0
#: Weight of "continues a path ending near it" in a path end's prior, shared among those paths.
LINK = 0.5
#: Rounds of belief propagation across trace breaks.
LINK_ROUNDS = 4
#: Probability that a doubtful step (one no phosphate bridges, or one at least DOUBTFUL_STEP_A long) jumps to
#: another place in the sequences (``_Step``).
JUMP = 0.05
#: Å: steps this long or longer are doubtful whether bridged or not.
DOUBTFUL_STEP_A = 8.0

#: State weights (M (N,), I (N,), U scalar).
States = tuple[np.ndarray, np.ndarray, float]


@dataclass(frozen=True)
class _Chains:
    """The concatenated sequences, fixed for a whole reading: group_of (N,) the sequence of each residue
    (``sequence_of``); after_end (N,) each residue's weight as the next residue of a step past a chain's end
    (``_after_end``), computed once rather than at every step."""

    group_of: np.ndarray
    after_end: np.ndarray


@dataclass(frozen=True)
class _Step:
    """One step of a path, from a residue to the next: skips, the probability of 0, 1, … sequence residues lost in
    it given that the chain goes on (``_step_weights``); jump, the probability that it goes on at any residue of the
    sequences instead (JUMP at a doubtful step, else 0)."""

    skips: np.ndarray
    jump: float = 0.0


@dataclass(frozen=True)
class _Pass:
    """One forward–backward pass over a path: posterior (R, N) of M; end: the forward state distribution at its last
    residue (sums to 1); start: the likelihood of its residues given each state of its first residue, up to a
    constant (the backward weights times the first residue's emission)."""

    posterior: np.ndarray
    end: States
    start: States


def emission_ratios(calls: np.ndarray, codes: list[np.ndarray], accuracy: float) -> np.ndarray:
    """(R, N) likelihood ratio, against chance, of each residue's calls ((R, 4) bool: the best-scoring base types)
    if it is each residue of the concatenated sequences; 1 where a residue has no calls or the sequence residue is
    unknown (UNKNOWN_CODE, N)."""
    letters = np.concatenate(codes)
    composition = np.concatenate([np.repeat(_composition(c)[None, :], len(c), axis=0) for c in codes])  # (N, 4)
    chance = np.clip(calls.astype(float) @ composition.T, 1e-6, 1 - 1e-6)  # (R, N)
    ratio = np.where(agreement(calls, letters), accuracy / chance, (1 - accuracy) / (1 - chance))
    counted = calls.any(axis=1)[:, None] & (chance < accuracy) & (letters != UNKNOWN_CODE)[None, :]
    return np.where(counted, ratio, 1.0)


def agreement(calls: np.ndarray, letters: np.ndarray) -> np.ndarray:
    """(R, N) bool: whether each residue's calls ((R, 4) bool) hold each letter (codes (N,); an unknown letter,
    UNKNOWN_CODE, the padded fifth column, is held by none)."""
    return np.pad(calls, ((0, 0), (0, 1)))[:, letters]


def _composition(code: np.ndarray) -> np.ndarray:
    """(4,) fractions of A, U/T, C, G among a sequence's known residues (uniform when it has none)."""
    counts = np.bincount(code[code != UNKNOWN_CODE], minlength=4).astype(float)
    return counts / counts.sum() if counts.sum() else np.full(4, 0.25)


def path_posteriors(xyz: list[np.ndarray], calls: list[np.ndarray], codes: list[np.ndarray], accuracy: float,
                    linked: bool = False, free: list[np.ndarray] | None = None,
                    bridged: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Per path, (R, N) posterior that each residue is each residue of the concatenated sequences (module
    docstring); linked: carry evidence across trace breaks (else every path is read on its own); free: per path,
    (R, N) weights of its residues' M states (a sequence residue other residues hold, less than 1); bridged: per
    path, (R − 1,) bool, whether a phosphate joins the two residues of each step (None: all are joined)."""
    total = sum(len(c) for c in codes)
    group_of = sequence_of(codes)
    chains = _Chains(group_of, _after_end(group_of))
    emits = [emission_ratios(c, codes, accuracy) if len(c) and total else np.ones((len(c), total)) for c in calls]
    if free is not None:
        emits = [e * f for e, f in zip(emits, free)]
    if bridged is None:
        bridged = [np.ones(max(len(x) - 1, 0), dtype=bool) for x in xyz]
    moves = [[_step(d, b) for d, b in zip(np.linalg.norm(np.diff(x, axis=0), axis=1).tolist(), joined.tolist())]
             for x, joined in zip(xyz, bridged)]
    default: States = (np.full(total, (1 - START_UNPLACED) / max(total, 1)), np.zeros(total), START_UNPLACED)
    passes = [_forward_backward(e, m, chains, default, None) for e, m in zip(emits, moves)]
    if not linked:
        return [p.posterior for p in passes]
    before, after = _neighbours(xyz)
    for _ in range(LINK_ROUNDS):
        starts = [_linked_start(default, [(passes[a].end, d) for a, d in before[b]], chains) for b in range(len(xyz))]
        ends = [_linked_end(default, [(passes[c].start, d) for c, d in after[b]], chains) for b in range(len(xyz))]
        passes = [_forward_backward(e, m, chains, s, t) for e, m, s, t in zip(emits, moves, starts, ends)]
    return [p.posterior for p in passes]


def sequence_of(codes: list[np.ndarray]) -> np.ndarray:
    """int (N,): the sequence (index into ``codes``) of each residue of the concatenated sequences."""
    return np.concatenate([np.full(len(c), g) for g, c in enumerate(codes)] + [np.zeros(0, int)])


def _neighbours(xyz: list[np.ndarray]) -> tuple[list[list[tuple[int, float]]], list[list[tuple[int, float]]]]:
    """Per path: the paths whose 3′ end lies within CONTINUITY_REACH_A of its 5′ end (before it) and those whose 5′
    end lies that near its 3′ end (after it), with the distance, Å."""
    paths = [k for k, x in enumerate(xyz) if len(x)]
    before: list[list[tuple[int, float]]] = [[] for _ in xyz]
    after: list[list[tuple[int, float]]] = [[] for _ in xyz]
    if len(paths) < 2:
        return before, after
    firsts = np.array([xyz[k][0] for k in paths])
    lasts = np.array([xyz[k][-1] for k in paths])
    for i, candidates in enumerate(cKDTree(lasts).query_ball_point(firsts, CONTINUITY_REACH_A)):
        for j in candidates:
            if i != j:
                distance = float(np.linalg.norm(firsts[i] - lasts[j]))
                before[paths[i]].append((paths[j], distance))
                after[paths[j]].append((paths[i], distance))
    return before, after


def _linked_start(default: States, previous: list[tuple[States, float]], chains: _Chains) -> States:
    """Prior of a path's first residue: the default start, with weight LINK spread over continuing each path that
    ends near it (its end distribution carried across the break)."""
    if not previous:
        return default
    share = LINK / len(previous)
    m, i, u = (1 - LINK) * default[0], (1 - LINK) * default[1], (1 - LINK) * default[2]
    for (end_m, end_i, end_u), distance in previous:
        step_m, step_i, step_u = _advance(end_m, end_i, end_u, _Step(_step_weights(distance)), chains)
        m, i, u = m + share * step_m, i + share * step_i, u + share * step_u
    return m, i, u


def _linked_end(default: States, following: list[tuple[States, float]], chains: _Chains) -> States:
    """Backward weights of a path's last residue: 1 − LINK, plus LINK spread over the likelihood ratio of each path
    starting near it, continuing it against starting afresh."""
    total = len(chains.group_of)
    if not following:
        return np.ones(total), np.ones(total), 1.0
    share = LINK / len(following)
    m, i, u = np.full(total, 1 - LINK), np.full(total, 1 - LINK), 1 - LINK
    for (start_m, start_i, start_u), distance in following:
        fresh = float(default[0] @ start_m + default[1] @ start_i + default[2] * start_u)
        on_m, on_i, on_u = _retreat(start_m, start_i, start_u, _Step(_step_weights(distance)), chains)
        m, i, u = m + share * on_m / fresh, i + share * on_i / fresh, u + share * on_u / fresh
    return m, i, u


def _forward_backward(emit: np.ndarray, moves: list[_Step], chains: _Chains, start: States,
                      end: States | None) -> _Pass:
    """Forward–backward over one path: emit (R, N) emission ratios of M, moves its steps, start the prior of the
    first residue's states, end the backward weights of the last (None: all 1)."""
    length, total = emit.shape
    if length == 0 or total == 0:
        ones = np.ones(total)
        return _Pass(np.zeros((length, total)), (np.zeros(total), np.zeros(total), 1.0), (ones, ones, 1.0))
    forward = []
    m, i, u = start[0] * emit[0], start[1].copy(), start[2]
    for k in range(length):
        if k:
            m, i, u = _advance(*forward[-1], moves[k - 1], chains)
            m = m * emit[k]
        scale = float(m.sum() + i.sum() + u)
        forward.append((m / scale, i / scale, u / scale))
    back_m, back_i, back_u = (np.ones(total), np.ones(total), 1.0) if end is None else end
    posterior = np.zeros((length, total))
    for k in range(length - 1, -1, -1):
        if k < length - 1:
            back_m, back_i, back_u = _retreat(back_m * emit[k + 1], back_i, back_u, moves[k], chains)
        f_m, f_i, f_u = forward[k]
        norm = float(f_m @ back_m + f_i @ back_i + f_u * back_u)
        back_m, back_i, back_u = back_m / norm, back_i / norm, back_u / norm
        posterior[k] = f_m * back_m
    return _Pass(posterior, forward[-1], (back_m * emit[0], back_i, back_u))


def _step(distance: float, bridged: bool) -> _Step:
    """A step of ``distance`` Å between two residues that a phosphate joins or not (``bridged``)."""
    doubtful = not bridged or distance >= DOUBTFUL_STEP_A
    return _Step(_step_weights(distance), JUMP if doubtful else 0.0)


def _step_weights(distance: float) -> np.ndarray:
    """Probability of 0, 1, … sequence residues lost in a step of ``distance`` Å, given that the chain goes on."""
    implied = max(1, round(distance / STEP_A)) - 1
    skips = np.arange(implied + 2)
    weights = np.exp(-SKIP_DECAY * np.abs(skips - implied))
    return weights / weights.sum()


def _advance(m: np.ndarray, i: np.ndarray, u: float, step: _Step, chains: _Chains) -> States:
    """State weights at the next residue from those at this one (before the next emission)."""
    group_of = chains.group_of
    total = len(group_of)
    on = m + i
    go = 1 - EXTRA_NODE - LEAVE - step.jump
    skips = step.skips
    new_m = np.full(total, (u * ENTER + step.jump * float(on.sum())) / total)
    for shift, weight in enumerate(skips.tolist(), start=1):
        if shift >= total:
            break
        same = group_of[shift:] == group_of[:-shift]
        new_m[shift:] += go * weight * on[:-shift] * same
    new_m += go * float(on @ _past_end(skips, group_of)) * chains.after_end
    return new_m, EXTRA_NODE * on, u * (1 - ENTER) + LEAVE * float(on.sum())


def _retreat(m: np.ndarray, i: np.ndarray, u: float, step: _Step, chains: _Chains) -> States:
    """Backward weights at this residue from those at the next (``m`` already times the next emission); M and I
    leave a residue alike."""
    group_of = chains.group_of
    total = len(group_of)
    go = 1 - EXTRA_NODE - LEAVE - step.jump
    skips = step.skips
    anywhere = step.jump * float(m.sum()) / total
    on = EXTRA_NODE * i + LEAVE * u + anywhere + go * float(m @ chains.after_end) * _past_end(skips, group_of)
    for shift, weight in enumerate(skips.tolist(), start=1):
        if shift >= total:
            break
        same = group_of[shift:] == group_of[:-shift]
        on[:-shift] += go * weight * m[shift:] * same
    return on, on.copy(), (1 - ENTER) * u + ENTER / total * float(m.sum())


def _after_end(group_of: np.ndarray) -> np.ndarray:
    """(N,) weight of each sequence residue as the next residue of a step past the end of a chain: ENTER / N
    anywhere, plus ENTER shared among the sequences' first residues."""
    total = len(group_of)
    first = np.r_[True, group_of[1:] != group_of[:-1]] if total else np.zeros(0, bool)
    return ENTER / total + ENTER * first / max(int(first.sum()), 1)


def _past_end(skips: np.ndarray, group_of: np.ndarray) -> np.ndarray:
    """(N,) weight of the steps from each sequence residue that run past the last residue of its sequence (its chain
    has ended)."""
    total = len(group_of)
    past = np.zeros(total)
    for shift, weight in enumerate(skips.tolist(), start=1):
        past[max(total - shift, 0):] += weight
        if shift < total:
            past[:-shift] += weight * (group_of[shift:] != group_of[:-shift])
    return past
