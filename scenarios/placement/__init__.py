"""Facility placement (设施选址): where sites should stand, found fast and proven optimal.

Five classic location models over a cost matrix (clients × candidate sites):

* :class:`PMedian` — open ``p`` sites, least total weighted distance;
* :class:`CapacitatedPMedian` — the same with a capacity per site, every client
  served whole by one site;
* :class:`MCLP` — open ``p`` sites, most demand within a reach;
* :class:`LSCP` — fewest sites so that every client is within the reach;
* :class:`PCenter` — open ``p`` sites, shortest longest distance.

Each is spopt-style: build with :meth:`~PMedian.from_cost_matrix` or
:meth:`~PMedian.from_geodataframe`, call ``solve()`` (which returns the model),
read the attributes. ``solve`` answers fast, then proves it: a vectorised
heuristic (greedy and interchange) gives a layout in well under a second, then
HiGHS (``highspy``) solves the mixed-integer programme warm-started from it and
reports the gap between the best layout and the proven bound as it closes.
A time limit returns the best layout found with its gap.

Existing sites are handled by two arguments: ``fixed`` (ids of sites that must
stay open) and ``candidates`` (ids of the sites that may be opened; every site
by default). "Add k" is ``fixed=existing, p=len(existing) + k``; "which one
could close" is ``candidates=existing, p=len(existing) - 1``; "this one closes,
reassign" is ``candidates=existing minus it``.

Costs beyond a cut-off (walks on a network: at city scale most pairs are out of
reach) may come as a ``scipy.sparse`` matrix of the finite pairs only. With
fewer than a quarter of the pairs finite the models keep it so and work on the
stored pairs — heuristics, bounds and the MIP's columns — never making the
clients × sites array; the answers are the dense matrix's.

Examples
--------
Four clients on a line at 0, 1, 10 and 11 m, the sites at the same places:

>>> import numpy as np
>>> x = np.array([0.0, 1.0, 10.0, 11.0])
>>> costs = np.abs(x[:, None] - x[None, :])
>>> model = PMedian.from_cost_matrix(costs, p=2).solve()
>>> model.status, model.objective, model.gap
('optimal', 2.0, 0.0)
>>> len(model.sites), model.assignment[0] != model.assignment[3]
(2, True)
>>> LSCP.from_cost_matrix(costs, reach=1.0).solve().objective
2.0
>>> PCenter.from_cost_matrix(costs, p=1).solve().objective
10.0
"""

from scenarios.placement._solver import (
    HEURISTIC,
    INFEASIBLE,
    OPTIMAL,
    TIME_LIMIT,
    ProgressCallback,
    SolveProgress,
)
from scenarios.placement.base import FacilityModel, PlacementInputError
from scenarios.placement.center import PCenter
from scenarios.placement.coverage import LSCP, MCLP
from scenarios.placement.median import CapacitatedPMedian, PMedian
from scenarios.placement.orlib import read_orlib_pmed

__all__ = [
    "HEURISTIC",
    "INFEASIBLE",
    "LSCP",
    "MCLP",
    "OPTIMAL",
    "TIME_LIMIT",
    "CapacitatedPMedian",
    "FacilityModel",
    "PCenter",
    "PMedian",
    "PlacementInputError",
    "ProgressCallback",
    "SolveProgress",
    "read_orlib_pmed",
]
