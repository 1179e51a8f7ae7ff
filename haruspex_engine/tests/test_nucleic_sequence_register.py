"""The register of the paths' residues (sequence_register, register_posterior): placement by posterior, extra nodes
and lost residues, trace breaks, repeats, paths running off their chain."""
from __future__ import annotations

import numpy as np

from haruspex_engine.nucleic.building import register_posterior
from haruspex_engine.nucleic.building.sequence_register import PathRegister, place_paths

RNG = np.random.default_rng(7)
CODES = RNG.integers(0, 4, 40)


def _line(steps: list[float]) -> np.ndarray:
    """Sugar nodes (len(steps) + 1, 3) along x, Å, the given distances apart."""
    return np.array([[x, 0.0, 0.0] for x in np.concatenate([[0.0], np.cumsum(steps)])])


def _scores(calls: np.ndarray) -> np.ndarray:
    """(R, 4) base-type scores calling base ``calls`` at each residue with full weight (3)."""
    return 3.0 * np.eye(4)[calls]


def place_path(xyz: np.ndarray, scores: np.ndarray, labels: list, codes: list[np.ndarray]) -> PathRegister:
    """place_paths on one path, one copy of each sequence."""
    return place_paths([xyz], [scores], [labels], codes, [1] * len(codes)).paths[0]


def _reading(positions: list[int], residues: list[int]) -> tuple[np.ndarray, np.ndarray, int]:
    """A fragment's labels: residues at ``positions`` read as sequence indices ``residues`` of group 0."""
    return np.array(positions), np.array(residues), 0


def test_a_reading_at_noise_level_keeps_the_maps_letters():
    """Eight residues read as residues 20..27 while the map calls unrelated bases: the agreement is chance."""
    calls = (CODES[20:28] + 1 + RNG.integers(0, 3, 8)) % 4
    calls[:2] = CODES[20:22]  # two agreements, about what chance gives
    register = place_path(_line([6.0] * 7), _scores(calls), [_reading(list(range(8)), list(range(20, 28)))],
                          [CODES])
    assert (register.group == -1).all() and (register.index == -1).all()
    assert (register.confirmed, register.overruled) == (0, 8)


def test_a_confident_path_is_placed_end_to_end_whatever_the_fragments_covered():
    """14 residues are residues 5..18, the map confuses two of them; the fragment covers residues 2..11 only."""
    calls = CODES[5:19].copy()
    calls[[3, 9]] = (calls[[3, 9]] + 1) % 4
    register = place_path(_line([6.0] * 13), _scores(calls), [_reading(list(range(2, 12)), list(range(7, 17)))],
                          [CODES])
    np.testing.assert_array_equal(register.index, np.arange(5, 19))
    assert (register.group == 0).all()
    assert (register.confirmed, register.overruled) == (10, 0)


def test_a_residue_lost_where_the_step_is_long_skips_a_number():
    """Residues 0..9 then 11..19 (residue 10 lost where the step is 12 Å), no fragment at all."""
    truth = np.r_[0:10, 11:20]
    xyz = _line([6.0] * 9 + [12.0] + [6.0] * 8)
    register = place_path(xyz, _scores(CODES[truth]), [], [CODES])
    np.testing.assert_array_equal(register.index, truth)


def test_an_extra_node_takes_no_number_and_the_register_goes_on():
    """19 residues on an even trace where residues 11 and 12 are one nucleotide (two nodes, both calling residue
    11's base): one of them is residue 11, the other unplaced, and the rest keep their numbers."""
    calls = CODES[np.r_[0:12, 11:18]]
    register = place_path(_line([6.0] * 18), _scores(calls), [], [CODES])
    np.testing.assert_array_equal(register.index[:11], np.arange(11))
    assert sorted(register.index[11:13].tolist()) == [-1, 11]
    np.testing.assert_array_equal(register.index[13:], np.arange(12, 18))


def test_a_short_reading_is_placed_in_a_short_sequence_but_not_in_a_long_one():
    """Five residues agreeing perfectly: enough among 40 registers, chance among 2,000."""
    long_codes = np.concatenate([CODES, RNG.integers(0, 4, 1960)])
    scores = _scores(CODES[:5])
    assert (place_path(_line([6.0] * 4), scores, [], [CODES]).group == 0).all()
    assert (place_path(_line([6.0] * 4), scores, [], [long_codes]).group == -1).all()


