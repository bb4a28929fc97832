"""Progress by named stage, each report a cancellation point."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scenarios.processes.inputs import Text
from spatial import jobs


@dataclass(frozen=True)
class Stage:
    """A named stage of a run, with its share of the work."""

    id: str
    title: Text
    weight: float = 1.0


class Progress:
    """Stage names and fractions, recorded in the job's status (``message``, ``progress``).

    Every report is a cancellation point: when the job was dismissed it
    raises :class:`spatial.jobs.JobDismissedError`, and the run's transaction
    rolls back.

    Parameters
    ----------
    stages : sequence of Stage
        The process's stages, in order.
    report : callable
        ``(percent, message) → still ours``; :func:`spatial.jobs.report_progress`.
    min_interval : float
        Fewest seconds between two recorded :meth:`advance` reports (each is a
        write): a loop may call it as often as it likes. Every call still
        checks for a dismissal, and every :meth:`stage` is recorded.

    Examples
    --------
    >>> seen = []
    >>> p = Progress([Stage("load", {"en": "loading", "zh": "读取"}, 1),
    ...               Stage("solve", {"en": "solving", "zh": "求解"}, 3)],
    ...              report=lambda pct, msg: seen.append((pct, msg)) or True, min_interval=0)
    >>> p.stage("load"); p.stage("solve"); p.advance(0.5)
    >>> seen
    [(0, 'loading / 读取 (1/2)'), (25, 'solving / 求解 (2/2)'), (62, 'solving / 求解 (2/2) 50%')]
    """

    def __init__(self, stages: Sequence[Stage],
                 report: Callable[[int, str | None], bool] = jobs.report_progress,
                 min_interval: float = 0.2) -> None:
        self.stages = list(stages)
        self.total = sum(s.weight for s in self.stages) or 1.0
        self.report = report
        self.min_interval = min_interval
        self.index = -1
        self._last = float("-inf")

    def _send(self, fraction: float, suffix: str = "") -> None:
        stage = self.stages[self.index]
        done = sum(s.weight for s in self.stages[:self.index]) + stage.weight * fraction
        message = (f"{stage.title['en']} / {stage.title['zh']} "
                   f"({self.index + 1}/{len(self.stages)}){suffix}")
        self._last = time.monotonic()
        if not self.report(min(99, int(100 * done / self.total)), message):
            raise jobs.JobDismissedError(jobs.MSG_DISMISSED)
        jobs.check_dismissed()

    def stage(self, stage_id: str) -> None:
        """Start the stage ``stage_id`` (a cancellation point)."""
        ids = [s.id for s in self.stages]
        if stage_id not in ids:
            raise ValueError(f"no stage {stage_id!r}; declared: {ids}")
        self.index = ids.index(stage_id)
        self._send(0.0)

    def advance(self, fraction: float, note: str | None = None, *, force: bool = False) -> None:
        """Record how far the current stage got, 0–1 (a cancellation point).

        Parameters
        ----------
        fraction : float
            0–1 within the stage.
        note : str, optional
            Appended to the message (an optimisation's gap: "gap 1.2% / 间隙 1.2%").
        force : bool
            Record it even within ``min_interval`` of the last report (a first answer).
        """
        if self.index < 0:
            raise ValueError("advance() before the first stage()")
        if not force and time.monotonic() - self._last < self.min_interval:
            jobs.check_dismissed()  # not recorded, still a cancellation point
            return
        fraction = max(0.0, min(1.0, fraction))
        self._send(fraction, f" {int(100 * fraction)}%" + (f" · {note}" if note else ""))
