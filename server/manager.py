"""pygeoapi's process manager on onemap's durable jobs (:mod:`spatial.jobs`).

Configured in ``pygeoapi-config.yml`` under ``server.manager`` by dotted path
(``server.manager.JobManager``). Jobs, their progress and results live in
``onemap.job``, never in threads with results on local disk, so they survive a
restart and every server process and ``onemap worker`` sees the same jobs:

- synchronous execution runs in the request, still recorded as a job;
- asynchronous execution (``Prefer: respond-async``) records an accepted job
  and answers 201 with its ``Location``; a :class:`~spatial.jobs.JobWorker`
  (a thread started with the app — :func:`worker_hook` — or
  ``onemap worker``) runs it as its submitter;
- ``/jobs`` lists, shows, returns results of and dismisses (``DELETE``) the
  caller's own jobs (a district administrator's: everyone's).

Inputs are validated against the process's declared JSON Schemas before
anything is recorded (:func:`validate_inputs`): a bad request is a 400 naming
what was wrong, not a failed job. A failing process answers with a safe
message; its details go to the log.
"""

from __future__ import annotations

import base64
import json
import logging
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any

import psycopg
from jsonschema import Draft202012Validator
from pygeoapi.process.base import (
    BaseProcessor,
    JobNotFoundError,
    JobResultNotFoundError,
    ProcessorExecuteError,
)
from pygeoapi.process.manager.base import BaseManager
from pygeoapi.util import JobStatus, RequestedProcessExecutionMode, Subscriber

from server.etag import current as current_headers
from spatial import jobs
from spatial.access import current_principal
from spatial.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    OnemapError,
    error_answer,
)
from spatial.wellformed import check_json_value

LOGGER = logging.getLogger(__name__)

_DATABASE_DOWN = "the job store is unavailable; try again later / 作业库暂不可用，请稍后再试"


def _timestamp(moment: datetime | None) -> str | None:
    """pygeoapi's timestamp format (UTC, microseconds, ``Z``).

    Examples
    --------
    >>> _timestamp(datetime(2024, 5, 1, 8, 0, tzinfo=UTC))
    '2024-05-01T08:00:00.000000Z'
    """
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def execute_error(error: BaseException | None, message: str) -> ProcessorExecuteError:
    """A pygeoapi execution error with the status and code of an onemap error.

    Parameters
    ----------
    error : BaseException or None
        What failed: an :class:`~spatial.errors.OnemapError` is answered with
        the status and OGC code of :data:`spatial.errors.ERROR_ANSWERS`, as on
        every other route; anything else is 500 ``NoApplicableCode``.
    message : str
        Shown to the client (safe: the error's own message, or a generic one).

    Returns
    -------
    ProcessorExecuteError
        pygeoapi answers it with an OGC exception document.

    Examples
    --------
    >>> from spatial.errors import ConflictError
    >>> e = execute_error(ConflictError("stale"), "stale")
    >>> int(e.http_status_code), e.ogc_exception_code
    (412, 'PreconditionFailed')
    >>> int(execute_error(None, "failed").http_status_code)
    500
    """
    status, code = (error_answer(error) if isinstance(error, OnemapError)
                    else (500, "NoApplicableCode"))
    translated = ProcessorExecuteError(user_msg=message)
    translated.http_status_code = HTTPStatus(status)
    translated.ogc_exception_code = code
    return translated


# --- input validation ------------------------------------------------------------


