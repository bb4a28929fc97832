"""OGC API Tiles over HTTP (Starlette, no pygeoapi).

Routes (``{z}/{y}/{x}``: level, row, column):

- ``/tileMatrixSets``, ``/tileMatrixSets/{tms}``
- ``/collections/{id}/tiles``, ``/collections/{id}/tiles/{tms}``,
  ``/collections/{id}/tiles/{tms}/tilejson.json``, ``/collections/{id}/tiles/{tms}/{z}/{y}/{x}``
- ``/tiles``, ``/tiles/{theme}``, ``/tiles/{theme}/{tms}``,
  ``/tiles/{theme}/{tms}/tilejson.json``, ``/tiles/{theme}/{tms}/{z}/{y}/{x}``

Built by :class:`TileService` (collaborators passed in, nothing read at
import); :mod:`server.app` appends :meth:`TileService.routes` before
pygeoapi's mount and :meth:`TileService.start` to its start-up hooks.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from spatial.access import Principal, current_principal
from spatial.errors import NotFoundError
from spatial.extents import get_extent_cache
from tiles import render as rendering
from tiles import tms as tmslib
from tiles.cache import TileCache, TileKey, scope_class_async
from tiles.freshness import layersets_from_spec, start_listener
from tiles.spec import LayerSet, LayerSpec, TileSpec, bind_catalog, load_spec

LOGGER = logging.getLogger(__name__)

MVT = "application/vnd.mapbox-vector-tile"
_REL_SCHEME = "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme"
#: Seconds a caller's scope class is reused (roles and scopes rarely change).
SCOPE_SECONDS = 5.0


@dataclass(frozen=True)
class TileResponse:
    """A tile ready to send: the cache's answer or a fresh render."""

    gzipped: bytes
    etag: str
    truncated: tuple[str, ...]
    empty: bool


#: The local day of ``daily`` layers (the city's time zone).
LOCAL_ZONE = ZoneInfo("Asia/Shanghai")


def clock_part(layerset: LayerSet, now: float, live: bool = True) -> str:
    """What a tile of ``layerset`` depends on by the clock alone, at ``now`` (epoch s).

    A set with a default window (live GPS: "the last 2 hours") changes as rows
    age out, which no notification announces: unless ``live`` is false (the
    request names its own ``datetime=``), its tiles are keyed by the
    ``live_seconds`` period they were drawn in. A ``daily`` set (today's load)
    is keyed by the local date.

    Examples
    --------
    >>> from tiles.spec import LayerSpec
    >>> gps = LayerSpec("truck_gps", "x", 10, 22, 30, 10, (), (), default_window="2 hours")
    >>> load = LayerSpec("refuse_facility", "x", 11, 22, 3600, 10, (), (), daily=True)
    >>> clock_part(LayerSet("t", "theme", {}, (gps,)), 60.0)
    'p2'
    >>> clock_part(LayerSet("r", "theme", {}, (load,)), 1_763_740_799.0)  # 23:59:59 +08
    'd2025-11-21'
    >>> clock_part(LayerSet("r", "theme", {}, (load,)), 1_763_740_800.0)
    'd2025-11-22'
    """
    parts = []
    if live and layerset.live_seconds:
        parts.append(f"p{int(now // layerset.live_seconds)}")
    if layerset.daily:
        parts.append("d" + datetime.fromtimestamp(now, LOCAL_ZONE).date().isoformat())
    return "".join(parts)


def max_age(layerset: LayerSet, now: float) -> int:
    """``Cache-Control`` max-age of the set's tiles: its ``cache_seconds``, and for a
    ``daily`` set no later than the next local midnight.

    Examples
    --------
    >>> from tiles.spec import LayerSpec
    >>> load = LayerSpec("refuse_facility", "x", 11, 22, 3600, 10, (), (), daily=True)
    >>> max_age(LayerSet("r", "theme", {}, (load,)), 1_763_740_000.0)  # 23:46:40 +08
    800
    """
    age = layerset.cache_seconds
    if layerset.daily:
        local = datetime.fromtimestamp(now, LOCAL_ZONE)
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(),
                                    LOCAL_ZONE)
        age = min(age, max(1, int(midnight.timestamp() - now)))
    return age


def _etag(data: bytes) -> str:
    return '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'


