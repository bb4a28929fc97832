"""The one mapping from an error to its HTTP answer: an OGC exception document.

Every route of onemap — the contract middleware, authentication, the
streaming items path, the tile and style routes, static files, what no route
serves — answers a refusal through :func:`problem` or :func:`error_response`,
in the shape pygeoapi uses for its own (``{"code", "type", "description"}``,
OGC API Common's exception), with the status and code of
:data:`spatial.errors.ERROR_ANSWERS` and, on a 401, the ``WWW-Authenticate``
challenge RFC 6750 asks for. pygeoapi's routes get the same status and code
through the provider's and the job manager's translations, which read the same
table (:mod:`server.provider`, :mod:`server.manager`).
"""

from __future__ import annotations

import logging

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spatial.errors import OnemapError, error_answer

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
    >>> problem(401, "NotAuthenticated", "sign in").headers["www-authenticate"]
    'Bearer realm="onemap"'
    """
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", CHALLENGE)
    return JSONResponse({"code": code, "type": code, "description": description},
                        status_code=status, headers=headers or None)


def error_response(error: OnemapError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The answer to an onemap error: status and code from :data:`~spatial.errors.ERROR_ANSWERS`.

    A status of 500 or more is logged (the message is safe by contract).

    Examples
    --------
    >>> from spatial.errors import InvalidInputError
    >>> r = error_response(InvalidInputError("bbox has 3 numbers"))
    >>> r.status_code, bytes(r.body)[:32]
    (400, b'{"code":"InvalidParameterValue",')
    """
    status, code = error_answer(error)
    if status >= 500:
        LOGGER.error("%s: %s", type(error).__name__, error)
    return problem(status, code, str(error), headers)


class ChallengeMiddleware:
    """Adds the ``WWW-Authenticate`` challenge to a 401 that lacks one.

    pygeoapi 0.24 answers a provider's or a process's authentication error
    (translated from :data:`spatial.errors.ERROR_ANSWERS`) with its own exception
    response, which carries no challenge; RFC 6750 §3 asks every 401 for one.
    Onemap's own routes already send it (:func:`problem`), so only answers
    without the header are touched.

    Parameters
    ----------
    app : ASGI application
        The application wrapped.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def challenged(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                headers = MutableHeaders(scope=message)
                if "www-authenticate" not in headers:
                    headers.append("WWW-Authenticate", CHALLENGE)
            await send(message)

        await self.app(scope, receive, challenged)
