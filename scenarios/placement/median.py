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
    TIME_LIMIT,
    TOL,
    Mip,
    MipResult,
    Reporter,
    columns,
    solve_mip,
)
from scenarios.placement._sparse import SPARSE_BELOW, SparseCosts, segment_max
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


def _penalty(sc: SparseCosts, w: np.ndarray) -> float:
    """What the sparse heuristic charges per unit of weight for a client left unserved.

    More than every client's farthest finite pair together cost, divided by the
    least positive weight: a layout that leaves a client of positive weight
    with no open site within reach then always costs more than one that
    serves everyone, however far they walk.
    """
    far = segment_max(sc.val, sc.ptr[:-1], sc.count)
    far = np.where(np.isfinite(far), far, 0.0)
    positive = w[w > 0]
    least = float(positive.min()) if positive.size else 1.0
    return float(w @ far) / least + float(far.max(initial=0.0)) + 1.0


def _greedy_median_sparse(sc: SparseCosts, w: np.ndarray, allowed: np.ndarray,
                          fixed: np.ndarray, p: int, penalty: float) -> np.ndarray:
    """Greedy add over the finite pairs: open the site that saves most, ``p`` times.

    ``gain[j]``, what opening ``j`` saves, is kept exact: opening a site
    brings some clients nearer, and only the sites those clients reach
    change their gain — found through those clients' pairs, so a step costs
    the pairs of the clients it moves, not the whole matrix. A client with
    no open site within reach costs ``penalty`` per unit of weight.
    """
    n, m = sc.n, sc.m
    near = np.full(n, penalty)
    is_open = np.zeros(m, dtype=bool)
    for j in fixed:
        rows, vals = sc.site(int(j))
        near[rows] = np.minimum(near[rows], vals)
    is_open[fixed] = True
    need = w > 0

    def all_gains() -> np.ndarray:
        t = near[sc.row]  # in place: two pairs-sized arrays, not six
        np.subtract(t, sc.val, out=t)
        np.maximum(t, 0.0, out=t)
        t *= w[sc.row]
        return np.bincount(sc.col, t, minlength=m)

    gain = all_gains()
    unserved = bool((near[need] >= penalty).any())
    free = allowed & ~is_open
    for _ in range(p - int(is_open.sum())):
        j = int(np.argmax(np.where(free, gain, -np.inf)))
        is_open[j], free[j] = True, False
        rows, vals = sc.site(j)
        better = vals < near[rows]
        moved, new = rows[better], vals[better]
        if moved.size:
            pos, k = sc.rows_entries(moved)
            v, old = sc.val[pos], near[moved][k]
            change = w[moved][k] * (np.maximum(old - v, 0.0) - np.maximum(new[k] - v, 0.0))
            gain -= np.bincount(sc.col[pos], change, minlength=m)
            near[moved] = new
        if unserved and not (near[need] >= penalty).any():
            # every client served: drop the rounding left by the penalty's large terms
            gain, unserved = all_gains(), False
    return is_open


