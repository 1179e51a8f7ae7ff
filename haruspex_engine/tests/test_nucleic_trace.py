"""Backbone tracing by vehicle routing on hand-made sugar graphs: order, chain breaks, determinism, budget report."""
from __future__ import annotations

import numpy as np
import pytest

from haruspex_engine.nucleic.building.trace import split_at_jumps, trace_backbone


def _helix(n: int, shift=(0.0, 0.0, 0.0)) -> np.ndarray:
    """n nodes 6 Å apart on a helix (radius 9 Å, rise 2.8 Å), like consecutive C4' atoms of A-form RNA."""
    t = np.arange(n)
    return np.stack([9 * np.cos(0.6 * t), 9 * np.sin(0.6 * t), 2.8 * t], axis=1) + np.asarray(shift)


def _chain_edges(first: int, n: int, missing: tuple[int, ...] = ()) -> list[tuple[int, int]]:
    return [(first + i, first + i + 1) for i in range(n - 1) if i not in missing]


@pytest.fixture(scope="module")
def scene():
    """Chain 1: nodes 0-29. Chain 2: nodes 30-59, its second half moved 15 Å away (no edge 44-45).
    Node indices are shuffled so the solver cannot follow index order."""
    second = _helix(30, (60, 0, 0))
    second[15:] += (0, 0, 15)
    xyz = np.concatenate([_helix(30), second])
    edges = np.array(_chain_edges(0, 30) + _chain_edges(30, 30, missing=(14,)))
    costs = np.linalg.norm(xyz[edges[:, 0]] - xyz[edges[:, 1]], axis=1) + 1.0
    order = np.random.default_rng(0).permutation(len(xyz))
    where = np.argsort(order)  # original node -> shuffled index
    return xyz[order], where[edges], costs, order


def _as_original(paths, order) -> list[list[int]]:
    """Paths in original node numbers, each read in increasing order (a chain's direction is not decided here)."""
    out = [order[p].tolist() for p in paths]
    return sorted((p if p[0] < p[-1] else p[::-1]) for p in out)


def test_chains_are_traced_in_order_and_broken_at_the_gap(scene) -> None:
    xyz, edges, costs, order = scene
    result = trace_backbone(xyz, edges, costs, solution_limit=200)
    assert _as_original(result.paths, order) == [list(range(0, 30)), list(range(30, 45)), list(range(45, 60))]
    # three components (the missing edge splits chain 2), each routed with its own limit of 200 solutions
    assert result.dropped == 0 and result.stopped_by == "solution limit" and result.solutions == 3 * 200


def test_the_same_graph_gives_the_same_paths(scene) -> None:
    xyz, edges, costs, _ = scene
    first = trace_backbone(xyz, edges, costs, solution_limit=100)
    again = trace_backbone(xyz, edges, costs, solution_limit=100)
    assert [p.tolist() for p in first.paths] == [p.tolist() for p in again.paths]
    assert first.objective == again.objective


def test_a_time_limit_is_reported() -> None:
    xyz = _helix(120)
    edges = np.array(_chain_edges(0, 120))
    result = trace_backbone(xyz, edges, np.full(len(edges), 7.0), solution_limit=10**9, time_limit_s=1.0)
    assert result.stopped_by == "time limit" and 0.9 <= result.seconds < 5.0
    assert sum(len(p) for p in result.paths) == 120


def test_too_few_nodes_give_no_path() -> None:
    result = trace_backbone(_helix(2), np.array([[0, 1]]), np.array([7.0]))
    assert result.paths == () and result.dropped == 2


def test_split_at_jumps() -> None:
    xyz = np.array([[0, 0, 0], [5, 0, 0], [16, 0, 0], [21, 0, 0], [26, 0, 0]], float)
    pieces = split_at_jumps(np.arange(5), xyz, 10.0)
    assert [p.tolist() for p in pieces] == [[0, 1], [2, 3, 4]]


@pytest.mark.parametrize("edges, costs", [([[0, 5]], [1.0]), ([[0, 1]], [0.0]), ([[0, 1]], [1.0, 2.0])])
def test_bad_graphs_are_refused(edges, costs) -> None:
    with pytest.raises(ValueError):
        trace_backbone(_helix(4), np.array(edges), np.array(costs))