def test_a_path_too_short_to_place_alone_is_placed_where_it_continues_a_placed_one_across_a_trace_break():
    """In a 2,000-nt sequence, path 0 holds residues 0..11 and path 1 residues 13..16, 12 Å on (residue 12 lost):
    four residues alone are chance among 2,000 registers, but as path 0's continuation they are placed. The same
    path 1 30 Å away continues nothing and stays unplaced."""
    codes = [np.concatenate([CODES, RNG.integers(0, 4, 1960)])]
    first = _line([6.0] * 11)
    second = _line([6.0] * 3) + [first[-1, 0] + 12.0, 0.0, 0.0]
    scores = [_scores(codes[0][:12]), _scores(codes[0][13:17])]
    near = place_paths([first, second], scores, [[], []], codes, [1]).paths
    np.testing.assert_array_equal(near[0].index, np.arange(12))
    np.testing.assert_array_equal(near[1].index, np.arange(13, 17))
    assert near[1].linked == 4 and near[0].linked == 0
    far = place_paths([first, second + [18.0, 0.0, 0.0]], scores, [[], []], codes, [1]).paths
    assert (far[1].group == -1).all()


def test_a_stretch_read_off_by_one_by_the_fragments_is_placed_in_step():
    """Residues 0..13 on an even 6 Å trace; two confused calls lured the fragment into skipping residue 8, reading
    residues 8..13 as 9..14. No step can hide a residue and the other calls read in step: the posterior places them
    in step, and the fragment's off-by-one labels count as overruled."""
    calls = CODES[:14].copy()
    calls[[8, 9]] = CODES[[9, 10]]
    reading = [_reading(list(range(14)), list(range(8)) + list(range(9, 15)))]
    register = place_path(_line([6.0] * 13), _scores(calls), reading, [CODES])
    np.testing.assert_array_equal(register.index, np.arange(14))
    assert (register.confirmed, register.overruled) == (8, 6)


def test_a_repeat_is_placed_only_where_the_reading_spans_it():
    """A 22-nt telomeric repeat (AGGGTT)₃AGGG read end to end with two confused bases: its span fits the sequence in
    one register only, so it is placed; the same residues read as 10 of them fit three registers and stay
    unplaced."""
    codes = np.array(["AUCG".index(b) for b in "AGGGUUAGGGUUAGGGUUAGGG"])
    calls = codes.copy()
    calls[[4, 15]] = 2  # confused with C
    whole = place_path(_line([6.0] * 21), _scores(calls), [], [codes])
    np.testing.assert_array_equal(whole.index, np.arange(22))
    part = place_path(_line([6.0] * 9), _scores(calls[6:16]), [], [codes])
    assert (part.group == -1).all()


def test_a_ring_that_closes_on_its_own_ends_in_a_repeat_is_placed_whole():
    """The 22-nt telomeric repeat folded so that its 3′ end touches its 5′ end (a G-quadruplex, 1KF1), traced as one
    path from residue 16 round to residue 15, 6 Å steps throughout. The register breaks where the chain ends, and
    no stretch is read twice, so every residue keeps its number; a path cannot read residues 0..15 as 6..21 again."""
    codes = np.array(["AUCG".index(b) for b in "AGGGUUAGGGUUAGGGUUAGGG"])
    order = np.r_[16:22, 0:16]
    register = place_path(_line([6.0] * 21), _scores(codes[order]), [], [codes])
    np.testing.assert_array_equal(register.index, order)


def test_a_ring_that_closes_on_its_own_ends_is_read_across_its_ends_with_a_lost_residue_and_a_confused_call(
        monkeypatch):
    """The same ring as traced on a clean 1KF1 map: residues 14..21, then 0, then (a 9.5 Å step that loses residue
    1) 2..13, residue 0's A called G. Crossing the chain's end onto its first residue is the likely continuation
    (``_after_end``), so the whole ring keeps its numbers; entering the first residue only at the chance of entering
    anywhere, the path read residues 2..13 six off (as 8..19, the TTAGGG repeat) and left most of the rest
    unplaced."""
    codes = np.array(["AUCG".index(b) for b in "AGGGUUAGGGUUAGGGUUAGGG"])
    order = np.r_[14:22, 0, 2:14]
    calls = codes[order]
    calls[8] = 3
    steps = [6.0] * 20
    steps[8] = 9.5
    np.testing.assert_array_equal(place_path(_line(steps), _scores(calls), [], [codes]).index, order)
    monkeypatch.setattr(register_posterior, "_after_end",
                        lambda group_of: np.full(len(group_of), register_posterior.ENTER / len(group_of)))
    assert (place_path(_line(steps), _scores(calls), [], [codes]).index[9:] != order[9:]).all()


