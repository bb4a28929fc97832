"""onemap's own routes answer onemap errors as spatial.errors.ERROR_ANSWERS says."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.requests import Request

from server.app import onemap_error
from spatial.errors import (
    ConflictError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
)


@pytest.mark.parametrize(("error", "status", "code"), [
    (InvalidInputError("bbox has 3 numbers"), 400, "InvalidParameterValue"),
    (PermissionDeniedError("not your grid"), 403, "Forbidden"),
    (NotFoundError("no grid 7"), 404, "NotFound"),
    (ConflictError("stale ETag"), 412, "PreconditionFailed"),
    (DatabaseUnavailableError("database down"), 503, "ServiceUnavailable"),
])
def test_error_status_and_document(error: Exception, status: int, code: str) -> None:
    request = Request({"type": "http", "method": "GET", "path": "/x", "headers": []})
    response = asyncio.run(onemap_error(request, error))
    assert response.status_code == status
    body = json.loads(bytes(response.body))
    assert body == {"code": code, "type": code, "description": str(error)}
