"""Facility placement models against answers nobody here computed.

* OR-Library pmed1–pmed10 (Beasley 1985): the published optima.
* spopt's San Francisco example (its test data, shipped in the spopt wheel):
  p-median mean distance, MCLP coverage, and its capacitated example (872);
  spopt itself run side by side where that is cheap.
* Small instances solved by enumerating every layout, and hand-solved cases.
* Sparse cost matrices (the finite pairs only) against the same matrices dense.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from shapely.geometry import Point

from scenarios.placement import (
    INFEASIBLE,
    LSCP,
    MCLP,
    OPTIMAL,
    TIME_LIMIT,
    CapacitatedPMedian,
    FacilityModel,
    PCenter,
    PlacementInputError,
    PMedian,
    SolveProgress,
    read_orlib_pmed,
)
from spatial.errors import InvalidInputError

# spopt builds its models with PuLP's older API
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pulp.*")

ORLIB = Path(__file__).resolve().parents[1] / "data" / "orlib"


def _optima() -> dict[str, float]:
    lines = (ORLIB / "optima.txt").read_text().splitlines()[1:]
    return {name: float(value) for name, value in (line.split() for line in lines if line)}


# ------------------------------------------------------------------ OR-Library


@pytest.mark.parametrize("k", range(1, 11))
def test_orlib_pmed_optimum(k: int) -> None:
    costs, p = read_orlib_pmed(ORLIB / f"pmed{k}.txt")
    model = PMedian.from_cost_matrix(costs, p=p).solve(time_limit=300)
    assert model.status == OPTIMAL
    assert model.objective == _optima()[f"pmed{k}"]
    assert model.gap == 0.0
    assert model.bound is not None and model.bound <= model.objective + 1e-6
    assert len(model.sites) == p
    # the assignment is to the nearest open site and adds up to the objective
    rows = np.arange(costs.shape[0])
    assert costs[rows, model.assignment_index].sum() == model.objective
    assert np.array_equal(costs[rows, model.assignment_index],
                          costs[:, model.is_open].min(axis=1))
    assert model.heuristic_objective is not None
    assert model.heuristic_objective >= model.objective


def test_orlib_reader_keeps_the_last_duplicate_edge(tmp_path: Path) -> None:
    f = tmp_path / "dup.txt"
    f.write_text("3 3 1\n1 2 9\n2 3 1\n2 1 4\n")
    costs, p = read_orlib_pmed(f)
    assert p == 1
    assert costs[0, 1] == 4.0 and costs[0, 2] == 5.0


# ------------------------------------------------------------- spopt's examples


def _spopt_data() -> Path:
    import spopt

    return Path(spopt.__file__).parent / "tests" / "test_locate" / "data"


@pytest.fixture(scope="module")
def san_francisco() -> tuple[np.ndarray, np.ndarray]:
    """spopt's SF example, built exactly as spopt's tests build it."""
    data = _spopt_data()
    dist = pd.read_csv(data / "SF_network_distance_candidateStore_16_censusTract_205_new.csv")
    costs = dist.pivot_table(values="distance", index="DestinationName",
                             columns="name").to_numpy()
    demand = pd.read_csv(data / "SF_demand_205_centroid_uniform_weight.csv")
    weights = demand.sort_values(by=["NAME"]).reset_index()["POP2000"].to_numpy()
    return costs, weights


def test_spopt_san_francisco_p_median(san_francisco: tuple[np.ndarray, np.ndarray]) -> None:
    import pulp
    import spopt.locate

    costs, weights = san_francisco
    model = PMedian.from_cost_matrix(costs, weights, p=4).solve()
    assert model.status == OPTIMAL
    assert model.mean_distance == pytest.approx(2982.1268579890657, rel=1e-12)
    theirs = spopt.locate.PMedian.from_cost_matrix(costs, weights, p_facilities=4)
    theirs.solve(pulp.PULP_CBC_CMD(msg=False))
    assert model.objective == pytest.approx(pulp.value(theirs.problem.objective), rel=1e-9)


def test_spopt_san_francisco_mclp(san_francisco: tuple[np.ndarray, np.ndarray]) -> None:
    import pulp
    import spopt.locate

    costs, weights = san_francisco
    model = MCLP.from_cost_matrix(costs, weights, p=4, reach=5000.0).solve()
    assert model.status == OPTIMAL
    assert model.percentage_covered == pytest.approx(89.75609756097561)
    assert model.objective == model.covered_weight
    theirs = spopt.locate.MCLP.from_cost_matrix(costs, weights, service_radius=5000.0,
                                                p_facilities=4)
    theirs.solve(pulp.PULP_CBC_CMD(msg=False))
    assert model.objective == pytest.approx(pulp.value(theirs.problem.objective))


def test_spopt_san_francisco_lscp_and_p_center(
        san_francisco: tuple[np.ndarray, np.ndarray]) -> None:
    import pulp
    import spopt.locate

    costs, weights = san_francisco
    ours = LSCP.from_cost_matrix(costs, weights, reach=8000.0).solve()
    theirs = spopt.locate.LSCP.from_cost_matrix(costs, service_radius=8000.0)
    theirs.solve(pulp.PULP_CBC_CMD(msg=False))
    assert ours.status == OPTIMAL
    assert ours.objective == pulp.value(theirs.problem.objective)
    ours_c = PCenter.from_cost_matrix(costs, weights, p=4).solve()
    theirs_c = spopt.locate.PCenter.from_cost_matrix(costs, p_facilities=4)
    theirs_c.solve(pulp.PULP_CBC_CMD(msg=False))
    assert ours_c.status == OPTIMAL
    assert ours_c.objective == pytest.approx(pulp.value(theirs_c.problem.objective))


@pytest.fixture(scope="module")
def schools() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """spopt's capacitated example (students to schools), as its test builds it."""
    data = _spopt_data()
    journeys = pd.read_csv(data / "example_subject_student_school_journeys.csv")
    costs = (journeys.pivot_table(columns="school", fill_value=10000, index="student",
                                  sort=False, values="time").astype(int).to_numpy())
    students = pd.read_csv(data / "example_subject_students.csv")
    school_rows = pd.read_csv(data / "example_subject_schools.csv")
    demand = np.ones(len(students))
    capacities = school_rows["Count"].to_numpy()
    priority = np.array(school_rows[school_rows["priority"] == 1].index.tolist())
    return costs, demand, capacities, priority


