"""`loopline eval --report FILE.html`: the A/B as a page a plant manager reads.

One self-contained HTML file: the KPI table with each paired difference and its 95 %
interval, then OEE per day and unplanned downtime per machine for both arms (means over
the seeds) as inline SVG — no plotting library, no scripts, no external files.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

OFF_COLOR, ON_COLOR = "#9aa5b1", "#2f7d32"


def _fmt(v: Any, kind: str, signed: bool = False) -> str:
    if v is None:
        return "—"
    s = "+" if signed else ""
    if kind == "pct":
        return f"{100 * v:{s}.1f}" + (" pts" if signed else " %")
    if kind == "int":
        return f"{v:{s},.1f}" if signed else f"{v:,.0f}"
    return f"{v:{s},.2f}"


def grouped_bars(title: str, labels: list[str], off: list[float], on: list[float], *,
                 unit: str = "", fmt: str = "{:.1f}") -> str:
    """Vertical bars, loop off beside loop on, one pair per label."""
    w, h, left, top, bottom = 760, 300, 48, 40, 64
    n = max(1, len(labels))
    span = (w - left - 16) / n
    bar = min(28.0, span * 0.38)
    hi = max([*off, *on, 0.0]) or 1.0
    plot_h = h - top - bottom
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<text x="8" y="20" font-size="14" font-weight="bold">{escape(title)}</text>',
             f'<rect x="{w - 200}" y="10" width="10" height="10" fill="{OFF_COLOR}"/>'
             f'<text x="{w - 186}" y="19">loop off</text>',
             f'<rect x="{w - 120}" y="10" width="10" height="10" fill="{ON_COLOR}"/>'
             f'<text x="{w - 106}" y="19">loop on</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{w - 8}" y2="{top + plot_h}" '
             'stroke="#444"/>']
    for i, label in enumerate(labels):
        x0 = left + i * span + span / 2 - bar
        for j, (v, color) in enumerate(((off[i], OFF_COLOR), (on[i], ON_COLOR))):
            bh = max(0.0, v) / hi * plot_h
            x = x0 + j * bar
            parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - bh:.1f}" width="{bar - 2:.1f}"'
                         f' height="{bh:.1f}" fill="{color}"><title>{escape(label)} '
                         f'{"on" if j else "off"}: {fmt.format(v)}{escape(unit)}</title></rect>')
            parts.append(f'<text x="{x + bar / 2 - 1:.1f}" y="{top + plot_h - bh - 3:.1f}" '
                         f'text-anchor="middle" font-size="9">{fmt.format(v)}</text>')
        parts.append(f'<text x="{left + i * span + span / 2:.1f}" y="{top + plot_h + 14}" '
                     f'text-anchor="end" transform="rotate(-35 {left + i * span + span / 2:.1f}'
                     f' {top + plot_h + 14})">{escape(label)}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _mean_series(arms: list[dict[str, Any]], key: str) -> list[float]:
    series = [a.get(key) or [] for a in arms]
    n = max((len(s) for s in series), default=0)
    out = []
    for i in range(n):
        vals = [s[i] for s in series if i < len(s) and s[i] is not None]
        out.append(sum(vals) / len(vals) if vals else 0.0)
    return out


def _mean_map(arms: list[dict[str, Any]], key: str) -> dict[str, float]:
    keys = sorted({k for a in arms for k in (a.get(key) or {})})
    return {k: sum((a.get(key) or {}).get(k, 0.0) for a in arms) / max(1, len(arms))
            for k in keys}


def render(res: dict[str, Any]) -> str:
    o = res["options"]
    offs = [s["off"] for s in res.get("seeds", [])]
    ons = [s["on"] for s in res.get("seeds", [])]
    n = o.get("seeds", 1)
    rows = []
    for r in res["rows"]:
        ci = "—" if r.get("lo") is None else \
            f"{_fmt(r['lo'], r['kind'], True)} … {_fmt(r['hi'], r['kind'], True)}"
        sig = (r.get("verdict") or "yes") if r.get("significant") else "no"
        cls = {"better": "good", "worse": "bad"}.get(r.get("verdict", ""), "")
        rel = f" ({100 * r['relative']:+.0f} %)" if r.get("relative") is not None \
            and r["kind"] != "pct" else ""
        rows.append(f'<tr class="{cls}"><td>{escape(r["label"])}</td>'
                    f'<td>{_fmt(r["off"], r["kind"])}</td><td>{_fmt(r["on"], r["kind"])}</td>'
                    f'<td>{_fmt(r["diff"], r["kind"], True)}{rel}</td><td>{ci}</td>'
                    f'<td>{sig}</td></tr>')
    off_days, on_days = _mean_series(offs, "oee_per_day"), _mean_series(ons, "oee_per_day")
    days = [f"day {i + 1}" for i in range(max(len(off_days), len(on_days)))]
    off_days += [0.0] * (len(days) - len(off_days))
    on_days += [0.0] * (len(days) - len(on_days))
    oee_svg = grouped_bars("OEE per day (mean over seeds)", days,
                           [100 * v for v in off_days], [100 * v for v in on_days],
                           unit=" %", fmt="{:.0f}")
    off_dt, on_dt = _mean_map(offs, "downtime_per_machine_h"), _mean_map(ons,
                                                                         "downtime_per_machine_h")
    machines = sorted(set(off_dt) | set(on_dt))
    dt_svg = grouped_bars("Unplanned downtime per machine, hours (mean over seeds)", machines,
                          [off_dt.get(m, 0.0) for m in machines],
                          [on_dt.get(m, 0.0) for m in machines], unit=" h")
    seeds = ", ".join(str(s.get("seed")) for s in res.get("seeds", []))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>loopline: does the closed loop pay? — scenario {escape(str(o.get("scenario")))}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; max-width: 60em; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
tr.good td {{ background: #e8f5e9; }} tr.bad td {{ background: #fdecea; }}
.note {{ color: #555; font-size: 90%; }}
</style></head><body>
<h1>Does the closed loop pay?</h1>
<p>Scenario <b>{escape(str(o.get("scenario")))}</b>, {o["days"]:g} plant days per arm,
{n} seed(s) ({escape(seeds)}), twin speed {o["speed"]:g}, start {escape(str(o["start"]))}.
Loop off: the same detection and alarms, nobody acts. Loop on: the configured autonomy
with a stand-in crew. Each seed runs both arms on the same plant and faults.</p>
<h2>KPIs</h2>
<table><tr><th>KPI</th><th>loop off</th><th>loop on</th><th>difference (on − off)</th>
<th>95 % interval</th><th>significant</th></tr>
{chr(10).join(rows)}
</table>
<p class="note">Means over the seeds; the difference is the mean of the per-seed paired
differences, its interval the paired t-interval (n − 1 degrees of freedom); it is
significant when the interval excludes zero (green: better with the loop, red: worse).
One seed gives no interval.</p>
<h2>OEE per day</h2>
{oee_svg}
<h2>Unplanned downtime per machine</h2>
{dt_svg}
</body></html>
"""


def write_report(res: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(res), encoding="utf-8")
