"""A small horizontal bar chart as SVG text: reports get a picture without a plotting library.

Bars are drawn largest-first in the order given; an optional cumulative share (a Pareto)
is written beside each bar. Plain SVG 1.1, readable in any browser.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

BAR_H, GAP, LEFT, RIGHT, TOP, WIDTH = 22, 6, 190, 150, 44, 760
COLOR = "#3b7dd8"


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float | None], *,
              unit: str = "", fmt: str = "{:.1f}",
              cumulative: Sequence[float | None] | None = None) -> str:
    """SVG of one bar per label; None values are drawn as 'no basis' without a bar."""
    n = len(labels)
    height = TOP + n * (BAR_H + GAP) + 24
    top = max([v for v in values if v is not None] or [0.0]) or 1.0
    span = WIDTH - LEFT - RIGHT
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
             f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
             f'<text x="12" y="24" font-size="15" font-weight="bold">{escape(title)}</text>']
    for i, (label, v) in enumerate(zip(labels, values, strict=True)):
        y = TOP + i * (BAR_H + GAP)
        parts.append(f'<text x="{LEFT - 8}" y="{y + BAR_H * 0.7:.1f}" text-anchor="end">'
                     f'{escape(str(label)[:28])}</text>')
        if v is None:
            parts.append(f'<text x="{LEFT + 4}" y="{y + BAR_H * 0.7:.1f}" fill="#888">'
                         'no basis</text>')
            continue
        w = max(0.0, v) / top * span
        parts.append(f'<rect x="{LEFT}" y="{y}" width="{w:.1f}" height="{BAR_H}" '
                     f'fill="{COLOR}"><title>{escape(str(label))}: {fmt.format(v)}{unit}'
                     '</title></rect>')
        note = f"{fmt.format(v)}{unit}"
        if cumulative is not None and cumulative[i] is not None:
            note += f"  (cum. {100 * (cumulative[i] or 0.0):.0f} %)"
        parts.append(f'<text x="{LEFT + w + 6:.1f}" y="{y + BAR_H * 0.7:.1f}">'
                     f'{escape(note)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
