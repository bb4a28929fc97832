"""Tests for spatial.crs (no database needed)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Callable
from importlib.resources import files

import numpy as np
import numpy.typing as npt
import pyproj
import pytest

from spatial import crs
from spatial.crs import (
    BD09,
    CGCS2000,
    GCJ02,
    GK3_CM_EPSG,
    GK3_ZONE_EPSG,
    GK6_CM_EPSG,
    GK6_ZONE_EPSG,
    STORAGE_SRID,
    SUPPORTED_EPSG,
    WEB_MERCATOR,
    WGS84,
    PlanarTransform,
    bd09_to_gcj02,
    bd09_to_wgs84,
    china_outline,
    gauss_kruger_epsg,
    gauss_kruger_zone,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    in_china,
    parse_crs,
    to_storage,
    transform,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

type FloatArray = npt.NDArray[np.float64]
type Conversion = Callable[[npt.ArrayLike, npt.ArrayLike], tuple[FloatArray, FloatArray]]

GEOD = pyproj.Geod(ellps="WGS84")
ONE_MM = 1e-3

ALL_CONVERSIONS: list[Conversion] = [
    wgs84_to_gcj02,
    gcj02_to_wgs84,
    gcj02_to_bd09,
    bd09_to_gcj02,
    wgs84_to_bd09,
    bd09_to_wgs84,
]

INSIDE = {
    "Shanghai": (121.47, 31.23),
    "Qingdao": (120.38, 36.07),
    "Sanya": (109.51, 18.25),
    "Xiamen": (118.09, 24.48),
    "Dalian": (121.61, 38.91),
    "Urumqi": (87.62, 43.83),
    "Beijing": (116.40, 39.90),
    "Harbin": (126.63, 45.75),
    "Kashgar": (75.99, 39.47),
    "Hong Kong": (114.17, 22.28),
    "Dinghai (Zhoushan)": (122.2, 30.0),
}
OUTSIDE = {
    "Seoul": (126.978, 37.566),
    "Ulaanbaatar": (106.917, 47.918),
    "Taipei": (121.565, 25.033),
    "Tokyo": (139.69, 35.69),
    "Hanoi": (105.85, 21.03),
    "Null Island": (0.0, 0.0),
}


def distance_m(
    lon1: npt.ArrayLike, lat1: npt.ArrayLike, lon2: npt.ArrayLike, lat2: npt.ArrayLike
) -> FloatArray:
    """Geodesic distance in metres on the WGS 84 ellipsoid."""
    _, _, dist = GEOD.inv(lon1, lat1, lon2, lat2)
    return np.asarray(dist, dtype=np.float64)


@pytest.fixture(scope="module")
def china_sample() -> tuple[FloatArray, FloatArray]:
    """10,000 uniform random lon/lat points inside the outline (rejection sampling)."""
    rng = np.random.default_rng(20240601)
    xmin, ymin, xmax, ymax = china_outline().bounds
    lons: list[FloatArray] = []
    lats: list[FloatArray] = []
    count = 0
    while count < 10_000:
        lon = rng.uniform(xmin, xmax, 20_000)
        lat = rng.uniform(ymin, ymax, 20_000)
        keep = in_china(lon, lat)
        lons.append(lon[keep])
        lats.append(lat[keep])
        count += int(keep.sum())
    return np.concatenate(lons)[:10_000], np.concatenate(lats)[:10_000]


# --------------------------------------------------------------------------- constants


def test_constants() -> None:
    assert (CGCS2000, WGS84, WEB_MERCATOR, STORAGE_SRID) == (4490, 4326, 3857, 4490)
    assert len(SUPPORTED_EPSG) == len(set(SUPPORTED_EPSG)) == 3 + 64
    assert set(SUPPORTED_EPSG) == {4490, 4326, 3857} | set(range(4491, 4555))


def _param(code: int, name: str) -> float:
    operation = pyproj.CRS.from_epsg(code).coordinate_operation
    assert operation is not None
    return next(float(p.value) for p in operation.params if p.name == name)


@pytest.mark.parametrize(
    ("codes", "width", "first_zone", "prefixed"),
    [
        (GK6_ZONE_EPSG, 6, 13, True),
        (GK6_CM_EPSG, 6, 13, False),
        (GK3_ZONE_EPSG, 3, 25, True),
        (GK3_CM_EPSG, 3, 25, False),
    ],
)
def test_gauss_kruger_codes_match_epsg_database(
    codes: tuple[int, ...], width: int, first_zone: int, prefixed: bool
) -> None:
    degree = "3-degree " if width == 3 else ""
    for i, code in enumerate(codes):
        zone = first_zone + i
        cm = 6 * zone - 3 if width == 6 else 3 * zone
        ref = pyproj.CRS.from_epsg(code)
        suffix = f"zone {zone}" if prefixed else f"CM {cm}E"
        assert ref.name == f"CGCS2000 / {degree}Gauss-Kruger {suffix}"
        assert ref.geodetic_crs is not None and ref.geodetic_crs.to_epsg() == CGCS2000
        assert _param(code, "Longitude of natural origin") == cm
        false_easting = zone * 1_000_000 + 500_000 if prefixed else 500_000
        assert _param(code, "False easting") == false_easting
        assert _param(code, "Scale factor at natural origin") == 1.0
        # The lookup function agrees at the central meridian.
        assert gauss_kruger_epsg(cm, width, zone_prefix=prefixed) == code  # type: ignore[arg-type]


def test_gauss_kruger_beijing() -> None:
    assert gauss_kruger_zone(116.4) == 39
    assert gauss_kruger_epsg(116.4) == 4527
    assert _param(4527, "Longitude of natural origin") == 117.0
    assert gauss_kruger_epsg(116.4, zone_prefix=False) == 4548
    assert gauss_kruger_zone(116.4, width=6) == 20
    assert gauss_kruger_epsg(116.4, width=6) == 4498
    assert gauss_kruger_epsg(116.4, width=6, zone_prefix=False) == 4509
    assert _param(4498, "Longitude of natural origin") == 117.0


@pytest.mark.parametrize(
    ("lon", "width", "zone"),
    [
        (73.5, 3, 25),
        (76.4999, 3, 25),
        (76.5, 3, 26),
        (136.4999, 3, 45),
        (72.0, 6, 13),
        (77.9999, 6, 13),
        (78.0, 6, 14),
        (137.9999, 6, 23),
        (np.float64(116.4), 3, 39),
        (117, 3, 39),
    ],
)
def test_gauss_kruger_zone_boundaries(lon: float, width: int, zone: int) -> None:
    assert gauss_kruger_zone(lon, width) == zone  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("lon", "width", "error"),
    [
        (73.4, 3, ValueError),
        (136.5, 3, ValueError),
        (71.9, 6, ValueError),
        (138.0, 6, ValueError),
        (10.0, 3, ValueError),
        (116.4, 4, ValueError),
        (math.nan, 3, ValueError),
        (math.inf, 6, ValueError),
        ("116.4", 3, TypeError),
        (True, 3, TypeError),
        (None, 3, TypeError),
    ],
)
def test_gauss_kruger_rejects(lon: object, width: int, error: type[Exception]) -> None:
    with pytest.raises(error, match=re.escape(repr(width if width == 4 else lon))):
        gauss_kruger_epsg(lon, width)  # type: ignore[arg-type]


def test_gauss_kruger_round_trip_below_1mm() -> None:
    rng = np.random.default_rng(7)
    for width in (3, 6):
        for prefixed in (True, False):
            for cm in (75.0, 87.0, 117.0, 135.0):
                half = width / 2 - 1e-6
                lon = rng.uniform(cm - half, cm + half, 200)
                lat = rng.uniform(18.0, 53.0, 200)
                code = gauss_kruger_epsg(cm, width, zone_prefix=prefixed)
                e, n = transform(lon, lat, CGCS2000, code)
                if prefixed:
                    assert np.all(e // 1_000_000 == gauss_kruger_zone(cm, width))
                back_lon, back_lat = transform(e, n, code, CGCS2000)
                assert distance_m(lon, lat, back_lon, back_lat).max() < ONE_MM


def test_cgcs2000_web_mercator() -> None:
    x, y = transform(116.4, 39.9, CGCS2000, WEB_MERCATOR)
    radius = 6378137.0
    assert float(x) == pytest.approx(radius * math.radians(116.4), abs=1e-6)
    expected_y = radius * math.log(math.tan(math.pi / 4 + math.radians(39.9) / 2))
    assert float(y) == pytest.approx(expected_y, abs=1e-6)
    lon, lat = transform(x, y, "EPSG:3857", "EPSG:4490")
    assert float(distance_m(116.4, 39.9, lon, lat)) < ONE_MM


def test_transformers_are_cached() -> None:
    assert crs._transformer(4490, 3857) is crs._transformer(4490, 3857)


def test_transform_between_special_names() -> None:
    lon, lat = 116.3913, 39.9071
    bd_lon, bd_lat = gcj02_to_bd09(lon, lat)
    x, y = transform(lon, lat, "gcj02", "BD09")
    np.testing.assert_array_equal([x, y], [bd_lon, bd_lat])
    x, y = transform(bd_lon, bd_lat, BD09, GCJ02)
    assert float(distance_m(lon, lat, x, y)) < ONE_MM
    gx, gy = transform(*transform(lon, lat, WGS84, GCJ02), GCJ02, WGS84)
    assert float(distance_m(lon, lat, gx, gy)) < ONE_MM
    e, n = transform(*wgs84_to_bd09(lon, lat), "bd09", 4527)
    e2, n2 = transform(lon, lat, 4326, 4527)
    assert math.hypot(float(e - e2), float(n - n2)) < ONE_MM


# --------------------------------------------------------------------------- outline


def test_outline_file_is_small_and_documented() -> None:
    resource = files("spatial") / "data" / "china_outline.geojson"
    raw = resource.read_bytes()
    assert len(raw) < 30_000
    feature = json.loads(raw)
    assert feature["type"] == "Feature"
    props = feature["properties"]
    assert props["buffer_deg"] == pytest.approx(0.25)
    assert "Natural Earth" in props["source"]
    assert "Taiwan" in props["selection"]
    geom = china_outline()
    assert geom.is_valid
    assert china_outline() is geom  # loaded once


@pytest.mark.parametrize(("name", "point"), INSIDE.items())
def test_in_china_inside(name: str, point: tuple[float, float]) -> None:
    assert bool(in_china(*point)), name


@pytest.mark.parametrize(("name", "point"), OUTSIDE.items())
def test_in_china_outside(name: str, point: tuple[float, float]) -> None:
    assert not bool(in_china(*point)), name


def test_in_china_vectorised() -> None:
    points = list(INSIDE.values()) + list(OUTSIDE.values())
    lon, lat = np.array(points).T
    result = in_china(lon.reshape(1, -1), lat.reshape(1, -1))
    assert result.dtype == np.bool_ and result.shape == (1, len(points))
    assert result.ravel().tolist() == [True] * len(INSIDE) + [False] * len(OUTSIDE)
    assert in_china(116.4, 39.9).shape == ()
    assert in_china([], []).shape == (0,)
    assert in_china([math.nan, math.inf], [39.9, 39.9]).tolist() == [False, False]


# --------------------------------------------------------------------------- GCJ-02 / BD-09

# Published test vectors (WGS 84 -> GCJ-02) from the test suites of the open-source
# eviltransform and coordtransform projects; values are data, not code.
WGS_TO_GCJ_REFERENCE = [
    ((121.5272106, 31.1774276), (121.531541859215, 31.17530398364597)),  # Shanghai
    ((113.912316, 22.543847), (113.9171764808363, 22.540796131694766)),  # Shenzhen
    ((116.377817, 39.911954), (116.38404722455657, 39.91334545536069)),  # Beijing
    ((116.404, 39.915), (116.41024449916938, 39.91640428150164)),  # Beijing
]
GCJ_TO_BD_REFERENCE = [((116.404, 39.915), (116.41036949371029, 39.92133699351021))]


@pytest.mark.parametrize(("wgs", "gcj"), WGS_TO_GCJ_REFERENCE)
def test_wgs84_to_gcj02_reference(wgs: tuple[float, float], gcj: tuple[float, float]) -> None:
    np.testing.assert_allclose(wgs84_to_gcj02(*wgs), gcj, rtol=0, atol=1e-9)
    np.testing.assert_allclose(gcj02_to_wgs84(*gcj), wgs, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("gcj", "bd"), GCJ_TO_BD_REFERENCE)
def test_gcj02_to_bd09_reference(gcj: tuple[float, float], bd: tuple[float, float]) -> None:
    np.testing.assert_allclose(gcj02_to_bd09(*gcj), bd, rtol=0, atol=1e-9)
    np.testing.assert_allclose(bd09_to_gcj02(*bd), gcj, rtol=0, atol=1e-9)


def test_forward_offset_magnitudes(china_sample: tuple[FloatArray, FloatArray]) -> None:
    beijing = INSIDE["Beijing"]
    gcj_shift = float(distance_m(*beijing, *wgs84_to_gcj02(*beijing)))
    assert 100.0 < gcj_shift < 700.0
    bd_from_gcj = float(distance_m(*beijing, *gcj02_to_bd09(*beijing)))
    assert 500.0 < bd_from_gcj < 1500.0
    # Everywhere in China the GCJ-02 shift stays below ~1 km and is never zero.
    lon, lat = china_sample
    shift = distance_m(lon, lat, *wgs84_to_gcj02(lon, lat))
    assert shift.min() > 1.0
    assert shift.max() < 1000.0
    shift = distance_m(lon, lat, *wgs84_to_bd09(lon, lat))
    assert shift.min() > 100.0
    assert shift.max() < 2500.0


def test_round_trip_gcj02_below_1mm(china_sample: tuple[FloatArray, FloatArray]) -> None:
    lon, lat = china_sample
    back = gcj02_to_wgs84(*wgs84_to_gcj02(lon, lat))
    assert distance_m(lon, lat, *back).max() < ONE_MM


def test_round_trip_bd09_below_1mm(china_sample: tuple[FloatArray, FloatArray]) -> None:
    lon, lat = china_sample
    back = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert distance_m(lon, lat, *back).max() < ONE_MM


def test_round_trip_gcj02_bd09_below_1mm(china_sample: tuple[FloatArray, FloatArray]) -> None:
    # The sample is read as GCJ-02 coordinates here.
    lon, lat = china_sample
    back = bd09_to_gcj02(*gcj02_to_bd09(lon, lat))
    assert distance_m(lon, lat, *back).max() < ONE_MM


def test_composition_matches_two_steps(china_sample: tuple[FloatArray, FloatArray]) -> None:
    lon, lat = china_sample
    direct = wgs84_to_bd09(lon, lat)
    gcj_lon, gcj_lat = wgs84_to_gcj02(lon, lat)
    inside = in_china(gcj_lon, gcj_lat)  # the step-wise path skips points leaving the outline
    two_steps = gcj02_to_bd09(gcj_lon, gcj_lat)
    np.testing.assert_allclose(direct[0][inside], two_steps[0][inside], rtol=0, atol=1e-12)
    np.testing.assert_allclose(direct[1][inside], two_steps[1][inside], rtol=0, atol=1e-12)


@pytest.mark.parametrize("func", ALL_CONVERSIONS, ids=lambda f: f.__name__)
def test_outside_points_unchanged(func: Conversion) -> None:
    lon, lat = np.array(list(OUTSIDE.values())).T
    out_lon, out_lat = func(lon, lat)
    np.testing.assert_array_equal(out_lon, lon)
    np.testing.assert_array_equal(out_lat, lat)
    for point in OUTSIDE.values():
        x, y = func(*point)
        assert (float(x), float(y)) == point


@pytest.mark.parametrize("func", ALL_CONVERSIONS, ids=lambda f: f.__name__)
def test_inside_points_change(func: Conversion) -> None:
    lon, lat = np.array(list(INSIDE.values())).T
    out_lon, out_lat = func(lon, lat)
    assert np.all(distance_m(lon, lat, out_lon, out_lat) > 1.0)


@pytest.mark.parametrize("func", ALL_CONVERSIONS, ids=lambda f: f.__name__)
def test_shapes_and_dtypes(func: Conversion) -> None:
    # Scalars give 0-d arrays.
    x, y = func(116.4, 39.9)
    assert isinstance(x, np.ndarray) and x.shape == () and x.dtype == np.float64
    assert isinstance(y, np.ndarray) and y.shape == () and y.dtype == np.float64
    # Integers are accepted, result is float64.
    x, y = func(116, 40)
    assert x.dtype == np.float64 and float(x) != 116.0
    # 2-D arrays keep their shape and match element-wise evaluation.
    lon = np.array([[116.4, 121.47, 126.978], [87.62, 0.0, 120.38]])
    lat = np.array([[39.9, 31.23, 37.566], [43.83, 0.0, 36.07]])
    x, y = func(lon, lat)
    assert x.shape == y.shape == (2, 3)
    for index in np.ndindex(lon.shape):
        # Iterative inverses stop on the batch's largest update, hence not bit-identical.
        ex, ey = func(lon[index], lat[index])
        np.testing.assert_allclose((x[index], y[index]), (ex, ey), rtol=0, atol=1e-10)
    # Lists and broadcasting.
    x, y = func([116.4, 117.0], 39.9)
    assert x.shape == y.shape == (2,)
    # Empty input.
    x, y = func(np.array([]), np.array([]))
    assert x.shape == y.shape == (0,) and x.dtype == np.float64
    x, y = func(np.empty((0, 3)), np.empty((0, 3)))
    assert x.shape == (0, 3)


@pytest.mark.parametrize("func", ALL_CONVERSIONS, ids=lambda f: f.__name__)
def test_nan_and_inf(func: Conversion) -> None:
    lon = np.array([math.nan, 116.4, 116.4, math.inf, 121.47])
    lat = np.array([39.9, math.nan, math.nan, 39.9, 31.23])
    x, y = func(lon, lat)
    assert np.isnan(x[0]) and y[0] == 39.9
    assert x[1] == 116.4 and np.isnan(y[1])
    assert x[3] == math.inf and y[3] == 39.9
    # Finite points in the same call are still converted.
    ex, ey = func(121.47, 31.23)
    np.testing.assert_allclose((x[4], y[4]), (ex, ey), rtol=0, atol=1e-10)
    assert x[4] != 121.47


@pytest.mark.parametrize("func", ALL_CONVERSIONS, ids=lambda f: f.__name__)
def test_input_not_modified(func: Conversion) -> None:
    lon = np.array([116.4, 121.47])
    lat = np.array([39.9, 31.23])
    func(lon, lat)
    np.testing.assert_array_equal(lon, [116.4, 121.47])
    np.testing.assert_array_equal(lat, [39.9, 31.23])


@pytest.mark.parametrize("func", ALL_CONVERSIONS, ids=lambda f: f.__name__)
def test_bad_input(func: Conversion) -> None:
    with pytest.raises(TypeError, match="'abc'"):
        func("abc", 39.9)
    with pytest.raises(TypeError):
        func(None, 39.9)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(2,\) and \(3,\)"):
        func([116.4, 117.0], [39.9, 40.0, 41.0])


# --------------------------------------------------------------------------- PlanarTransform


def _grid_points(n: int, seed: int) -> FloatArray:
    rng = np.random.default_rng(seed)
    # City grid coordinates of realistic magnitude (metres).
    return np.column_stack(
        [rng.uniform(-20_000.0, 20_000.0, n), rng.uniform(-15_000.0, 15_000.0, n)]
    )


def test_helmert_parameters() -> None:
    t = PlanarTransform.from_helmert(dx=10.0, dy=20.0, scale=2.0, rotation_rad=math.pi / 6)
    assert t.a == pytest.approx(math.sqrt(3))
    assert t.b == pytest.approx(-1.0)
    assert t.d == pytest.approx(1.0)
    assert t.e == pytest.approx(math.sqrt(3))
    assert (t.c, t.f) == (10.0, 20.0)
    assert t.rms is None and t.residuals is None


def test_fit_helmert_recovers_parameters() -> None:
    truth = PlanarTransform.from_helmert(
        dx=439_876.25, dy=3_512_345.5, scale=1.000_012_3, rotation_rad=math.radians(1.234)
    )
    src = _grid_points(12, seed=1)
    dst = np.column_stack(truth.apply(src[:, 0], src[:, 1]))
    fitted = PlanarTransform.from_control_points(src, dst, kind="helmert")
    for name in ("a", "b", "d", "e"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=0, abs=1e-12)
    assert fitted.c == pytest.approx(truth.c, rel=0, abs=1e-6)
    assert fitted.f == pytest.approx(truth.f, rel=0, abs=1e-6)
    assert fitted.residuals is not None and fitted.residuals.shape == (12, 2)
    assert fitted.rms is not None and fitted.rms < 1e-6
    # Two points are enough for a similarity.
    two = PlanarTransform.from_control_points(src[:2], dst[:2])
    assert two.a == pytest.approx(truth.a, abs=1e-10)
    assert two.rms == pytest.approx(0.0, abs=1e-6)


def test_fit_affine_recovers_parameters() -> None:
    truth = PlanarTransform.from_affine(0.9998, 0.0123, 500_123.4, -0.0101, 1.0003, 3_400_987.6)
    src = _grid_points(3, seed=2)
    dst = np.column_stack(truth.apply(src[:, 0], src[:, 1]))
    fitted = PlanarTransform.from_control_points(src.tolist(), dst.tolist(), kind="affine")
    for name in ("a", "b", "d", "e"):
        assert getattr(fitted, name) == pytest.approx(getattr(truth, name), rel=0, abs=1e-12)
    assert fitted.c == pytest.approx(truth.c, rel=0, abs=1e-6)
    assert fitted.f == pytest.approx(truth.f, rel=0, abs=1e-6)
    assert fitted.rms is not None and fitted.rms < 1e-6


def test_fit_reports_residuals_with_noise() -> None:
    truth = PlanarTransform.from_helmert(1000.0, 2000.0, 1.0001, 0.02)
    src = _grid_points(50, seed=3)
    dst = np.column_stack(truth.apply(src[:, 0], src[:, 1]))
    noise = np.random.default_rng(4).normal(0.0, 0.05, dst.shape)
    fitted = PlanarTransform.from_control_points(src, dst + noise)
    assert fitted.residuals is not None
    expected = np.column_stack(fitted.apply(src[:, 0], src[:, 1]))
    np.testing.assert_allclose(fitted.residuals, dst + noise - expected, atol=1e-9)
    # 2-D rms of N(0, 0.05) noise per axis is ~0.05 * sqrt(2).
    assert fitted.rms is not None
    assert 0.04 < fitted.rms < 0.1
    assert fitted.rms == pytest.approx(
        math.sqrt(float(np.mean(np.sum(fitted.residuals**2, axis=1))))
    )
    assert not fitted.residuals.flags.writeable
    # An affine fit of the same data never has a larger rms.
    affine = PlanarTransform.from_control_points(src, dst + noise, kind="affine")
    assert affine.rms is not None and affine.rms <= fitted.rms + 1e-12


def test_inverse_round_trip() -> None:
    for t in (
        PlanarTransform.from_helmert(439_876.25, 3_512_345.5, 0.99987, -0.7),
        PlanarTransform.from_affine(1.2, 0.3, -50.0, -0.1, 0.8, 75.0),
    ):
        inv = t.inverse()
        src = _grid_points(100, seed=5)
        x, y = inv.apply(*t.apply(src[:, 0], src[:, 1]))
        np.testing.assert_allclose(x, src[:, 0], atol=1e-6)
        np.testing.assert_allclose(y, src[:, 1], atol=1e-6)
        ii = inv.inverse()
        np.testing.assert_allclose(
            [ii.a, ii.b, ii.c, ii.d, ii.e, ii.f], [t.a, t.b, t.c, t.d, t.e, t.f], atol=1e-6
        )


def test_apply_shapes() -> None:
    t = PlanarTransform.from_affine(2.0, 0.0, 1.0, 0.0, 3.0, -1.0)
    x, y = t.apply(1, 1)
    assert x.shape == () and x.dtype == np.float64 and (float(x), float(y)) == (3.0, 2.0)
    x, y = t.apply(np.ones((2, 2)), 0.0)
    assert x.shape == y.shape == (2, 2)
    x, y = t.apply([], [])
    assert x.shape == (0,)


@pytest.mark.parametrize(
    ("kind", "count"),
    [("helmert", 0), ("helmert", 1), ("affine", 1), ("affine", 2)],
)
def test_too_few_points(kind: str, count: int) -> None:
    src = _grid_points(count, seed=6) if count else np.empty((0, 2))
    with pytest.raises(ValueError, match=f"at least {2 if kind == 'helmert' else 3}"):
        PlanarTransform.from_control_points(src, src, kind=kind)  # type: ignore[arg-type]


def test_fit_rejects_bad_input() -> None:
    src = _grid_points(4, seed=7)
    with pytest.raises(ValueError, match="'similarity'"):
        PlanarTransform.from_control_points(src, src, kind="similarity")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="same shape"):
        PlanarTransform.from_control_points(src, src[:3])
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        PlanarTransform.from_control_points(np.ones((4, 3)), src)
    with pytest.raises(ValueError, match="non-finite"):
        bad = src.copy()
        bad[0, 0] = math.nan
        PlanarTransform.from_control_points(bad, src)
    with pytest.raises(ValueError, match="distinct"):
        PlanarTransform.from_control_points([(1.0, 1.0)] * 3, src[:3])
    with pytest.raises(ValueError, match="collinear"):
        line = [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]
        PlanarTransform.from_control_points(line, src, kind="affine")
    with pytest.raises(TypeError):
        PlanarTransform.from_control_points([("a", "b"), ("c", "d")], src[:2])


def test_constructor_validation() -> None:
    with pytest.raises(ValueError, match=r"-1\.0"):
        PlanarTransform.from_helmert(0.0, 0.0, -1.0, 0.0)
    with pytest.raises(ValueError, match="nan"):
        PlanarTransform.from_affine(1.0, 0.0, math.nan, 0.0, 1.0, 0.0)
    with pytest.raises(TypeError, match="'1'"):
        PlanarTransform.from_affine("1", 0.0, 0.0, 0.0, 1.0, 0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="singular"):
        PlanarTransform.from_affine(1.0, 2.0, 0.0, 2.0, 4.0, 0.0).inverse()


def test_frozen_and_equality() -> None:
    t = PlanarTransform.from_affine(1, 0, 0, 0, 1, 0)
    assert isinstance(t.a, float)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.a = 2.0  # type: ignore[misc]
    src = _grid_points(3, seed=8)
    fitted = PlanarTransform.from_control_points(src, src, kind="affine")
    assert fitted.residuals is not None
    assert PlanarTransform(fitted.a, fitted.b, fitted.c, fitted.d, fitted.e, fitted.f) == fitted


# --------------------------------------------------------------------------- parse_crs / to_storage


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (4490, 4490),
        (np.int64(4527), 4527),
        ("4490", 4490),
        ("EPSG:4490", 4490),
        (" epsg:4326 ", 4326),
        ("http://www.opengis.net/def/crs/EPSG/0/4490", 4490),
        ("https://www.opengis.net/def/crs/EPSG/0/3857", 3857),
        ("urn:ogc:def:crs:EPSG::4527", 4527),
        ("CRS84", 4326),
        ("OGC:CRS84", 4326),
        ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", 4326),
        ("urn:ogc:def:crs:OGC:1.3:CRS84", 4326),
        ("gcj02", GCJ02),
        ("GCJ02", GCJ02),
        ("GCJ-02", GCJ02),
        ("bd09", BD09),
        ("BD09", BD09),
    ],
)
def test_parse_crs(value: int | str, expected: int | str) -> None:
    assert parse_crs(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "EPSG:2000",
        "EPSG:4555",
        999999,
        "foo",
        "",
        "EPSG:",
        "http://www.opengis.net/def/crs/EPSG/0/99999",
        "http://www.opengis.net/def/crs/OGC/1.3/CRS83",
        "wgs84",
    ],
)
def test_parse_crs_unknown(value: int | str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(value))):
        parse_crs(value)
    with pytest.raises(ValueError):
        to_storage(116.4, 39.9, value)


@pytest.mark.parametrize("value", [4490.0, None, True, b"EPSG:4490"])
def test_parse_crs_wrong_type(value: object) -> None:
    with pytest.raises(TypeError):
        parse_crs(value)  # type: ignore[arg-type]


BEIJING_WGS = (116.3912757, 39.906217)


@pytest.mark.parametrize(
    "spelling",
    [
        4490,
        "EPSG:4490",
        "http://www.opengis.net/def/crs/EPSG/0/4490",
        4326,
        "EPSG:4326",
        "epsg:4326",
        "CRS84",
        "http://www.opengis.net/def/crs/OGC/1.3/CRS84",
        "urn:ogc:def:crs:EPSG::4326",
    ],
)
def test_to_storage_geographic(spelling: int | str) -> None:
    lon, lat = to_storage(*BEIJING_WGS, spelling)
    assert (float(lon), float(lat)) == pytest.approx(BEIJING_WGS, abs=1e-12)


@pytest.mark.parametrize(
    ("spelling", "forward"),
    [
        ("gcj02", wgs84_to_gcj02),
        ("GCJ02", wgs84_to_gcj02),
        ("bd09", wgs84_to_bd09),
        ("BD09", wgs84_to_bd09),
    ],
)
def test_to_storage_web_map_systems(spelling: str, forward: Conversion) -> None:
    x, y = forward(*BEIJING_WGS)
    assert float(distance_m(*BEIJING_WGS, x, y)) > 100.0
    lon, lat = to_storage(x, y, spelling)
    assert float(distance_m(*BEIJING_WGS, lon, lat)) < ONE_MM


@pytest.mark.parametrize(
    "spelling", [3857, "EPSG:3857", 4527, "EPSG:4548", "urn:ogc:def:crs:EPSG::4498", 4509]
)
def test_to_storage_projected(spelling: int | str) -> None:
    x, y = transform(*BEIJING_WGS, WGS84, spelling)
    lon, lat = to_storage(x, y, spelling)
    assert lon.dtype == np.float64
    assert float(distance_m(*BEIJING_WGS, lon, lat)) < ONE_MM


def test_to_storage_arrays() -> None:
    lon = np.array([[116.4, 121.47], [87.62, 126.978]])
    lat = np.array([[39.9, 31.23], [43.83, 37.566]])
    x, y = to_storage(*wgs84_to_gcj02(lon, lat), "gcj02")
    assert x.shape == (2, 2)
    assert distance_m(lon, lat, x, y).max() < ONE_MM
