"""Who may decide what, PIN checks with lock-out, and electronic signatures.

PIN hashes live in the config (scrypt); the store keeps the state that changes:
failed attempts and lock-out. Every lock-out, unlock and signature is in the audit chain.
An e-signature records printed name, UTC time and meaning and is bound to the hash of
the record it signs (21 CFR Part 11 style): user id + PIN the first time in a session,
the PIN again after an idle timeout.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, insert, select, update

from core import audit
from core.clock import Clock, WallClock
from core.config.schema import Auth as AuthSettings
from core.config.schema import User as UserSpec
from core.pins import verify_pin
from core.store.models import User

_USERS = User.__table__  # type: ignore[attr-defined]


# Floor acts that are not decision classes, and the roles that may take them. Every role
# that runs the floor acknowledges alarms; shelving hides an alarm from annunciation, so
# only those answerable for the shift may; disposing a hold (asking for its release as
# use-as-is, rework, scrap...) is quality's call. Approving the release it asks for is a
# decision class (lot_release) like any other.
FLOOR_ROLES: dict[str, frozenset[str]] = {
    "acknowledge": frozenset({"operator", "shift_lead", "maintenance", "quality", "admin"}),
    "shelve": frozenset({"shift_lead", "admin"}),
    "dispose": frozenset({"quality", "admin"}),
    # starting, pausing, resuming and completing an operation on a machine (core.dispatch)
    "dispatch": frozenset({"operator", "shift_lead", "admin"}),
}


class AuthError(Exception):
    """Refused: str() says why in words a person can act on."""


@dataclass(frozen=True)
class Identity:
    user_id: str
    name: str
    roles: tuple[str, ...]


@dataclass(frozen=True)
class Signature:
    """An electronic signature as stored with a decision."""

    user_id: str
    printed_name: str
    signed_at: datetime
    meaning: str  # e.g. "approve work order WO-12: I authorise execution"
    record_hash: str
    hash: str  # binds the four fields above to the signed record

    def as_dict(self) -> dict[str, str]:
        return {
            "user_id": self.user_id,
            "printed_name": self.printed_name,
            "signed_at": self.signed_at.isoformat(),
            "meaning": self.meaning,
            "record_hash": self.record_hash,
            "hash": self.hash,
        }


def signature_hash(user_id: str, signed_at: datetime, meaning: str, record_hash: str) -> str:
    payload = "\x1f".join([user_id, signed_at.isoformat(), meaning, record_hash])
    return hashlib.sha256(payload.encode()).hexdigest()


class Authenticator:
    """PIN checks against the config, lock-out state in the store."""

    def __init__(self, engine: Engine, users: list[UserSpec], settings: AuthSettings,
                 clock: Clock | None = None) -> None:
        self.engine = engine
        self.users = {u.id: u for u in users}
        self.settings = settings
        self.clock = clock or WallClock()

    # ------------------------------------------------------------ roles

    def identity(self, user_id: str) -> Identity:
        spec = self.users.get(user_id)
        if spec is None:
            raise AuthError(f"unknown user {user_id!r}")
        return Identity(spec.id, spec.name, tuple(spec.roles))

    def may_decide(self, user_id: str, decision_class: str) -> bool:
        spec = self.users.get(user_id)
        if spec is None:
            return False
        perms = self.settings.permissions
        return any(decision_class in perms.get(role, []) for role in spec.roles)

    def may_act(self, user_id: str, act: str) -> bool:
        """``act``: acknowledge, shelve or dispose (``FLOOR_ROLES``)."""
        spec = self.users.get(user_id)
        allowed = FLOOR_ROLES.get(act, frozenset())
        return spec is not None and any(r in allowed for r in spec.roles)

    def roles_for(self, decision_class: str) -> list[str]:
        """Roles that may decide a class: shown when someone without them tries."""
        return [r for r, classes in self.settings.permissions.items() if decision_class in classes]

    def require(self, user_id: str, decision_class: str) -> None:
        if not self.may_decide(user_id, decision_class):
            who = self.identity(user_id)
            allowed = ", ".join(self.roles_for(decision_class)) or "no role"
            raise AuthError(
                f"{who.name} ({', '.join(who.roles)}) may not decide {decision_class}; "
                f"allowed: {allowed}"
            )

    # ------------------------------------------------------------ PINs

    def _row(self, conn, user_id: str):
        row = conn.execute(select(_USERS).where(_USERS.c.id == user_id)).first()
        if row is None:
            spec = self.users[user_id]
            conn.execute(insert(_USERS).values(
                id=spec.id, name=spec.name, roles=",".join(spec.roles),
                failed_attempts=0, locked=False,
            ))
            row = conn.execute(select(_USERS).where(_USERS.c.id == user_id)).first()
        return row

    def authenticate(self, user_id: str, pin: str) -> Identity:
        """Check a PIN; the Nth wrong one in a row locks the user out."""
        spec = self.users.get(user_id)
        if spec is None:
            audit.append(self.engine, user_id or "?", "auth.unknown_user", "user", user_id or "")
            raise AuthError(f"unknown user {user_id!r}")
        now = self.clock.now()
        with self.engine.begin() as conn:
            row = self._row(conn, user_id)
            if row.locked:
                audit.append(conn, user_id, "auth.refused_locked", "user", user_id)
                raise_after = AuthError(
                    f"{spec.name} is locked out after {self.settings.max_failed_attempts} "
                    "wrong PINs; an admin must unlock (loopline user unlock)"
                )
            elif verify_pin(pin, spec.pin_hash):
                conn.execute(update(_USERS).where(_USERS.c.id == user_id).values(
                    failed_attempts=0, last_login=now))
                return Identity(spec.id, spec.name, tuple(spec.roles))
            else:
                fails = (row.failed_attempts or 0) + 1
                lock = fails >= self.settings.max_failed_attempts
                conn.execute(update(_USERS).where(_USERS.c.id == user_id).values(
                    failed_attempts=fails, locked=lock, locked_at=now if lock else None))
                audit.append(conn, user_id, "auth.failed_pin", "user", user_id,
                             {"attempt": fails}, ts=now)
                if lock:
                    audit.append(conn, "system", "auth.locked_out", "user", user_id,
                                 {"failed_attempts": fails}, ts=now)
                    raise_after = AuthError(
                        f"wrong PIN; {spec.name} is now locked out after {fails} failed "
                        "attempts — an admin must unlock"
                    )
                else:
                    left = self.settings.max_failed_attempts - fails
                    raise_after = AuthError(f"wrong PIN for {spec.name}; {left} attempt(s) left")
        raise raise_after

    def is_locked(self, user_id: str) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(select(_USERS.c.locked).where(_USERS.c.id == user_id)).first()
        return bool(row and row.locked)

    def unlock(self, admin_id: str, admin_pin: str, user_id: str) -> None:
        admin = self.authenticate(admin_id, admin_pin)
        if "admin" not in admin.roles:
            raise AuthError(f"{admin.name} is not an admin; only an admin may unlock users")
        if user_id not in self.users:
            raise AuthError(f"unknown user {user_id!r}")
        with self.engine.begin() as conn:
            self._row(conn, user_id)
            conn.execute(update(_USERS).where(_USERS.c.id == user_id).values(
                failed_attempts=0, locked=False, locked_at=None))
            audit.append(conn, admin_id, "auth.unlocked", "user", user_id, ts=self.clock.now())

    # ------------------------------------------------------------ signatures

    def sign(self, user_id: str, pin: str, meaning: str, record_hash: str) -> Signature:
        """Authenticate and produce a signature bound to ``record_hash``; audited."""
        return self._signature(self.authenticate(user_id, pin), meaning, record_hash)

    def sign_in_session(self, user_id: str, meaning: str, record_hash: str) -> Signature:
        """A signature within an active signing session (PIN checked at its start)."""
        if self.is_locked(user_id):
            raise AuthError(f"{self.identity(user_id).name} is locked out")
        return self._signature(self.identity(user_id), meaning, record_hash)

    def _signature(self, who: Identity, meaning: str, record_hash: str) -> Signature:
        at = self.clock.now()
        sig = Signature(who.user_id, who.name, at, meaning, record_hash,
                        signature_hash(who.user_id, at, meaning, record_hash))
        audit.append(self.engine, who.user_id, "esign", "record", record_hash,
                     {"meaning": meaning, "printed_name": who.name, "signature": sig.hash}, ts=at)
        return sig


@dataclass
class SigningSession:
    """E-signature rules for one console session.

    The first signature needs user id + PIN; later ones only the PIN while the session
    is active; after ``idle_timeout_s`` without a signature the PIN is asked again
    (the user id stays). ``sign_out`` clears it.
    """

    auth: Authenticator
    user_id: str | None = None
    last_activity: datetime | None = None
    _idle_s: float = field(init=False)

    def __post_init__(self) -> None:
        self._idle_s = float(self.auth.settings.signature_idle_timeout_s)

    def sign_in(self, user_id: str, pin: str) -> Identity:
        who = self.auth.authenticate(user_id, pin)
        self.user_id = who.user_id
        self.last_activity = self.auth.clock.now()
        return who

    def sign_out(self) -> None:
        self.user_id = None
        self.last_activity = None

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None

    def idle_expired(self) -> bool:
        if self.last_activity is None:
            return True
        return (self.auth.clock.now() - self.last_activity).total_seconds() > self._idle_s

    def needs_pin(self) -> bool:
        return self.user_id is None or self.idle_expired()

    def sign(self, meaning: str, record_hash: str, pin: str | None = None) -> Signature:
        """Sign as the session's user; the PIN is required once the session is idle."""
        if self.user_id is None:
            raise AuthError("sign in first (user id and PIN)")
        if pin is not None:
            sig = self.auth.sign(self.user_id, pin, meaning, record_hash)
        elif self.idle_expired():
            raise AuthError("the session was idle: enter your PIN to sign")
        else:
            sig = self.auth.sign_in_session(self.user_id, meaning, record_hash)
        self.last_activity = sig.signed_at
        return sig
