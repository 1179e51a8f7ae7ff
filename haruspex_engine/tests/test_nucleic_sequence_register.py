"""The register of a path's residues (sequence_register): the evidence test, filling and carrying the register."""
from __future__ import annotations

import numpy as np

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
    return place_paths([xyz], [scores], [labels], codes, [1] * len(codes))[0]


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
    assert (register.kept_runs, register.rejected_runs) == (0, 1)


def test_a_confident_reading_is_kept_and_carried_to_the_path_ends():
    """14 residues are residues 5..18, the map confuses two of them; the reading covers residues 2..11 only."""
    calls = CODES[5:19].copy()
    calls[[3, 9]] = (calls[[3, 9]] + 1) % 4
    register = place_path(_line([6.0] * 13), _scores(calls), [_reading(list(range(2, 12)), list(range(7, 17)))],
                          [CODES])
    assert register.kept_runs == 1
    np.testing.assert_array_equal(register.index, np.arange(5, 19))
    assert (register.group == 0).all()


def test_residues_between_two_readings_take_the_numbers_between_when_the_geometry_holds_the_gap():
    """Residues 0..9 then 11..19 (residue 10 lost where the step is 12 Å): readings cover 0..7 and 13..19."""
    truth = np.r_[0:10, 11:20]
    xyz = _line([6.0] * 9 + [12.0] + [6.0] * 8)
    readings = [_reading(list(range(8)), list(range(8))), _reading(list(range(12, 19)), list(range(13, 20)))]
    register = place_path(xyz, _scores(CODES[truth]), readings, [CODES])
    np.testing.assert_array_equal(register.index, truth)


def test_a_register_gap_too_small_for_the_residues_between_leaves_one_unplaced():
    """Readings put residues 0..7 at 0..7 and 12..18 at 11..17: four residues between for three numbers."""
    calls = CODES[np.r_[0:12, 11:18]]
    readings = [_reading(list(range(8)), list(range(8))), _reading(list(range(12, 19)), list(range(11, 18)))]
    register = place_path(_line([6.0] * 18), _scores(calls), readings, [CODES])
    np.testing.assert_array_equal(register.index[:11], np.arange(11))  # carried on from the first reading
    assert register.group[11] == -1 and register.index[11] == -1
    np.testing.assert_array_equal(register.index[12:], np.arange(11, 18))


def test_a_short_reading_is_placed_in_a_short_sequence_but_not_in_a_long_one():
    """Five residues agreeing perfectly: enough among 40 registers, chance among 2,000."""
    reading = [_reading([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])]
    long_codes = np.concatenate([CODES, RNG.integers(0, 4, 1960)])
    scores = _scores(CODES[:5])
    assert (place_path(_line([6.0] * 4), scores, reading, [CODES]).group == 0).all()
    assert (place_path(_line([6.0] * 4), scores, reading, [long_codes]).group == -1).all()


def test_an_unplaced_path_continues_a_placed_one_across_a_trace_break():
    """Path 0 holds residues 0..9, path 1 (no reading of its own) residues 11..16, 12 Å on (residue 10 lost)."""
    calls = CODES[np.r_[0:10, 11:17]]
    xyz = [_line([6.0] * 9), _line([6.0] * 5) + [66.0, 0.0, 0.0]]
    registers = place_paths(xyz, [_scores(calls[:10]), _scores(calls[10:])],
                            [[_reading(list(range(10)), list(range(10)))], []], [CODES], [1])
    np.testing.assert_array_equal(registers[1].index, np.arange(11, 17))
    assert registers[1].bridged == 6 and registers[0].bridged == 0


def test_a_stretch_read_off_by_one_inside_a_good_run_is_put_back_in_step():
    """Residues 0..13 on an even 6 Å trace; two confused calls lure the alignment into skipping residue 8, reading
    residues 8..13 as 9..14. No step can hide a residue, so the stretch takes the numbers the run carries on to."""
    calls = CODES[:14].copy()
    calls[[8, 9]] = CODES[[9, 10]]
    reading = [_reading(list(range(14)), list(range(8)) + list(range(9, 15)))]
    register = place_path(_line([6.0] * 13), _scores(calls), reading, [CODES])
    np.testing.assert_array_equal(register.index, np.arange(14))


def test_a_chain_read_end_to_end_is_placed_even_in_a_repeat_rich_sequence():
    """A 22-nt telomeric repeat (AGGGTT)₃AGGG read end to end with two confused bases: its span fits the sequence in
    one register only, so the reading stands (counted as 22 registers, the repeats made it look like chance); the
    same residues read as 10 of them (13 registers of that span) are chance."""
    codes = np.array(["AUCG".index(b) for b in "AGGGUUAGGGUUAGGGUUAGGG"])
    calls = codes.copy()
    calls[[4, 15]] = 2  # confused with C
    whole = place_path(_line([6.0] * 21), _scores(calls), [_reading(list(range(22)), list(range(22)))], [codes])
    np.testing.assert_array_equal(whole.index, np.arange(22))
    part = place_path(_line([6.0] * 9), _scores(calls[6:16]), [_reading(list(range(10)), list(range(6, 16)))],
                      [codes])
    assert (part.group == -1).all()


def test_a_path_that_runs_off_its_chain_at_an_end_keeps_only_the_part_that_reads_right():
    """30 residues read as residues 5..34 in one reading; the first 24 are residues 5..28 (one confused), the last 6
    lie on another strand and disagree with residues 29..34 everywhere: the reading holds as a whole, its end not."""
    calls = np.r_[CODES[5:29], (CODES[29:35] + 1) % 4]
    calls[6] = (calls[6] + 2) % 4
    register = place_path(_line([6.0] * 29), _scores(calls), [_reading(list(range(30)), list(range(5, 35)))],
                          [CODES])
    assert register.kept_runs == 1
    np.testing.assert_array_equal(register.index[:24], np.arange(5, 29))
    # carrying the register on (step 4) may take back the first of them, at its prior odds; not the rest
    assert (register.index[25:] == -1).all() and (register.group[25:] == -1).all() and register.index[24] in (-1, 29)
