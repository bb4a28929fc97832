"""The tile cache: memory LRU within a byte budget, disk for the base map.

A tile is cached under :class:`TileKey` — layer set, matrix set, tile,
*scope class*, ``datetime`` filter and data version — as gzip bytes
compressed once, with a strong ``ETag`` (a digest of the uncompressed MVT,
so a re-render of unchanged data keeps its ETag).

- Memory: an LRU bounded in bytes (``ONEMAP_TILE_CACHE_MB``, default 256 MB
  per worker process).
- Disk: tiles of the layer sets in ``disk_layersets`` (the ``base`` theme)
  seen by everyone (scope class ``"all"``) are also written under
  ``var/tiles/<database>/`` (``ONEMAP_TILE_CACHE_DIR``) with atomic renames,
  so they survive restarts and are shared by the worker processes. Nothing
  scoped or personal is ever written to disk.
- Single flight: concurrent requests for one key share one render, across
  event loops and threads.
- Freshness: :meth:`TileCache.invalidate` drops the tiles of some layer sets
  whose bounds (plus an edge margin for the MVT buffer) intersect a lon/lat
  box, at every zoom, in memory and on disk; it is called by
  :mod:`tiles.freshness` on every ``onemap_tiles`` notification. It also
  bumps the cache's data version: a render that started before an
  invalidation touching its tile is answered but not stored, so a tile drawn
  from pre-edit rows is never cached as fresh.

The scope class (:func:`scope_class`) keeps tiles from crossing callers who
may see different rows or fields: ``"all"`` for a layer set whose every
table is public and unmasked, otherwise a digest of what the database says
the caller may see (roles, ``onemap.personal_access()``,
``onemap.scope_grids()`` and the community/street scopes, and the user id
where a policy looks at it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psycopg
from psycopg.rows import dict_row

from spatial.access import Principal
from tiles.render import fetch_row

LOGGER = logging.getLogger(__name__)

#: Default memory budget per worker process, in MB (``ONEMAP_TILE_CACHE_MB``).
DEFAULT_BUDGET_MB = 256

#: Seconds a principal's scope class is reused (``ONEMAP_TILE_SCOPE_TTL``).
DEFAULT_SCOPE_TTL = 5.0

#: Tiles whose bounds, grown by this fraction of a tile on every side, meet a
#: changed box are dropped: features within the MVT buffer (256/4096 = 1/16)
#: of a neighbouring tile are drawn in it too.
EDGE_MARGIN = 0.125

#: Layer sets written to disk as well (the base map).
DISK_LAYERSETS = frozenset({"base"})

#: Bookkeeping per cached tile beyond its bytes (key, entry, index), for the budget.
ENTRY_OVERHEAD = 400

_SAFE = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
_GZIP_LEVEL = 6


class RenderedTile(Protocol):
    """What a renderer returns (:func:`tiles.render.render`)."""

    @property
    def data(self) -> bytes: ...  # uncompressed MVT

    @property
    def truncated(self) -> tuple[str, ...]: ...

    @property
    def layers(self) -> tuple[str, ...]: ...


@dataclass(frozen=True)
class TileKey:
    """Everything a cached tile depends on.

    Attributes
    ----------
    layerset : str
        A theme id or a collection id.
    tms : str
        Tile matrix set id.
    z, x, y : int
        Level, column, row.
    scope_class : str
        ``"all"`` or the caller's scope digest (:func:`scope_class`).
    datetime : str or None
        The normalised ``datetime=`` filter.
    data_version : str
        What the serving path adds to make old entries unreachable (for
        instance a digest of the tile configuration).
    """

    layerset: str
    tms: str
    z: int
    x: int
    y: int
    scope_class: str = "all"
    datetime: str | None = None
    data_version: str = ""


@dataclass(frozen=True)
class CachedTile:
    """A tile as served: gzip bytes, a strong ETag, what was capped.

    Attributes
    ----------
    gzip : bytes
        The MVT, gzip-compressed once.
    etag : str
        Strong entity tag, quoted: a digest of the uncompressed MVT.
    truncated : tuple of str
        Layers that hit their feature cap.
    layers : tuple of str
        Layers in the tile.
    raw_size : int
        Length of the uncompressed MVT.
    """

    gzip: bytes
    etag: str
    truncated: tuple[str, ...] = ()
    layers: tuple[str, ...] = ()
    raw_size: int = 0

    @property
    def data(self) -> bytes:
        """The uncompressed MVT (for clients that do not accept gzip)."""
        return gzip.decompress(self.gzip) if self.gzip else b""

    @property
    def size(self) -> int:
        """Bytes counted against the memory budget."""
        return len(self.gzip) + ENTRY_OVERHEAD

    @classmethod
    def from_rendered(cls, rendered: RenderedTile) -> CachedTile:
        """Compress a rendered tile and compute its ETag.

        Examples
        --------
        >>> from types import SimpleNamespace
        >>> t = CachedTile.from_rendered(SimpleNamespace(data=b"abc", truncated=(), layers=()))
        >>> t.data, t.etag == CachedTile.from_rendered(
        ...     SimpleNamespace(data=b"abc", truncated=(), layers=())).etag
        (b'abc', True)
        """
        data = bytes(rendered.data)
        digest = hashlib.blake2b(data, digest_size=16).hexdigest()
        return cls(
            gzip=gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0) if data else b"",
            etag=f'"{digest}"',
            truncated=tuple(rendered.truncated),
            layers=tuple(rendered.layers),
            raw_size=len(data),
        )


class _AbandonedError(Exception):
    """The request rendering a shared tile went away; a waiter renders instead."""


@dataclass
class _Change:
    version: int
    layersets: frozenset[str]
    bbox: tuple[float, float, float, float] | None  # None: everywhere


@dataclass
class CacheStats:
    """Counters (read by tests and /metrics-style reporting)."""

    hits: int = 0
    disk_hits: int = 0
    misses: int = 0
    renders: int = 0
    shared: int = 0
    stale_not_stored: int = 0
    evictions: int = 0
    invalidated: int = 0
    extra: dict[str, int] = field(default_factory=dict)


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None


class TileCache:
    """Memory LRU plus disk cache with single flight and region invalidation.

    Parameters
    ----------
    budget_bytes : int, optional
        Memory budget; default ``ONEMAP_TILE_CACHE_MB`` (256) MB.
    disk_dir : Path, optional
        Where disk tiles go. Default: ``ONEMAP_TILE_CACHE_DIR`` or
        ``var/tiles``, then a sub-directory per database (found on first use),
        so two databases never share tiles.
    disk_layersets : collection of str
        Layer sets also cached on disk (scope class ``"all"`` only).
    layersets : mapping, optional
        Layer set id → collection ids; :mod:`tiles.freshness` needs it to know
        which sets a changed table belongs to (see :meth:`set_layersets`).

    Examples
    --------
    >>> import asyncio
    >>> from types import SimpleNamespace
    >>> cache = TileCache(budget_bytes=1 << 20, disk_layersets=())
    >>> async def render():
    ...     return SimpleNamespace(data=b"mvt", truncated=(), layers=("lamp",))
    >>> key = TileKey("lighting", "WebMercatorQuad", 16, 53956, 24829)
    >>> tile = asyncio.run(cache.get_or_render(key, render))
    >>> tile.data, key in cache
    (b'mvt', True)
    """

    def __init__(
        self,
        *,
        budget_bytes: int | None = None,
        disk_dir: Path | None = None,
        disk_layersets: Collection[str] = DISK_LAYERSETS,
        layersets: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        if budget_bytes is None:
            budget_bytes = int(_env_number("ONEMAP_TILE_CACHE_MB", DEFAULT_BUDGET_MB) * 2**20)
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be >= 0, got {budget_bytes!r}")
        self.budget_bytes = budget_bytes
        self.disk_layersets = frozenset(disk_layersets)
        self._disk_dir = disk_dir
        self._lock = threading.RLock()
        self._memory: OrderedDict[TileKey, CachedTile] = OrderedDict()
        self._bytes = 0
        # (layerset, tms, z) -> (x, y) -> keys: invalidation walks only the
        # tiles under a changed box.
        self._index: dict[tuple[str, str, int], dict[tuple[int, int], set[TileKey]]] = {}
        self._inflight: dict[TileKey, concurrent.futures.Future[CachedTile]] = {}
        self._version = 0
        self._changes: deque[_Change] = deque(maxlen=4096)
        # Held while a disk file is renamed into place and while files are
        # dropped, so a drop never slips between a writer's check and rename.
        self._disk_lock = threading.Lock()
        self.layersets: dict[str, frozenset[str]] = {}
        if layersets is not None:
            self.set_layersets(layersets)
        self.stats = CacheStats()

    # -- configuration -------------------------------------------------------

    def set_layersets(self, layersets: Mapping[str, Iterable[str]]) -> None:
        """Tell the cache which collections each layer set draws.

        Parameters
        ----------
        layersets : mapping
            Layer set id (theme or collection id) → collection ids. A
            collection id is also a layer set of its own.
        """
        with self._lock:
            self.layersets = {k: frozenset(v) for k, v in layersets.items()}

    def disk_root(self) -> Path | None:
        """The disk cache's directory (found on first use), or None without disk layer sets."""
        if not self.disk_layersets:
            return None
        return self._disk_root()

    @property
    def data_version(self) -> int:
        """Bumped by every invalidation (renders started before one are not stored)."""
        return self._version

    @property
    def bytes_used(self) -> int:
        """Bytes held in memory, counted as the budget counts them."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._memory)

    def __contains__(self, key: object) -> bool:
        return key in self._memory

    # -- reading -------------------------------------------------------------

    def get(self, key: TileKey) -> CachedTile | None:
        """The tile held in memory for ``key`` (marked recently used), if any."""
        with self._lock:
            tile = self._memory.get(key)
            if tile is not None:
                self._memory.move_to_end(key)
            return tile

    async def get_or_render(
        self, key: TileKey, render: Callable[[], Awaitable[RenderedTile]]
    ) -> CachedTile:
        """The cached tile for ``key``, rendering it once if needed.

        Concurrent calls for one key (in any thread or event loop of the
        process) share a single call of ``render``. When the caller that
        renders is cancelled (its client went away), one of the waiters
        renders instead.

        Parameters
        ----------
        key : TileKey
            The tile.
        render : callable
            Coroutine function returning a :class:`RenderedTile`.

        Returns
        -------
        CachedTile
            The tile; stored in memory (and on disk for the base map) unless
            an invalidation touching it arrived while it rendered.
        """
        while True:
            tile = self.get(key)
            if tile is not None:
                self.stats.hits += 1
                return tile
            if self._on_disk(key):
                before = self._version
                tile = await asyncio.to_thread(self._read_disk, key)
                if tile is not None:
                    self.stats.disk_hits += 1
                    self._store_if_fresh(key, tile, before)
                    return tile
            with self._lock:
                shared = self._inflight.get(key)
                if shared is None:
                    mine: concurrent.futures.Future[CachedTile] = concurrent.futures.Future()
                    self._inflight[key] = mine
                    started = self._version
            if shared is not None:
                self.stats.shared += 1
                try:
                    # shield: a waiter going away must not cancel the shared render
                    return await asyncio.shield(asyncio.wrap_future(shared))
                except _AbandonedError:
                    continue
            return await self._render(key, render, mine, started)

    async def _render(
        self,
        key: TileKey,
        render: Callable[[], Awaitable[RenderedTile]],
        mine: concurrent.futures.Future[CachedTile],
        started: int,
    ) -> CachedTile:
        self.stats.misses += 1
        try:
            self.stats.renders += 1
            rendered = await render()
            raw = len(rendered.data)
            if raw > 256 * 1024:
                tile = await asyncio.to_thread(CachedTile.from_rendered, rendered)
            else:
                tile = CachedTile.from_rendered(rendered)
        except asyncio.CancelledError:
            self._finish(key, mine, exc=_AbandonedError())
            raise
        except BaseException as exc:
            self._finish(key, mine, exc=exc)
            raise
        if not self._store_if_fresh(key, tile, started):
            self.stats.stale_not_stored += 1
            LOGGER.debug("tile %s changed while rendering; not stored", key)
        elif self._on_disk(key):
            try:
                await asyncio.to_thread(self._write_disk, key, tile, started)
            except OSError as exc:
                LOGGER.warning("could not write a tile to the disk cache: %s", exc)
        self._finish(key, mine, result=tile)
        return tile

    def _finish(
        self,
        key: TileKey,
        fut: concurrent.futures.Future[CachedTile],
        *,
        result: CachedTile | None = None,
        exc: BaseException | None = None,
    ) -> None:
        with self._lock:
            if self._inflight.get(key) is fut:
                del self._inflight[key]
        if exc is not None:
            fut.set_exception(exc)
            fut.exception()  # marks it retrieved: no "never retrieved" warning
        else:
            fut.set_result(result)  # type: ignore[arg-type]

    # -- memory --------------------------------------------------------------

    def _store_if_fresh(self, key: TileKey, tile: CachedTile, started: int) -> bool:
        # One critical section with invalidate(): no drop can fall between
        # the check and the store.
        with self._lock:
            if self._changed_since(key, started):
                return False
            self._store_memory(key, tile)
            return True

    def _store_memory(self, key: TileKey, tile: CachedTile) -> None:
        if tile.size > self.budget_bytes:
            return
        with self._lock:
            old = self._memory.pop(key, None)
            if old is not None:
                self._bytes -= old.size
            self._memory[key] = tile
            self._bytes += tile.size
            cell = self._index.setdefault((key.layerset, key.tms, key.z), {})
            cell.setdefault((key.x, key.y), set()).add(key)
            while self._bytes > self.budget_bytes and self._memory:
                victim, gone = self._memory.popitem(last=False)
                self._bytes -= gone.size
                self._unindex(victim)
                self.stats.evictions += 1

    def _unindex(self, key: TileKey) -> None:
        level = self._index.get((key.layerset, key.tms, key.z))
        if level is None:
            return
        keys = level.get((key.x, key.y))
        if keys is not None:
            keys.discard(key)
            if not keys:
                del level[(key.x, key.y)]
        if not level:
            del self._index[(key.layerset, key.tms, key.z)]

    def _drop_memory(self, key: TileKey) -> None:
        tile = self._memory.pop(key, None)
        if tile is not None:
            self._bytes -= tile.size
            self._unindex(key)
            self.stats.invalidated += 1

    def clear(self) -> None:
        """Forget every tile (memory and disk) and bump the data version."""
        with self._lock:
            self._memory.clear()
            self._index.clear()
            self._bytes = 0
            self._version += 1
            self._changes.append(_Change(self._version, frozenset(self.layersets) | {"*"}, None))
        root = self._disk_root(create=False)
        if root is not None and root.exists():
            _remove_tree(root)

    # -- invalidation --------------------------------------------------------

    def invalidate(
        self,
        layersets: Iterable[str],
        bbox: tuple[float, float, float, float] | None,
    ) -> int:
        """Drop the tiles of some layer sets that a changed box touches.

        Parameters
        ----------
        layersets : iterable of str
            The layer sets drawing the changed table.
        bbox : tuple of float or None
            ``(minlon, minlat, maxlon, maxlat)`` in EPSG:4490; None drops
            every tile of those sets.

        Returns
        -------
        int
            Tiles dropped from memory (disk files are dropped too).
        """
        sets = frozenset(layersets)
        if not sets:
            return 0
        dropped = 0
        with self._lock:
            self._version += 1
            self._changes.append(_Change(self._version, sets, bbox))
            for (layerset, tms, z), level in list(self._index.items()):
                if layerset not in sets:
                    continue
                if bbox is None:
                    victims = [k for keys in level.values() for k in keys]
                else:
                    victims = _keys_under(level, tms, z, bbox)
                for key in victims:
                    self._drop_memory(key)
                    dropped += 1
        with self._disk_lock:
            for layerset in sets & self.disk_layersets:
                self._invalidate_disk(layerset, bbox)
        if dropped:
            LOGGER.debug("dropped %d cached tiles of %s", dropped, sorted(sets))
        return dropped

    def _changed_since(self, key: TileKey, started: int) -> bool:
        with self._lock:
            if self._version == started:
                return False
            if not self._changes or self._changes[0].version > started + 1:
                return True  # the log no longer reaches back: assume changed
            for change in self._changes:
                if change.version <= started:
                    continue
                if ("*" in change.layersets or key.layerset in change.layersets) and (
                        change.bbox is None
                        or _touches(key.tms, key.z, key.x, key.y, change.bbox)):
                    return True
            return False

    # -- disk ----------------------------------------------------------------

    def _on_disk(self, key: TileKey) -> bool:
        return key.layerset in self.disk_layersets and key.scope_class == "all"

    def _disk_root(self, *, create: bool = True) -> Path | None:
        if self._disk_dir is None:
            if not create:
                return None
            self._disk_dir = default_disk_dir()
        return self._disk_dir

    def _disk_path(self, key: TileKey) -> Path | None:
        if not all(_SAFE.match(p) for p in (key.layerset, key.tms, key.scope_class)):
            return None
        root = self._disk_root()
        if root is None:
            return None
        variant = hashlib.blake2b(
            json.dumps([key.datetime, key.data_version]).encode(), digest_size=8
        ).hexdigest()
        return (root / key.layerset / key.tms / str(key.z) / str(key.x) / str(key.y)
                / f"{key.scope_class}~{variant}.tile")

    def _read_disk(self, key: TileKey) -> CachedTile | None:
        path = self._disk_path(key)
        if path is None:
            return None
        try:
            blob = path.read_bytes()
        except OSError:
            return None
        head, sep, body = blob.partition(b"\n")
        if not sep:
            return None
        try:
            meta = json.loads(head)
            return CachedTile(gzip=body, etag=meta["etag"], truncated=tuple(meta["truncated"]),
                              layers=tuple(meta["layers"]), raw_size=int(meta["raw_size"]))
        except (ValueError, KeyError, TypeError):
            LOGGER.warning("ignoring a damaged disk tile %s", path.name)
            return None

    def _write_disk(self, key: TileKey, tile: CachedTile, started: int) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = json.dumps({"etag": tile.etag, "truncated": list(tile.truncated),
                           "layers": list(tile.layers), "raw_size": tile.raw_size})
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(meta.encode() + b"\n" + tile.gzip)
            with self._disk_lock:
                # An invalidation may have run while we wrote: then drop our file.
                if self._changed_since(key, started):
                    os.unlink(tmp)
                    return
                os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _invalidate_disk(self, layerset: str, bbox: tuple[float, float, float, float] | None
                         ) -> None:
        root = self._disk_root(create=False)
        if root is None or not _SAFE.match(layerset):
            return
        base = root / layerset
        if not base.is_dir():
            return
        if bbox is None:
            _remove_tree(base)
            return
        for tms_dir in _subdirs(base):
            for z_dir in _subdirs(tms_dir):
                try:
                    z = int(z_dir.name)
                    (x0, x1), (y0, y1) = _tile_range(tms_dir.name, z, bbox)
                except (ValueError, LookupError):
                    continue
                for x_dir in _subdirs(z_dir):
                    if not (x_dir.name.isdigit() and x0 <= int(x_dir.name) <= x1):
                        continue
                    for y_dir in _subdirs(x_dir):
                        if not (y_dir.name.isdigit() and y0 <= int(y_dir.name) <= y1):
                            continue
                        for f in _files(y_dir):
                            with contextlib.suppress(FileNotFoundError):
                                f.unlink()


# -- tile arithmetic ----------------------------------------------------------

_Range = tuple[tuple[int, int], tuple[int, int]]
_range_cache: dict[tuple[str, int], tuple[float, float, float, float, int, int]] = {}


def _level_geometry(tms_id: str, z: int) -> tuple[float, float, float, float, int, int]:
    """Origin (left, top), tile width and height in the set's CRS, matrix size."""
    found = _range_cache.get((tms_id, z))
    if found is None:
        from tiles.tms import get_tms, tile_bounds

        b = tile_bounds(tms_id, z, 0, 0)
        matrix = get_tms(tms_id).matrix(z)
        found = (b.minx, b.maxy, b.maxx - b.minx, b.maxy - b.miny,
                 matrix.matrixWidth, matrix.matrixHeight)
        _range_cache[(tms_id, z)] = found
    return found


