"""Bulk loading with COPY: frames in the metric CRS in, rows in PostGIS out."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import shapely
from psycopg import sql

from democity.context import METRIC_EPSG
from spatial.crs import STORAGE_SRID
from spatial.db import SCHEMA

LOGGER = logging.getLogger(__name__)


def to_ewkb_hex(geoms: Any, src_epsg: int = METRIC_EPSG) -> np.ndarray:
    """Transform geometries to the storage CRS and encode them as hex EWKB.

    Parameters
    ----------
    geoms : array-like of shapely geometries (None allowed)
        In ``src_epsg``.
    src_epsg : int
        CRS of the input.

    Returns
    -------
    numpy.ndarray
        Hex EWKB strings with SRID 4490 (None where the input was None),
        which PostGIS reads directly in COPY.
    """
    import geopandas as gpd

    series = gpd.GeoSeries(list(geoms), crs=src_epsg)
    if src_epsg != STORAGE_SRID:
        series = series.to_crs(STORAGE_SRID)
    arr = shapely.set_srid(np.asarray(series.values, dtype=object), STORAGE_SRID)
    return shapely.to_wkb(arr, hex=True, include_srid=True)


_POINT = np.dtype([("order", "u1"), ("type", "<u4"), ("srid", "<u4"), ("x", "<f8"),
                   ("y", "<f8")])


def points_ewkb_hex(x: np.ndarray, y: np.ndarray, srid: int = STORAGE_SRID) -> list[str]:
    """Hex EWKB of points (little-endian, with SRID), built with numpy.

    Parameters
    ----------
    x, y : numpy.ndarray
        Coordinates already in the CRS of ``srid``.
    srid : int
        SRID written into each point.

    Returns
    -------
    list of str
        One 50-character hex string per point, as PostGIS reads in COPY.

    Examples
    --------
    >>> import shapely
    >>> points_ewkb_hex(np.array([116.45]), np.array([39.92]))[0] == shapely.to_wkb(
    ...     shapely.set_srid(shapely.Point(116.45, 39.92), 4490), hex=True,
    ...     include_srid=True, byte_order=1)
    True
    """
    rec = np.empty(len(x), dtype=_POINT)
    rec["order"] = 1
    rec["type"] = 0x20000001
    rec["srid"] = srid
    rec["x"] = x
    rec["y"] = y
    return np.frombuffer(rec.tobytes().hex().upper().encode("ascii"), dtype="S50") \
        .astype("U50").tolist()


class CopyWriter:
    """Writes rows into tables of the application schema with COPY.

    Parameters
    ----------
    conn : psycopg.Connection
        An open connection; the caller owns its transaction.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.rows: dict[str, int] = {}

    def copy_rows(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
        *, schema: str = SCHEMA,
    ) -> int:
        """COPY rows (tuples of Python values) into a table.

        Parameters
        ----------
        table : str
            Table name.
        columns : sequence of str
            Column names, in the order of each row's values.
        rows : iterable of sequences
            Values; geometries already as hex EWKB strings.
        schema : str
            Schema of the table (``truth`` for ground truth).

        Returns
        -------
        int
            Rows written.
        """
        stmt = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
            sql.Identifier(schema), sql.Identifier(table),
            sql.SQL(", ").join(sql.Identifier(c) for c in columns))
        n = 0
        with self.conn.cursor() as cur, cur.copy(stmt) as copy:
            for row in rows:
                copy.write_row(row)
                n += 1
        key = f"{schema}.{table}" if schema != SCHEMA else table
        self.rows[key] = self.rows.get(key, 0) + n
        return n

    def copy_frame(
        self, table: str, frame: pd.DataFrame, *, geometry: Sequence[str] = ("geom",),
        src_epsg: int = METRIC_EPSG, schema: str = SCHEMA,
    ) -> int:
        """COPY a (Geo)DataFrame whose columns are named as the table's.

        Geometry columns (``geometry`` argument, plus a GeoDataFrame's active
        geometry written as ``geom``) are transformed from ``src_epsg`` to the
        storage CRS. NaN and None become NULL.

        Parameters
        ----------
        table : str
            Table name.
        frame : pandas.DataFrame or geopandas.GeoDataFrame
            One row per table row.
        geometry : sequence of str
            Columns holding shapely geometries.
        src_epsg : int
            CRS of the geometries.
        schema : str
            Schema of the table.

        Returns
        -------
        int
            Rows written.
        """
        df = pd.DataFrame(frame).copy()
        if "geometry" in df.columns and "geom" not in df.columns:
            df = df.rename(columns={"geometry": "geom"})
        for col in geometry:
            if col in df.columns:
                df[col] = to_ewkb_hex(df[col].values, src_epsg)
        columns = list(df.columns)
        values = df.astype(object).where(pd.notna(df), None).itertuples(index=False, name=None)
        return self.copy_rows(table, columns, values, schema=schema)
