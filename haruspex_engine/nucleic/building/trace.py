"""trace_backbone: order sugar nodes into chains by vehicle routing with OR-Tools, as CryoREAD does.

The sugar graph (nodes at Å positions, edges with costs; see the graph module) becomes a routing problem: a
virtual depot (index 0) joined to every node at cost 0, graph edges at int(100 × cost), every other pair "relaxed"
at int(maxC + 100 × d) when closer than ``RELAX_DISTANCE_A`` and int(2 × maxC + 200 × d) beyond (d in Å, maxC the
largest edge entry), max(5, ceil(N / 20)) vehicles, and every node droppable at a penalty of
int(200 × max edge cost + 200 × 10). Guided local search from the automatic first solution. Each vehicle's route
(depot removed) is an ordered path.

Four things differ from the original:
- nodes that cannot reach each other by steps shorter than ``RELAX_DISTANCE_A`` (graph edges or not) are routed
  as separate problems (the original routes all nodes as one). A route step of that length or more is cut
  afterwards anyway, so such groups could only be joined by steps that are then removed; separate problems keep
  large maps tractable (an assembly of many molecules becomes many small routing problems instead of one with
  thousands of nodes). Groups of fewer than 3 nodes are left out (they could only give paths that are dropped);
- starting a chain costs one more than the dearest graph edge. In the original the depot arcs are free, so the
  solver always uses every one of its max(5, N/20) vehicles, each extra one cutting a chain at an arbitrary
  (cheapest-to-lose) edge; here a chain is only cut where that saves more than any edge costs (a missing edge);
- the search budget is a parameter: by default the search stops after ``solution_limit`` solutions (deterministic:
  the same graph gives the same paths on any machine) or, as a safety net, after ``time_limit_s`` seconds
  (machine-dependent; the result says which limit stopped it). The original waits max(3600, 2.5 N) s;
- routes are split where consecutive nodes are ``max_step_A`` or more apart instead of bridging the jump, and
  paths of ≤ 2 nodes are dropped (as the original drops short routes).
The transit costs are given to OR-Tools as a matrix of Python ints (a callback returning numpy floats is silently
read as 0 by recent OR-Tools versions).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
from ortools.constraint_solver import pywrapcp, routing_enums_pb2
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from haruspex_engine.nucleic.building import SOLUTION_LIMIT

RELAX_DISTANCE_A = 10.0
MIN_PATH_NODES = 3


@dataclass(frozen=True)
class TraceResult:
    """paths: ordered node indices (int arrays) of each traced chain, longest first. stopped_by: "solution limit",
    "time limit" or "search completed". seconds: solver wall time. dropped: nodes on no path."""

    paths: tuple[np.ndarray, ...]
    stopped_by: str
    seconds: float
    solutions: int
    objective: int
    dropped: int


def trace_backbone(
    xyz: np.ndarray,
    edges: np.ndarray,
    edge_costs: np.ndarray,
    *,
    solution_limit: int = SOLUTION_LIMIT,
    time_limit_s: float = 120.0,
    max_step_A: float = 10.0,
) -> TraceResult:
    """Ordered paths through the sugar graph.

    xyz: (N, 3) node positions in Å. edges: (E, 2) node index pairs (undirected). edge_costs: (E,) positive costs
    (length / minimum density + 1, see the graph module). Returns the paths of ≥ 3 nodes after splitting at steps
    of ``max_step_A`` Å or more. Each group of nodes linked by steps shorter than RELAX_DISTANCE_A is one routing
    problem with the full solution limit; the time limit is shared (a group gets what the earlier ones left, at
    least 1 s).
    """
    xyz = np.asarray(xyz, dtype=float)
    n = len(xyz)
    edges = np.asarray(edges, dtype=int).reshape(-1, 2)
    edge_costs = np.asarray(edge_costs, dtype=float)
    if len(edges) and (edges.min() < 0 or edges.max() >= n):
        raise ValueError(f"edge node indices must lie in [0, {n})")
    if len(edge_costs) != len(edges) or np.any(edge_costs <= 0) or not np.all(np.isfinite(edge_costs)):
        raise ValueError("one positive finite cost per edge is needed")
    near = cKDTree(xyz).query_pairs(RELAX_DISTANCE_A - 1e-9, output_type="ndarray").reshape(-1, 2)
    links = np.concatenate([edges, near])
    graph = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    parts = []
    deadline = time.perf_counter() + time_limit_s
    for label in np.unique(component):
        members = np.flatnonzero(component == label)
        if len(members) < MIN_PATH_NODES:
            continue
        local = np.full(n, -1)
        local[members] = np.arange(len(members))
        inside = component[edges[:, 0]] == label
        budget = max(1.0, deadline - time.perf_counter())
        part = _route(xyz[members], local[edges[inside]], edge_costs[inside], solution_limit, budget, max_step_A)
        parts.append(TraceResult(tuple(members[p] for p in part.paths), part.stopped_by, part.seconds,
                                 part.solutions, part.objective, part.dropped))
    paths = sorted((p for part in parts for p in part.paths), key=len, reverse=True)
    stops = {part.stopped_by for part in parts}
    stopped_by = next((s for s in ("time limit", "solution limit") if s in stops), "search completed")
    return TraceResult(tuple(paths), stopped_by, sum(p.seconds for p in parts), sum(p.solutions for p in parts),
                       sum(p.objective for p in parts), n - sum(len(p) for p in paths))


def _route(xyz: np.ndarray, edges: np.ndarray, edge_costs: np.ndarray, solution_limit: int, time_limit_s: float,
           max_step_A: float) -> TraceResult:
    """One routing problem over all of ``xyz`` (see trace_backbone)."""
    n = len(xyz)
    matrix, penalty, vehicle_cost = _cost_matrix(xyz, edges, edge_costs)
    vehicles = max(5, math.ceil(n / 20))
    manager = pywrapcp.RoutingIndexManager(n + 1, vehicles, 0)
    routing = pywrapcp.RoutingModel(manager)
    transit = routing.RegisterTransitMatrix(matrix)
    routing.SetArcCostEvaluatorOfAllVehicles(transit)
    routing.SetFixedCostOfAllVehicles(vehicle_cost)
    for node in range(1, n + 1):
        routing.AddDisjunction([manager.NodeToIndex(node)], penalty)
    parameters = pywrapcp.DefaultRoutingSearchParameters()
    parameters.first_solution_strategy = routing_enums_pb2.FirstSolutionStrategy.AUTOMATIC
    parameters.local_search_metaheuristic = routing_enums_pb2.LocalSearchMetaheuristic.GUIDED_LOCAL_SEARCH
    parameters.solution_limit = int(solution_limit)
    parameters.time_limit.FromMilliseconds(int(time_limit_s * 1000))
    collector = _SolutionCounter()
    routing.AddAtSolutionCallback(collector)
    t0 = time.perf_counter()
    solution = routing.SolveWithParameters(parameters)
    seconds = time.perf_counter() - t0
    stopped_by = _stopped_by(collector.count, solution_limit, seconds, time_limit_s)
    if solution is None:
        return TraceResult((), stopped_by, seconds, collector.count, 0, n)
    routes = []
    for vehicle in range(vehicles):
        index, route = routing.Start(vehicle), []
        while not routing.IsEnd(index):
            node = manager.IndexToNode(index)
            if node:
                route.append(node - 1)
            index = solution.Value(routing.NextVar(index))
        routes.append(np.asarray(route, dtype=int))
    paths = [p for route in routes for p in split_at_jumps(route, xyz, max_step_A) if len(p) >= MIN_PATH_NODES]
    paths.sort(key=len, reverse=True)
    on_paths = sum(len(p) for p in paths)
    return TraceResult(tuple(paths), stopped_by, seconds, collector.count, int(solution.ObjectiveValue()),
                       n - on_paths)


def split_at_jumps(route: np.ndarray, xyz: np.ndarray, max_step_A: float) -> list[np.ndarray]:
    """Cut an ordered route wherever two consecutive nodes are ``max_step_A`` Å or more apart."""
    if len(route) < 2:
        return [route]
    steps = np.linalg.norm(np.diff(xyz[route], axis=0), axis=1)
    cuts = np.flatnonzero(steps >= max_step_A) + 1
    return np.split(route, cuts)


def _cost_matrix(xyz: np.ndarray, edges: np.ndarray, costs: np.ndarray) -> tuple[list[list[int]], int, int]:
    """The (N+1)² integer arc-cost matrix (depot first), the drop penalty and the cost of using a vehicle."""
    n = len(xyz)
    distance = np.linalg.norm(xyz[:, None, :] - xyz[None, :, :], axis=-1)
    edge_entries = np.floor(100 * costs).astype(np.int64)
    max_entry = int(edge_entries.max()) if len(edges) else 0
    relaxed = np.where(distance >= RELAX_DISTANCE_A, 2 * max_entry + np.floor(200 * distance),
                       max_entry + np.floor(100 * distance)).astype(np.int64)
    relaxed[edges[:, 0], edges[:, 1]] = edge_entries
    relaxed[edges[:, 1], edges[:, 0]] = edge_entries
    np.fill_diagonal(relaxed, 0)
    full = np.zeros((n + 1, n + 1), dtype=np.int64)
    full[1:, 1:] = relaxed
    max_cost = float(costs.max()) if len(costs) else 0.0
    penalty = int(200 * max_cost + 200 * 10)
    return full.tolist(), penalty, max_entry + 1


class _SolutionCounter:
    """Counts the solutions the search finds (to report what stopped it)."""

    def __init__(self):
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def _stopped_by(solutions: int, solution_limit: int, seconds: float, time_limit_s: float) -> str:
    """What ended the search: guided local search never ends by itself before one of the two limits."""
    if solutions >= solution_limit:
        return "solution limit"
    if seconds >= 0.99 * time_limit_s:
        return "time limit"
    return "search completed"