def _to_crs(tms_id: str, lon: float, lat: float) -> tuple[float, float]:
    if tms_id == "WebMercatorQuad":
        import math

        lat = max(min(lat, 85.0511287798066), -85.0511287798066)
        r = 6378137.0
        return (r * math.radians(lon),
                r * math.log(math.tan(math.pi / 4 + math.radians(lat) / 2)))
    return lon, lat


def _tile_range(tms_id: str, z: int, bbox: tuple[float, float, float, float],
                margin: float = EDGE_MARGIN) -> _Range:
    """Columns and rows (inclusive) of the tiles within ``margin`` tiles of a lon/lat box.

    Examples
    --------
    Level 1 of WorldCRS84Quad has 4 × 2 tiles of 90°; a point 1° east of the
    meridian is within the margin (1/8 tile) of the tile west of it:

    >>> _tile_range("WorldCRS84Quad", 1, (45.0, 45.0, 45.0, 45.0))
    ((2, 2), (0, 0))
    >>> _tile_range("WorldCRS84Quad", 1, (1.0, 45.0, 1.0, 45.0))
    ((1, 2), (0, 0))
    """
    import math

    left, top, w, h, cols, rows = _level_geometry(tms_id, z)
    x0, y0 = _to_crs(tms_id, bbox[0], bbox[1])
    x1, y1 = _to_crs(tms_id, bbox[2], bbox[3])
    c0 = max(0, math.floor((x0 - left) / w - margin))
    c1 = min(cols - 1, math.floor((x1 - left) / w + margin))
    r0 = max(0, math.floor((top - y1) / h - margin))
    r1 = min(rows - 1, math.floor((top - y0) / h + margin))
    return (c0, c1), (r0, r1)


