"""Refuse-building placement (``scenarios/refuse_placement.py``) against answers computed
without it:

- the planted truth of a generated city (S and M, seed 1, generated per module as
  tests/spatial/test_network.py does): with mode ``current`` every residential
  building's refuse building and walk are ``truth.refuse_access``'s (the same facility,
  the walk to the decimetre), the buildings beyond 500 m are exactly the truth's, grouped
  into the truth's gap areas with the truth's polygons, every planted gap among them;
- hand-solved cases on a street of three blocks, through the class (walks, p-median,
  coverage, p-center, set cover, capacities, close, bad input);
- a p-median layout equal to a brute force over every p-subset on a small area;
- the coverage of a chosen layout recomputed independently (PostGIS for the geometry,
  networkx for the paths) from the rows;
- a what-if scenario's removed and added refuse buildings, and the progress reports.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import networkx as nx
import numpy as np
import pytest
import shapely

from scenarios import refuse_placement as rp
from scenarios.placement import SolveProgress
from scenarios.refuse_placement import (
    Buildings,
    RefuseInputError,
    RefusePlacement,
    Sites,
    WalkNetwork,
)
from spatial import whatif
from spatial.db import connect

# --- generated cities -----------------------------------------------------------------


def _city(server_conninfo: str, template_db: str, scale: str) -> Iterator[str]:
    from tests.conftest import generated_city

    with generated_city(server_conninfo, template_db, f"refuse_{scale.lower()}", scale,
                        steps=("refuse",)) as made:
        yield made[0]


@pytest.fixture(scope="module")
def s_city(server_conninfo: str, template_db: str) -> Iterator[str]:
    """Conninfo of a database holding the S city of seed 1 (with its refuse facilities)."""
    yield from _city(server_conninfo, template_db, "S")


@pytest.fixture(scope="module")
def m_city(server_conninfo: str, template_db: str) -> Iterator[str]:
    """The M city of seed 1: 55 refuse buildings, ten gap areas, two of them planted."""
    yield from _city(server_conninfo, template_db, "M")


def district(conn: Any) -> int:
    return int(conn.execute("SELECT min(id) AS id FROM onemap.district").fetchone()["id"])


# --- the planted truth ----------------------------------------------------------------


@pytest.mark.parametrize("scale", ["S", "M"])
def test_current_layout_reproduces_the_planted_truth(request: pytest.FixtureRequest,
                                                     scale: str) -> None:
    city = request.getfixturevalue(f"{scale.lower()}_city")
    with connect(city, autocommit=True) as conn:
        model = rp.load(conn, level="district", unit_id=district(conn), model="p-median",
                        mode="current").solve()
        truth = {r["building_id"]: r for r in conn.execute(
            "SELECT building_id, facility_id, households, residents, walk_m, beyond_walk, "
            "gap_id FROM truth.refuse_access").fetchall()}
        gap_rows = conn.execute("SELECT id, planted, buildings, households, "
                                "ST_AsBinary(geom) AS g FROM truth.refuse_gap ORDER BY id"
                                ).fetchall()
        facts = conn.execute("SELECT facts FROM truth.generation").fetchone()["facts"]["refuse"]
    b, s, after = model.buildings, model.sites, model.after
    assert after is not None and model.before is not None
    assert sorted(b.ids.tolist()) == sorted(truth)  # every residential building, no other
    facility = [s.facility_id[j] for j in after.site]
    assert facility == [truth[i]["facility_id"] for i in b.ids.tolist()]
    walk = np.array([truth[i]["walk_m"] for i in b.ids.tolist()])
    assert np.abs(after.walk_m - walk).max() <= 0.05 + 1e-6  # the truth is rounded to 0.1 m
    assert b.households.tolist() == [truth[i]["households"] for i in b.ids.tolist()]
    assert b.residents.tolist() == [truth[i]["residents"] for i in b.ids.tolist()]
    # beyond 500 m: the same buildings, the same gap areas, the same polygons
    beyond = set(b.ids[~after.within(rp.REACH_M)].tolist())
    assert beyond == {i for i, r in truth.items() if r["beyond_walk"]}
    mine = [set(b.ids[g].tolist()) for g in model.gaps()]
    theirs: dict[int, set[int]] = {}
    for i, r in truth.items():
        if r["gap_id"] is not None:
            theirs.setdefault(r["gap_id"], set()).add(i)
    assert mine == [theirs[r["id"]] for r in gap_rows]
    features = model.gap_features()
    assert len(features) == len(gap_rows) >= 1
    for feature, row in zip(features, gap_rows, strict=True):
        expected = shapely.from_wkb(bytes(row["g"]))
        got = shapely.geometry.shape(feature["geometry"])
        # the same polygon, its vertices rounded to 1e-7 degree (a centimetre)
        assert got.hausdorff_distance(expected) < 2e-7
        assert got.area == pytest.approx(expected.area, rel=1e-3)
        assert (feature["properties"]["buildings"], feature["properties"]["households"]) == (
            row["buildings"], row["households"])
    planted = [set(theirs[r["id"]]) for r in gap_rows if r["planted"]]
    assert planted and all(g <= beyond for g in planted)
    summary = model.summary()
    assert summary["status"] == rp.EVALUATED
    assert summary["households"] - summary["households_within_reach_after"] == \
        facts["households_beyond_walk"]
    assert summary["households_within_reach_before"] == summary["households_within_reach_after"]


def test_stored_doors_name_their_corners(m_city: str) -> None:
    """The door stands less than halfway to any other node: the corner is the nearest."""
    with connect(m_city, autocommit=True) as conn:
        model = rp.load(conn, level="district", unit_id=district(conn), mode="current")
    s, net = model.sites, model.network
    stored = np.flatnonzero(s.stored)
    off = np.hypot(*(s.xy[stored] - net.xy[s.node[stored]]).T)
    assert off.max() <= rp.SITE_ACCESS_M + 1e-9
    assert np.all(s.access[stored] == rp.SITE_ACCESS_M)
    # M has corners with another node within 16 m: their doors were drawn closer
    assert (off < 8.0).any()


# --- hand-solved: a street of three blocks --------------------------------------------

X0, Y0 = 500_000.0, 4_420_000.0


def street() -> WalkNetwork:
    """Nodes 0–3 every 100 m along y = Y0 (EPSG:4548), and a side street from node 1
    north to node 4 (100 m): node 1 is a corner."""
    xy = np.array([[X0, Y0], [X0 + 100, Y0], [X0 + 200, Y0], [X0 + 300, Y0], [X0 + 100, Y0 + 100]])
    ends = [(0, 1), (1, 2), (2, 3), (1, 4)]
    lines = shapely.linestrings([[xy[a], xy[b]] for a, b in ends])
    return WalkNetwork(xy, [a for a, _ in ends], [b for _, b in ends], lines, 4548)


def home(x: float, y: float, half: float = 5.0) -> Any:
    return shapely.box(X0 + x - half, Y0 + y - half, X0 + x + half, Y0 + y + half)


def homes(*spec: tuple[float, float, float, float]) -> Buildings:
    """(x, y, households, residents) per building, ids 1, 2, …"""
    return Buildings.from_footprints(list(range(1, len(spec) + 1)), [h[2] for h in spec],
                                     [h[3] for h in spec], [home(h[0], h[1]) for h in spec])


def sites(net: WalkNetwork, spec: list[tuple[str, float, float, bool, float]]) -> Sites:
    """(key, x, y, existing, capacity t/day) per site; existing ones are facility 1, 2 …"""
    ids = [int(k[1:]) if k.startswith("f") else None for k, *_ in spec]
    return Sites.build(net, keys=[k for k, *_ in spec],
                       xy=[(X0 + x, Y0 + y) for _, x, y, _, _ in spec], facility_id=ids,
                       existing=[e for *_, e, _ in spec], capacity_t=[c for *_, c in spec])


def test_hand_solved_walks() -> None:
    net = street()
    b = homes((50, 20, 10, 20), (250, -30, 20, 50), (110, 60, 5, 10))
    s = sites(net, [("f1", 0, 8, True, 5.0), ("p1", 300, 40, False, 5.0)])
    # a door 8 m off its corner: access 12 m; a point 40 m off node 3: access 40 m
    assert s.node.tolist() == [0, 3] and s.access.tolist() == [12.0, 40.0]
    costs = net.costs(net.attach(b.centroid), s.node, s.access, limit=1e9)
    # 20 m to the street + 50 along + 12; 30 + 50 + 200 + 12; 10 to the side street + 60 up …
    assert costs[:, 0].round(6).tolist() == [82.0, 292.0, 10 + 60 + 100 + 12]
    assert costs[:, 1].round(6).tolist() == [20 + 50 + 200 + 40, 30 + 50 + 40, 10 + 60 + 200 + 40]
    walk, which = net.nearest(net.attach(b.centroid), s.node, s.access)
    assert walk.round(6).tolist() == [82.0, 120.0, 182.0] and which.tolist() == [0, 1, 0]
    # beyond the limit: inf, never a longer way round
    cut = net.costs(net.attach(b.centroid), s.node, s.access, limit=100.0)
    assert np.isinf(cut[1, 0]) and cut[0, 0] == pytest.approx(82.0)


def test_hand_solved_walk_through_a_compound_gate() -> None:
    """A compound north of the street: the house's door path (5 m) meets a walkway that
    runs 40 m east to the gate, whose path runs 10 m south to the street, meeting it
    between nodes 1 and 2 (at x = 150): the walk leaves through the gate, not straight
    down to the street, and the road row is split at the gate path's foot."""
    net = street()
    door, junction, gate = (X0 + 110, Y0 + 25), (X0 + 110, Y0 + 20), (X0 + 150, Y0 + 10)
    foot = (X0 + 150, Y0)
    paths = [shapely.LineString([door, junction]), shapely.LineString([junction, (X0 + 150,
                                                                                  Y0 + 20)]),
             shapely.LineString([(X0 + 150, Y0 + 20), gate]), shapely.LineString([gate, foot])]
    walk = net.with_footpaths(paths, ["door", "path", "path", "gate_path"], [11, 12, 13, 14])
    assert walk.n_road_nodes == 5 and walk.n_nodes == 5 + 5   # door, junction, bend, gate, foot
    assert sorted(walk.edge_ids[walk.road_edge].tolist()) == [0, 1, 1, 2, 3]  # row 1 split
    assert walk.degree()[:5].tolist() == net.degree().tolist()  # corners stay corners
    b = Buildings.from_footprints([1], [10], [20], [shapely.box(X0 + 105, Y0 + 25, X0 + 115,
                                                                Y0 + 35)], [door])
    s = sites(walk, [("f1", 0, 8, True, 5.0), ("p1", 300, 0, False, 5.0)])
    costs = walk.costs(walk.attach_buildings(b), s.node, s.access, limit=1e9)
    # 5 + 40 + 10 + 10 to the street at x = 150, then 150 west or 150 east, then 12
    assert costs.round(6).tolist() == [[227.0, 227.0]]
    # closing road row 1 closes both its pieces: west only by row 0 from node 1 — cut off
    closed = walk.without([1])
    cut = closed.costs(closed.attach_buildings(b), s.node, s.access, limit=1e9)
    assert np.isinf(cut).all()
    # without its door the house walks from its centroid to the nearest road, as before:
    # 10 m west to the side street, 30 down to node 1, then 100 west or 200 east, 12 in
    plain = Buildings.from_footprints([1], [10], [20], list(b.footprints))
    assert walk.costs(walk.attach_buildings(plain), s.node, s.access, limit=1e9).round(
        6).tolist() == [[10 + 30 + 100 + 12, 10 + 30 + 200 + 12]]