def _interchange_sparse(sc: SparseCosts, w: np.ndarray, is_open: np.ndarray,
                        allowed: np.ndarray, fixed: np.ndarray, deadline: float,
                        penalty: float) -> np.ndarray:
    """Vertex substitution (Teitz–Bart) over the finite pairs, until ``deadline``.

    As :func:`_interchange`: swapping site ``j`` in for open ``r`` changes the
    cost by ``loss[r] - gain[j] - extra[j, r]``, with ``d1``/``d2`` each
    client's nearest and second-nearest open site (``penalty`` where none):
    ``gain[j] = Σ w max(0, d1 - d_j)``, ``loss[r] = Σ_{served by r} w (d2 - d1)``
    (``r`` closing with nothing new) and ``extra[j, r] = Σ_{served by r,
    d_j < d2} w (d2 - max(d1, d_j))`` (what ``j`` gives back of that). All
    three come from the pairs nearer than a client's second open site;
    ``extra`` is non-zero only where ``j`` reaches a client of ``r`` that near,
    and where it is zero the best ``r`` is the one that loses least — so the
    candidates are the pairs of ``extra`` and the few sites that lose least,
    with every other site.

    Each round takes every site's best swap, most promising first, checks it
    on the current ``d1``/``d2`` (the swaps before it changed them) and
    applies it while it improves — updating only the clients it moves. The
    next round's ``gain``, ``loss`` and ``extra`` are updated from the clients
    the round moved, not recomputed (Whitaker's fast interchange, by rounds).
    """
    is_open = is_open.copy()
    removable = is_open.copy()
    removable[fixed] = False
    if not removable.any():
        return is_open
    n, m = sc.n, sc.m

    def nearest(rows: np.ndarray | None = None,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        first, d1, second, d2 = sc.nearest_two(is_open, rows)
        return (first, np.where(first >= 0, d1, penalty),
                second, np.where(second >= 0, d2, penalty))

    first, d1, second, d2 = nearest()
    scratch = np.full(n, penalty)

    def change_of(j: int, r: int) -> float:
        """The exact change of swapping ``j`` in for ``r`` on the current state."""
        rows, vals = sc.site(j)
        lost = np.flatnonzero(first == r)
        scratch[rows] = vals
        change = float(w[lost] @ (np.minimum(d2[lost], scratch[lost]) - d1[lost]))
        scratch[rows] = penalty
        stay = first[rows] != r
        kept = rows[stay]
        return change + float(w[kept] @ np.minimum(vals[stay] - d1[kept], 0.0))

    def terms(rows: np.ndarray | None, f: np.ndarray, a: np.ndarray, b: np.ndarray,
              sign: float) -> tuple[np.ndarray, np.ndarray, sp.csr_array]:
        """The clients' share of ``gain``, ``loss`` and ``extra`` (of all clients: None)."""
        if rows is None:
            i, j, v, clients = sc.row, sc.col, sc.val, np.arange(n)
        else:
            pos, k = sc.rows_entries(rows)
            i, j, v, clients = rows[k], sc.col[pos], sc.val[pos], rows
        near = np.flatnonzero(v < b[i])
        i, j, v = i[near], j[near], v[near]
        wi = sign * w[i]
        g = np.bincount(j, wi * np.maximum(a[i] - v, 0.0), minlength=m)
        on = f[clients] >= 0
        c = clients[on]
        lo = np.bincount(f[c], sign * w[c] * (b[c] - a[c]), minlength=m)
        owned = f[i] >= 0
        ex = sp.csr_array(((wi * (b[i] - np.maximum(a[i], v)))[owned], (j[owned], f[i][owned])),
                          shape=(m, m))
        return g, lo, ex

    gain, loss, extra = terms(None, first, d1, d2, 1.0)
    while time.perf_counter() < deadline:
        current = float(w @ d1)
        tol = 1e-7 * max(1.0, current)
        cand = allowed & ~is_open
        ej = np.repeat(np.arange(m), np.diff(extra.indptr))
        er = np.asarray(extra.indices, dtype=np.int64)
        ok = cand[ej] & removable[er]
        ej, er, ev = ej[ok], er[ok], extra.data[ok]
        out = np.flatnonzero(removable)
        least = out[np.argsort(loss[out], kind="stable")[:3]]
        cj = np.flatnonzero(cand)
        jj = np.r_[ej, np.repeat(cj, least.size)]
        rr = np.r_[er, np.tile(least, cj.size)]
        delta = loss[rr] - gain[jj]
        delta[:ej.size] -= ev
        # each site's best swap, the most promising first
        good = np.flatnonzero(delta < -tol)
        good = good[np.lexsort((delta[good], jj[good]))]
        lead = np.ones(good.size, dtype=bool)
        lead[1:] = jj[good[1:]] != jj[good[:-1]]
        good = good[lead]
        good = good[np.argsort(delta[good], kind="stable")]
        before = first.copy(), d1.copy(), d2.copy()
        moved: list[np.ndarray] = []
        for k in good:
            j, r = int(jj[k]), int(rr[k])
            if is_open[j] or not is_open[r]:  # an earlier swap took one of them
                continue
            if change_of(j, r) < -tol:
                rows = np.unique(np.r_[sc.site(j)[0], np.flatnonzero((first == r) | (second == r))])
                is_open[j], is_open[r] = True, False
                removable[j], removable[r] = True, False
                first[rows], d1[rows], second[rows], d2[rows] = nearest(rows)
                moved.append(rows)
            if time.perf_counter() >= deadline:
                break
        if not moved:
            break
        rows = np.unique(np.concatenate(moved))
        if 3 * rows.size > n:  # most clients moved: recount them all
            gain, loss, extra = terms(None, first, d1, d2, 1.0)
            continue
        # the moved clients' old share out, their new share in
        g0, l0, x0 = terms(rows, *before, -1.0)
        g1, l1, x1 = terms(rows, first, d1, d2, 1.0)
        gain += g0 + g1
        loss += l0 + l1
        extra = extra + x0 + x1
        extra.data[np.abs(extra.data) <= 1e-9 * max(1.0, current)] = 0.0
        extra.eliminate_zeros()
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

    With sparse costs (see :meth:`from_cost_matrix`) the heuristic, the
    Lagrangian bound and the MIP's columns come from the stored pairs alone.
    When the heuristic's budget cut its interchange short (a large instance),
    the exact phase first lets it finish, within :attr:`polish_share` of the
    time limit; when the MIP would have more than :attr:`max_mip_columns`
    assignment columns, the Lagrangian gets the time instead, and the answer
    comes with its bound (``status`` ``"time_limit"`` unless it meets it).

    A layout that leaves a client of positive weight with no open site within
    reach is infeasible, never cheaper: the answer is then ``"infeasible"``
    (or ``"time_limit"`` when none serving everyone was found in time), with
    a ``message`` counting and naming the clients left out.

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
    #: The most assignment columns the MIP is built with from sparse costs (HiGHS
    #: takes about 3 kB a column); above it the Lagrangian gets the time instead.
    max_mip_columns: int = 1_000_000
    #: Share of the time limit the exact phase may first spend finishing the
    #: heuristic's interchange when its budget cut it short (sparse costs).
    polish_share: float = 0.1

    @classmethod
    def from_cost_matrix(cls, costs: Any, weights: Any = None, *, p: int,
                         fixed: Sequence[Hashable] | None = None,
                         candidates: Sequence[Hashable] | None = None,
                         site_ids: Sequence[Hashable] | None = None,
                         client_ids: Sequence[Hashable] | None = None) -> Self:
        """Build a p-median model from a clients × sites cost matrix.

        Parameters
        ----------
        costs : array_like or scipy.sparse matrix, shape (clients, sites)
            Distance or cost from each client to each site; ``np.inf`` where a
            site cannot be reached. Or a ``scipy.sparse`` matrix or array (CSR,
            CSC or COO) of the finite costs only: a stored entry is a cost (a
            stored 0 is a walk of 0), a missing one is unreachable. Build it
            from the finite pairs, ``sp.coo_array((c[f], np.nonzero(f)),
            shape=c.shape)`` with ``f = np.isfinite(c)`` (``sp.csr_array(c)``
            would leave the zeros out). With fewer than a quarter of the pairs
            finite the model keeps it sparse and works on the stored pairs
            only; otherwise it makes it dense. The answer is the same either way.
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
            an unknown site id, a malformed matrix (a sparse one storing a pair twice).

        Examples
        --------
        Only the finite pairs, client 2 standing at site 3 (a stored 0); site 5
        is nearer to client 3, but a layout with it leaves client 2 unreachable:

        >>> import scipy.sparse as sp
        >>> c = sp.coo_array(([0.0, 2.0, 0.0, 5.0, 1.0], ([0, 1, 2, 3, 3], [0, 0, 3, 3, 5])),
        ...                  shape=(4, 6))
        >>> m = PMedian.from_cost_matrix(c, p=2).solve()
        >>> m.sparse, m.sites, m.objective
        (True, [0, 3], 7.0)
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
        if self.sparse:
            sc = self._finite
            penalty = _penalty(sc, self.weights)
            start = _greedy_median_sparse(sc, self.weights, self.allowed, self.fixed, self.p,
                                          penalty)
            return _interchange_sparse(sc, self.weights, start, self.allowed, self.fixed,
                                       self._deadline, penalty)
        dd = _dense(self.costs)
        start = _greedy_median(dd, self.weights, self.allowed, self.fixed, self.p)
        return _interchange(dd, self.costs, self.weights, start, self.allowed, self.fixed,
                            self._deadline)

    def _improve(self, is_open: np.ndarray, deadline: float) -> np.ndarray:
        """A layout improved by interchange until ``deadline`` (dense or sparse)."""
        if self.sparse:
            sc = self._finite
            return _interchange_sparse(sc, self.weights, is_open, self.allowed, self.fixed,
                                       deadline, _penalty(sc, self.weights))
        return _interchange(_dense(self.costs), self.costs, self.weights, is_open,
                            self.allowed, self.fixed, deadline)

    def _pairs(self, open_pos: np.ndarray | None = None, sites: np.ndarray | None = None,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(client, site position, cost) of the pairs that may carry an assignment.

        ``sites``: positions (into the allowed sites) still in the model (all
        by default); ``open_pos``: those certainly open (the fixed ones by
        default). A client's nearest open site is among its
        ``len(sites) - p + 1`` nearest, and no farther than a certainly open one.
        Only finite pairs are returned, by client then site, from the stored
        entries when ``costs`` is sparse.
        """
        assert self.p is not None
        allowed_idx = np.flatnonzero(self.allowed)
        if sites is None:
            sites = np.arange(allowed_idx.size)
        if open_pos is None:
            open_pos = np.searchsorted(allowed_idx, self.fixed)
        active = np.flatnonzero(self.weights > 0)
        if self.sparse:
            ci, sk, v = self._pairs_in(allowed_idx[sites], active)
            if self.reduce_pairs:
                n = len(self.client_ids)
                k = sites.size - self.p  # 0-based rank of the (sites - p + 1)-th nearest
                count = np.bincount(ci, minlength=n)
                limit = np.full(n, np.inf)
                many = count > k  # only these have a finite (sites - p + 1)-th nearest
                if many.any():
                    sel = np.flatnonzero(many[ci])
                    order = sel[np.lexsort((v[sel], ci[sel]))]
                    starts = np.searchsorted(ci[order], np.flatnonzero(many))
                    limit[many] = v[order[starts + k]]
                if open_pos.size:
                    is_certain = np.zeros(sites.size, dtype=bool)
                    is_certain[np.searchsorted(sites, open_pos)] = True
                    near = np.full(n, np.inf)
                    np.minimum.at(near, ci[is_certain[sk]], v[is_certain[sk]])
                    limit = np.minimum(limit, near)
                keep = v <= limit[ci]
                ci, sk, v = ci[keep], sk[keep], v[keep]
            return ci, sites[sk], v
        d = self.costs[np.ix_(active, allowed_idx[sites])]
        keep = np.isfinite(d)
        if self.reduce_pairs:
            k = sites.size - self.p  # 0-based rank of the (sites - p + 1)-th nearest
            limit = np.partition(np.where(keep, d, np.inf), k, axis=1)[:, k]
            if open_pos.size:
                limit = np.minimum(limit, d[:, np.searchsorted(sites, open_pos)].min(axis=1))
            keep &= d <= limit[:, None]
        ci, sj = np.nonzero(keep)
        return active[ci], sites[sj], d[ci, sj]

    def _relaxation(self, active: np.ndarray, allowed_idx: np.ndarray,
                    ) -> tuple[_Relaxation, bool]:
        """The weighted costs of the Lagrangian (active clients × allowed sites).

        An unreachable pair costs ``4 × active × (largest weighted cost + 1)``,
        more than any layout serving every client costs in all. With few
        finite pairs (or a sparse ``costs``) only those are stepped over.

        Returns
        -------
        relaxation, integral
            And whether every cost is a whole number (the bound then rounds up).
        """
        if self.sparse:
            ci, pj, v = self._pairs_in(allowed_idx, active)
            pv = self.weights[ci] * v
            big = (float(pv.max(initial=0.0)) + 1.0) * 4 * active.size
            integral = bool(np.all(np.mod(pv, 1.0) == 0.0)) and float(big).is_integer()
            return _Relaxation.from_pairs((active.size, allowed_idx.size),
                                          np.searchsorted(active, ci), pj, pv, big), integral
        c = self.weights[active, None] * self.costs[np.ix_(active, allowed_idx)]
        finite = np.isfinite(c)
        c[~finite] = (float(c[finite].max()) + 1.0) * 4 * active.size
        # mostly beyond a walk cut-off: the Lagrangian steps over the finite pairs only
        pairs = np.nonzero(finite) if finite.mean() < SPARSE_BELOW else None
        del finite
        integral = bool(np.all(np.mod(c, 1.0) == 0.0))
        return _Relaxation(c, pairs), integral

    def _exact(self, start: np.ndarray | None, time_limit: float, reporter: Reporter,
               mip_gap: float) -> MipResult:
        assert self.p is not None and start is not None
        started = time.perf_counter()
        allowed_idx = np.flatnonzero(self.allowed)
        ny = allowed_idx.size
        if self.sparse and self.heuristic_time is not None and \
                self.heuristic_time >= self.heuristic_budget:
            # a large instance: the heuristic's interchange was cut short; let it finish
            start = self._improve(start, started + self.polish_share * time_limit)
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
        relax, integral = self._relaxation(active, allowed_idx)
        # the multipliers start at each client's weighted cost in the start layout
        # too many pairs for the MIP: the Lagrangian gets most of the time instead
        large = self.sparse and relax.pi.size > self.max_mip_columns
        served = assign[active] >= 0
        lam0 = np.full(active.size, relax.big)
        lam0[served] = (self.weights[active] * self.costs_at(active, assign[active]))[served]
        # an infeasible start is the Lagrangian's incumbent at its penalised cost,
        # dearer than any layout serving every client
        upper_l = upper if np.isfinite(upper) else relax.cost(y0 > 0.5)
        share = 0.9 if large else 0.2
        budget = min(max(1.0, share * (time_limit - (time.perf_counter() - started))),
                     time_limit)
        lower, closed, opened, upper_l, better, dual_choice = _lagrangian(
            relax, self.p, forced, upper_l, lam0, integral, started + budget, reporter,
            np.inf if np.isfinite(upper) else relax.big)
        if better is not None:
            layout = np.zeros_like(start)
            layout[allowed_idx[better]] = True
            cost = upper_l if np.isfinite(upper) else self._evaluate(layout)[0]
            if _cheaper(cost, upper):
                upper, start = cost, layout
        # the relaxation's choice, improved by interchange, is often the optimum
        trial = np.zeros_like(start)
        trial[allowed_idx[dual_choice]] = True
        trial = self._improve(trial, time.perf_counter() + min(0.5, budget))
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
        ci, sj, cost_ij = self._pairs(open_pos, sites)
        if self.sparse and ci.size > self.max_mip_columns:  # HiGHS: gigabytes, no progress
            return MipResult(TIME_LIMIT, y0 if np.isfinite(upper) else None,
                             upper if np.isfinite(upper) else None, lower)
        col_of = np.full(ny, -1)
        col_of[sites] = np.arange(sites.size)
        nys, nx = sites.size, ci.size
        row_of = np.full(len(self.client_ids), -1)
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
            cost=np.concatenate([np.zeros(nys), self.weights[ci] * cost_ij]),
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
        res = solve_mip(mip, x0, remaining, reporter, mip_gap, known_bound=lower)
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
            self._heuristic_layout, f"no layout of {self._sites_text()} serves every client; the "
            "heuristic's layout") or super()._infeasible_message()