def test_spopt_capacitated_example(
        schools: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    import pulp
    import spopt.locate

    costs, demand, capacities, priority = schools
    model = CapacitatedPMedian.from_cost_matrix(
        costs, demand, p=10, capacities=capacities, fixed=priority.tolist(),
        fill_fixed=True).solve()
    assert model.status == OPTIMAL
    assert model.objective == 872.0
    load = np.bincount(model.assignment_index, minlength=costs.shape[1])
    assert (load <= capacities).all()
    assert np.array_equal(load[priority], capacities[priority])
    # without filling the fixed schools, against spopt run here
    free = CapacitatedPMedian.from_cost_matrix(
        costs, demand, p=10, capacities=capacities, fixed=priority.tolist()).solve()
    theirs = spopt.locate.PMedian.from_cost_matrix(
        costs, demand, 10, predefined_facilities_arr=priority,
        facility_capacities=capacities)
    theirs.solve(pulp.PULP_CBC_CMD(msg=False))
    assert free.objective == pulp.value(theirs.problem.objective)


# --------------------------------------------------- enumeration on small cases


def _instances(seed: int, count: int = 6, n_max: int = 12,
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        n, m = int(rng.integers(5, n_max + 1)), int(rng.integers(4, 9))
        a, b = rng.uniform(0, 100, (n, 2)), rng.uniform(0, 100, (m, 2))
        costs = np.round(np.hypot(*(a[:, None, :] - b[None, :, :]).transpose(2, 0, 1)), 1)
        out.append((costs, rng.integers(1, 6, n).astype(float)))
    return out


def _layouts(m: int, p: int, fixed: tuple[int, ...] = ()) -> list[np.ndarray]:
    out = []
    for combo in itertools.combinations(range(m), p):
        if set(fixed) <= set(combo):
            mask = np.zeros(m, bool)
            mask[list(combo)] = True
            out.append(mask)
    return out


@pytest.mark.parametrize("case", range(6))
def test_models_match_enumeration(case: int) -> None:
    costs, w = _instances(7)[case]
    m = costs.shape[1]
    for p in (1, 2, 3):
        fixed = (m - 1,) if p > 1 else ()
        layouts = _layouts(m, p, fixed)
        median = min(float(w @ costs[:, s].min(axis=1)) for s in layouts)
        center = min(float(costs[:, s].min(axis=1).max()) for s in layouts)
        reach = float(np.median(costs))
        cover = max(float(w[(costs[:, s] <= reach).any(axis=1)].sum()) for s in layouts)
        assert PMedian.from_cost_matrix(costs, w, p=p, fixed=fixed).solve().objective \
            == pytest.approx(median)
        assert PCenter.from_cost_matrix(costs, w, p=p, fixed=fixed).solve().objective \
            == pytest.approx(center)
        mclp = MCLP.from_cost_matrix(costs, w, p=p, reach=reach, fixed=fixed).solve()
        assert mclp.objective == pytest.approx(cover)
    reach = float(costs.min(axis=1).max()) + 5.0
    fewest = next(k for k in range(1, m + 1)
                  if any((costs[:, s] <= reach).any(axis=1).all() for s in _layouts(m, k)))
    assert LSCP.from_cost_matrix(costs, w, reach=reach).solve().objective == fewest


@pytest.mark.parametrize("case", range(6))
def test_capacitated_matches_enumeration(case: int) -> None:
    costs, w = _instances(11, n_max=9)[case]
    n, m = costs.shape
    cap = np.full(m, np.ceil(w.sum() / 2) + 2)
    p = 2
    best = np.inf
    for s in _layouts(m, p):
        sites = np.flatnonzero(s)
        for choice in itertools.product(sites, repeat=n):
            load = np.bincount(choice, weights=w, minlength=m)
            if (load <= cap).all():
                best = min(best, float(w @ costs[np.arange(n), list(choice)]))
    model = CapacitatedPMedian.from_cost_matrix(costs, w, p=p, capacities=cap).solve()
    assert model.status == OPTIMAL
    assert model.objective == pytest.approx(best)
    load = np.bincount(model.assignment_index, weights=w, minlength=m)
    assert (load <= cap + 1e-9).all()


# ---------------------------------------------------------------- hand-solved


LINE = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 30.0])
LINE_COSTS = np.abs(LINE[:, None] - LINE[None, :])


