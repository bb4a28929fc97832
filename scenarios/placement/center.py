"""p-center: the shortest longest distance."""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from scenarios.placement._solver import OPTIMAL, TIME_LIMIT, MipResult, Reporter, solve_mip
from scenarios.placement._sparse import SparseCosts, segment_max
from scenarios.placement.base import FacilityModel
from scenarios.placement.coverage import greedy_cover, set_cover_mip


def _worst_if_added(sc: SparseCosts, near: np.ndarray) -> np.ndarray:
    """Per site ``j``, the longest of ``min(near_i, d_ij)`` over the clients.

    ``near``: each client's cost now (``-inf`` for a client that does not
    count). Over the finite pairs: the clients ``j`` reaches give
    ``min(near_i, d_ij)``; the others keep ``near_i``, and their largest is
    found by walking the clients from the worst served down, each step
    settling the sites that do not reach that client.
    """
    counts = np.diff(sc.site_ptr)
    inside = segment_max(np.minimum(near[sc.site_row], sc.site_val), sc.site_ptr[:-1], counts)
    outside = np.full(sc.m, -np.inf)
    left = np.arange(sc.m)
    for i in np.argsort(-near, kind="stable"):
        if near[i] == -np.inf or not left.size:
            break
        reach = np.isin(left, sc.col[sc.ptr[i]:sc.ptr[i + 1]], assume_unique=True)
        outside[left[~reach]] = near[i]
        left = left[reach]
    return np.maximum(inside, outside)


