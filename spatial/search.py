"""The map's search box: addresses, buildings, household numbers, alley names
and admin units (street offices, communities, grids).

The matching is ``onemap.search`` (``spatial/sql/160_search.sql``) and
``onemap.search_units`` (``spatial/sql/175_search_units.sql``), merged here:
substring matches through pg_trgm indexes, ranked exact → prefix → elsewhere,
shorter labels first. It runs as its caller, so a connection from
:func:`spatial.access.request_connection` finds only what row-level security
lets the caller read (a grid worker the households of their grid; external
systems and the public no household at all).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from spatial.db import fetch_tuples
from spatial.errors import InvalidInputError

LOGGER = logging.getLogger(__name__)

#: Query parameters ``GET /search`` accepts.
PARAMETERS = frozenset({"q", "limit", "f"})
#: Longest accepted query, in characters.
MAX_QUERY = 100
DEFAULT_LIMIT = 10
MAX_LIMIT = 50
#: The kinds of hit, as ``type`` in the answer.
TYPES = ("building", "address", "compound", "household", "alley",
         "street_office", "community", "grid")

# Both functions rank alike (exact 0, prefix 1, elsewhere 2); their merge is
# ordered as each orders its own hits, so units and buildings interleave fairly.
_SEARCH = """
SELECT kind, collection, id, label, lon, lat, bbox
FROM (SELECT * FROM onemap.search(%(q)s, %(lim)s)
      UNION ALL
      SELECT * FROM onemap.search_units(%(q)s, %(lim)s)) AS hit
ORDER BY rank, length(label), kind, id
LIMIT %(lim)s
"""


@dataclass(frozen=True)
class SearchResult:
    """One hit.

    Attributes
    ----------
    type : str
        One of :data:`TYPES`.
    collection : str
        The collection holding the feature (``/collections/{collection}/items/{id}``).
    id : int
        The feature id.
    label : str
        What to show.
    lon, lat : float
        A point on the feature, EPSG:4326.
    bbox : tuple of float or None
        ``(minx, miny, maxx, maxy)`` in EPSG:4326 for lines and areas, None for points.
    """

    type: str
    collection: str
    id: int
    label: str
    lon: float
    lat: float
    bbox: tuple[float, float, float, float] | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``bbox`` only for lines and areas.

        Examples
        --------
        >>> hit = SearchResult("alley", "alley", 3, "三里三条", 116.4, 39.9,
        ...                    (116.3, 39.9, 116.5, 39.9))
        >>> hit.to_dict()["bbox"], "bbox" in SearchResult("household", "household", 7, "1-1-101",
        ...                                               116.4, 39.9, None).to_dict()
        ([116.3, 39.9, 116.5, 39.9], False)
        """
        out: dict[str, Any] = {"type": self.type, "collection": self.collection,
                               "id": self.id, "label": self.label,
                               "lon": self.lon, "lat": self.lat}
        if self.bbox is not None:
            out["bbox"] = list(self.bbox)
        return out


def parse_params(params: Mapping[str, str]) -> tuple[str, int]:
    """Validate the query parameters of ``GET /search``.

    Parameters
    ----------
    params : mapping
        The query parameters.

    Returns
    -------
    tuple of (str, int)
        The stripped query and the limit, clamped to 1..:data:`MAX_LIMIT`.

    Raises
    ------
    InvalidInputError
        An unknown parameter, a missing, empty or too long ``q``, a ``limit``
        that is not an integer, or ``f`` other than ``json``.

    Examples
    --------
    >>> parse_params({"q": " 三里 ", "limit": "500"})
    ('三里', 50)
    >>> parse_params({"q": "x", "limit": "0"})
    ('x', 1)
    """
    unknown = sorted(set(params) - PARAMETERS)
    if unknown:
        raise InvalidInputError(
            f"unknown parameter(s): {', '.join(unknown)}; known: "
            f"{', '.join(sorted(PARAMETERS))} / 未知参数"
        )
    if params.get("f", "json") != "json":
        raise InvalidInputError(f"f must be json, got {params['f']!r} / 仅支持 f=json")
    q = params.get("q", "").strip()
    if not q:
        raise InvalidInputError("q is required and must not be empty / 请输入搜索内容")
    if len(q) > MAX_QUERY:
        raise InvalidInputError(
            f"q is {len(q)} characters, at most {MAX_QUERY} allowed / 搜索内容过长"
        )
    raw = params.get("limit")
    if raw is None:
        return q, DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise InvalidInputError(f"limit must be an integer, got {raw!r} / limit 应为整数") from None
    return q, min(max(limit, 1), MAX_LIMIT)


def search(conn: psycopg.Connection[Any], q: str, limit: int = DEFAULT_LIMIT) -> list[SearchResult]:
    """Find buildings, addresses, compounds, households, alleys and admin units matching ``q``.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection acting as the caller (:func:`spatial.access.request_connection`);
        on the owner's connection row-level security does not apply.
    q : str
        Words; a household is found by its room number, narrowed by more words
        matching its building's name or address (``"示范楼 3-2-501"``); a street
        office, community or grid by its name (``"霞光里"``).
    limit : int
        At most this many hits.

    Returns
    -------
    list of SearchResult
        Best first.

    Raises
    ------
    ValueError
        ``limit`` below 1 or ``q`` empty (callers validate with :func:`parse_params`).
    """
    if limit < 1 or not q.strip():
        raise ValueError(f"need a non-empty q and limit >= 1, got {q!r}, {limit!r}")
    rows = fetch_tuples(conn, _SEARCH, {"q": q.strip(), "lim": limit})
    return [
        SearchResult(kind, collection, int(fid), label, float(lon), float(lat),
                     tuple(bbox) if bbox is not None else None)
        for kind, collection, fid, label, lon, lat, bbox in rows
    ]


__all__ = ["MAX_LIMIT", "MAX_QUERY", "PARAMETERS", "TYPES", "SearchResult", "parse_params",
           "search"]
