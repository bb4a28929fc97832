"""p-median and capacitated p-median: least total weighted distance."""

from __future__ import annotations

import heapq
import time
from collections.abc import Hashable, Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from scenarios.placement._solver import (
    INFEASIBLE,
    OPTIMAL,
    TOL,
    Mip,
    MipResult,
    Reporter,
    columns,
    solve_mip,
)
from scenarios.placement.base import FacilityModel, bad


def _dense(d: np.ndarray) -> np.ndarray:
    """float32 costs with unreachable pairs made dearer than any path (heuristics only)."""
    finite = np.isfinite(d)
    big = (float(d[finite].max()) if finite.any() else 0.0) * 4 + 1.0
    return np.where(finite, d, big).astype(np.float32)


def _greedy_median(dd: np.ndarray, w: np.ndarray, allowed: np.ndarray, fixed: np.ndarray,
                   p: int) -> np.ndarray:
    """Greedy add: open the site that lowers the weighted distance most, p times.

    Lazy (Minoux's accelerated greedy): what a site saves only shrinks as
    others open, so a stale saving is an upper bound and only the sites at
    the top of the heap are re-evaluated — one full pass instead of ``p``.
    """
    n, m = dd.shape
    w32 = w.astype(np.float32)
    ddt = np.ascontiguousarray(dd.T)
    is_open = np.zeros(m, dtype=bool)
    is_open[fixed] = True
    near = (dd[:, is_open].min(axis=1) if is_open.any()
            else np.full(n, float(dd.max()) * 2 + 1.0, dtype=np.float32))
    gains = np.maximum(near[None, :] - ddt, 0.0) @ w32
    heap = [(-float(gains[j]), int(j)) for j in np.flatnonzero(allowed & ~is_open)]
    heapq.heapify(heap)
    for _ in range(p - int(is_open.sum())):
        while True:
            _, j = heapq.heappop(heap)
            fresh = float(np.maximum(near - ddt[j], 0.0) @ w32)
            if not heap or fresh >= -heap[0][0]:
                break
            heapq.heappush(heap, (-fresh, j))
        is_open[j] = True
        np.minimum(near, ddt[j], out=near)
    return is_open


def _interchange(dd: np.ndarray, d: np.ndarray, w: np.ndarray, is_open: np.ndarray,
                 allowed: np.ndarray, fixed: np.ndarray, deadline: float) -> np.ndarray:
    """Vertex substitution (Teitz–Bart), vectorised per round, until ``deadline``.

    The predicted change of swapping site ``j`` in for open ``r`` is
    ``M[j, r] - gain[j]``, where ``gain[j]`` is what adding ``j`` saves and
    ``M[j, r] = Σ_{i served by r} w_i (clip(d_ij, d1_i, d2_i) - d1_i)`` what
    losing ``r`` then costs (``d1``, ``d2``: nearest and second-nearest open
    site) — one matrix product per round. The best swap is applied, then
    further promising swaps with other sites while each, checked on the
    exact costs, still improves, so a round is paid for by several swaps.
    """
    is_open = is_open.copy()
    removable = is_open.copy()
    removable[fixed] = False
    if not removable.any():
        return is_open
    n = dd.shape[0]
    rows = np.arange(n)
    w32 = w.astype(np.float32)
    dfin = np.where(np.isfinite(d), d, float(dd.max()))
    current = float(w @ dfin[:, is_open].min(axis=1))
    t = np.empty_like(dd)
    while time.perf_counter() < deadline:
        open_idx = np.flatnonzero(is_open)
        sub = dd[:, open_idx]
        if open_idx.size > 1:
            part = np.argpartition(sub, 1, axis=1)[:, :2]
            a, b = sub[rows, part[:, 0]], sub[rows, part[:, 1]]
            first = np.where(a <= b, part[:, 0], part[:, 1])
            d1, d2 = np.minimum(a, b), np.maximum(a, b)
        else:
            first = np.zeros(n, dtype=np.int64)
            d1 = sub[:, 0]
            d2 = np.full(n, float(dd.max()) * 2 + 1.0, dtype=np.float32)
        np.subtract(d1[:, None], dd, out=t)
        np.maximum(t, 0.0, out=t)
        gain = w32 @ t
        np.clip(dd, d1[:, None], d2[:, None], out=t)
        t -= d1[:, None]
        t *= w32[:, None]
        onehot = sp.csr_matrix((np.ones(n, np.float32), (rows, first)),
                               shape=(n, open_idx.size))
        delta = np.asarray((onehot.T @ t).T) - gain[:, None]  # sites × open
        delta[~allowed | is_open, :] = np.inf
        delta[:, ~removable[open_idx]] = np.inf
        tol = 1e-7 * max(1.0, current)
        order = np.argsort(delta, axis=None)[: 2 * open_idx.size + 8]
        used: set[int] = set()
        swapped = False
        for k in order:
            j, r = divmod(int(k), open_idx.size)
            out = int(open_idx[r])
            if not delta[j, r] < -tol:
                break
            if j in used or out in used:
                continue
            trial = is_open.copy()
            trial[j], trial[out] = True, False
            value = float(w @ dfin[:, trial].min(axis=1))
            if value < current - tol:
                is_open, current, swapped = trial, value, True
                removable[j], removable[out] = True, False
                used.update((j, out))
        if not swapped:
            break
    return is_open


