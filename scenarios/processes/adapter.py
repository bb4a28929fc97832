"""The one pygeoapi edge of the processes: :class:`ProcessAdapter`.

Each process's entry in ``pygeoapi-config.yml`` points here and names its
process::

    locate:
      type: process
      processor:
        name: scenarios.processes.ProcessAdapter
        process: locate

pygeoapi builds an adapter per request; the adapter reads its declaration
from :mod:`scenarios.processes.registry`. :class:`server.manager.JobManager`
calls :meth:`ProcessAdapter.validate` before a job is recorded and
:meth:`ProcessAdapter.run_outputs` to run it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pygeoapi.process.base import BaseProcessor

from scenarios.processes.base import Process
from scenarios.processes.registry import get_process
from spatial import jobs
from spatial.access import request_connection


class ProcessAdapter(BaseProcessor):
    """A declared :class:`~scenarios.processes.base.Process` as a pygeoapi processor.

    Parameters
    ----------
    processor_def : dict
        The entry's ``processor``: ``name`` (this class) and ``process`` (its id).
    """

    #: The process of a subclass that names it (the older configuration entries).
    process_id: ClassVar[str | None] = None

    def __init__(self, processor_def: dict[str, Any]) -> None:
        process_id = processor_def.get("process") or self.process_id
        self.process: Process = get_process(str(process_id))
        # a fresh description: pygeoapi edits it in place (OpenAPI generation)
        super().__init__(processor_def, self.process.describe())
        self.supports_outputs = True

    def validate(self, data: Any) -> dict[str, Any]:
        """Parse and check the inputs as the caller (before a job is recorded).

        Returns
        -------
        dict
            The inputs with their defaults filled in (what the job stores).

        Raises
        ------
        InvalidInputError, NotFoundError
            Naming the input.
        """
        parsed = self.process.parse(data)
        with request_connection() as conn:
            self.process.check(conn, parsed)
        return parsed.raw

    def run_outputs(self, data: dict[str, Any]) -> dict[str, jobs.Output]:
        """Run the process as the current principal; every declared output by id."""
        return self.process.execute(data)

    def execute(self, data: dict[str, Any], outputs: dict[str, Any] | None = None
                ) -> tuple[str, Any]:
        """pygeoapi's entry point: the outputs as one JSON object keyed by output id."""
        produced = self.run_outputs(data)
        return "application/json", {k: v.value for k, v in produced.items()
                                    if outputs is None or k in outputs}

    def __repr__(self) -> str:
        return f"<ProcessAdapter> {self.process.id}"


class LocateProcessor(ProcessAdapter):
    """``locate`` under its earlier dotted path (configurations written before the adapter)."""

    process_id = "locate"


class GridStatisticsProcessor(ProcessAdapter):
    """``grid-statistics`` under its earlier dotted path."""

    process_id = "grid-statistics"
