"""What every placement model shares: input checks, ``solve`` and the results."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np

from scenarios.placement import _sparse
from scenarios.placement._solver import (
    HEURISTIC,
    INFEASIBLE,
    OPTIMAL,
    TIME_LIMIT,
    MipResult,
    ProgressCallback,
    Reporter,
    relative_gap,
)
from scenarios.placement._sparse import Costs, SparseCosts, is_sparse
from spatial.errors import InvalidInputError

if TYPE_CHECKING:
    import geopandas as gpd


class PlacementInputError(InvalidInputError, ValueError):
    """A placement model was given values it cannot work with (maps to 400).

    A :class:`ValueError` too, so plain Python callers can catch it as one.
    """



def bad(message: str) -> PlacementInputError:
    """The error for a bad argument, its message naming the value received."""
    return PlacementInputError(message)


class FacilityModel:
    """What every model shares: the data, validation, ``solve`` and the results."""

    #: The objective's sense: +1 minimise, -1 maximise (only MCLP).
    _sense: ClassVar[float] = 1.0
    #: Whether the model takes ``p`` (LSCP does not).
    _takes_p: ClassVar[bool] = True
    #: Whether every client of positive weight must reach an open site (not MCLP's).
    _serves_all: ClassVar[bool] = True
    #: Seconds the heuristic's improvement steps may take (a greedy start is always made).
    heuristic_budget: float = 0.8

    def __init__(self, costs: Costs, weights: np.ndarray, *, p: int | None,
                 site_ids: Sequence[Hashable], client_ids: Sequence[Hashable],
                 fixed: np.ndarray, allowed: np.ndarray) -> None:
        #: Clients × sites: a dense array (``inf``: unreachable) or, when few
        #: pairs are finite, a canonical ``scipy.sparse.csr_array`` of the finite ones.
        self.costs = costs
        #: Whether ``costs`` is kept sparse (the models then work on its stored pairs).
        self.sparse = is_sparse(costs)
        self._sparse_costs: SparseCosts | None = None
        self.weights = weights
        self.p = p
        self.site_ids = list(site_ids)
        self.client_ids = list(client_ids)
        self.fixed = fixed
        self.allowed = allowed
        #: Ids of the chosen (open) sites, in site order.
        self.sites: list[Hashable] = []
        #: Boolean mask over the sites: open.
        self.is_open: np.ndarray = np.zeros(costs.shape[1], dtype=bool)
        #: Per client, the index of the site serving it (-1: none).
        self.assignment_index: np.ndarray = np.full(costs.shape[0], -1)
        #: Per client, the id of the site serving it (None: none).
        self.assignment: list[Hashable | None] = []
        self.objective: float | None = None
        self.bound: float | None = None
        self.gap: float | None = None
        self.status: str | None = None
        #: Why the model has no layout, when ``status`` is ``"infeasible"``.
        self.message: str | None = None
        #: Ids of the clients (of positive weight) the best layout found leaves with
        #: no open site within reach, when that is why there is no answer.
        self.unserved: list[Hashable] = []
        self.heuristic_objective: float | None = None
        self.heuristic_time: float | None = None
        self.solve_time: float | None = None
        self._deadline = np.inf
        self._heuristic_layout: np.ndarray | None = None

    # ---------------------------------------------------------------- building
    @classmethod
    def _prepare(cls, costs: Any, weights: Any, p: int | None, fixed: Any,
                 candidates: Any, site_ids: Any, client_ids: Any,
                 ) -> dict[str, Any]:
        c: Costs
        if is_sparse(costs):
            csr, error = _sparse.canonical(costs)
            if csr is None:
                raise bad(error or "costs is not a usable sparse matrix")
            n, m = csr.shape
            # many finite pairs: the dense form is as small and its code faster
            dense = n * m > 0 and csr.nnz >= _sparse.SPARSE_BELOW * n * m
            c = _sparse.densify(csr) if dense else csr
        else:
            c = np.asarray(costs, dtype=np.float64)
            if c.ndim != 2:
                raise bad(f"costs must be a 2-D clients × sites matrix, got shape {c.shape}")
            if np.isnan(c).any() or (c < 0).any():
                raise bad("costs must be non-negative numbers (np.inf for unreachable)")
        n, m = c.shape
        if n == 0:
            raise bad("no demand: the cost matrix has no clients")
        if m == 0:
            raise bad("no candidate sites: the cost matrix has no columns")
        w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64).ravel()
        if w.shape != (n,):
            raise bad(f"weights has {w.size} values for {n} clients")
        if not np.isfinite(w).all() or (w < 0).any():
            raise bad("weights must be finite and non-negative")
        if w.sum() <= 0:
            raise bad("no demand: every client's weight is 0")
        sids = list(range(m)) if site_ids is None else list(site_ids)
        cids = list(range(n)) if client_ids is None else list(client_ids)
        if len(sids) != m:
            raise bad(f"site_ids has {len(sids)} ids for {m} sites")
        if len(cids) != n:
            raise bad(f"client_ids has {len(cids)} ids for {n} clients")
        index = {s: j for j, s in enumerate(sids)}
        if len(index) != m:
            raise bad("site_ids are not unique")

        def lookup(ids: Any, what: str) -> np.ndarray:
            out = []
            for s in ids:
                if s not in index:
                    raise bad(f"unknown {what} site id {s!r}")
                out.append(index[s])
            return np.array(sorted(set(out)), dtype=np.int64)

        fixed_idx = lookup(() if fixed is None else fixed, "fixed")
        if candidates is None:
            allowed = np.ones(m, dtype=bool)
        else:
            allowed = np.zeros(m, dtype=bool)
            allowed[lookup(candidates, "candidate")] = True
        allowed[fixed_idx] = True
        if cls._takes_p:
            if p is None or isinstance(p, bool) or int(p) != p:
                raise bad(f"p must be a whole number of sites, got {p!r}")
            p = int(p)
            if p < 1:
                raise bad(f"p must be at least 1, got {p}")
            if p > int(allowed.sum()):
                raise bad(f"p={p} is larger than the {int(allowed.sum())} candidate sites")
            if p < fixed_idx.size:
                raise bad(f"p={p} is smaller than the {fixed_idx.size} fixed sites")
        return {"costs": c, "weights": w, "p": p, "site_ids": sids, "client_ids": cids,
                "fixed": fixed_idx, "allowed": allowed}

    @staticmethod
    def _check_reach(reach: Any) -> float:
        try:
            r = float(reach)
        except (TypeError, ValueError):
            raise bad(f"reach must be a number, got {reach!r}") from None
        if not np.isfinite(r) or r < 0:
            raise bad(f"reach must be a non-negative distance, got {reach!r}")
        return r

    @classmethod
    def from_geodataframe(cls, clients: gpd.GeoDataFrame, sites: gpd.GeoDataFrame, *,
                          weights: str | None = None,
                          distance: str | Callable[[gpd.GeoDataFrame, gpd.GeoDataFrame],
                                                   np.ndarray] = "euclidean",
                          client_id: str | None = None, site_id: str | None = None,
                          **kwargs: Any) -> Self:
        """Build the model from client and site GeoDataFrames.

        Parameters
        ----------
        clients, sites : geopandas.GeoDataFrame
            Demand points (or polygons: their centroids are used) and candidate sites.
        weights : str, optional
            Column of ``clients`` with each client's demand (1 each by default).
        distance : "euclidean" or callable
            ``"euclidean"``: straight-line distance in the frames' (projected) CRS.
            A callable ``distance(clients, sites) -> ndarray (clients × sites)``
            gives any other cost, for example walking distance on a network;
            it may return a ``scipy.sparse`` matrix of the finite costs only.
        client_id, site_id : str, optional
            Columns holding the ids; the frames' index by default. ``fixed``
            and ``candidates`` name sites by these ids.
        **kwargs
            The model's other arguments (``p``, ``reach``, ``fixed``,
            ``candidates``; for :class:`CapacitatedPMedian` ``capacities`` may
            be a column name of ``sites``).

        Returns
        -------
        the model

        Raises
        ------
        PlacementInputError
            A geographic CRS with euclidean distance, unknown columns, or any
            error :meth:`from_cost_matrix` raises.

        Examples
        --------
        >>> import geopandas as gpd
        >>> from scenarios.placement import PMedian
        >>> from shapely.geometry import Point
        >>> homes = gpd.GeoDataFrame({"hh": [3, 1, 2]}, crs=3857,
        ...                          geometry=[Point(0, 0), Point(10, 0), Point(100, 0)])
        >>> bins = gpd.GeoDataFrame({"name": ["a", "b"]}, crs=3857,
        ...                         geometry=[Point(5, 0), Point(90, 0)])
        >>> PMedian.from_geodataframe(homes, bins, weights="hh", site_id="name",
        ...                           p=1).solve().sites
        ['a']
        """
        if distance == "euclidean":
            if clients.crs is not None and clients.crs.is_geographic:
                raise bad(f"euclidean distance needs a projected CRS, got {clients.crs}")
            if clients.crs != sites.crs:
                raise bad(f"clients and sites are in different CRS: {clients.crs} "
                           f"and {sites.crs}")
            a = clients.geometry.centroid
            b = sites.geometry.centroid
            costs = np.hypot(a.x.to_numpy()[:, None] - b.x.to_numpy()[None, :],
                             a.y.to_numpy()[:, None] - b.y.to_numpy()[None, :])
        elif callable(distance):
            raw = distance(clients, sites)
            costs = raw if is_sparse(raw) else np.asarray(raw, dtype=np.float64)
        else:
            raise bad(f"distance must be 'euclidean' or a callable, got {distance!r}")
        for frame, col in ((clients, weights), (clients, client_id), (sites, site_id)):
            if col is not None and col not in frame.columns:
                raise bad(f"no column {col!r}")
        w = None if weights is None else clients[weights].to_numpy(dtype=np.float64)
        cids = (clients.index if client_id is None else clients[client_id]).tolist()
        sids = (sites.index if site_id is None else sites[site_id]).tolist()
        cap = kwargs.get("capacities")
        if isinstance(cap, str):
            if cap not in sites.columns:
                raise bad(f"no column {cap!r}")
            kwargs["capacities"] = sites[cap].to_numpy(dtype=np.float64)
        return cls.from_cost_matrix(costs, weights=w, site_ids=sids, client_ids=cids,
                                    **kwargs)

    if TYPE_CHECKING:
        # each model declares its own arguments
        @classmethod
        def from_cost_matrix(cls, costs: Any, *args: Any, **kwargs: Any) -> Self: ...

    # ----------------------------------------------------------------- solving
    def solve(self, time_limit: float = 60.0, on_progress: ProgressCallback | None = None,
              *, exact: bool = True, mip_gap: float = 0.0) -> Self:
        """Find a layout fast, then prove it optimal (or say how close it is).

        Parameters
        ----------
        time_limit : float
            Seconds for the exact phase; when they run out the best layout is
            kept with its gap and ``status`` is ``"time_limit"``.
        on_progress : callable, optional
            Called with a :class:`SolveProgress` after the heuristic and then
            a few times a second as the gap closes. An exception it raises
            (a dismissed job) stops the solver and is raised from ``solve``.
        exact : bool
            False: stop after the heuristic (``status`` ``"heuristic"``).
        mip_gap : float
            Relative gap at which the exact phase may stop (0: proven optimum).

        Returns
        -------
        self
            With ``sites``, ``is_open``, ``assignment``, ``objective``,
            ``bound``, ``gap``, ``status``, ``message``,
            ``heuristic_objective``, ``heuristic_time`` and ``solve_time`` set.
        """
        started = time.perf_counter()
        reporter = Reporter(on_progress, started, time_limit, self._sense)
        self.message = None
        reason = self._infeasible_reason()
        if reason is not None:
            self._set_infeasible(reason, started)
            reporter.report("done", None, None, force=True)
            return self
        self._deadline = started + self.heuristic_budget
        start = self._heuristic()
        self.heuristic_time = time.perf_counter() - started
        self._heuristic_layout = start
        if start is not None:
            self.heuristic_objective = self._evaluate(start)[0]
            self._set_layout(start)
            self.bound, self.gap = None, None
        else:
            self.heuristic_objective = None
        self.status = HEURISTIC
        reporter.report("heuristic", self.heuristic_objective, None, force=True)
        if exact:
            remaining = max(0.01, time_limit - (time.perf_counter() - started))
            result = self._exact(start, remaining, reporter, mip_gap)
            if result.status == INFEASIBLE or (result.x is None and start is None):
                if result.status == INFEASIBLE:
                    self._set_infeasible(self._infeasible_message(), started)
                    if self._serves_all and self._heuristic_layout is not None:
                        self.unserved = [self.client_ids[i] for i in
                                         self._unserved_idx(self._heuristic_layout)]
                else:
                    self._set_infeasible(None, started, status=TIME_LIMIT)
                reporter.report("done", None, None, force=True)
                return self
            layout = self._layout_from(result.x) if result.x is not None else start
            assert layout is not None
            self._set_layout(layout)
            if start is not None and self.objective is not None and \
                    self.heuristic_objective is not None and \
                    self._sense * self.heuristic_objective < self._sense * self.objective:
                self._set_layout(start)  # HiGHS never worsens a start; keep ours on ties
            self.bound = result.bound
            if result.status == OPTIMAL and self.objective is not None:
                self.bound = self.objective if self.bound is None else self.bound
            self.gap = relative_gap(self.objective, self.bound)
            self.status = OPTIMAL if result.status == OPTIMAL else TIME_LIMIT
        if self._serves_all and self.objective is not None and not np.isfinite(self.objective):
            # the best layout leaves a client unserved: no answer, and say why
            if self.status == TIME_LIMIT:
                what = ("no layout serving every client was found within the time limit; "
                        "the best one")
            elif exact:
                what = f"no layout of {self._sites_text()} serves every client; the best one"
            else:
                what = "the heuristic's layout"
            message = self._unserved_message(self.is_open, what) or self._infeasible_message()
            lost = self._unserved_idx(self.is_open)
            self._set_infeasible(message, started,
                                 status=TIME_LIMIT if self.status == TIME_LIMIT else INFEASIBLE)
            self.unserved = [self.client_ids[i] for i in lost]
            reporter.report("done", None, None, force=True)
            return self
        self.solve_time = time.perf_counter() - started
        reporter.report("done", self.objective, self.bound, force=True)
        return self

    def _set_layout(self, is_open: np.ndarray) -> None:
        objective, assign = self._evaluate(is_open)
        self.is_open = is_open.copy()
        self.sites = [self.site_ids[j] for j in np.flatnonzero(is_open)]
        self.assignment_index = assign
        self.assignment = [self.site_ids[j] if j >= 0 else None for j in assign]
        self.objective = objective

    def _set_infeasible(self, message: str | None, started: float,
                        status: str = INFEASIBLE) -> None:
        self.status = status
        self.message = message or "no layout found within the time limit"
        self.unserved = []
        self.sites, self.assignment = [], [None] * len(self.client_ids)
        self.is_open = np.zeros(len(self.site_ids), dtype=bool)
        self.assignment_index = np.full(len(self.client_ids), -1)
        self.objective = self.bound = self.gap = None
        self.solve_time = time.perf_counter() - started

    def _client_names(self, idx: np.ndarray) -> str:
        names = [repr(self.client_ids[i]) for i in idx[:5]]
        more = f" and {idx.size - 5} more" if idx.size > 5 else ""
        return ", ".join(names) + more

    def _infeasible_reason(self) -> str | None:
        """Why no layout can exist, found without the solver (None: maybe one can)."""
        if self.sparse:
            reach = (self._finite.count > 0 if self.allowed.all()
                     else np.isfinite(self._finite.row_min(self.allowed)))
        else:
            reach = np.isfinite(self.costs[:, self.allowed]).any(axis=1)
        bad = np.flatnonzero(~reach & (self.weights > 0))
        if bad.size:
            return f"clients {self._client_names(bad)} cannot reach any candidate site"
        return None

    def _infeasible_message(self) -> str:
        return "the model has no feasible layout"

    def _sites_text(self) -> str:
        return f"{self.p} site{'' if self.p == 1 else 's'}"

    def _unserved_idx(self, is_open: np.ndarray) -> np.ndarray:
        """The clients of positive weight no site of ``is_open`` reaches."""
        return np.flatnonzero((self._nearest_open(is_open)[0] < 0) & (self.weights > 0))

    def _unserved_message(self, is_open: np.ndarray | None, what: str) -> str | None:
        """``what`` leaves so many clients (named) unreachable (None: it leaves none)."""
        if is_open is None:
            return None
        lost = self._unserved_idx(is_open)
        if not lost.size:
            return None
        return (f"{what} leaves {lost.size} client{'s' if lost.size > 1 else ''} "
                f"unreachable from every open site: {self._client_names(lost)}")

    @property
    def _finite(self) -> SparseCosts:
        """The stored pairs of a sparse ``costs``, by client and by site (built once)."""
        if self._sparse_costs is None:
            assert is_sparse(self.costs)
            self._sparse_costs = SparseCosts(self.costs)
        return self._sparse_costs

    def _nearest_open(self, is_open: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per client, its nearest open site (-1: none reaches it) and the cost (``inf``).

        Ties go to the lowest site index, in the dense and the sparse form alike.
        """
        if self.sparse:
            return self._finite.nearest(is_open)
        d = np.where(is_open[None, :], self.costs, np.inf)
        assign = np.argmin(d, axis=1)
        near = d[np.arange(d.shape[0]), assign]
        return np.where(np.isfinite(near), assign, -1), near

    def costs_at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """The costs of client–site pairs, from the dense or the sparse matrix alike.

        Parameters
        ----------
        rows, cols : numpy.ndarray
            Client and site indices, element by element (a site of -1: none).

        Returns
        -------
        numpy.ndarray
            ``costs[rows, cols]``; ``inf`` where unreachable or the site is -1.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from scenarios.placement import PMedian
        >>> m = PMedian.from_cost_matrix(sp.csr_array(([0.0, 7.0], ([0, 1], [0, 1])),
        ...                                           shape=(2, 6)), p=2)
        >>> m.sparse, m.costs_at(np.array([0, 1, 1]), np.array([0, 0, -1])).tolist()
        (True, [0.0, inf, inf])
        """
        if self.sparse:
            return self._finite.lookup(rows, cols)
        return np.where(cols >= 0, self.costs[rows, np.maximum(cols, 0)], np.inf)

    def _row_min(self, col_mask: np.ndarray) -> np.ndarray:
        """Per client, the least cost to a site of ``col_mask`` (``inf``: none reachable)."""
        if self.sparse:
            return self._finite.row_min(col_mask)
        if not col_mask.any():
            return np.full(self.costs.shape[0], np.inf)
        return np.asarray(self.costs[:, col_mask].min(axis=1))

    def _pairs_in(self, cols: np.ndarray, rows: np.ndarray | None = None,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The finite pairs between ``rows`` (all clients by default) and ``cols``.

        Parameters
        ----------
        cols : numpy.ndarray
            Site indices, ascending.
        rows : numpy.ndarray, optional
            Client indices, ascending.

        Returns
        -------
        client, position, cost
            Per finite pair, by client then site: the client's index, the
            site's position in ``cols`` and the cost — the same in the dense
            and the sparse form.
        """
        if self.sparse:
            n, m = self.costs.shape
            col_mask = np.zeros(m, dtype=bool)
            col_mask[cols] = True
            row_mask = np.ones(n, dtype=bool)
            if rows is not None:
                row_mask[:] = False
                row_mask[rows] = True
            ci, cj, v = self._finite.select(row_mask, col_mask)
            return ci, np.searchsorted(cols, cj), v
        d = self.costs[:, cols] if rows is None else self.costs[np.ix_(rows, cols)]
        ci, sj = np.nonzero(np.isfinite(d))
        return (ci if rows is None else rows[ci]), sj, d[ci, sj]

    # The model-specific parts.
    def _evaluate(self, is_open: np.ndarray) -> tuple[float, np.ndarray]:
        """Objective and nearest-open-site assignment of a layout.

        A client of positive weight that no open site reaches makes the layout
        infeasible: its objective is ``inf``, never the total of the others.
        """
        assign, near = self._nearest_open(is_open)
        served = np.isfinite(near)
        if (~served & (self.weights > 0)).any():
            return np.inf, assign
        return float(np.dot(self.weights, np.where(served, near, 0.0))), assign

    def _heuristic(self) -> np.ndarray | None:  # pragma: no cover
        raise NotImplementedError

    def _exact(self, start: np.ndarray | None, time_limit: float, reporter: Reporter,
               mip_gap: float) -> MipResult:  # pragma: no cover
        raise NotImplementedError

    def _layout_from(self, x: np.ndarray) -> np.ndarray:
        """The open-site mask from a MIP solution whose first columns are y."""
        is_open = np.zeros(len(self.site_ids), dtype=bool)
        is_open[np.flatnonzero(self.allowed)] = x[: int(self.allowed.sum())] > 0.5
        return is_open

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(clients={len(self.client_ids)}, "
                f"sites={len(self.site_ids)}, p={self.p}, status={self.status!r}, "
                f"objective={self.objective!r})")
