"""Pipeline incidents (地下管线事故): valve segments, valve isolation with N-1 fallback,
supply loss.

A network is nodes, links (pipes, each between two nodes) and valves. A valve
sits **on a link at one end, next to a node**, as WNTR models it: closing it
separates that link from that node. Each such link end is a *slot*; a valve
covers one or more slots:

- a WNTR valve (``link``, ``node``): one slot;
- a database valve at a node (``onemap.valve.node_id``; the demo city gives
  every valve a node of its own): every slot at that node — closing it cuts
  the network there, as :meth:`spatial.network.Graph.valve_cuts` takes the
  node out;
- a database valve on a segment (``segment_id``, position unknown): both
  slots of that segment — closing it takes the segment out.

Valve segments
    The partition of nodes and links into what stays connected when every
    valve is closed: the connected components of nodes and links joined at
    every slot no valve covers. It is exactly ``wntr.metrics.valve_segments``
    (checked on WNTR's networks in ``tests/scenarios/test_pipeline.py``): a link
    with valves at both ends is a segment of its own, a link with a valve at
    one end belongs to its other end's segment. A valve whose two sides lie in
    different segments *bounds* them; its failure joins them (a *critical*
    valve when the joined segment is large).
Isolation
    For a failed link: close the valves on the boundary of its segment whose
    far side is still fed from a source (a valve whose far side loses supply
    anyway need not be closed). A normally closed valve is a boundary already
    and needs no operation. When a boundary slot has no valve that can be
    closed — inoperable in the data (``operable = false``) or stuck (given) —
    the section grows by the segment beyond it (the next ring outward, N-1),
    until every needed slot can be closed. Ring *k* counts the valve failures
    met; the links each ring adds are what the fallback costs.
Supply loss
    With the isolated section taken out and the valves closed, the nodes and
    links that lose every path to a source (water source, tank, pump or
    regulator station, heat source), beyond the section itself; those not fed
    before the incident are not counted.
Drainage
    Has no valves and flows by gravity (link start → end): the failed link's
    upstream (what drains through it) and downstream (where its water goes),
    and what loses every way to an outlet.

Everything works on the *segment graph* (segments joined by the slots that
bound them), computed once per network, so one incident is a few connected
component labellings of a graph the size of the valve count
(``scipy.sparse.csgraph``), whatever the number of pipes.

Examples
--------
A source S feeding a row S-a-b-c-d, with a valve on link ``ab`` next to ``a``
and one on ``cd`` next to ``c``:

>>> net = PipeNetwork.from_tables(
...     nodes=["S", "a", "b", "c", "d"],
...     links=[("Sa", "S", "a"), ("ab", "a", "b"), ("bc", "b", "c"), ("cd", "c", "d")],
...     valves=[(1, "ab", "a"), (2, "cd", "c")], sources=["S"])
>>> iso = net.isolate("bc")
>>> iso.valves.tolist(), iso.isolated_links.tolist(), iso.cut_off_links.tolist()
([1], ['ab', 'bc'], ['cd'])

Valve 2 need not be closed: beyond it, ``cd`` and ``d`` are cut off anyway
(the supply loss). Were valve 1 stuck, the next ring back includes the source:

>>> iso = net.isolate("bc", stuck_valves=[1])
>>> iso.isolated, iso.sources_inside.tolist(), iso.rings
(False, ['S'], 1)
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import coo_array, csr_array
from scipy.sparse.csgraph import breadth_first_order, connected_components

from spatial.network import Graph, GraphCache, pipe_graph

#: Graph names (``pipe:<utility>``) whose network flows by gravity and has no valves.
GRAVITY_UTILITIES = ("drainage",)

_EMPTY = np.empty(0, dtype=np.int64)


# Results ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ValveSegments:
    """The valve-bounded segments of a network.

    Attributes
    ----------
    node_segment : numpy.ndarray
        Segment (0 … ``n_segments - 1``) of each node, in the network's node order.
    link_segment : numpy.ndarray
        Segment of each link.
    n_nodes, n_links : numpy.ndarray
        Nodes and links per segment.
    length : numpy.ndarray
        Pipe length per segment (m; 0 when the network has no lengths).
    valve_ptr, valve_index : numpy.ndarray
        Compressed rows: the valves (indices) bounding segment ``s`` are
        ``valve_index[valve_ptr[s]:valve_ptr[s + 1]]``.
    valve_ids : numpy.ndarray
        The network's valve ids, to read ``valve_index`` with.

    Examples
    --------
    >>> net = PipeNetwork.from_tables(["a", "b", "c"], [("ab", "a", "b"), ("bc", "b", "c")],
    ...                               [(7, "bc", "b")], sources=["a"])
    >>> seg = net.valve_segments()
    >>> seg.n_segments, seg.size.tolist(), seg.bounding_valves(0).tolist()
    (2, [3, 2], [7])
    """

    node_segment: np.ndarray
    link_segment: np.ndarray
    n_nodes: np.ndarray
    n_links: np.ndarray
    length: np.ndarray
    valve_ptr: np.ndarray
    valve_index: np.ndarray
    valve_ids: np.ndarray

    @property
    def n_segments(self) -> int:
        """Number of segments."""
        return len(self.n_nodes)

    @property
    def size(self) -> np.ndarray:
        """Nodes plus links per segment (WNTR's segment size summed)."""
        return self.n_nodes + self.n_links

    def bounding_valves(self, segment: int) -> np.ndarray:
        """Ids of the valves on a segment's boundary.

        Parameters
        ----------
        segment : int
            A segment number.

        Returns
        -------
        numpy.ndarray
            Valve ids, in the network's valve order.
        """
        if not 0 <= segment < self.n_segments:
            raise ValueError(f"segment must be in [0, {self.n_segments}), got {segment!r}")
        lo, hi = self.valve_ptr[segment], self.valve_ptr[segment + 1]
        return self.valve_ids[self.valve_index[lo:hi]]


@dataclass(frozen=True, eq=False)
class CriticalValves:
    """Valves whose failure joins segments, largest joined segment first.

    Attributes
    ----------
    valve_ids : numpy.ndarray
        Valve ids.
    valve_index : numpy.ndarray
        Their indices in the network's valve order.
    joined_size : numpy.ndarray
        Nodes plus links of the segment their failure makes (the segments on
        every side of the valve together).
    joined_segments : numpy.ndarray
        How many segments it joins (≥ 2).
    joined_length : numpy.ndarray
        Pipe length of the joined segment (m).
    """

    valve_ids: np.ndarray
    valve_index: np.ndarray
    joined_size: np.ndarray
    joined_segments: np.ndarray
    joined_length: np.ndarray

    def __len__(self) -> int:
        return len(self.valve_ids)


@dataclass(frozen=True, eq=False)
class Isolation:
    """What isolating a failed link takes and costs.

    Ids are the network's own (``pipe_segment.id``, ``pipe_node.id``,
    ``valve.id`` for a database network; names for a WNTR model); the
    ``*_index`` twins are positions in the network's arrays.

    Attributes
    ----------
    failed_link : Any
        The failed link's id.
    valves : numpy.ndarray
        Valves to close (ids), ring 0 first.
    valve_ring : numpy.ndarray
        The ring at which each became a boundary valve (0: the failed link's
        own segment; *k*: after *k* valve failures).
    already_closed : numpy.ndarray
        Normally closed valves on the boundary (no operation needed).
    failed_valves : numpy.ndarray
        Valves that would have been needed but cannot close (inoperable or
        stuck), in the order met; ``failed_ring`` the ring each caused.
    failed_ring : numpy.ndarray
        Ring each failed valve opened (1 for the first failure …).
    not_needed : numpy.ndarray
        Open boundary valves left open: their far side loses supply anyway.
    isolated_links, isolated_nodes : numpy.ndarray
        The isolated section (ids), the failed link's segment included.
    link_ring : numpy.ndarray
        Ring in which each isolated link joined the section.
    cut_off_links, cut_off_nodes : numpy.ndarray
        Supply loss beyond the section: fed before, no path to a source after.
    extra_links, extra_nodes : numpy.ndarray
        Isolated or cut off only because of valve failures (compared with the
        plan where every valve closes).
    sources_inside : numpy.ndarray
        Source nodes inside the section: it cannot be isolated by valves
        alone; the source must be shut down.
    upstream_links, upstream_nodes, downstream_links, downstream_nodes : numpy.ndarray
        Gravity networks (drainage) only: what drains through the failed link,
        and where its water goes. Empty for pressurised networks.
    rings : int
        Valve failures met (0 when the first ring held).
    isolated : bool
        Whether no source remains inside the section.
    isolated_link_index, isolated_node_index, cut_off_link_index, cut_off_node_index : numpy.ndarray
        The same as positions.
    """

    failed_link: Any
    valves: np.ndarray
    valve_ring: np.ndarray
    already_closed: np.ndarray
    failed_valves: np.ndarray
    failed_ring: np.ndarray
    not_needed: np.ndarray
    isolated_links: np.ndarray
    isolated_nodes: np.ndarray
    link_ring: np.ndarray
    cut_off_links: np.ndarray
    cut_off_nodes: np.ndarray
    extra_links: np.ndarray
    extra_nodes: np.ndarray
    sources_inside: np.ndarray
    rings: int
    isolated: bool
    isolated_link_index: np.ndarray = field(repr=False)
    isolated_node_index: np.ndarray = field(repr=False)
    cut_off_link_index: np.ndarray = field(repr=False)
    cut_off_node_index: np.ndarray = field(repr=False)
    upstream_links: np.ndarray = field(default_factory=lambda: _EMPTY)
    upstream_nodes: np.ndarray = field(default_factory=lambda: _EMPTY)
    downstream_links: np.ndarray = field(default_factory=lambda: _EMPTY)
    downstream_nodes: np.ndarray = field(default_factory=lambda: _EMPTY)

    @property
    def affected_links(self) -> np.ndarray:
        """Isolated and cut-off links (ids): whoever they serve loses supply."""
        return np.concatenate([self.isolated_links, self.cut_off_links])

    @property
    def affected_nodes(self) -> np.ndarray:
        """Isolated and cut-off nodes (ids): service connections among them name
        the buildings without supply."""
        return np.concatenate([self.isolated_nodes, self.cut_off_nodes])

    def summary(self) -> dict[str, Any]:
        """Counts for a report.

        Returns
        -------
        dict
            ``valves_to_close``, ``already_closed``, ``failed_valves``,
            ``rings``, ``isolated``, ``isolated_links``, ``cut_off_links``,
            ``extra_links``, ``sources_inside``.
        """
        return {"valves_to_close": len(self.valves), "already_closed": len(self.already_closed),
                "failed_valves": len(self.failed_valves), "rings": self.rings,
                "isolated": self.isolated, "isolated_links": len(self.isolated_links),
                "cut_off_links": len(self.cut_off_links),
                "extra_links": len(self.extra_links), "sources_inside": len(self.sources_inside)}


# The network -------------------------------------------------------------------------


class PipeNetwork:
    """A pipe network with valves and sources, for segments and incidents.

    Build one with :meth:`from_graph` (the database's network,
    :func:`spatial.network.pipe_graph`), :meth:`from_wntr` (a WNTR model and
    a valve layer) or :meth:`from_tables` (plain tables). It is read-only once
    built; the segments and the segment graph are computed on first use and
    kept, so one instance answers many incidents (and serves every thread).

    Parameters
    ----------
    node_ids : array-like
        Node ids (any hashable values), one per node.
    link_ids : array-like
        Link ids.
    start, end : array-like of int
        Node index of each link's ends (the flow direction for gravity
        networks).
    valve_ids : array-like
        Valve ids.
    slot_link, slot_side, slot_valve : array-like of int
        The slots valves cover: link index, side (0 = at the link's start
        node, 1 = at its end node), valve index; one row per (valve, slot).
    operable : array-like of bool, optional
        Per valve: can be relied on when isolating (default all).
    closed : array-like of bool, optional
        Per valve: closed in normal operation (default none).
    sources : array-like of int
        Node indices where the network is fed (outlets for gravity networks).
    length : array-like of float, optional
        Link lengths (m).
    gravity : bool
        A gravity network (drainage): no valves, traced along the flow.
    node_kind : array-like, optional
        Kind per node (``pipe_node.kind``), kept for callers.
    graph : spatial.network.Graph, optional
        The graph it was built from (snapping, geometries).
    """

    def __init__(self, node_ids: Any, link_ids: Any, start: Any, end: Any, valve_ids: Any,
                 slot_link: Any, slot_side: Any, slot_valve: Any, *, operable: Any = None,
                 closed: Any = None, sources: Any = (), length: Any = None,
                 gravity: bool = False, node_kind: Any = None,
                 graph: Graph | None = None) -> None:
        self.node_ids = np.asarray(node_ids)
        self.link_ids = np.asarray(link_ids)
        self.start = np.asarray(start, dtype=np.int64)
        self.end = np.asarray(end, dtype=np.int64)
        self.valve_ids = np.asarray(valve_ids)
        n, m, v = len(self.node_ids), len(self.link_ids), len(self.valve_ids)
        if len(self.start) != m or len(self.end) != m:
            raise ValueError(f"start/end have {len(self.start)}/{len(self.end)} values "
                             f"for {m} links")
        if m and (min(self.start.min(), self.end.min()) < 0
                  or max(self.start.max(), self.end.max()) >= n):
            raise ValueError("link ends must be node indices in [0, n)")
        self.slot_link = np.asarray(slot_link, dtype=np.int64)
        self.slot_side = np.asarray(slot_side, dtype=np.int64)
        self.slot_valve = np.asarray(slot_valve, dtype=np.int64)
        if not len(self.slot_link) == len(self.slot_side) == len(self.slot_valve):
            raise ValueError("slot_link, slot_side and slot_valve must have one length")
        self.operable = np.ones(v, bool) if operable is None else np.asarray(operable, bool)
        self.closed = np.zeros(v, bool) if closed is None else np.asarray(closed, bool)
        if len(self.operable) != v or len(self.closed) != v:
            raise ValueError(f"operable/closed need one value per valve ({v})")
        self.sources = np.unique(np.asarray(sources, dtype=np.int64))
        if len(self.sources) and (self.sources.min() < 0 or self.sources.max() >= n):
            raise ValueError("sources must be node indices in [0, n)")
        self.length = np.zeros(m) if length is None else np.asarray(length, dtype=float)
        self.gravity = bool(gravity)
        self.node_kind = None if node_kind is None else np.asarray(node_kind)
        self.graph = graph

    # Constructors ----------------------------------------------------------------------

    @classmethod
    def from_graph(cls, graph: Graph, sources: Iterable[int] | None = None, *,
                   gravity: bool | None = None) -> PipeNetwork:
        """A network from a pipe :class:`~spatial.network.Graph`.

        Parameters
        ----------
        graph : spatial.network.Graph
            From :func:`spatial.network.pipe_graph` (or ``load_pipe_graph``).
        sources : iterable of int, optional
            Source node *indices*; the graph's :attr:`~spatial.network.Graph.sources`
            when omitted.
        gravity : bool, optional
            Trace along the flow instead of isolating by valves; defaults to
            whether the graph is a drainage network (``pipe:drainage``).

        Returns
        -------
        PipeNetwork
            Ids are ``pipe_node.id``, ``pipe_segment.id`` and ``valve.id``. A
            valve at a node covers every slot at that node; a valve on a
            segment both slots of the segment; a valve on neither is ignored.

        Examples
        --------
        >>> g = Graph.from_edges("pipe:water", [1, 2, 3], [(10, 1, 2, 50.0), (11, 2, 3, 50.0)])
        >>> PipeNetwork.from_graph(g, sources=[0]).isolate(11).isolated_links.tolist()
        [10, 11]
        """
        n, m = graph.n_nodes, graph.n_edges
        valves = graph.valves
        if valves is None:
            vids, vnode, vedge = _EMPTY, _EMPTY, _EMPTY
            operable = closed = np.zeros(0, bool)
        else:
            vids, vnode, vedge = valves.ids, valves.node, valves.edge
            operable, closed = valves.operable, valves.closed
        # Slots at each node: (link, side) of every link end there.
        ends_node = np.concatenate([graph.source, graph.target])
        ends_link = np.concatenate([np.arange(m), np.arange(m)])
        ends_side = np.repeat([0, 1], m)
        order = np.argsort(ends_node, kind="stable")
        ptr = np.searchsorted(ends_node[order], np.arange(n + 1))
        at = np.flatnonzero(vnode >= 0)
        counts = ptr[vnode[at] + 1] - ptr[vnode[at]]
        rows = _ranges(ptr[vnode[at]], counts)
        on = np.flatnonzero((vnode < 0) & (vedge >= 0))
        slot_link = np.concatenate([ends_link[order][rows], vedge[on], vedge[on]])
        slot_side = np.concatenate([ends_side[order][rows], np.zeros(len(on), np.int64),
                                    np.ones(len(on), np.int64)])
        slot_valve = np.concatenate([np.repeat(at, counts), on, on])
        if gravity is None:
            gravity = graph.name.split(":")[-1] in GRAVITY_UTILITIES
        return cls(graph.node_ids, graph.edge_ids, graph.source, graph.target, vids,
                   slot_link, slot_side, slot_valve, operable=operable, closed=closed,
                   sources=graph.sources if sources is None else list(sources),
                   length=graph.length, gravity=gravity, node_kind=graph.node_kind,
                   graph=graph)

    @classmethod
    def from_wntr(cls, wn: Any, valve_layer: Any, *, sources: Iterable[str] | None = None,
                  operable: Any = None, closed: Any = None) -> PipeNetwork:
        """A network from a WNTR water network model and a valve layer.

        No wntr import: any object with wntr's ``node_name_list``,
        ``link_name_list``, ``get_link`` (``start_node_name``,
        ``end_node_name``), ``reservoir_name_list`` and ``tank_name_list`` will do.

        Parameters
        ----------
        wn : wntr.network.WaterNetworkModel
            The model; every link (pipes, pumps, valves) is a link here.
        valve_layer : pandas.DataFrame
            As ``wntr.network.generate_valve_layer`` returns it: one row per
            valve, columns ``link`` and ``node`` (the valve is on that link,
            next to that node); the index is the valve id.
        sources : iterable of str, optional
            Source node names; the reservoirs and tanks when omitted.
        operable, closed : array-like of bool, optional
            Per valve row.

        Returns
        -------
        PipeNetwork
            Ids are WNTR's names (valve ids the layer's index).

        Raises
        ------
        ValueError
            A valve names a link or node not in the model, or a node that is
            not an end of its link.
        """
        node_ids = np.array(list(wn.node_name_list), dtype=object)
        link_ids = np.array(list(wn.link_name_list), dtype=object)
        node_pos = {k: i for i, k in enumerate(node_ids.tolist())}
        start = np.empty(len(link_ids), np.int64)
        end = np.empty(len(link_ids), np.int64)
        for i, name in enumerate(link_ids.tolist()):
            link = wn.get_link(name)
            start[i] = node_pos[link.start_node_name]
            end[i] = node_pos[link.end_node_name]
        if sources is None:
            sources = [*wn.reservoir_name_list, *wn.tank_name_list]
        rows = list(zip(valve_layer.index.tolist(), valve_layer["link"].tolist(),
                        valve_layer["node"].tolist(), strict=True))
        return cls._from_rows(node_ids, link_ids, start, end, rows,
                              [node_pos[s] for s in sources], operable=operable,
                              closed=closed)

    @classmethod
    def from_tables(cls, nodes: Any, links: Any, valves: Any, sources: Iterable[Any], *,
                    length: Any = None, gravity: bool = False) -> PipeNetwork:
        """A network from plain tables.

        Parameters
        ----------
        nodes : sequence
            Node ids (or a DataFrame with an ``id`` column).
        links : sequence of (id, start node id, end node id)
            Or a DataFrame with columns ``id``, ``start``, ``end``.
        valves : sequence of (id, link id or None, node id or None[, operable[, closed]])
            Or a DataFrame with columns ``id``, ``link``, ``node`` and
            optionally ``operable``, ``closed``. Link and node: the valve on
            that link next to that node (WNTR's model); node only: at the node
            (every link end there); link only: on the link (both its ends).
        sources : iterable
            Source node ids.
        length : sequence of float, optional
            Per link (m).
        gravity : bool
            A gravity network (link start → end is the flow).

        Returns
        -------
        PipeNetwork

        Raises
        ------
        ValueError
            A link or valve names an unknown id, or a valve's node is not an
            end of its link.

        Examples
        --------
        >>> net = PipeNetwork.from_tables([1, 2, 3], [(10, 1, 2), (11, 2, 3)],
        ...                               [(5, None, 2, True, False)], sources=[1])
        >>> net.valve_segments().n_segments
        3
        """
        node_ids = np.asarray(_column(nodes, "id", 0, single=True))
        table = _table(links, ("id", "start", "end"))
        link_ids = np.asarray(table["id"])
        node_pos = {k: i for i, k in enumerate(node_ids.tolist())}
        try:
            start = np.array([node_pos[a] for a in table["start"]], dtype=np.int64)
            end = np.array([node_pos[b] for b in table["end"]], dtype=np.int64)
            src = [node_pos[s] for s in sources]
        except KeyError as exc:
            raise ValueError(f"not a node id: {exc.args[0]!r}") from None
        vt = _table(valves, ("id", "link", "node", "operable", "closed"), optional=2)
        rows = list(zip(vt["id"], vt["link"], vt["node"], strict=True))
        return cls._from_rows(node_ids, link_ids, start, end, rows, src,
                              operable=vt.get("operable"), closed=vt.get("closed"),
                              length=length, gravity=gravity)

    @classmethod
    def _from_rows(cls, node_ids: np.ndarray, link_ids: np.ndarray, start: np.ndarray,
                   end: np.ndarray, rows: Sequence[tuple[Any, Any, Any]], sources: Any, *,
                   operable: Any = None, closed: Any = None, length: Any = None,
                   gravity: bool = False) -> PipeNetwork:
        node_pos = {k: i for i, k in enumerate(node_ids.tolist())}
        link_pos = {k: i for i, k in enumerate(link_ids.tolist())}
        at_node: dict[int, list[int]] = {}
        for i, (a, b) in enumerate(zip(start.tolist(), end.tolist(), strict=True)):
            at_node.setdefault(a, []).append(2 * i)
            at_node.setdefault(b, []).append(2 * i + 1)
        taken: set[tuple[int, int]] = set()  # (valve's link, node) pairs already placed
        slots: list[tuple[int, int, int]] = []
        for k, (vid, link, node) in enumerate(rows):
            li = _pos(link_pos, link, "link", vid)
            ni = _pos(node_pos, node, "node", vid)
            if li is None:
                if ni is not None:
                    slots.extend((s // 2, s % 2, k) for s in at_node.get(ni, ()))
            elif ni is None:
                slots.extend(((li, 0, k), (li, 1, k)))
            else:
                if ni not in (start[li], end[li]):
                    raise ValueError(f"valve {vid!r}: node {node!r} is not an end of "
                                     f"link {link!r}")
                side = 0 if start[li] == ni else 1
                # A link whose two ends are the same node: a second valve there
                # takes the other end (WNTR counts one valve per end).
                if start[li] == end[li] and (li, 0) in taken:
                    side = 1
                taken.add((li, side))
                slots.append((li, side, k))
        arr = np.array(slots, dtype=np.int64).reshape(-1, 3)
        return cls(node_ids, link_ids, start, end, np.array([r[0] for r in rows]),
                   arr[:, 0], arr[:, 1], arr[:, 2], operable=operable, closed=closed,
                   sources=sources, length=length, gravity=gravity)

    # Lookups ---------------------------------------------------------------------------

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_ids)

    @property
    def n_links(self) -> int:
        """Number of links."""
        return len(self.link_ids)

    @property
    def n_valves(self) -> int:
        """Number of valves."""
        return len(self.valve_ids)

    @functools.cached_property
    def _link_pos(self) -> dict[Any, int]:
        return {k: i for i, k in enumerate(self.link_ids.tolist())}

    @functools.cached_property
    def _valve_pos(self) -> dict[Any, int]:
        return {k: i for i, k in enumerate(self.valve_ids.tolist())}

    def link_index(self, link_id: Any) -> int:
        """Position of a link id.

        Raises
        ------
        ValueError
            Not a link of this network.
        """
        key = link_id.item() if isinstance(link_id, np.generic) else link_id
        try:
            return self._link_pos[key]
        except (KeyError, TypeError):
            raise ValueError(f"not a link id of this network: {link_id!r}") from None

    def valve_index(self, valve_ids: Iterable[Any]) -> np.ndarray:
        """Positions of valve ids.

        Raises
        ------
        ValueError
            An id is not a valve of this network.
        """
        out = []
        for v in valve_ids:
            key = v.item() if isinstance(v, np.generic) else v
            try:
                out.append(self._valve_pos[key])
            except (KeyError, TypeError):
                raise ValueError(f"not a valve id of this network: {v!r}") from None
        return np.array(out, dtype=np.int64)

    # Segments --------------------------------------------------------------------------

    @functools.cached_property
    def _segments(self) -> _SegmentGraph:
        return _SegmentGraph.build(self)

    def valve_segments(self) -> ValveSegments:
        """The valve-bounded segments (``wntr.metrics.valve_segments``' partition).

        Returns
        -------
        ValveSegments

        Examples
        --------
        A ring a-b-c with one valve on ``ca`` next to ``a`` stays one segment:

        >>> net = PipeNetwork.from_tables(["a", "b", "c"],
        ...     [("ab", "a", "b"), ("bc", "b", "c"), ("ca", "c", "a")], [(1, "ca", "a")], ["a"])
        >>> net.valve_segments().n_segments
        1
        """
        return self._segments.result

    def critical_valves(self, top: int | None = None) -> CriticalValves:
        """Valves whose failure joins segments, by the size of the joined segment.

        Parameters
        ----------
        top : int, optional
            Keep the first ``top``.

        Returns
        -------
        CriticalValves
            Largest joined segment first (ties: more segments joined, then
            valve order).

        Examples
        --------
        >>> net = PipeNetwork.from_tables(["a", "b", "c", "d"],
        ...     [("ab", "a", "b"), ("bc", "b", "c"), ("cd", "c", "d")],
        ...     [(1, "bc", "b"), (2, "cd", "c")], ["a"])
        >>> cv = net.critical_valves()
        >>> cv.valve_ids.tolist(), cv.joined_size.tolist()
        ([1, 2], [5, 4])
        """
        sg = self._segments
        seg = sg.result
        # Distinct (valve, segment) pairs over the valve's bounding slots.
        per_valve = np.repeat(np.arange(self.n_valves), np.diff(sg.valve_ptr))
        valve = np.concatenate([per_valve, per_valve])
        segs = np.concatenate([sg.a[sg.valve_slots], sg.b[sg.valve_slots]])
        pairs = np.unique(np.column_stack([valve, segs]), axis=0) if len(valve) \
            else np.empty((0, 2), np.int64)
        nv = self.n_valves
        joined = np.bincount(pairs[:, 0], minlength=nv)
        size = np.bincount(pairs[:, 0], weights=seg.size[pairs[:, 1]], minlength=nv)
        length = np.bincount(pairs[:, 0], weights=seg.length[pairs[:, 1]], minlength=nv)
        idx = np.flatnonzero(joined >= 2)
        order = np.lexsort((idx, -joined[idx], -size[idx]))
        idx = idx[order][:top]
        return CriticalValves(self.valve_ids[idx], idx, size[idx].astype(np.int64),
                              joined[idx], length[idx])

    # Incidents -------------------------------------------------------------------------

    def isolate(self, failed_link: Any, stuck_valves: Iterable[Any] = ()) -> Isolation:
        """Valves to close for a failed link, with the N-1 fallback and the supply loss.

        Parameters
        ----------
        failed_link : Any
            The failed link's id.
        stuck_valves : iterable
            Valve ids known to be stuck, or that failed when tried: they stay
            as they are (open, unless normally closed).

        Returns
        -------
        Isolation

        Raises
        ------
        ValueError
            An unknown link or valve id.

        Examples
        --------
        A ring S-a-b-c-S fed at S, valves next to S on both ring links and one
        on ``bc`` next to ``b``; ``ab`` fails:

        >>> net = PipeNetwork.from_tables(["S", "a", "b", "c"],
        ...     [("Sa", "S", "a"), ("ab", "a", "b"), ("bc", "b", "c"), ("cS", "c", "S")],
        ...     [(1, "Sa", "S"), (2, "bc", "b"), (3, "cS", "S")], ["S"])
        >>> iso = net.isolate("ab")
        >>> iso.valves.tolist(), iso.isolated_links.tolist(), iso.cut_off_links.tolist()
        ([1, 2], ['Sa', 'ab'], [])
        >>> iso = net.isolate("ab", stuck_valves=[2])
        >>> iso.valves.tolist(), iso.valve_ring.tolist(), iso.extra_links.tolist()
        ([1, 3], [0, 1], ['bc', 'cS'])
        """
        f = self.link_index(failed_link)
        stuck = self.valve_index(stuck_valves)
        if self.gravity:
            return self._trace(f)
        return self._segments.isolate(f, stuck)

    def _trace(self, f: int) -> Isolation:
        """Gravity network: upstream, downstream, and what loses every outlet."""
        n, m = self.n_nodes, self.n_links
        keep = np.ones(m, bool)
        keep[f] = False
        down = _directed(n, self.start, self.end, np.ones(m, bool))
        up_nodes = _reach(down.T.tocsr(), self.start[f])
        down_nodes = _reach(down, self.end[f])
        outlets = self.sources
        before = _reach(down.T.tocsr(), outlets)
        after = _reach(_directed(n, self.start, self.end, keep).T.tocsr(), outlets)
        cut_nodes = np.setdiff1d(before, after)
        in_up = np.zeros(n, bool)
        in_up[up_nodes] = True
        up_links = np.flatnonzero(in_up[self.end] & keep)
        in_down = np.zeros(n, bool)
        in_down[down_nodes] = True
        down_links = np.flatnonzero(in_down[self.start] & keep)
        cut = np.zeros(n, bool)
        cut[cut_nodes] = True
        cut_links = np.flatnonzero(cut[self.start] & keep)
        link = np.array([f])
        return Isolation(
            failed_link=self.link_ids[f], valves=self.valve_ids[:0], valve_ring=_EMPTY,
            already_closed=self.valve_ids[:0], failed_valves=self.valve_ids[:0],
            failed_ring=_EMPTY, not_needed=self.valve_ids[:0],
            isolated_links=self.link_ids[link], isolated_nodes=self.node_ids[:0],
            link_ring=np.zeros(1, np.int64), cut_off_links=self.link_ids[cut_links],
            cut_off_nodes=self.node_ids[cut_nodes], extra_links=self.link_ids[:0],
            extra_nodes=self.node_ids[:0], sources_inside=self.node_ids[:0], rings=0,
            isolated=True, isolated_link_index=link, isolated_node_index=_EMPTY,
            cut_off_link_index=cut_links, cut_off_node_index=cut_nodes,
            upstream_links=self.link_ids[up_links], upstream_nodes=self.node_ids[up_nodes],
            downstream_links=self.link_ids[down_links],
            downstream_nodes=self.node_ids[down_nodes])


# The segment graph ---------------------------------------------------------------------


@dataclass(eq=False)
class _SegmentGraph:
    """Segments, the slots that bound them (the segment graph's edges), and a
    breadth-first tree of the fed segments from the sources.

    One incident touches little of a large network, so nothing here scans
    every segment per incident: a segment outside the section keeps its
    supply when its tree path from the sources avoids the section and the
    shut slots; only the subtrees hanging below those (usually a few hundred
    segments) are re-examined, by connected components on that part alone.
    """

    net: PipeNetwork
    result: ValveSegments
    a: np.ndarray  # per bounding slot: the link's segment
    b: np.ndarray  # per bounding slot: the node's segment
    slot_ptr: np.ndarray  # bounding slot -> covering valves (CSR)
    slot_valves: np.ndarray
    valve_ptr: np.ndarray  # valve -> bounding slots (CSR)
    valve_slots: np.ndarray
    normally_closed: np.ndarray  # per bounding slot
    adj_ptr: np.ndarray  # segment -> (neighbour, slot) (CSR, both directions)
    adj_nbr: np.ndarray
    adj_slot: np.ndarray
    seg_link_ptr: np.ndarray  # segment -> links (CSR)
    seg_links: np.ndarray
    seg_node_ptr: np.ndarray  # segment -> nodes (CSR)
    seg_nodes: np.ndarray
    source_seg: np.ndarray  # segments holding a source

    @functools.cached_property
    def tree(self) -> _Tree:
        """The breadth-first tree from the sources (built on the first incident:
        a sweep needs none)."""
        return _Tree(*_tree(self.n_segments, self.a, self.b, self.normally_closed,
                            self.source_seg))

    @property
    def fed_normal(self) -> np.ndarray:
        return self.tree.fed

    @classmethod
    def build(cls, net: PipeNetwork) -> _SegmentGraph:
        n, m = net.n_nodes, net.n_links
        cut = np.zeros(2 * m, bool)
        slot_key = 2 * net.slot_link + net.slot_side
        cut[slot_key] = True
        # Elements: nodes 0..n-1, links n..n+m-1; joined at every uncovered slot.
        ends = np.column_stack([net.start, net.end]).ravel()
        open_slot = np.flatnonzero(~cut)
        graph = coo_array((np.ones(len(open_slot), np.int8),
                           (n + open_slot // 2, ends[open_slot])), shape=(n + m, n + m)).tocsr()
        count, labels = connected_components(graph, directed=False)
        node_seg, link_seg = labels[:n].astype(np.int64), labels[n:].astype(np.int64)
        n_nodes = np.bincount(node_seg, minlength=count)
        n_links = np.bincount(link_seg, minlength=count)
        seg_len = np.bincount(link_seg, weights=net.length, minlength=count)
        # Covered slots whose link and node lie in different segments bound them.
        keys, inverse = np.unique(slot_key, return_inverse=True)
        a_all = link_seg[keys // 2]
        b_all = node_seg[ends[keys]]
        bounding = a_all != b_all
        new_id = np.cumsum(bounding) - 1
        sel = bounding[inverse]
        b_slot, b_valve = new_id[inverse[sel]], net.slot_valve[sel]
        order = np.lexsort((b_valve, b_slot))
        b_slot, b_valve = b_slot[order], b_valve[order]
        nb = int(bounding.sum())
        a, b = a_all[bounding], b_all[bounding]
        slot_ptr = np.searchsorted(b_slot, np.arange(nb + 1))
        nc = np.zeros(nb, bool)
        np.logical_or.at(nc, b_slot, net.closed[b_valve])
        by_valve = np.lexsort((b_slot, b_valve))
        valve_ptr = np.searchsorted(b_valve[by_valve], np.arange(net.n_valves + 1))
        # Bounding valves per segment (distinct, valve order).
        pv = np.unique(np.column_stack([np.concatenate([a[b_slot], b[b_slot]]),
                                        np.concatenate([b_valve, b_valve])]), axis=0) \
            if len(b_slot) else np.empty((0, 2), np.int64)
        result = ValveSegments(node_seg, link_seg, n_nodes, n_links, seg_len,
                               np.searchsorted(pv[:, 0], np.arange(count + 1)),
                               pv[:, 1].copy(), net.valve_ids)
        rows, nbr = np.concatenate([a, b]), np.concatenate([b, a])
        slot = np.concatenate([np.arange(nb), np.arange(nb)])
        adj = np.lexsort((nbr, rows))
        lo = np.argsort(link_seg, kind="stable")
        no = np.argsort(node_seg, kind="stable")
        grid = np.arange(count + 1)
        self = cls(net, result, a, b, slot_ptr, b_valve, valve_ptr, b_slot[by_valve], nc,
                   np.searchsorted(rows[adj], grid), nbr[adj], slot[adj],
                   np.searchsorted(link_seg[lo], grid), lo, np.searchsorted(node_seg[no], grid),
                   no, np.unique(node_seg[net.sources]))
        return self

    @property
    def n_segments(self) -> int:
        return self.result.n_segments

    def _around(self, segs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(segment, neighbour, slot) for every bounding slot of ``segs``."""
        lo, hi = self.adj_ptr[segs], self.adj_ptr[segs + 1]
        rows = _ranges(lo, hi - lo)
        return np.repeat(segs, hi - lo), self.adj_nbr[rows], self.adj_slot[rows]

    def _valves_of(self, slots: np.ndarray) -> np.ndarray:
        """Covering valves of bounding slots (concatenated, with repeats)."""
        lo, hi = self.slot_ptr[slots], self.slot_ptr[slots + 1]
        return self.slot_valves[_ranges(lo, hi - lo)]

    def _slots_of(self, valves: np.ndarray) -> np.ndarray:
        """Bounding slots of valves (concatenated)."""
        lo, hi = self.valve_ptr[valves], self.valve_ptr[valves + 1]
        return self.valve_slots[_ranges(lo, hi - lo)]

    def _lost(self, in_r: np.ndarray, r_segs: np.ndarray,
              shut_slots: np.ndarray = _EMPTY) -> np.ndarray:
        """Segments fed normally that lose every path to a source once the section
        ``r_segs`` is out and ``shut_slots`` are closed (besides the normally closed)."""
        s = self.n_segments
        # In doubt: what hangs below the section or a shut tree edge in the tree.
        roots = [r_segs[self.tree.pre[r_segs] >= 0]]
        if len(shut_slots):
            ea, eb = self.a[shut_slots], self.b[shut_slots]
            roots += [ea[self.tree.parent_slot[ea] == shut_slots],
                      eb[self.tree.parent_slot[eb] == shut_slots]]
        top = np.concatenate(roots)
        lost = np.zeros(s, bool)
        if not len(top):
            return lost
        start, size = self.tree.pre[top], self.tree.subtree[top]
        order = np.argsort(start)
        start, end = start[order], start[order] + size[order]
        # Merge nested intervals (subtrees nest or are disjoint).
        keep = end > np.concatenate([[-1], np.maximum.accumulate(end)[:-1]])
        start, end = start[keep], end[keep]
        doubt = self.tree.by_pre[_ranges(start, end - start)]
        doubt = doubt[~in_r[doubt]]
        if not len(doubt):
            return lost
        cut = np.zeros(len(self.a), bool)
        cut[shut_slots] = True
        seg, nbr, slot = self._around(doubt)
        ok = ~self.normally_closed[slot] & ~cut[slot] & ~in_r[nbr]
        seg, nbr = seg[ok], nbr[ok]
        local = np.full(s, -1, np.int64)
        local[doubt] = np.arange(len(doubt))
        inner = local[nbr] >= 0
        k = len(doubt)
        g = coo_array((np.ones(int(inner.sum()), np.int8), (local[seg[inner]], local[nbr[inner]])),
                      shape=(k, k)).tocsr()
        _, labels = connected_components(g, directed=False)
        # A neighbour outside the doubt is fed: its tree path avoids the section.
        fed_label = np.zeros(k, bool)
        fed_label[labels[local[seg[~inner]]]] = True
        lost[doubt[~fed_label[labels]]] = True
        return lost

    def _plan(self, f: int, usable: np.ndarray) -> _Plan:
        """Grow the section from the failed link's segment until every needed slot
        has a usable valve."""
        net = self.net
        s = self.n_segments
        in_r = np.zeros(s, bool)
        ring_of = np.full(s, -1, np.int64)
        seg_f = int(self.result.link_segment[f])
        in_r[seg_f] = True
        ring_of[seg_f] = 0
        r_segs = np.array([seg_f], np.int64)
        first_ring: dict[int, int] = {}
        failed_seen = np.zeros(net.n_valves, bool)
        failed_order: list[int] = []
        failed_ring: list[int] = []
        ring = 0
        while True:
            _, outer, slot = self._around(r_segs)
            out = ~in_r[outer]
            outer, slot = outer[out], slot[out]
            for j in slot.tolist():
                first_ring.setdefault(j, ring)
            lost = self._lost(in_r, r_segs)
            needed = (self.fed_normal[outer] & ~lost[outer]
                      & ~self.normally_closed[slot])
            need_slot, need_outer = slot[needed], outer[needed]
            lo, hi = self.slot_ptr[need_slot], self.slot_ptr[need_slot + 1]
            cover = usable[self.slot_valves[_ranges(lo, hi - lo)]]
            can = np.zeros(len(need_slot), bool)
            np.logical_or.at(can, np.repeat(np.arange(len(need_slot)), hi - lo), cover)
            failing = ~can
            if not failing.any():
                break
            bad = np.unique(self._valves_of(need_slot[failing]))
            new = bad[~failed_seen[bad]]
            if len(new):
                ring += 1
                failed_seen[new] = True
                failed_order.extend(new.tolist())
                failed_ring.extend([ring] * len(new))
            grow = np.unique(need_outer[failing])
            in_r[grow] = True
            ring_of[grow] = ring
            r_segs = np.concatenate([r_segs, grow])
        return _Plan(in_r, r_segs, ring_of, slot, need_slot, first_ring,
                     np.array(failed_order, np.int64), np.array(failed_ring, np.int64), ring)

    def _choose(self, plan: _Plan, usable: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One usable valve per needed slot (the lowest index), without the valves
        another one's closing made redundant; (valves, their rings, segments lost)."""
        net = self.net
        ring_of_valve: dict[int, int] = {}
        for j in plan.needed.tolist():
            cand = self.slot_valves[self.slot_ptr[j]:self.slot_ptr[j + 1]]
            pick = [v for v in cand.tolist() if usable[v] and not net.closed[v]]
            if not pick:  # pragma: no cover - _plan grows until none remain
                continue
            r = plan.first_ring[j]
            ring_of_valve[pick[0]] = min(ring_of_valve.get(pick[0], r), r)
        chosen = sorted(ring_of_valve, key=lambda v: (ring_of_valve[v], v))
        # A valve covering several slots (at a junction) cuts more than the
        # boundary: with it shut, another chosen valve's far side may have lost
        # its supply, so that valve is not needed. Opening one valve v alone
        # joins the segments around its slots to the section, so v is needed
        # when one of them is still fed with every chosen valve shut.
        while True:
            arr = np.array(chosen, np.int64)
            shut = self._slots_of(arr)
            lost = self._lost(plan.in_r, plan.r_segs, shut)
            if not chosen:
                break
            fed = self.fed_normal & ~lost & ~plan.in_r
            lo, hi = self.valve_ptr[arr], self.valve_ptr[arr + 1]
            around = np.zeros(len(arr), bool)
            np.logical_or.at(around, np.repeat(np.arange(len(arr)), hi - lo),
                             fed[self.a[shut]] | fed[self.b[shut]])
            if around.all():
                break
            chosen.remove(int(arr[np.flatnonzero(~around)[-1]]))
        return arr, np.array([ring_of_valve[v] for v in chosen], np.int64), lost

    def _elements(self, segs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Link and node indices of segments, ascending."""
        lo, hi = self.seg_link_ptr[segs], self.seg_link_ptr[segs + 1]
        links = np.sort(self.seg_links[_ranges(lo, hi - lo)])
        lo, hi = self.seg_node_ptr[segs], self.seg_node_ptr[segs + 1]
        return links, np.sort(self.seg_nodes[_ranges(lo, hi - lo)])

    def isolate(self, f: int, stuck: np.ndarray) -> Isolation:
        net = self.net
        usable = net.operable.copy()
        usable[stuck] = False
        usable |= net.closed  # closed valves are boundaries whatever their state
        plan = self._plan(f, usable)
        chosen, chosen_ring, lost = self._choose(plan, usable)
        # Already closed on the boundary; open boundary valves left open.
        around = np.unique(self._valves_of(plan.boundary))
        closed_b = around[net.closed[around]]
        open_b = around[~net.closed[around] & ~np.isin(around, chosen)
                        & ~np.isin(around, plan.failed)]
        cut_off = np.flatnonzero(lost)
        if plan.rings:  # what the plan would have lost had every valve closed
            every = np.ones(net.n_valves, bool)
            ideal = self._plan(f, every)
            _, _, ideal_lost = self._choose(ideal, every)
            ideal_lost[ideal.r_segs] = True
            extra_l, extra_n = self._elements(np.flatnonzero(
                ~ideal_lost & (lost | plan.in_r)))
        else:
            extra_l, extra_n = _EMPTY, _EMPTY
        iso_l, iso_n = self._elements(plan.r_segs)
        cut_l, cut_n = self._elements(cut_off)
        seg = self.result
        inside = net.sources[plan.in_r[seg.node_segment[net.sources]]]
        return Isolation(
            failed_link=net.link_ids[f], valves=net.valve_ids[chosen], valve_ring=chosen_ring,
            already_closed=net.valve_ids[closed_b],
            failed_valves=net.valve_ids[plan.failed], failed_ring=plan.failed_ring,
            not_needed=net.valve_ids[open_b],
            isolated_links=net.link_ids[iso_l], isolated_nodes=net.node_ids[iso_n],
            link_ring=plan.ring_of[seg.link_segment[iso_l]],
            cut_off_links=net.link_ids[cut_l], cut_off_nodes=net.node_ids[cut_n],
            extra_links=net.link_ids[extra_l], extra_nodes=net.node_ids[extra_n],
            sources_inside=net.node_ids[inside], rings=plan.rings, isolated=not len(inside),
            isolated_link_index=iso_l, isolated_node_index=iso_n, cut_off_link_index=cut_l,
            cut_off_node_index=cut_n)


@dataclass(frozen=True, eq=False)
class _Tree:
    fed: np.ndarray  # per segment: fed in normal operation
    parent_slot: np.ndarray  # tree edge into each fed segment (-1 at the sources)
    pre: np.ndarray  # preorder position in the tree (-1: not fed)
    subtree: np.ndarray  # subtree size
    by_pre: np.ndarray  # segment at each preorder position


@dataclass(frozen=True, eq=False)
class _Plan:
    in_r: np.ndarray  # per segment: in the section
    r_segs: np.ndarray  # the section's segments
    ring_of: np.ndarray  # per segment: ring it joined in (-1 outside)
    boundary: np.ndarray  # bounding slots on the section's boundary
    needed: np.ndarray  # … of those, the ones to close
    first_ring: dict[int, int]  # slot -> ring it first bounded the section
    failed: np.ndarray
    failed_ring: np.ndarray
    rings: int


def _tree(s: int, a: np.ndarray, b: np.ndarray, closed: np.ndarray, sources: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A breadth-first tree of the segment graph (normally closed slots shut)
    from the source segments: (fed, parent slot, preorder, subtree size, segment
    at each preorder position)."""
    ok = np.flatnonzero(~closed)
    src = np.unique(sources)
    rows = np.concatenate([a[ok], b[ok], np.full(len(src), s)])
    cols = np.concatenate([b[ok], a[ok], src])
    g = coo_array((np.ones(len(rows), np.int8), (rows, cols)), shape=(s + 1, s + 1)).tocsr()
    bfs, pred = breadth_first_order(g, s, directed=True, return_predecessors=True)
    bfs = bfs[1:]  # without the super-source
    fed = np.zeros(s, bool)
    fed[bfs] = True
    parent = pred[:s].astype(np.int64)
    parent[~fed] = -1
    # The slot of each tree edge: an open slot between the segment and its parent.
    ea = np.concatenate([a[ok], b[ok]])
    eb = np.concatenate([b[ok], a[ok]])
    es = np.concatenate([ok, ok])
    hit = (parent[ea] == eb) & (eb < s)
    parent_slot = np.full(s, -1, np.int64)
    parent_slot[ea[hit][::-1]] = es[hit][::-1]  # first such slot wins
    parent[parent == s] = -1
    # Subtree sizes (children before parents), then preorder positions
    # (parents before children), one breadth-first level at a time.
    depth = np.zeros(s, np.int64)
    for v in bfs.tolist():
        p = parent[v]
        depth[v] = depth[p] + 1 if p >= 0 else 0
    levels = [bfs[depth[bfs] == d] for d in range(int(depth[bfs].max()) + 1 if len(bfs) else 0)]
    size = np.ones(s, np.int64)
    for lev in reversed(levels[1:]):
        np.add.at(size, parent[lev], size[lev])
    pre = np.full(s, -1, np.int64)
    if levels:
        roots = levels[0]
        pre[roots] = np.concatenate([[0], np.cumsum(size[roots])[:-1]])
    for lev in levels[1:]:
        order = lev[np.argsort(parent[lev], kind="stable")]
        par = parent[order]
        csum = np.cumsum(size[order])
        first = np.ones(len(order), bool)
        first[1:] = par[1:] != par[:-1]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
        before = csum - size[order] - (csum[group_start] - size[order][group_start])
        pre[order] = pre[par] + 1 + before
    by_pre = np.empty(len(bfs), np.int64)
    by_pre[pre[bfs]] = bfs
    return fed, parent_slot, pre, size, by_pre


# The database's networks ----------------------------------------------------------------

#: Networks built from the latest graphs (one per graph object, a few kept).
_NETWORKS: OrderedDict[int, tuple[Graph, PipeNetwork]] = OrderedDict()
_NETWORKS_LOCK = threading.Lock()
_NETWORKS_KEPT = 12


def pipe_network(conn: Any, utility: str, *, cache: GraphCache | None = None) -> PipeNetwork:
    """One utility's network from the database, built once per loaded graph.

    The graph comes from :func:`spatial.network.pipe_graph` (cached per
    process, dropped when the pipe tables change, read-permission checked on
    ``conn``); the network and its segments are built on first use of that
    graph and reused until the graph is replaced.

    Parameters
    ----------
    conn : psycopg.Connection
        The caller's connection.
    utility : str
        One of :data:`spatial.network.UTILITIES`.
    cache : spatial.network.GraphCache, optional
        Defaults to the process's graph cache.

    Returns
    -------
    PipeNetwork

    Raises
    ------
    ValueError
        An unknown utility.
    spatial.errors.PermissionDeniedError
        The caller may not read the pipe tables.
    """
    graph = pipe_graph(conn, utility, cache=cache)
    with _NETWORKS_LOCK:
        hit = _NETWORKS.get(id(graph))
        if hit is not None and hit[0] is graph:
            _NETWORKS.move_to_end(id(graph))
            return hit[1]
    net = PipeNetwork.from_graph(graph)
    net.valve_segments()  # the segment graph, built outside the lock
    with _NETWORKS_LOCK:
        _NETWORKS[id(graph)] = (graph, net)
        while len(_NETWORKS) > _NETWORKS_KEPT:
            _NETWORKS.popitem(last=False)
    return net


# Helpers -------------------------------------------------------------------------------


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenated ``arange(start, start + count)`` for each pair, vectorised."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if not total:
        return _EMPTY
    offsets = np.repeat(np.asarray(starts, np.int64) - np.cumsum(counts) + counts, counts)
    return offsets + np.arange(total)


def _directed(n: int, start: np.ndarray, end: np.ndarray, keep: np.ndarray) -> csr_array:
    return coo_array((np.ones(int(keep.sum()), np.int8), (start[keep], end[keep])),
                     shape=(n, n)).tocsr()


def _reach(g: csr_array, origins: Any) -> np.ndarray:
    """Nodes reachable from any origin along the arcs of ``g``, ascending."""
    orig = np.atleast_1d(np.asarray(origins, np.int64))
    if not len(orig):
        return _EMPTY
    seen = np.zeros(g.shape[0], bool)
    for o in orig.tolist():
        if not seen[o]:
            seen[breadth_first_order(g, o, directed=True, return_predecessors=False)] = True
    return np.flatnonzero(seen)


def _pos(index: Mapping[Any, int], key: Any, what: str, valve: Any) -> int | None:
    if key is None or (isinstance(key, float) and np.isnan(key)):
        return None
    k = key.item() if isinstance(key, np.generic) else key
    if k not in index:
        raise ValueError(f"valve {valve!r}: not a {what} id of this network: {key!r}")
    return index[k]


def _column(table: Any, name: str, position: int, *, single: bool = False) -> list[Any]:
    if hasattr(table, "columns"):
        return list(table[name])
    if single:
        return list(table)
    return [row[position] for row in table]


def _table(table: Any, names: Sequence[str], optional: int = 0) -> dict[str, list[Any]]:
    """Columns of a DataFrame, a mapping of columns, or rows of tuples."""
    required = len(names) - optional
    if hasattr(table, "columns") or isinstance(table, Mapping):
        cols = set(table.columns if hasattr(table, "columns") else table)
        missing = [c for c in names[:required] if c not in cols]
        if missing:
            raise ValueError(f"table lacks columns {missing}")
        return {c: list(table[c]) for c in names if c in cols}
    rows = [tuple(r) for r in table]
    width = min((len(r) for r in rows), default=len(names))
    if width < required:
        raise ValueError(f"rows need at least {required} values ({', '.join(names)})")
    return {c: [r[i] for r in rows] for i, c in enumerate(names) if i < width} if rows \
        else {c: [] for c in names[:required]}


__all__ = ["GRAVITY_UTILITIES", "CriticalValves", "Isolation", "PipeNetwork", "ValveSegments",
           "pipe_network"]
