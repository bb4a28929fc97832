"""A job's feature outputs as map layers: their features paged, tiled and described.

A feature output (a GeoJSON FeatureCollection) is stored, when its job
completes, as rows of ``onemap.job_feature`` (:func:`spatial.jobs.complete_outputs`).
Here those rows are read:

- :func:`layer` — the output of a job the caller may see, with its count,
  extent and geometry kind (a 404 for anyone :func:`spatial.jobs.get` refuses,
  the same answer as for a job that does not exist);
- :func:`features` — a page of its features, in a chosen CRS;
- :func:`tile` — one WebMercatorQuad vector tile of it (``ST_AsMVT``).

A process runs on its submitter's connection under row-level security, so the
stored properties are already what the submitter may see (personal data
masked as in the source layers); only those who may see the job read them.
Every function takes an *owner* connection: the table is a system table.
Nothing here knows pygeoapi or the tile engine; the routes are
:mod:`server.results`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from spatial import jobs
from spatial.access import Principal
from spatial.db import fetch_dicts
from spatial.errors import NotFoundError

#: Geometry kind of a layer → the MapLibre layer type that draws it.
KINDS = {"polygon": "fill", "line": "line", "point": "circle"}
#: Decimal places of coordinates in degrees (about a centimetre) and in metres.
DEGREE_PRECISION = 7
METRE_PRECISION = 3


@dataclass(frozen=True)
class FeatureLayer:
    """A feature output of a job, as a layer.

    Attributes
    ----------
    job : spatial.jobs.Job
        The (successful) job.
    output_id : str
        The output.
    count : int
        Its features.
    bbox : tuple of float or None
        ``(min lon, min lat, max lon, max lat)`` in EPSG:4490; None without geometries.
    kind : str
        ``polygon``, ``line`` or ``point``: the geometries most of its features
        have (``polygon`` when it has none).
    """

    job: jobs.Job
    output_id: str
    count: int
    bbox: tuple[float, float, float, float] | None
    kind: str


def _no_output(job_id: uuid.UUID, output_id: str) -> NotFoundError:
    return NotFoundError(f"job {str(job_id)!r} has no feature output {output_id[:64]!r} / "
                         f"作业没有要素输出 {output_id[:64]}")


def layer(conn: psycopg.Connection[Any], job_id: str | uuid.UUID, output_id: str,
          principal: Principal) -> FeatureLayer:
    """A feature output of a job the principal may see.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    job_id : str or uuid.UUID
        The job.
    output_id : str
        One of its outputs.
    principal : Principal
        Who asks: who may see the job (:func:`spatial.jobs.get`) may read it.

    Returns
    -------
    FeatureLayer

    Raises
    ------
    NotFoundError
        If the job is not visible to the principal, has not succeeded, or has
        no feature output of that id.
    """
    job = jobs.get(conn, job_id, principal)
    if job.status != "successful":
        raise NotFoundError(f"job {str(job.id)!r} has no result ({job.status}) / "
                            f"作业尚无结果（{job.status}）")
    rows = fetch_dicts(
        conn,
        "SELECT (SELECT count(*) FROM onemap.job_feature f "
        "         WHERE f.job_id = o.job_id AND f.output_id = o.output_id) AS n, "
        " (SELECT ST_Extent(geom) FROM onemap.job_feature f "
        "   WHERE f.job_id = o.job_id AND f.output_id = o.output_id) AS box, "
        " (SELECT lower(replace(GeometryType(geom), 'MULTI', '')) FROM onemap.job_feature f "
        "   WHERE f.job_id = o.job_id AND f.output_id = o.output_id AND geom IS NOT NULL "
        "   GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1) AS kind "
        "FROM onemap.job_output o WHERE o.job_id = %s AND o.output_id = %s "
        " AND split_part(lower(o.media_type), ';', 1) = 'application/geo+json'",
        (job.id, output_id),
    )
    if not rows:
        raise _no_output(job.id, output_id)
    row = rows[0]
    box = row["box"]
    bbox = None
    if box is not None:
        numbers = [float(v) for v in str(box)[4:-1].replace(",", " ").split()]
        bbox = (numbers[0], numbers[1], numbers[2], numbers[3])
    kind = {"linestring": "line", "point": "point"}.get(row["kind"] or "", "polygon")
    return FeatureLayer(job, output_id, int(row["n"]), bbox, kind)


def features(
    conn: psycopg.Connection[Any],
    found: FeatureLayer,
    *,
    limit: int,
    offset: int = 0,
    bbox: Sequence[float] | None = None,
    srid: int | None = None,
    northing_first: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """A page of a layer's features, in their stored order.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    found : FeatureLayer
        The layer (from :func:`layer`: the caller may see it).
    limit, offset : int
        Paging.
    bbox : sequence of float, optional
        Only features whose envelope meets this EPSG:4490 box.
    srid : int, optional
        EPSG code of the output CRS (None: the stored CRS84 / EPSG:4490 lon/lat).
    northing_first : bool
        Whether that CRS puts northing (latitude) first.

    Returns
    -------
    tuple of (list of dict, int)
        GeoJSON features and the number of features matching.
    """
    geom: sql.Composable = sql.SQL("geom")
    if srid is not None:
        geom = sql.SQL("ST_Transform(geom, {})").format(sql.Literal(int(srid)))
    if northing_first:
        geom = sql.SQL("ST_FlipCoordinates({})").format(geom)
    projected = srid is not None and srid not in (4326, 4490)
    where = sql.SQL("job_id = %(job)s AND output_id = %(output)s AND "
                    "(%(minx)s::float8 IS NULL OR geom && ST_MakeEnvelope("
                    "%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 4490))")
    box = list(bbox) if bbox is not None else [None] * 4
    params = {"job": found.job.id, "output": found.output_id, "minx": box[0], "miny": box[1],
              "maxx": box[2], "maxy": box[3], "limit": limit, "offset": offset}
    rows = fetch_dicts(conn, sql.SQL(
        "SELECT fid, feature_id, properties, ST_AsGeoJSON({geom}, {digits}, 0)::json AS geometry "
        "FROM onemap.job_feature WHERE {where} ORDER BY fid LIMIT %(limit)s OFFSET %(offset)s"
    ).format(geom=geom, where=where,
             digits=sql.Literal(METRE_PRECISION if projected else DEGREE_PRECISION)), params)
    if bbox is None:
        matched = found.count
    else:
        [count] = fetch_dicts(conn, sql.SQL(
            "SELECT count(*) AS n FROM onemap.job_feature WHERE {}").format(where), params)
        matched = int(count["n"])
    page = [{"type": "Feature",
             "id": r["feature_id"] if r["feature_id"] is not None else r["fid"],
             "geometry": r["geometry"], "properties": r["properties"]} for r in rows]
    return page, matched


def tile(conn: psycopg.Connection[Any], found: FeatureLayer, z: int, x: int, y: int, *,
         extent: int = 4096, buffer: int = 64) -> bytes:
    """One WebMercatorQuad vector tile of a layer.

    Read from the stored EPSG:3857 column (``geom_3857``, as the tile engine's
    layers). Its one MVT layer is named after the output; each feature has its place
    in the output as MVT id and its properties as attributes (objects and
    arrays as JSON text).

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    found : FeatureLayer
        The layer (from :func:`layer`: the caller may see it).
    z, x, y : int
        Zoom, column and row (checked by the caller).
    extent, buffer : int
        MVT extent and buffer, in tile units.

    Returns
    -------
    bytes
        The tile; empty when no feature meets it.
    """
    rows = fetch_dicts(
        conn,
        "WITH env AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s) AS tile, "
        "  ST_TileEnvelope(%(z)s, %(x)s, %(y)s, "
        "   margin => %(buffer)s::float8 / %(extent)s) AS near) "
        "SELECT coalesce((SELECT ST_AsMVT(t, %(name)s, %(extent)s, 'geom', 'fid') FROM ("
        " SELECT f.fid, ST_AsMVTGeom(f.geom_3857, env.tile, %(extent)s, "
        "   %(buffer)s, true) AS geom, "
        "  (SELECT coalesce(jsonb_object_agg(k, CASE WHEN jsonb_typeof(v) IN ('object', 'array') "
        "     THEN to_jsonb(v::text) ELSE v END), '{}'::jsonb) "
        "    FROM jsonb_each(f.properties) AS p(k, v)) AS properties "
        " FROM onemap.job_feature f, env WHERE f.job_id = %(job)s AND f.output_id = %(output)s "
        "  AND f.geom_3857 && env.near) t WHERE t.geom IS NOT NULL), ''::bytea) AS mvt",
        {"z": z, "x": x, "y": y, "extent": extent, "buffer": buffer,
         "name": found.output_id, "job": found.job.id, "output": found.output_id},
    )
    return bytes(rows[0]["mvt"])


def value_range(conn: psycopg.Connection[Any], found: FeatureLayer,
                prop: str) -> tuple[float, float] | None:
    """The lowest and highest numeric values of a property over a layer's features.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    found : FeatureLayer
        The layer.
    prop : str
        The property.

    Returns
    -------
    tuple of float or None
        None when no feature has a number there.
    """
    [row] = fetch_dicts(
        conn,
        "SELECT min((properties ->> %(prop)s)::float8) AS low, "
        " max((properties ->> %(prop)s)::float8) AS high FROM onemap.job_feature "
        "WHERE job_id = %(job)s AND output_id = %(output)s "
        " AND jsonb_typeof(properties -> %(prop)s) = 'number'",
        {"prop": prop, "job": found.job.id, "output": found.output_id})
    if row["low"] is None:
        return None
    return float(row["low"]), float(row["high"])
