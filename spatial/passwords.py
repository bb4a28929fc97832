"""Password hashing and the password policy.

Passwords are hashed with argon2id (argon2-cffi's RFC 9106 low-memory
profile); the policy asks for at least :data:`MIN_PASSWORD_LENGTH`
characters and a password other than the user name. Used by
:mod:`spatial.users` (setting passwords) and :mod:`spatial.auth` (login).
"""

from __future__ import annotations

import functools
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from spatial.errors import InvalidInputError

MIN_PASSWORD_LENGTH = 10
#: Longer passwords are refused: argon2 hashes every byte it is given.
MAX_PASSWORD_LENGTH = 1024

# argon2 with RFC 9106's low-memory profile takes 64 MiB per hash; a burst of
# logins must not take the worker's memory with it.
_HASH_SLOTS = threading.BoundedSemaphore(4)


@functools.cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id, RFC 9106 low-memory parameters


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password with the current parameters.

    Logins of unknown users are verified against it, so they cost what
    known users cost.

    Returns
    -------
    str
        The same PHC string for the life of the process.
    """
    return hash_password(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """Hash a password with argon2id.

    Parameters
    ----------
    password : str

    Returns
    -------
    str
        A PHC string ``$argon2id$v=19$m=…``, salted.

    Examples
    --------
    >>> hash_password("correct horse battery").startswith("$argon2id$")
    True
    """
    with _HASH_SLOTS:
        return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``.

    Parameters
    ----------
    password_hash : str
        A PHC string from :func:`hash_password`.
    password : str

    Returns
    -------
    bool
        False for a wrong password or a malformed hash (never raises for those).

    Examples
    --------
    >>> h = hash_password("correct horse battery")
    >>> verify_password(h, "correct horse battery"), verify_password(h, "wrong")
    (True, False)
    """
    try:
        with _HASH_SLOTS:
            return _hasher().verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Whether a stored hash was made with parameters other than today's.

    Parameters
    ----------
    password_hash : str
        A PHC string from :func:`hash_password`.

    Returns
    -------
    bool
        True if the password should be hashed again at the next login.

    Examples
    --------
    >>> needs_rehash(hash_password("correct horse battery"))
    False
    """
    return _hasher().check_needs_rehash(password_hash)


def check_password_policy(password: str, username: str) -> None:
    """Refuse a password that breaks the policy.

    Parameters
    ----------
    password : str
        The new password.
    username : str
        Whose password it is.

    Raises
    ------
    InvalidInputError
        Naming every rule broken (never echoing the password).

    Examples
    --------
    >>> check_password_policy("a long enough one", "wang")
    >>> check_password_policy("short", "wang")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: password must have at least 10 characters / 密码至少10位
    """
    if not isinstance(password, str):
        raise TypeError(f"password must be a string, got {type(password).__name__}")
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(
            f"password must have at least {MIN_PASSWORD_LENGTH} characters"
            f" / 密码至少{MIN_PASSWORD_LENGTH}位"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(
            f"password must have at most {MAX_PASSWORD_LENGTH} characters"
            f" / 密码最多{MAX_PASSWORD_LENGTH}位"
        )
    if password.strip().lower() == username.strip().lower():
        problems.append("password must not be the user name / 密码不能与用户名相同")
    if password.strip() == "":
        problems.append("password must not be blank / 密码不能为空白")
    if problems:
        raise InvalidInputError("; ".join(problems))


__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "check_password_policy",
    "dummy_hash",
    "hash_password",
    "needs_rehash",
    "verify_password",
]