def test_p_center_by_hand() -> None:
    # clients 0 1 2 10 11 30; two centres: {1, 11} leaves 30 at 19; {1 or 2, 30}
    # leaves 10/11 at 9 from 2 (or 10 from 1): best longest walk is 9 (sites 2, 30)
    model = PCenter.from_cost_matrix(LINE_COSTS, p=2).solve()
    assert model.objective == 9.0
    assert model.sites == [2, 5]
    assert model.bound == 9.0 and model.gap == 0.0


def test_set_cover_by_hand() -> None:
    # within 1: {0,1,2} by site 1, {10,11} by 3 or 4, {30} only by itself
    model = LSCP.from_cost_matrix(LINE_COSTS, reach=1.0).solve()
    assert model.objective == 3.0
    assert model.sites[0] == 1 and model.sites[2] == 5
    assert model.covered.all()


def test_fixed_sites_stay_open_and_add_k() -> None:
    # site 5 (at 30) must stay; add one: site 2 walks 2+1+0+8+9 = 20, site 1
    # 1+0+1+9+10 = 21, site 3 10+9+8+0+1 = 28
    model = PMedian.from_cost_matrix(LINE_COSTS, p=2, fixed=[5]).solve()
    assert 5 in model.sites
    best = min(LINE_COSTS[:, [j, 5]].min(axis=1).sum() for j in range(5))
    assert model.objective == best == 20.0  # site 2: 2+1+0+8+9 = 20
    assert model.sites == [2, 5]


def test_close_one_and_reassign() -> None:
    # existing sites a, d, f at 0, 10 and 30; the client at 30 weighs 0.5.
    # Keeping {a, d} walks 0+1+2+0+1+0.5×20 = 14, {a, f} 24, {d, f} 28: f closes
    ids = ["a", "b", "c", "d", "e", "f"]
    w = [1, 1, 1, 1, 1, 0.5]
    model = PMedian.from_cost_matrix(LINE_COSTS, w, p=2, candidates=["a", "d", "f"],
                                     site_ids=ids).solve()
    assert model.sites == ["a", "d"]
    assert model.objective == 14.0
    assert model.assignment == ["a", "a", "a", "d", "d", "d"]
    # "d closes": the others stay, its clients walk to a
    closed = PMedian.from_cost_matrix(LINE_COSTS, w, p=2, fixed=["a", "f"],
                                      candidates=["a", "f"], site_ids=ids).solve()
    assert closed.assignment == ["a", "a", "a", "a", "a", "f"]
    assert closed.objective == 0 + 1 + 2 + 10 + 11 + 0


def test_infeasible_capacities_say_so() -> None:
    costs = LINE_COSTS[:, :3]
    model = CapacitatedPMedian.from_cost_matrix(costs, p=2, capacities=[2, 2, 2]).solve()
    assert model.status == INFEASIBLE
    assert "cannot serve the demand (6)" in (model.message or "")
    assert model.sites == [] and model.objective is None
    # enough capacity in total, but single sourcing makes it impossible
    w = np.array([3.0, 3.0, 3.0])
    costs3 = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 1.0]])
    tight = CapacitatedPMedian.from_cost_matrix(costs3, w, p=2, capacities=[4.5, 4.5]).solve()
    assert tight.status == INFEASIBLE
    assert "within the capacities" in (tight.message or "")


def test_unreachable_client_is_infeasible_not_a_crash() -> None:
    costs = np.array([[1.0, np.inf], [np.inf, np.inf]])
    model = PMedian.from_cost_matrix(costs, p=1, client_ids=["x", "y"]).solve()
    assert model.status == INFEASIBLE
    assert "'y'" in (model.message or "")


