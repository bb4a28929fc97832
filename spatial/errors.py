"""The one error hierarchy of onemap.

Everything onemap raises on purpose derives from :class:`OnemapError`. The
edges (CLI, OGC API) translate these into exit codes or HTTP statuses with
:data:`HTTP_STATUS`; anything else is a programmer error and is answered with a
safe, generic message while its stack goes to the log.
"""

from __future__ import annotations


class OnemapError(Exception):
    """Base class of every error onemap raises on purpose.

    The message must be safe to show to a user: never SQL, a DSN, a password
    or a server path.
    """


class ConfigurationError(OnemapError):
    """The installation or its settings are wrong (missing binary, bad setting)."""


class DatabaseUnavailableError(OnemapError):
    """The database cannot be reached or is not set up."""


class InvalidInputError(OnemapError):
    """A caller sent something that cannot be processed (maps to 400)."""


class PayloadTooLargeError(InvalidInputError):
    """The request body is bigger than the resource accepts (413)."""


class UnsupportedMediaTypeError(InvalidInputError):
    """The request body is of a media type the resource does not accept (415)."""


class NotFoundError(OnemapError):
    """A requested object does not exist or is outside the caller's scope (404)."""


class AuthenticationError(OnemapError):
    """The caller is not known: missing, wrong or expired credentials (401)."""


class PermissionDeniedError(OnemapError):
    """The caller is known but may not do this (403)."""


class ConflictError(OnemapError):
    """The write conflicts with the current state, e.g. a stale ETag (409/412)."""


#: Error class → HTTP status, used by the web edge. Subclasses inherit the
#: status of their nearest listed ancestor.
HTTP_STATUS: dict[type[OnemapError], int] = {
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    InvalidInputError: 400,
    AuthenticationError: 401,
    PermissionDeniedError: 403,
    NotFoundError: 404,
    ConflictError: 412,
    DatabaseUnavailableError: 503,
    ConfigurationError: 500,
    OnemapError: 500,
}


def http_status(error: OnemapError) -> int:
    """Return the HTTP status for an onemap error.

    Parameters
    ----------
    error : OnemapError
        The error raised.

    Returns
    -------
    int
        The status of the nearest class listed in :data:`HTTP_STATUS`.

    Examples
    --------
    >>> http_status(InvalidInputError("bbox has 3 numbers"))
    400
    """
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