class PCenter(FacilityModel):
    """p-center: open ``p`` sites so that the longest client distance is least.

    Solved exactly by bisection over the distinct distances: a radius is
    feasible when a set cover within it needs at most ``p`` sites (a HiGHS
    MIP per step). ``bound`` is the largest radius proven infeasible (or the
    farthest client's nearest candidate). Clients of weight 0 are ignored.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0.0, 2.0, 7.0, 10.0])
    >>> costs = np.abs(x[:, None] - x[None, :])
    >>> m = PCenter.from_cost_matrix(costs, p=2).solve()
    >>> m.objective, m.status
    (3.0, 'optimal')
    """

    @classmethod
    def from_cost_matrix(cls, costs: Any, weights: Any = None, *, p: int,
                         fixed: Sequence[Hashable] | None = None,
                         candidates: Sequence[Hashable] | None = None,
                         site_ids: Sequence[Hashable] | None = None,
                         client_ids: Sequence[Hashable] | None = None) -> Self:
        """Build a p-center model; parameters as :meth:`PMedian.from_cost_matrix`.

        Returns
        -------
        PCenter

        Raises
        ------
        PlacementInputError
            As :meth:`PMedian.from_cost_matrix`.
        """
        return cls(**cls._prepare(costs, weights, p, fixed, candidates, site_ids, client_ids))

    def _evaluate(self, is_open: np.ndarray) -> tuple[float, np.ndarray]:
        if self.sparse:
            assign, near = self._nearest_open(is_open)
            return float(near[self.weights > 0].max()), assign
        _, assign = super()._evaluate(is_open)
        need = self.weights > 0
        near = self.costs[np.flatnonzero(need)][:, is_open].min(axis=1)
        return float(near.max()), assign

    def _heuristic_sparse(self) -> np.ndarray:
        """The greedy and interchange of :meth:`_heuristic` over the finite pairs."""
        assert self.p is not None
        sc = self._finite
        skip = self.weights <= 0  # clients that do not count: -inf, never the longest
        is_open = np.zeros(sc.m, dtype=bool)
        is_open[self.fixed] = True
        near = np.where(skip, -np.inf, sc.nearest(is_open)[1])
        closed = self.allowed & ~is_open
        for _ in range(self.p - int(is_open.sum())):
            j = -1
            if time.perf_counter() < self._deadline:
                # the site that makes the longest walk shortest
                worst = np.where(closed, _worst_if_added(sc, near), np.inf)
                j = int(np.argmin(worst))
                if not np.isfinite(worst[j]):
                    j = -1  # none serves everyone yet
            if j < 0:  # serve the worst-served client (Gonzalez)
                far = int(np.argmax(near))
                mine = sc.col[sc.ptr[far]:sc.ptr[far + 1]]
                d = np.where(closed[mine], sc.val[sc.ptr[far]:sc.ptr[far + 1]], np.inf)
                j = int(mine[np.argmin(d)]) if np.isfinite(d).any() else \
                    int(np.flatnonzero(closed)[0])
            is_open[j], closed[j] = True, False
            rows, vals = sc.site(j)
            near[rows] = np.where(skip[rows], -np.inf, np.minimum(near[rows], vals))
        removable = is_open.copy()
        removable[self.fixed] = False
        best = float(near.max())
        improved = True
        while improved and time.perf_counter() < self._deadline:
            improved = False
            first, d1, _, d2 = sc.nearest_two(is_open)
            for r in np.flatnonzero(removable):
                if time.perf_counter() >= self._deadline:
                    break
                rest = is_open.copy()
                rest[r] = False
                base = np.where(skip, -np.inf, np.where(first == r, d2, d1))
                worst = np.where(self.allowed & ~rest, _worst_if_added(sc, base), np.inf)
                j = int(np.argmin(worst))
                if worst[j] < best - 1e-12:
                    is_open, best = rest, float(worst[j])
                    is_open[j] = True
                    removable[r], removable[j] = False, True
                    improved = True
                    break
        return is_open

    def _heuristic(self) -> np.ndarray | None:
        assert self.p is not None
        if self.sparse:
            return self._heuristic_sparse()
        d = self.costs[self.weights > 0]
        is_open = np.zeros(d.shape[1], dtype=bool)
        is_open[self.fixed] = True
        near = d[:, is_open].min(axis=1) if is_open.any() else np.full(d.shape[0], np.inf)
        closed = self.allowed & ~is_open
        for _ in range(self.p - int(is_open.sum())):
            if time.perf_counter() < self._deadline:
                # the site that makes the longest walk shortest
                worst = np.minimum(near[:, None], d).max(axis=0)
                worst[~closed] = np.inf
                j = int(np.argmin(worst))
            else:  # out of time: serve the worst-served client (Gonzalez)
                far = int(np.argmax(near))
                j = int(np.argmin(np.where(closed, d[far], np.inf)))
            is_open[j], closed[j] = True, False
            near = np.minimum(near, d[:, j])
        removable = is_open.copy()
        removable[self.fixed] = False
        best = float(near.max())
        improved = True
        while improved and time.perf_counter() < self._deadline:
            improved = False
            for r in np.flatnonzero(removable):
                if time.perf_counter() >= self._deadline:
                    break
                rest = is_open.copy()
                rest[r] = False
                base = d[:, rest].min(axis=1) if rest.any() else np.full(d.shape[0], np.inf)
                worst = np.minimum(base[:, None], d).max(axis=0)
                worst[~self.allowed | rest] = np.inf
                j = int(np.argmin(worst))
                if worst[j] < best - 1e-12:
                    is_open, best = rest, float(worst[j])
                    is_open[j] = True
                    removable[r], removable[j] = False, True
                    improved = True
                    break
        return is_open

    def _exact(self, start: np.ndarray | None, time_limit: float, reporter: Reporter,
               mip_gap: float) -> MipResult:
        assert self.p is not None and start is not None
        started = time.perf_counter()
        allowed_idx = np.flatnonzero(self.allowed)
        need = np.flatnonzero(self.weights > 0)
        fixed_pos = np.searchsorted(allowed_idx, self.fixed)
        upper = self._evaluate(start)[0]
        lower = float(self._row_min(self.allowed)[need].max())  # every client needs some site
        if self.sparse:  # the finite pairs, their clients numbered among the needy ones
            ci, sj, v = self._pairs_in(allowed_idx, need)
            ci = np.searchsorted(need, ci)
            radii = np.unique(v)
        else:
            d = self.costs[np.ix_(need, allowed_idx)]
            radii = np.unique(d[np.isfinite(d)])
        radii = radii[(radii >= lower - 1e-12) & (radii < upper)]
        best = start[allowed_idx].astype(float)
        lo, hi = 0, radii.size  # radii[:lo] proven infeasible; radii[hi] (or upper) feasible
        proven_lower = lower
        while lo < hi:
            remaining = time_limit - (time.perf_counter() - started)
            if remaining <= 0:
                return MipResult(TIME_LIMIT, best, upper, proven_lower)
            mid = (lo + hi) // 2
            r = float(radii[mid])
            cover: np.ndarray | sp.csr_array
            if self.sparse:
                within = v <= r
                cover = sp.csr_array((np.ones(int(within.sum()), dtype=bool),
                                      (ci[within], sj[within])),
                                     shape=(need.size, allowed_idx.size))
            else:
                cover = d <= r
            greedy = greedy_cover(cover, np.ones(allowed_idx.size, bool), fixed_pos,
                                   limit=self.p)
            if greedy is not None:
                x: np.ndarray | None = greedy.astype(float)
            else:
                silent = Reporter(None, started, remaining)
                res = solve_mip(set_cover_mip(cover, allowed_idx, fixed_pos, self.p), None,
                                 remaining, silent)
                if res.status == TIME_LIMIT and res.x is None:
                    return MipResult(TIME_LIMIT, best, upper, proven_lower)
                x = res.x
            if x is not None:
                hi, upper, best = mid, r, x
            else:
                lo = mid + 1
                proven_lower = float(radii[lo]) if lo < radii.size else upper
            if not reporter.report("exact", upper, proven_lower) and reporter.error:
                raise reporter.error
        return MipResult(OPTIMAL, best, upper, upper)