def test_from_geodataframe_euclidean_and_callable() -> None:
    homes = gpd.GeoDataFrame({"hh": [3, 1, 2, 5], "bid": [11, 12, 13, 14]}, crs=32650,
                             geometry=[Point(0, 0), Point(10, 0), Point(100, 0),
                                       Point(110, 0)])
    bins = gpd.GeoDataFrame({"name": ["w", "m", "e"], "cap": [4, 10, 10]}, crs=32650,
                            geometry=[Point(0, 0), Point(55, 0), Point(110, 0)])
    model = PMedian.from_geodataframe(homes, bins, weights="hh", client_id="bid",
                                      site_id="name", p=2).solve()
    assert model.sites == ["w", "e"]
    assert model.objective == 1 * 10 + 2 * 10
    assert model.client_ids == [11, 12, 13, 14]
    cap = CapacitatedPMedian.from_geodataframe(homes, bins, weights="hh", site_id="name",
                                               p=2, capacities="cap").solve()
    assert cap.status == OPTIMAL
    assert cap.sites == ["w", "e"] and cap.objective == 30.0
    # w holds 4 households: with capacity 3 the home of 3 must walk to m or e
    cap3 = CapacitatedPMedian.from_geodataframe(homes, bins, weights="hh", site_id="name",
                                                p=2, capacities=[3, 10, 10]).solve()
    assert cap3.objective == min(1 * 10 + 3 * 55 + 2 * 55 + 5 * 55,  # {w, m}
                                 3 * 0 + 1 * 100 + 2 * 10)  # {w, e}: the home at 10 to e
    double = MCLP.from_geodataframe(homes, bins, distance=lambda a, b: 2 * np.hypot(
        a.geometry.x.to_numpy()[:, None] - b.geometry.x.to_numpy()[None, :], 0.0),
        p=1, reach=25.0).solve()
    assert double.objective == 2  # 2×distance: one bin covers two homes
    with pytest.raises(PlacementInputError, match="projected CRS"):
        PMedian.from_geodataframe(homes.to_crs(4326), bins.to_crs(4326), p=1)


# ------------------------------------------------------- progress, time limits


def test_progress_reports_the_gap_closing() -> None:
    costs, p = read_orlib_pmed(ORLIB / "pmed7.txt")
    seen: list[SolveProgress] = []
    model = PMedian.from_cost_matrix(costs, p=p).solve(on_progress=seen.append)
    assert seen[0].phase == "heuristic" and seen[0].objective == model.heuristic_objective
    assert seen[-1].phase == "done" and seen[-1].gap == 0.0 and seen[-1].fraction == 1.0
    assert all(0.0 <= s.fraction <= 1.0 for s in seen)
    objectives = [s.objective for s in seen if s.objective is not None]
    assert objectives == sorted(objectives, reverse=True)


def test_a_callback_that_raises_stops_the_solver() -> None:
    costs, p = read_orlib_pmed(ORLIB / "pmed6.txt")

    class DismissedError(Exception):
        pass

    def dismiss(report: SolveProgress) -> None:
        if report.phase == "exact":
            raise DismissedError

    with pytest.raises(DismissedError):
        PMedian.from_cost_matrix(costs, p=p).solve(on_progress=dismiss)


def test_time_limit_keeps_the_best_layout_with_its_gap() -> None:
    costs, p = read_orlib_pmed(ORLIB / "pmed6.txt")
    model = PMedian.from_cost_matrix(costs, p=p).solve(time_limit=0.05)
    assert model.status == TIME_LIMIT
    assert model.objective is not None and model.objective <= model.heuristic_objective
    assert model.gap is None or model.gap >= 0.0
    assert len(model.sites) == p


@pytest.mark.parametrize("limit", [0.001, 0.01])
def test_capacitated_bound_under_a_tiny_time_limit(limit: float) -> None:
    # capacities bind (4 sites of 1.1 × a quarter of the demand); the p-median's
    # bound on the same costs bounds the capacitated optimum from below
    rng = np.random.default_rng(5)
    a, b = rng.uniform(0, 100, (60, 2)), rng.uniform(0, 100, (15, 2))
    costs = np.round(np.hypot(*(a[:, None, :] - b[None, :, :]).transpose(2, 0, 1)), 1)
    w = rng.integers(1, 6, 60).astype(float)
    cap = np.full(15, np.ceil(w.sum() / 4 * 1.1))
    optimum = CapacitatedPMedian.from_cost_matrix(costs, w, p=4, capacities=cap).solve()
    assert optimum.status == OPTIMAL and optimum.objective is not None
    quick = CapacitatedPMedian.from_cost_matrix(costs, w, p=4, capacities=cap).solve(
        time_limit=limit)
    assert quick.objective is not None and quick.bound is not None
    assert 0.0 < quick.bound <= quick.objective + 1e-9
    assert quick.bound <= optimum.objective + 1e-9
    assert quick.gap is not None and quick.gap < 1.0
    # the uncapacitated optimum is below the capacitated one here
    median = PMedian.from_cost_matrix(costs, w, p=4).solve()
    assert median.objective is not None and median.objective < optimum.objective