#: Walks (m) of the four houses of :func:`test_hand_solved_models` to nodes 0–4, by hand:
#: perpendicular to the nearest edge + along it + the path + 12 m to the door.
HAND = np.array([[42, 102, 202, 302, 202],     # (20, 10): 10 + 20 → node 0
                 [52, 92, 192, 292, 192],      # (30, -10): 10 + 30 → node 0, 10 + 70 → node 1
                 [302, 202, 102, 42, 302],     # (280, 10): 10 + 20 → node 3
                 [202, 102, 202, 302, 22]],    # (100, 90): on the side street, 10 → node 4
                dtype=float)
HOUSEHOLDS = [10, 10, 40, 5]


def test_hand_solved_models() -> None:
    net = street()
    b = homes((20, 10, 10, 10), (30, -10, 10, 10), (280, 10, 40, 100), (100, 90, 5, 5))
    spec = [("f1", 0, 0, True, 0.015), ("c1", 100, 0, False, 5.0), ("c2", 200, 0, False, 5.0),
            ("c3", 300, 0, False, 5.0), ("c4", 100, 100, False, 5.0)]
    s = sites(net, spec)
    assert np.allclose(net.costs(net.attach(b.centroid), s.node, s.access, 1e9), HAND)

    def run(spec: list[Any] = spec, **kw: Any) -> RefusePlacement:
        return RefusePlacement(net, b, sites(net, spec), **kw).solve(time_limit=10)

    # p-median, add one to f1: node 3 (10·42 + 10·52 + 40·42 + 5·202)
    m = run(model="p-median", mode="add", k=1)
    assert (m.opened, m.closed, m.status, m.objective) == (["c3"], [], "optimal", 3630.0)
    # one site in all: node 2 (9030) beats node 3 (9130), node 1 (10530), f1 (14030)
    m = run(model="p-median", mode="optimise", p=1)
    assert (m.opened, m.closed, m.objective) == (["c2"], [1], 9030.0)
    # coverage within 60 m: f1 covers 20 households, node 3 adds 40, node 4 only 5
    m = run(model="coverage", mode="add", k=1, reach_m=60)
    assert (m.opened, m.objective) == (["c3"], 60.0)
    # p-center, one site: nodes 1 and 2 both leave a longest walk of 202 m
    m = run(model="p-center", mode="optimise", p=1)
    assert m.objective == 202.0 and m.opened[0] in ("c1", "c2")
    # set cover within 120 m: f1 and one of nodes 2/3 (the big house) and 1/4 (the side street)
    m = run(model="set-cover", mode="add", reach_m=120)
    assert m.objective == 3.0 and len(m.opened) == 2
    assert {m.opened[0], m.opened[1]} & {"c2", "c3"} and {m.opened[0], m.opened[1]} & {"c1", "c4"}
    assert m.after is not None and m.after.within(120).all()
    # capacitated: f1 takes 0.015 t/day, the two houses near it make 0.01 each, the side
    # street's 0.005: with node 3 added, the second house walks there (292 m):
    # 0.01·42 + 0.01·292 + 0.1·42 + 0.005·202 = 8.55 t·m/day
    m = run(model="capacitated", mode="add", k=1)
    assert m.status == "optimal" and m.opened == ["c3"] and m.after is not None
    assert m.objective == pytest.approx(8.55)
    assert [m.sites.keys[j] for j in m.after.site] == ["f1", "c3", "c3", "f1"]
    # the same without capacities: everyone near f1 stays there
    m = run(model="p-median", mode="add", k=1)
    assert m.after is not None and [m.sites.keys[j] for j in m.after.site] == [
        "f1", "f1", "c3", "f1"]
    # two existing (nodes 0 and 3): which one could close — f1 (node 3 alone: 9130)
    two = [*spec[:3], ("f2", 300, 0, True, 5.0), spec[4]]
    m = run(two, model="p-median", mode="close-one")
    assert (m.closed, m.opened, m.objective) == ([1], [], 9130.0)
    # close f2: its house walks to f1 (302 m)
    m = run(two, model="p-median", mode="close", close=[2])
    assert m.after is not None and m.closed == [2]
    assert m.after.walk_m.tolist() == [42.0, 52.0, 302.0, 202.0]
    # closing the only one near is refused, naming the input
    with pytest.raises(RefuseInputError) as err:
        RefusePlacement(net, b, sites(net, spec), mode="close", close=[1])
    assert err.value.name == "close"


