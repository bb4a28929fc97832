"""spatial.cql against a real PostGIS holding the tiny city, without HTTP."""

from __future__ import annotations

from datetime import date
from typing import Any

import psycopg
import pytest
from pygeofilter import ast, values

from spatial.catalog import get_table
from spatial.cql import parse_filter, to_sql
from spatial.errors import InvalidInputError
from spatial.features import FeatureQuery, query_features


@pytest.fixture
def city(tiny_city_db: str, conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    return conn


def count(conn: psycopg.Connection[Any], table: str, node: Any, **kw: Any) -> int:
    fc = query_features(conn, table, FeatureQuery(limit=0, cql=node, **kw))
    return int(fc["numberMatched"])


def test_parse_errors_carry_the_parser_reason() -> None:
    with pytest.raises(InvalidInputError, match=r"malformed cql2-text filter: .*end of input"):
        parse_filter("floors >")
    with pytest.raises(InvalidInputError, match="malformed cql2-json filter"):
        parse_filter('{"op": "=", "args": [', "cql2-json")
    with pytest.raises(InvalidInputError, match="filter-lang must be one of"):
        parse_filter("floors > 3", "ecql")
    with pytest.raises(InvalidInputError) as err:
        parse_filter("floors = = 3")
    assert "\n" not in str(err.value)


def test_values_are_placeholders(city: psycopg.Connection[Any]) -> None:
    table = get_table(city, "building")
    node = parse_filter({"op": "=", "args": [{"property": "name"}, "x' OR 1=1 --"]}, "cql2-json")
    fragment, params = to_sql(node, table)
    text = fragment.as_string(city)
    assert "OR 1=1" not in text and "%s" in text
    assert params == ["x' OR 1=1 --"]
    assert text == 't."name" = CAST(%s AS "text")'
    assert count(city, "building", node) == 0


def test_numbers_keep_their_precision(city: psycopg.Connection[Any]) -> None:
    table = get_table(city, "building")
    fragment, params = to_sql(parse_filter("floors > 6.5"), table)
    assert fragment.as_string(city) == 't."floors" > %s' and params == [6.5]
    assert count(city, "building", parse_filter("floors > 6.5")) == 4


def test_unknown_personal_and_geometry_properties(city: psycopg.Connection[Any]) -> None:
    event = get_table(city, "event")
    for name in ("storeys", "reporter_phone", "reporter_name", "geom_3857", "geom"):
        with pytest.raises(InvalidInputError, match=repr(name)):
            to_sql(parse_filter(f"{name} = 'x'"), event)


def test_unsupported_operations_are_input_errors(city: psycopg.Connection[Any]) -> None:
    event = get_table(city, "event")
    with pytest.raises(InvalidInputError, match="TimeBegins"):
        to_sql(ast.TimeBegins(ast.Attribute("reported_at"), values.Interval(None, None)), event)
    with pytest.raises(InvalidInputError, match="accenti"):
        to_sql(parse_filter("ACCENTI(status) = 'x'"), event)
    with pytest.raises(InvalidInputError, match="not a date or time"):
        to_sql(parse_filter("status T_BEFORE TIMESTAMP('2000-01-01T00:00:00Z')"), event)
    with pytest.raises(InvalidInputError, match="geometry property"):
        to_sql(parse_filter("S_INTERSECTS(status, POINT(1 2))"), event)


def test_temporal_with_dates_and_mirrored_operands(city: psycopg.Connection[Any]) -> None:
    after = ast.TimeAfter(ast.Attribute("reported_at"), date(2000, 1, 1))
    assert count(city, "event", after) == 1
    # Literal first: "2000-01-01 is before reported_at".
    before = ast.TimeBefore(date(2000, 1, 1), ast.Attribute("reported_at"))
    assert count(city, "event", before) == 1
    equals = ast.TimeEquals(ast.Attribute("reported_at"), date(2000, 1, 1))
    assert count(city, "event", equals) == 0
    open_start = ast.TimeDuring(
        ast.Attribute("reported_at"), values.Interval(None, date(2000, 1, 1))
    )
    assert count(city, "event", open_start) == 0


def test_axis_order_of_pygeoapi_geometries(city: psycopg.Connection[Any]) -> None:
    corners = [(116.461, 39.9177), (116.469, 39.9177), (116.469, 39.9275), (116.461, 39.9275)]
    corners.append(corners[0])
    lonlat = "POLYGON((" + ", ".join(f"{x} {y}" for x, y in corners) + "))"
    latlon = "POLYGON((" + ", ".join(f"{y} {x}" for x, y in corners) + "))"
    assert count(city, "building", parse_filter(f"S_INTERSECTS(geom, {lonlat})")) == 4
    node = parse_filter(f"S_INTERSECTS(geom, {latlon})")
    assert count(city, "building", node, cql_northing_first=True) == 4
    # A bbox is always longitude first, whatever the geometries' order.
    box = parse_filter("BBOX(geom, 116.461, 39.9177, 116.469, 39.9275)")
    assert count(city, "building", box, cql_northing_first=True) == 4


def test_distance_and_relate(city: psycopg.Connection[Any]) -> None:
    point = values.Geometry({"type": "Point", "coordinates": [116.465, 39.9221]})
    # The event is at (116.465, 39.922): about 11 m north of it.
    near = ast.DistanceWithin(ast.Attribute("geom"), point, 20, "meters")
    assert count(city, "event", near) == 1
    assert count(city, "event", ast.DistanceWithin(ast.Attribute("geom"), point, 5, "m")) == 0
    assert count(city, "event", ast.DistanceBeyond(ast.Attribute("geom"), point, 0.005, "km")) == 1
    with pytest.raises(InvalidInputError, match="units"):
        to_sql(
            ast.DistanceWithin(ast.Attribute("geom"), point, 1, "feet"), get_table(city, "event")
        )
    box = values.Geometry(
        {
            "type": "Polygon",
            "coordinates": [[[116.46, 39.92], [116.47, 39.92], [116.47, 39.93], [116.46, 39.92]]],
        }
    )
    inside = ast.Relate(ast.Attribute("geom"), box, "T********")
    assert count(city, "event", inside) == 1


def test_include_exclude_and_bad_bbox(city: psycopg.Connection[Any]) -> None:
    assert count(city, "lamp", parse_filter("INCLUDE")) == 29
    assert count(city, "lamp", parse_filter("EXCLUDE")) == 0
    with pytest.raises(InvalidInputError, match="minimum"):
        to_sql(parse_filter("BBOX(geom, 117, 39, 116, 40)"), get_table(city, "lamp"))


def test_ill_typed_value_is_an_input_error(city: psycopg.Connection[Any]) -> None:
    with pytest.raises(InvalidInputError, match="does not fit"):
        count(city, "building", parse_filter("floors = 'six'"))
    with pytest.raises(InvalidInputError, match="does not fit"):
        count(city, "building", parse_filter("name + 1 = 2"))