class PMedian(FacilityModel):
    """p-median: open ``p`` sites so that the total weighted distance is least.

    Build with :meth:`from_cost_matrix` or :meth:`from_geodataframe`; after
    :meth:`solve`, ``objective`` is Σ weight × distance to the assigned site
    and ``mean_distance`` its weighted mean (spopt's ``mean_dist``).

    The exact model is the classic one with assignment variables only for
    useful pairs: since ``p`` sites open, a client's nearest open site is
    among its ``(candidates - p + 1)`` nearest (and no farther than its
    nearest fixed site), so farther pairs are never needed and left out.

    Examples
    --------
    >>> import numpy as np
    >>> costs = np.array([[0, 5, 9], [5, 0, 4], [9, 4, 0]], dtype=float)
    >>> m = PMedian.from_cost_matrix(costs, weights=[1, 1, 5], p=1).solve()
    >>> m.sites, m.objective, round(m.mean_distance, 3)
    ([2], 13.0, 1.857)

    Keep site 0 and add one ("add k"):

    >>> PMedian.from_cost_matrix(costs, weights=[1, 1, 5], p=2, fixed=[0]).solve().sites
    [0, 2]
    """

    #: Leave out assignment pairs that can never be needed (see the class notes).
    reduce_pairs: bool = True

    @classmethod
    def from_cost_matrix(cls, costs: Any, weights: Any = None, *, p: int,
                         fixed: Sequence[Hashable] | None = None,
                         candidates: Sequence[Hashable] | None = None,
                         site_ids: Sequence[Hashable] | None = None,
                         client_ids: Sequence[Hashable] | None = None) -> Self:
        """Build a p-median model from a clients × sites cost matrix.

        Parameters
        ----------
        costs : array_like, shape (clients, sites)
            Distance or cost from each client to each site; ``np.inf`` where a
            site cannot be reached.
        weights : array_like, optional
            Demand per client (1 each by default).
        p : int
            Number of open sites in all, the fixed ones included.
        fixed : sequence, optional
            Ids of sites that must stay open (existing ones).
        candidates : sequence, optional
            Ids of sites that may open (every site by default; fixed ones always may).
        site_ids, client_ids : sequence, optional
            Ids for the columns and rows (their positions by default).

        Returns
        -------
        PMedian

        Raises
        ------
        PlacementInputError
            (a ``ValueError``) naming the bad value: p out of range, no demand,
            an unknown site id, a malformed matrix.
        """
        return cls(**cls._prepare(costs, weights, p, fixed, candidates, site_ids, client_ids))

    @property
    def mean_distance(self) -> float | None:
        """Weighted mean distance from a client to its site."""
        if self.objective is None:
            return None
        return self.objective / float(self.weights.sum())

    def _heuristic(self) -> np.ndarray | None:
        assert self.p is not None
        dd = _dense(self.costs)
        start = _greedy_median(dd, self.weights, self.allowed, self.fixed, self.p)
        return _interchange(dd, self.costs, self.weights, start, self.allowed, self.fixed,
                            self._deadline)

    def _pairs(self, open_pos: np.ndarray | None = None, sites: np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray]:
        """(client, site position) pairs that may carry an assignment.

        ``sites``: positions (into the allowed sites) still in the model (all
        by default); ``open_pos``: those certainly open (the fixed ones by
        default). A client's nearest open site is among its
        ``len(sites) - p + 1`` nearest, and no farther than a certainly open one.
        """
        assert self.p is not None
        allowed_idx = np.flatnonzero(self.allowed)
        if sites is None:
            sites = np.arange(allowed_idx.size)
        if open_pos is None:
            open_pos = np.searchsorted(allowed_idx, self.fixed)
        active = np.flatnonzero(self.weights > 0)
        d = self.costs[np.ix_(active, allowed_idx[sites])]
        keep = np.isfinite(d)
        if self.reduce_pairs:
            k = sites.size - self.p  # 0-based rank of the (sites - p + 1)-th nearest
            limit = np.partition(np.where(keep, d, np.inf), k, axis=1)[:, k]
            if open_pos.size:
                limit = np.minimum(limit, d[:, np.searchsorted(sites, open_pos)].min(axis=1))
            keep &= d <= limit[:, None]
        ci, sj = np.nonzero(keep)
        return active[ci], sites[sj]

    def _exact(self, start: np.ndarray | None, time_limit: float, reporter: Reporter,
               mip_gap: float) -> MipResult:
        assert self.p is not None and start is not None
        started = time.perf_counter()
        allowed_idx = np.flatnonzero(self.allowed)
        ny = allowed_idx.size
        y0 = start[allowed_idx].astype(float)
        upper, assign = self._evaluate(start)  # inf: the start leaves a client unserved
        forced = np.zeros(ny, dtype=bool)
        forced[np.searchsorted(allowed_idx, self.fixed)] = True
        if int(forced.sum()) == self.p:  # every open site is fixed: nothing to choose
            if np.isfinite(upper):
                return MipResult(OPTIMAL, y0, upper, upper)
            return MipResult(INFEASIBLE, None, None, None)
        # 1. a Lagrangian bound (seconds, vectorised), and what it lets us fix
        active = np.flatnonzero(self.weights > 0)
        c = self.weights[active, None] * self.costs[np.ix_(active, allowed_idx)]
        finite = np.isfinite(c)
        # an unreachable pair costs more than any layout serving every client in all
        big = (float(c[finite].max()) + 1.0) * 4 * active.size
        c[~finite] = big
        # mostly beyond a walk cut-off: the Lagrangian steps over the finite pairs only
        pairs = np.nonzero(finite) if finite.mean() < SPARSE_BELOW else None
        del finite
        integral = bool(np.all(np.mod(c, 1.0) == 0.0))
        # the multipliers start at each client's weighted cost in the start layout
        served = assign[active] >= 0
        lam0 = np.full(active.size, big)
        lam0[served] = c[np.flatnonzero(served),
                         np.searchsorted(allowed_idx, assign[active][served])]
        # an infeasible start is the Lagrangian's incumbent at its penalised cost,
        # dearer than any layout serving every client
        upper_l = upper if np.isfinite(upper) else float(c[:, y0 > 0.5].min(axis=1).sum())
        budget = min(max(1.0, 0.2 * time_limit), time_limit)
        lower, closed, opened, upper_l, better, dual_choice = _lagrangian(
            c, self.p, forced, upper_l, lam0, integral, started + budget, reporter, pairs,
            np.inf if np.isfinite(upper) else big)
        if better is not None:
            layout = np.zeros_like(start)
            layout[allowed_idx[better]] = True
            cost = upper_l if np.isfinite(upper) else self._evaluate(layout)[0]
            if _cheaper(cost, upper):
                upper, start = cost, layout
        # the relaxation's choice, improved by interchange, is often the optimum
        trial = np.zeros_like(start)
        trial[allowed_idx[dual_choice]] = True
        trial = _interchange(_dense(self.costs), self.costs, self.weights, trial, self.allowed,
                             self.fixed, time.perf_counter() + min(0.5, budget))
        cost = self._evaluate(trial)[0]
        if _cheaper(cost, upper):
            upper, start = cost, trial
        y0 = start[allowed_idx].astype(float)
        if np.isfinite(upper):
            if lower >= upper - 1e-9 * max(1.0, abs(upper)):
                return MipResult(OPTIMAL, y0, upper, upper)
        elif lower >= upper_l - 1e-9 * max(1.0, abs(upper_l)):
            # the bound reaches a layout that leaves a client unserved: none serves all
            return MipResult(INFEASIBLE, None, None, None)
        # 2. the MIP over what is left, warm-started when the start survived the fixing
        sites = np.flatnonzero(~closed)
        open_pos = np.flatnonzero(opened | forced)
        ci, sj = self._pairs(open_pos, sites)
        col_of = np.full(ny, -1)
        col_of[sites] = np.arange(sites.size)
        nys, nx = sites.size, ci.size
        row_of = np.full(self.costs.shape[0], -1)
        act = np.unique(ci)
        row_of[act] = np.arange(act.size)
        na = act.size
        xcol = nys + np.arange(nx)
        # rows: [0, na) assignment = 1; [na, na+nx) x - y <= 0; last: Σy = p
        a = columns([
            (row_of[ci], xcol, np.ones(nx)),
            (na + np.arange(nx), xcol, np.ones(nx)),
            (na + np.arange(nx), col_of[sj], -np.ones(nx)),
            (np.full(nys, na + nx), np.arange(nys), np.ones(nys)),
        ], (na + nx + 1, nys + nx))
        lower_b = np.zeros(nys + nx)
        lower_b[col_of[open_pos]] = 1.0
        mip = Mip(
            cost=np.concatenate([np.zeros(nys),
                                 self.weights[ci] * self.costs[ci, allowed_idx[sj]]]),
            lower=lower_b, upper=np.ones(nys + nx),
            integer=np.r_[np.ones(nys, bool), np.zeros(nx, bool)],
            matrix=a,
            row_lower=np.r_[np.ones(na), np.full(nx, -np.inf), self.p],
            row_upper=np.r_[np.ones(na), np.zeros(nx), self.p],
        )
        x0 = None
        if np.isfinite(upper) and not (y0[closed] > 0.5).any() and (y0[open_pos] > 0.5).all():
            full_assign = self._evaluate(start)[1]
            x0 = np.r_[y0[sites], (allowed_idx[sj] == full_assign[ci]).astype(float)]
            # a client tied between two open sites: keep one assignment only
            first = np.unique(ci[x0[nys:] > 0.5], return_index=True)[1]
            on = np.flatnonzero(x0[nys:] > 0.5)
            x0[nys:] = 0.0
            x0[nys + on[first]] = 1.0
        remaining = max(0.01, time_limit - (time.perf_counter() - started))
        res = solve_mip(mip, x0, remaining, reporter, mip_gap)
        if res.status == INFEASIBLE:  # nothing better than the start exists
            if np.isfinite(upper):
                return MipResult(OPTIMAL, y0, upper, upper)
            return MipResult(INFEASIBLE, None, None, None)
        y = y0.copy()
        objective = upper
        if res.x is not None and res.objective is not None and res.objective < upper:
            y = np.zeros(ny)
            y[sites] = res.x[:nys]
            objective = res.objective
        bound = lower if res.bound is None else max(lower, min(res.bound, upper))
        if res.status == OPTIMAL:
            bound = objective
        return MipResult(res.status, y, objective, bound)

    def _infeasible_message(self) -> str:
        return self._unserved_message(
            self._heuristic_layout, f"no layout of {self._sites_text()} serves every client; "
            "the heuristic's layout") or super()._infeasible_message()