@pytest.mark.parametrize(("model", "kw"), [
    ("p-median", {"mode": "add", "k": 1}), ("p-median", {"mode": "optimise", "p": 2}),
    ("coverage", {"mode": "add", "k": 1, "reach_m": 60}),
    ("set-cover", {"mode": "add", "reach_m": 120}), ("p-center", {"mode": "optimise", "p": 2}),
    ("capacitated", {"mode": "add", "k": 1})])
def test_sparse_walks_give_the_dense_answers(model: str, kw: dict[str, Any],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # the houses and sites of test_hand_solved_models, walks cut off at 150 m
    from scipy.sparse import csr_array

    from scenarios.placement import _sparse

    net = street()
    b = homes((20, 10, 10, 10), (30, -10, 10, 10), (280, 10, 40, 100), (100, 90, 5, 5))
    spec = [("f1", 0, 0, True, 0.015), ("c1", 100, 0, False, 5.0), ("c2", 200, 0, False, 5.0),
            ("c3", 300, 0, False, 5.0), ("c4", 100, 100, False, 5.0)]
    s = sites(net, spec)
    att = net.attach(b.centroid)
    dense = net.costs(att, s.node, s.access, 150.0)
    walks = net.costs(att, s.node, s.access, 150.0, sparse=True)
    assert isinstance(walks, csr_array) and walks.nnz == np.isfinite(dense).sum() < dense.size
    coo = walks.tocoo()
    assert np.array_equal(coo.data, dense[coo.coords[0], coo.coords[1]])
    want = RefusePlacement(net, b, s, cutoff_m=150.0, model=model, **kw).solve(time_limit=10)
    assert isinstance(want.costs, np.ndarray)
    monkeypatch.setattr(rp, "DENSE_CELLS", 0)  # sparse walks
    monkeypatch.setattr(_sparse, "SPARSE_BELOW", 1.01)  # and the model keeps them sparse
    got = RefusePlacement(net, b, sites(net, spec), cutoff_m=150.0, model=model,
                          **kw).solve(time_limit=10)
    assert isinstance(got.costs, csr_array)
    assert got.model is not None and got.model.sparse
    assert (got.status, got.objective, got.gap) == (want.status, want.objective, want.gap)
    if model == "p-center":
        return  # two layouts leave the same longest walk (102 m): either may come
    assert got.after is not None and want.after is not None
    assert np.array_equal(got.after.site, want.after.site)
    assert np.array_equal(got.after.walk_m, want.after.walk_m)
    assert {k: v for k, v in got.summary().items() if k != "solve_time_s"} == {
        k: v for k, v in want.summary().items() if k != "solve_time_s"}


def test_too_many_walks_within_the_cut_off_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    net = street()
    b = homes((20, 10, 10, 10), (30, -10, 10, 10), (280, 10, 40, 100), (100, 90, 5, 5))
    spec = [("f1", 0, 0, True, 1.0), ("c1", 100, 0, False, 5.0), ("c2", 200, 0, False, 5.0)]
    monkeypatch.setattr(rp, "DENSE_CELLS", 0)  # sparse walks: the pairs within reach count
    # 4 houses × 3 sites, 8 of the pairs within 150 m in a straight line
    monkeypatch.setattr(rp, "MAX_CELLS", 8)
    RefusePlacement(net, b, sites(net, spec), mode="add", k=1, cutoff_m=150)
    monkeypatch.setattr(rp, "MAX_CELLS", 7)
    with pytest.raises(RefuseInputError, match="make about 8 walks within 150 m") as err:
        RefusePlacement(net, b, sites(net, spec), mode="add", k=1, cutoff_m=150)
    assert err.value.name == "polygon"


def test_a_first_refuse_building() -> None:
    """No refuse building yet: everyone is beyond reach before, the best corner after."""
    b = homes((20, 10, 10, 10), (30, -10, 10, 10), (280, 10, 40, 100), (100, 90, 5, 5))
    s = sites(street(), [("c1", 100, 0, False, 5.0), ("c2", 200, 0, False, 5.0),
                         ("c3", 300, 0, False, 5.0), ("c4", 100, 100, False, 5.0)])
    m = RefusePlacement(street(), b, s, mode="add", k=1).solve()
    assert m.before is not None and np.isinf(m.before.walk_m).all()
    assert (m.opened, m.objective) == (["c2"], 9030.0)  # as HAND's node 2
    summary = m.summary()
    assert (summary["households_within_reach_before"], summary["mean_walk_m_before"]) == (0, None)
    assert summary["gaps_before"] == 1 and summary["households_within_reach_after"] == 65
    import json

    json.dumps([summary, m.site_features(), m.assignment_features(), m.gap_features(),
                m.comparison()], allow_nan=False)


def test_the_cutoff_keeps_each_buildings_nearest_site() -> None:
    net = street()
    b = homes((20, 10, 10, 10), (30, -10, 10, 10), (280, 10, 40, 100), (100, 90, 5, 5))
    spec = [("f1", 0, 0, True, 1.0), ("c1", 100, 0, False, 5.0), ("c2", 200, 0, False, 5.0),
            ("c3", 300, 0, False, 5.0), ("c4", 100, 100, False, 5.0)]
    # walks longer than 52 m (the farthest nearest site: HAND's second row) are not measured
    m = RefusePlacement(net, b, sites(net, spec), mode="add", k=2, cutoff_m=20).solve()
    assert m.cutoff_m == 52.0 and m.costs is not None
    assert np.isfinite(m.costs).sum(axis=1).tolist() == [1, 1, 1, 1]
    assert sorted(m.opened) == ["c3", "c4"] and m.objective == 10 * 42 + 10 * 52 + 40 * 42 + 5 * 22
    # one added site cannot serve both far houses within it: an answer that says so
    m = RefusePlacement(net, b, sites(net, spec), mode="add", k=1, cutoff_m=20).solve()
    assert m.status == "infeasible" and m.objective is None
    assert "1 buildings would walk more than 52 m to every open site" in (m.message or "")
    assert m.after is not None and m.after.walk_m.tolist() == HAND[:, 0].tolist()


def test_capacities_that_cannot_serve_the_demand_are_an_answer() -> None:
    net = street()
    b = homes((20, 10, 10, 1000), (280, 10, 40, 3000))
    s = sites(net, [("f1", 0, 0, True, 0.5), ("c1", 300, 0, False, 0.5)])
    m = RefusePlacement(net, b, s, model="capacitated", mode="add", k=1).solve(time_limit=5)
    assert m.status == "infeasible" and "cannot serve the demand" in (m.message or "")
    summary = m.summary()
    assert summary["status"] == "infeasible" and summary["objective"] is None
    assert m.site_features() and m.comparison()  # the current layout is still drawn


@pytest.mark.parametrize(("kw", "name"), [
    ({"mode": "optimise", "p": 6}, "p"),
    ({"mode": "add", "k": 5}, "k"),
    ({"mode": "close", "close": [9]}, "close"),
    ({"mode": "close"}, "close"),
    ({"mode": "add", "close": [1]}, "close"),
    ({"reach_m": -1.0}, "reach_m"),
    ({"model": "median"}, "model"),
    ({"mode": "close-one"}, "mode"),
])
def test_bad_requests_name_their_input(kw: dict[str, Any], name: str) -> None:
    net = street()
    b = homes((20, 10, 10, 10), (280, 10, 40, 100))
    s = sites(net, [("f1", 0, 0, True, 1.0), ("c1", 100, 0, False, 5.0),
                    ("c2", 200, 0, False, 5.0), ("c3", 300, 0, False, 5.0)])
    with pytest.raises(RefuseInputError) as err:
        RefusePlacement(net, b, s, **kw)
    assert err.value.name == name, err.value


def test_no_demand_names_the_area() -> None:
    net = street()
    b = homes((20, 10, 0, 0))
    s = sites(net, [("f1", 0, 0, True, 1.0), ("c1", 100, 0, False, 5.0)])
    with pytest.raises(RefuseInputError) as err:
        RefusePlacement(net, b, s, area_input="unit_id")
    assert err.value.name == "unit_id"


# --- against brute force and an independent recomputation -----------------------------


def test_p_median_equals_brute_force_over_every_subset(s_city: str) -> None:
    with connect(s_city, autocommit=True) as conn:
        model = rp.load(conn, level="grid", unit_id=2, model="p-median", mode="optimise", p=3)
    m = model.columns.size
    assert 8 <= m <= 25, m  # a small area: every 3-subset can be tried
    model.solve(time_limit=30)
    assert model.status == "optimal" and model.costs is not None
    d, w = model.costs, model.buildings.households
    best = min(float(w @ d[:, list(c)].min(axis=1))
               for c in itertools.combinations(range(m), 3))
    assert model.objective == pytest.approx(best, rel=1e-9)
    chosen = np.flatnonzero(model.after.is_open[model.columns]) if model.after else []
    assert float(w @ d[:, chosen].min(axis=1)) == pytest.approx(best, rel=1e-9)
    # the layout's walks are the matrix's, and the model's objective is their sum
    assert model.after is not None
    assert float(w @ model.after.walk_m) == pytest.approx(best, rel=1e-9)


def independent_walks(conn: Any, epsg: int, building_ids: list[int],
                      site_points: list[tuple[float, float]]) -> np.ndarray:
    """Walks recomputed from the rows: PostGIS for the geometry (in ``epsg``), networkx
    for the paths; footpaths join at their ends' vertex keys, a gate path's last point
    splits the road row it lies on; a building with a door path starts at its door, any
    other at its centroid, straight to the nearest road; a site is reached at its nearest
    road end, ``max(12, distance)`` on."""
    g = nx.Graph()
    ends = {}

    def edge(u: int, v: int, length: float) -> None:
        if u != v and (not g.has_edge(u, v) or g[u][v]["weight"] > length):
            g.add_edge(u, v, weight=length)

    for r in conn.execute(
            "SELECT id, source, target, ST_Length(ST_Transform(geom, %s)) AS len "
            "FROM onemap.network_road_edge", (epsg,)).fetchall():
        edge(r["source"], r["target"], r["len"])
        ends[r["id"]] = (r["source"], r["target"], r["len"])
    for r in conn.execute(
            "SELECT onemap.network_vertex(ST_StartPoint(geom)) AS a, "
            "onemap.network_vertex(ST_EndPoint(geom)) AS b, "
            "ST_Length(ST_Transform(geom, %s)) AS len FROM onemap.footpath", (epsg,)):
        edge(r["a"], r["b"], r["len"])
    feet: dict[int, list[tuple[float, int]]] = {}
    for r in conn.execute(
            "SELECT e.id, ST_LineLocatePoint(e.geom, ST_EndPoint(f.geom)) AS at, "
            "onemap.network_vertex(ST_EndPoint(f.geom)) AS foot "
            "FROM onemap.footpath f JOIN onemap.network_road_edge e "
            "ON ST_DWithin(e.geom, ST_EndPoint(f.geom), 1e-7) WHERE f.kind = 'gate_path'"):
        feet.setdefault(r["id"], []).append((r["at"], r["foot"]))
    for eid, at in feet.items():
        a, b, length = ends[eid]
        stops = [(0.0, a), *sorted(at), (1.0, b)]
        for (t0, n0), (t1, n1) in itertools.pairwise(stops):
            edge(n0, n1, (t1 - t0) * length)
    doors = {r["building_id"]: r["door"] for r in conn.execute(
        "SELECT building_id, onemap.network_vertex(ST_StartPoint(geom)) AS door "
        "FROM onemap.footpath WHERE kind = 'door'")}
    homes = conn.execute(
        "SELECT b.id, e.id AS edge, ST_Distance(c.p, ST_Transform(e.geom, %(s)s)) AS perp, "
        "ST_LineLocatePoint(ST_Transform(e.geom, %(s)s), c.p) AS at "
        "FROM onemap.building b, LATERAL (SELECT ST_Centroid(ST_Transform(b.geom, %(s)s)) AS p) c,"
        " LATERAL (SELECT id, geom FROM onemap.network_road_edge "
        "          ORDER BY ST_Transform(geom, %(s)s) <-> c.p LIMIT 1) e "
        "WHERE b.id = ANY(%(ids)s)", {"s": epsg, "ids": building_ids}).fetchall()
    by_id = {r["id"]: r for r in homes}
    out = np.full((len(building_ids), len(site_points)), np.inf)
    for j, (lon, lat) in enumerate(site_points):
        near = conn.execute(
            "SELECT v.id, ST_Distance(ST_Transform(ST_Point(%(x)s, %(y)s, 4490), %(s)s), "
            "ST_Transform(v.p, %(s)s)) AS d FROM (SELECT source AS id, ST_StartPoint(geom) AS p "
            "FROM onemap.network_road_edge UNION ALL SELECT target, ST_EndPoint(geom) "
            "FROM onemap.network_road_edge) v ORDER BY 2 LIMIT 1",
            {"x": lon, "y": lat, "s": epsg}).fetchone()
        dist = nx.single_source_dijkstra_path_length(g, near["id"], weight="weight")
        for i, bid in enumerate(building_ids):
            if bid in doors:
                via = dist.get(doors[bid], np.inf)
                out[i, j] = via + max(rp.SITE_ACCESS_M, near["d"])
                continue
            r = by_id[bid]
            a, b, length = ends[r["edge"]]
            along = r["at"] * length
            via = min(along + dist.get(a, np.inf), length - along + dist.get(b, np.inf))
            out[i, j] = r["perp"] + via + max(rp.SITE_ACCESS_M, near["d"])
    return out


@pytest.mark.parametrize("scale", ["S", "M"])
def test_the_planted_best_additions_are_found(request: pytest.FixtureRequest,
                                              scale: str) -> None:
    """truth.refuse_placement_case: the generator planted a freed plot in each planted gap
    and found, by enumerating every candidate and pair, the unique best one and two to
    add for coverage; the analysis, over the stored candidate sites, opens the same."""
    city = request.getfixturevalue(f"{scale.lower()}_city")
    with connect(city, autocommit=True) as conn:
        cases = conn.execute("SELECT k, reach_m, site_codes, households_within "
                             "FROM truth.refuse_placement_case ORDER BY id").fetchall()
        assert len(cases) >= (1 if scale == "S" else 2)
        for case in cases:
            model = rp.load(conn, level="district", unit_id=district(conn), model="coverage",
                            mode="add", k=case["k"], reach_m=case["reach_m"]).solve(
                time_limit=60)
            assert model.status == "optimal"
            assert sorted(model.opened) == sorted(case["site_codes"])
            assert model.objective == case["households_within"]


def test_doors_start_the_walk_inside_the_compound(m_city: str) -> None:
    """Buildings with a door path start at its first point: their walk is the door's, and
    no shorter than the straight line to a road; a closed gate makes walks no shorter."""
    with connect(m_city, autocommit=True) as conn:
        model = rp.load(conn, level="district", unit_id=district(conn), mode="current")
        stored = conn.execute(
            "SELECT count(*) AS n FROM onemap.footpath f JOIN truth.refuse_access a "
            "ON a.building_id = f.building_id WHERE f.kind = 'door'").fetchone()["n"]
        model.solve()
        gate = conn.execute("SELECT g.id FROM onemap.compound_gate g JOIN onemap.footpath f "
                            "ON f.compound_id = g.compound_id AND f.kind = 'door' "
                            "ORDER BY g.id LIMIT 1").fetchone()["id"]
        conn.execute("UPDATE onemap.compound_gate SET is_open = false WHERE compound_id = "
                     "(SELECT compound_id FROM onemap.compound_gate WHERE id = %s)", (gate,))
        try:
            closed = rp.load(conn, level="district", unit_id=district(conn),
                             mode="current").solve()
        finally:
            conn.execute("UPDATE onemap.compound_gate SET is_open = true")
    b = model.buildings
    has = np.isfinite(b.door).all(axis=1)
    assert has.sum() == stored > 0.3 * len(b)
    assert np.all(model.att.perp[has] == 0) and np.all(model.att.a[has] == model.att.b[has])
    assert np.all(model.att.a[has] >= model.network.n_road_nodes)  # a footpath node
    assert model.after is not None and closed.after is not None
    # every gate of one compound closed: its buildings cannot leave it, others unchanged
    worse = closed.after.walk_m > model.after.walk_m + 1e-9
    assert worse.any() and np.all(closed.after.walk_m >= model.after.walk_m - 1e-9)
    assert np.isinf(closed.after.walk_m[worse]).all()


def test_coverage_of_the_chosen_layout_recomputed_independently(s_city: str) -> None:
    with connect(s_city, autocommit=True) as conn:
        model = rp.load(conn, level="grid", unit_id=1, model="coverage", mode="add", k=2,
                        reach_m=300, candidates="corners").solve(time_limit=30)
        assert model.after is not None and model.status == "optimal"
        open_sites = np.flatnonzero(model.after.is_open)
        walks = independent_walks(conn, model.network.epsg, model.buildings.ids.tolist(),
                                  [tuple(model.sites.lonlat[j]) for j in open_sites])
    nearest = walks.min(axis=1)
    # a gate path's foot is located on its road row in degrees here, in metres there
    assert np.abs(nearest - model.after.walk_m).max() < 1e-3
    covered = model.buildings.households[nearest <= 300].sum()
    summary = model.summary()
    assert summary["households_within_reach_after"] == int(covered)
    # and the model's objective is that coverage, the proven optimum
    assert model.objective == pytest.approx(float(covered))
    assert summary["households_within_reach_after"] >= summary["households_within_reach_before"]
    assert len(model.opened) == 2


def test_walk_matrix_agrees_with_nearest(s_city: str) -> None:
    """The per-site matrix and the one-pass nearest search give the same walks."""
    with connect(s_city, autocommit=True) as conn:
        model = rp.load(conn, level="district", unit_id=district(conn), mode="optimise", p=3,
                        reach_m=1000)
    costs = model.compute_walks()
    s = model.sites
    cols = model.columns
    walk, which = model.network.nearest(model.att, s.node[cols], s.access[cols])
    assert np.allclose(costs.min(axis=1), walk)
    assert np.allclose(costs[np.arange(len(walk)), which], walk)


# --- what-if and progress -------------------------------------------------------------


def scenario(edits: list[dict[str, Any]]) -> whatif.Scenario:
    now = datetime.now(UTC)
    return whatif.Scenario(uuid.uuid4(), "test", None, None, False, whatif.parse_edits(edits),
                           ("refuse_facility",), now, now)


def test_a_scenario_removes_and_adds_refuse_buildings(s_city: str) -> None:
    with connect(s_city, autocommit=True) as conn:
        unit = district(conn)
        base = rp.load(conn, level="district", unit_id=unit, mode="current").solve()
        served = base.after.loads(base.buildings, len(base.sites))[1] if base.after else None
        assert served is not None
        busiest = int(np.argmax(served))
        gone = base.sites.facility_id[busiest]
        assert gone is not None
        lon, lat = (float(v) for v in base.sites.lonlat[busiest])
        what = scenario([{"type": "remove_facility", "collection": "refuse_facility", "id": gone},
                         {"type": "add_facility", "collection": "refuse_facility",
                          "point": {"x": lon + 0.002, "y": lat, "crs": "EPSG:4490"},
                          "attributes": {"name": "新垃圾楼", "capacity": 3.0}}])
        model = rp.load(conn, level="district", unit_id=unit, mode="current",
                        scenario=what).solve()
        closing = rp.load(conn, level="district", unit_id=unit, mode="close",
                          close=[gone]).solve()
    assert model.closed == [gone] and model.opened == ["s1"]
    # before: the stored layout, the same with or without the scenario
    assert base.before is not None and model.before is not None and closing.after is not None
    assert np.array_equal(model.before.walk_m, base.before.walk_m)
    # after: the nearest of the scenario's set — no farther than with the one closed
    assert model.after is not None
    assert np.all(model.after.walk_m <= closing.after.walk_m + 1e-9)
    new = model.sites.keys.index("s1")
    assert (model.after.site == new).any()
    statuses = {f["properties"]["site"]: f["properties"]["status"]
                for f in model.site_features()}
    assert statuses[f"f{gone}"] == "closed" and statuses["s1"] == "new"


def test_a_scenario_closing_roads_cuts_a_corner_off(s_city: str) -> None:
    with connect(s_city, autocommit=True) as conn:
        unit = district(conn)
        base = rp.load(conn, level="district", unit_id=unit, mode="current").solve()
        assert base.after is not None
        # close every road a refuse building's corner touches
        s, net = base.sites, base.network
        corner = s.node[np.flatnonzero(s.stored)[0]]
        roads = net.edge_ids[(net.source == corner) | (net.target == corner)].tolist()
        what = scenario([{"type": "close_road", "road_ids": roads}])
        model = rp.load(conn, level="district", unit_id=unit, mode="current",
                        scenario=what).solve()
    assert model.after is not None and model.before is not None
    assert np.array_equal(model.before.walk_m, base.after.walk_m)
    # a building on a closed road walks from the next nearest one; the others only
    # lose ways
    kept = ~np.isin(base.att.edge_id, roads)
    assert (~kept).any() and np.array_equal(model.att.edge_id[kept], base.att.edge_id[kept])
    assert not np.isin(model.att.edge_id, roads).any()
    assert np.all(model.after.walk_m[kept] >= base.after.walk_m[kept] - 1e-9)
    # the refuse building at the closed corner is cut off: its households walk elsewhere
    cut = int(np.flatnonzero(s.stored)[0])
    assert (base.after.site == cut).any() and not (model.after.site == cut).any()


def test_progress_reports_the_heuristic_first_then_the_gap(s_city: str) -> None:
    seen: list[SolveProgress] = []
    walked: list[float] = []
    with connect(s_city, autocommit=True) as conn:
        model = rp.load(conn, level="district", unit_id=district(conn), mode="optimise", p=4)
    model.solve(time_limit=30, on_progress=seen.append, on_walks=walked.append)
    assert walked and walked[-1] == 1.0
    assert seen[0].phase == "heuristic" and seen[0].objective is not None
    assert seen[-1].phase == "done" and seen[-1].gap == 0.0
    assert seen[-1].objective == pytest.approx(model.objective)
    assert model.heuristic_objective is not None
    assert model.heuristic_objective >= model.objective - 1e-6  # type: ignore[operator]


def test_outputs_are_json_and_consistent(s_city: str) -> None:
    with connect(s_city, autocommit=True) as conn:
        model = rp.load(conn, level="district", unit_id=district(conn), model="coverage",
                        mode="add", k=1).solve(time_limit=30)
    import json

    summary = model.summary()
    json.dumps([summary, model.site_features(), model.assignment_features(),
                model.gap_features(), model.comparison()], allow_nan=False)
    lines = model.assignment_features()
    assert len(lines) == len(model.buildings)
    hh = sum(f["properties"]["households"] for f in lines if f["properties"]["within_reach"])
    assert hh == summary["households_within_reach_after"]
    sites_out = model.site_features()
    assert sum(f["properties"]["households"] for f in sites_out) == summary["households"]
    rows = {r[0]: r for r in model.comparison()}
    assert rows["households_within_reach"][1:3] == (
        summary["households_within_reach_before"], summary["households_within_reach_after"])
    assert rows["sites"][3] == 1


def test_the_process_reports_the_heuristic_then_the_gap_in_its_messages(s_city: str) -> None:
    from scenarios.processes import refuse_placement as process
    from scenarios.processes.base import Progress

    messages: list[tuple[int, str | None]] = []
    p = process.PROCESS
    parsed = p.parse({"level": "community", "unit_id": 1, "mode": "optimise", "p": 4})
    with connect(s_city) as conn:
        p.check(conn, parsed)
        result = p.run(conn, parsed.values, Progress(p.stages, report=lambda pct, msg: (
            messages.append((pct, msg)) or True)))
    texts = [m for _, m in messages if m]
    solving = [m for m in texts if m.startswith("optimising the layout")]
    assert solving[0] == "optimising the layout / 优化布局 (3/4)"
    assert "· heuristic " in solving[1] and "启发式解" in solving[1]
    assert solving[-1].startswith("optimising the layout / 优化布局 (3/4) 100% · best ")
    assert "gap 0.00%" in solving[-1] and "间隙 0.00%" in solving[-1]
    assert texts[-1] == "drawing the layout / 绘制方案 (4/4)"
    assert [pct for pct, _ in messages] == sorted(pct for pct, _ in messages)
    assert result.summary["status"] == "optimal" and result.summary["gap"] == 0.0
