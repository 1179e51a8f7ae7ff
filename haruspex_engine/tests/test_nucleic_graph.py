"""The sugar graph: touching nodes joined, steps across bases pruned, gaps bridged at a penalty, costs, edges
without a phosphate between their sugars dearer."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.spatial import cKDTree

from haruspex_engine.nucleic.building.graph import (
    BRIDGE_MARGIN_A,
    BRIDGE_SUM_A,
    UNBRIDGED_PENALTY,
    bridged_edges,
    build_sugar_graph,
    smoothed_sugar,
)
from haruspex_engine.nucleic.building.node_evidence import filter_nodes
from haruspex_engine.nucleic.building.nodes import NodeSet, class_weights, cluster_nodes
from haruspex_engine.nucleic.building.trace import trace_backbone
from haruspex_engine.nucleic.classes import STAGE2_CLASSES
from haruspex_engine.testing.oracle_maps import CLEAN, oracle_maps
from haruspex_engine.testing.rna_models import deposited_rna, ideal_rna

SHAPE = (12, 12, 40)
ORIGIN = (100.0, 50.0, -20.0)


def _line_nodes(xs: list[int], touching: bool) -> NodeSet:
    """Sugar nodes at x = xs (voxels) on the line y = z = 6, each owning the voxels up to halfway to its neighbours
    (touching) or only its own voxel (not touching)."""
    voxels, members = [], []
    for i, x in enumerate(xs):
        lo = (x + xs[i - 1]) // 2 + 1 if i and touching else x
        hi = (x + xs[i + 1]) // 2 if i + 1 < len(xs) and touching else x
        for v in range(lo, hi + 1):
            voxels.append((6, 6, v))
            members.append(i)
    xyz = np.array([[ORIGIN[0] + x, ORIGIN[1] + 6, ORIGIN[2] + 6] for x in xs], float)
    return NodeSet("sugar", xyz, np.full(len(xs), 1.01), np.array(voxels), np.array(members), SHAPE)


def _maps(sugar_line: float = 1.0) -> np.ndarray:
    stage2 = np.zeros((8,) + SHAPE, np.float32)
    stage2[STAGE2_CLASSES.index("sugar"), 6, 6, :] = sugar_line
    return stage2


def test_touching_nodes_are_joined_and_base_crossings_pruned() -> None:
    nodes = _line_nodes([5, 11, 17, 23], touching=True)
    stage2 = _maps()
    graph = build_sugar_graph(nodes, stage2, stage2[0], ORIGIN)
    assert graph.edges.tolist() == [[0, 1], [1, 2], [2, 3]] and not graph.extended.any()
    np.testing.assert_allclose(graph.length, 6.0)
    stage2[STAGE2_CLASSES.index("base"), 6, 6, 14] = 0.7  # a base between nodes 1 and 2 (sampled at x = 14.6)
    stage2[STAGE2_CLASSES.index("base"), 6, 6, 15] = 0.7
    pruned = build_sugar_graph(nodes, stage2, stage2[0], ORIGIN)
    assert pruned.edges.tolist() == [[0, 1], [2, 3]]


def test_a_step_whose_sugars_share_a_phosphate_is_kept_where_its_line_grazes_a_base() -> None:
    """The straight line between two consecutive sugars can pass a base (its own nucleotides' or a neighbour's)
    while the backbone runs through the phosphate they share: such a step is not pruned, nor refused as an
    extension; a base crossing with no shared phosphate still is."""
    stage2 = _maps()
    stage2[STAGE2_CLASSES.index("base"), 6, 6, 14:16] = 0.7  # a base on the line between nodes 1 and 2
    between_1_2 = np.array([[ORIGIN[0] + 14.0, ORIGIN[1] + 8.5, ORIGIN[2] + 6.0]])
    for touching in (True, False):
        nodes = _line_nodes([5, 11, 17, 23], touching=touching)
        kept = build_sugar_graph(nodes, stage2, stage2[0], ORIGIN, phosphate_xyz=between_1_2)
        pruned = build_sugar_graph(nodes, stage2, stage2[0], ORIGIN, phosphate_xyz=np.empty((0, 3)))
        assert [1, 2] in kept.edges.tolist() and kept.bridged[kept.edges.tolist().index([1, 2])]
        assert [1, 2] not in pruned.edges.tolist() and [0, 1] in pruned.edges.tolist()


def test_gaps_are_bridged_at_three_times_their_length_only_through_sugar() -> None:
    nodes = _line_nodes([5, 11, 17], touching=False)
    graph = build_sugar_graph(nodes, _maps(), _maps()[0], ORIGIN)
    assert graph.edges.tolist() == [[0, 1], [1, 2]] and graph.extended.all()  # 12 Å pair 0-2 is too long
    np.testing.assert_allclose(graph.length, 18.0)
    weak = _maps(sugar_line=0.05)  # sugar probability ≤ 0.1 along the gap: no bridge
    assert len(build_sugar_graph(nodes, weak, weak[0], ORIGIN).edges) == 0


def test_cost_is_length_over_the_weakest_relative_density_plus_one() -> None:
    nodes = _line_nodes([5, 11, 17], touching=True)
    stage2 = _maps()
    stage2[0, :, :, 14:] *= 0.5  # the third node and the end of the second edge are fainter
    graph = build_sugar_graph(nodes, stage2, stage2[0], ORIGIN)
    smoothed = smoothed_sugar(stage2[0])[6, 6]
    strongest = smoothed[[5, 11, 17]].max()
    expected = [6.0 / (smoothed[a:b + 1].min() / strongest) + 1.0 for a, b in ((5, 11), (11, 17))]
    np.testing.assert_allclose(graph.cost, expected, rtol=1e-6)
    assert graph.cost[1] > 1.5 * graph.cost[0]
    faint = dataclasses.replace(nodes, density=np.array([1.01, 1.01, 0.01]))  # as min-max scaling makes it
    np.testing.assert_allclose(build_sugar_graph(faint, stage2, stage2[0], ORIGIN).cost, graph.cost)


@pytest.mark.parametrize(("phosphate", "bridged"), [
    ([3.0, 2.5, 0.0], True),  # between the sugars, 3.9 Å from each: a strand's phosphate
    ([3.0, 4.5, 0.0], False),  # 5.4 Å from each: the sum exceeds BRIDGE_SUM_A (10 Å)
    ([-2.5, 1.0, 0.0], False),  # beside sugar 0, away from sugar 1: obtuse angle at sugar 0
])
def test_a_phosphate_bridges_two_sugars_when_it_lies_between_them(phosphate: list[float], bridged: bool) -> None:
    sugar = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])
    assert bridged_edges(sugar, np.array([[0, 1]]), np.array([phosphate])).tolist() == [bridged]


def test_a_phosphate_bridges_only_the_edges_it_fits_best() -> None:
    """Sugars 0 and 1 with their phosphate between them (sum 7.8 Å) and sugar 2 beside sugar 1 (a chain end or a
    tertiary contact): the phosphate also lies within BRIDGE_SUM_A of sugars 1 and 2 (sum 9.3 Å, angles not
    obtuse), but it is the bridge of 0–1, more than BRIDGE_MARGIN_A better, so 1–2 is unbridged."""
    sugar = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0], [7.5, 5.5, 0.0]])
    phosphate = np.array([[3.0, 2.5, 0.0]])
    edges = np.array([[0, 1], [1, 2]])
    sums = [np.linalg.norm(phosphate[0] - sugar[i]) + np.linalg.norm(phosphate[0] - sugar[j]) for i, j in edges]
    assert sums[1] <= BRIDGE_SUM_A and sums[1] > sums[0] + BRIDGE_MARGIN_A
    assert bridged_edges(sugar, edges, phosphate).tolist() == [True, False]
    assert bridged_edges(sugar, edges[1:], phosphate).tolist() == [True]  # alone, 1–2 is its best edge


def test_edges_without_a_bridging_phosphate_cost_more() -> None:
    nodes = _line_nodes([5, 11, 17], touching=True)
    stage2 = _maps()
    plain = build_sugar_graph(nodes, stage2, stage2[0], ORIGIN)
    assert plain.bridged.all()  # no phosphate nodes given: no penalty
    between_0_1 = np.array([[ORIGIN[0] + 8.0, ORIGIN[1] + 8.5, ORIGIN[2] + 6.0]])
    graph = build_sugar_graph(nodes, stage2, stage2[0], ORIGIN, phosphate_xyz=between_0_1)
    assert graph.bridged.tolist() == [True, False]
    np.testing.assert_allclose(graph.cost, plain.cost * [1.0, UNBRIDGED_PENALTY])


def test_smoothing_kernel_by_hand() -> None:
    volume = np.zeros((13, 13, 13))
    volume[6, 6, 6] = 2.0
    smoothed = smoothed_sugar(volume)
    assert smoothed[6, 6, 6] == pytest.approx(2.0)
    assert smoothed[6, 6, 7] == pytest.approx(2.0 * np.exp(-1.5 / 2.25))  # d = 1 Å, (g/2)² = 2.25 Å²
    assert smoothed[7, 7, 7] == pytest.approx(2.0 * np.exp(-1.5 * 3 / 2.25))
    assert smoothed[6, 6, 0] == pytest.approx(2.0 * np.exp(-1.5 * 36 / 2.25))  # edge of the ±6 Å window


@pytest.mark.parametrize("make", [ideal_rna, deposited_rna], ids=["ideal-30nt", "6v5b-78nt"])
def test_oracle_rna_is_traced_along_its_sequence(make) -> None:
    """From clean oracle maps of an RNA to ordered chains: one sugar node per residue, consecutive steps."""
    structure = make()
    maps = oracle_maps(structure, CLEAN)
    weights = class_weights(maps.stage2, maps.density)
    sugar = filter_nodes(cluster_nodes(maps.stage2, maps.density, maps.origin), maps.stage2, maps.density,
                         maps.origin).nodes["sugar"]
    graph = build_sugar_graph(sugar, maps.stage2, weights["sugar"], maps.origin)
    result = trace_backbone(graph.xyz, graph.edges, graph.cost, solution_limit=300)
    c4 = np.array([residue["C4'"][0].pos.tolist() for residue in structure[0][0]])
    assert np.mean(cKDTree(graph.xyz).query(c4)[0] < 3.0) > 0.95
    residue_of = cKDTree(c4).query(graph.xyz)[1]
    steps = np.concatenate([np.diff(residue_of[path]) for path in result.paths])
    assert sum(len(p) for p in result.paths) >= 0.9 * len(c4)
    assert np.mean(np.abs(steps) <= 1) > 0.85