def _cheaper(cost: float, upper: float) -> bool:
    """``cost`` beats ``upper`` by more than rounding (any finite cost beats ``inf``)."""
    if not np.isfinite(upper):
        return bool(np.isfinite(cost))
    return bool(cost < upper - 1e-9 * max(1.0, abs(upper)))


#: Below this share of finite pairs the Lagrangian works on the finite pairs only.
SPARSE_BELOW = 0.25


class _Relaxation:
    """The weighted costs as the Lagrangian needs them: dense, or the finite pairs only.

    The pairs left out cost more than any multiplier reaches, so they add
    nothing to ``ρ`` or to the subgradient: both forms give the same numbers.
    """

    def __init__(self, c: np.ndarray, pairs: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.c = c
        self.n, self.m = c.shape
        self.pairs = pairs
        if pairs is not None:  # row-major from np.nonzero: sorted by client
            self.pi, self.pj = pairs
            self.pv = c[self.pi, self.pj]
            self.big = float(c.max())
            self.starts = np.searchsorted(self.pi, np.arange(self.n))

    def rho(self, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``ρ_j = Σ_i min(0, c_ij - λ_i)`` and the differences ``c - λ``."""
        if self.pairs is None:
            diff = self.c - lam[:, None]
            return np.minimum(diff, 0.0).sum(axis=0), diff
        diff = self.pv - lam[self.pi]
        return np.bincount(self.pj, np.minimum(diff, 0.0), minlength=self.m), diff

    def served(self, diff: np.ndarray, chosen: np.ndarray) -> np.ndarray:
        """Per client, the chosen sites cheaper than its multiplier."""
        if self.pairs is None:
            return (diff[:, chosen] < 0).sum(axis=1)
        return np.bincount(self.pi, (diff < 0) & chosen[self.pj], minlength=self.n)

    def cost(self, chosen: np.ndarray) -> float:
        """The layout's cost, each client at its cheapest chosen site."""
        if self.pairs is None:
            return float(self.c[:, chosen].min(axis=1).sum())
        vals = np.where(chosen[self.pj], self.pv, self.big)
        return float(np.minimum.reduceat(vals, self.starts).sum())


def _lagrangian(c: np.ndarray, p: int, forced: np.ndarray, upper: float, lam: np.ndarray,
                integral: bool, deadline: float, reporter: Reporter,
                pairs: tuple[np.ndarray, np.ndarray] | None = None,
                serves_below: float = np.inf,
                ) -> tuple[float, np.ndarray, np.ndarray, float, np.ndarray | None, np.ndarray]:
    """Subgradient optimisation of the p-median's Lagrangian dual.

    Relaxing "each client assigned once" with multipliers ``λ`` leaves
    ``L(λ) = Σλ + Σ_{p chosen j} ρ_j``, ``ρ_j = Σ_i min(0, c_ij - λ_i)``:
    a lower bound for any ``λ``, computed in one pass over ``c`` (clients ×
    sites, weighted costs). From the best ``λ``, forcing a site the bound
    left out open (or one it chose closed) costs at least the difference of
    their ``ρ``; where that lifts the bound to ``upper`` the site can be
    fixed, shrinking the MIP.

    The sites each relaxation chooses are also tried as a layout: near the
    dual optimum they often are the optimal one, which closes the gap at once.

    Returns
    -------
    bound, closed, opened, upper, layout, dual_choice
        The best bound (rounded up for integral costs); the sites proven
        closed / open in every layout better than ``upper``; the best layout's
        cost and its sites (None when none beat the ``upper`` given); the
        sites the relaxation chooses at the best multipliers.

    ``serves_below``: an incumbent costing this or more leaves a client
    unserved (the start did); it is not reported as an objective.
    """
    m = c.shape[1]
    free = ~forced
    k = p - int(forced.sum())
    best, best_lam = -np.inf, lam.copy()
    theta, stall = 2.0, 0
    tol = 1e-9 * max(1.0, abs(upper))

    def rounded(v: float) -> float:
        return float(np.ceil(v - 1e-6)) if integral else v

    layout: np.ndarray | None = None
    relax = _Relaxation(c, pairs)
    first = True  # one step whatever the deadline: L(λ₀) is a bound already
    while first or (time.perf_counter() < deadline and theta > 1e-3):
        first = False
        rho, diff = relax.rho(lam)
        free_idx = np.flatnonzero(free)
        chosen = forced.copy()
        chosen[free_idx[np.argpartition(rho[free_idx], k - 1)[:k]]] = True
        value = float(lam.sum() + rho[chosen].sum())
        if value > best + tol:
            best, best_lam, stall = value, lam.copy(), 0
            cost = relax.cost(chosen)
            if cost < upper - tol:
                upper, layout = cost, chosen.copy()
        else:
            stall += 1
            if stall >= 30:
                theta, stall = theta / 2, 0
        if rounded(best) >= upper - tol:
            break
        shown = upper if upper < serves_below else None  # no layout serving all yet
        if not reporter.report("exact", shown, rounded(best)) and reporter.error is not None:
            raise reporter.error
        g = 1.0 - relax.served(diff, chosen)
        norm = float(g @ g)
        if norm == 0:  # the relaxation's answer is a layout: the bound is its cost
            break
        lam = lam + theta * (upper - value) / norm * g
    rho = relax.rho(best_lam)[0]
    free_idx = np.flatnonzero(free)
    order = free_idx[np.argsort(rho[free_idx], kind="stable")]
    chosen_free, other = order[:k], order[k:]
    closed = np.zeros(m, dtype=bool)
    opened = np.zeros(m, dtype=bool)
    if other.size:
        last, nxt = float(rho[chosen_free].max()), float(rho[other].min())
        for j in other:
            if rounded(best + rho[j] - last) >= upper - tol:
                closed[j] = True
        for j in chosen_free:
            if rounded(best - rho[j] + nxt) >= upper - tol:
                opened[j] = True
    dual_choice = forced.copy()
    dual_choice[chosen_free] = True
    return rounded(best), closed, opened, upper, layout, dual_choice


# ------------------------------------------------------------ capacitated p-median


class _IncumbentReporter(Reporter):
    """Passes an inner solve's bound on, with the outer model's best objective."""

    def __init__(self, outer: Reporter, objective: float | None) -> None:
        super().__init__(outer.on_progress, outer.started, outer.time_limit, outer.sign)
        self.outer = outer
        self.objective = objective

    def report(self, phase: str, objective: float | None, bound: float | None,
               *, force: bool = False) -> bool:
        ok = self.outer.report(phase, self.objective, bound, force=force)
        self.error = self.outer.error
        return ok


class CapacitatedPMedian(PMedian):
    """Capacitated p-median: p-median where each site serves at most its capacity.

    Every client is served whole by one site (single sourcing: a building's
    refuse goes to one refuse building). Capacities that cannot serve the
    demand give ``status == "infeasible"`` with a ``message`` saying why — no
    exception.

    With ``fill_fixed=True`` each fixed site must be used to exactly its
    capacity (spopt's ``fulfill_predefined_fac``: a school that must take its
    quota of students).

    The exact phase first solves the uncapacitated p-median on the same costs
    (up to :attr:`median_share` of the time limit): capacities can only raise
    the optimum, so its bound is this model's bound until the capacitated
    MIP's own is better, and its layout, assigned within the capacities, is a
    candidate. Where capacities do not bind, that proves the optimum without
    the (much larger) capacitated MIP; where they do, a time limit still
    returns a useful gap.

    Examples
    --------
    >>> import numpy as np
    >>> costs = np.array([[1, 9], [2, 8], [3, 1]], dtype=float)
    >>> m = CapacitatedPMedian.from_cost_matrix(costs, p=2, capacities=[2, 2]).solve()
    >>> m.assignment, m.objective
    ([0, 0, 1], 4.0)
    >>> m = CapacitatedPMedian.from_cost_matrix(costs, p=2, capacities=[1, 1]).solve()
    >>> m.status, m.message
    ('infeasible', 'the 2 largest capacities (2) cannot serve the demand (3)')
    """

    reduce_pairs = False

    def __init__(self, *args: Any, capacities: np.ndarray, fill_fixed: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.capacities = capacities
        self.fill_fixed = fill_fixed
        # the exact phase's assignment, used by _evaluate until the layout is set
        self._assign_override: np.ndarray | None = None
        # the uncapacitated heuristic's layout: where the bounding p-median starts
        self._median_start: np.ndarray | None = None
        self._cap_pairs: tuple[np.ndarray, np.ndarray, int] = (np.zeros(0, int),
                                                                np.zeros(0, int), 0)

    @classmethod
    def from_cost_matrix(cls, costs: Any, weights: Any = None, *, p: int,  # type: ignore[override]
                         capacities: Any, fixed: Sequence[Hashable] | None = None,
                         candidates: Sequence[Hashable] | None = None,
                         fill_fixed: bool = False,
                         site_ids: Sequence[Hashable] | None = None,
                         client_ids: Sequence[Hashable] | None = None) -> Self:
        """Build a capacitated p-median model.

        Parameters
        ----------
        costs, weights, p, fixed, candidates, site_ids, client_ids
            As for :meth:`PMedian.from_cost_matrix`; weights are the demand
            that uses capacity (households, kg/day).
        capacities : array_like, shape (sites,)
            What each site can serve, in the weights' unit.
        fill_fixed : bool
            Fixed sites must be filled to exactly their capacity.

        Returns
        -------
        CapacitatedPMedian

        Raises
        ------
        PlacementInputError
            As :meth:`PMedian.from_cost_matrix`, or capacities of the wrong
            length or negative.
        """
        kw = cls._prepare(costs, weights, p, fixed, candidates, site_ids, client_ids)
        cap = np.asarray(capacities, dtype=np.float64).ravel()
        m = kw["costs"].shape[1]
        if cap.shape != (m,):
            raise bad(f"capacities has {cap.size} values for {m} sites")
        if np.isnan(cap).any() or (cap < 0).any():
            raise bad("capacities must be non-negative")
        return cls(**kw, capacities=cap, fill_fixed=bool(fill_fixed))

    def _infeasible_reason(self) -> str | None:
        reason = super()._infeasible_reason()
        if reason is not None:
            return reason
        assert self.p is not None
        demand = float(self.weights.sum())
        fixed_cap = float(self.capacities[self.fixed].sum())
        others = np.sort(self.capacities[self.allowed & ~np.isin(
            np.arange(self.capacities.size), self.fixed)])[::-1]
        best = fixed_cap + float(others[: self.p - self.fixed.size].sum())
        if best < demand - 1e-9:
            return (f"the {self.p} largest capacities ({best:g}) cannot serve "
                    f"the demand ({demand:g})")
        if self.fill_fixed and fixed_cap > demand + 1e-9:
            return (f"the fixed sites' capacity ({fixed_cap:g}) is more than the "
                    f"demand ({demand:g}), so they cannot be filled")
        return None

    def _infeasible_message(self) -> str:
        return (f"no layout of {self.p} sites can serve every client within the "
                "capacities (each client served whole by one site)")

    def _evaluate(self, is_open: np.ndarray) -> tuple[float, np.ndarray]:
        assign = self._assign_override
        if assign is None:
            assign = self._capacitated_assign(is_open)
        if assign is None or (assign < 0).any():
            return np.inf, np.full(self.costs.shape[0], -1)
        return float(np.dot(self.weights, self.costs[np.arange(assign.size), assign])), assign

    def _capacitated_assign(self, is_open: np.ndarray) -> np.ndarray | None:
        """Each client to its nearest open site when that fits the capacities
        (then no assignment of the layout is cheaper); else greedy by regret:
        the client with most to lose picks first."""
        open_idx = np.flatnonzero(is_open)
        d = self.costs[:, open_idx]
        n = d.shape[0]
        if open_idx.size and not self.fill_fixed:
            near = open_idx[np.argmin(d, axis=1)]
            load = np.bincount(near, weights=self.weights, minlength=self.costs.shape[1])
            if np.isfinite(d.min(axis=1)).all() and (
                    load[open_idx] <= self.capacities[open_idx] + 1e-9).all():
                return near
        left = self.capacities[open_idx].copy()
        assign = np.full(n, -1)
        srt = np.sort(d, axis=1)
        regret = (srt[:, 1] - srt[:, 0]) if open_idx.size > 1 else srt[:, 0]
        regret = np.where(np.isfinite(regret), regret, np.finfo(float).max)
        for i in np.argsort(-regret * np.maximum(self.weights, TOL), kind="stable"):
            ok = (left >= self.weights[i] - 1e-9) & np.isfinite(d[i])
            if not ok.any():
                return None
            k = int(np.argmin(np.where(ok, d[i], np.inf)))
            assign[i] = open_idx[k]
            left[k] -= self.weights[i]
        if self.fill_fixed:
            used = np.bincount(assign, weights=self.weights, minlength=self.costs.shape[1])
            if not np.allclose(used[self.fixed], self.capacities[self.fixed]):
                return None
        return assign

    def _heuristic(self) -> np.ndarray | None:
        self._assign_override = None
        start = super()._heuristic()
        self._median_start = start  # the uncapacitated layout, for the bound
        if start is None or self._capacitated_assign(start) is None:
            return None
        return start

    def _median_bound(self, start: np.ndarray | None, time_limit: float,
                      reporter: Reporter) -> tuple[float | None, np.ndarray | None]:
        """A lower bound from the uncapacitated p-median, and a layout it suggests.

        Capacities only take layouts and assignments away, so the p-median's
        optimum on the same costs — or any lower bound of it (its Lagrangian
        bound first, then its MIP's) — bounds this model from below. It is
        solved within ``time_limit``; its best layout, assigned within the
        capacities, is returned when it beats ``start``. Progress reports show
        the capacitated incumbent against this bound.
        """
        assert self.p is not None
        median_start = self._median_start
        if median_start is None:
            return None, start
        upper = self._evaluate(start)[0] if start is not None else None
        median = PMedian(self.costs, self.weights, p=self.p, site_ids=self.site_ids,
                         client_ids=self.client_ids, fixed=self.fixed, allowed=self.allowed)
        inner = _IncumbentReporter(reporter, upper)
        res = median._exact(median_start, time_limit, inner, 0.0)
        if reporter.error is not None:
            raise reporter.error
        bound = res.bound if res.bound is not None and np.isfinite(res.bound) else None
        # every client at least walks to its nearest site: a bound in no time
        active = self.weights > 0
        trivial = float(self.weights[active] @ self.costs[np.ix_(active, self.allowed)]
                        .min(axis=1))
        bound = trivial if bound is None else max(bound, trivial)
        if res.x is not None:
            layout = np.zeros(len(self.site_ids), dtype=bool)
            layout[np.flatnonzero(self.allowed)] = res.x[: int(self.allowed.sum())] > 0.5
            cost = self._evaluate(layout)[0]
            if np.isfinite(cost) and (upper is None or cost < upper - TOL * max(1.0, upper)):
                start = layout
        return bound, start

    def _set_layout(self, is_open: np.ndarray) -> None:
        super()._set_layout(is_open)
        self._assign_override = None

    def _layout_from(self, x: np.ndarray) -> np.ndarray:
        is_open = super()._layout_from(x)
        ci, sj, _ = self._cap_pairs
        allowed_idx = np.flatnonzero(self.allowed)
        ny = allowed_idx.size
        chosen = x[ny:] > 0.5
        assign = np.full(self.costs.shape[0], -1)
        assign[ci[chosen]] = allowed_idx[sj[chosen]]
        self._assign_override = assign
        return is_open

    #: Share of the time limit the uncapacitated p-median's bound may take.
    median_share: float = 0.5

    def _exact(self, start: np.ndarray | None, time_limit: float, reporter: Reporter,
               mip_gap: float) -> MipResult:
        assert self.p is not None
        started = time.perf_counter()
        known, start = self._median_bound(start, self.median_share * time_limit, reporter)
        allowed_idx = np.flatnonzero(self.allowed)
        ny = allowed_idx.size
        d = self.costs[:, allowed_idx]
        ci, sj = np.nonzero(np.isfinite(d))
        nx = ci.size
        n = self.costs.shape[0]
        self._cap_pairs = (ci, sj, nx)
        xcol = ny + np.arange(nx)
        w = self.weights
        cap = self.capacities[allowed_idx]
        # rows: [0,n) Σx = 1; [n, n+ny) Σ w x - cap y <= 0; [.., +nx) x - y <= 0; Σy = p
        r_cap, r_link, r_p = n, n + ny, n + ny + nx
        a = columns([
            (ci, xcol, np.ones(nx)),
            (r_cap + sj, xcol, w[ci]),
            (r_cap + np.arange(ny), np.arange(ny), -cap),
            (r_link + np.arange(nx), xcol, np.ones(nx)),
            (r_link + np.arange(nx), sj, -np.ones(nx)),
            (np.full(ny, r_p), np.arange(ny), np.ones(ny)),
        ], (r_p + 1, ny + nx))
        cap_lower = np.full(ny, -np.inf)
        fixed_pos = np.searchsorted(allowed_idx, self.fixed)
        if self.fill_fixed:
            cap_lower[fixed_pos] = 0.0  # Σ w x - cap y >= 0 too: filled exactly
        lower = np.zeros(ny + nx)
        lower[fixed_pos] = 1.0
        mip = Mip(
            cost=np.r_[np.zeros(ny), w[ci] * d[ci, sj]],
            lower=lower, upper=np.ones(ny + nx),
            integer=np.ones(ny + nx, bool),
            matrix=a,
            row_lower=np.r_[np.ones(n), cap_lower, np.full(nx, -np.inf), self.p],
            row_upper=np.r_[np.ones(n), np.zeros(ny), np.zeros(nx), self.p],
        )
        x0 = None
        upper = None
        if start is not None:
            assign = self._capacitated_assign(start)
            if assign is not None:
                x0 = np.r_[start[allowed_idx].astype(float),
                           (allowed_idx[sj] == assign[ci]).astype(float)]
                upper = float(np.dot(w, self.costs[np.arange(n), assign]))
        if upper is not None and known is not None and \
                known >= upper - 1e-9 * max(1.0, abs(upper)):
            return MipResult(OPTIMAL, x0, upper, upper)  # the bound proves the start
        remaining = max(0.01, time_limit - (time.perf_counter() - started))
        res = solve_mip(mip, x0, remaining, reporter, mip_gap, known_bound=known)
        if res.status == INFEASIBLE or known is None or res.status == OPTIMAL:
            return res
        bound = known if res.bound is None else max(known, res.bound)
        if res.objective is not None:
            bound = min(bound, res.objective)
        return MipResult(res.status, res.x, res.objective, bound)