def test_a_path_that_runs_from_one_chains_end_onto_another_chains_start_loses_no_residue():
    """Residues 32..39 of one 40-nt chain, then at the next 6 Å step residues 0..11 of a second, unrelated chain:
    all 20 are placed, the one after the jump included (it enters a register at once: the first chain has
    ended)."""
    other = RNG.integers(0, 4, 30)
    calls = np.r_[CODES[32:40], other[:12]]
    register = place_paths([_line([6.0] * 19)], [_scores(calls)], [[]], [CODES, other], [1, 1]).paths[0]
    np.testing.assert_array_equal(register.group, np.r_[[0] * 8, [1] * 12])
    np.testing.assert_array_equal(register.index, np.r_[32:40, 0:12])


def test_a_path_that_runs_off_its_chain_at_an_end_keeps_only_the_part_that_reads_right():
    """30 residues read as residues 5..34 in one fragment; the first 24 are residues 5..28 (one confused), the last
    6 lie on another strand and disagree with residues 29..34 everywhere: only the first 24 are placed."""
    calls = np.r_[CODES[5:29], (CODES[29:35] + 1) % 4]
    calls[6] = (calls[6] + 2) % 4
    register = place_path(_line([6.0] * 29), _scores(calls), [_reading(list(range(30)), list(range(5, 35)))],
                          [CODES])
    np.testing.assert_array_equal(register.index[:24], np.arange(5, 29))
    assert (register.index[25:] == -1).all() and (register.group[25:] == -1).all() and register.index[24] in (-1, 29)


def test_two_copies_of_a_sequence_may_each_hold_a_number_three_may_not():
    """Three paths read the same 12 residues perfectly; the sequence has two chains: two paths keep the numbers."""
    xyz = [_line([6.0] * 11) + [0.0, 40.0 * k, 0.0] for k in range(3)]
    scores = [_scores(CODES[:12])] * 3
    placed = [int((r.group >= 0).sum()) for r in place_paths(xyz, scores, [[]] * 3, [CODES], [2]).paths]
    assert sorted(placed) == [0, 12, 12]


def test_the_call_accuracy_is_estimated_from_the_data():
    """60 residues of a path read residues 0..59 of an 80-nt sequence with every fifth call wrong: about 0.8."""
    codes = [RNG.integers(0, 4, 80)]
    calls = codes[0][:60].copy()
    calls[::5] = (calls[::5] + 1) % 4
    registers = place_paths([_line([6.0] * 59)], [_scores(calls)], [[]], codes, [1])
    assert abs(registers.call_accuracy - 0.8) < 0.05
    np.testing.assert_array_equal(registers.paths[0].index, np.arange(60))


def test_calls_that_agree_with_the_sequence_only_by_chance_do_not_talk_the_call_accuracy_up():
    """40 fixed cases of four 12-residue paths with random calls against a random 200-nt sequence. The posterior
    favours the alignments that agree by chance, so an estimate started high stays high on them (mean 0.61, and 10
    of the 40 cases placed residues, from START_ACCURACY 0.75 in three rounds); started low it stays near its
    floor and places less."""
    accuracies, placing = [], 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        codes = [rng.integers(0, 4, 200)]
        xyz = [_line([6.0] * 11) + [0.0, 40.0 * k, 0.0] for k in range(4)]
        scores = [_scores(rng.integers(0, 4, 12)) for _ in range(4)]
        registers = place_paths(xyz, scores, [[]] * 4, codes, [1])
        accuracies.append(registers.call_accuracy)
        placing += any((path.group >= 0).any() for path in registers.paths)
    assert np.mean(accuracies) < 0.58
    assert placing <= 7