def test_capacitated_bound_on_pmed6() -> None:
    costs, p = read_orlib_pmed(ORLIB / "pmed6.txt")
    model = CapacitatedPMedian.from_cost_matrix(costs, p=p, capacities=np.full(200, 45.0))
    model.solve(time_limit=0.05)
    assert model.objective is not None and model.bound is not None
    # 7824 is pmed6's uncapacitated optimum: no capacitated layout is cheaper
    assert 0.0 < model.bound <= model.objective
    assert model.objective >= 7824.0


def test_capacitated_loose_capacities_proved_by_the_p_median() -> None:
    # capacities that never bind: the p-median's optimum is the capacitated one
    costs, p = read_orlib_pmed(ORLIB / "pmed1.txt")
    model = CapacitatedPMedian.from_cost_matrix(costs, p=p, capacities=np.full(100, 100.0))
    model.solve()
    assert model.status == OPTIMAL
    assert model.objective == model.bound == _optima()["pmed1"]


def test_cut_off_costs_relax_over_the_finite_pairs_only(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a walk cut-off leaves most pairs inf: the Lagrangian then steps over the
    # finite pairs only, and must give the dense form's numbers and optimum
    from scenarios.placement import median
    from scenarios.placement.median import SPARSE_BELOW, _Relaxation

    rng = np.random.default_rng(7)
    a, b = rng.uniform(0, 1000, (60, 2)), rng.uniform(0, 1000, (40, 2))
    costs = np.hypot(*(a[:, None, :] - b[None, :, :]).transpose(2, 0, 1))
    costs[costs > 300] = np.inf
    finite = np.isfinite(costs)
    assert finite.mean() < SPARSE_BELOW and finite.any(axis=1).all()
    w = rng.integers(1, 5, 60).astype(float)
    c = w[:, None] * np.where(finite, costs, 0.0)
    c[~finite] = (float(c[finite].max()) + 1.0) * 4 * 60
    dense, sparse = _Relaxation(c, None), _Relaxation(c, np.nonzero(finite))
    lam = np.where(finite, c, np.inf).min(axis=1) * rng.uniform(0.5, 3.0, 60)
    chosen = np.zeros(40, bool)
    chosen[rng.choice(40, 10, replace=False)] = True
    (rd, dd), (rs, ds) = dense.rho(lam), sparse.rho(lam)
    assert np.allclose(rd, rs)
    assert np.array_equal(dense.served(dd, chosen), sparse.served(ds, chosen))
    assert dense.cost(chosen) == pytest.approx(sparse.cost(chosen))
    by_pairs = PMedian.from_cost_matrix(costs, w, p=10).solve()
    monkeypatch.setattr(median, "SPARSE_BELOW", 0.0)
    by_dense = PMedian.from_cost_matrix(costs, w, p=10).solve()
    assert by_pairs.status == by_dense.status == OPTIMAL
    assert by_pairs.objective == pytest.approx(by_dense.objective)
    assert (by_pairs.assignment_index >= 0).all()


def test_heuristic_only() -> None:
    model = PMedian.from_cost_matrix(LINE_COSTS, p=2).solve(exact=False)
    assert model.status == "heuristic"
    assert model.objective == model.heuristic_objective
    assert model.bound is None


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("build", "match"), [
    (lambda: PMedian.from_cost_matrix(LINE_COSTS, p=7), "p=7 is larger than the 6"),
    (lambda: PMedian.from_cost_matrix(LINE_COSTS, p=2, candidates=[0]), "p=2 is larger"),
    (lambda: PMedian.from_cost_matrix(LINE_COSTS, p=0), "p must be at least 1, got 0"),
    (lambda: PMedian.from_cost_matrix(LINE_COSTS, p=1.5), "got 1.5"),
    (lambda: PMedian.from_cost_matrix(LINE_COSTS, p=1, fixed=[0, 1]), "smaller than the 2"),
    (lambda: PMedian.from_cost_matrix(LINE_COSTS, p=1, fixed=[99]), "unknown fixed site id 99"),
    (lambda: PMedian.from_cost_matrix(LINE_COSTS, p=1, candidates=["x"]),
     "unknown candidate site id 'x'"),
    (lambda: MCLP.from_cost_matrix(LINE_COSTS, p=1, reach=-5), "got -5"),
    (lambda: LSCP.from_cost_matrix(LINE_COSTS, reach=float("nan")), "got nan"),
    (lambda: PMedian.from_cost_matrix(np.zeros((0, 3)), p=1), "no demand"),
    (lambda: PMedian.from_cost_matrix(LINE_COSTS, np.zeros(6), p=1), "no demand"),
    (lambda: PMedian.from_cost_matrix(LINE_COSTS, np.ones(5), p=1), "5 values for 6"),
    (lambda: PMedian.from_cost_matrix(-LINE_COSTS, p=1), "non-negative"),
    (lambda: CapacitatedPMedian.from_cost_matrix(LINE_COSTS, p=1, capacities=[1, 2]),
     "capacities has 2 values for 6"),
])
def test_bad_input_names_the_value(build, match: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=match) as info:
        build()
    assert isinstance(info.value, InvalidInputError)


