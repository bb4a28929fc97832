"""Coverages: pygeoapi's rasterio provider with onemap's error contract.

:class:`RasterCoverageProvider` is :class:`pygeoapi.provider.rasterio_.RasterioProvider`
with the answers a client can act on where the original answers 500:

* a raster not generated yet (a fresh clone before ``make up``) is a 503
  naming the command that writes it, not a start-up failure; a relative
  ``data`` path is a file of the raster directory (:func:`raster_path`);
* ``bbox-crs`` as an OGC URI or ``EPSG:n`` (the original takes only a bare
  EPSG number), anything else a 400;
* a bbox or subset outside the raster, a subset with one value or with words
  instead of numbers: 400 saying so.
"""

from __future__ import annotations

import logging
import math
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any

from pygeoapi.provider.base import (
    ProviderGenericError,
    ProviderQueryError,
    ProviderTypeError,
)
from pygeoapi.provider.rasterio_ import RasterioProvider

from server.provider import provider_error
from spatial.crs import parse_crs
from spatial.errors import InvalidInputError
from spatial.settings import get_settings

LOGGER = logging.getLogger(__name__)

#: Directory of the rasters (as in :mod:`democity.rasters`).
RASTER_DIR_ENV = "ONEMAP_RASTER_DIR"



class CoverageUnavailableError(ProviderTypeError):
    """The raster file of a coverage does not exist (yet): 503.

    A :class:`~pygeoapi.provider.base.ProviderTypeError` on purpose: that is
    the error pygeoapi steps over when it describes a collection and builds
    OpenAPI ("offers no coverage"), so the collection is still listed and
    described, and only ``/coverage`` answers 503 until the raster exists.
    """

    http_status_code = HTTPStatus.SERVICE_UNAVAILABLE
    ogc_exception_code = "ServiceUnavailable"


def _refused(user_msg: str) -> ProviderGenericError:
    """A 400 with the code every route gives a bad input (spatial.errors.ERROR_ANSWERS)."""
    return provider_error(InvalidInputError(user_msg))


def epsg_code(crs: str | int) -> int:
    """EPSG code of a ``bbox-crs`` value.

    Parameters
    ----------
    crs : str or int
        Anything :func:`spatial.crs.parse_crs` reads to an EPSG code: an EPSG
        number, ``EPSG:n``, an OGC URI or URN, or CRS84 (→ 4326: with
        ``always_xy`` the same numbers).

    Returns
    -------
    int
        The EPSG code.

    Raises
    ------
    ProviderInvalidQueryError (400 ``InvalidParameterValue``, as every route)
        For anything else (400).

    Examples
    --------
    >>> epsg_code("http://www.opengis.net/def/crs/EPSG/0/3857")
    3857
    >>> epsg_code("http://www.opengis.net/def/crs/OGC/1.3/CRS84")
    4326
    """
    try:
        code = parse_crs(crs)
    except (TypeError, ValueError) as exc:
        raise _refused(user_msg=f"bbox-crs: {exc}") from None
    if not isinstance(code, int):  # GCJ-02, BD-09: no EPSG code for rasterio
        raise _refused(
            user_msg=f"bbox-crs must be an EPSG code or OGC CRS URI, got {crs!r}")
    return code


def raster_path(data: str | os.PathLike[str]) -> Path:
    """Where a coverage's raster is: ``data`` if absolute, else in the raster directory.

    The directory is ``$ONEMAP_RASTER_DIR``, else ``<var>/rasters``: the rule of
    :func:`democity.rasters.raster_dir`, which writes them (repeated here
    so serving does not import the generator; a test checks they agree). It is
    read when a provider is built, that is per request, not at start-up.

    Examples
    --------
    >>> str(raster_path("/data/dem.tif"))
    '/data/dem.tif'
    """
    path = Path(data)
    if path.is_absolute():
        return path
    env = os.environ.get(RASTER_DIR_ENV)
    base = Path(env) if env else get_settings().var_dir / "rasters"
    return base / path


class RasterCoverageProvider(RasterioProvider):
    """pygeoapi's rasterio coverage provider, answering bad requests 4xx.

    Parameters
    ----------
    provider_def : dict
        pygeoapi provider definition; ``data`` is the raster's path.

    Raises
    ------
    CoverageUnavailableError
        When the raster does not exist (503, naming ``onemap generate``).
    """

    def __init__(self, provider_def: dict[str, Any]) -> None:
        path = raster_path(provider_def["data"])
        if not path.exists():
            LOGGER.warning("coverage raster %s does not exist", path)
            raise CoverageUnavailableError(
                user_msg=f"the coverage {path.stem!r} has not been generated yet: run "
                         "`onemap generate` (or `make up`) / 栅格数据尚未生成")
        super().__init__({**provider_def, "data": str(path)})

    def query(self, properties: list[str] | None = None, subsets: dict[str, Any] | None = None,
              bbox: list[float] | None = None, bbox_crs: str | int = 4326,
              datetime_: str | None = None, format_: str = "json",
              **kwargs: Any) -> Any:
        """Extract a coverage subset (pygeoapi contract), checking the request first.

        Raises
        ------
        ProviderInvalidQueryError (400 ``InvalidParameterValue``)
            For a bbox or subset that does not select any cell, a subset that
            is not a ``low:high`` pair of numbers, or an unknown ``bbox-crs``.
        """
        subsets = dict(subsets or {})
        axes = (self._coverage_properties["x_axis_label"],
                self._coverage_properties["y_axis_label"])
        for axis in axes:
            if axis in subsets:
                subsets[axis] = self._interval(axis, subsets[axis])
        if len(set(axes) & subsets.keys()) == 1:
            # The original ignores a subset on one axis only: the other spans the raster.
            x0, y0, x1, y1 = self._coverage_properties["bbox"]
            subsets.setdefault(axes[0], [x0, x1])
            subsets.setdefault(axes[1], [y0, y1])
        code = epsg_code(bbox_crs)
        try:
            return super().query(properties=properties or [], subsets=subsets, bbox=bbox or [],
                                 bbox_crs=code, datetime_=datetime_, format_=format_,
                                 **kwargs)
        except ProviderQueryError as exc:
            # rasterio.mask says "Input shapes do not overlap raster."
            if "overlap" in str(exc):
                raise _refused(
                    user_msg="the bbox or subset does not overlap the coverage "
                             f"(its extent: {self._extent()})") from None
            raise

    @staticmethod
    def _interval(axis: str, values: list[Any]) -> list[float]:
        """A subset's values as a ``[low, high]`` pair of finite numbers."""
        try:
            numbers = [float(v) for v in values]
        except (TypeError, ValueError):
            raise _refused(
                user_msg=f"subset {axis} needs numbers, got {values!r}") from None
        if len(numbers) != 2 or not all(math.isfinite(v) for v in numbers):
            raise _refused(
                user_msg=f"subset {axis} needs an interval {axis}(low:high), got {values!r}")
        if numbers[0] > numbers[1]:
            raise _refused(
                user_msg=f"subset {axis}: low exceeds high: {numbers}")
        return numbers

    def _extent(self) -> str:
        b = self._coverage_properties["bbox"]
        return ",".join(f"{v:.6f}" for v in b)
