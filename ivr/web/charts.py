"""Small SVG charts for the console's report, drawn on the server: no chart library in the browser and
nothing fetched from outside the console. Every label is escaped; each bar carries its value in
`data-value` (what the tests read)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

ROW = 22
LABEL_WIDTH = 190
BAR_WIDTH = 420
COLOURS = {
    "contained": "#1b7f3b",
    "self-served, called again": "#7fc38f",
    "transferred": "#2457c5",
    "abandoned": "#d98e04",
    "failed": "#b3261e",
}


def bars(items: Sequence[tuple[str, float]], *, title: str, unit: str = "", colour: str = "#2457c5") -> str:
    """Horizontal bars, one per (label, value), longest first as given."""
    if not items:
        return ""
    top = max(value for _label, value in items) or 1.0
    out = [_svg(title, LABEL_WIDTH + BAR_WIDTH + 90, ROW * len(items) + 28)]
    for i, (label, value) in enumerate(items):
        y = 24 + i * ROW
        width = max(1.0, BAR_WIDTH * value / top) if value else 0.0
        shown = f"{value:g}{unit}"
        out.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + 14}" text-anchor="end">{escape(label)}</text>')
        name = escape(label)
        out.append(
            f'<rect class="bar" data-label="{name}" data-value="{value:g}" x="{LABEL_WIDTH}" y="{y + 3}" '
            f'width="{width:.1f}" height="{ROW - 6}" fill="{colour}"><title>{name}: {shown}</title></rect>'
        )
        out.append(f'<text x="{LABEL_WIDTH + width + 6:.1f}" y="{y + 14}">{escape(shown)}</text>')
    out.append("</svg>")
    return "".join(out)


def stacked(parts: Sequence[tuple[str, int]], *, title: str) -> str:
    """One bar split into the parts (label, count), with a legend: how the calls ended."""
    total = sum(count for _label, count in parts)
    if not total:
        return ""
    width = LABEL_WIDTH + BAR_WIDTH
    out = [_svg(title, width + 90, 48 + ROW * len(parts))]
    x = 0.0
    for label, count in parts:
        w = width * count / total
        colour = COLOURS.get(label, "#888")
        if count:
            out.append(
                f'<rect class="part" data-label="{escape(label)}" data-value="{count}" x="{x:.1f}" y="22" '
                f'width="{w:.1f}" height="18" fill="{colour}"><title>{escape(label)}: {count}</title></rect>'
            )
        x += w
    for i, (label, count) in enumerate(parts):
        y = 48 + i * ROW
        share = 100 * count / total
        out.append(f'<rect x="0" y="{y}" width="12" height="12" fill="{COLOURS.get(label, "#888")}"/>')
        out.append(f'<text x="18" y="{y + 11}">{escape(label)}: {count} ({share:.1f} %)</text>')
    out.append("</svg>")
    return "".join(out)


def _svg(title: str, width: float, height: float) -> str:
    name = escape(title)
    return (
        f'<svg class="chart" role="img" aria-label="{name}" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}"><text x="0" y="14" class="title">{name}</text>'
    )
