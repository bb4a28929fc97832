"""Coverage models: maximal covering (MCLP) and set covering (LSCP)."""

from __future__ import annotations

import heapq
import time
from collections.abc import Hashable, Sequence
from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from scenarios.placement._solver import Mip, MipResult, Reporter, columns, solve_mip
from scenarios.placement.base import FacilityModel


class CoverageModel(FacilityModel):
    """Models over the coverage matrix: a client is covered within ``reach``.

    ``cover`` is a boolean clients × sites array, or for sparse ``costs`` a
    boolean ``scipy.sparse.csr_array`` holding the pairs within reach.
    """

    def __init__(self, *args: Any, reach: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reach = reach
        within = reach + 1e-9 * max(1.0, reach)
        self.cover: np.ndarray | sp.csr_array
        if self.sparse:
            f = self._finite
            keep = f.val <= within
            self.cover = sp.csr_array((np.ones(int(keep.sum()), dtype=bool),
                                       (f.row[keep], f.col[keep])), shape=f.csr.shape)
            self._cover_rows = f.row[keep]
        else:
            self.cover = self.costs <= within

    def _covered_by(self, is_open: np.ndarray) -> np.ndarray:
        """Per client: within the reach of a site of ``is_open``."""
        if isinstance(self.cover, np.ndarray):
            return np.asarray((self.cover & is_open[None, :]).any(axis=1))
        hit = self._cover_rows[is_open[self.cover.indices]]
        return np.bincount(hit, minlength=self.cover.shape[0]) > 0

    @property
    def covered(self) -> np.ndarray:
        """Per client: within the reach of an open site."""
        return self._covered_by(self.is_open)

    @property
    def percentage_covered(self) -> float:
        """Share of clients (by count, as spopt's ``perc_cov``) covered, in %."""
        return 100.0 * float(self.covered.mean())

    @property
    def covered_weight(self) -> float:
        """Demand within the reach of an open site."""
        return float(self.weights[self.covered].sum())


class MCLP(CoverageModel):
    """Maximal covering: open ``p`` sites so that most demand is within ``reach``.

    ``objective`` is the covered weight (maximised; ``bound`` is an upper
    bound); clients are assigned to their nearest open site, covered or not.

    Examples
    --------
    >>> import numpy as np
    >>> costs = np.array([[1, 9, 9], [2, 9, 9], [9, 1, 9], [9, 9, 1]], dtype=float)
    >>> m = MCLP.from_cost_matrix(costs, weights=[1, 1, 3, 1], p=2, reach=2).solve()
    >>> m.sites, m.objective, m.percentage_covered
    ([0, 1], 5.0, 75.0)
    """

    _sense = -1.0
    _serves_all = False
    #: Leave out of the MIP the sites another covers a superset of (never needed).
    drop_dominated: bool = True

    @classmethod
    def from_cost_matrix(cls, costs: Any, weights: Any = None, *, p: int, reach: float,
                         fixed: Sequence[Hashable] | None = None,
                         candidates: Sequence[Hashable] | None = None,
                         site_ids: Sequence[Hashable] | None = None,
                         client_ids: Sequence[Hashable] | None = None) -> Self:
        """Build a maximal covering model.

        Parameters
        ----------
        costs, weights, p, fixed, candidates, site_ids, client_ids
            As for :meth:`PMedian.from_cost_matrix`.
        reach : float
            A client is covered by a site at a cost of at most ``reach``.

        Returns
        -------
        MCLP

        Raises
        ------
        PlacementInputError
            As :meth:`PMedian.from_cost_matrix`, or a negative reach.
        """
        r = cls._check_reach(reach)
        return cls(**cls._prepare(costs, weights, p, fixed, candidates, site_ids, client_ids),
                   reach=r)

    def _infeasible_reason(self) -> str | None:
        return None  # an uncovered client is allowed

    def _evaluate(self, is_open: np.ndarray) -> tuple[float, np.ndarray]:
        _, assign = super()._evaluate(is_open)
        covered = self._covered_by(is_open)
        return float(self.weights[covered].sum()), assign

    def _heuristic(self) -> np.ndarray | None:
        assert self.p is not None
        if not isinstance(self.cover, np.ndarray):
            return self._heuristic_sparse()
        covt = np.ascontiguousarray((self.cover & self.allowed[None, :]).T, dtype=np.float32)
        w = self.weights.astype(np.float32)
        is_open = np.zeros(covt.shape[0], dtype=bool)
        is_open[self.fixed] = True
        count = covt[is_open].sum(axis=0)
        # lazy greedy: covered weight is submodular, stale gains are upper bounds
        gains = covt @ (w * (count == 0))
        heap = [(-float(gains[j]), int(j)) for j in np.flatnonzero(self.allowed & ~is_open)]
        heapq.heapify(heap)
        for _ in range(self.p - int(is_open.sum())):
            while True:
                _, j = heapq.heappop(heap)
                fresh = float(covt[j] @ (w * (count == 0)))
                if not heap or fresh >= -heap[0][0]:
                    break
                heapq.heappush(heap, (-fresh, j))
            is_open[j] = True
            count += covt[j]
        # interchange: drop one open site, add the best, while it improves
        removable = is_open.copy()
        removable[self.fixed] = False
        improved = True
        while improved and time.perf_counter() < self._deadline:
            improved = False
            for r in np.flatnonzero(removable):
                if time.perf_counter() >= self._deadline:
                    break
                count_wo = count - covt[r]
                loss = float(w[(count_wo == 0) & (count > 0)].sum())
                gain = covt @ (w * (count_wo == 0))
                gain[~self.allowed | is_open] = -1.0
                j = int(np.argmax(gain))
                if gain[j] > loss + 1e-6 * max(1.0, loss):
                    is_open[r], is_open[j] = False, True
                    removable[r], removable[j] = False, True
                    count = count_wo + covt[j]
                    improved = True
        return is_open

    def _heuristic_sparse(self) -> np.ndarray:
        """The greedy and interchange of :meth:`_heuristic` over the pairs within reach."""
        assert self.p is not None and not isinstance(self.cover, np.ndarray)
        n, m = self.cover.shape
        keep = self.allowed[self.cover.indices]
        # sites × clients: who each allowed site covers
        covt = sp.csr_array((np.ones(int(keep.sum())),
                             (self.cover.indices[keep], self._cover_rows[keep])), shape=(m, n))
        ptr, who = covt.indptr, covt.indices
        site_of = np.repeat(np.arange(m), np.diff(ptr))
        w = self.weights
        is_open = np.zeros(m, dtype=bool)
        is_open[self.fixed] = True
        count = np.bincount(who[is_open[site_of]], minlength=n)

        def gains(uncovered: np.ndarray) -> np.ndarray:
            return np.bincount(site_of, (w * uncovered)[who], minlength=m)

        # lazy greedy: covered weight is submodular, stale gains are upper bounds
        g = gains(count == 0)
        heap = [(-float(g[j]), int(j)) for j in np.flatnonzero(self.allowed & ~is_open)]
        heapq.heapify(heap)
        for _ in range(self.p - int(is_open.sum())):
            while True:
                _, j = heapq.heappop(heap)
                mine = who[ptr[j]:ptr[j + 1]]
                fresh = float(w[mine] @ (count[mine] == 0))
                if not heap or fresh >= -heap[0][0]:
                    break
                heapq.heappush(heap, (-fresh, j))
            is_open[j] = True
            count[who[ptr[j]:ptr[j + 1]]] += 1
        # interchange: drop one open site, add the best, while it improves
        removable = is_open.copy()
        removable[self.fixed] = False
        improved = True
        while improved and time.perf_counter() < self._deadline:
            improved = False
            for r in np.flatnonzero(removable):
                if time.perf_counter() >= self._deadline:
                    break
                mine = who[ptr[r]:ptr[r + 1]]
                count_wo = count.copy()
                count_wo[mine] -= 1
                loss = float(w[mine][count[mine] == 1].sum())
                gain = gains(count_wo == 0)
                gain[~self.allowed | is_open] = -1.0
                j = int(np.argmax(gain))
                if gain[j] > loss + 1e-6 * max(1.0, loss):
                    is_open[r], is_open[j] = False, True
                    removable[r], removable[j] = False, True
                    count = count_wo
                    count[who[ptr[j]:ptr[j + 1]]] += 1
                    improved = True
        return is_open

    def _cover_pairs(self, allowed_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(client, site position) of the pairs within reach, clients of positive
        weight and allowed sites only, by client then site."""
        if isinstance(self.cover, np.ndarray):
            ci, sj = np.nonzero(self.cover[:, allowed_idx] & (self.weights > 0)[:, None])
            return ci, sj
        pos = np.full(self.cover.shape[1], -1)
        pos[allowed_idx] = np.arange(allowed_idx.size)
        keep = (pos[self.cover.indices] >= 0) & (self.weights[self._cover_rows] > 0)
        return self._cover_rows[keep], pos[self.cover.indices[keep]]

    def _exact(self, start: np.ndarray | None, time_limit: float, reporter: Reporter,
               mip_gap: float) -> MipResult:
        assert self.p is not None
        allowed_idx = np.flatnonzero(self.allowed)
        ny = allowed_idx.size
        ci, sj = self._cover_pairs(allowed_idx)
        # one z per client any candidate covers (the others count as uncovered)
        active, row = np.unique(ci, return_inverse=True)
        weight = self.weights[active]
        nz = active.size
        fixed_pos = np.searchsorted(allowed_idx, self.fixed)
        # the y columns: every allowed site, or those no other site dominates
        col = np.arange(ny)
        dominator = np.full(ny, -1)
        if self.drop_dominated and nz:
            kept, dominator = _undominated(row, sj, nz, ny, fixed_pos, self.p)
            col = np.flatnonzero(kept)
            pos = np.full(ny, -1)
            pos[col] = np.arange(col.size)
            inside = kept[sj]
            row, sj = row[inside], pos[sj[inside]]
            fixed_pos = pos[fixed_pos]
        nc = col.size
        # rows: [0, nz) z_i - Σ_{j covers i} y_j <= 0; last: Σy = p
        a = columns([
            (np.arange(nz), nc + np.arange(nz), np.ones(nz)),
            (row, sj, -np.ones(sj.size)),
            (np.full(nc, nz), np.arange(nc), np.ones(nc)),
        ], (nz + 1, nc + nz))
        lower = np.zeros(nc + nz)
        lower[fixed_pos] = 1.0
        mip = Mip(
            cost=np.r_[np.zeros(nc), -weight],
            lower=lower, upper=np.ones(nc + nz),
            integer=np.r_[np.ones(nc, bool), np.zeros(nz, bool)],
            matrix=a,
            row_lower=np.r_[np.full(nz, -np.inf), self.p],
            row_upper=np.r_[np.zeros(nz), self.p],
        )
        x0 = None
        if start is not None:
            y0 = _onto(start[allowed_idx], col, dominator)
            covered = np.bincount(row, y0[sj], minlength=nz) > 0
            x0 = np.r_[y0.astype(float), covered.astype(float)]
        res = solve_mip(mip, x0, time_limit, reporter, mip_gap)
        y = None
        if res.x is not None:
            y = np.zeros(ny)
            y[col] = res.x[:nc]
        flip = (lambda v: None if v is None else -v)  # noqa: E731
        return MipResult(res.status, y, flip(res.objective), flip(res.bound))


def _undominated(row: np.ndarray, col: np.ndarray, n: int, m: int, fixed: np.ndarray,
                 p: int) -> tuple[np.ndarray, np.ndarray]:
    """The sites of a covering MIP no other site dominates, and who dominates the rest.

    Site ``j`` is dominated when another covers every client it covers (of
    equal sets, the lowest index stays): some optimal layout then opens the
    other one, or ``j`` adds nothing. Fixed sites stay; when fewer than ``p``
    would stay, the lowest-numbered dominated ones stay too.

    Parameters
    ----------
    row, col : numpy.ndarray
        The (client, site) pairs of the coverage, by client.
    n, m : int
        Clients and sites.
    fixed : numpy.ndarray
        Sites that must stay.
    p : int
        Sites the layout opens.

    Returns
    -------
    kept, dominator
        Per site whether it stays, and for a dropped one an undominated site
        covering all it covers (-1: it covers no one).

    Examples
    --------
    >>> kept, by = _undominated(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 1, 2, 2]),
    ...                         3, 4, np.array([], dtype=int), 2)
    >>> kept.tolist(), by.tolist()  # site 0 covers a part of what 1 does, 3 covers no one
    ([False, True, True, False], [1, -1, -1, -1])
    """
    a = sp.csr_array((np.ones(row.size), (row, col)), shape=(n, m))
    size = np.asarray(a.sum(axis=0)).ravel()
    common = (a.T @ a).tocoo()  # clients two sites both cover
    j, k = common.coords
    sub = (j != k) & (common.data >= size[j])  # j covers nothing k does not
    j, k = j[sub], k[sub]
    better = (size[k] > size[j]) | (k < j)  # k strictly more, or the same set first
    j, k = j[better], k[better]
    dominator = np.full(m, -1)
    order = np.argsort(size[k], kind="stable")  # the largest dominator last, so it wins
    dominator[j[order]] = k[order]
    dropped = (dominator >= 0) | (size == 0)
    dropped[fixed] = False
    dominator[~dropped] = -1
    while (dominator >= 0).any() and dropped[dominator[dominator >= 0]].any():
        on = dominator >= 0  # climb to a dominator that stays
        up = dominator[on]
        dominator[on] = np.where(dropped[up], dominator[up], up)
    kept = ~dropped
    short = p - int(kept.sum())
    if short > 0:
        back = np.flatnonzero(dropped)[:short]
        kept[back] = True
        dominator[back] = -1
    dominator[kept] = -1
    return kept, dominator


def _onto(y: np.ndarray, col: np.ndarray, dominator: np.ndarray) -> np.ndarray:
    """A layout over the sites ``col`` only, covering at least what ``y`` covers.

    Each open site not among them gives way to its dominator, or when that is
    open already (or it covers no one) to the first closed site among them.
    """
    kept = np.zeros(y.size, dtype=bool)
    kept[col] = True
    out = y.astype(bool) & kept
    for j in np.flatnonzero(y.astype(bool) & ~kept):
        k = int(dominator[j])
        if k < 0 or out[k]:
            k = int(np.flatnonzero(kept & ~out)[0])
        out[k] = True
    return out[col]


def set_cover_mip(cover: np.ndarray | sp.sparray, allowed_idx: np.ndarray,
                  fixed_pos: np.ndarray, max_sites: int | None) -> Mip:
    """min Σy s.t. every row of ``cover`` (clients × allowed sites) has an open site."""
    n, ny = cover.shape
    if isinstance(cover, np.ndarray):
        ci, sj = np.nonzero(cover)
    else:  # by client then site, as np.nonzero: the same programme
        csr = sp.csr_array(cover)
        csr.sort_indices()
        ci, sj = csr.nonzero()
    blocks = [(ci, sj, np.ones(ci.size))]
    row_lower, row_upper = [np.ones(n)], [np.full(n, np.inf)]
    if max_sites is not None:
        blocks.append((np.full(ny, n), np.arange(ny), np.ones(ny)))
        row_lower.append(np.array([-np.inf]))
        row_upper.append(np.array([float(max_sites)]))
    lower = np.zeros(ny)
    lower[fixed_pos] = 1.0
    return Mip(cost=np.ones(ny), lower=lower, upper=np.ones(ny), integer=np.ones(ny, bool),
                matrix=columns(blocks, (n + (max_sites is not None), ny)),
                row_lower=np.concatenate(row_lower), row_upper=np.concatenate(row_upper))


def greedy_cover(cover: np.ndarray | sp.sparray, allowed: np.ndarray, fixed: np.ndarray,
                 limit: int | None = None) -> np.ndarray | None:
    """Greedy set cover, then drop redundant non-fixed sites; None if it cannot cover."""
    if not isinstance(cover, np.ndarray):
        return _greedy_cover_sparse(sp.csc_array(cover), allowed, fixed, limit)
    c = cover & allowed[None, :]
    is_open = np.zeros(c.shape[1], dtype=bool)
    is_open[fixed] = True
    count = c[:, is_open].sum(axis=1)
    cf = c.astype(np.float64)
    while (count == 0).any():
        gain = (count == 0).astype(np.float64) @ cf
        gain[is_open] = 0
        j = int(np.argmax(gain))
        if gain[j] <= 0 or (limit is not None and is_open.sum() >= limit):
            return None
        is_open[j] = True
        count += c[:, j]
    fixed_mask = np.zeros_like(is_open)
    fixed_mask[fixed] = True
    for k in np.flatnonzero(is_open & ~fixed_mask):
        if (count[c[:, k]] > 1).all():
            is_open[k] = False
            count -= c[:, k]
    return is_open


def _greedy_cover_sparse(cover: sp.csc_array, allowed: np.ndarray, fixed: np.ndarray,
                         limit: int | None) -> np.ndarray | None:
    """:func:`greedy_cover` over the stored pairs of a boolean CSC matrix: the same sites."""
    n, m = cover.shape
    cover.sort_indices()
    ptr, rows = cover.indptr, cover.indices
    site_of = np.repeat(np.arange(m), np.diff(ptr))
    ok = allowed[site_of] & cover.data.astype(bool)
    site_of, rows = site_of[ok], rows[ok]
    ptr = np.searchsorted(site_of, np.arange(m + 1))
    is_open = np.zeros(m, dtype=bool)
    is_open[fixed] = True
    count = np.bincount(rows[is_open[site_of]], minlength=n)
    while (count == 0).any():
        gain = np.bincount(site_of, (count == 0)[rows], minlength=m)
        gain[is_open] = 0
        j = int(np.argmax(gain))
        if gain[j] <= 0 or (limit is not None and is_open.sum() >= limit):
            return None
        is_open[j] = True
        count[rows[ptr[j]:ptr[j + 1]]] += 1
    fixed_mask = np.zeros_like(is_open)
    fixed_mask[fixed] = True
    for k in np.flatnonzero(is_open & ~fixed_mask):
        mine = rows[ptr[k]:ptr[k + 1]]
        if (count[mine] > 1).all():
            is_open[k] = False
            count[mine] -= 1
    return is_open


class LSCP(CoverageModel):
    """Set covering: the fewest sites so that every client is within ``reach``.

    ``objective`` is the number of open sites (fixed ones included). A client
    no candidate reaches makes it infeasible, and ``message`` names it.

    Examples
    --------
    >>> import numpy as np
    >>> costs = np.array([[1, 5, 9], [5, 1, 5], [9, 5, 1]], dtype=float)
    >>> LSCP.from_cost_matrix(costs, reach=5).solve().sites
    [1]
    >>> m = LSCP.from_cost_matrix(costs, reach=1, candidates=[0, 1]).solve()
    >>> m.status, m.message
    ('infeasible', 'clients 2 are beyond reach 1 of every candidate site')
    """

    _takes_p = False

    @classmethod
    def from_cost_matrix(cls, costs: Any, weights: Any = None, *, reach: float,
                         fixed: Sequence[Hashable] | None = None,
                         candidates: Sequence[Hashable] | None = None,
                         site_ids: Sequence[Hashable] | None = None,
                         client_ids: Sequence[Hashable] | None = None) -> Self:
        """Build a set covering model.

        Parameters
        ----------
        costs, weights, fixed, candidates, site_ids, client_ids
            As for :meth:`PMedian.from_cost_matrix`; clients of weight 0 need
            no cover.
        reach : float
            Every client must have an open site at a cost of at most ``reach``.

        Returns
        -------
        LSCP

        Raises
        ------
        PlacementInputError
            As :meth:`PMedian.from_cost_matrix`, or a negative reach.
        """
        r = cls._check_reach(reach)
        return cls(**cls._prepare(costs, weights, None, fixed, candidates, site_ids,
                                  client_ids), reach=r)

    def _infeasible_reason(self) -> str | None:
        bad = np.flatnonzero((self.weights > 0) & ~self._covered_by(self.allowed))
        if bad.size:
            return (f"clients {self._client_names(bad)} are beyond reach {self.reach:g} "
                    "of every candidate site")
        return None

    def _evaluate(self, is_open: np.ndarray) -> tuple[float, np.ndarray]:
        _, assign = super()._evaluate(is_open)
        return float(is_open.sum()), assign

    def _heuristic(self) -> np.ndarray | None:
        need = self.weights > 0
        return greedy_cover(self.cover[need], self.allowed, self.fixed)

    def _exact(self, start: np.ndarray | None, time_limit: float, reporter: Reporter,
               mip_gap: float) -> MipResult:
        allowed_idx = np.flatnonzero(self.allowed)
        need = self.weights > 0
        cover = (self.cover[np.ix_(need, allowed_idx)] if isinstance(self.cover, np.ndarray)
                 else self.cover[need][:, allowed_idx])
        mip = set_cover_mip(cover, allowed_idx, np.searchsorted(allowed_idx, self.fixed), None)
        x0 = None if start is None else start[allowed_idx].astype(float)
        return solve_mip(mip, x0, time_limit, reporter, mip_gap)
