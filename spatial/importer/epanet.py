"""Reading an EPANET network (``.inp``) as three layers: nodes, pipes, valves.

The file is parsed by wntr (the optional ``epanet`` extra) and turned into what
:func:`spatial.importer.source.read_source` gives for any other file: per
layer, the attributes, the geometries as WKB, and no CRS — EPANET coordinates
are in the modeller's local units, and the mapping's ``source_crs`` and
``local_transform`` place them.

The layers, as ``wntr.network.to_gis`` names the columns:

``nodes``
    Junctions, tanks and reservoirs as points: ``name``, ``node_type``
    (``Junction``, ``Tank``, ``Reservoir``, or ``Pump`` for a node that stands
    for a pump, see below).
``pipes``
    Pipes, and the pumps and valves that have a line to draw, as lines:
    ``name``, ``link_type`` (``Pipe``, ``Pump``, ``Valve``),
    ``start_node_name``, ``end_node_name``, ``diameter`` (m), ``roughness``,
    ``length`` (m), ``initial_status``.
``valves``
    Every valve as a point on its upstream node: ``name``, ``node_name``,
    ``valve_type`` (``PRV``, ``PSV``, ``PBV``, ``FCV``, ``TCV``, ``GPV``),
    ``initial_status``.

A valve or pump whose two nodes stand on the same spot, without vertices
(converters from GIS data make them: ky10's ``I-RV-1``/``O-RV-1``), has no
line to draw. As in a GIS pipe dataset, its two nodes become one — the outlet
merged into the inlet, unless the outlet is a tank or reservoir and the inlet
a junction, which then merges into the outlet — the valve a point on that
node, the pump a ``Pump`` node (a pump station). Links that end on a merged
node are attached to the node kept. Other pumps and valves are links like
pipes.

A node the file gives no coordinates (no line in ``[COORDINATES]``; wntr
puts it at 0, 0) has no geometry, and neither have the links and valves on
it: the import rejects them with that reason instead of drawing them at the
local origin.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import shapely

from spatial.errors import InvalidInputError
from spatial.importer.source import SourceData

LOGGER = logging.getLogger(__name__)

#: The layers of an EPANET file, as a mapping's ``source_layer`` names them.
EPANET_LAYERS = ("nodes", "pipes", "valves")

#: Columns of each layer, in order.
NODE_COLUMNS = ("name", "node_type")
PIPE_COLUMNS = (
    "name", "link_type", "start_node_name", "end_node_name", "diameter", "roughness",
    "length", "initial_status",
)
VALVE_COLUMNS = ("name", "node_name", "valve_type", "initial_status")


@dataclass(frozen=True)
class EpanetNetwork:
    """An EPANET network read as layers.

    Attributes
    ----------
    layers : dict of str to SourceData
        ``nodes``, ``pipes`` and ``valves``, without CRS.
    merged : dict of str to str
        Node merged away → node kept, for the zero-length pumps and valves.
    collapsed : tuple of str
        The zero-length pumps and valves, which have no line in ``pipes``.
    """

    layers: dict[str, SourceData]
    merged: dict[str, str] = field(default_factory=dict)
    collapsed: tuple[str, ...] = ()

    def layer(self, name: str | None, file_name: str = "the EPANET file") -> SourceData:
        """Return one layer.

        Parameters
        ----------
        name : str or None
            ``nodes``, ``pipes`` or ``valves``.
        file_name : str
            Named in the error.

        Returns
        -------
        SourceData
            The layer.

        Raises
        ------
        InvalidInputError
            When `name` is not one of the three.
        """
        return self.layers[check_layer_name(name, file_name)]


def check_layer_name(name: str | None, file_name: str) -> str:
    """Return a ``source_layer`` that is one of an EPANET file's layers, or refuse it.

    Parameters
    ----------
    name : str or None
        The mapping's ``source_layer``.
    file_name : str
        The file, as named in the message.

    Returns
    -------
    str
        `name`.

    Raises
    ------
    InvalidInputError
        When `name` is missing or not ``nodes``, ``pipes`` or ``valves``.

    Examples
    --------
    >>> check_layer_name("pipes", "net.inp")
    'pipes'
    >>> check_layer_name("links", "net.inp")
    Traceback (most recent call last):
    ...
    spatial.errors.InvalidInputError: net.inp has no layer 'links': an EPANET file is read \
