"""The one mapping from an error to its HTTP answer: an OGC exception document.

Every route of onemap — the contract middleware, authentication, the
streaming items path, the tile and style routes, static files, what no route
serves — answers a refusal through :func:`problem` or :func:`error_response`,
in the shape pygeoapi uses for its own (``{"code", "type", "description"}``,
OGC API Common's exception), with the status of
:data:`spatial.errors.HTTP_STATUS` and, on a 401, the ``WWW-Authenticate``
challenge RFC 6750 asks for.
"""

from __future__ import annotations

import logging

from starlette.responses import JSONResponse

from spatial.errors import OnemapError, http_status

LOGGER = logging.getLogger(__name__)

#: The challenge sent with every 401.
CHALLENGE = 'Bearer realm="onemap"'


def problem(status: int, code: str, description: str,
            headers: dict[str, str] | None = None) -> JSONResponse:
    """An OGC exception document with its status.

    Parameters
    ----------
    status : int
        The HTTP status.
    code : str
        The exception code (``InvalidParameterValue``, an error class's name …),
        sent as ``code`` and ``type``.
    description : str
        Safe to show: never SQL, a DSN or a path of the server.
    headers : dict, optional
        More headers; a 401 gets ``WWW-Authenticate`` unless one is given.

    Returns
    -------
    starlette.responses.JSONResponse

    Examples
    --------
    >>> r = problem(404, "NotFound", "no such job")
    >>> r.status_code, bytes(r.body)
    (404, b'{"code":"NotFound","type":"NotFound","description":"no such job"}')
    >>> problem(401, "AuthenticationError", "sign in").headers["www-authenticate"]
    'Bearer realm="onemap"'
    """
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", CHALLENGE)
    return JSONResponse({"code": code, "type": code, "description": description},
                        status_code=status, headers=headers or None)


def error_response(error: OnemapError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer to an onemap error: its class names the code, the table its status.

    A status of 500 or more is logged (the message is safe by contract).

    Examples
    --------
    >>> from spatial.errors import InvalidInputError
    >>> error_response(InvalidInputError("bbox has 3 numbers")).status_code
    400
    """
    status = http_status(error)
    if status >= 500:
        LOGGER.error("%s: %s", type(error).__name__, error)
    return problem(status, type(error).__name__, str(error), headers)
