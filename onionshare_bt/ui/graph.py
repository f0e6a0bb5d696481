"""The trust graph drawn as a picture: inline SVG from ``obt trust graph``'s tree (pure).

Each degree is a column and each node a row (depth first, as ``obt trust graph`` prints
it); a line joins a node to the node that trusts it. Unreachable nodes are drawn hollow and
red. Every label is escaped; the SVG has no script, no style element and no link.
"""

from __future__ import annotations

from .html import e

COLUMN = 230
ROW = 30
LEFT, TOP = 12, 20


def _rows(node: dict, degree: int, out: list[tuple[dict, int, int | None]],
          parent: int | None) -> None:
    index = len(out)
    out.append((node, degree, parent))
    for child in node.get("children") or []:
        _rows(child, degree + 1, out, index)


def svg(data: dict) -> str:
    """``data``: the result of the ``trust_graph`` operation."""
    rows: list[tuple[dict, int, int | None]] = []
    _rows(data.get("tree") or {"onion": "?"}, 0, rows, None)
    depth = max(d for _, d, _ in rows)
    width, height = LEFT + (depth + 1) * COLUMN + 20, TOP + len(rows) * ROW

    def at(i: int) -> tuple[int, int]:
        return LEFT + rows[i][1] * COLUMN + 6, TOP + i * ROW

    parts = []
    for i, (_node, _degree, parent) in enumerate(rows):
        if parent is not None:
            (x1, y1), (x2, y2) = at(parent), at(i)
            parts.append(f'<path d="M{x1} {y1} V{y2} H{x2}" fill="none" stroke="#9a8bb0"/>')
    for i, (node, degree, _parent) in enumerate(rows):
        x, y = at(i)
        onion = str(node.get("onion", ""))
        ok = degree == 0 or node.get("reachable", True)
        fill, stroke = ("#3b1f5c", "#3b1f5c") if ok else ("#fff", "#b00020")
        label = "this node" if degree == 0 else f"{onion[:16]}…"
        note = "" if ok else f": unreachable, {node.get('error') or ''}"
        parts.append(
            f'<g class=node><title>{e(onion)}.onion{e(note)}</title>'
            f'<circle cx="{x}" cy="{y}" r="6" fill="{fill}" stroke="{stroke}" stroke-width="2"/>'
            f'<text x="{x + 12}" y="{y + 5}" font-size="13" font-family="monospace">'
            f"{e(label)}</text></g>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class=graph width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role=img '
            f'aria-label="trust graph">{"".join(parts)}</svg>')
