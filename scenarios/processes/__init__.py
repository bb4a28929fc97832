"""onemap's analyses as OGC API processes, declared as data.

- :mod:`scenarios.processes.base`: the shared input types, outputs, results
  and progress, and :class:`~scenarios.processes.base.Process`;
- one module per process (:mod:`~scenarios.processes.locate`,
  :mod:`~scenarios.processes.grid_statistics`), each a declaration and a
  ``run`` over the caller's connection;
- :mod:`scenarios.processes.registry`: the processes offered, by id;
- :mod:`scenarios.processes.adapter`: the one class pygeoapi loads.

See docs/adding-an-analysis.md.
"""

from scenarios.processes.adapter import GridStatisticsProcessor, LocateProcessor, ProcessAdapter

__all__ = ["GridStatisticsProcessor", "LocateProcessor", "ProcessAdapter"]
