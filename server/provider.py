"""pygeoapi feature provider on psycopg 3, reading the application schema.

Configured in ``pygeoapi-config.yml`` by dotted path::

    providers:
      - type: feature
        name: server.provider.PostGISProvider
        data: {table: building}          # the view layers.building
        id_field: id
        storage_crs: http://www.opengis.net/def/crs/EPSG/0/4490

The provider only adapts: it turns pygeoapi's arguments into a
:class:`spatial.features.FeatureQuery`, runs it as the request's principal
(:func:`spatial.access.request_connection`: row-level security and masking
apply) against the layer's published view in schema ``layers`` (``data.schema``
overrides), and maps onemap errors to pygeoapi's provider errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http import HTTPStatus
from typing import Any, TypeVar

import psycopg
from pygeoapi.crs import DEFAULT_STORAGE_CRS
from pygeoapi.provider.base import (
    BaseProvider,
    ProviderConnectionError,
    ProviderGenericError,
    ProviderInvalidQueryError,
    ProviderItemNotFoundError,
)
from pygeofilter import ast

from server import etag
from spatial.access import check_can_read, current_principal, request_connection
from spatial.catalog import LAYERS_SCHEMA, get_table
from spatial.cql import parse_filter
from spatial.crs import crs_axes
from spatial.db import get_pool
from spatial.editing import create_feature, delete_feature, feature_etag, update_feature
from spatial.errors import (
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    OnemapError,
    error_answer,
)
from spatial.features import (
    FeatureQuery,
    get_feature,
    parse_text_search,
    query_features,
)
from spatial.params import parse_bbox, parse_datetime

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")


#: pygeoapi's class for each kind of onemap error (pygeoapi itself catches
#: ProviderItemNotFoundError when it checks whether an item exists); the status
#: and code are not the class's but :data:`spatial.errors.ERROR_ANSWERS`'s.
_PYGEOAPI_CLASS: tuple[tuple[type[OnemapError], type[ProviderGenericError]], ...] = (
    (NotFoundError, ProviderItemNotFoundError),
    (InvalidInputError, ProviderInvalidQueryError),
    (DatabaseUnavailableError, ProviderConnectionError),
    (OnemapError, ProviderGenericError),
)
_DATABASE_AWAY = "the database is unavailable; retry shortly / 数据库暂不可用，请稍后重试"


def provider_error(error: OnemapError) -> ProviderGenericError:
    """An onemap error as pygeoapi's provider error, with the one status and code.

    Parameters
    ----------
    error : OnemapError
        The error raised under the provider.

    Returns
    -------
    ProviderGenericError
        pygeoapi answers it with ``http_status_code`` and ``ogc_exception_code``,
        here those of :func:`spatial.errors.error_answer`, and the error's message.

    Examples
    --------
    >>> from spatial.errors import PermissionDeniedError
    >>> e = provider_error(PermissionDeniedError("not yours"))
    >>> int(e.http_status_code), e.ogc_exception_code, e.message
    (403, 'Forbidden', 'not yours')
    """
    base = next(cls for kind, cls in _PYGEOAPI_CLASS if isinstance(error, kind))
    translated = base(user_msg=str(error))
    status, code = error_answer(error)
    translated.http_status_code = HTTPStatus(status)
    translated.ogc_exception_code = code
    return translated


@contextmanager
def _translated() -> Iterator[None]:
    """Map onemap errors to pygeoapi's provider errors (:func:`provider_error`)."""
    try:
        yield
    except OnemapError as exc:
        if isinstance(exc, DatabaseUnavailableError):
            LOGGER.exception("database unavailable")
        raise provider_error(exc) from exc
    except psycopg.OperationalError as exc:
        LOGGER.exception("database unavailable")
        raise provider_error(DatabaseUnavailableError(_DATABASE_AWAY)) from exc
    except psycopg.Error as exc:
        LOGGER.exception("query failed")
        raise ProviderGenericError() from exc


def _northing_first(crs: Any) -> bool:
    """Whether a CRS's first axis is northing (EPSG:4490 and 4326 are lat, lon)."""
    axes = getattr(crs, "axis_info", None) or []
    return bool(axes) and axes[0].direction.lower() in ("north", "south")


