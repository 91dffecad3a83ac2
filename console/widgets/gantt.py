"""The plan as text bars: one row per machine, grouped by line, scaled to the widget's width.

Rendered from the active plan (``core.views.PlanTimeline``) and the plant clock, so the
same plan and the same frozen time draw the same picture (snapshot tests depend on it).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from rich.text import Text
from textual.widget import Widget

from core.views import PlanTimeline

LABEL = 11  # machine column
PALETTE = ("on dark_cyan", "on dark_magenta", "on dark_green", "on dark_blue",
           "on dark_orange3", "on purple4", "on deep_sky_blue4", "on dark_red")
HOURS = 24.0  # the window shown: from an hour before now


def order_style(order_id: str) -> str:
    """A stable colour per order (not Python's salted hash: snapshots must not change)."""
    return PALETTE[sum(order_id.encode()) % len(PALETTE)]


def short_label(order_id: str) -> str:
    """The distinctive part of an order id ("PO-0012" -> "0012"): bars are short."""
    return order_id.rsplit("-", 1)[-1]


class PlanGantt(Widget, can_focus=True):
    """A Gantt-like timeline; redraws on resize because the scale is the width."""

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.timeline: PlanTimeline | None = None
        self.now: datetime | None = None
        self.filter_text = ""

    def show(self, timeline: PlanTimeline, now: datetime) -> None:
        self.timeline, self.now = timeline, now
        self.refresh(layout=True)

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip().lower()
        self.refresh(layout=True)

    def get_content_height(self, container, viewport, width: int) -> int:  # type: ignore[override]
        return max(1, len(self.render_text(width).plain.splitlines()))

    def render(self) -> Text:
        return self.render_text(self.size.width)

    def render_text(self, width: int) -> Text:
        tl, now = self.timeline, self.now
        if tl is None or now is None:
            return Text("reading the plan…", style="dim")
        if tl.plan_id is None:
            return Text("no active plan yet: the scheduler makes one when the runtime starts "
                        "(or `loopline plan`)", style="dim")
        cols = max(10, width - LABEL - 1)
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        per_col = HOURS * 3600 / cols

        def col(t: datetime) -> int:
            return int((t - start).total_seconds() / per_col)

        out = Text()
        out.append(f"plan {tl.plan_id}", style="bold")
        if tl.reason:
            out.append(f" · {tl.reason}"[: max(0, width - len(tl.plan_id) - 6)], style="dim")
        out.append("\n")
        axis = [" "] * cols
        step = 1 if cols >= 96 else 2 if cols >= 48 else 4
        for h in range(0, int(HOURS), step):
            c = col(start + timedelta(hours=h))
            label = (start + timedelta(hours=h)).strftime("%H")
            for i, ch in enumerate(label):
                if 0 <= c + i < cols:
                    axis[c + i] = ch
        out.append(" " * LABEL + "".join(axis) + "\n", style="dim")
        now_c = col(now)
        needle = self.filter_text
        for line_id, machines in tl.lines:
            shown = [(eq, bars) for eq, bars in machines
                     if not needle or needle in eq.lower()
                     or any(needle in b.order_id.lower() for b in bars)]
            if not shown:
                continue
            out.append(f"line {line_id}\n", style="bold")
            for eq, bars in shown:
                cells: list[tuple[str, str]] = [(" ", "")] * cols
                for b in bars:
                    c0, c1 = max(0, col(b.start)), min(cols, max(col(b.end), col(b.start) + 1))
                    if c1 <= 0 or c0 >= cols:
                        continue
                    style = order_style(b.order_id)
                    label = short_label(b.order_id)
                    for i in range(c0, c1):
                        ch = label[i - c0] if i - c0 < len(label) and c1 - c0 > 1 else " "
                        cells[i] = (ch, style)
                if 0 <= now_c < cols:  # now on top of everything
                    cells[now_c] = ("│", f"bold red {cells[now_c][1]}".strip())
                out.append(f"{eq[:LABEL - 1]:<{LABEL}}")
                for ch, style in cells:
                    out.append(ch, style=style)
                out.append("\n")
        return out