class TileService:
    """The tile endpoints and the resources they share (spec, connection pool).

    Parameters
    ----------
    layers_dir : Path
        Directory holding ``tiles.yml`` and ``themes.yml``.
    config_path : Path
        ``pygeoapi-config.yml`` (the collections).
    conninfo : callable
        Returns the database connection string (read at start-up).
    pool_size : int
        Most tile queries at once per worker process.
    """

    def __init__(self, layers_dir: Path, config_path: Path,
                 conninfo: Callable[[], str], pool_size: int = 16) -> None:
        self._paths = (layers_dir / "tiles.yml", layers_dir / "themes.yml", config_path)
        self._conninfo = conninfo
        self._pool_size = pool_size
        self._spec: TileSpec | None = None
        # One pool per event loop: an app may be started in several loops (test clients).
        self._pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool] = {}
        self.cache = TileCache()
        self._version = ""
        self._scopes: dict[tuple[Any, ...], tuple[float, str]] = {}
        #: Scope-class lookups under way, per event loop: later callers await the first.
        self._scope_pending: dict[asyncio.AbstractEventLoop,
                                  dict[tuple[Any, ...], asyncio.Task[str]]] = {}
        #: How many callers await each lookup: the last one leaving cancels it.
        self._scope_waiters: dict[asyncio.Task[str], int] = {}
        #: Epoch seconds now (tests set it): see :func:`clock_part`.
        self.clock: Callable[[], float] = time.time
        #: Serves a tile: through the cache (``_render_tile`` bypasses it).
        self.get_tile: Callable[..., Awaitable[TileResponse]] = self._cached_tile

    # -- life cycle -------------------------------------------------------------

    async def start(self) -> Callable[[], Awaitable[None]]:
        """Start-up hook: check the declarations against the views, open the pool."""
        from spatial.db import connect

        spec = load_spec(*self._paths)
        conninfo = self._conninfo()

        def bind() -> TileSpec:
            with connect(conninfo) as conn:
                return bind_catalog(spec, conn)

        self._spec = await asyncio.to_thread(bind)
        self._version = hashlib.blake2b(
            b"".join(p.read_bytes() for p in self._paths[:2]), digest_size=6).hexdigest()
        pool = rendering.make_pool(conninfo, self._pool_size)
        await pool.open()
        loop = asyncio.get_running_loop()
        self._pools[loop] = pool
        self.cache.set_layersets(layersets_from_spec(self._spec))
        listener = await asyncio.to_thread(start_listener, self.cache, conninfo=conninfo)

        async def stop() -> None:
            self._pools.pop(loop, None)
            await asyncio.to_thread(listener)
            await pool.close()

        return stop

    @property
    def spec(self) -> TileSpec:
        """The checked declarations (after start-up)."""
        if self._spec is None:
            raise RuntimeError("TileService.start() has not run")
        return self._spec

    @property
    def pool(self) -> AsyncConnectionPool:
        """The tile connection pool of the running event loop (after start-up)."""
        pool = self._pools.get(asyncio.get_running_loop())
        if pool is None:
            raise RuntimeError("TileService.start() has not run in this event loop")
        return pool

    # -- tiles ------------------------------------------------------------------------

    async def render(self, layerset: LayerSet, tms_id: str, z: int, x: int, y: int,
                     datetime_range: tuple[datetime, datetime] | None,
                     principal: Principal) -> rendering.RenderedTile:
        """Render a tile as ``principal`` from the pool."""
        async with rendering.tile_connection(self.pool, principal) as conn:
            return await rendering.render(conn, layerset, tms_id, z, x, y, datetime_range,
                                          principal)

    async def _render_tile(self, layerset: LayerSet, tms_id: str, z: int, x: int, y: int,
                           datetime_range: tuple[datetime, datetime] | None,
                           principal: Principal) -> TileResponse:
        tile = await self.render(layerset, tms_id, z, x, y, datetime_range, principal)
        return TileResponse(gzip.compress(tile.data, 5, mtime=0), _etag(tile.data),
                            tile.truncated, not tile.data)

    def _known_scope(self, layerset: LayerSet, principal: Principal) -> str | None:
        hit = self._scopes.get((layerset.id, principal))
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    async def _scope_class(self, layerset: LayerSet, principal: Principal) -> str:
        # Reused for a few seconds so a cached tile needs no database round trip;
        # when it runs out, the burst of requests then in flight shares one lookup
        # (every one of them taking a tile connection starved the renders at 150
        # clients).
        scope = self._known_scope(layerset, principal)
        if scope is not None:
            return scope
        loop = asyncio.get_running_loop()
        key = (layerset.id, principal)
        pending = self._scope_pending.setdefault(loop, {})
        lookup = pending.get(key)
        if lookup is None:
            lookup = loop.create_task(self._look_up_scope(layerset, principal))
            pending[key] = lookup
            lookup.add_done_callback(lambda t: _forget(pending, key, t))
        # shield: a caller going away must not cancel the lookup the others
        # await; the last one going away cancels it (and its query).
        self._scope_waiters[lookup] = self._scope_waiters.get(lookup, 0) + 1
        try:
            return await asyncio.shield(lookup)
        finally:
            left = self._scope_waiters.pop(lookup) - 1
            if left:
                self._scope_waiters[lookup] = left
            elif not lookup.done():
                lookup.cancel()

    async def _look_up_scope(self, layerset: LayerSet, principal: Principal) -> str:
        async with rendering.tile_connection(self.pool, principal) as conn:
            scope = await scope_class_async(conn, principal, layerset.tables)
        if len(self._scopes) > 10000:
            self._scopes.clear()
        self._scopes[(layerset.id, principal)] = (time.monotonic() + SCOPE_SECONDS, scope)
        return scope

    def _key(self, layerset: LayerSet, tms_id: str, z: int, x: int, y: int,
             datetime_range: tuple[datetime, datetime] | None, scope: str) -> TileKey:
        window = None if datetime_range is None else "/".join(
            d.isoformat() for d in datetime_range)
        version = self._version
        clock = clock_part(layerset, self.clock(), live=datetime_range is None)
        if clock:
            version = f"{version}~{clock}"
        return TileKey(layerset.id, tms_id, z, x, y, scope, window, version)

    def _memory_hit(self, layerset: LayerSet, tms_id: str, z: int, x: int, y: int,
                    datetime_range: tuple[datetime, datetime] | None,
                    principal: Principal) -> TileResponse | None:
        """A tile already in memory, found without awaiting anything (the hot path)."""
        if self.get_tile != self._cached_tile:
            return None
        scope = self._known_scope(layerset, principal)
        if scope is None:
            return None
        tile = self.cache.get(self._key(layerset, tms_id, z, x, y, datetime_range, scope))
        if tile is None:
            return None
        self.cache.stats.hits += 1
        return TileResponse(tile.gzip, tile.etag, tile.truncated, not tile.gzip)

    async def _cached_tile(self, layerset: LayerSet, tms_id: str, z: int, x: int, y: int,
                           datetime_range: tuple[datetime, datetime] | None,
                           principal: Principal) -> TileResponse:
        scope = await self._scope_class(layerset, principal)
        key = self._key(layerset, tms_id, z, x, y, datetime_range, scope)

        async def render() -> rendering.RenderedTile:
            return await self.render(layerset, tms_id, z, x, y, datetime_range, principal)

        tile = await self.cache.get_or_render(key, render)
        return TileResponse(tile.gzip, tile.etag, tile.truncated, not tile.gzip)

    async def _tile(self, request: Request, layerset: LayerSet) -> Response:
        p = request.path_params
        tms_id = p["tms"]
        z, y, x = tmslib.parse_tile(tms_id, p["z"], p["y"], p["x"])
        zoom = tmslib.web_zoom(tms_id, z)
        if not layerset.minzoom <= zoom <= layerset.maxzoom:
            raise NotFoundError(
                f"{layerset.id} has no tiles at level {z} of {tms_id} / 该级别无瓦片")
        window = rendering.parse_datetime(request.query_params.get("datetime"))
        principal = current_principal()
        answer = self._memory_hit(layerset, tms_id, z, x, y, window, principal)
        if answer is None:
            # The pool (spatial.db.AsyncPool) answers a database that is away, a
            # lost connection or every connection busy with DatabaseUnavailableError:
            # the application's 503, never a 500.
            answer = await _unless_disconnected(
                request, self.get_tile(layerset, tms_id, z, x, y, window, principal))
            if answer is None:  # the client went away; nobody reads this
                return Response(status_code=499)
        private = not principal.is_anonymous
        headers = {
            "ETag": answer.etag,
            "Cache-Control": f"{'private' if private else 'public'}, "
                             f"max-age={max_age(layerset, self.clock())}",
            "Vary": "Accept-Encoding, Authorization, X-API-Key",
        }
        if answer.truncated:
            headers["X-Tile-Truncated"] = ", ".join(answer.truncated)
        if _matches(request.headers.get("if-none-match"), answer.etag):
            return Response(status_code=304, headers=headers)
        if "gzip" in request.headers.get("accept-encoding", "") and answer.gzipped:
            headers["Content-Encoding"] = "gzip"
            body = answer.gzipped
        else:
            body = gzip.decompress(answer.gzipped) if answer.gzipped else b""
        return Response(body, media_type=MVT, headers=headers)

    async def collection_tile(self, request: Request) -> Response:
        """``/collections/{id}/tiles/{tms}/{z}/{y}/{x}``"""
        return await self._tile(request, self.spec.collection(request.path_params["cid"]))

    async def theme_tile(self, request: Request) -> Response:
        """``/tiles/{theme}/{tms}/{z}/{y}/{x}``"""
        return await self._tile(request, self.spec.theme(request.path_params["theme"]))

    # -- metadata ---------------------------------------------------------------------

    async def readable(self, layerset: LayerSet, principal: Principal) -> list[LayerSpec]:
        """The layers of a set the caller may read (a collection: 401/403 otherwise)."""
        ids = [lyr.id for lyr in layerset.layers]
        async with rendering.tile_connection(self.pool, principal) as conn:
            cur = await conn.execute(
                "SELECT t, onemap.can_read(t) FROM unnest(%s::text[]) AS t", (ids,))
            allowed = {t for t, ok in await cur.fetchall() if ok}
        if layerset.kind == "collection" and not allowed:
            rendering.refuse(layerset.id, principal)
        return [lyr for lyr in layerset.layers if lyr.id in allowed]

    def _base(self, request: Request, layerset: LayerSet) -> str:
        root = str(request.base_url).rstrip("/")
        if layerset.kind == "collection":
            return f"{root}/collections/{layerset.id}/tiles"
        return f"{root}/tiles/{layerset.id}"

    def _levels(self, tms_id: str, minzoom: int, maxzoom: int) -> tuple[int, int]:
        low, high = tmslib.level_range(tms_id)
        zs = [z for z in range(low, high + 1) if minzoom <= tmslib.web_zoom(tms_id, z) <= maxzoom]
        return (zs[0], zs[-1]) if zs else (low, low)

    def _layer_doc(self, layer: LayerSpec, tms_id: str) -> dict[str, Any]:
        low, high = self._levels(tms_id, layer.minzoom, layer.maxzoom)
        props: dict[str, Any] = {}
        levels = []
        for lvl in layer.levels:
            names = list(lvl.carried)
            for name in names:
                props.setdefault(name, layer.property_schema(name))
            levels.append({"zoom": list(lvl.zoom), "kind": lvl.kind,
                           "properties": names})
        return {
            "id": layer.id, "title": layer.title, "dataType": "vector",
            "geometryType": layer.geometry_type,
            "minTileMatrix": str(low), "maxTileMatrix": str(high),
            "propertiesSchema": {"type": "object", "properties": props},
            "onemap:levels": levels,  # WebMercator zooms: aggregates at low zoom
            "onemap:featureLimit": layer.cap_rule,
            **({"onemap:timeField": layer.time_field} if layer.time_field else {}),
            **({"onemap:defaultWindow": layer.default_window} if layer.default_window else {}),
        }

    async def _tileset(self, request: Request, layerset: LayerSet) -> JSONResponse:
        tms_id = request.path_params["tms"]
        tms = tmslib.get_tms(tms_id)
        layers = await self.readable(layerset, current_principal())
        base = self._base(request, layerset)
        bbox = await self._bounds(layers, layerset)
        doc = {
            "title": _title(layerset), "dataType": "vector",
            "crs": tmslib.crs_uri(tms_id), "tileMatrixSetURI": tms.uri or
            f"{str(request.base_url).rstrip('/')}/tileMatrixSets/{tms_id}",
            "tileMatrixSetLimits": tmslib.tile_matrix_limits(
                tms_id, layerset.minzoom, layerset.maxzoom, bbox),
            "layers": [self._layer_doc(lyr, tms_id) for lyr in layers],
            "links": [
                {"rel": "self", "type": "application/json", "href": f"{base}/{tms_id}"},
                {"rel": _REL_SCHEME, "type": "application/json",
                 "href": f"{str(request.base_url).rstrip('/')}/tileMatrixSets/{tms_id}"},
                {"rel": "item", "type": MVT, "templated": True,
                 "href": f"{base}/{tms_id}/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"},
                {"rel": "describedby", "type": "application/json",
                 "href": f"{base}/{tms_id}/tilejson.json"},
            ],
        }
        return JSONResponse(doc)

    async def _bounds(self, layers: list[LayerSpec],
                      layerset: LayerSet) -> tuple[float, float, float, float]:
        """The union of the readable layers' extents as the caller may learn them
        (:mod:`spatial.extents`, as the collections advertise them); the declared
        boxes when none is readable or the database cannot say."""
        if not layers:
            return _union_bbox(list(layerset.layers))
        principal = current_principal()
        cache = get_extent_cache(self._conninfo())
        try:
            boxes = [(await asyncio.to_thread(cache.extent, lyr.id, principal)).bbox
                     for lyr in layers]
        except Exception:  # the declared box is still an answer
            LOGGER.warning("extents of %s not computed; declared bounds served",
                           layerset.id, exc_info=True)
            return _union_bbox(layers)
        return (min(b[0] for b in boxes), min(b[1] for b in boxes),
                max(b[2] for b in boxes), max(b[3] for b in boxes))

    async def _tilejson(self, request: Request, layerset: LayerSet) -> JSONResponse:
        tms_id = request.path_params["tms"]
        tmslib.get_tms(tms_id)
        layers = await self.readable(layerset, current_principal())
        base = self._base(request, layerset)
        low, high = self._levels(tms_id, layerset.minzoom, layerset.maxzoom)
        query = f"?{request.url.query}" if request.url.query else ""
        return JSONResponse({
            "tilejson": "3.0.0", "name": layerset.id, "description": _title(layerset),
            "scheme": "xyz", "crs": tmslib.crs_uri(tms_id),
            "tiles": [f"{base}/{tms_id}/{{z}}/{{y}}/{{x}}{query}"],
            "minzoom": low, "maxzoom": high,
            "bounds": list(await self._bounds(layers, layerset)),
            "vector_layers": [
                {"id": lyr.id, "description": lyr.title,
                 "minzoom": self._levels(tms_id, lyr.minzoom, lyr.maxzoom)[0],
                 "maxzoom": self._levels(tms_id, lyr.minzoom, lyr.maxzoom)[1],
                 "fields": {k: v["type"] for k, v in
                            self._layer_doc(lyr, tms_id)["propertiesSchema"]["properties"]
                            .items()}}
                for lyr in layers],
        })

    def _tilesets(self, request: Request, layerset: LayerSet) -> JSONResponse:
        base = self._base(request, layerset)
        return JSONResponse({"tilesets": [
            {"title": f"{_title(layerset)} ({tms_id})", "dataType": "vector",
             "crs": tmslib.crs_uri(tms_id),
             "links": [{"rel": "self", "type": "application/json", "href": f"{base}/{tms_id}"},
                       {"rel": _REL_SCHEME, "href": f"{str(request.base_url).rstrip('/')}"
                                                    f"/tileMatrixSets/{tms_id}"}]}
            for tms_id in tmslib.TMS_IDS]})

    async def collection_tilesets(self, request: Request) -> JSONResponse:
        """``/collections/{id}/tiles``"""
        layerset = self.spec.collection(request.path_params["cid"])
        await self.readable(layerset, current_principal())
        return self._tilesets(request, layerset)

    async def collection_tileset(self, request: Request) -> JSONResponse:
        """``/collections/{id}/tiles/{tms}``"""
        return await self._tileset(request, self.spec.collection(request.path_params["cid"]))

    async def collection_tilejson(self, request: Request) -> JSONResponse:
        """``/collections/{id}/tiles/{tms}/tilejson.json``"""
        return await self._tilejson(request, self.spec.collection(request.path_params["cid"]))

    async def themes(self, request: Request) -> JSONResponse:
        """``/tiles``: the themed tilesets."""
        root = str(request.base_url).rstrip("/")
        return JSONResponse({"themes": [
            {"id": t.id, "title": dict(t.title), "layers": [lyr.id for lyr in t.layers],
             "links": [{"rel": "self", "href": f"{root}/tiles/{t.id}"}]}
            for t in self.spec.themes.values()]})

    async def theme_tilesets(self, request: Request) -> JSONResponse:
        """``/tiles/{theme}``"""
        return self._tilesets(request, self.spec.theme(request.path_params["theme"]))

    async def theme_tileset(self, request: Request) -> JSONResponse:
        """``/tiles/{theme}/{tms}``"""
        return await self._tileset(request, self.spec.theme(request.path_params["theme"]))

    async def theme_tilejson(self, request: Request) -> JSONResponse:
        """``/tiles/{theme}/{tms}/tilejson.json``"""
        return await self._tilejson(request, self.spec.theme(request.path_params["theme"]))

    async def matrix_sets(self, request: Request) -> JSONResponse:
        """``/tileMatrixSets``"""
        root = str(request.base_url).rstrip("/")
        return JSONResponse({"tileMatrixSets": [
            {"id": t, "title": tmslib.get_tms(t).title, "uri": tmslib.get_tms(t).uri,
             "links": [{"rel": "self", "type": "application/json",
                        "href": f"{root}/tileMatrixSets/{t}"}]}
            for t in tmslib.TMS_IDS]})

    async def matrix_set(self, request: Request) -> JSONResponse:
        """``/tileMatrixSets/{tms}``"""
        return JSONResponse(tmslib.tms_document(request.path_params["tms"]))

    def routes(self) -> list[Route]:
        """The tile routes, to be placed before pygeoapi's mount."""
        tile = "/{tms}/{z}/{y}/{x}"
        return [
            Route("/tileMatrixSets", self.matrix_sets),
            Route("/tileMatrixSets/{tms}", self.matrix_set),
            Route("/collections/{cid}/tiles", self.collection_tilesets),
            Route("/collections/{cid}/tiles/{tms}", self.collection_tileset),
            Route("/collections/{cid}/tiles/{tms}/tilejson.json", self.collection_tilejson),
            Route("/collections/{cid}/tiles" + tile, self.collection_tile),
            Route("/tiles", self.themes),
            Route("/tiles/{theme}", self.theme_tilesets),
            Route("/tiles/{theme}/{tms}", self.theme_tileset),
            Route("/tiles/{theme}/{tms}/tilejson.json", self.theme_tilejson),
            Route("/tiles/{theme}" + tile, self.theme_tile),
        ]


