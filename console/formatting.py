"""Small renderers shared by the views: state colours, sparklines, times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text

if TYPE_CHECKING:
    from console.connections import DriverState

STATE_STYLES = {
    "running": "bold green",
    "idle": "yellow",
    "setup": "cyan",
    "down_planned": "blue",
    "down_unplanned": "bold white on red",
    "starved": "magenta",
    "blocked": "magenta",
    "unknown": "dim",
}
PRIORITY_STYLES = {"critical": "bold white on red", "high": "bold red", "medium": "yellow",
                   "low": "dim"}
LOT_STYLES = {"held": "bold red", "wip": "green", "planned": "dim", "released": "cyan"}
_BLOCKS = "▁▂▃▄▅▆▇█"


def state_text(state: str) -> Text:
    return Text(state.replace("_", " "), style=STATE_STYLES.get(state, ""))


def styled(value: str, styles: dict[str, str]) -> Text:
    return Text(value, style=styles.get(value, ""))


def sparkline(values: Sequence[float], width: int = 16) -> str:
    """Unicode sparkline of the last ``width`` values, scaled to their own range."""
    vals = list(values)[-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo or 1.0
    return "".join(_BLOCKS[min(7, int((v - lo) / span * 7.999))] for v in vals)


def hhmm(ts: datetime | None) -> str:
    return ts.strftime("%d %b %H:%M") if ts else "—"


def num(v: float | None, unit: str = "", digits: int = 2) -> str:
    if v is None:
        return "—"
    return f"{v:.{digits}f} {unit}".strip()


REC_STYLES = {"proposed": "bold", "approved": "cyan", "executing": "cyan",
              "executed": "green", "failed": "bold red", "rejected": "dim"}
LIVE_S = 15.0  # a key tag heard within this much plant time is "live"...
LIVE_WALL_S = 2.0  # ...or within this much wall time: flushes and polls take wall time


def live_window_s(speed: float) -> float:
    """Plant seconds a key tag may stay quiet and still count as live: the pipeline's
    latency (poll, publish, store flush, refresh) is wall time, so it scales with speed."""
    return max(LIVE_S, LIVE_WALL_S * max(speed, 1.0))


def pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.0%}"


def ago(ts: datetime | None, now: datetime) -> str:
    """Compact age (``42s``, ``5m``, ``3h``, ``2d``) against the plant clock, never wall time."""
    if ts is None:
        return "—"
    s = max(0.0, (now - ts).total_seconds())
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s / 60:.0f}m"
    if s < 86400:
        return f"{s / 3600:.0f}h"
    return f"{s / 86400:.0f}d"


def connection_text(last: datetime | None, data_at: datetime, *,
                    link: DriverState | None = None, now: datetime | None = None,
                    live_s: float = LIVE_S) -> Text:
    """Whether the machine's data is arriving. The driver's own state first (``comm down
    2m`` since it was lost, against ``now``); else the age of the key tag's newest sample
    against ``data_at``, the plant time the store was read (not when it is drawn)."""
    if link is not None and link.lost:
        return Text(f"comm down {ago(link.since, now or data_at)}", style="bold red")
    if link is not None and link.state == "connecting":
        return Text("connecting", style="yellow")
    if last is None:
        return Text("no data", style="dim")
    if (data_at - last).total_seconds() <= live_s:
        return Text("live", style="green")
    return Text(f"silent {ago(last, data_at)}", style="yellow")