def inputs_schema(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON Schema of a process's ``inputs`` object, from its description.

    Each input's ``schema`` becomes a property (an array of it when
    ``maxOccurs`` > 1); inputs with ``minOccurs`` ≥ 1 (the OGC default) are
    required; nothing undeclared is allowed.

    Parameters
    ----------
    metadata : mapping
        The process description (``PROCESS_METADATA``).

    Returns
    -------
    dict
        A JSON Schema (draft 2020-12).

    Examples
    --------
    >>> s = inputs_schema({"inputs": {"n": {"schema": {"type": "integer"}},
    ...                               "k": {"schema": {"type": "string"}, "minOccurs": 0}}})
    >>> s["required"], s["additionalProperties"]
    (['n'], False)
    """
    properties: dict[str, Any] = {}
    required: list[str] = []
    for name, spec in (metadata.get("inputs") or {}).items():
        schema = dict(spec.get("schema") or {})
        low = int(spec.get("minOccurs", 1))
        high = spec.get("maxOccurs", 1)
        if high == "unbounded" or int(high) > 1:
            schema = {"type": "array", "items": schema, "minItems": low,
                      **({} if high == "unbounded" else {"maxItems": int(high)})}
        properties[name] = schema
        if low >= 1:
            required.append(name)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "properties": properties, "required": required, "additionalProperties": False}


def validate_inputs(metadata: Mapping[str, Any], data: Any) -> dict[str, Any]:
    """Check execution inputs against the process's declared schemas.

    Parameters
    ----------
    metadata : mapping
        The process description.
    data : object
        The ``inputs`` of the execute request.

    Returns
    -------
    dict
        The inputs with the declared defaults filled in.

    Raises
    ------
    InvalidInputError
        Inputs that are not a JSON object, or hold what no JSON column can
        store (a NaN or infinite number, a NUL or lone surrogate in a string,
        nesting deeper than :data:`~spatial.wellformed.MAX_JSON_DEPTH`: the
        job's inputs are ``jsonb``); else naming each offending input and what
        was wrong (the first three).

    Examples
    --------
    >>> meta = {"inputs": {"x": {"schema": {"type": "number"}},
    ...                    "tol": {"schema": {"type": "number", "default": 15}, "minOccurs": 0}}}
    >>> validate_inputs(meta, {"x": 1.5})
    {'x': 1.5, 'tol': 15}
    >>> validate_inputs(meta, {"x": "east"})
    Traceback (most recent call last):
    spatial.errors.InvalidInputError: invalid input / 输入无效: x: 'east' is not of type 'number'
    >>> validate_inputs(meta, {"x": float("nan")})
    Traceback (most recent call last):
    spatial.errors.InvalidInputError: invalid input / 输入无效: inputs at $.x holds nan, which \
is not a finite number / 数值须为有限数
    """
    if not isinstance(data, dict):
        raise InvalidInputError("invalid input / 输入无效: inputs must be a JSON object, "
                                f"got {type(data).__name__}")
    check_json_value(data, "invalid input / 输入无效: inputs")
    validator = Draft202012Validator(inputs_schema(metadata),
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        reasons = []
        for error in errors[:3]:
            where = ".".join(str(p) for p in error.absolute_path)
            text = error.message if len(error.message) <= 200 else error.message[:197] + "..."
            reasons.append(f"{where}: {text}" if where else text)
        raise InvalidInputError("invalid input / 输入无效: " + "; ".join(reasons))
    out = dict(data)
    for name, spec in (metadata.get("inputs") or {}).items():
        schema = spec.get("schema") or {}
        if name not in out and "default" in schema:
            out[name] = schema["default"]
    return out


def validate_for(processor: BaseProcessor, data: Any) -> dict[str, Any]:
    """Validate inputs with the processor's own ``validate`` when it has one."""
    own = getattr(processor, "validate", None)
    if callable(own):
        return dict(own(data))
    return validate_inputs(processor.metadata, data)


# --- outputs: selection and response form -----------------------------------------


def select_outputs(metadata: Mapping[str, Any], requested: Any) -> list[str] | None:
    """Check an execute request's ``outputs`` against the declared outputs.

    Parameters
    ----------
    metadata : mapping
        The process description.
    requested : dict or None
        The request's ``outputs``: output id → ``{"transmissionMode": "value",
        "format": {"mediaType": ...}}`` (both optional).

    Returns
    -------
    list of str or None
        The selected output ids; None when the request selects none (every
        output is returned).

    Raises
    ------
    InvalidInputError
        For an undeclared output, a transmission mode other than ``value`` or
        a media type the output is not offered in, naming the output.

    Examples
    --------
    >>> meta = {"outputs": {"a": {"schema": {"contentMediaType": "application/json"}},
    ...                     "b": {"schema": {}}}}
    >>> select_outputs(meta, {"b": {}}), select_outputs(meta, None)
    (['b'], None)
    >>> select_outputs(meta, {"c": {}})
    Traceback (most recent call last):
    spatial.errors.InvalidInputError: invalid output / 输出无效: outputs.c: no such output; \
declared: a, b
    """
    if not requested:
        return None
    declared = metadata.get("outputs") or {}
    selected = []
    for output_id, spec in requested.items():
        where = f"invalid output / 输出无效: outputs.{str(output_id)[:64]}"
        if output_id not in declared:
            raise InvalidInputError(f"{where}: no such output; declared: "
                                    f"{', '.join(declared)}")
        spec = spec or {}
        mode = spec.get("transmissionMode", "value")
        if mode != "value":
            raise InvalidInputError(f"{where}: transmissionMode {str(mode)[:32]!r} is not "
                                    "offered, only 'value'")
        wanted = (spec.get("format") or {}).get("mediaType")
        offered = (declared[output_id].get("schema") or {}).get("contentMediaType")
        if wanted is not None and offered is not None and wanted != offered:
            raise InvalidInputError(f"{where}: format {str(wanted)[:64]!r} is not offered, "
                                    f"only {offered!r}")
        selected.append(output_id)
    return selected


def _qualified(output: jobs.Output) -> Any:
    """An output's value in a results document (OGC API Processes 1.0 ``results``):
    numbers, strings and booleans as they are; objects and arrays as a qualified
    value with their media type; bytes base64-encoded."""
    value = output.value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"value": base64.b64encode(bytes(value)).decode("ascii"),
                "mediaType": output.media_type, "encoding": "base64"}
    if isinstance(value, (dict, list)):
        return {"value": value, "mediaType": output.media_type}
    return value


