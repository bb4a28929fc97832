"""What every generator step shares: the scale, seeded randomness, ids, the
local metric CRS, the frames earlier steps published, and the database writer.

Steps work in a local metric CRS (CGCS2000 / 3-degree Gauss-Krüger, central
meridian 117°E, EPSG:4548) and hand GeoDataFrames in that CRS to the writer,
which transforms them to the storage CRS (EPSG:4490) once, vectorised.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

#: Local metric CRS of the generators: CGCS2000 3° GK zone, CM 117°E, no zone prefix.
METRIC_EPSG = 4548
#: Where the synthetic city stands: around Chaoyang district, Beijing (lon, lat).
ORIGIN_LONLAT = (116.45, 39.92)
#: The synthetic year of records ends here; all times derive from it, never from now().
REFERENCE_TIME = datetime(2026, 10, 31, 0, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Scale:
    """Size of a synthetic city.

    Attributes
    ----------
    name : str
        ``S``, ``M`` or ``L``.
    street_offices : int
        Street offices (街道) in the district.
    communities_per_street : int
        Communities (社区) per street office.
    households : int
        Target number of households (户) in the whole city.
    width_m, height_m : float
        Extent of the built-up area, metres.
    trucks : int
        Muck trucks.
    truck_days : int
        Days of GPS tracks.
    gps_points : int
        Rough target of GPS points (the tracks decide the exact number).
    events : int
        Events reported over the year.
    """

    name: str
    street_offices: int
    communities_per_street: int
    households: int
    width_m: float
    height_m: float
    trucks: int
    truck_days: int
    gps_points: int
    events: int


SCALES: dict[str, Scale] = {
    "S": Scale("S", 1, 1, 2_000, 1_300, 1_000, 8, 2, 40_000, 600),
    "M": Scale("M", 1, 8, 40_000, 4_500, 3_500, 60, 3, 1_500_000, 12_000),
    "L": Scale("L", 40, 8, 1_000_000, 26_000, 18_000, 2_500, 7, 35_000_000, 300_000),
}


class Task(Protocol):
    """Progress of one piece of work."""

    def advance(self, n: int = 1) -> None:
        """Record ``n`` more units done."""


class Reporter(Protocol):
    """Receives progress: the CLI shows it with rich, tests ignore it."""

    def task(self, description: str, total: int | None) -> Task:
        """Start a piece of work of ``total`` units."""


class _NullTask:
    def advance(self, n: int = 1) -> None:
        return None


class NullReporter:
    """A reporter that shows nothing."""

    def task(self, description: str, total: int | None) -> Task:
        """Return a task that ignores progress."""
        return _NullTask()


class Ids:
    """Hands out primary keys per table, so foreign keys are known before loading."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def take(self, table: str, n: int) -> np.ndarray:
        """Reserve ``n`` consecutive ids for ``table``.

        Parameters
        ----------
        table : str
            Table name.
        n : int
            How many ids.

        Returns
        -------
        numpy.ndarray
            int64 ids, starting at 1 for the first call.

        Examples
        --------
        >>> ids = Ids()
        >>> ids.take("road", 3).tolist(), ids.take("road", 2).tolist()
        ([1, 2, 3], [4, 5])
        """
        start = self._next.get(table, 1)
        self._next[table] = start + n
        return np.arange(start, start + n, dtype=np.int64)

    def last(self, table: str) -> int:
        """The highest id handed out for ``table`` (0 when none)."""
        return self._next.get(table, 1) - 1


@dataclass
class CityContext:
    """State shared by the generator steps of one run.

    Attributes
    ----------
    scale : Scale
        How big the city is.
    seed : int
        The run's seed; every random stream derives from it.
    writer : Any
        A :class:`democity.writer.CopyWriter` (or anything with its methods).
    reporter : Reporter
        Progress display.
    ids : Ids
        Primary keys per table.
    frames : dict
        What steps publish for later steps: name → (Geo)DataFrame in the metric CRS.
    graphs : dict
        Networks (e.g. ``"road"``: a networkx graph) published by steps.
    truth : dict
        Small facts for ``truth.generation`` (counts, parameters).
    """

    scale: Scale
    seed: int
    writer: Any
    reporter: Reporter = field(default_factory=NullReporter)
    ids: Ids = field(default_factory=Ids)
    frames: dict[str, Any] = field(default_factory=dict)
    graphs: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, Any] = field(default_factory=dict)

    def rng(self, stream: str) -> np.random.Generator:
        """A random generator of its own for each named stream.

        Steps draw from their own streams so that changing one step never
        changes what another generates.

        Parameters
        ----------
        stream : str
            Name of the stream, e.g. ``"trucks.gps"``.

        Returns
        -------
        numpy.random.Generator
            Seeded from the run's seed and the stream's name.

        Examples
        --------
        >>> a = CityContext(SCALES["S"], 7, writer=None).rng("lamps").random()
        >>> b = CityContext(SCALES["S"], 7, writer=None).rng("lamps").random()
        >>> bool(a == b)
        True
        """
        return np.random.default_rng([self.seed, zlib.crc32(stream.encode("utf-8"))])

    @contextmanager
    def step(self, description: str, total: int | None = None) -> Iterator[Task]:
        """Report progress of a piece of work.

        Parameters
        ----------
        description : str
            What is being made.
        total : int, optional
            Units of work, when known.

        Yields
        ------
        Task
            Call ``advance`` as work is done.
        """
        yield self.reporter.task(description, total)
