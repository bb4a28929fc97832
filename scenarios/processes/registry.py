"""The processes onemap offers: every :class:`~scenarios.processes.base.Process`, by id.

Listed here by import, not discovered: adding a process is its module, one
line below and its entry in ``pygeoapi-config.yml`` (pointing at
:class:`scenarios.processes.adapter.ProcessAdapter`); a test checks that the
configuration and this list agree and that every process's example runs.
"""

from __future__ import annotations

from scenarios.processes import (
    grid_statistics,
    locate,
    pipeline_incident,
    refuse_flow,
    refuse_forecast,
    refuse_placement,
    service_area,
    spill_trace,
    valve_segments,
)
from scenarios.processes.base import Process
from spatial.errors import ConfigurationError

PROCESSES: dict[str, Process] = {p.id: p for p in (
    locate.PROCESS,
    grid_statistics.PROCESS,
    service_area.PROCESS,
    pipeline_incident.PROCESS,
    valve_segments.PROCESS,
    refuse_placement.PROCESS,
    refuse_flow.PROCESS,
    refuse_forecast.PROCESS,
    spill_trace.PROCESS,
)}


def get_process(process_id: str) -> Process:
    """The declared process ``process_id``.

    Raises
    ------
    ConfigurationError
        If no process has this id (the configuration names one that is not declared).

    Examples
    --------
    >>> get_process("locate").title["en"]
    'Locate a point (jurisdiction)'
    """
    try:
        return PROCESSES[process_id]
    except KeyError:
        raise ConfigurationError(f"no process {process_id!r} is declared in "
                                 "scenarios.processes.registry") from None