class PostGISProvider(BaseProvider):
    """Feature provider for a table or view of the ``onemap`` schema.

    Parameters
    ----------
    provider_def : dict
        pygeoapi provider definition; ``data.table`` names the table.
    """

    def __init__(self, provider_def: dict[str, Any]) -> None:
        super().__init__(provider_def)
        data = provider_def["data"]
        self.table: str = data["table"] if isinstance(data, dict) else str(data)
        self.schema: str = (data.get("schema") if isinstance(data, dict) else None) or LAYERS_SCHEMA
        self.id_field: str = provider_def.get("id_field") or "id"
        self.storage_crs_uri: str = provider_def.get("storage_crs") or DEFAULT_STORAGE_CRS
        with _translated():
            self._fields = self._describe()

    def _run(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        principal = current_principal()
        with _translated(), request_connection(principal) as conn:
            check_can_read(conn, self.table, principal)
            return fn(conn)

    def _describe(self) -> dict[str, dict[str, Any]]:
        # The structure of the view, not its rows: the owner's connection.
        with _translated(), get_pool().connection() as conn:
            table = get_table(conn, self.table, schema=self.schema)
            return {c.name: c.json_schema() for c in table.published if c.name != self.id_field}

    def get_fields(self) -> dict[str, dict[str, Any]]:
        """Properties of the collection and their JSON Schema types."""
        return self._fields

    def query(
        self,
        offset: int = 0,
        limit: int = 10,
        resulttype: str = "results",
        bbox: list[float] | None = None,
        datetime_: str | None = None,
        properties: list[tuple[str, Any]] | None = None,
        sortby: list[dict[str, str]] | None = None,
        select_properties: list[str] | None = None,
        skip_geometry: bool = False,
        q: str | None = None,
        filterq: Any = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Return features as a GeoJSON FeatureCollection (pygeoapi contract).

        ``bbox`` selects features whose geometry intersects the box and ``q``
        is a text search (OGC API Features Part 9): the same conditions as the
        streaming route's (:func:`spatial.features.bbox_condition`,
        :func:`spatial.features.text_condition`).
        """
        with _translated():
            cql = self._filter(filterq, kwargs.get("filter_lang"))
            fq = FeatureQuery(
                limit=int(limit),
                offset=int(offset),
                # pygeoapi hands the bbox transformed into the storage CRS, in
                # its authority axis order (latitude first for EPSG:4490).
                bbox=parse_bbox(bbox, self.storage_crs_uri) if bbox else None,
                datetime_range=parse_datetime(datetime_) if datetime_ else None,
                equals=dict(properties or []),
                select=tuple(select_properties or ()),
                sortby=tuple((s["property"], s.get("order", "+") != "-") for s in sortby or []),
                skip_geometry=bool(skip_geometry),
                hits_only=resulttype == "hits",
                cql=cql,
                # pygeoapi transforms filter geometries into the storage CRS in
                # its authority axis order (latitude first for EPSG:4490).
                cql_northing_first=_northing_first(self.storage_crs),
                text=parse_text_search(q) if q is not None else (),
                **self._output(kwargs.get("crs_transform_spec")),
            )
        return self._run(
            lambda conn: query_features(
                conn, self.table, fq, id_field=self.id_field, time_field=self.time_field,
                schema=self.schema,
            )
        )

    @staticmethod
    def _filter(filterq: Any, lang: str | None) -> Any:
        """The CQL2 filter as a pygeofilter AST.

        pygeoapi parses ``filter`` (cql2-text) and a POSTed cql2-json body
        itself and passes the AST; raw text or a JSON object (other callers)
        is parsed here.
        """
        if filterq is None or isinstance(filterq, ast.Node):
            return filterq
        if isinstance(filterq, dict):
            return parse_filter(filterq, "cql2-json")
        if isinstance(filterq, str):
            return parse_filter(filterq, lang or "cql2-text")
        raise InvalidInputError(f"unsupported filter of type {type(filterq).__name__}")

    @staticmethod
    def _output(spec: Any) -> dict[str, Any]:
        """``out_srid``/``out_northing_first`` for pygeoapi's CRS transform spec.

        pygeoapi asks the provider to transform (Features Part 2); PostGIS does
        it, instead of shapely per feature in Python.
        """
        if spec is None:
            return {}
        srid, northing_first = crs_axes(spec.target_crs_uri)
        return {"out_srid": srid, "out_northing_first": northing_first}

    def get(self, identifier: str, **kwargs: Any) -> dict[str, Any]:
        """Return one feature by id (pygeoapi contract)."""
        with _translated():
            out = self._output(kwargs.get("crs_transform_spec"))
        feature = self._run(
            lambda conn: get_feature(
                conn, self.table, identifier, id_field=self.id_field, schema=self.schema, **out
            )
        )
        etag.current().etag = feature_etag(feature)  # the ETag header (server.etag)
        return feature

    # Features Part 4: thin adapters over spatial.editing, writing the base table
    # onemap.<table> as the request's principal (row-level security, audit).

    def _write(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        with _translated(), request_connection(current_principal()) as conn:
            return fn(conn)

    def create(self, item: Any) -> Any:
        """Insert a feature (POST …/items); returns its id (pygeoapi contract)."""
        state = etag.current()
        result = self._write(
            lambda conn: create_feature(conn, self.table, item, content_crs=state.content_crs)
        )
        state.etag, state.replayed = result.etag, result.replayed
        return result.id

    def update(self, identifier: Any, item: Any) -> bool:
        """Replace the properties a feature names (PUT …/items/{id})."""
        state = etag.current()
        result = self._write(
            lambda conn: update_feature(conn, self.table, identifier, item,
                                        if_match=state.if_match, content_crs=state.content_crs)
        )
        state.etag = result.etag
        return True

    def delete(self, identifier: Any) -> bool:
        """Delete a feature (DELETE …/items/{id})."""
        state = etag.current()
        state.etag = None  # pygeoapi read the feature first; a deleted one has none
        self._write(
            lambda conn: delete_feature(conn, self.table, identifier, if_match=state.if_match)
        )
        return True

    def __repr__(self) -> str:
        return f"<PostGISProvider> {self.table}"
