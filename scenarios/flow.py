"""Minimum-cost flow (最小费用流) over a capacitated network, with shadow prices.

The refuse-flow analysis routes each day's refuse from refuse buildings through
transfer stations to treatment plants at the least tonne-kilometres within the
facilities' capacities. This module is its solver, and usable on any network:
a :class:`FlowProblem` (nodes with supplies, arcs with a cost per unit and a
capacity) solved by :func:`min_cost_flow` as a linear programme with HiGHS
(``highspy``): one column per arc, one balance row per node. A network
programme's basic optimum is integral for integral data, and HiGHS returns the
duals with it:

* each node's **potential** (the row dual: what one more unit supplied there
  would cost);
* each arc's **shadow price** — how much the total cost falls per unit of
  extra capacity on an arc that is full (minus its reduced cost); zero on an
  arc with room left. A facility's throughput is an arc (its inflow node to
  its outflow node), so its shadow price says where one more tonne of
  capacity saves the most haulage.

When supply may exceed what the network can take, ``unplaced_cost`` adds an
arc from every supplying node to ``unplaced_to`` (a super-sink) at that cost:
its flow is the supply that could not be placed, and the answer says where
and how much instead of failing.

Examples
--------
networkx's ``min_cost_flow`` example: 5 units from a to d (cost 24):

>>> p = FlowProblem.from_arcs(
...     supply={"a": 5, "d": -5},
...     arcs=[("a", "b", 3, 4), ("a", "c", 6, 10), ("b", "d", 1, 9), ("c", "d", 2, 5)])
>>> s = min_cost_flow(p)
>>> s.status, s.cost, s.flow.tolist()
('optimal', 24.0, [4.0, 1.0, 4.0, 1.0])
>>> s.shadow_price.tolist()   # one more unit on a→b saves 8 − 4 = 4
[4.0, 0.0, 0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from spatial.errors import InvalidInputError

OPTIMAL = "optimal"
INFEASIBLE = "infeasible"
#: Flows below this are zero (tonnes).
EPS = 1e-9


class FlowInputError(InvalidInputError, ValueError):
    """A problem that is not a flow problem (negative capacity, unknown node …)."""


@dataclass(frozen=True)
class FlowProblem:
    """A network: nodes with supplies, arcs with unit costs and capacities.

    Parameters
    ----------
    nodes : list
        Node ids, in index order.
    supply : numpy.ndarray
        Per node: what it supplies (> 0) or demands (< 0).
    tail, head : numpy.ndarray of int
        Each arc's start and end node (indices).
    cost : numpy.ndarray
        Cost per unit of flow on each arc.
    capacity : numpy.ndarray
        Each arc's capacity (``inf``: none).
    """

    nodes: list[Hashable]
    supply: np.ndarray
    tail: np.ndarray
    head: np.ndarray
    cost: np.ndarray
    capacity: np.ndarray
    index: dict[Hashable, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        n, m = len(self.nodes), len(self.tail)
        if len(self.supply) != n:
            raise FlowInputError(f"supply has {len(self.supply)} values for {n} nodes")
        for name in ("head", "cost", "capacity"):
            if len(getattr(self, name)) != m:
                raise FlowInputError(f"{name} has {len(getattr(self, name))} values for "
                                     f"{m} arcs")
        if m and (min(self.tail.min(), self.head.min()) < 0
                  or max(self.tail.max(), self.head.max()) >= n):
            raise FlowInputError("arc ends must be node indices")
        if not np.all(np.isfinite(self.supply)):
            raise FlowInputError("supplies must be finite numbers")
        if not np.all(np.isfinite(self.cost)):
            raise FlowInputError("arc costs must be finite numbers")
        if np.any(np.isnan(self.capacity)) or np.any(self.capacity < 0):
            raise FlowInputError("arc capacities must be non-negative")
        if not self.index:
            object.__setattr__(self, "index", {k: i for i, k in enumerate(self.nodes)})

    @classmethod
    def from_arcs(cls, supply: Mapping[Hashable, float],
                  arcs: Iterable[tuple[Hashable, Hashable, float, float]],
                  nodes: Sequence[Hashable] = ()) -> FlowProblem:
        """A problem from ``{node: supply}`` and ``(tail, head, cost, capacity)`` arcs.

        Nodes are ``nodes`` first, then those met in ``supply`` and the arcs.
        """
        arcs = list(arcs)
        order: dict[Hashable, int] = {}
        for k in (*nodes, *supply, *(a[0] for a in arcs), *(a[1] for a in arcs)):
            order.setdefault(k, len(order))
        ids = list(order)
        return cls(ids, np.array([float(supply.get(k, 0.0)) for k in ids]),
                   np.array([order[a[0]] for a in arcs], dtype=np.int64),
                   np.array([order[a[1]] for a in arcs], dtype=np.int64),
                   np.array([float(a[2]) for a in arcs]),
                   np.array([float(a[3]) for a in arcs]), order)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.nodes)

    @property
    def n_arcs(self) -> int:
        """Number of arcs."""
        return len(self.tail)


@dataclass(frozen=True)
class FlowSolution:
    """The answer of :func:`min_cost_flow`.

    Attributes
    ----------
    status : str
        ``optimal`` or ``infeasible``.
    flow : numpy.ndarray
        Per arc (zeros when infeasible).
    cost : float or None
        Total cost of the arcs' flows (the unplaced penalty not included).
    potential : numpy.ndarray
        Per node, the balance row's dual: the marginal cost of one more unit
        supplied there.
    shadow_price : numpy.ndarray
        Per arc, the cost saved per unit of extra capacity (0 where the arc
        has room).
    unplaced : numpy.ndarray
        Per node, the supply that could not be placed (with ``unplaced_cost``).
    message : str or None
        Why it is infeasible.
    """

    status: str
    flow: np.ndarray
    cost: float | None
    potential: np.ndarray
    shadow_price: np.ndarray
    unplaced: np.ndarray
    message: str | None = None


def min_cost_flow(problem: FlowProblem, *, unplaced_cost: float | None = None,
                  unplaced_to: Hashable | None = None) -> FlowSolution:
    """Route every supply to the demands at least cost within the capacities.

    Parameters
    ----------
    problem : FlowProblem
    unplaced_cost : float, optional
        With ``unplaced_to``: each supplying node may send flow straight to
        that node at this cost per unit, reported as :attr:`FlowSolution.unplaced`
        (make it dearer than any real route).
    unplaced_to : hashable, optional
        The node unplaced supply goes to (a super-sink).

    Returns
    -------
    FlowSolution

    Raises
    ------
    FlowInputError
        ``unplaced_to`` is not a node, or only one of the two is given.
    """
    n, m = problem.n_nodes, problem.n_arcs
    if (unplaced_cost is None) != (unplaced_to is None):
        raise FlowInputError("unplaced_cost and unplaced_to go together")
    tail, head = problem.tail, problem.head
    cost, cap = problem.cost, problem.capacity
    slack_from = np.zeros(0, dtype=np.int64)
    if unplaced_to is not None and unplaced_cost is not None:
        if unplaced_to not in problem.index:
            raise FlowInputError(f"unplaced_to: {unplaced_to!r} is not a node")
        sink = problem.index[unplaced_to]
        slack_from = np.flatnonzero(problem.supply > 0)
        tail = np.r_[tail, slack_from]
        head = np.r_[head, np.full(slack_from.size, sink)]
        cost = np.r_[cost, np.full(slack_from.size, float(unplaced_cost))]
        cap = np.r_[cap, np.full(slack_from.size, np.inf)]
    total = float(problem.supply.sum())
    if abs(total) > 1e-6 * max(1.0, float(np.abs(problem.supply).sum())):
        return _infeasible(problem, f"supplies and demands do not balance: they sum to "
                                    f"{total:g} / 供需不平衡")
    k = tail.size
    cols = np.arange(k)
    a = sp.csc_matrix((np.r_[np.ones(k), -np.ones(k)], (np.r_[tail, head], np.r_[cols, cols])),
                      shape=(n, k))
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    lp = highspy.HighsLp()
    lp.num_col_ = k
    lp.num_row_ = n
    lp.col_cost_ = cost.astype(np.float64)
    lp.col_lower_ = np.zeros(k)
    lp.col_upper_ = np.where(np.isfinite(cap), cap, highspy.kHighsInf).astype(np.float64)
    lp.row_lower_ = problem.supply.astype(np.float64)
    lp.row_upper_ = problem.supply.astype(np.float64)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data.astype(np.float64)
    h.passModel(lp)
    h.run()
    status = h.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        return _infeasible(problem, "the capacities cannot carry every supply to a demand "
                                    "/ 容量不足，无法全部运达")
    sol = h.getSolution()
    x = np.asarray(sol.col_value, dtype=np.float64)
    x[np.abs(x) < EPS] = 0.0
    col_dual = np.asarray(sol.col_dual, dtype=np.float64)
    row_dual = np.asarray(sol.row_dual, dtype=np.float64)
    finite = np.isfinite(cap)
    full = np.zeros(k, dtype=bool)
    full[finite] = x[finite] >= cap[finite] - 1e-7 * np.maximum(1.0, cap[finite])
    price = np.where(full, np.maximum(0.0, -col_dual), 0.0)
    price[np.abs(price) < EPS] = 0.0
    unplaced = np.zeros(n)
    if slack_from.size:
        np.add.at(unplaced, slack_from, x[m:])
    return FlowSolution(OPTIMAL, x[:m], float(np.dot(problem.cost, x[:m])), row_dual,
                        price[:m], unplaced)


def _infeasible(problem: FlowProblem, message: str) -> FlowSolution:
    zeros = np.zeros(problem.n_arcs)
    return FlowSolution(INFEASIBLE, zeros, None, np.zeros(problem.n_nodes), zeros.copy(),
                        np.zeros(problem.n_nodes), message)


def to_networkx(problem: FlowProblem) -> Any:
    """The problem as a ``networkx.DiGraph`` for ``networkx.min_cost_flow`` (a check).

    Parallel arcs are not supported there; each arc must join a distinct pair.
    """
    import networkx as nx

    g = nx.DiGraph()
    for k, s in zip(problem.nodes, problem.supply.tolist(), strict=True):
        g.add_node(k, demand=-s)
    for t, hd, c, u in zip(problem.tail.tolist(), problem.head.tolist(), problem.cost.tolist(),
                           problem.capacity.tolist(), strict=True):
        attrs: dict[str, Any] = {"weight": c}
        if np.isfinite(u):
            attrs["capacity"] = u
        g.add_edge(problem.nodes[t], problem.nodes[hd], **attrs)
    return g


__all__ = ["INFEASIBLE", "OPTIMAL", "FlowInputError", "FlowProblem", "FlowSolution",
           "min_cost_flow", "to_networkx"]
