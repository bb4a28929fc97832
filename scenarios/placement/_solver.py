"""The HiGHS side of the placement models: a MIP in column form, solved with a
warm start, its gap reported through a throttled progress callback."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

#: Status of a solved model.
OPTIMAL = "optimal"
TIME_LIMIT = "time_limit"
INFEASIBLE = "infeasible"
HEURISTIC = "heuristic"  # solve(exact=False): the heuristic layout, no proof

TOL = 1e-9


@dataclass(frozen=True)
class SolveProgress:
    """One report of a solve in progress, passed to ``on_progress``.

    Attributes
    ----------
    phase : str
        ``"heuristic"``, ``"exact"`` or ``"done"``.
    objective : float or None
        The best layout's objective so far.
    bound : float or None
        The proven bound so far (a lower bound when minimising; for
        :class:`MCLP`, an upper bound on the covered weight).
    gap : float or None
        ``|objective - bound| / |objective|``; 0 when proven optimal.
    elapsed : float
        Seconds since ``solve`` started.
    fraction : float
        A 0–1 estimate of how far the solve is (from the gap closing and the
        time limit), for a progress bar.
    """

    phase: str
    objective: float | None
    bound: float | None
    gap: float | None
    elapsed: float
    fraction: float


ProgressCallback = Callable[[SolveProgress], object]


def relative_gap(objective: float | None, bound: float | None) -> float | None:
    if objective is None or bound is None or not np.isfinite(bound):
        return None
    diff = abs(objective - bound)
    if diff <= 1e-9 * max(1.0, abs(objective)):
        return 0.0
    return diff / max(abs(objective), TOL)


@dataclass
class Mip:
    """A mixed-integer programme in column form: minimise ``c·x`` s.t. rows."""

    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray  # bool per column
    matrix: sp.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    offset: float = 0.0


@dataclass
class MipResult:
    status: str
    x: np.ndarray | None
    objective: float | None
    bound: float | None


class Reporter:
    """Throttles progress reports and carries the caller's exception out of HiGHS."""

    def __init__(self, on_progress: ProgressCallback | None, started: float,
                 time_limit: float, sign: float = 1.0) -> None:
        self.on_progress = on_progress
        self.started = started
        self.time_limit = time_limit
        self.sign = sign  # -1 for a maximisation solved as a minimisation
        self.first_gap: float | None = None
        self.last = 0.0
        self.error: BaseException | None = None

    def report(self, phase: str, objective: float | None, bound: float | None,
               *, force: bool = False) -> bool:
        """Send a report; False when the caller's callback raised (stop solving)."""
        if self.on_progress is None or self.error is not None:
            return self.error is None
        now = time.perf_counter()
        if not force and now - self.last < 0.2:
            return True
        self.last = now
        gap = relative_gap(objective, bound)
        elapsed = now - self.started
        if phase == "done":
            fraction = 1.0
        else:
            by_time = elapsed / self.time_limit if self.time_limit > 0 else 0.0
            by_gap = 0.0
            if gap is not None:
                if self.first_gap is None and gap > 0:
                    self.first_gap = gap
                if self.first_gap:
                    by_gap = 1.0 - gap / self.first_gap
            fraction = min(0.99, max(0.05 if phase == "exact" else 0.0, by_time, by_gap))
        try:
            self.on_progress(SolveProgress(phase, objective, bound, gap, elapsed, fraction))
        except BaseException as exc:  # the job was dismissed: stop HiGHS, raise after
            self.error = exc
            return False
        return True


