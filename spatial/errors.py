"""The one error hierarchy of onemap.

Everything onemap raises on purpose derives from :class:`OnemapError`. The
edges (CLI, OGC API) translate these into exit codes, or HTTP statuses and OGC
exception codes with :data:`ERROR_ANSWERS`; anything else is a programmer error
and is answered with a safe, generic message while its stack goes to the log.
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


class NamedInputError(InvalidInputError, ValueError):
    """Bad input to an analysis, naming the input at fault (400).

    The analyses (``scenarios``) raise it from plain Python; the process layer
    answers it as ``invalid input / 输入无效: <name>: <reason>`` in one place
    (:meth:`scenarios.processes.base.Process.execute`). A :class:`ValueError` too,
    so plain Python callers can catch it as one.

    Attributes
    ----------
    name : str
        The input (``day``, ``stream``, ``p`` …).
    reason : str
        Why, in English and Chinese.
    """

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


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


class MalformedBodyError(InvalidInputError):
    """A request body that cannot be read: not UTF-8, not JSON, not an object (400)."""


#: Error class → HTTP status and OGC exception code: the one mapping every route
#: answers with (:func:`server.problems.error_response` on our routes, the
#: contract middleware, pygeoapi's provider and process errors). A class not
#: listed takes the answer of its nearest listed ancestor. The codes are those
#: pygeoapi gives its own errors of the same kind (``InvalidParameterValue``,
#: ``NotFound``, ``NoApplicableCode`` …), so a client sees one code for one kind
#: of refusal whichever layer refused.
ERROR_ANSWERS: dict[type[OnemapError], tuple[int, str]] = {
    PayloadTooLargeError: (413, "PayloadTooLarge"),
    UnsupportedMediaTypeError: (415, "UnsupportedMediaType"),
    MalformedBodyError: (400, "OperationParsingFailed"),
    InvalidInputError: (400, "InvalidParameterValue"),
    AuthenticationError: (401, "NotAuthenticated"),
    PermissionDeniedError: (403, "Forbidden"),
    NotFoundError: (404, "NotFound"),
    ConflictError: (412, "PreconditionFailed"),
    DatabaseUnavailableError: (503, "ServiceUnavailable"),
    ConfigurationError: (500, "NoApplicableCode"),
    OnemapError: (500, "NoApplicableCode"),
}
#: Error class → HTTP status (the first half of :data:`ERROR_ANSWERS`).
HTTP_STATUS: dict[type[OnemapError], int] = {
    cls: status for cls, (status, _) in ERROR_ANSWERS.items()}


def error_answer(error: OnemapError | type[OnemapError]) -> tuple[int, str]:
    """Return the HTTP status and OGC exception code of an onemap error.

    Parameters
    ----------
    error : OnemapError or its class
        The error raised.

    Returns
    -------
    tuple
        ``(status, code)`` of the nearest class listed in :data:`ERROR_ANSWERS`.

    Examples
    --------
    >>> error_answer(InvalidInputError("bbox has 3 numbers"))
    (400, 'InvalidParameterValue')
    >>> error_answer(NotFoundError)
    (404, 'NotFound')
    """
    cls = error if isinstance(error, type) else type(error)
    for ancestor in cls.__mro__:
        if ancestor in ERROR_ANSWERS:
            return ERROR_ANSWERS[ancestor]
    return 500, "NoApplicableCode"


def http_status(error: OnemapError) -> int:
    """Return the HTTP status for an onemap error.

    Parameters
    ----------
    error : OnemapError
        The error raised.

    Returns
    -------
    int
        The status of the nearest class listed in :data:`ERROR_ANSWERS`.

    Examples
    --------
    >>> http_status(InvalidInputError("bbox has 3 numbers"))
    400
    """
    return error_answer(error)[0]


def ogc_code(error: OnemapError) -> str:
    """Return the OGC exception code for an onemap error.

    Examples
    --------
    >>> ogc_code(PermissionDeniedError("not yours"))
    'Forbidden'
    """
    return error_answer(error)[1]