def _title(layerset: LayerSet) -> str:
    t = layerset.title
    return t.get("en") or next(iter(t.values()), layerset.id)


def _union_bbox(layers: list[LayerSpec]) -> tuple[float, float, float, float]:
    return (min(lyr.bbox[0] for lyr in layers), min(lyr.bbox[1] for lyr in layers),
            max(lyr.bbox[2] for lyr in layers), max(lyr.bbox[3] for lyr in layers))


def _forget(pending: dict[Any, asyncio.Task[Any]], key: Any, task: asyncio.Task[Any]) -> None:
    """Done callback of a shared lookup: drop it from ``pending``, mark its error seen."""
    if pending.get(key) is task:
        del pending[key]
    if not task.cancelled():
        task.exception()


def _matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = {t.strip().removeprefix("W/") for t in header.split(",")}
    return "*" in tags or etag in tags


async def _unless_disconnected(request: Request, work: Awaitable[TileResponse]
                               ) -> TileResponse | None:
    """Await ``work`` unless the client disconnects first (then cancel it)."""
    task = asyncio.ensure_future(work)

    async def gone() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(gone())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    LOGGER.info("tile request %s cancelled: the client went away", request.url.path)
    return None


def create_service(settings: Any) -> TileService:
    """The tile service of an application (:func:`server.app.create_app`)."""
    from spatial.settings import database_conninfo

    return TileService(settings.layers_dir, settings.config_path, database_conninfo)


__all__ = ["TileResponse", "TileService", "create_service"]