as the layers nodes, pipes, valves
    """
    listed = ", ".join(EPANET_LAYERS)
    if name is None:
        raise InvalidInputError(
            f"{file_name} is an EPANET network: the mapping must name the layer to import "
            f"with source_layer ({listed}), or give --source-layer"
        )
    if name not in EPANET_LAYERS:
        raise InvalidInputError(
            f"{file_name} has no layer {name!r}: an EPANET file is read as the layers {listed}"
        )
    return name


def read_epanet(path: str | Path, *, encoding: str | None = None) -> EpanetNetwork:
    """Read an EPANET ``.inp`` file with wntr as the layers nodes, pipes and valves.

    The file is read anew on every call.

    Parameters
    ----------
    path : str or Path
        The ``.inp`` file.
    encoding : str, optional
        Its text encoding (``gbk`` for a file saved by EPANET on a Chinese
        Windows); default UTF-8, with or without a byte-order mark.

    Returns
    -------
    EpanetNetwork
        The three layers, with the nodes merged for zero-length pumps and valves.

    Raises
    ------
    InvalidInputError
        When the file does not exist, wntr cannot parse it (the message names
        the file and wntr's reason), it holds no nodes, or wntr is not
        installed.

    Examples
    --------
    >>> import wntr
    >>> net3 = Path(wntr.__file__).parent / "library" / "networks" / "Net3.inp"
    >>> net = read_epanet(net3)
    >>> {name: len(layer) for name, layer in net.layers.items()}
    {'nodes': 97, 'pipes': 119, 'valves': 0}
    >>> net.layer("nodes").attributes.iloc[0].tolist()
    ['10', 'Junction']
    """
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"no such file: {p.name}")
    wntr = _wntr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        wn, placed = _parse(wntr, p, encoding)
        if wn.num_nodes == 0:
            raise InvalidInputError(f"{p.name} holds no EPANET network: it defines no nodes")
        gis = wntr.network.to_gis(wn)
    # wntr's own deprecation noise says nothing about the file.
    reader_warnings = sorted({
        str(w.message) for w in caught
        if not issubclass(w.category, DeprecationWarning | FutureWarning)
    })
    kinds = {str(name): str(node.node_type) for name, node in wn.nodes()}
    coords = {
        str(name): tuple(node.coordinates) for name, node in wn.nodes() if str(name) in placed
    }
    merged, collapsed, pump_nodes = _merge_zero_length(wn, kinds, coords)

    def root(node: str) -> str:
        while node in merged:
            node = merged[node]
        return node

    nodes = _concat(
        (("Junction", gis.junctions), ("Tank", gis.tanks), ("Reservoir", gis.reservoirs)),
        "node_type", NODE_COLUMNS,
    )
    nodes = nodes[~nodes["name"].isin(merged)].reset_index(drop=True)
    nodes.loc[nodes["name"].isin(pump_nodes), "node_type"] = "Pump"
    node_errors = {
        i: f"node {name} has no coordinates in the file"
        for i, name in enumerate(nodes["name"]) if name not in coords
    }

    links = _concat(
        (("Pipe", gis.pipes), ("Pump", gis.pumps), ("Valve", gis.valves)),
        "link_type", PIPE_COLUMNS,
    )
    links = links[~links["name"].isin(collapsed)].reset_index(drop=True)
    link_errors: dict[int, str] = {}
    ends = zip(links["start_node_name"], links["end_node_name"], strict=True)
    for i, (a, b) in enumerate(ends):
        reason = _unplaced("start", a, coords) or _unplaced("end", b, coords)
        if reason:
            link_errors[i] = reason
    for col in ("start_node_name", "end_node_name"):
        links[col] = links[col].map(root)

    valves = _concat((("Valve", gis.valves),), "link_type", (*VALVE_COLUMNS, "start_node_name"))
    valve_nodes = [root(str(n)) for n in valves["start_node_name"]]
    valve_frame = pd.DataFrame({
        "name": valves["name"],
        "node_name": valve_nodes,
        "valve_type": valves["valve_type"],
        "initial_status": valves["initial_status"],
    })
    valve_geoms = [shapely.Point(coords[n]) if n in coords else None for n in valve_nodes]
    valve_errors = {
        i: f"node {n} has no coordinates in the file"
        for i, n in enumerate(valve_nodes) if n not in coords
    }

    layers = {
        "nodes": _layer(nodes, NODE_COLUMNS, nodes["geometry"], node_errors, reader_warnings),
        "pipes": _layer(links, PIPE_COLUMNS, links["geometry"], link_errors, reader_warnings),
        "valves": _layer(valve_frame, VALVE_COLUMNS, valve_geoms, valve_errors, reader_warnings),
    }
    LOGGER.info(
        "read %s: %d nodes, %d pipes, %d valves; %d nodes merged for zero-length links",
        p.name, len(nodes), len(links), len(valve_frame), len(merged),
    )
    return EpanetNetwork(layers, {node: root(node) for node in merged}, tuple(collapsed))


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _wntr() -> ModuleType:
    try:
        import wntr
    except ImportError as exc:
        raise InvalidInputError(
            "reading EPANET (.inp) files needs wntr: install the epanet extra "
            f"(pip install 'onemap[epanet]'); {type(exc).__name__}: {exc}"
        ) from None
    return wntr


def _parse(wntr: ModuleType, p: Path, encoding: str | None) -> tuple[Any, set[str]]:
    """The wntr model, and the names of the nodes the file gives coordinates.

    wntr reads strict UTF-8 and stops at a byte-order mark, so the text is
    decoded here and handed to wntr as a UTF-8 copy.
    """
    try:
        text = p.read_text(encoding=encoding or "utf-8-sig")
    except UnicodeDecodeError as exc:
        hint = "" if encoding else "; give its text encoding (encoding: gbk in the mapping)"
        raise InvalidInputError(f"cannot read {p.name} as text: {exc}{hint}") from None
    except LookupError:
        raise InvalidInputError(f"unknown text encoding {encoding!r}") from None
    with tempfile.TemporaryDirectory(prefix="onemap-epanet-") as tmp:
        copy = Path(tmp) / p.name
        copy.write_text(text, encoding="utf-8")
        try:
            wn = wntr.network.WaterNetworkModel(str(copy))
        except Exception as exc:
            # wntr reports a malformed file with whatever its parser raised
            # (EpanetException, ValueError, IndexError, AttributeError …): all of
            # them are about the caller's file, so all become a 400.
            LOGGER.debug("wntr could not parse %s", p.name, exc_info=True)
            reason = _reason(exc, (str(copy), str(p)), p.name)
            if not _has_end(text):
                reason += " (the file has no [END] line: is it cut short?)"
            raise InvalidInputError(
                f"cannot read {p.name} as an EPANET network: {reason}"
            ) from None
    return wn, _placed_nodes(text)


def _reason(exc: BaseException, paths: Iterable[str], name: str) -> str:
    """wntr's reason, one line, with the file named rather than its path.

    wntr wraps a section's error in "(Error 200) one or more errors in input
    file <path>": the chain of causes is given, outermost first.
    """
    parts: list[str] = []
    current: BaseException | None = exc
    while current is not None:
        from_wntr = type(current).__module__.startswith("wntr")
        # wntr's KeyErrors carry a sentence, which str() would quote.
        keyed = from_wntr and isinstance(current, KeyError) and current.args
        raw = current.args[0] if keyed else current
        text = " ".join(str(raw).split()).replace(" (%s)", "")
        for path in paths:
            text = text.replace(path, name)
        if not from_wntr:
            text = f"{type(current).__name__}: {text}" if text else type(current).__name__
        parts.append(text)
        current = current.__cause__
    return ": ".join(parts)


def _has_end(text: str) -> bool:
    return any(line.strip().upper().startswith("[END]") for line in text.splitlines())


def _placed_nodes(text: str) -> set[str]:
    """Names of the nodes listed in ``[COORDINATES]``, read as wntr reads them."""
    names: set[str] = set()
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line.split(None, 1)[0].upper()
            if section == "[END]":
                break
            inside = section in ("[COORDINATES]", "[COORDINATE]")
            continue
        fields = line.split(";")[0].split()
        if inside and fields:
            names.add(fields[0])
    return names


def _merge_zero_length(
    wn: Any, kinds: dict[str, str], coords: dict[str, tuple[float, ...]]
) -> tuple[dict[str, str], list[str], set[str]]:
    """Merge the two nodes of each pump or valve that has no line to draw.

    Returns the merged node → kept node (one step; follow it to the root),
    the collapsed links, and the kept junctions that stand for a pump.
    """
    merged: dict[str, str] = {}
    collapsed: list[str] = []
    pumps: list[str] = []

    def root(node: str) -> str:
        while node in merged:
            node = merged[node]
        return node

    for name, link in wn.links():
        if link.link_type not in ("Pump", "Valve"):
            continue
        a, b = str(link.start_node_name), str(link.end_node_name)
        if a not in coords or b not in coords or coords[a] != coords[b] or link.vertices:
            continue
        ra, rb = root(a), root(b)
        if ra != rb:
            if kinds[rb] == "Junction":
                merged[rb] = ra
            elif kinds[ra] == "Junction":
                merged[ra] = rb
            else:
                continue  # two tanks or reservoirs on one spot: left as a link
        collapsed.append(str(name))
        if link.link_type == "Pump":
            pumps.append(a)
    pump_nodes = {root(a) for a in pumps}
    return merged, collapsed, {n for n in pump_nodes if kinds[n] == "Junction"}


def _concat(
    frames: Iterable[tuple[str, Any]], kind_column: str, columns: tuple[str, ...]
) -> pd.DataFrame:
    """wntr's frames of one family as one, with their kind; an empty one has no columns."""
    parts = [
        pd.DataFrame(frame.reset_index()).assign(**{kind_column: kind})
        for kind, frame in frames
        if len(frame)
    ]
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in (*columns, "geometry")})
    return pd.concat(parts, ignore_index=True)


def _unplaced(end: str, node: str, coords: dict[str, tuple[float, ...]]) -> str | None:
    return None if node in coords else f"{end} node {node} has no coordinates in the file"


def _layer(
    frame: pd.DataFrame,
    columns: tuple[str, ...],
    geometries: Iterable[Any],
    errors: dict[int, str],
    reader_warnings: list[str],
) -> SourceData:
    attributes = frame.reindex(columns=list(columns)).reset_index(drop=True)
    geoms = np.array(
        [None if i in errors else g for i, g in enumerate(geometries)], dtype=object
    )
    wkb: list[bytes | None] = [None if g is None else shapely.to_wkb(g) for g in geoms]
    return SourceData(attributes, wkb, geoms, dict(errors), None, list(reader_warnings))
