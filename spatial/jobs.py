"""Durable jobs: a queue of process executions in PostgreSQL (``onemap.job``).

Every execution of a process — synchronous or not — is a row: its inputs,
status, progress and result. Any server process or ``onemap worker`` can run
a job or answer for it, and a job outlives the process that accepted it.

- :func:`submit` records a job (accepted, or already running for a
  synchronous execution).
- Workers :func:`claim_next` the oldest accepted job with
  ``FOR UPDATE SKIP LOCKED`` and hold a lease they renew (:func:`heartbeat`)
  while the job runs; :func:`complete` and :func:`fail` end it. A job whose
  lease ran out — its worker died — is accepted again by
  :func:`requeue_stale`, up to its ``max_attempts`` runs.
- A job runs as its submitter: :func:`run_job` builds the submitter's
  :class:`~spatial.access.Principal` and runs the handler under
  :func:`~spatial.access.acting_as`, so the process reads through
  :func:`~spatial.access.request_connection` with row-level security.
- Clients see their own jobs only (a district administrator sees all):
  :func:`get`, :func:`list_jobs`, :func:`get_result`, :func:`dismiss`.
  Finished jobs expire after their retention; :func:`purge_expired` deletes
  them.
- The features of a job's feature outputs are stored as rows too
  (``onemap.job_feature``, read by :mod:`spatial.job_layers`), with the job's
  completion; every output is bounded (:func:`result_limits`), and a job whose
  result is above the bound fails saying which output and which bound.
- :class:`JobWorker` runs claimed jobs in background threads, woken by
  ``LISTEN onemap_job`` (the table's trigger notifies) or its poll interval.

The queue is a system table, so every function here takes an *owner*
connection (:func:`spatial.db.get_pool` / :func:`spatial.db.connect`), never a
request connection. Nothing here knows pygeoapi; the OGC edge is
:mod:`server.manager`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from spatial.access import ANONYMOUS, Principal, acting_as
from spatial.db import CONNECT_TIMEOUT, database_away, fetch_dicts, listen_connection
from spatial.errors import (
    AuthenticationError,
    InvalidInputError,
    NotFoundError,
    OnemapError,
)

LOGGER = logging.getLogger(__name__)

#: Job statuses (OGC API Processes ``statusInfo``).
STATUSES = ("accepted", "running", "successful", "failed", "dismissed")
#: Statuses after which a job never changes again (but for dismissal).
FINISHED = frozenset({"successful", "failed", "dismissed"})
#: Role whose holders see every user's jobs.
ADMIN_ROLE = "district_admin"
#: Channel the table's trigger notifies when a job becomes claimable.
CHANNEL = "onemap_job"

DEFAULT_LEASE = timedelta(seconds=60)
DEFAULT_RETENTION = timedelta(days=7)
DEFAULT_MAX_ATTEMPTS = 3
#: Seconds between a worker's attempts to reconnect while the database is away.
AWAY_RETRY_SECONDS = 1.0

MSG_ACCEPTED = "accepted / 已受理"
MSG_RUNNING = "running / 运行中"
MSG_SUCCESSFUL = "successful / 已完成"
MSG_DISMISSED = "dismissed / 已取消"
MSG_INTERNAL = ("the process failed; the details are in the server log (job {id}) / "
                "处理失败，详情已记入服务器日志（作业 {id}）")
# format() templates: attempts so far, most attempts (twice, once per language)
MSG_REQUEUED = ("requeued after its worker stopped (attempt %s of %s) / "
                "工作进程中断，作业已重新排队（第 %s 次，共 %s 次）")
MSG_GAVE_UP = ("the server stopped while the job ran (%s of %s attempts) / "
               "服务器在作业运行时停止（已尝试 %s 次，共 %s 次）")
# format() fields: output, count, limit, variable
MSG_TOO_MANY_FEATURES = ("output {output!r} has {count} features, more than the {limit} a "
                         "result may hold ({variable}); ask for a smaller area / "
                         "输出 {output} 有 {count} 个要素，超过结果上限 {limit} 个（{variable}），"
                         "请缩小范围")
MSG_TOO_MANY_BYTES = ("output {output!r} is {count} bytes, more than the {limit} a result may "
                      "hold ({variable}); ask for a smaller area / "
                      "输出 {output} 为 {count} 字节，超过结果上限 {limit} 字节（{variable}），"
                      "请缩小范围")

#: Environment variables bounding each output of a job: features of a feature
#: output (GeoJSON), and bytes of any output (JSON as stored, or raw bytes).
MAX_RESULT_FEATURES_ENV = "ONEMAP_MAX_RESULT_FEATURES"
MAX_RESULT_BYTES_ENV = "ONEMAP_MAX_RESULT_BYTES"
DEFAULT_MAX_RESULT_FEATURES = 200_000
DEFAULT_MAX_RESULT_BYTES = 256 * 1024 * 1024
MSG_NO_SUBMITTER = ("the account that submitted the job no longer exists or is disabled / "
                    "提交作业的账号不存在或已停用")


@dataclass(frozen=True)
class Job:
    """One job (a row of ``onemap.job`` without its result).

    Attributes
    ----------
    id : uuid.UUID
        Job identifier.
    process_id : str
        The process it runs.
    status : str
        One of :data:`STATUSES`.
    mode : str
        ``sync`` (ran in the request) or ``async`` (ran by a worker).
    inputs : dict
        The validated inputs.
    response : str
        ``raw`` or ``document`` (OGC API Processes response preference).
    message : str or None
        Status message; for a failure a safe text.
    progress : int
        0–100.
    user_id : int or None
        The submitter (None: anonymous).
    result_media_type : str or None
        Media type of the result, once there is one.
    created_at, updated_at : datetime
        When it was submitted and last changed.
    started_at, finished_at, expires_at, lease_until : datetime or None
        When its latest run started, when it finished, when it expires, and
        until when its worker holds it.
    worker : str or None
        The worker running (or that ran) it.
    attempts, max_attempts : int
        Runs started so far, and the most it gets.
    outputs : list of str or None
        The output ids the execute request selected (None: every output).
    """

    id: uuid.UUID
    process_id: str
    status: str
    mode: str
    inputs: dict[str, Any]
    response: str
    message: str | None
    progress: int
    user_id: int | None
    result_media_type: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None
    lease_until: datetime | None
    worker: str | None
    attempts: int
    max_attempts: int
    outputs: list[str] | None = None

    @property
    def finished(self) -> bool:
        """Whether the job has ended (successful, failed or dismissed)."""
        return self.status in FINISHED


_COLUMNS = sql.SQL(", ").join(sql.Identifier(f.name) for f in fields(Job))


def _job(row: dict[str, Any]) -> Job:
    return Job(**{f.name: row[f.name] for f in fields(Job)})


def _no_job(job_id: str | uuid.UUID) -> NotFoundError:
    return NotFoundError(f"no job {str(job_id)[:64]!r}")


def job_uuid(job_id: str | uuid.UUID) -> uuid.UUID:
    """Parse a job identifier.

    Parameters
    ----------
    job_id : str or uuid.UUID
        As found in a URL.

    Returns
    -------
    uuid.UUID

    Raises
    ------
    NotFoundError
        If it is not a UUID: no such job can exist.

    Examples
    --------
    >>> job_uuid("6c1d7a36-5d5f-4a43-9a0c-1f0f2b0f8e11").version
    4
    >>> job_uuid("../etc")
    Traceback (most recent call last):
    spatial.errors.NotFoundError: no job '../etc'
    """
    if isinstance(job_id, uuid.UUID):
        return job_id
    try:
        return uuid.UUID(str(job_id))
    except ValueError:
        raise _no_job(job_id) from None


def is_json_media_type(media_type: str | None) -> bool:
    """Whether results of this media type are stored as JSON.

    Examples
    --------
    >>> is_json_media_type("application/geo+json"), is_json_media_type("image/tiff")
    (True, False)
    """
    if not media_type:
        return False
    base = media_type.split(";", 1)[0].strip().lower()
    return base == "application/json" or base.endswith("+json")


# --- submitting and claiming -------------------------------------------------------


def submit(
    conn: psycopg.Connection[Any],
    process_id: str,
    inputs: Mapping[str, Any],
    *,
    principal: Principal,
    mode: str = "async",
    response: str = "raw",
    worker: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
    retention: timedelta = DEFAULT_RETENTION,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    outputs: Collection[str] | None = None,
) -> Job:
    """Record a job.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    process_id : str
        The process to run.
    inputs : mapping
        Its validated inputs (JSON-ready).
    principal : Principal
        The submitter; the job runs as this user.
    mode : str
        ``async`` (a worker runs it) or ``sync`` (the caller runs it now).
    response : str
        ``raw`` or ``document``.
    worker : str, optional
        Record the job as already claimed by this worker (synchronous
        execution): running, first attempt, leased.
    lease : timedelta
        Lease of a job claimed at once.
    retention : timedelta
        How long the finished job and its result are kept.
    max_attempts : int
        Most runs the job gets when its worker dies.
    outputs : collection of str, optional
        The output ids the request selected (None: all).

    Returns
    -------
    Job
        The new job; an accepted one wakes the listening workers at commit.

    Raises
    ------
    ValueError
        For an unknown mode or response, or ``max_attempts`` < 1.
    """
    if mode not in ("sync", "async"):
        raise ValueError(f"mode must be 'sync' or 'async', got {mode!r}")
    if response not in ("raw", "document"):
        raise ValueError(f"response must be 'raw' or 'document', got {response!r}")
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be ≥ 1, got {max_attempts!r}")
    claimed = worker is not None
    [row] = fetch_dicts(
        conn,
        sql.SQL(
            "INSERT INTO onemap.job (process_id, status, mode, inputs, response, message, user_id, "
            " retention, max_attempts, worker, lease_until, started_at, attempts, outputs) "
            "VALUES (%(process)s, %(status)s, %(mode)s, %(inputs)s, %(response)s, %(message)s, "
            " %(user)s, %(retention)s, %(max)s, %(worker)s, "
            " CASE WHEN %(claimed)s THEN now() + %(lease)s END, "
            " CASE WHEN %(claimed)s THEN now() END, %(attempts)s, %(outputs)s) "
            "RETURNING {}"
        ).format(_COLUMNS),
        {
            "process": process_id, "status": "running" if claimed else "accepted",
            "mode": mode, "inputs": Jsonb(dict(inputs)), "response": response,
            "message": MSG_RUNNING if claimed else MSG_ACCEPTED, "user": principal.user_id,
            "retention": retention, "max": max_attempts, "worker": worker,
            "claimed": claimed, "lease": lease, "attempts": 1 if claimed else 0,
            "outputs": None if outputs is None else list(outputs),
        },
    )
    return _job(row)


def claim_next(
    conn: psycopg.Connection[Any],
    worker: str,
    *,
    process_ids: Collection[str] | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> Job | None:
    """Claim the oldest accepted job.

    Rows another worker is claiming right now are skipped, not waited for
    (``FOR UPDATE SKIP LOCKED``), so concurrent workers get different jobs.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    worker : str
        Who claims it (recorded; only this worker may renew or end it).
    process_ids : collection of str, optional
        Only jobs of these processes (the ones this worker can run).
    lease : timedelta
        How long the job is the worker's without a :func:`heartbeat`.

    Returns
    -------
    Job or None
        The claimed job, now running; None when nothing waits.
    """
    rows = fetch_dicts(
        conn,
        sql.SQL(
            "UPDATE onemap.job j SET status = 'running', worker = %(worker)s, "
            " lease_until = now() + %(lease)s, attempts = j.attempts + 1, started_at = now(), "
            " progress = 0, message = %(message)s "
            "WHERE j.status = 'accepted' AND j.id = ("
            " SELECT id FROM onemap.job WHERE status = 'accepted' "
            "  AND (%(any)s OR process_id = ANY(%(processes)s)) "
            " ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
            "RETURNING {}"
        ).format(_COLUMNS),
        {"worker": worker, "lease": lease, "message": MSG_RUNNING,
         "any": process_ids is None, "processes": list(process_ids or ())},
    )
    return _job(rows[0]) if rows else None


#: Assignments ending a job's run: its retention starts now, its lease ends.
_FINISHED_NOW = "finished_at = now(), expires_at = now() + retention, lease_until = NULL"


def _update_own(
    conn: psycopg.Connection[Any], job_id: uuid.UUID, worker: str, assignments: str,
    params: tuple[Any, ...],
) -> bool:
    """Apply ``assignments`` to a job only while it runs under ``worker``.

    ``assignments`` is constant SQL from this module (never a caller's
    value); its placeholders take ``params``. False when the job is no
    longer the worker's.
    """
    query = sql.SQL(
        "UPDATE onemap.job SET {} WHERE id = %s AND status = 'running' AND worker = %s "
        "RETURNING id"
    ).format(sql.SQL(assignments))
    return bool(fetch_dicts(conn, query, (*params, job_id, worker)))


def heartbeat(
    conn: psycopg.Connection[Any],
    job_id: uuid.UUID,
    worker: str,
    *,
    progress: int | None = None,
    message: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> bool:
    """Renew a running job's lease, and record its progress.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    job_id : uuid.UUID
        The job.
    worker : str
        The worker that claimed it.
    progress : int, optional
        0–100.
    message : str, optional
        A status message for the client.
    lease : timedelta
        The new lease, from now.

    Returns
    -------
    bool
        False when the job is no longer this worker's (dismissed, or
        requeued after the lease ran out): the worker should stop.

    Raises
    ------
    ValueError
        For a progress outside 0–100.
    """
    if progress is not None and not 0 <= progress <= 100:
        raise ValueError(f"progress must be within 0–100, got {progress!r}")
    return _update_own(
        conn, job_id, worker,
        "lease_until = now() + %s, progress = coalesce(%s, progress), "
        "message = coalesce(%s, message)",
        (lease, progress, message),
    )


def complete(
    conn: psycopg.Connection[Any],
    job_id: uuid.UUID,
    worker: str,
    *,
    media_type: str,
    result: Any,
) -> bool:
    """Store a job's result and mark it successful.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    job_id : uuid.UUID
        The job.
    worker : str
        The worker that claimed it.
    media_type : str
        Media type of the result; JSON types are stored as ``jsonb``.
    result : object
        A JSON-ready value (or JSON text) for a JSON media type, else bytes
        or text.

    Returns
    -------
    bool
        False when the job was no longer this worker's (the result is dropped).

    Raises
    ------
    TypeError
        If the result does not fit its media type.
    """
    value: Jsonb | None = None
    raw: bytes | None = None
    if is_json_media_type(media_type):
        value = Jsonb(json.loads(result) if isinstance(result, (str, bytes)) else result)
    elif isinstance(result, bytes):
        raw = result
    elif isinstance(result, str):
        raw = result.encode("utf-8")
    else:
        raise TypeError(f"a {media_type} result must be bytes or str, got {type(result).__name__}")
    return _update_own(
        conn, job_id, worker,
        "status = 'successful', result = %s, result_bytes = %s, result_media_type = %s, "
        "progress = 100, message = %s, " + _FINISHED_NOW,
        (value, raw, media_type, MSG_SUCCESSFUL),
    )


class ResultTooLargeError(InvalidInputError):
    """An output of a job is above the bound a result may reach (:func:`result_limits`)."""


def _positive_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip().replace("_", "")
    if not raw:
        return default
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    LOGGER.warning("%s=%r is not a positive integer; using %d", name, raw, default)
    return default


def result_limits() -> tuple[int, int]:
    """The most features a feature output, and bytes any output, may hold.

    Returns
    -------
    tuple of int
        ``ONEMAP_MAX_RESULT_FEATURES`` and ``ONEMAP_MAX_RESULT_BYTES`` when they
        are positive integers, else :data:`DEFAULT_MAX_RESULT_FEATURES` and
        :data:`DEFAULT_MAX_RESULT_BYTES` (a bad value is logged).

    Examples
    --------
    >>> min(result_limits()) >= 1
    True
    """
    return (_positive_env(MAX_RESULT_FEATURES_ENV, DEFAULT_MAX_RESULT_FEATURES),
            _positive_env(MAX_RESULT_BYTES_ENV, DEFAULT_MAX_RESULT_BYTES))


def is_feature_output(media_type: str | None, value: Any) -> bool:
    """Whether an output is a feature output: a GeoJSON FeatureCollection.

    Examples
    --------
    >>> is_feature_output("application/geo+json", {"type": "FeatureCollection", "features": []})
    True
    >>> is_feature_output("application/json", {"features": []})
    False
    """
    base = (media_type or "").split(";", 1)[0].strip().lower()
    return (base == "application/geo+json" and isinstance(value, Mapping)
            and isinstance(value.get("features"), list))


def check_result_size(outputs: Mapping[str, Output]) -> None:
    """Refuse outputs above the bounds of :func:`result_limits`.

    Parameters
    ----------
    outputs : mapping of str to Output
        Output id → output, as a run produced them.

    Raises
    ------
    ResultTooLargeError
        Naming the first output above a bound, its size and the bound.

    Examples
    --------
    >>> check_result_size({"n": Output("application/json", {"n": 1})})
    """
    max_features, max_bytes = result_limits()
    for output_id, output in outputs.items():
        if is_feature_output(output.media_type, output.value):
            count = len(output.value["features"])
            if count > max_features:
                raise ResultTooLargeError(MSG_TOO_MANY_FEATURES.format(
                    output=output_id, count=count, limit=max_features,
                    variable=MAX_RESULT_FEATURES_ENV))
        if isinstance(output.value, (bytes, str)) and not is_json_media_type(output.media_type):
            size = len(output.value.encode("utf-8") if isinstance(output.value, str)
                       else output.value)
        else:
            size = len(json.dumps(output.value, ensure_ascii=False, separators=(",", ":"),
                                  default=str).encode("utf-8"))
        if size > max_bytes:
            raise ResultTooLargeError(MSG_TOO_MANY_BYTES.format(
                output=output_id, count=size, limit=max_bytes, variable=MAX_RESULT_BYTES_ENV))


@dataclass(frozen=True)
class Output:
    """One named output of a job.

    Attributes
    ----------
    media_type : str
        Its media type; JSON types (:func:`is_json_media_type`) hold a
        JSON-ready value, others bytes.
    value : object
        The value.
    """

    media_type: str
    value: Any


def complete_outputs(
    conn: psycopg.Connection[Any],
    job_id: uuid.UUID,
    worker: str,
    outputs: Mapping[str, Output],
) -> bool:
    """Store a job's named outputs, one row each, and mark it successful.

    The rows and the status change are one transaction: a job is never seen
    successful with some of its outputs missing. The features of each feature
    output (a GeoJSON FeatureCollection, :func:`is_feature_output`) are stored
    as rows of ``onemap.job_feature`` too, in the same transaction, for paging
    and tiles (:mod:`spatial.job_layers`).

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    job_id : uuid.UUID
        The job.
    worker : str
        The worker that claimed it.
    outputs : mapping of str to Output
        Output id → output.

    Returns
    -------
    bool
        False when the job was no longer this worker's (nothing is stored).

    Raises
    ------
    TypeError
        If a non-JSON output is not bytes or text.
    ResultTooLargeError
        If an output is above the bounds of :func:`result_limits` (nothing is
        stored; the job fails with its message).
    """
    check_result_size(outputs)
    rows: list[tuple[uuid.UUID, str, str, Jsonb | None, bytes | None]] = []
    for output_id, output in outputs.items():
        if is_json_media_type(output.media_type):
            rows.append((job_id, output_id, output.media_type, Jsonb(output.value), None))
        elif isinstance(output.value, (bytes, str)):
            raw = output.value.encode("utf-8") if isinstance(output.value, str) else output.value
            rows.append((job_id, output_id, output.media_type, None, raw))
        else:
            raise TypeError(f"output {output_id!r} ({output.media_type}) must be bytes or str, "
                            f"got {type(output.value).__name__}")
    with conn.transaction():
        mine = _update_own(
            conn, job_id, worker,
            "status = 'successful', result = NULL, result_bytes = NULL, "
            "result_media_type = NULL, progress = 100, message = %s, " + _FINISHED_NOW,
            (MSG_SUCCESSFUL,))
        if mine:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO onemap.job_output (job_id, output_id, media_type, value, "
                    " value_bytes) VALUES (%s, %s, %s, %s, %s)", rows)
            if any(is_feature_output(o.media_type, o.value) for o in outputs.values()):
                conn.execute("SELECT onemap.store_job_features(%s)", (job_id,))
    return mine


def fail(conn: psycopg.Connection[Any], job_id: uuid.UUID, worker: str, message: str) -> bool:
    """Mark a running job failed.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    job_id : uuid.UUID
        The job.
    worker : str
        The worker that claimed it.
    message : str
        Shown to the client: must be safe (no SQL, DSN or path); log the
        details instead.

    Returns
    -------
    bool
        False when the job was no longer this worker's.
    """
    return _update_own(conn, job_id, worker, "status = 'failed', message = %s, " + _FINISHED_NOW,
                       (message,))


# --- what clients see --------------------------------------------------------------

_VISIBLE = sql.SQL(
    "status <> 'dismissed' AND (expires_at IS NULL OR expires_at > now()) "
    "AND (%(admin)s OR user_id IS NOT DISTINCT FROM %(user)s)"
)


def _who(principal: Principal) -> dict[str, Any]:
    return {"admin": ADMIN_ROLE in principal.roles, "user": principal.user_id}


def _visible_row(
    conn: psycopg.Connection[Any], query: sql.Composed, job_id: str | uuid.UUID,
    principal: Principal, **params: Any,
) -> dict[str, Any]:
    """The row ``query`` returns for a job the principal may see, or a 404.

    ``query`` binds ``%(id)s`` and :data:`_VISIBLE`'s parameters.
    """
    rows = fetch_dicts(conn, query, {"id": job_uuid(job_id), **_who(principal), **params})
    if not rows:
        raise _no_job(job_id)
    return rows[0]


def get(conn: psycopg.Connection[Any], job_id: str | uuid.UUID, principal: Principal) -> Job:
    """A job the principal may see.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    job_id : str or uuid.UUID
        The job.
    principal : Principal
        Who asks: their own jobs only (anonymous callers: anonymous jobs),
        every job for a district administrator.

    Returns
    -------
    Job

    Raises
    ------
    NotFoundError
        If there is no such job, it is someone else's, dismissed or expired.
    """
    query = sql.SQL("SELECT {} FROM onemap.job WHERE id = %(id)s AND {}").format(
        _COLUMNS, _VISIBLE)
    return _job(_visible_row(conn, query, job_id, principal))


def list_jobs(
    conn: psycopg.Connection[Any],
    principal: Principal,
    *,
    status: str | None = None,
    process_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """The jobs a principal may see, newest first.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    principal : Principal
        Who asks (see :func:`get`).
    status, process_id : str, optional
        Only jobs with this status / of this process.
    limit, offset : int
        Paging.

    Returns
    -------
    tuple of (list of Job, int)
        The page and the number of matching jobs.

    Raises
    ------
    ValueError
        For an unknown status or a negative limit or offset.
    """
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be ≥ 0, got {limit!r}, {offset!r}")
    where = sql.SQL("{} AND (%(status)s::text IS NULL OR status = %(status)s) "
                    "AND (%(process)s::text IS NULL OR process_id = %(process)s)").format(_VISIBLE)
    params = {**_who(principal), "status": status, "process": process_id,
              "limit": limit, "offset": offset}
    page = sql.SQL("SELECT {} FROM onemap.job WHERE {} ORDER BY created_at DESC, id "
                   "LIMIT %(limit)s OFFSET %(offset)s").format(_COLUMNS, where)
    rows = fetch_dicts(conn, page, params)
    [count] = fetch_dicts(
        conn, sql.SQL("SELECT count(*) AS n FROM onemap.job WHERE {}").format(where), params)
    return [_job(r) for r in rows], int(count["n"])


def get_result(
    conn: psycopg.Connection[Any], job_id: str | uuid.UUID, principal: Principal
) -> tuple[str, Any]:
    """The result of a successful job the principal may see.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    job_id : str or uuid.UUID
        The job.
    principal : Principal
        Who asks (see :func:`get`).

    Returns
    -------
    tuple of (str, object)
        Media type and the result: a JSON value for JSON media types, else bytes.

    Raises
    ------
    NotFoundError
        If the job is not visible or has no result (yet).
    """
    query = sql.SQL("SELECT status, result, result_bytes, result_media_type "
                    "FROM onemap.job WHERE id = %(id)s AND {}").format(_VISIBLE)
    row = _visible_row(conn, query, job_id, principal)
    if row["status"] != "successful":
        raise NotFoundError(f"job {str(job_id)[:64]!r} has no result ({row['status']})")
    value = row["result"] if row["result"] is not None else row["result_bytes"]
    return row["result_media_type"], value


def get_outputs(
    conn: psycopg.Connection[Any], job_id: str | uuid.UUID, principal: Principal
) -> dict[str, Output] | None:
    """The named outputs of a successful job the principal may see.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    job_id : str or uuid.UUID
        The job.
    principal : Principal
        Who asks (see :func:`get`).

    Returns
    -------
    dict of str to Output, or None
        Output id → output; None for a job that stored one unnamed result
        (:func:`complete`: read it with :func:`get_result`).

    Raises
    ------
    NotFoundError
        If the job is not visible or has not succeeded.
    """
    query = sql.SQL("SELECT status, result_media_type FROM onemap.job "
                    "WHERE id = %(id)s AND {}").format(_VISIBLE)
    row = _visible_row(conn, query, job_id, principal)
    if row["status"] != "successful":
        raise NotFoundError(f"job {str(job_id)[:64]!r} has no result ({row['status']})")
    if row["result_media_type"] is not None:
        return None
    rows = fetch_dicts(conn, "SELECT output_id, media_type, value, value_bytes "
                             "FROM onemap.job_output WHERE job_id = %s ORDER BY output_id",
                       (job_uuid(job_id),))
    return {r["output_id"]: Output(r["media_type"], r["value"] if r["value"] is not None
                                   else bytes(r["value_bytes"])) for r in rows}


def dismiss(conn: psycopg.Connection[Any], job_id: str | uuid.UUID, principal: Principal) -> Job:
    """Dismiss a job: cancel it if it has not finished, drop its result.

    A running job's worker notices within :data:`WATCH_SECONDS` (its
    watcher polls the row), cancels the statement the job's connection is
    running and rolls its transaction back; its result is not stored. The
    row stays as a tombstone until :func:`purge_expired`.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    job_id : str or uuid.UUID
        The job.
    principal : Principal
        Who asks (see :func:`get`).

    Returns
    -------
    Job
        The dismissed job.

    Raises
    ------
    NotFoundError
        If the job is not visible (already dismissed included).
    """
    query = sql.SQL(
        "UPDATE onemap.job SET status = 'dismissed', message = %(message)s, result = NULL, "
        " result_bytes = NULL, finished_at = coalesce(finished_at, now()), "
        " expires_at = now(), lease_until = NULL WHERE id = %(id)s AND {} RETURNING {}"
    ).format(_VISIBLE, _COLUMNS)
    job = _job(_visible_row(conn, query, job_id, principal, message=MSG_DISMISSED))
    conn.execute("DELETE FROM onemap.job_output WHERE job_id = %s", (job.id,))
    return job


# --- housekeeping --------------------------------------------------------------------


def purge_expired(conn: psycopg.Connection[Any]) -> int:
    """Delete jobs whose retention has passed (dismissed ones included).

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.

    Returns
    -------
    int
        Jobs deleted.
    """
    return len(fetch_dicts(conn, "DELETE FROM onemap.job WHERE expires_at <= now() RETURNING id"))


def requeue_stale(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """Take back running jobs whose lease ran out (their worker died).

    An asynchronous job with attempts left is accepted again and runs anew;
    one without, and a synchronous job (nobody waits for it any more), fails.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.

    Returns
    -------
    tuple of (int, int)
        Jobs requeued, jobs failed.
    """
    rows = fetch_dicts(
        conn,
        "WITH stale AS (SELECT id FROM onemap.job WHERE status = 'running' "
        " AND lease_until < now() FOR UPDATE SKIP LOCKED), "
        "decided AS (SELECT j.id, (j.mode = 'async' AND j.attempts < j.max_attempts) AS again "
        " FROM onemap.job j JOIN stale USING (id)) "
        "UPDATE onemap.job j SET "
        " status = CASE WHEN d.again THEN 'accepted' ELSE 'failed' END, "
        " message = format(CASE WHEN d.again THEN %(again)s ELSE %(gave_up)s END, "
        "  j.attempts, j.max_attempts, j.attempts, j.max_attempts), "
        " progress = CASE WHEN d.again THEN 0 ELSE j.progress END, "
        " lease_until = NULL, worker = CASE WHEN d.again THEN NULL ELSE j.worker END, "
        " finished_at = CASE WHEN d.again THEN NULL ELSE now() END, "
        " expires_at = CASE WHEN d.again THEN NULL ELSE now() + j.retention END "
        "FROM decided d WHERE j.id = d.id RETURNING j.id, j.status",
        {"again": MSG_REQUEUED, "gave_up": MSG_GAVE_UP},
    )
    requeued = sum(1 for r in rows if r["status"] == "accepted")
    for r in rows:
        LOGGER.warning("job %s: lease ran out, %s", r["id"],
                       "requeued" if r["status"] == "accepted" else "failed")
    return requeued, len(rows) - requeued


def principal_for_user(conn: psycopg.Connection[Any], user_id: int | None) -> Principal:
    """The principal a job runs as: its submitter, with their current roles.

    Uses :func:`spatial.auth.principal_for_user` when that module is there,
    else reads ``onemap.user_role`` itself.

    Parameters
    ----------
    conn : psycopg.Connection
        An owner connection.
    user_id : int or None
        The submitter; None for an anonymous job.

    Returns
    -------
    Principal
        :data:`~spatial.access.ANONYMOUS` for None; a user without roles gets
        the role ``public``.

    Raises
    ------
    AuthenticationError
        If the user no longer exists or is disabled.
    """
    if user_id is None:
        return ANONYMOUS
    try:
        from spatial.auth import principal_for_user as from_auth
    except ImportError:
        pass
    else:
        return from_auth(conn, user_id)
    rows = fetch_dicts(
        conn,
        "SELECT u.username, u.active, coalesce(array_agg(r.code ORDER BY r.code) "
        " FILTER (WHERE r.code IS NOT NULL), '{}') AS roles "
        "FROM onemap.app_user u LEFT JOIN onemap.user_role ur ON ur.user_id = u.id "
        "LEFT JOIN onemap.app_role r ON r.id = ur.role_id WHERE u.id = %s GROUP BY u.id",
        (user_id,),
    )
    if not rows or not rows[0]["active"]:
        raise AuthenticationError(MSG_NO_SUBMITTER)
    return Principal(user_id, rows[0]["username"], frozenset(rows[0]["roles"] or {"public"}))


# --- running a job -------------------------------------------------------------------

#: Runs a job: its inputs → (media type, result), or its named outputs.
Handler = Callable[[Job], "tuple[str, Any] | Mapping[str, Output]"]

#: Seconds between a running job's looks at its row: a dismissal stops the
#: job's work within about this long.
WATCH_SECONDS = 0.25


class JobDismissedError(NotFoundError):
    """The job was dismissed (``DELETE /jobs/{id}``) while it ran; its work stopped."""


@dataclass
class _Running:
    """The job the current thread runs, for :func:`report_progress` and its watcher."""

    job_id: uuid.UUID
    worker: str
    conninfo: str | None
    lease: timedelta
    lost: threading.Event = field(default_factory=threading.Event)
    connections: list[psycopg.Connection[Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def stop_work(self) -> None:
        """Mark the job lost and cancel what its connections are running."""
        self.lost.set()
        with self.lock:
            for conn in self.connections:
                try:
                    conn.cancel_safe(timeout=2.0)
                except (psycopg.Error, OSError) as exc:  # closed meanwhile: nothing to stop
                    LOGGER.debug("job %s: cancel: %s", self.job_id, type(exc).__name__)


_running: contextvars.ContextVar[_Running | None] = contextvars.ContextVar(
    "onemap_running_job", default=None
)


def _pool_connection(conninfo: str | None) -> Any:
    from spatial.db import get_pool

    return get_pool(conninfo).connection()


def job_dismissed() -> bool:
    """Whether the running job was dismissed (or taken back) meanwhile.

    Outside a job: False.

    Examples
    --------
    >>> job_dismissed()
    False
    """
    state = _running.get()
    return state is not None and state.lost.is_set()


def check_dismissed() -> None:
    """Stop here if the running job was dismissed: a cancellation point.

    Raises
    ------
    JobDismissedError
        If it was; the job's transaction then rolls back.

    Examples
    --------
    >>> check_dismissed()  # not in a job: nothing to stop
    """
    if job_dismissed():
        raise JobDismissedError(MSG_DISMISSED)


@contextmanager
def cancellable(conn: psycopg.Connection[Any]) -> Iterator[psycopg.Connection[Any]]:
    """Let a dismissal cancel the statement ``conn`` runs for the current job.

    The job's watcher calls ``conn.cancel_safe()`` when the job is dismissed:
    a long statement stops at once (``QueryCanceled``), and the work's
    transaction rolls back. Outside a job this does nothing.

    Parameters
    ----------
    conn : psycopg.Connection
        The connection the job's work runs on.

    Yields
    ------
    psycopg.Connection
        ``conn``.

    Raises
    ------
    JobDismissedError
        When the job was dismissed, in place of the cancelled statement's error.
    """
    state = _running.get()
    if state is None:
        yield conn
        return
    check_dismissed()
    with state.lock:
        state.connections.append(conn)
    try:
        yield conn
    except psycopg.errors.QueryCanceled:
        if state.lost.is_set():
            raise JobDismissedError(MSG_DISMISSED) from None
        raise
    finally:
        with state.lock:
            state.connections.remove(conn)


def report_progress(progress: int, message: str | None = None) -> bool:
    """Record how far the running job got (shown in its status).

    Call it from a process; outside a job it does nothing.

    Parameters
    ----------
    progress : int
        0–100 (clipped).
    message : str, optional
        A status message for the client.

    Returns
    -------
    bool
        False when the job was dismissed meanwhile: the process should stop
        (:func:`check_dismissed`).

    Examples
    --------
    >>> report_progress(50, "half way")  # not in a job: nothing to record
    True
    """
    state = _running.get()
    if state is None:
        return True
    if state.lost.is_set():
        return False
    try:
        with _pool_connection(state.conninfo) as conn:
            mine = heartbeat(conn, state.job_id, state.worker,
                             progress=max(0, min(100, int(progress))), message=message,
                             lease=state.lease)
    except (psycopg.Error, OnemapError) as exc:  # progress is advisory
        LOGGER.warning("job %s: progress not recorded: %s", state.job_id, type(exc).__name__)
        return True
    if not mine:
        state.stop_work()
    return mine


def _still_mine(conn: psycopg.Connection[Any], state: _Running) -> bool:
    rows = fetch_dicts(conn, "SELECT 1 AS mine FROM onemap.job WHERE id = %s "
                             "AND status = 'running' AND worker = %s", (state.job_id, state.worker))
    return bool(rows)


@contextmanager
def _watched(state: _Running, watch_seconds: float = WATCH_SECONDS) -> Iterator[None]:
    """While the block runs: look at the job's row every ``watch_seconds`` and
    renew its lease every third of it.

    When the job is no longer this worker's (dismissed, or requeued after its
    lease ran out) its work is stopped: :meth:`_Running.stop_work`.
    """
    done = threading.Event()

    def watch() -> None:
        renew_every = state.lease.total_seconds() / 3
        renewed = time.monotonic()
        while not done.wait(watch_seconds):
            try:
                with _pool_connection(state.conninfo) as conn:
                    if time.monotonic() - renewed >= renew_every:
                        mine = heartbeat(conn, state.job_id, state.worker, lease=state.lease)
                        renewed = time.monotonic()
                    else:
                        mine = _still_mine(conn, state)
            except Exception as exc:
                LOGGER.warning("job %s: not watched: %s", state.job_id, type(exc).__name__)
                continue
            if done.is_set():  # the run ended while we looked: nothing to stop
                return
            if not mine:
                LOGGER.info("job %s: dismissed or taken back; stopping its work", state.job_id)
                state.stop_work()
                return

    watcher = threading.Thread(target=watch, name=f"watch-{state.job_id}", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        # Not longer than a look takes: with the pool exhausted the watcher may be
        # waiting for a connection, and the run's caller must not wait with it.
        watcher.join(timeout=max(1.0, 4 * watch_seconds))


@dataclass(frozen=True)
class Outcome:
    """How a run ended.

    Attributes
    ----------
    job : Job
        The job as it was claimed.
    status : str
        ``successful``, ``failed`` or ``dismissed`` (it was dismissed while
        it ran and its work stopped).
    stored : bool
        Whether the outcome was recorded (False: the job was dismissed or
        taken back meanwhile).
    media_type, result
        The result of a successful run with one unnamed result.
    outputs : dict of str to Output, optional
        The named outputs of a successful run.
    error : BaseException or None
        What a failed run raised (not stored; the edge maps it to a status).
    message : str or None
        The safe message stored for a failed run.
    """

    job: Job
    status: str
    stored: bool
    media_type: str | None = None
    result: Any = None
    error: BaseException | None = None
    message: str | None = None
    outputs: dict[str, Output] | None = None


def run_job(
    job: Job,
    handler: Handler,
    *,
    worker: str,
    principal: Principal | None = None,
    conninfo: str | None = None,
    lease: timedelta = DEFAULT_LEASE,
) -> Outcome:
    """Run a claimed job as its submitter and record the outcome.

    Parameters
    ----------
    job : Job
        A job claimed by ``worker`` (running).
    handler : callable
        Job → (media type, result), or a mapping of output id → :class:`Output`.
    worker : str
        The claiming worker.
    principal : Principal, optional
        Who the job runs as; by default its submitter, read from the
        database with their current roles.
    conninfo : str, optional
        Database of the queue; defaults to the application database.
    lease : timedelta
        Lease renewed while the handler runs.

    Returns
    -------
    Outcome
        Onemap errors fail the job with their (safe) message; anything else
        with a generic message naming the job, its stack in the log. A job
        dismissed while it ran ends ``dismissed``: its work was stopped
        (:func:`cancellable`, :func:`check_dismissed`) and nothing is stored.
    """
    state = _Running(job.id, worker, conninfo, lease)
    error: BaseException | None = None
    try:
        if principal is None:
            with _pool_connection(conninfo) as conn:
                try:
                    principal = principal_for_user(conn, job.user_id)
                except AuthenticationError as exc:
                    raise AuthenticationError(MSG_NO_SUBMITTER) from exc
        token = _running.set(state)
        try:
            with acting_as(principal), _watched(state):
                answer = handler(job)
        finally:
            _running.reset(token)
        if state.lost.is_set():
            raise JobDismissedError(MSG_DISMISSED)
        outputs: dict[str, Output] | None = None
        media_type: str | None = None
        result: Any = None
        with _pool_connection(conninfo) as conn:
            if isinstance(answer, Mapping):
                outputs = dict(answer)
                stored = complete_outputs(conn, job.id, worker, outputs)
            else:
                media_type, result = answer
                stored = complete(conn, job.id, worker, media_type=media_type, result=result)
        if not stored:
            LOGGER.info("job %s: finished but no longer ours (dismissed or requeued)", job.id)
        return Outcome(job, "successful", stored, media_type, result, outputs=outputs)
    except JobDismissedError as exc:
        LOGGER.info("job %s (%s): dismissed while it ran; its work stopped", job.id,
                    job.process_id)
        return Outcome(job, "dismissed", False, error=exc, message=MSG_DISMISSED)
    except Exception as exc:
        if state.lost.is_set():  # its work was stopped (a cancelled statement): not a failure
            LOGGER.info("job %s (%s): dismissed while it ran (%s)", job.id, job.process_id,
                        type(exc).__name__)
            return Outcome(job, "dismissed", False, error=JobDismissedError(MSG_DISMISSED),
                           message=MSG_DISMISSED)
        if isinstance(exc, OnemapError):
            LOGGER.info("job %s (%s) failed: %s", job.id, job.process_id, exc)
            error, message = exc, str(exc)
        else:
            LOGGER.exception("job %s (%s) failed", job.id, job.process_id)
            error, message = exc, MSG_INTERNAL.format(id=job.id)
    try:
        with _pool_connection(conninfo) as conn:
            stored = fail(conn, job.id, worker, message)
    except Exception:
        LOGGER.exception("job %s: failure not recorded", job.id)
        stored = False
    return Outcome(job, "failed", stored, error=error, message=message)


def worker_name() -> str:
    """A name for a worker: host, process and a random tag.

    Examples
    --------
    >>> worker_name().count(":")
    2
    """
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobWorker:
    """Background threads that claim and run jobs.

    Each thread listens on :data:`CHANNEL` (a dedicated connection), claims
    jobs until none is left, then waits for a notification or the poll
    interval. The first thread also requeues jobs whose worker died and
    purges expired ones, at start and every ``maintenance_seconds``. While the
    database is away (:func:`database_away`: a restart, an outage) a thread tries
    again every :data:`AWAY_RETRY_SECONDS` and, once connected, listens again
    before it looks at the queue; other failures are retried with a growing
    pause. The threads never die of either.

    Parameters
    ----------
    handlers : mapping
        Process id → handler; only those processes' jobs are claimed.
    conninfo : str, optional
        Database of the queue; defaults to the application database at
        :meth:`start`.
    threads : int
        Jobs run at the same time.
    lease : timedelta
        Lease of a claimed job (renewed every third of it while it runs).
    poll_seconds : float
        Longest wait between looks at the queue without a notification.
    maintenance_seconds : float
        Interval of :func:`requeue_stale` and :func:`purge_expired`.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        conninfo: str | None = None,
        threads: int = 1,
        lease: timedelta = DEFAULT_LEASE,
        poll_seconds: float = 5.0,
        maintenance_seconds: float = 60.0,
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be ≥ 1, got {threads!r}")
        self.handlers = dict(handlers)
        self.conninfo = conninfo
        self.threads = threads
        self.lease = lease
        self.poll_seconds = poll_seconds
        self.maintenance_seconds = maintenance_seconds
        self.name = worker_name()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _conninfo(self) -> str:
        if self.conninfo is None:
            from spatial.settings import database_conninfo

            self.conninfo = database_conninfo()
        return self.conninfo

    def maintain(self) -> tuple[int, int, int]:
        """Requeue jobs whose worker died and purge expired ones.

        Returns
        -------
        tuple of int
            Jobs requeued, failed for good, purged.
        """
        with _pool_connection(self._conninfo()) as conn:
            requeued, failed = requeue_stale(conn)
            purged = purge_expired(conn)
        if purged:
            LOGGER.info("purged %d expired jobs", purged)
        return requeued, failed, purged

    def run_next(self, name: str | None = None) -> Outcome | None:
        """Claim and run one job.

        Parameters
        ----------
        name : str, optional
            Worker name to claim under (defaults to this worker's).

        Returns
        -------
        Outcome or None
            None when no job of these processes waits.
        """
        who = name or self.name
        with _pool_connection(self._conninfo()) as conn:
            job = claim_next(conn, who, process_ids=list(self.handlers), lease=self.lease)
        if job is None:
            return None
        LOGGER.info("job %s (%s): running, attempt %d", job.id, job.process_id, job.attempts)
        return run_job(job, self.handlers[job.process_id], worker=who,
                       conninfo=self._conninfo(), lease=self.lease)

    def run_once(self) -> int:
        """Run the waiting jobs, one after the other, until none is left.

        Returns
        -------
        int
            Jobs run.
        """
        count = 0
        while not self._stop.is_set() and self.run_next() is not None:
            count += 1
        return count

    def start(self) -> None:
        """Start the threads (once)."""
        if self._threads:
            return
        self._conninfo()
        self._stop.clear()
        for index in range(self.threads):
            thread = threading.Thread(target=self._loop, args=(index,), daemon=True,
                                      name=f"onemap-job-worker-{index}")
            self._threads.append(thread)
            thread.start()
        LOGGER.info("job worker %s started (%d threads)", self.name, self.threads)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the threads; a running job may finish within ``timeout``.

        A job still running after that stays claimed; when its lease runs
        out another worker runs it again.
        """
        if not self._threads:
            return
        self._stop.set()
        try:  # wake the listeners now rather than at their next poll
            with psycopg.connect(self._conninfo(), autocommit=True,
                             connect_timeout=CONNECT_TIMEOUT) as conn:
                conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        except psycopg.Error:
            pass
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            LOGGER.warning("job worker %s: %s still running a job at shutdown", self.name, alive)
        self._threads = []
        LOGGER.info("job worker %s stopped", self.name)

    def _loop(self, index: int) -> None:
        name = f"{self.name}/{index}"
        listener: psycopg.Connection[Any] | None = None
        next_maintenance = 0.0
        pause = 1.0
        away = False  # the database was away at the last attempt
        while not self._stop.is_set():
            try:
                if listener is None:
                    listener = listen_connection(self._conninfo(), CHANNEL, "onemap-worker")
                    if away:
                        LOGGER.warning("job worker %s: the database is back; listening again",
                                       name)
                        away = False
                if index == 0 and time.monotonic() >= next_maintenance:
                    self.maintain()
                    next_maintenance = time.monotonic() + self.maintenance_seconds
                while not self._stop.is_set() and self.run_next(name) is not None:
                    pass
                for _ in listener.notifies(timeout=self.poll_seconds, stop_after=1):
                    pass
                pause = 1.0
            except Exception as exc:
                if listener is not None:
                    listener.close()
                    listener = None
                if database_away(exc):
                    # A restart or an outage: try again every AWAY_RETRY_SECONDS (a
                    # refused connection costs nothing), so that the worker listens
                    # again as soon as the database is back, not a back-off later.
                    if not away:
                        LOGGER.warning("job worker %s: the database is unavailable (%s); "
                                       "retrying every %.0f s", name, type(exc).__name__,
                                       AWAY_RETRY_SECONDS)
                    away = True
                    self._stop.wait(AWAY_RETRY_SECONDS)
                    continue
                LOGGER.warning("job worker %s: %s; retrying in %.0f s", name,
                               type(exc).__name__, pause)
                LOGGER.debug("job worker %s failure", name, exc_info=True)
                self._stop.wait(pause)
                pause = min(pause * 2, 30.0)
        if listener is not None:
            listener.close()
