"""Minimum-cost flow (``scenarios/flow.py``) against answers computed elsewhere:

- networkx's ``min_cost_flow`` documentation example (cost 24);
- the OR-Tools min-cost-flow sample (Bradley, Hax and Magnanti, cost 150);
- random instances against networkx's network simplex (same optimum);
- shadow prices against re-solving with one more unit of capacity;
- unplaced supply when the capacities are short, and bad input.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from scenarios.flow import (
    INFEASIBLE,
    OPTIMAL,
    FlowInputError,
    FlowProblem,
    min_cost_flow,
    to_networkx,
)


def test_networkx_documentation_example() -> None:
    g = nx.DiGraph()
    g.add_node("a", demand=-5)
    g.add_node("d", demand=5)
    g.add_edge("a", "b", weight=3, capacity=4)
    g.add_edge("a", "c", weight=6, capacity=10)
    g.add_edge("b", "d", weight=1, capacity=9)
    g.add_edge("c", "d", weight=2, capacity=5)
    assert nx.min_cost_flow_cost(g) == 24
    p = FlowProblem.from_arcs({"a": 5, "d": -5}, [(u, v, d["weight"], d["capacity"])
                                                  for u, v, d in g.edges(data=True)])
    s = min_cost_flow(p)
    assert s.status == OPTIMAL and s.cost == 24.0
    assert dict(zip(zip(p.tail.tolist(), p.head.tolist(), strict=True), s.flow.tolist(),
                    strict=True)) == {(0, 2): 4.0, (0, 3): 1.0, (2, 1): 4.0, (3, 1): 1.0}


def test_or_tools_sample() -> None:
    """OR-Tools' SimpleMinCostFlow sample: the optimum it prints is 150."""
    start = [0, 0, 1, 1, 1, 2, 2, 3, 4]
    end = [1, 2, 2, 3, 4, 3, 4, 4, 2]
    capacity = [15, 8, 20, 4, 10, 15, 4, 20, 5]
    unit_cost = [4, 4, 2, 2, 6, 1, 3, 2, 3]
    supplies = [20, 0, 0, -5, -15]
    p = FlowProblem(list(range(5)), np.array(supplies, float), np.array(start), np.array(end),
                    np.array(unit_cost, float), np.array(capacity, float))
    s = min_cost_flow(p)
    assert s.status == OPTIMAL and s.cost == 150.0
    # conservation at every node, capacities held
    net = np.zeros(5)
    np.add.at(net, p.tail, s.flow)
    np.subtract.at(net, p.head, s.flow)
    assert np.allclose(net, supplies) and np.all(s.flow <= p.capacity + 1e-9)


@pytest.mark.parametrize("seed", range(25))
def test_random_instances_agree_with_network_simplex(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(6, 30))
    pairs = {(int(a), int(b)) for a, b in rng.integers(0, n, (4 * n, 2)) if a != b}
    pairs |= {(i, i + 1) for i in range(n - 1)} | {(i + 1, i) for i in range(n - 1)}
    arcs = sorted(pairs)
    cost = rng.integers(0, 20, len(arcs)).astype(float)
    cap = rng.integers(1, 15, len(arcs)).astype(float)
    cap[rng.random(len(arcs)) < 0.2] = np.inf
    supply = np.zeros(n)
    for _ in range(int(rng.integers(1, 5))):
        a, b = rng.choice(n, 2, replace=False)
        q = float(rng.integers(1, 10))
        supply[a] += q
        supply[b] -= q
    p = FlowProblem(list(range(n)), supply, np.array([a for a, _ in arcs]),
                    np.array([b for _, b in arcs]), cost, cap)
    g = to_networkx(p)
    try:
        expected = nx.network_simplex(g)[0]
    except nx.NetworkXUnfeasible:
        assert min_cost_flow(p).status == INFEASIBLE
        return
    s = min_cost_flow(p)
    assert s.status == OPTIMAL and s.cost == pytest.approx(expected)
    assert np.allclose(s.flow, np.round(s.flow))  # a basic optimum of a network LP


def test_shadow_prices_are_what_one_more_unit_saves() -> None:
    arcs = [("s", "t1", 4, 6), ("s", "t2", 9, 20), ("t1", "p", 2, 10), ("t2", "p", 1, 20),
            ("s", "t3", 5, 3), ("t3", "p", 1, 20)]
    supply = {"s": 15, "p": -15}
    base = min_cost_flow(FlowProblem.from_arcs(supply, arcs))
    assert base.status == OPTIMAL
    full = np.flatnonzero(base.shadow_price > 0)
    assert full.size >= 1
    for k in range(len(arcs)):
        more = list(arcs)
        t, h, c, u = more[k]
        more[k] = (t, h, c, u + 1)
        again = min_cost_flow(FlowProblem.from_arcs(supply, more))
        assert base.cost is not None and again.cost is not None
        assert base.cost - again.cost == pytest.approx(base.shadow_price[k])


def test_short_capacity_reports_the_unplaced_supply() -> None:
    # two buildings send 10 and 6; the one station takes 12; the rest goes unplaced
    p = FlowProblem.from_arcs({"b1": 10, "b2": 6, "sink": -16},
                              [("b1", "st", 1, np.inf), ("b2", "st", 3, np.inf),
                               ("st", "sink", 0, 12)])
    assert min_cost_flow(p).status == INFEASIBLE
    s = min_cost_flow(p, unplaced_cost=1000.0, unplaced_to="sink")
    assert s.status == OPTIMAL
    assert s.unplaced.tolist() == [0.0, 4.0, 0.0, 0.0]  # the dearer building waits
    assert s.cost == 10 * 1 + 2 * 3
    assert s.shadow_price[2] == pytest.approx(1000 - 3)  # one more tonne at the station


def test_bad_input() -> None:
    with pytest.raises(FlowInputError, match="non-negative"):
        FlowProblem.from_arcs({"a": 1, "b": -1}, [("a", "b", 1, -2)])
    with pytest.raises(FlowInputError, match="finite"):
        FlowProblem.from_arcs({"a": float("nan"), "b": -1}, [("a", "b", 1, 2)])
    p = FlowProblem.from_arcs({"a": 2, "b": -1}, [("a", "b", 1, 5)])
    s = min_cost_flow(p)
    assert s.status == INFEASIBLE and s.message is not None and "balance" in s.message
    with pytest.raises(FlowInputError, match="go together"):
        min_cost_flow(p, unplaced_cost=5.0)
    with pytest.raises(FlowInputError, match="not a node"):
        min_cost_flow(p, unplaced_cost=5.0, unplaced_to="zz")
