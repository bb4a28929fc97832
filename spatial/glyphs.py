"""Latin glyph PBFs for MapLibre, made from Debian's DejaVu Sans.

MapLibre draws text from signed-distance-field glyphs fetched per font stack
and range of 256 code points (``/fonts/{fontstack}/{start}-{end}.pbf``). No
maintained npm or PyPI package ships prebuilt PBFs, so they are made here
from the DejaVu TrueType files Debian installs (``fonts-dejavu-core``):
FreeType (through Pillow) rasterises each glyph at 4× the 24 px em size, a
Euclidean distance transform (SciPy) gives the signed distance, sampled back
to 24 px with MapLibre's 3 px buffer, 8 px radius and 0.25 cutoff — the same
encoding as Mapbox's fontnik and MapLibre's TinySDF. The protobuf messages
(``glyphs.proto``: glyphs → fontstack → glyph) are written by hand: four
field types do not need a compiler.

Chinese is not shipped: MapLibre draws CJK ideographs itself with the
browser's fonts when the map is created with ``localIdeographFontFamily``.
A range without any glyph of the font answers a valid, empty fontstack.

Ranges are made on first request and kept under ``var/fonts/``.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LOGGER = logging.getLogger(__name__)

#: Where Debian puts DejaVu (package fonts-dejavu-core).
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
#: Font names a style may use → TrueType file.
FONTS: dict[str, str] = {
    "DejaVu Sans Book": "DejaVuSans.ttf",
    "DejaVu Sans Bold": "DejaVuSans-Bold.ttf",
}
#: Used for names of a stack we do not have.
DEFAULT_FONT = "DejaVu Sans Book"
SIZE = 24  # em size in px (fontnik's)
BUFFER = 3  # px around each glyph bitmap
RADIUS = 8.0  # px of distance the 0..255 ramp spans
CUTOFF = 0.25  # where the edge sits on the ramp (192)
SCALE = 4  # oversampling for the distance transform
_RANGE = re.compile(r"^(\d{1,5})-(\d{1,5})$")
_STACK = re.compile(r"^[A-Za-z0-9 ,_.-]{1,200}$")
_lock = threading.Lock()


def parse_range(text: str) -> int:
    """The first code point of a glyph range ``"{start}-{end}"``.

    Parameters
    ----------
    text : str
        ``"0-255"``, ``"256-511"`` … up to ``"65280-65535"``.

    Returns
    -------
    int
        ``start``.

    Raises
    ------
    ValueError
        Not 256 code points starting at a multiple of 256 within the BMP.

    Examples
    --------
    >>> parse_range("256-511")
    256
    """
    match = _RANGE.match(text)
    if match is None:
        raise ValueError(f"glyph range must be 'start-end', got {text!r}")
    start, end = int(match[1]), int(match[2])
    if start % 256 or end != start + 255 or end > 65535:
        raise ValueError(f"glyph range must be 256 code points from a multiple of 256, "
                         f"got {text!r}")
    return start


def parse_fontstack(text: str) -> tuple[str, ...]:
    """The font names of a comma-separated font stack.

    Raises
    ------
    ValueError
        Empty, too long or with characters no font name has.

    Examples
    --------
    >>> parse_fontstack("DejaVu Sans Bold,Noto Sans Regular")
    ('DejaVu Sans Bold', 'Noto Sans Regular')
    """
    if not _STACK.match(text):
        raise ValueError(f"bad font stack {text!r}")
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    if not names:
        raise ValueError(f"bad font stack {text!r}")
    return names


@dataclass(frozen=True)
class Glyph:
    """One SDF glyph: metrics in px at :data:`SIZE`, bitmap with :data:`BUFFER`."""

    id: int
    bitmap: bytes
    width: int
    height: int
    left: int
    top: int
    advance: int


# -- protobuf (glyphs.proto) -------------------------------------------------------

def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _uint(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(value)


def _sint(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint((value << 1) ^ (value >> 63))  # zigzag


def _bytes(field: int, value: bytes) -> bytes:
    return _key(field, 2) + _varint(len(value)) + value


def encode(name: str, start: int, glyphs: list[Glyph]) -> bytes:
    """A ``glyphs`` message holding one ``fontstack`` (name, range, glyphs)."""
    stack = _bytes(1, name.encode()) + _bytes(2, f"{start}-{start + 255}".encode())
    for g in glyphs:
        body = _uint(1, g.id)
        if g.bitmap:
            body += _bytes(2, g.bitmap)
        body += (_uint(3, g.width) + _uint(4, g.height) + _sint(5, g.left) + _sint(6, g.top)
                 + _uint(7, g.advance))
        stack += _bytes(3, body)
    return _bytes(1, stack)


# -- rendering -----------------------------------------------------------------------

def _sdf(mask: np.ndarray, width: int, height: int, dx: int, dy: int) -> bytes:
    """Signed distance field of a 4× mask placed at (dx, dy) of the buffered box."""
    from scipy.ndimage import distance_transform_edt

    w, h = (width + 2 * BUFFER) * SCALE, (height + 2 * BUFFER) * SCALE
    canvas = np.zeros((h, w), dtype=bool)
    mh, mw = mask.shape
    canvas[dy:dy + mh, dx:dx + mw] = mask[: h - dy, : w - dx] >= 128
    outside = distance_transform_edt(~canvas)
    inside = distance_transform_edt(canvas)
    dist = (outside - inside) / SCALE
    # one sample per 24 px pixel: the mean over its 4×4 block
    dist = dist.reshape(h // SCALE, SCALE, w // SCALE, SCALE).mean(axis=(1, 3))
    value = 255.0 - 255.0 * (dist / RADIUS + CUTOFF)
    return np.clip(np.round(value), 0, 255).astype(np.uint8).tobytes()


def _cmap(path: Path) -> frozenset[int]:
    """Code points a TrueType file maps to a glyph (its ``cmap`` table)."""
    import struct

    data = path.read_bytes()
    num_tables = struct.unpack(">H", data[4:6])[0]
    tables = {}
    for i in range(num_tables):
        tag, _, offset, length = struct.unpack(">4sIII", data[12 + 16 * i: 28 + 16 * i])
        tables[tag] = (offset, length)
    base = tables[b"cmap"][0]
    count = struct.unpack(">H", data[base + 2: base + 4])[0]
    points: set[int] = set()
    for i in range(count):
        platform, encoding, offset = struct.unpack(
            ">HHI", data[base + 4 + 8 * i: base + 12 + 8 * i])
        sub = base + offset
        fmt = struct.unpack(">H", data[sub: sub + 2])[0]
        if fmt != 4 or (platform, encoding) not in ((3, 1), (0, 3), (0, 4)):
            continue
        segs = struct.unpack(">H", data[sub + 6: sub + 8])[0] // 2
        ends = struct.unpack(f">{segs}H", data[sub + 14: sub + 14 + 2 * segs])
        starts_at = sub + 16 + 2 * segs
        starts = struct.unpack(f">{segs}H", data[starts_at: starts_at + 2 * segs])
        deltas = struct.unpack(f">{segs}h", data[starts_at + 2 * segs: starts_at + 4 * segs])
        ro_at = starts_at + 4 * segs
        offsets = struct.unpack(f">{segs}H", data[ro_at: ro_at + 2 * segs])
        for k in range(segs):
            for code in range(starts[k], ends[k] + 1):
                if code == 0xFFFF:
                    continue
                if offsets[k] == 0:
                    gid = (code + deltas[k]) & 0xFFFF
                else:
                    at = ro_at + 2 * k + offsets[k] + 2 * (code - starts[k])
                    gid = struct.unpack(">H", data[at: at + 2])[0]
                    if gid:
                        gid = (gid + deltas[k]) & 0xFFFF
                if gid:
                    points.add(code)
    return frozenset(points)


_CMAPS: dict[str, frozenset[int]] = {}


def _render_range(font_name: str, start: int, font_dir: Path) -> list[Glyph]:
    from PIL import ImageFont

    path = font_dir / FONTS[font_name]
    if font_name not in _CMAPS:
        _CMAPS[font_name] = _cmap(path)
    codes = [c for c in range(start, start + 256) if c in _CMAPS[font_name]]
    if not codes:
        return []
    big = ImageFont.truetype(str(path), SIZE * SCALE)
    ascender = big.getmetrics()[0] / SCALE
    glyphs = []
    for code in codes:
        char = chr(code)
        advance = round(big.getlength(char) / SCALE)
        mask_img, (x0, y0) = big.getmask2(char, mode="L", anchor="ls")  # y up is negative
        mask = np.asarray(mask_img, dtype=np.uint8).reshape(mask_img.size[1], mask_img.size[0])
        rows, cols = np.nonzero(mask >= 128)
        if not len(rows):  # a space: metrics only
            glyphs.append(Glyph(code, b"", 0, 0, 0, 0, advance))
            continue
        # Pillow's box runs from the origin to the advance: keep only the ink
        mask = mask[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
        x0, y0 = x0 + int(cols.min()), y0 + int(rows.min())
        x1, y1 = x0 + mask.shape[1], y0 + mask.shape[0]
        left, right = int(np.floor(x0 / SCALE)), int(np.ceil(x1 / SCALE))
        top_edge, bottom = int(np.floor(y0 / SCALE)), int(np.ceil(y1 / SCALE))
        width, height = right - left, bottom - top_edge
        dx = x0 - left * SCALE + BUFFER * SCALE
        dy = y0 - top_edge * SCALE + BUFFER * SCALE
        bitmap = _sdf(mask, width, height, dx, dy)
        # top as fontnik writes it: the bitmap's top above the baseline, less the ascender
        glyphs.append(Glyph(code, bitmap, width, height, left,
                            round(-top_edge - ascender), advance))
    return glyphs


class GlyphStore:
    """Glyph ranges by font stack, made on first use and kept on disk.

    Parameters
    ----------
    cache_dir : Path
        Where ranges are kept (``var/fonts``).
    font_dir : Path
        Where the DejaVu TrueType files are.
    """

    def __init__(self, cache_dir: Path, font_dir: Path = FONT_DIR) -> None:
        self.cache_dir = cache_dir
        self.font_dir = font_dir

    def get(self, fontstack: str, range_text: str) -> bytes:
        """The PBF of a font stack and range.

        Each name of the stack we have is tried in order and the first one
        with glyphs in the range answers; a stack of names we do not have
        gets :data:`DEFAULT_FONT`. A range without glyphs answers an empty
        fontstack message (valid, nothing drawn).

        Raises
        ------
        ValueError
            Bad range or font stack text (:func:`parse_range`, :func:`parse_fontstack`).

        Examples
        --------
        >>> import tempfile
        >>> store = GlyphStore(Path(tempfile.mkdtemp()))
        >>> len(store.get("DejaVu Sans Book", "0-255")) > 10000
        True
        """
        start = parse_range(range_text)
        names = [n for n in parse_fontstack(fontstack) if n in FONTS] or [DEFAULT_FONT]
        for name in names:
            data = self._font_range(name, start)
            if len(data) > 64:  # more than the empty stack
                return data
        return encode(fontstack, start, [])

    def _font_range(self, name: str, start: int) -> bytes:
        path = self.cache_dir / name / f"{start}-{start + 255}.pbf"
        if path.exists():
            return path.read_bytes()
        with _lock:  # one render per range, even with many requests at once
            if path.exists():
                return path.read_bytes()
            glyphs = _render_range(name, start, self.font_dir)
            data = encode(name, start, glyphs)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
            LOGGER.info("made glyphs %s %s: %d glyphs", name, path.name, len(glyphs))
            return data