def _cheaper(cost: float, upper: float) -> bool:
    """``cost`` beats ``upper`` by more than rounding (any finite cost beats ``inf``)."""
    if not np.isfinite(upper):
        return bool(np.isfinite(cost))
    return bool(cost < upper - 1e-9 * max(1.0, abs(upper)))


class _Relaxation:
    """The weighted costs as the Lagrangian needs them: dense, or the finite pairs only.

    The pairs left out cost ``big``, more than any multiplier reaches, so they
    add nothing to ``ρ`` or to the subgradient: both forms give the same numbers.
    Built from a dense ``c`` (and, to step over them only, its finite pairs),
    or with :meth:`from_pairs` from the pairs alone, never making ``c``.
    """

    def __init__(self, c: np.ndarray, pairs: tuple[np.ndarray, np.ndarray] | None) -> None:
        self.c: np.ndarray | None = c
        self.n, self.m = c.shape
        self.big = float(c.max())
        self.pairs = pairs
        if pairs is not None:  # row-major from np.nonzero: sorted by client
            self._set_pairs(pairs[0], pairs[1], c[pairs[0], pairs[1]])

    @classmethod
    def from_pairs(cls, shape: tuple[int, int], pi: np.ndarray, pj: np.ndarray,
                   pv: np.ndarray, big: float) -> _Relaxation:
        """The relaxation of the finite pairs ``(pi, pj)`` costing ``pv``, by client.

        Every client must have a pair; every other pair costs ``big``.
        """
        self = cls.__new__(cls)
        self.c = None
        self.n, self.m = shape
        self.big = float(big)
        self.pairs = (pi, pj)
        self._set_pairs(pi, pj, pv)
        return self

    def _set_pairs(self, pi: np.ndarray, pj: np.ndarray, pv: np.ndarray) -> None:
        self.pi, self.pj, self.pv = pi, pj, pv
        self.starts = np.searchsorted(self.pi, np.arange(self.n))

    def rho(self, lam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``ρ_j = Σ_i min(0, c_ij - λ_i)`` and the differences ``c - λ``."""
        if self.pairs is None:
            assert self.c is not None
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
        """The layout's cost, each client at its cheapest chosen site (``big`` if none)."""
        if self.pairs is None:
            assert self.c is not None
            return float(self.c[:, chosen].min(axis=1).sum())
        vals = np.where(chosen[self.pj], self.pv, self.big)
        return float(np.minimum(np.minimum.reduceat(vals, self.starts), self.big).sum())


def _lagrangian(relax: _Relaxation, p: int, forced: np.ndarray, upper: float, lam: np.ndarray,
                integral: bool, deadline: float, reporter: Reporter,
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
    m = relax.m
    free = ~forced
    k = p - int(forced.sum())
    best, best_lam = -np.inf, lam.copy()
    theta, stall = 2.0, 0
    tol = 1e-9 * max(1.0, abs(upper))

    def rounded(v: float) -> float:
        return float(np.ceil(v - 1e-6)) if integral else v

    layout: np.ndarray | None = None
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
        return float(np.dot(self.weights, self.costs_at(np.arange(assign.size), assign))), assign

    def _capacitated_assign(self, is_open: np.ndarray) -> np.ndarray | None:
        """Each client to its nearest open site when that fits the capacities
        (then no assignment of the layout is cheaper); else greedy by regret:
        the client with most to lose picks first."""
        if self.sparse:
            return self._capacitated_assign_sparse(is_open)
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
        with np.errstate(invalid="ignore"):  # inf - inf: a client no open site reaches
            regret = (srt[:, 1] - srt[:, 0]) if open_idx.size > 1 else srt[:, 0]
        regret = np.where(np.isfinite(regret), regret, np.finfo(float).max)
        with np.errstate(over="ignore"):  # the largest regret first, however large
            order = np.argsort(-regret * np.maximum(self.weights, TOL), kind="stable")
        for i in order:
            ok = (left >= self.weights[i] - 1e-9) & np.isfinite(d[i])
            if not ok.any():
                return None
            k = int(np.argmin(np.where(ok, d[i], np.inf)))
            assign[i] = open_idx[k]
            left[k] -= self.weights[i]
        return self._filled(assign)

    def _capacitated_assign_sparse(self, is_open: np.ndarray) -> np.ndarray | None:
        """:meth:`_capacitated_assign` over the finite pairs: the same assignment."""
        sc = self._finite
        n, m = sc.n, sc.m
        open_idx = np.flatnonzero(is_open)
        first, d1, _, d2 = sc.nearest_two(is_open)
        if open_idx.size and not self.fill_fixed:
            load = np.bincount(first[first >= 0], weights=self.weights[first >= 0],
                               minlength=m)
            if (first >= 0).all() and (
                    load[open_idx] <= self.capacities[open_idx] + 1e-9).all():
                return first
        left = self.capacities.copy()
        assign = np.full(n, -1)
        with np.errstate(invalid="ignore"):  # inf - inf: a client no open site reaches
            regret = (d2 - d1) if open_idx.size > 1 else d1
        regret = np.where(np.isfinite(regret), regret, np.finfo(float).max)
        pos = np.flatnonzero(is_open[sc.col])  # the open pairs, by client then site
        ptr = np.searchsorted(sc.row[pos], np.arange(n + 1))
        with np.errstate(over="ignore"):
            order = np.argsort(-regret * np.maximum(self.weights, TOL), kind="stable")
        for i in order:
            seg = pos[ptr[i]:ptr[i + 1]]
            cols = sc.col[seg]
            ok = left[cols] >= self.weights[i] - 1e-9
            if not ok.any():
                return None
            j = int(cols[np.argmin(np.where(ok, sc.val[seg], np.inf))])
            assign[i] = j
            left[j] -= self.weights[i]
        return self._filled(assign)

    def _filled(self, assign: np.ndarray) -> np.ndarray | None:
        """``assign``, or None when the fixed sites must be filled and it does not."""
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
        median._sparse_costs = self._sparse_costs  # the same pairs: index them once
        inner = _IncumbentReporter(reporter, upper)
        res = median._exact(median_start, time_limit, inner, 0.0)
        if reporter.error is not None:
            raise reporter.error
        bound = res.bound if res.bound is not None and np.isfinite(res.bound) else None
        # every client at least walks to its nearest site: a bound in no time
        active = self.weights > 0
        trivial = float(self.weights[active] @ self._row_min(self.allowed)[active])
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
        ci, sj, d_ij = self._pairs_in(allowed_idx)
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
            cost=np.r_[np.zeros(ny), w[ci] * d_ij],
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
                upper = float(np.dot(w, self.costs_at(np.arange(n), assign)))
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
