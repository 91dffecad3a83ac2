"""Shared output of the scripting commands: JSON for scripts, a Rich table for people.

``--since``/``--until`` parsing lives here too so every command reads times the same way.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from console.commands.common import UserError
from core.clock import parse_utc

Column = tuple[str, str]  # (key in the row, header)


def make_console() -> Console:
    """A Console for the commands' tables: no emoji codes or markup parsed from data, and
    piped output (not a terminal) at the table's natural width, not squeezed to 80."""
    import sys

    tty = sys.stdout.isatty()
    return Console(emoji=False, highlight=False, width=None if tty else 1000,
                   soft_wrap=not tty)


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def cell(v: Any) -> str:
    """Short text for a table cell: times to the minute, lists joined, None as a dash."""
    if v is None or v == "":
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, list | tuple):
        return ", ".join(str(x) for x in v) or "—"
    if isinstance(v, str) and len(v) >= 19 and v[4] == "-" and v[10] == "T":
        return v[:16].replace("T", " ")
    return str(v)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], title: str,
          console: Console | None = None, empty: str = "none") -> None:
    console = console or make_console()
    if not rows:
        console.print(f"[bold]{title}[/]: {empty}")
        return
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
              title=f"{title} ({len(rows)})", title_justify="left", title_style="bold")
    for i, (key, header) in enumerate(columns):
        numeric = isinstance(rows[0].get(key), int | float) and not isinstance(
            rows[0].get(key), bool)
        # the first column is the id a script or a person copies: never wrapped or cut
        width = max(len(header), *(len(cell(r.get(key))) for r in rows)) if i == 0 else None
        t.add_column(header, justify="right" if numeric else "left", no_wrap=i == 0,
                     min_width=width)
    for r in rows:
        t.add_row(*(Text(cell(r.get(k))) for k, _ in columns))
    console.print(t)


def add_range(p: Any) -> None:
    p.add_argument("--since", metavar="T", help="from this time (ISO-8601, UTC if no zone)")
    p.add_argument("--until", metavar="T", help="up to this time, exclusive (ISO-8601)")


def parse_time(text: str | None, opt: str) -> datetime | None:
    """ISO-8601 text to aware UTC; a bad value is a UserError naming the option."""

    if text is None:
        return None
    try:
        return parse_utc(text)
    except ValueError:
        raise UserError(f"{opt} {text!r} is not an ISO-8601 time "
                        "(e.g. 2026-01-05 or 2026-01-05T06:00:00Z)") from None


def time_range(args: Any) -> tuple[datetime | None, datetime | None]:

    since = parse_time(getattr(args, "since", None), "--since")
    until = parse_time(getattr(args, "until", None), "--until")
    if since is not None and until is not None and until <= since:
        raise UserError(f"--until ({until.isoformat()}) must be after --since "
                        f"({since.isoformat()})")
    return since, until


def parse_statuses(text: str, known: Sequence[str],
                   named: dict[str, tuple[str, ...] | None]) -> tuple[str, ...] | None:
    """``--status`` as a named set (``all``, ``open`` ...; None = no filter) or a comma list
    of known statuses; anything else is a clear error."""

    if text in named:
        return named[text]
    wanted = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in wanted if s not in known]
    if bad or not wanted:
        raise UserError(f"unknown status {', '.join(bad) or repr(text)}; use "
                        f"{', '.join(named)} or some of {', '.join(known)}")
    return wanted
