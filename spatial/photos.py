"""Event photos (事件照片): the bytes on disk, a row in ``onemap.event_photo``.

A photo belongs to an event. Its bytes are stored once under the photo
directory (``ONEMAP_PHOTO_DIR``, default ``var/photos/``), named by their
sha256, so the same picture sent twice is one file; the row ties it to the
event. ``UNIQUE (event_id, sha256)`` makes an upload idempotent: a phone that
lost its connection after the upload and sends the photo again gets the row
it already made.

Who may attach or see a photo is decided by PostgreSQL: every call takes a
connection made by :func:`spatial.access.request_connection`, so row-level
security on ``onemap.event`` and ``onemap.event_photo`` (migrations 130 and
165) applies — a caller who cannot see the event gets :class:`NotFoundError`,
a caller whose role may not attach gets :class:`PermissionDeniedError`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from spatial.errors import (
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    UnsupportedMediaTypeError,
)

LOGGER = logging.getLogger(__name__)

#: Largest photo accepted, in bytes (8 MB).
MAX_BYTES = 8 * 1024 * 1024

#: Accepted media types and the magic bytes their files start with.
MEDIA_TYPES: dict[str, str] = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


class PhotoTooLargeError(PayloadTooLargeError):
    """The photo is bigger than :data:`MAX_BYTES` (HTTP 413)."""


class UnsupportedPhotoTypeError(UnsupportedMediaTypeError):
    """The photo is not a JPEG, PNG or WebP image (HTTP 415)."""


def too_large(size: str) -> PhotoTooLargeError:
    """The error for an upload of ``size`` bytes (a number or "more than N").

    Examples
    --------
    >>> str(too_large("9000000"))
    'the photo has 9000000 bytes, at most 8388608 are accepted / 照片不能超过 8 MB'
    """
    return PhotoTooLargeError(
        f"the photo has {size} bytes, at most {MAX_BYTES} are accepted"
        f" / 照片不能超过 {MAX_BYTES // (1024 * 1024)} MB"
    )


@dataclass(frozen=True)
class Photo:
    """One row of ``onemap.event_photo``.

    Attributes
    ----------
    id, event_id : int
        The photo and its event.
    content_type : str
        ``image/jpeg``, ``image/png`` or ``image/webp``.
    size_bytes : int
        Size of the stored file.
    sha256 : str
        Lower-case hex digest of the bytes.
    phase : str
        ``report``, ``handling`` or ``closure``.
    created_at : datetime
        When the row was written.
    storage_ref : str
        File name under the photo directory (never shown to clients).
    """

    id: int
    event_id: int
    content_type: str
    size_bytes: int
    sha256: str
    phase: str
    created_at: datetime
    storage_ref: str

    def as_json(self, base_url: str) -> dict[str, Any]:
        """The photo as the API shows it (no storage path).

        Parameters
        ----------
        base_url : str
            The server's URL, for the ``href`` of the bytes.
        """
        href = f"{base_url.rstrip('/')}/collections/event/items/{self.event_id}/photos/{self.id}"
        return {
            "id": self.id, "event_id": self.event_id, "content_type": self.content_type,
            "size_bytes": self.size_bytes, "sha256": self.sha256, "phase": self.phase,
            "created_at": self.created_at.isoformat(), "href": href,
        }


_BY_DIGEST = (
    "SELECT id, event_id, content_type, size_bytes, sha256, phase, created_at, storage_ref "
    "FROM onemap.event_photo WHERE event_id = %s AND sha256 = %s"
)
_BY_EVENT = (
    "SELECT id, event_id, content_type, size_bytes, sha256, phase, created_at, storage_ref "
    "FROM onemap.event_photo WHERE event_id = %s ORDER BY id"
)
_BY_ID = (
    "SELECT id, event_id, content_type, size_bytes, sha256, phase, created_at, storage_ref "
    "FROM onemap.event_photo WHERE event_id = %s AND id = %s"
)
_INSERT = (
    "INSERT INTO onemap.event_photo "
    "(event_id, phase, storage_ref, content_type, size_bytes, sha256) "
    "VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (event_id, sha256) DO NOTHING "
    "RETURNING id, event_id, content_type, size_bytes, sha256, phase, created_at, storage_ref"
)


def photo_dir() -> Path:
    """Where photo files live (``ONEMAP_PHOTO_DIR``, default ``<var>/photos``)."""
    raw = os.environ.get("ONEMAP_PHOTO_DIR")
    if raw:
        return Path(raw).resolve()
    from spatial.settings import get_settings

    return get_settings().var_dir / "photos"


def sniff_media_type(data: bytes) -> str | None:
    """The image type the bytes' magic number says, if one we accept.

    Parameters
    ----------
    data : bytes
        The start of the file (12 bytes suffice).

    Returns
    -------
    str or None
        ``image/jpeg``, ``image/png``, ``image/webp``, or None.

    Examples
    --------
    >>> sniff_media_type(b"\\xff\\xd8\\xff\\xe0rest")
    'image/jpeg'
    >>> sniff_media_type(b"\\x89PNG\\r\\n\\x1a\\nrest")
    'image/png'
    >>> sniff_media_type(b"RIFF\\x00\\x00\\x00\\x00WEBPVP8 ")
    'image/webp'
    >>> sniff_media_type(b"GIF89a") is None
    True
    """
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_photo(data: bytes, content_type: str | None) -> str:
    """Check an upload's declared type, size and magic bytes.

    Parameters
    ----------
    data : bytes
        The body.
    content_type : str or None
        The ``Content-Type`` header (parameters ignored).

    Returns
    -------
    str
        The media type.

    Raises
    ------
    UnsupportedPhotoTypeError
        The declared type is not JPEG, PNG or WebP.
    PhotoTooLargeError
        More than :data:`MAX_BYTES`.
    InvalidInputError
        Empty, or the bytes are not the declared type.

    Examples
    --------
    >>> check_photo(b"\\xff\\xd8\\xff\\xdb...", "image/jpeg; q=1")
    'image/jpeg'
    >>> check_photo(b"GIF89a", "image/gif")
    Traceback (most recent call last):
    ...
    spatial.photos.UnsupportedPhotoTypeError: Content-Type 'image/gif' is not accepted; \