#: The media type of a raw result of several outputs (OGC API Processes 1.0, 7.11.4).
MULTIPART = "multipart/related"


def wants_multipart(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for ``multipart/related``.

    Examples
    --------
    >>> wants_multipart("multipart/related, application/json;q=0.5")
    True
    >>> wants_multipart("application/json"), wants_multipart(None)
    (False, False)
    >>> wants_multipart("multipart/related;q=0")
    False
    """
    for item in (accept or "").split(","):
        media, *params = (part.strip() for part in item.split(";"))
        if media.lower() != MULTIPART:
            continue
        q = next((p.partition("=")[2] for p in params if p.lower().startswith("q=")), "1")
        try:
            return float(q) > 0
        except ValueError:
            return True
    return False


def multipart_body(parts: Mapping[str, jobs.Output]) -> tuple[str, bytes]:
    """Outputs as one ``multipart/related`` body: a part per output, its media
    type as ``Content-Type`` and its id as ``Content-ID``.

    Examples
    --------
    >>> media, body = multipart_body({"a": jobs.Output("application/json", {"n": 1})})
    >>> media.startswith("multipart/related; boundary=")
    True
    >>> b"Content-ID: <a>" in body and b'{"n": 1}' in body
    True
    """
    encoded: list[tuple[str, str, bytes]] = []
    for oid, output in parts.items():
        value = output.value
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = bytes(value)
        elif isinstance(value, str) and not jobs.is_json_media_type(output.media_type):
            data = value.encode("utf-8")
        else:
            data = json.dumps(value, ensure_ascii=False).encode("utf-8")
        encoded.append((oid, output.media_type, data))
    boundary = "onemap-" + uuid.uuid4().hex
    while any(boundary.encode() in data for _, _, data in encoded):
        boundary = "onemap-" + uuid.uuid4().hex
    chunks = []
    for oid, media, data in encoded:
        chunks.append(f"--{boundary}\r\nContent-Type: {media}\r\n"
                      f"Content-ID: <{oid}>\r\n\r\n".encode() + data + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    first = encoded[0][1] if encoded else "application/json"
    return f'{MULTIPART}; boundary="{boundary}"; type="{first}"', b"".join(chunks)


def _multipart_asked() -> bool:
    """Whether the running request asks for ``multipart/related``."""
    return wants_multipart(current_headers().accept)


def render_outputs(outputs: Mapping[str, jobs.Output], selected: list[str] | None,
                   response: str, *, multipart: bool = False) -> tuple[str, Any]:
    """The answer to an execution (or its job's results) for the request's form.

    - ``document``: a results document, an object keyed by output id
      (:func:`_qualified` values);
    - ``raw`` with one output: that output's value, in its media type;
    - ``raw`` with several: ``multipart/related`` (:func:`multipart_body`, OGC
      API Processes 1.0) when the request's ``Accept`` asks for it
      (``multipart``); otherwise one JSON object keyed by output id with their
      values, which JSON clients (the map widget included) read directly.

    Examples
    --------
    >>> out = {"a": jobs.Output("application/json", {"n": 1}),
    ...        "b": jobs.Output("application/geo+json", {"type": "FeatureCollection"})}
    >>> render_outputs(out, ["b"], "raw")
    ('application/geo+json', {'type': 'FeatureCollection'})
    >>> render_outputs(out, None, "raw")[1]["a"]
    {'n': 1}
    >>> render_outputs(out, None, "raw", multipart=True)[0].split(";")[0]
    'multipart/related'
    >>> render_outputs(out, ["a"], "document")
    ('application/json', {'a': {'value': {'n': 1}, 'mediaType': 'application/json'}})
    """
    chosen = {k: outputs[k] for k in (selected or outputs) if k in outputs}
    if response == "document":
        return "application/json", {k: _qualified(v) for k, v in chosen.items()}
    if len(chosen) == 1:
        [only] = chosen.values()
        return only.media_type, only.value
    if multipart:
        return multipart_body(chosen)
    return "application/json", {k: v.value for k, v in chosen.items()}


def execution_mode_async(metadata: Mapping[str, Any],
                         preference: RequestedProcessExecutionMode | None) -> bool:
    """Whether an execution runs asynchronously (OGC API Processes 1.0, 7.11.2.3).

    The process's ``jobControlOptions`` decide when it offers one mode only
    (a long optimisation: ``async-execute`` alone); when it offers both, the
    caller's ``Prefer: respond-async`` does, and synchronous is the default.
    A preference the process cannot honour is ignored, as HTTP preferences
    are: ``Preference-Applied`` tells the caller what happened.

    Examples
    --------
    >>> execution_mode_async({"jobControlOptions": ["async-execute"]}, None)
    True
    >>> execution_mode_async({"jobControlOptions": ["sync-execute", "async-execute"]}, None)
    False
    >>> execution_mode_async({"jobControlOptions": ["sync-execute"]},
    ...                      RequestedProcessExecutionMode.respond_async)
    False
    """
    options = metadata.get("jobControlOptions") or ["sync-execute"]
    if "sync-execute" not in options:
        return True
    if "async-execute" not in options:
        return False
    return preference == RequestedProcessExecutionMode.respond_async


# --- the manager -----------------------------------------------------------------


@contextmanager
def _owner() -> Iterator[psycopg.Connection[Any]]:
    """An owner connection for the job table (a system table; no row-level security)."""
    from psycopg_pool import PoolTimeout

    from spatial.db import get_pool

    try:
        with get_pool().connection() as conn:
            yield conn
    except (psycopg.OperationalError, PoolTimeout) as exc:
        LOGGER.error("job store unavailable: %s", type(exc).__name__)
        raise DatabaseUnavailableError(_DATABASE_DOWN) from exc


def _number(options: Mapping[str, Any], key: str, default: float, low: float) -> float:
    value = options.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"server.manager.options.{key} must be a number, "
                                 f"got {value!r}") from None
    if number < low:
        raise ConfigurationError(f"server.manager.options.{key} must be ≥ {low}, got {value!r}")
    return number


class JobManager(BaseManager):
    """Process manager whose jobs live in PostgreSQL.

    Parameters
    ----------
    manager_def : dict
        ``server.manager`` of the configuration, with ``options``:
        ``lease_seconds`` (60), ``retention_hours`` (168), ``max_attempts``
        (3), ``worker_threads`` (1; 0 when only ``onemap worker`` runs jobs),
        ``poll_seconds`` (5). ``connection`` and ``output_dir`` are not used:
        the database is the application's, results are stored in it.
    """

    def __init__(self, manager_def: dict[str, Any]) -> None:
        super().__init__(manager_def)
        self.is_async = True
        self.supports_subscribing = False
        options = manager_def.get("options") or {}
        self.lease = timedelta(seconds=_number(options, "lease_seconds", 60, 3))
        self.retention = timedelta(hours=_number(options, "retention_hours", 168, 0))
        self.max_attempts = int(_number(options, "max_attempts", 3, 1))
        self.worker_threads = int(_number(options, "worker_threads", 1, 0))
        self.poll_seconds = _number(options, "poll_seconds", 5, 0.1)
        self.sync_worker = f"sync:{jobs.worker_name()}"
        if self.output_dir is not None:
            LOGGER.warning("server.manager.output_dir is ignored: job results live in PostgreSQL")

    # pygeoapi's own execution handlers write through these; ours do not.
    def add_job(self, job_metadata: dict[str, Any]) -> str:
        """Not used: jobs are recorded by :meth:`execute_process` with their submitter."""
        raise NotImplementedError("JobManager records jobs in execute_process")

    def update_job(self, job_id: str, update_dict: dict[str, Any]) -> bool:
        """Not used: job state changes go through :mod:`spatial.jobs`."""
        raise NotImplementedError("JobManager updates jobs through spatial.jobs")

    @staticmethod
    def job_document(job: jobs.Job) -> dict[str, Any]:
        """A job as pygeoapi's job dictionary.

        A job not started yet shows its creation time as ``started``:
        pygeoapi sorts the job list by it and cannot compare a missing value.
        """
        return {
            "type": "process",
            "identifier": str(job.id),
            "process_id": job.process_id,
            "status": job.status,
            "message": job.message,
            "progress": job.progress,
            "parameters": None,
            "created": _timestamp(job.created_at),
            "started": _timestamp(job.started_at or job.created_at),
            "finished": _timestamp(job.finished_at),
            "updated": _timestamp(job.updated_at),
            "mimetype": job.result_media_type or "application/json",
            "location": None,
        }

    def get_jobs(self, status: JobStatus | None = None, limit: int | None = None,
                 offset: int | None = None) -> dict[str, Any]:
        """The caller's jobs, newest first (a district administrator's: all)."""
        with _owner() as conn:
            page, total = jobs.list_jobs(
                conn, current_principal(), status=status.value if status else None,
                limit=limit if limit is not None else 100, offset=offset or 0)
        return {"jobs": [self.job_document(j) for j in page], "numberMatched": total}

    def get_job(self, job_id: str) -> dict[str, Any]:
        """One of the caller's jobs; :class:`JobNotFoundError` otherwise."""
        try:
            with _owner() as conn:
                return self.job_document(jobs.get(conn, job_id, current_principal()))
        except NotFoundError:
            raise JobNotFoundError() from None

    def get_job_result(self, job_id: str) -> tuple[str, Any]:
        """Media type and result of one of the caller's successful jobs."""
        try:
            with _owner() as conn:
                principal = current_principal()
                outputs = jobs.get_outputs(conn, job_id, principal)
                if outputs is None:
                    media_type, value = jobs.get_result(conn, job_id, principal)
                else:
                    job = jobs.get(conn, job_id, principal)
                    media_type, value = render_outputs(outputs, job.outputs, job.response,
                                                      multipart=_multipart_asked())
        except NotFoundError:
            raise JobResultNotFoundError() from None
        if not jobs.is_json_media_type(media_type):
            return media_type, bytes(value)
        if media_type != "application/json":  # pygeoapi passes other types through as they are
            return media_type, json.dumps(value, ensure_ascii=False)
        return media_type, value

    def delete_job(self, job_id: str) -> bool:
        """Dismiss one of the caller's jobs (cancel it, drop its result)."""
        try:
            with _owner() as conn:
                jobs.dismiss(conn, job_id, current_principal())
        except NotFoundError:
            raise JobNotFoundError() from None
        return True

    def run(self, job: jobs.Job) -> tuple[str, Any] | dict[str, jobs.Output]:
        """Run a job's process: the handler given to workers and to sync runs.

        A process with named outputs (``run_outputs``) returns them by id;
        another its media type and result.
        """
        processor = self.get_processor(job.process_id)
        processor.set_job_id(str(job.id))
        run_outputs = getattr(processor, "run_outputs", None)
        if callable(run_outputs):  # a declared process: its named outputs
            return dict(run_outputs(job.inputs))
        media_type, outputs = processor.execute(job.inputs)
        if isinstance(outputs, bytes) and jobs.is_json_media_type(media_type):
            outputs = outputs.decode("utf-8")
        return media_type, outputs

    def worker(self, threads: int | None = None) -> jobs.JobWorker:
        """A worker for every configured process (not started)."""
        return jobs.JobWorker(
            dict.fromkeys(self.processes, self.run),
            threads=threads if threads is not None else max(1, self.worker_threads),
            lease=self.lease, poll_seconds=self.poll_seconds,
        )

    def execute_process(
        self,
        process_id: str,
        data_dict: dict[str, Any],
        execution_mode: RequestedProcessExecutionMode | None = None,
        requested_outputs: dict[str, Any] | None = None,
        subscriber: Subscriber | None = None,
        requested_response: str | None = "raw",
    ) -> tuple[str, Any, Any, JobStatus, dict[str, str] | None]:
        """Validate, record and run (sync) or enqueue (async) an execution.

        Returns
        -------
        tuple
            Job id, media type, outputs (None when accepted), status and the
            headers to add, as pygeoapi expects.

        Raises
        ------
        ProcessorExecuteError
            With the status of the onemap error (400 for bad inputs) and its
            message, or 500 and a generic message for anything unexpected.
        """
        processor = self.get_processor(process_id)
        principal = current_principal()
        if subscriber is not None:
            LOGGER.debug("callbacks are not supported; subscriber ignored")
        response = requested_response if requested_response in ("raw", "document") else "raw"
        run_async = execution_mode_async(processor.metadata, execution_mode)
        try:
            selected = select_outputs(processor.metadata, requested_outputs)
            inputs = validate_for(processor, data_dict)
            with _owner() as conn:
                job = jobs.submit(
                    conn, process_id, inputs, principal=principal,
                    mode="async" if run_async else "sync", response=response,
                    worker=None if run_async else self.sync_worker, lease=self.lease,
                    retention=self.retention, max_attempts=self.max_attempts,
                    outputs=selected)
        except OnemapError as exc:
            raise execute_error(exc, str(exc)) from None
        if run_async:
            LOGGER.info("job %s (%s) accepted", job.id, process_id)
            return (str(job.id), "application/json", None, JobStatus.accepted,
                    {"Preference-Applied": RequestedProcessExecutionMode.respond_async.value})
        outcome = jobs.run_job(job, self.run, worker=self.sync_worker, principal=principal,
                               lease=self.lease)
        if outcome.status != "successful":
            raise execute_error(outcome.error, outcome.message or "")
        headers = (None if execution_mode != RequestedProcessExecutionMode.wait
                   else {"Preference-Applied": RequestedProcessExecutionMode.wait.value})
        media_type: str | None
        if outcome.outputs is not None:
            media_type, value = render_outputs(outcome.outputs, selected, response,
                                               multipart=_multipart_asked())
        else:
            media_type, value = outcome.media_type, outcome.result
            if response == "document":  # one unnamed result
                media_type, value = "application/json", {"outputs": [value]}
        return str(job.id), media_type, value, JobStatus.successful, headers

    def __repr__(self) -> str:
        return f"<JobManager> {self.name}"


# --- running workers ---------------------------------------------------------------


def worker_hook(manager: object) -> Callable[[], Callable[[], None] | None]:
    """A start-up hook for :func:`server.app.create_app`.

    Parameters
    ----------
    manager : object
        pygeoapi's process manager of the app.

    Returns
    -------
    callable
        Starts a worker thread pool when the manager is a :class:`JobManager`
        with ``worker_threads`` ≥ 1 and returns its ``stop`` (called at shutdown).
    """

    def start() -> Callable[[], None] | None:
        if not isinstance(manager, JobManager) or manager.worker_threads < 1:
            return None
        worker = manager.worker()
        worker.start()
        return worker.stop

    return start


def load_manager(config_path: Path | None = None) -> JobManager:
    """The process manager the configuration names (for ``onemap worker``).

    Parameters
    ----------
    config_path : Path, optional
        The hand-written pygeoapi configuration; defaults to the application's.
        The configuration read is the one generated from it and the layer
        declarations (:func:`server.config.load_config`), as the server reads it.

    Returns
    -------
    JobManager

    Raises
    ------
    ConfigurationError
        If the configuration does not use :class:`JobManager`.
    """
    import dataclasses

    from pygeoapi.process.manager.base import get_manager

    from server.config import load_config
    from spatial.settings import get_settings

    settings = get_settings()
    if config_path is not None:
        settings = dataclasses.replace(settings, config_path=config_path)
    manager = get_manager(load_config(settings))
    if not isinstance(manager, JobManager):
        raise ConfigurationError(
            f"server.manager of {settings.config_path.name} is {manager.name!r}, "
            "not server.manager.JobManager")
    return manager


def run_worker(threads: int = 1, *, once: bool = False,
               stop: threading.Event | None = None) -> int:
    """Run jobs in this process until stopped (``onemap worker``).

    Parameters
    ----------
    threads : int
        Jobs run at the same time.
    once : bool
        Requeue and purge, run the jobs waiting now, then return.
    stop : threading.Event, optional
        Set to stop; SIGINT and SIGTERM set it too (in the main thread).

    Returns
    -------
    int
        Jobs run (``once``), else 0.
    """
    manager = load_manager()
    worker = manager.worker(threads)
    if once:
        worker.maintain()
        return worker.run_once()
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    worker.start()
    try:
        stop.wait()
    finally:
        worker.stop()
    return 0
