"""The relay's rate over time drawn as a picture: SVG from ``obt relay status``'s
``history`` (pure). Numbers only reach the SVG, formatted by us; no script, no style
element, no link.
"""

from __future__ import annotations

from .html import e, rate

WIDTH, HEIGHT = 480, 120
LEFT, BOTTOM, TOP = 70, 18, 8


def rate_image(history: list | None) -> str:
    """:func:`rate_svg` as an SVG document of its own (``/relay-chart.svg``, which the
    overview shows as an image and its script reloads as points come)."""
    svg = rate_svg(history)
    if svg.startswith("<svg"):
        return svg
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}"'
            f' viewBox="0 0 {WIDTH} {HEIGHT}"><text x="{LEFT}" y="{HEIGHT // 2}"'
            ' font-size="13">Not enough samples yet: a point every 10 s.</text></svg>')


def rate_svg(history: list | None) -> str:
    """``history``: ``[[unix time, bytes/s], ...]``; an empty one says so in words."""
    points = [(float(t), max(0.0, float(r))) for t, r in (history or [])]
    if len(points) < 2:
        return "<p class=muted>Not enough samples yet: a point every 10 s.</p>"
    t0, t1 = points[0][0], points[-1][0]
    top = max(r for _, r in points) or 1.0
    span = (t1 - t0) or 1.0
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - TOP - BOTTOM

    def xy(t: float, r: float) -> str:
        return f"{LEFT + (t - t0) / span * plot_w:.1f},{TOP + plot_h - r / top * plot_h:.1f}"

    line = " ".join(xy(t, r) for t, r in points)
    minutes = span / 60
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class=chart width="{WIDTH}" height="{HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {HEIGHT}" role=img aria-label="relay rate over time">'
        f'<path d="M{LEFT} {TOP} V{TOP + plot_h} H{WIDTH - 8}" fill="none" stroke="#999"/>'
        f'<polyline points="{line}" fill="none" stroke="#3b1f5c" stroke-width="2"/>'
        f'<text x="{LEFT - 6}" y="{TOP + 10}" font-size="11" text-anchor="end">'
        f"{e(rate(top))}</text>"
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" font-size="11" text-anchor="end">0</text>'
        f'<text x="{WIDTH - 8}" y="{HEIGHT - 4}" font-size="11" text-anchor="end">now</text>'
        f'<text x="{LEFT}" y="{HEIGHT - 4}" font-size="11">{minutes:.0f} min ago</text>'
        "</svg>")
