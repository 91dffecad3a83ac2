"""Requested changes: a person asks for a setpoint change (or a machine command) on purpose.

A request becomes a recommendation of its decision class with the person as its author
(``evidence.requested_by``, ``params.requested_by``, audited as ``rec.requested``) and then
lives the same life as one a detection produced: approved with an e-signature by a role
that may decide the class, executed once through the outbox, behind the same interlocks
(a setpoint write is checked against the recipe limits at request time and again, from
the store, when it executes). Where ``[autonomy] four_eyes`` names the class, the
requester may not approve his own request (``core.engine.decide``). A request is never
approved by policy: a person asked, a person decides.

The requester signs the request with the PIN: the four-eyes rule is only as good as the
knowledge of who asked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text

from core.audit import record_hash
from core.auth import Authenticator, AuthError
from core.clock import Clock
from core.config.loader import ResolvedTag
from core.engine.executors.command import check_command
from core.engine.recommend import request
from core.store.db import Store, guard
from core.store.models import Equipment, RecipeSetpoint

# who may ask for a change on purpose: the engineers (an operator asks his shift lead)
REQUEST_ROLES = frozenset({"shift_lead", "maintenance", "quality", "admin"})
REQUEST_TTL_S = 8 * 3600.0


class RequestError(Exception):
    """A request that cannot be made; str() says why in words a person can act on."""


@dataclass(frozen=True)
class Requested:
    recommendation_id: str
    decision_class: str
    target: str
    params: dict[str, Any]


class Requester:
    """Turns a person's request into a recommendation (see the module docstring)."""

    def __init__(self, store: Store, auth: Authenticator, clock: Clock,
                 tags: Iterable[ResolvedTag]) -> None:
        self.store, self.auth, self.clock = store, auth, clock
        self.tags = {t.id: t for t in tags}

    def _who(self, user_id: str, pin: str | None, meaning: str, subject: dict[str, Any]
             ) -> dict[str, str]:
        who = self.auth.identity(user_id)
        if not any(r in REQUEST_ROLES for r in who.roles):
            raise AuthError(f"{who.name} ({', '.join(who.roles)}) may not request changes; "
                            f"allowed: {', '.join(sorted(REQUEST_ROLES))}")
        if not pin:
            raise AuthError(f"a request is signed: enter {who.name}'s PIN")
        return self.auth.sign(user_id, pin, meaning, record_hash(subject)).as_dict()

    def _required_role(self, decision_class: str) -> str:
        roles = [r for r in self.auth.roles_for(decision_class) if r != "admin"]
        return (roles or ["admin"])[0]

    # ------------------------------------------------------------ setpoints

    def setpoint(self, user_id: str, equipment_id: str, name: str, value: float, *,
                 reason: str, pin: str | None, recipe_id: str | None = None) -> Requested:
        """Ask for ``equipment.name = value``; refused here when the recipe forbids it."""
        if not reason.strip():
            raise RequestError("say why (--reason): the approver reads it")
        tag_id = f"{equipment_id}.{name}"
        tag = self.tags.get(tag_id)
        if tag is None or tag.equipment_id is None:
            known = sorted(t.name for t in self.tags.values() if t.equipment_id == equipment_id
                           and t.spec.kind == "setpoint")
            if not known:
                raise RequestError(f"unknown equipment {equipment_id!r} (or it has no "
                                   "setpoints)")
            raise RequestError(f"{equipment_id} has no setpoint {name!r}; its setpoints: "
                               f"{', '.join(known)}")
        if tag.spec.kind != "setpoint" or not tag.spec.writable:
            raise RequestError(f"{tag_id} is not a writable setpoint")
        if not math.isfinite(value):
            raise RequestError(f"{value} is not a value")
        with guard(self.store), self.store.session() as s:
            eq = s.get(Equipment, equipment_id)
            eq_type = eq.type if eq is not None else None
            recipe = recipe_id or self._recipe_of(equipment_id)
            if recipe is None:
                raise RequestError(f"no recipe known on {equipment_id} (nothing runs there): "
                                   "dispatch an order on it, or name the recipe (--recipe)")
            row = s.get(RecipeSetpoint, f"{recipe}.{eq_type}.{name}")
        if row is None:
            raise RequestError(f"recipe {recipe} has no limits for {name} on "
                               f"{equipment_id} ({eq_type}): the interlock would refuse it")
        if not row.lo <= value <= row.hi:
            raise RequestError(f"{tag_id} = {value:g} is outside the recipe limits "
                               f"{row.lo:g}..{row.hi:g} {row.unit}")
        previous = self._last_value(tag_id)
        params = {"tag_id": tag_id, "equipment_id": equipment_id, "name": name,
                  "recipe_id": recipe, "equipment_type": eq_type, "value": value,
                  "previous": previous, "lo": row.lo, "hi": row.hi, "unit": row.unit,
                  "requested_by": user_id, "reason": reason.strip()}
        was = f"{previous:g}" if isinstance(previous, (int, float)) else "?"
        sig = self._who(user_id, pin, f"request setpoint {tag_id} = {value:g} {row.unit}",
                        params)
        rationale = (f"{self.auth.identity(user_id).name} asks: {name} {was} → {value:g} "
                     f"{row.unit} (recipe range {row.lo:g}–{row.hi:g}): {reason.strip()}")
        rid = request(self.store, self.clock, "setpoint", tag_id, "write_setpoint",
                      {**params, "request_signature": sig["hash"]}, rationale, user_id,
                      self._required_role("setpoint"), ttl_s=REQUEST_TTL_S)
        return Requested(rid, "setpoint", tag_id, params)

    # ------------------------------------------------------------ machine commands

    def command(self, user_id: str, equipment_id: str, command: str,
                args: dict[str, Any] | None = None, *, reason: str,
                pin: str | None) -> Requested:
        """Ask for a machine command (``core.engine.executors.command.COMMANDS``)."""
        if not reason.strip():
            raise RequestError("say why (--reason): the approver reads it")
        if not any(t.equipment_id == equipment_id for t in self.tags.values()):
            raise RequestError(f"unknown equipment {equipment_id!r}")
        if not any(t.equipment_id == equipment_id and t.spec.kind == "command"
                   for t in self.tags.values()):
            raise RequestError(f"{equipment_id} has no command tag in the config: a command "
                               "cannot reach it")
        args = {k: v for k, v in (args or {}).items() if v not in (None, "")}
        try:
            check_command(command, args)
        except ValueError as e:
            raise RequestError(str(e)) from None
        params = {"equipment_id": equipment_id, "command": command, "args": args,
                  "requested_by": user_id, "reason": reason.strip()}
        shown = " ".join(f"{k}={v}" for k, v in sorted(args.items()))
        sig = self._who(user_id, pin, f"request command {command} {shown} on {equipment_id}",
                        params)
        target = f"{equipment_id}:{command}"
        rationale = (f"{self.auth.identity(user_id).name} asks: {command} {shown} on "
                     f"{equipment_id}: {reason.strip()}").replace("  ", " ")
        rid = request(self.store, self.clock, "command", target, "send_command",
                      {**params, "request_signature": sig["hash"]}, rationale, user_id,
                      self._required_role("command"), ttl_s=REQUEST_TTL_S)
        return Requested(rid, "command", target, params)

    # ------------------------------------------------------------ reads

    def _recipe_of(self, equipment_id: str) -> str | None:
        """What the machine runs: the dispatched order's recipe, else its newest
        context interval's, else its WIP lot's order's."""
        with guard(self.store), self.store.engine.connect() as conn:
            from core.dispatch import ensure_schema

            ensure_schema(conn)
            for sql in (
                "SELECT o.recipe_id FROM dispatch d JOIN production_order o "
                "ON o.id = d.order_id WHERE d.equipment_id = :eq",
                "SELECT recipe_id FROM context_interval WHERE scope = :eq "
                "AND recipe_id IS NOT NULL ORDER BY valid_from DESC, id DESC LIMIT 1",
                "SELECT o.recipe_id FROM lot l JOIN production_order o ON o.id = l.order_id "
                "WHERE l.equipment_id = :eq AND l.status = 'wip' LIMIT 1",
            ):
                r = conn.execute(text(sql), {"eq": equipment_id,
                                             "pat": f"{equipment_id}.%"}).first()
                if r is not None and r[0]:
                    return str(r[0])
        return None

    def _last_value(self, tag_id: str) -> float | None:
        from core.history import latest

        with guard(self.store), self.store.engine.connect() as conn:
            pts = latest(conn, [tag_id], 1, good_only=True).get(tag_id)
        return float(pts[-1][1]) if pts and pts[-1][1] is not None else None


def requested_by(evidence: Any) -> str | None:
    """The author of a person-initiated recommendation (None for a detection's)."""
    if isinstance(evidence, dict):
        who = evidence.get("requested_by")
        return str(who) if who else None
    return None
