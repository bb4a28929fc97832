"""p-center: the shortest longest distance."""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from typing import Any, Self

import numpy as np

from scenarios.placement._solver import OPTIMAL, TIME_LIMIT, MipResult, Reporter, solve_mip
from scenarios.placement.base import FacilityModel
from scenarios.placement.coverage import greedy_cover, set_cover_mip


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
        _, assign = super()._evaluate(is_open)
        need = self.weights > 0
        near = self.costs[np.flatnonzero(need)][:, is_open].min(axis=1)
        return float(near.max()), assign

    def _heuristic(self) -> np.ndarray | None:
        assert self.p is not None
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
        d = self.costs[np.ix_(self.weights > 0, allowed_idx)]
        fixed_pos = np.searchsorted(allowed_idx, self.fixed)
        upper = self._evaluate(start)[0]
        lower = float(d.min(axis=1).max())  # every client needs some site
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