# ------------------------------------------------------------- sparse costs


def _cut_off(seed: int, n: int = 60, m: int = 30, cut: float = 260.0,
             ) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """Walk-like costs beyond a cut-off made ``inf`` (each client keeps its nearest
    site, as the refuse analysis does), about 20 % finite; some weights 0."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(0, 1000, (n, 2)), rng.uniform(0, 1000, (m, 2))
    costs = np.round(np.hypot(*(a[:, None, :] - b[None, :, :]).transpose(2, 0, 1)), 1)
    nearest = costs.argmin(axis=1)
    costs[costs > cut] = np.inf
    costs[np.arange(n), nearest] = np.round(np.hypot(*(a - b[nearest]).T), 1)
    w = rng.integers(0, 5, n).astype(float)
    w[0] = 1.0
    return costs, w, rng


def _as_sparse(costs: np.ndarray, kind: str) -> sp.sparray:
    finite = np.isfinite(costs)
    coo = sp.coo_array((costs[finite], np.nonzero(finite)), shape=costs.shape)
    return {"csr": coo.tocsr(), "csc": coo.tocsc(), "coo": coo}[kind]


def _same(dense: FacilityModel, sparse: FacilityModel) -> None:
    assert sparse.status == dense.status
    assert (sparse.objective is None) == (dense.objective is None)
    if dense.objective is not None:
        assert sparse.objective == pytest.approx(dense.objective, rel=1e-9, abs=1e-9)
    assert isinstance(sparse.sites, list) and isinstance(sparse.assignment, list)
    assert len(sparse.assignment) == len(dense.assignment)
    if dense.status == OPTIMAL and isinstance(dense, PMedian):
        assert sparse.mean_distance == pytest.approx(dense.mean_distance, rel=1e-9)


@pytest.mark.parametrize("seed", range(9))
def test_every_model_gives_the_same_answer_from_sparse_costs(seed: int) -> None:
    costs, w, rng = _cut_off(seed)
    m = costs.shape[1]
    assert np.isfinite(costs).mean() < 0.25
    sparse = _as_sparse(costs, ("csr", "csc", "coo")[seed % 3])
    fixed = [int(rng.integers(m))] if seed % 2 else None
    cand = None
    if seed % 3 == 1:
        cand = sorted(set(rng.choice(m, 22, replace=False).tolist()) | set(fixed or []))
    cap = np.full(m, np.ceil(w.sum() / 5))
    builds = [
        lambda c: PMedian.from_cost_matrix(c, w, p=9, fixed=fixed, candidates=cand),
        lambda c: CapacitatedPMedian.from_cost_matrix(c, w, p=9, capacities=cap, fixed=fixed,
                                                      candidates=cand),
        lambda c: MCLP.from_cost_matrix(c, w, p=5, reach=200.0, fixed=fixed, candidates=cand),
        lambda c: LSCP.from_cost_matrix(c, w, reach=260.0, fixed=fixed, candidates=cand),
        lambda c: PCenter.from_cost_matrix(c, w, p=9, fixed=fixed, candidates=cand),
    ]
    for build in builds:
        dense_model = build(costs).solve(time_limit=60)
        sparse_model = build(sparse)
        assert sparse_model.sparse and isinstance(sparse_model.costs, sp.csr_array)
        _same(dense_model, sparse_model.solve(time_limit=60))
        if isinstance(dense_model, MCLP | LSCP):
            assert isinstance(sparse_model, MCLP | LSCP)
            assert np.array_equal(sparse_model.covered, dense_model.covered)
            assert sparse_model.covered_weight == dense_model.covered_weight


@pytest.mark.parametrize("seed", range(4))
def test_the_sparse_code_on_full_matrices_matches_the_dense(
        seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # kept sparse whatever the share of finite pairs: every model's sparse path
    # on complete matrices against the dense one
    from scenarios.placement import _sparse

    costs, w = _instances(seed, count=1, n_max=14)[0]
    m = costs.shape[1]
    dense = [PMedian.from_cost_matrix(costs, w, p=2).solve(),
             CapacitatedPMedian.from_cost_matrix(costs, w, p=3,
                                                 capacities=np.full(m, w.sum() / 2)).solve(),
             MCLP.from_cost_matrix(costs, w, p=2, reach=float(np.median(costs))).solve(),
             LSCP.from_cost_matrix(costs, w, reach=float(costs.min(axis=1).max())).solve(),
             PCenter.from_cost_matrix(costs, w, p=2, fixed=[m - 1]).solve()]
    monkeypatch.setattr(_sparse, "SPARSE_BELOW", 1.01)
    c = _as_sparse(costs, "csc")
    sparse = [PMedian.from_cost_matrix(c, w, p=2).solve(),
              CapacitatedPMedian.from_cost_matrix(c, w, p=3,
                                                  capacities=np.full(m, w.sum() / 2)).solve(),
              MCLP.from_cost_matrix(c, w, p=2, reach=float(np.median(costs))).solve(),
              LSCP.from_cost_matrix(c, w, reach=float(costs.min(axis=1).max())).solve(),
              PCenter.from_cost_matrix(c, w, p=2, fixed=[m - 1]).solve()]
    for d, s in zip(dense, sparse, strict=True):
        assert s.sparse
        _same(d, s)


def test_orlib_pmed1_from_sparse_costs(monkeypatch: pytest.MonkeyPatch) -> None:
    from scenarios.placement import _sparse

    costs, p = read_orlib_pmed(ORLIB / "pmed1.txt")
    # every pair finite (a client at its own site stored as 0, not left out, which
    # sp.csr_array(costs) would do): the model makes it dense again
    assert (costs == 0).any()
    again = PMedian.from_cost_matrix(_as_sparse(costs, "csr"), p=p)
    assert not again.sparse and isinstance(again.costs, np.ndarray)
    assert again.solve().objective == _optima()["pmed1"]
    # kept sparse: the sparse heuristic, Lagrangian and MIP find the same optimum
    monkeypatch.setattr(_sparse, "SPARSE_BELOW", 1.01)
    model = PMedian.from_cost_matrix(_as_sparse(costs, "coo"), p=p)
    assert model.sparse
    model.solve(time_limit=300)
    assert model.status == OPTIMAL and model.gap == 0.0
    assert model.objective == _optima()["pmed1"]
    rows = np.arange(costs.shape[0])
    assert costs[rows, model.assignment_index].sum() == model.objective
    assert np.array_equal(costs[rows, model.assignment_index],
                          costs[:, model.is_open].min(axis=1))
    assert model.heuristic_objective is not None
    assert model.heuristic_objective >= model.objective


def test_sparse_heuristic_returns_a_feasible_layout() -> None:
    costs, w, _ = _cut_off(3, n=400, m=160, cut=180.0)
    model = PMedian.from_cost_matrix(_as_sparse(costs, "csr"), w, p=40).solve(exact=False)
    assert model.sparse and model.status == "heuristic"
    assert len(model.sites) == 40 and model.is_open.sum() == 40
    served = model.assignment_index
    assert (served >= 0).all()
    walk = costs[np.arange(costs.shape[0]), served]
    assert np.isfinite(walk).all()
    assert np.array_equal(walk, costs[:, model.is_open].min(axis=1))
    assert model.objective == pytest.approx(float(w @ walk), rel=1e-12)
    assert model.objective == model.heuristic_objective
    best = PMedian.from_cost_matrix(costs, w, p=40).solve()
    assert best.status == OPTIMAL and best.objective is not None
    assert best.objective <= model.objective <= 1.05 * best.objective


def test_stored_zeros_are_walks_of_zero_and_missing_pairs_unreachable() -> None:
    # client 0 stands at site 0 (a stored 0); client 1 reaches only site 1
    costs = sp.csr_array((np.array([0.0, 7.0]), (np.array([0, 1]), np.array([0, 1]))),
                         shape=(2, 8))
    model = PMedian.from_cost_matrix(costs, p=2).solve()
    assert model.sparse
    assert model.status == OPTIMAL and model.objective == 7.0
    assert model.sites == [0, 1] and model.assignment == [0, 1]
    assert model.costs_at(np.array([0, 0, 1]), np.array([0, 1, 1])).tolist() == [0.0, np.inf,
                                                                                  7.0]
    # a stored inf is unreachable too, as a missing pair
    with_inf = sp.csr_array((np.array([0.0, np.inf, 7.0]),
                             (np.array([0, 0, 1]), np.array([0, 1, 1]))), shape=(2, 8))
    assert PMedian.from_cost_matrix(with_inf, p=2).solve().objective == 7.0


@pytest.mark.parametrize(("costs", "match"), [
    (sp.coo_array((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))), shape=(2, 3)),
     "more than one stored entry"),
    (sp.csr_array((np.array([-1.0]), (np.array([0]), np.array([1]))), shape=(2, 3)),
     "non-negative"),
    (sp.csr_array((np.array([np.nan]), (np.array([0]), np.array([1]))), shape=(2, 3)),
     "non-negative"),
    (sp.csr_array((0, 3)), "no demand"),
])
def test_bad_sparse_costs_name_the_problem(costs: sp.sparray, match: str) -> None:
    with pytest.raises(PlacementInputError, match=match):
        PMedian.from_cost_matrix(costs, p=1)


def test_a_layout_leaving_a_client_unreachable_is_not_reported_as_a_solution() -> None:
    # p = 2: client 1 reaches only site 0, so site 0 must open, and the other site
    # must reach clients 0, 2 and 3: only site 5 does (4·38 + 1·40 + 5·42 + 1·39 = 441).
    # Counting a client no open site reaches as 0 made {2, 4} look better (211)
    # and reported it as optimal.
    inf = np.inf
    costs = np.array([[inf, inf, inf, inf, 49.0, 38.0],
                      [40.0, inf, inf, inf, inf, inf],
                      [inf, inf, 12.0, inf, 4.0, 42.0],
                      [inf, 38.0, 18.0, inf, inf, 39.0]])
    w = np.array([4.0, 1.0, 5.0, 1.0])
    for c in (costs, _as_sparse(costs, "csr")):
        model = PMedian.from_cost_matrix(c, w, p=2).solve()
        assert model.status == OPTIMAL
        assert model.objective == 441.0 and model.sites == [0, 5]
        assert (model.assignment_index >= 0).all() and model.unserved == []
        assert model.heuristic_objective is not None and model.heuristic_objective >= 441.0
    # no single site reaches both clients: infeasible, the message counts who is left out
    two = np.array([[10.0, inf], [inf, 1.0]])
    for c in (two, _as_sparse(two, "coo")):
        model = PMedian.from_cost_matrix(c, p=1, client_ids=["a", "b"]).solve()
        assert model.status == INFEASIBLE and model.objective is None and model.sites == []
        assert "1 client unreachable" in (model.message or "")
        assert "'a'" in (model.message or "") and model.unserved == ["a"]
        quick = PMedian.from_cost_matrix(c, p=1, client_ids=["a", "b"]).solve(exact=False)
        assert quick.status == INFEASIBLE and quick.objective is None
        assert "the heuristic's layout leaves 1 client unreachable" in (quick.message or "")
        assert quick.unserved == ["a"]


def test_a_large_sparse_instance_finishes_the_interchange_and_skips_a_huge_mip() -> None:
    costs, w, _ = _cut_off(3, n=300, m=120, cut=200.0)  # the Lagrangian leaves a gap
    sparse = _as_sparse(costs, "csr")
    best = PMedian.from_cost_matrix(costs, w, p=25).solve()
    assert best.status == OPTIMAL and best.objective is not None
    # no time for the heuristic's interchange: the exact phase finishes it first
    cut = PMedian.from_cost_matrix(sparse, w, p=25)
    cut.heuristic_budget = 0.0
    cut.solve()
    assert cut.status == OPTIMAL
    assert cut.objective == pytest.approx(best.objective, rel=1e-9)
    # a MIP over more columns than allowed is not built: the Lagrangian's bound stands
    big = PMedian.from_cost_matrix(sparse, w, p=25)
    big.max_mip_columns = 10
    big.solve(time_limit=2)
    assert big.status == TIME_LIMIT
    assert big.objective is not None and big.bound is not None and big.gap is not None
    assert big.bound <= best.objective + 1e-6 and best.objective <= big.objective + 1e-6
    assert (big.assignment_index >= 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_mclp_without_dominated_sites_keeps_the_optimum(seed: int) -> None:
    # coarse costs: many sites cover a part of what a neighbour covers
    costs, w, rng = _cut_off(seed, n=120, m=40, cut=300.0)
    costs = np.round(costs / 100.0) * 100.0
    fixed = [int(rng.integers(40))] if seed % 2 else None
    for p in (4, 30, 40):  # 30, 40: fewer sites stay than p, dominated ones come back
        if fixed is not None and p == 40:
            continue
        reduced = MCLP.from_cost_matrix(costs, w, p=p, reach=200.0, fixed=fixed).solve()
        plain = MCLP.from_cost_matrix(costs, w, p=p, reach=200.0, fixed=fixed)
        plain.drop_dominated = False
        plain.solve()
        assert reduced.status == plain.status == OPTIMAL
        assert reduced.objective == plain.objective == reduced.covered_weight
        assert len(reduced.sites) == p and (fixed is None or fixed[0] in reduced.sites)
