"""Draw the mobile map's app icons: ``web/mobile/icons/`` (SVG and PNGs).

One drawing, written twice: as SVG, and rasterised with Pillow (already a
project dependency) at 180 (apple-touch-icon), 192 and 512 px. The PNGs are
drawn at four times their size and scaled down, so edges are smooth. The
background fills the square and the figure stays inside the central circle of
80 % diameter, so the icons are also valid "maskable" icons.

Run from the project root after changing the drawing, and commit the output::

    .venv/bin/python web/make_icons.py
"""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent / "mobile" / "icons"
SIZES = (180, 192, 512)

#: The drawing on a 512 × 512 canvas: (shape, geometry, fill).
BLUE, SHEET, RED, WHITE = "#0b5cad", "#dce9f7", "#e8493f", "#ffffff"
SHAPES: list[tuple[str, tuple[float, ...], str]] = [
    ("rect", (0, 0, 512, 512), BLUE),                       # background, full bleed
    ("rect", (112, 128, 400, 400), SHEET),                  # the map sheet
    ("rect", (204, 128, 212, 400), BLUE),                   # grid lines (网格)
    ("rect", (300, 128, 308, 400), BLUE),
    ("rect", (112, 215, 400, 223), BLUE),
    ("rect", (112, 305, 400, 313), BLUE),
    ("polygon", (192, 250, 320, 250, 256, 384), RED),       # the pin
    ("circle", (256, 216, 72), RED),
    ("circle", (256, 216, 28), WHITE),
]


def svg() -> str:
    """The drawing as an SVG document."""
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 512 512" '
             'width="512" height="512">']
    for shape, g, fill in SHAPES:
        if shape == "rect":
            parts.append(f'<rect x="{g[0]:g}" y="{g[1]:g}" width="{g[2] - g[0]:g}" '
                         f'height="{g[3] - g[1]:g}" fill="{fill}"/>')
        elif shape == "circle":
            parts.append(f'<circle cx="{g[0]:g}" cy="{g[1]:g}" r="{g[2]:g}" fill="{fill}"/>')
        else:
            points = " ".join(f"{g[i]:g},{g[i + 1]:g}" for i in range(0, len(g), 2))
            parts.append(f'<polygon points="{points}" fill="{fill}"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def png(size: int) -> Image.Image:
    """The drawing as a ``size`` × ``size`` RGB image."""
    k = 4 * size / 512
    img = Image.new("RGB", (4 * size, 4 * size), WHITE)
    draw = ImageDraw.Draw(img)
    for shape, g, fill in SHAPES:
        s = [v * k for v in g]
        if shape == "rect":
            draw.rectangle((s[0], s[1], s[2] - 1, s[3] - 1), fill=fill)
        elif shape == "circle":
            draw.ellipse((s[0] - s[2], s[1] - s[2], s[0] + s[2], s[1] + s[2]), fill=fill)
        else:
            draw.polygon(s, fill=fill)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "icon.svg").write_text(svg(), encoding="utf-8")
    for size in SIZES:
        png(size).save(OUT / f"icon-{size}.png", optimize=True)
    print(f"icons written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