send image/jpeg, image/png or image/webp / 仅支持 JPEG、PNG、WebP 图片
    """
    media = (content_type or "").split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise UnsupportedPhotoTypeError(
            f"Content-Type {media or 'missing'!r} is not accepted; send "
            f"{', '.join(list(MEDIA_TYPES)[:-1])} or {list(MEDIA_TYPES)[-1]}"
            " / 仅支持 JPEG、PNG、WebP 图片"
        )
    if len(data) > MAX_BYTES:
        raise too_large(str(len(data)))
    if not data:
        raise InvalidInputError("the request body is empty; send the image bytes / 照片为空")
    sniffed = sniff_media_type(data[:16])
    if sniffed != media:
        raise InvalidInputError(
            f"the bytes are not {media} (they look like {sniffed or 'no accepted image'})"
            " / 文件内容与声明的图片类型不符"
        )
    return media


def _file_name(digest: str, media: str) -> str:
    """Where the bytes of this digest and type live under the photo directory."""
    return f"{digest[:2]}/{digest}{MEDIA_TYPES[media]}"


def _store(data: bytes, name: str) -> None:
    """Write the bytes once under the photo directory as ``name``."""
    target = photo_dir() / name
    if target.exists() and target.stat().st_size == len(data):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside and rename: a reader never sees half a file, and two
    # uploads of the same bytes at once both end with the same whole file.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _visible_event(conn: psycopg.Connection[Any], event_id: int) -> None:
    row = conn.execute("SELECT 1 FROM onemap.event WHERE id = %s", (event_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"event {event_id} not found / 事件 {event_id} 不存在")


def _photo(row: Any) -> Photo:
    if isinstance(row, dict):
        return Photo(**row)
    return Photo(*row)


def attach_photo(
    conn: psycopg.Connection[Any], event_id: int, data: bytes, content_type: str | None,
    *, phase: str = "report",
) -> tuple[Photo, bool]:
    """Attach a photo to an event, as the connection's caller.

    Parameters
    ----------
    conn : psycopg.Connection
        A connection from :func:`spatial.access.request_connection` (inside
        its transaction).
    event_id : int
        The event.
    data : bytes
        The image bytes.
    content_type : str or None
        The declared media type.
    phase : str, optional
        ``report`` (default), ``handling`` or ``closure``.

    Returns
    -------
    tuple of (Photo, bool)
        The row, and whether it was made now (False: this event already had
        these bytes — an upload sent again).

    Raises
    ------
    InvalidInputError, PhotoTooLargeError, UnsupportedPhotoTypeError
        See :func:`check_photo`; an unknown ``phase``.
    NotFoundError
        The caller cannot see the event (or it does not exist).
    PermissionDeniedError
        The caller's role may not attach photos.
    """
    if phase not in ("report", "handling", "closure"):
        raise InvalidInputError(f"phase {phase!r} is not one of report, handling, closure")
    media = check_photo(data, content_type)
    _visible_event(conn, event_id)
    digest = hashlib.sha256(data).hexdigest()
    existing = conn.execute(
        _BY_DIGEST,
        (event_id, digest),
    ).fetchone()
    if existing is not None:
        return _photo(existing), False
    ref = _file_name(digest, media)
    try:
        with conn.transaction():
            row = conn.execute(
                _INSERT,
                (event_id, phase, ref, media, len(data), digest),
            ).fetchone()
            if row is not None:  # written only once the row may exist (a refused
                _store(data, ref)  # upload leaves no file; a failed write, no row)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise PermissionDeniedError(
            "your role may not attach photos to this event / 当前角色无权为该事件上传照片"
        ) from exc
    if row is not None:
        photo = _photo(row)
        LOGGER.info("photo %s (%d bytes) attached to event %s", photo.id, len(data), event_id)
        return photo, True
    # A concurrent upload of the same bytes won the race: answer its row.
    again = conn.execute(
        _BY_DIGEST,
        (event_id, digest),
    ).fetchone()
    if again is None:  # pragma: no cover - the winner's row is committed and visible
        raise NotFoundError(f"event {event_id} not found / 事件 {event_id} 不存在")
    return _photo(again), False


def list_photos(conn: psycopg.Connection[Any], event_id: int) -> list[Photo]:
    """The photos of an event the caller can see, oldest first.

    Raises
    ------
    NotFoundError
        The caller cannot see the event.
    """
    _visible_event(conn, event_id)
    rows = conn.execute(
        _BY_EVENT,
        (event_id,),
    ).fetchall()
    return [_photo(r) for r in rows]


def get_photo(conn: psycopg.Connection[Any], event_id: int, photo_id: int) -> tuple[Photo, Path]:
    """One photo's row and the path of its bytes.

    Raises
    ------
    NotFoundError
        The caller cannot see the event or the photo, or the file is missing.
    """
    row = conn.execute(
        _BY_ID,
        (event_id, photo_id),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"photo {photo_id} of event {event_id} not found / 照片不存在")
    photo = _photo(row)
    root = photo_dir()
    path = (root / photo.storage_ref).resolve()
    if root not in path.parents or not path.is_file():
        LOGGER.error("photo %s of event %s: its file is missing", photo_id, event_id)
        raise NotFoundError(f"photo {photo_id} of event {event_id}: file missing / 照片文件缺失")
    return photo, path


__all__ = [
    "MAX_BYTES",
    "MEDIA_TYPES",
    "Photo",
    "PhotoTooLargeError",
    "UnsupportedPhotoTypeError",
    "attach_photo",
    "check_photo",
    "get_photo",
    "list_photos",
    "photo_dir",
    "sniff_media_type",
    "too_large",
]
