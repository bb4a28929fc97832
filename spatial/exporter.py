"""Export a layer to a GeoPackage, GeoJSON or CSV file (``onemap export``).

What may be exported is what the layer publishes: the geometry tables that are
OGC API collections (:func:`spatial.catalog.geometry_tables`). Tables without
geometry — ``resident`` above all — are refused, and columns holding personal
data (:data:`PERSONAL_COLUMNS`: residents' identity and contact fields, a
citizen reporter's name and phone) are withheld from every export, whoever
asks; the summary names the columns left out. An export made as a user
(``onemap export --as USERNAME``) reads the layer's published view under that
user's roles and data scope instead, exactly as the API answers them.

Rows are read through a server-side cursor and written in chunks, so a large
layer never sits in memory whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import shapely
from psycopg import sql

from spatial.access import Principal, apply_principal, check_can_read
from spatial.catalog import LAYERS_SCHEMA, geometry_tables, get_table
from spatial.crs import (
    BD09,
    GCJ02,
    STORAGE_SRID,
    WGS84,
    parse_crs,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from spatial.errors import InvalidInputError, PermissionDeniedError
from spatial.privacy import PERSONAL_COLUMNS, PERSONAL_TABLES

LOGGER = logging.getLogger(__name__)

#: Output formats: name → (GDAL driver, file suffix).
FORMATS: dict[str, tuple[str, str]] = {
    "gpkg": ("GPKG", ".gpkg"),
    "geojson": ("GeoJSON", ".geojson"),
    "csv": ("CSV", ".csv"),
}

#: Rows fetched and written per chunk.
CHUNK_ROWS = 20_000

#: Called as ``progress(done, total)`` while rows are written.
type ProgressFn = Callable[[int, int], None]


@dataclass
class ExportSummary:
    """What an export wrote.

    Attributes
    ----------
    layer : str
        The layer.
    path : Path
        The file written.
    format : str
        ``gpkg``, ``geojson`` or ``csv``.
    rows : int
        Features written.
    crs : str
        CRS of the coordinates in the file.
    withheld : list of str
        Columns left out because they hold personal data.
    """

    layer: str
    path: Path
    format: str
    rows: int = 0
    crs: str = "EPSG:4490"
    withheld: list[str] = field(default_factory=list)


def exportable_layers(conn: psycopg.Connection[Any]) -> list[str]:
    """The layers an export may read: published geometry tables without personal data.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection.

    Returns
    -------
    list of str
        Sorted table names.
    """
    return [t for t in geometry_tables(conn) if t not in PERSONAL_TABLES]


def check_exportable(conn: psycopg.Connection[Any], layer: str) -> None:
    """Raise unless `layer` may be exported.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection.
    layer : str
        Table name.

    Raises
    ------
    PermissionDeniedError
        For a table holding personal data (``resident`` …) or a table that is
        not a published layer (no geometry).
    NotFoundError
        When the schema has no such table.
    """
    if layer in PERSONAL_TABLES:
        raise PermissionDeniedError(
            f"{layer} holds personal data and is not exportable; residents are reached "
            "through their household, within a role's data scope"
        )
    get_table(conn, layer)  # NotFoundError for an unknown name
    if layer not in exportable_layers(conn):
        raise PermissionDeniedError(
            f"{layer} is not a published map layer (no geometry) and is not exportable"
        )


def _output_crs(crs: int | str) -> tuple[int | str, str]:
    try:
        parsed = parse_crs(crs)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(str(exc)) from None
    if parsed in (GCJ02, BD09):
        return parsed, str(parsed)
    return parsed, f"EPSG:{parsed}"


def _column_value(value: Any) -> Any:
    """A database value as something every output driver writes."""
    if value is None or isinstance(value, (str, bool, int, float, datetime)):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)  # time, interval, uuid, inet …


#: geometry_columns type → the name pyogrio takes.
_GEOMETRY_TYPES = {
    "POINT": "Point",
    "MULTIPOINT": "MultiPoint",
    "LINESTRING": "LineString",
    "MULTILINESTRING": "MultiLineString",
    "POLYGON": "Polygon",
    "MULTIPOLYGON": "MultiPolygon",
}


_PANDAS_DTYPES: dict[str, str] = {
    "smallint": "Int64",
    "integer": "Int64",
    "bigint": "Int64",
    "numeric": "float64",
    "real": "float64",
    "double precision": "float64",
    "boolean": "boolean",
}


def _frame(rows: list[dict[str, Any]], columns: list[tuple[str, str]], crs: str | None) -> Any:
    import geopandas as gpd
    import pandas as pd

    data: dict[str, Any] = {}
    for name, data_type in columns:
        values = [_column_value(r[name]) for r in rows]
        dtype = _PANDAS_DTYPES.get(data_type)
        if dtype is not None:
            data[name] = pd.array(values, dtype=dtype)
        elif data_type.startswith("timestamp"):
            data[name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
        else:
            data[name] = pd.Series(values, dtype=object)
    geoms = shapely.from_wkb(np.array([r["_geom"] for r in rows], dtype=object))
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms), crs=crs)


def export_layer(
    conn: psycopg.Connection[Any],
    layer: str,
    path: str | Path,
    fmt: str,
    *,
    crs: int | str = STORAGE_SRID,
    bbox: tuple[float, float, float, float] | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    principal: Principal | None = None,
) -> ExportSummary:
    """Write a layer's features to a file.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection with dict rows.
    layer : str
        An exportable layer (:func:`exportable_layers`).
    path : str or Path
        Output file.
    fmt : {"gpkg", "geojson", "csv"}
        Output format; CSV carries the geometry as WKT in a ``WKT`` column.
    crs : int or str
        Output CRS: 4490 (default), 4326, 3857, a CGCS2000 Gauss-Krüger zone,
        ``gcj02`` or ``bd09`` (for AMap/Baidu base maps; the file then declares
        no CRS). GeoJSON is always written as RFC 7946 longitude/latitude,
        declared WGS 84 (CGCS2000 agrees with it to centimetres).
    bbox : tuple of float, optional
        Only features intersecting ``(minx, miny, maxx, maxy)`` in lon/lat.
    overwrite : bool
        Replace an existing file.
    progress : callable, optional
        ``progress(done, total)``.
    principal : Principal, optional
        Export as this user: the layer's published view is read under the
        user's roles and data scope (row-level security, personal fields as
        their role shows them), exactly as the API would answer them. Without
        one, the owner's export: every row, personal columns withheld.

    Returns
    -------
    ExportSummary
        Rows written, CRS, withheld columns.

    Raises
    ------
    PermissionDeniedError
        When the layer may not be exported.
    NotFoundError
        For an unknown layer.
    InvalidInputError
        For an unknown format or CRS, or an existing file without `overwrite`.
    """
    import pyogrio

    with contextlib.ExitStack() as stack:
        if principal is not None:
            # One transaction for count and cursor, acting as the user.
            stack.enter_context(conn.transaction())
            apply_principal(conn, principal)
        return _export(conn, layer, path, fmt, crs=crs, bbox=bbox, overwrite=overwrite,
                       progress=progress, principal=principal, write=pyogrio.write_dataframe)


def _export(
    conn: psycopg.Connection[Any],
    layer: str,
    path: str | Path,
    fmt: str,
    *,
    crs: int | str,
    bbox: tuple[float, float, float, float] | None,
    overwrite: bool,
    progress: ProgressFn | None,
    principal: Principal | None,
    write: Callable[..., Any],
) -> ExportSummary:
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if principal is None:
        check_exportable(conn, layer)
    else:
        check_can_read(conn, layer, principal)
    out = Path(path)
    if out.exists():
        if not overwrite:
            raise InvalidInputError(f"{out.name} exists; choose another name or overwrite it")
        out.unlink()
    target, crs_name = _output_crs(crs)
    if fmt == "geojson" and target not in (STORAGE_SRID, WGS84):
        raise InvalidInputError("GeoJSON is longitude/latitude (RFC 7946): export it in 4490/4326")
    if principal is None:
        table = get_table(conn, layer)
        columns = [
            (c.name, c.data_type)
            for c in table.properties
            if c.name not in PERSONAL_COLUMNS and c.name != "geom_3857"
        ]
        withheld = sorted(c.name for c in table.properties if c.name in PERSONAL_COLUMNS)
    else:  # the view chose the columns and masks personal ones by role
        table = get_table(conn, layer, schema=LAYERS_SCHEMA)
        columns = [(c.name, c.data_type) for c in table.published]
        withheld = []
    if fmt == "geojson":
        crs_name = "EPSG:4326 (RFC 7946; CGCS2000 coordinates, equal to centimetres)"
    summary = ExportSummary(layer, out, fmt, crs=crs_name, withheld=withheld)
    geom_type = table.geometry["geom"][0]

    where: sql.Composable = sql.SQL("")
    params: list[Any] = []
    if bbox is not None:
        from spatial.features import bbox_condition
        from spatial.params import parse_bbox

        bbox = parse_bbox(bbox)  # CRS84 longitude/latitude, as the API's bbox
        condition, params = bbox_condition(table, bbox)  # intersects, as the API's bbox
        where = sql.SQL(" WHERE ") + condition
    geom_sql: sql.Composable = sql.SQL("t.geom")
    if isinstance(target, int) and target not in (STORAGE_SRID, WGS84):
        geom_sql = sql.SQL("ST_Transform(t.geom, {})").format(sql.Literal(target))
    relation = sql.SQL("{}.{} AS t").format(
        sql.Identifier(table.schema), sql.Identifier(table.name)
    )
    count_row = conn.execute(
        sql.SQL("SELECT count(*) AS n FROM {}{}").format(relation, where), params
    ).fetchone()
    total = int(count_row["n"]) if count_row else 0
    query = sql.SQL(
        "SELECT {cols}, ST_AsBinary({geom}) AS _geom FROM {rel}{where} ORDER BY t.id"
    ).format(
        cols=sql.SQL(", ").join(sql.SQL("t.{}").format(sql.Identifier(n)) for n, _ in columns),
        geom=geom_sql,
        rel=relation,
        where=where,
    )
    driver, _ = FORMATS[fmt]
    file_crs = None if target in (GCJ02, BD09) else (
        "EPSG:4326" if fmt == "geojson" else f"EPSG:{target}"
    )
    options: dict[str, Any] = {}
    if fmt == "csv":
        options["layer_options"] = {"GEOMETRY": "AS_WKT"}
    elif fmt == "geojson":
        options["layer_options"] = {"RFC7946": "YES", "WRITE_NAME": "NO"}
    written = 0
    first = True
    with conn.transaction(), conn.cursor(name=f"export_{layer}") as cur:
        cur.execute(query, params)
        while True:
            rows = cur.fetchmany(CHUNK_ROWS)
            if not rows and not first:
                break
            frame = _frame(rows, columns, file_crs)
            if target in (GCJ02, BD09) and len(frame):
                to_web = wgs84_to_gcj02 if target == GCJ02 else wgs84_to_bd09

                def move(xy: Any, fn: Any = to_web) -> Any:
                    return np.column_stack(fn(xy[:, 0], xy[:, 1]))

                frame = frame.set_geometry(shapely.transform(frame.geometry.values, move))
            with warnings.catch_warnings():
                # gcj02/bd09 have no EPSG code: the file declares no CRS, on purpose.
                warnings.filterwarnings("ignore", "'crs' was not provided", UserWarning)
                write(
                    frame,
                    out,
                    layer=layer,
                    driver=driver,
                    append=not first,
                    geometry_type=_GEOMETRY_TYPES.get(geom_type.upper(), "Unknown"),
                    **options,
                )
            first = False
            written += len(rows)
            if progress is not None:
                progress(written, total)
            if not rows:
                break
    summary.rows = written
    LOGGER.info("exported %d features of %s to %s", written, layer, out.name)
    return summary


__all__ = [
    "FORMATS",
    "PERSONAL_COLUMNS",
    "PERSONAL_TABLES",
    "ExportSummary",
    "check_exportable",
    "export_layer",
    "exportable_layers",
]