def test_a_path_that_runs_from_one_chain_onto_another_copy_keeps_both_readings():
    """Two chains of one 40-nt sequence: a path reads residues 30..39 of one, then (12 Å on) residues 0..14 of the
    other. Its numbers fall from 39 to 0, and both stretches keep their numbers (the two residues at the jump,
    where the reading leaves one register for another, may stay unplaced)."""
    calls = CODES[np.r_[30:40, 0:15]]
    xyz = _line([6.0] * 9 + [12.0] + [6.0] * 14)
    register = place_paths([xyz], [_scores(calls)], [[]], [CODES], [2]).paths[0]
    np.testing.assert_array_equal(register.index[:9], np.arange(30, 39))
    np.testing.assert_array_equal(register.index[11:], np.arange(1, 15))
    assert register.index[9] in (-1, 39) and register.index[10] in (-1, 0)


def test_two_strands_that_read_alike_go_to_the_two_chains_not_both_to_one():
    """Two 20-nt chain sequences differ only at their first residue (a near-palindromic duplex). Path 0 reads all of
    the first; path 1 reads residues 2..19, which both sequences hold: on its own it could be either, but the first
    chain's residues are path 0's, so path 1 goes to the second chain."""
    first = RNG.integers(0, 4, 20)
    second = first.copy()
    second[0] = (second[0] + 1) % 4
    xyz = [_line([6.0] * 19), _line([6.0] * 17) + [0.0, 40.0, 0.0]]
    registers = place_paths(xyz, [_scores(first), _scores(first[2:])], [[], []], [first, second], [1, 1]).paths
    assert (registers[0].group == 0).all()
    np.testing.assert_array_equal(registers[0].index, np.arange(20))
    assert (registers[1].group == 1).all()
    np.testing.assert_array_equal(registers[1].index, np.arange(2, 20))


def test_an_unknown_residue_in_the_sequence_keeps_the_register_of_the_residues_after_it():
    """Residue 10 of the sequence is N (unknown): a path over residues 4..17 is placed at 4..17, the residue at the N
    included (its calls neither agree nor disagree with an N), and the reading is as sure as without the N."""
    codes = CODES.copy()
    codes[10] = 4
    calls = CODES[4:18]
    register = place_path(_line([6.0] * 13), _scores(calls), [], [codes])
    np.testing.assert_array_equal(register.index, np.arange(4, 18))


def test_a_map_that_tells_only_purines_from_pyrimidines_still_places_a_path():
    """16 residues are residues 30..45 of an 80-nt sequence; at each the map scores the two bases of its class
    (A/G purines, U/C pyrimidines) 1.0 and 0.8 in random order and the others 0.1, as a network that sees a base's
    size but not its edges does. Calling only the best type would be a coin toss within the class."""
    codes = [np.random.default_rng(3).integers(0, 4, 80)]
    partner = np.array([3, 2, 1, 0])  # A<->G, U<->C in (A, UT, C, G) order
    truth = codes[0][30:46]
    scores = np.full((16, 4), 0.1)
    first = np.random.default_rng(4).random(16) < 0.5
    scores[np.arange(16), truth] = np.where(first, 1.0, 0.8)
    scores[np.arange(16), partner[truth]] = np.where(first, 0.8, 1.0)
    register = place_path(_line([6.0] * 15), scores, [], codes)
    np.testing.assert_array_equal(register.index, np.arange(30, 46))


def test_a_path_that_jumps_where_no_phosphate_joins_two_residues_keeps_both_readings_whole():
    """A path reads residues 5..12, then, across a 6 Å step no phosphate bridges (the trace went on along another
    strand), residues 35..42 of a 60-nt sequence. Told the step is not bridged, the reading may jump there (JUMP)
    and every residue is placed; read as if every step were bridged, the jump goes through the unplaced state and
    costs the residues beside it."""
    codes = np.random.default_rng(3).integers(0, 4, 60)
    truth = np.r_[5:13, 35:43]
    xyz, scores = _line([6.0] * 15), _scores(codes[truth])
    bridged = np.ones(15, dtype=bool)
    bridged[7] = False
    told = place_paths([xyz], [scores], [[]], [codes], [1], [bridged]).paths[0]
    np.testing.assert_array_equal(told.index, truth)
    untold = place_paths([xyz], [scores], [[]], [codes], [1]).paths[0]
    assert np.count_nonzero(untold.index == truth) < len(truth)