def _touches(tms_id: str, z: int, x: int, y: int,
             bbox: tuple[float, float, float, float]) -> bool:
    try:
        (c0, c1), (r0, r1) = _tile_range(tms_id, z, bbox)
    except (ValueError, LookupError):
        return True  # unknown set or level: be safe
    return c0 <= x <= c1 and r0 <= y <= r1


def _keys_under(level: dict[tuple[int, int], set[TileKey]], tms_id: str, z: int,
                bbox: tuple[float, float, float, float]) -> list[TileKey]:
    try:
        (c0, c1), (r0, r1) = _tile_range(tms_id, z, bbox)
    except (ValueError, LookupError):
        return [k for keys in level.values() for k in keys]
    if (c1 - c0 + 1) * (r1 - r0 + 1) < len(level):
        cells = ((x, y) for x in range(c0, c1 + 1) for y in range(r0, r1 + 1))
        return [k for cell in cells for k in level.get(cell, ())]
    return [k for (x, y), keys in level.items()
            if c0 <= x <= c1 and r0 <= y <= r1 for k in keys]


# -- disk helpers -------------------------------------------------------------

def _subdirs(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _files(path: Path) -> list[Path]:
    try:
        return [Path(e.path) for e in os.scandir(path) if e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _remove_tree(path: Path) -> None:
    """Remove a directory at once for readers: rename aside, then delete."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}-{time.monotonic_ns()}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def database_tag(conn: psycopg.Connection[Any]) -> str:
    """A short name of the database for the disk cache's directory.

    The database's name and oid: a database dropped and created again under
    the same name gets a new oid, so it never reads the old one's tiles.
    """
    with conn.cursor() as cur:
        cur.execute("SELECT current_database(), oid FROM pg_database "
                    "WHERE datname = current_database()")
        row = cur.fetchone()
    values = list(row.values()) if isinstance(row, dict) else list(row or ())
    name = re.sub(r"[^A-Za-z0-9_-]", "_", str(values[0]))[:40]
    return f"{name}-{values[1]}"


def default_disk_dir() -> Path:
    """``ONEMAP_TILE_CACHE_DIR`` or ``var/tiles``, plus the database's tag."""
    from spatial.db import connect
    from spatial.settings import get_settings

    root = Path(os.environ.get("ONEMAP_TILE_CACHE_DIR") or get_settings().var_dir / "tiles")
    with connect() as conn:
        return root / database_tag(conn)


# -- scope classes --------------------------------------------------------------

_scope_cache: dict[tuple[Any, ...], tuple[float, dict[str, Any]]] = {}
_tables_cache: dict[tuple[Any, ...], tuple[bool, bool]] = {}
_scope_lock = threading.Lock()

_CALLER_SQL = """
SELECT onemap.request_roles() AS roles,
       onemap.personal_access() AS personal,
       onemap.scope_grids() AS grids,
       onemap.scope_communities() AS communities,
       onemap.scope_streets() AS streets,
       onemap.request_user_id() AS user_id
"""

# Per table set (150_tiles.sql): is every table public with an unmasked
# view, and does a read policy look at the caller's own id?
_TABLES_SQL = """
SELECT shared AS public, per_user FROM onemap.tile_tables_class(%(tables)s::text[])
"""


def _db_ident(conn: Any) -> tuple[Any, ...]:
    info = conn.info
    return (info.host, info.port, info.dbname)


def _class_of(caller: dict[str, Any], public: bool, per_user: bool) -> str:
    if public:
        return "all"
    facts = {
        "roles": sorted(caller.get("roles") or []),
        "personal": caller.get("personal"),
        "grids": sorted(caller.get("grids") or []),
        "communities": sorted(caller.get("communities") or []),
        "streets": sorted(caller.get("streets") or []),
        # staff also see the events they reported or were assigned
        "user": caller.get("user_id") if per_user and caller.get("personal") == "full" else None,
    }
    digest = hashlib.blake2b(json.dumps(facts, sort_keys=True, default=str).encode(),
                             digest_size=10).hexdigest()
    return f"s{digest}"


def _scope_key(conn: Any, principal: Principal) -> tuple[Any, ...]:
    return (_db_ident(conn), principal.user_id, principal.roles, principal.api_key_id)


def scope_class(conn: psycopg.Connection[Any], principal: Principal,
                tables: Iterable[str]) -> str:
    """The caller's scope class for a layer set drawing ``tables``.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection inside :func:`spatial.access.request_connection` (after
        :func:`~spatial.access.apply_principal`), so the functions answer for
        the caller.
    principal : Principal
        The caller (the cache key of the few-second reuse).
    tables : iterable of str
        The base tables the layer set reads (``onemap.layer_access`` names):
        :attr:`tiles.spec.LayerSet.tables`, each layer's own table and the
        tables it declares under ``reads`` in ``layers/tiles.yml``.

    Returns
    -------
    str
        ``"all"`` when every table is public and unmasked (everyone gets the
        same tile); else ``"s"`` + a digest of the caller's roles, personal
        data access and data scope.
    """
    names = sorted(set(tables))
    tkey = (_db_ident(conn), tuple(names))
    flags = _tables_cache.get(tkey)
    if flags is None:
        with conn.cursor() as cur:
            cur.execute(_TABLES_SQL, {"tables": names})
            row = _row_dict_sync(cur.fetchone(), cur)
        flags = (bool(row.get("public")), bool(row.get("per_user")))
        _tables_cache[tkey] = flags
    if flags[0]:
        return "all"
    key = _scope_key(conn, principal)
    now = time.monotonic()
    with _scope_lock:
        hit = _scope_cache.get(key)
    if hit is None or hit[0] < now:
        with conn.cursor() as cur:
            cur.execute(_CALLER_SQL)
            caller = _row_dict_sync(cur.fetchone(), cur)
        ttl = _env_number("ONEMAP_TILE_SCOPE_TTL", DEFAULT_SCOPE_TTL)
        with _scope_lock:
            _scope_cache[key] = (now + ttl, caller)
            if len(_scope_cache) > 10000:
                for k in [k for k, (t, _) in _scope_cache.items() if t < now]:
                    del _scope_cache[k]
    else:
        caller = hit[1]
    return _class_of(caller, *flags)


async def scope_class_async(conn: psycopg.AsyncConnection[Any], principal: Principal,
                            tables: Iterable[str]) -> str:
    """:func:`scope_class` on an asynchronous connection (the renderer's pool)."""
    names = sorted(set(tables))
    tkey = (_db_ident(conn), tuple(names))
    flags = _tables_cache.get(tkey)
    if flags is None:
        shared, per_user = await fetch_row(conn, _TABLES_SQL, {"tables": names}) or (0, 0)
        flags = (bool(shared), bool(per_user))
        _tables_cache[tkey] = flags
    if flags[0]:
        return "all"
    key = _scope_key(conn, principal)
    now = time.monotonic()
    with _scope_lock:
        hit = _scope_cache.get(key)
    if hit is None or hit[0] < now:
        caller = await fetch_row(conn, _CALLER_SQL, row_factory=dict_row) or {}
        ttl = _env_number("ONEMAP_TILE_SCOPE_TTL", DEFAULT_SCOPE_TTL)
        with _scope_lock:
            _scope_cache[key] = (now + ttl, caller)
    else:
        caller = hit[1]
    return _class_of(caller, *flags)


def _row_dict_sync(row: Any, cur: Any) -> dict[str, Any]:
    if row is None:
        return {}
    if isinstance(row, dict):
        return row
    return {d.name: v for d, v in zip(cur.description, row, strict=True)}


def clear_scope_cache() -> None:
    """Forget cached scope classes (tests; after changing a user's scope)."""
    with _scope_lock:
        _scope_cache.clear()
        _tables_cache.clear()