def solve_mip(mip: Mip, start: np.ndarray | None, time_limit: float,
               reporter: Reporter, mip_gap: float = 0.0,
               known_bound: float | None = None) -> MipResult:
    """Solve ``mip`` with HiGHS, warm-started from ``start``, reporting the gap.

    ``known_bound`` is a lower bound proven elsewhere (a relaxation of the
    model): the reported bound is the better of it and HiGHS's own, and HiGHS
    is stopped as soon as its best layout is within ``mip_gap`` of it — HiGHS
    has no option to take a lower bound, only an upper cutoff, which the warm
    start already gives.
    """
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", max(0.01, float(time_limit)))
    h.setOptionValue("mip_rel_gap", float(mip_gap))
    h.setOptionValue("threads", 1)
    lp = highspy.HighsLp()
    n_col = mip.cost.size
    lp.num_col_ = n_col
    lp.num_row_ = mip.row_lower.size
    lp.col_cost_ = mip.cost.astype(np.float64)
    lp.col_lower_ = mip.lower.astype(np.float64)
    lp.col_upper_ = mip.upper.astype(np.float64)
    lp.row_lower_ = mip.row_lower.astype(np.float64)
    lp.row_upper_ = mip.row_upper.astype(np.float64)
    lp.offset_ = float(mip.offset)
    a = mip.matrix.tocsc()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = a.indptr.astype(np.int32)
    lp.a_matrix_.index_ = a.indices.astype(np.int32)
    lp.a_matrix_.value_ = a.data.astype(np.float64)
    h.passModel(lp)
    integer = np.flatnonzero(mip.integer).astype(np.int32)
    if integer.size:  # one vectorised call: a list of 10^6 enum objects takes seconds
        h.changeColsIntegrality(integer.size, integer, np.ones(integer.size, dtype=np.uint8))
    if start is not None:
        sol = highspy.HighsSolution()
        sol.col_value = start.astype(np.float64)
        h.setSolution(sol)

    known = -np.inf if known_bound is None else float(known_bound)
    proven = False

    def on_event(event: Any) -> None:
        nonlocal proven
        out = event.data_out
        primal, dual = out.mip_primal_bound, max(out.mip_dual_bound, known)
        objective = reporter.sign * primal if np.isfinite(primal) else None
        bound = reporter.sign * dual if np.isfinite(dual) else None
        if not reporter.report("exact", objective, bound):
            event.data_in.user_interrupt = True
        gap = relative_gap(primal if np.isfinite(primal) else None,
                           known if np.isfinite(known) else None)
        if gap is not None and (primal <= known or gap <= mip_gap):
            proven = True  # the known bound closes the gap: nothing left to search
            event.data_in.user_interrupt = True

    if reporter.on_progress is not None or known_bound is not None:
        h.cbMipImprovingSolution.subscribe(on_event)
        h.cbMipInterrupt.subscribe(on_event)
    h.run()
    if reporter.error is not None:
        raise reporter.error
    status = h.getModelStatus()
    info = h.getInfo()
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    x = np.asarray(h.getSolution().col_value) if has_solution else None
    objective = float(info.objective_function_value) if has_solution else None
    bound = float(info.mip_dual_bound) if np.isfinite(info.mip_dual_bound) else None
    if np.isfinite(known) and (bound is None or known > bound):
        bound = known
    if proven and objective is not None:
        return MipResult(OPTIMAL, x, objective, min(objective, bound)
                         if bound is not None else objective)
    if status == highspy.HighsModelStatus.kOptimal:
        return MipResult(OPTIMAL, x, objective, bound if bound is not None else objective)
    if status == highspy.HighsModelStatus.kInfeasible:
        return MipResult(INFEASIBLE, None, None, None)
    return MipResult(TIME_LIMIT, x, objective, bound)


def columns(blocks: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], shape: tuple[int, int],
             ) -> sp.csc_matrix:
    rows = np.concatenate([b[0] for b in blocks]) if blocks else np.zeros(0, int)
    cols = np.concatenate([b[1] for b in blocks]) if blocks else np.zeros(0, int)
    vals = np.concatenate([b[2] for b in blocks]) if blocks else np.zeros(0)
    return sp.csc_matrix((vals, (rows, cols)), shape=shape)
