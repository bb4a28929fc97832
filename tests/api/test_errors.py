"""onemap's own routes answer onemap errors with the status of spatial.errors.HTTP_STATUS."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.requests import Request

from spatial.errors import (
    ConflictError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)
from spatial.ogc.app import onemap_error


@pytest.mark.parametrize(("error", "status"), [
    (InvalidInputError("bbox has 3 numbers"), 400),
    (PermissionDeniedError("not your grid"), 403),
    (NotFoundError("no grid 7"), 404),
    (ConflictError("stale ETag"), 412),
    (DatabaseUnavailableError("database down"), 503),
])
def test_error_status_and_document(error: Exception, status: int) -> None:
    request = Request({"type": "http", "method": "GET", "path": "/x", "headers": []})
    response = asyncio.run(onemap_error(request, error))
    assert response.status_code == status
    body = json.loads(bytes(response.body))
    name = type(error).__name__
    assert body == {"code": name, "type": name, "description": str(error)}
