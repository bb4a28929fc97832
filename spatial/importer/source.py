"""Reading a file with pyogrio, and bringing its coordinates to CGCS2000."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shapely

from spatial.crs import STORAGE_SRID, PlanarTransform, parse_crs, to_storage
from spatial.errors import InvalidInputError
from spatial.importer.mapping import ImportMapping, to_text

#: Default names of the coordinate columns of a CSV file, lower-case.
LON_NAMES = ("lon", "lng", "long", "longitude", "x")
LAT_NAMES = ("lat", "latitude", "y")


@dataclass
class SourceData:
    """What was read from a file.

    Attributes
    ----------
    attributes : pandas.DataFrame
        One row per feature, in file order.
    wkb : list
        WKB of each feature's geometry as read (None when absent).
    geometries : numpy.ndarray
        Parsed shapely geometries in the file's CRS (None when absent or
        unparseable).
    errors : dict
        Row index → why its geometry could not be read.
    crs : str, optional
        The CRS the file declares.
    warnings : list of str
        What the reader (GDAL) warned about, e.g. geometries it could not read.
    """

    attributes: Any
    wkb: list[bytes | None]
    geometries: Any
    errors: dict[int, str]
    crs: str | None
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.attributes)


def read_source(path: str | Path, mapping: ImportMapping) -> SourceData:
    """Read a GIS file (or a CSV with coordinate columns) with pyogrio, an EPANET file with wntr.

    Parameters
    ----------
    path : str or Path
        GeoPackage, GeoJSON, Shapefile, FlatGeobuf or CSV file, or an EPANET
        network (``.inp``, see :mod:`spatial.importer.epanet`).
    mapping : ImportMapping
        For ``source_layer`` (an EPANET file's ``nodes``, ``pipes`` or
        ``valves``: required), ``lon``/``lat`` and ``encoding``.

    Returns
    -------
    SourceData
        Attributes, geometries and per-row geometry errors.

    Raises
    ------
    InvalidInputError
        When the file cannot be read, holds several layers and none was
        chosen, a CSV's coordinate columns cannot be found, or an EPANET
        file's layer is not named or not one of the three.
    """
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"no such file: {p.name}")
    if p.suffix.lower() == ".inp":
        # Imported here: epanet builds on this module's SourceData.
        from spatial.importer.epanet import check_layer_name, read_epanet

        layer_name = check_layer_name(mapping.source_layer, p.name)
        return read_epanet(p, encoding=mapping.encoding).layer(layer_name, p.name)
    layer = mapping.source_layer
    try:
        if layer is None:
            layers = pyogrio.list_layers(p)
            if len(layers) > 1:
                listed = ", ".join(str(n) for n in layers[:, 0])
                raise InvalidInputError(f"{p.name} holds several layers ({listed}); choose one")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            meta, _, geometry, fields = pyogrio.raw.read(
                p, layer=layer, encoding=mapping.encoding
            )
    except (DataSourceError, DataLayerError) as exc:
        raise InvalidInputError(f"cannot read {p.name}: {exc}") from None
    # GDAL says why it gave a feature no geometry only as a warning, not per row.
    reader_warnings = sorted({str(w.message) for w in caught})
    names = [str(name) for name in meta["fields"]]
    attributes = pd.DataFrame(dict(zip(names, fields, strict=True)))
    if not names:
        attributes = pd.DataFrame(index=range(0 if geometry is None else len(geometry)))
    crs = meta.get("crs")
    errors: dict[int, str] = {}
    if geometry is not None:
        wkb: list[bytes | None] = [None if g is None else bytes(g) for g in geometry]
        geoms = shapely.from_wkb(np.array(wkb, dtype=object), on_invalid="ignore")
        for i, (raw, geom) in enumerate(zip(wkb, geoms, strict=True)):
            if raw is not None and geom is None:
                try:
                    shapely.from_wkb(raw)
                    reason = "unparseable geometry"
                except (shapely.errors.GEOSException, ValueError) as exc:
                    reason = f"unparseable geometry: {exc}"
                errors[i] = reason
    else:
        wkb, geoms = _csv_points(attributes, mapping, errors)
    return SourceData(
        attributes, wkb, np.asarray(geoms, dtype=object), errors, crs, reader_warnings
    )


def _csv_points(
    attributes: Any, mapping: ImportMapping, errors: dict[int, str]
) -> tuple[list[bytes | None], Any]:
    """Points from longitude/latitude columns (all None when there are none)."""
    n = len(attributes)
    lower = {str(c).lower(): str(c) for c in attributes.columns}
    lon = mapping.lon or next((lower[c] for c in LON_NAMES if c in lower), None)
    lat = mapping.lat or next((lower[c] for c in LAT_NAMES if c in lower), None)
    for name, col in (("lon", mapping.lon), ("lat", mapping.lat)):
        if col is not None and col not in attributes.columns:
            raise InvalidInputError(
                f"no {name} column {col!r}; columns are {', '.join(map(str, attributes.columns))}"
            )
    if lon is None or lat is None:
        return [None] * n, np.full(n, None, dtype=object)
    x = pd.to_numeric(attributes[lon], errors="coerce").to_numpy(dtype=float)
    y = pd.to_numeric(attributes[lat], errors="coerce").to_numpy(dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    geoms = np.full(n, None, dtype=object)
    geoms[ok] = shapely.points(x[ok], y[ok])
    for i in np.flatnonzero(~ok):
        lx, ly = to_text(attributes[lon].iat[i]), to_text(attributes[lat].iat[i])
        errors[int(i)] = (
            "no coordinates" if lx is None and ly is None
            else f"unparseable coordinates {lon}={lx!r} {lat}={ly!r}"
        )
    wkb = [None if g is None else shapely.to_wkb(g) for g in geoms]
    return wkb, geoms


# ---------------------------------------------------------------------------
# Coordinates
# ---------------------------------------------------------------------------


def storage_transformer(
    source_crs: str | int | None, local: PlanarTransform | None = None
) -> tuple[Callable[[Any], Any], str]:
    """Return a function taking ``(n, 2)`` source coordinates to CGCS2000 lon/lat.

    Parameters
    ----------
    source_crs : str or int
        EPSG code, ``gcj02``, ``bd09``, an OGC URI, or any CRS pyproj reads
        (those outside :data:`spatial.crs.SUPPORTED_EPSG` go through WGS 84,
        numerically identical to CGCS2000).
    local : PlanarTransform, optional
        Applied first (local grid → `source_crs`).

    Returns
    -------
    function, str
        The coordinate function (for :func:`shapely.transform`) and the CRS's
        name as reported.

    Raises
    ------
    InvalidInputError
        When `source_crs` is None or unknown.

    Examples
    --------
    >>> fn, name = storage_transformer("gcj02")
    >>> xy = fn(np.array([[116.410244, 39.916404]]))
    >>> name, [round(float(v), 5) for v in xy[0]]
    ('gcj02', [116.404, 39.915])
    """
    if source_crs is None:
        raise InvalidInputError(
            "the file declares no CRS: give the source CRS (an EPSG code, gcj02 or bd09)"
        )
    target: int | str | None
    try:
        target = parse_crs(source_crs)
    except (TypeError, ValueError):
        target = None
    if target is not None:
        name = target if isinstance(target, str) else f"EPSG:{target}"

        def project(x: Any, y: Any) -> tuple[Any, Any]:
            return (x, y) if target == STORAGE_SRID else to_storage(x, y, target)

    else:
        import pyproj

        try:
            crs = pyproj.CRS.from_user_input(source_crs)
        except pyproj.exceptions.CRSError as exc:
            raise InvalidInputError(f"unknown source CRS {source_crs!r}: {exc}") from None
        epsg = crs.to_epsg()
        name = f"EPSG:{epsg}" if epsg else (crs.name or str(source_crs))
        transformer = pyproj.Transformer.from_crs(crs, 4326, always_xy=True)

        def project(x: Any, y: Any) -> tuple[Any, Any]:
            return transformer.transform(x, y)

    def apply(coords: Any) -> Any:
        x, y = coords[:, 0], coords[:, 1]
        if local is not None:
            x, y = local.apply(x, y)
        lon, lat = project(np.asarray(x, dtype=float), np.asarray(y, dtype=float))
        return np.column_stack([lon, lat])

    if local is not None:
        name = f"local grid → {name}"
    return apply, name

