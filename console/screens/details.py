"""Read-only drill-downs: a recommendation's evidence and rationale, a lot's genealogy."""

from __future__ import annotations

from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from console.formatting import hhmm
from core.views import LotDetail, RecommendationDetail


def _value(v: Any) -> str:
    """A parameter or evidence value as a person reads it: no ``None``, no JSON."""
    if v is None or v == "":
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} {_value(x)}" for k, x in v.items()
                         if x not in (None, "", [], {})) or "—"
    if isinstance(v, list):
        return ", ".join(_value(x) for x in v) or "—"
    return str(v)


def what_will_happen(d: RecommendationDetail) -> str:
    """The approval dialog's statement: action, target, parameters, impact, rationale."""
    v = d.view
    params = "\n".join(f"    {escape(k)} = {escape(_value(x))}"
                       for k, x in sorted(d.params.items())) or "    (none)"
    conf = f"{v.confidence:.0%}" if v.confidence is not None else "—"
    return (
        f"Approving [b]{escape(v.id)}[/] queues this action for execution:\n\n"
        f"  action      [b]{escape(v.action.replace('_', ' '))}[/] ({escape(v.decision_class)})\n"
        f"  target      [b]{escape(v.target)}[/]\n"
        f"  parameters\n{params}\n"
        f"  impact      {escape(v.expected_impact or '—')}\n"
        f"  confidence  {conf}   expires {hhmm(v.expires_at)}\n\n"
        f"Why: {escape(v.rationale or '—')}\n\n"
        "Your signature (name, UTC time, meaning) is bound to this record's hash; if the "
        "record changes before you sign, the approval is refused."
    )


def evidence_text(d: RecommendationDetail) -> str:
    v, ev = d.view, d.evidence
    head = what_will_happen(d).split("\n\nYour signature")[0]
    if v.status != "proposed":  # decided or lapsed: say what became of it, not "Approving…"
        state = f"{v.status}" + (f" — {v.outcome}" if v.outcome and v.outcome != v.status
                                 else "")
        head = head.replace(
            f"Approving [b]{escape(v.id)}[/] queues this action for execution:",
            f"[b]{escape(v.id)}[/] is [b]{escape(state)}[/]; it proposed:", 1)
    lines = [head, "", "[b]Evidence[/]"]
    for s in ev.get("signals", []) or []:
        if isinstance(s, dict):
            lines.append("  signal  " + escape(", ".join(f"{k}={_value(x)}"
                                                          for k, x in s.items())))
    for c in ev.get("contributions", []) or []:
        if isinstance(c, dict):
            lines.append(f"  model   {escape(str(c.get('signal', '?')))} "
                         f"{escape(str(c.get('direction', '')))} risk by "
                         f"{_value(c.get('contribution', ''))} "
                         f"(value {_value(c.get('value', '—'))}, baseline "
                         f"{_value(c.get('baseline', '—'))})")
    ctx = ev.get("context")
    if isinstance(ctx, dict):
        lines.append("  context " + escape(", ".join(f"{k}={x}" for k, x in ctx.items() if x)))
    rest = {k: x for k, x in ev.items() if k not in ("signals", "contributions", "context",
                                                      "history", "detection")}
    det = ev.get("detection")
    if isinstance(det, dict):  # what was detected, in words (it was a JSON blob)
        what = det.get("summary") or det.get("kind") or "detection"
        by = det.get("detector_id")
        lines.append(f"  detected {escape(str(what))}" + (f" (by {escape(str(by))})" if by else "")
                     + (f" at {escape(str(det.get('onset'))[:19].replace('T', ' '))}"
                        if det.get("onset") else ""))
    for k, x in sorted(rest.items()):
        if x in (None, "", [], {}):
            continue
        lines.append(f"  {escape(k.replace('_', ' '))}: {escape(_value(x))}")
    hist = ev.get("history") or []
    if hist:
        lines.append(f"  seen {len(hist)} time(s)")
    lines += ["", f"[b]Status[/] {v.status}  {escape(v.outcome)}"]
    for dec in d.decisions:
        lines.append(f"  {dec.verdict} by {escape(dec.signed_name or dec.user_id)} at "
                     f"{dec.signed_at:%Y-%m-%d %H:%M:%S} UTC"
                     + (f" — {escape(dec.reason)}" if dec.reason else "")
                     + (f": {escape(dec.comment)}" if dec.comment else ""))
    return "\n".join(lines)


def genealogy_text(d: LotDetail) -> str:
    lot = d.lot
    lines = [f"[b]{lot.id}[/]  order {lot.order_id} · product {lot.product_id} · qty "
             f"{lot.quantity} · {lot.status} · at {lot.equipment_id or '—'}", "",
             "[b]Made from[/]"]
    if not d.parents:
        lines.append("  (no consumption recorded yet)")
    for i, g in enumerate(d.parents):
        branch = "└─" if i == len(d.parents) - 1 else "├─"
        what = (f"lot {g.lot_id}" if g.lot_id else
                f"batch {g.batch_id} ({g.material_id or '?'})")
        lines.append(f"  {branch} {g.relation:<8} {what}  qty {g.quantity:g}  {hhmm(g.ts)}")
    lines += ["", "[b]Went into[/]"]
    if not d.children:
        lines.append("  (nothing yet)")
    for i, g in enumerate(d.children):
        branch = "└─" if i == len(d.children) - 1 else "├─"
        lines.append(f"  {branch} {g.relation:<8} lot {g.lot_id}  qty {g.quantity:g}  "
                     f"{hhmm(g.ts)}")
    lines += ["", "[b]Holds[/]"]
    lines += [f"  {h.id} {h.status} {escape(h.reason)} → {h.disposition or 'pending'}"
              for h in d.holds] or ["  none"]
    lines += ["", "[b]Latest measurements[/]"]
    lines += [f"  {c:<24} {v:>10.4g}  {'in spec' if ok else '[b red]OUT OF SPEC[/]'}  "
              f"{hhmm(ts)}" for c, v, ok, ts in d.measurements] or ["  none"]
    return "\n".join(lines)


class TextScreen(Screen[None]):
    """A scrollable text page over the main view; Esc goes back."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back", id="detail_back")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text, self.text = title, text

    def compose(self) -> ComposeResult:
        yield Static(f"[b]{escape(self.title_text)}[/]", id="detail-title")
        with VerticalScroll(id="detail-body"):
            yield Static(self.text, id="detail-text")
        yield Footer()


class RecommendationScreen(TextScreen):
    """Follows the recommendation: the app hands over a fresh detail when its status moves
    (approved, executed), so the page never reads ``proposed`` after the decision."""

    def __init__(self, detail: RecommendationDetail) -> None:
        super().__init__(f"Recommendation {detail.view.id}", evidence_text(detail))
        self.recommendation_id = detail.view.id
        self.shown_state = (detail.view.status, detail.view.outcome)

    def update_detail(self, detail: RecommendationDetail) -> None:
        self.shown_state = (detail.view.status, detail.view.outcome)
        self.text = evidence_text(detail)
        if self.is_attached:
            self.query_one("#detail-text", Static).update(self.text)


class LotScreen(TextScreen):
    def __init__(self, detail: LotDetail) -> None:
        super().__init__(f"Lot {detail.lot.id} — genealogy", genealogy_text(detail))
        self.lot_id = detail.lot.id
