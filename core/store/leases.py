"""Line leases: which runtime owns which line, so several line PCs can share one store.

A runtime takes a lease on each line it runs (``acquire``, all or none), renews it on a
heartbeat (``renew``) and gives it back when it stops (``release``). A lease that is
not renewed expires after its time to live; then another runtime started with that line
takes it over. Every change is a compare-and-set UPDATE on the row as it was read (or an
INSERT that the primary key makes unique), so two runtimes racing for a line cannot both
win, on SQLite and PostgreSQL alike, without any engine-specific lock.

Times are wall-clock UTC of the runtime's host (never plant time: the twin may run at
60×), so the line PCs' clocks must agree within a fraction of the lease's time to live
(NTP). A lease held by a process on this host that no longer exists is stale at once:
a runtime restarted after a crash on the same PC does not wait for the expiry.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from core.clock import utcnow
from core.store.db import Store, guard
from core.store.models import LineLease

LEASE = LineLease.__table__  # type: ignore[attr-defined]
DEFAULT_TTL_S = 30.0
HOST_ENV = "LOOPLINE_RUNTIME_HOST"  # the host name leases record (default: the host's)


def host_name() -> str:
    """This PC's name in the lease table ($LOOPLINE_RUNTIME_HOST overrides it: containers
    that share a host name, or tests standing in for two PCs)."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


class LeaseRefused(Exception):
    """A line is owned by another live runtime; str() says by whom and until when."""


@dataclass(frozen=True)
class Holder:
    line_id: str
    owner: str
    host: str
    pid: int
    acquired_at: datetime
    heartbeat_at: datetime
    expires_at: datetime

    def live(self, now: datetime | None = None) -> bool:
        return self.expires_at > (now or utcnow()) and not _dead_here(self.host, self.pid)

    def describe(self) -> str:
        return (f"runtime {self.owner} on host {self.host} (pid {self.pid}) since "
                f"{_t(self.acquired_at)}")


def runtime_id() -> str:
    """This runtime's owner id: host, pid and a random part (a pid is reused)."""
    return f"{host_name()}:{os.getpid()}:{secrets.token_hex(3)}"


def holders(store: Store) -> dict[str, Holder]:
    """Every lease row, live or not, by line."""
    with guard(store), store.engine.connect() as conn:
        return {h.line_id: h for h in _rows(conn)}


def ownership(store: Store, now: datetime | None = None) -> dict[str, dict[str, object]]:
    """Who owns each leased line, for `loopline status` and the console's header:
    ``{line: {owner, host, pid, since, expires_at, live}}``; a line nobody leased is
    absent (no runtime has run it since the last clean stop)."""
    now = now or utcnow()
    try:
        rows = holders(store)
    except Exception:  # a store from before the lease table: nobody owns anything
        return {}
    return {k: {"owner": h.owner, "host": h.host, "pid": h.pid,
                "since": h.acquired_at.isoformat(), "heartbeat_at": h.heartbeat_at.isoformat(),
                "expires_at": h.expires_at.isoformat(), "live": h.live(now)}
            for k, h in rows.items()}


def owner_text(o: dict[str, object] | None) -> str:
    """One short phrase: ``host:pid`` for a live owner, ``lapsed (host:pid)`` for a
    lease that ran out, ``—`` for none."""
    if not o:
        return "—"
    who = f"{o['host']}:{o['pid']}"
    return who if o.get("live") else f"lapsed ({who})"


def acquire(store: Store, lines: Sequence[str], owner: str, ttl_s: float = DEFAULT_TTL_S,
            *, now: datetime | None = None) -> list[Holder]:
    """Take every line in ``lines`` or none; raises ``LeaseRefused`` naming the holder of
    each line another live runtime owns. Returns the leases taken over from runtimes
    that stopped without giving them back (expired or dead)."""
    now = now or utcnow()
    exp = now + timedelta(seconds=ttl_s)
    host, pid = host_name(), os.getpid()
    taken: list[Holder] = []
    refused: list[str] = []
    try:
        with guard(store), store.begin() as conn:
            current = {h.line_id: h for h in _rows(conn, lines)}
            for line in lines:
                h = current.get(line)
                vals = dict(owner=owner, host=host, pid=pid, heartbeat_at=now, expires_at=exp)
                if h is None:
                    conn.execute(insert(LEASE).values(line_id=line, acquired_at=now, **vals))
                    continue
                if h.owner != owner and h.live(now):
                    refused.append(f"line {line} is owned by {h.describe()}; stop it or wait "
                                   f"until its lease expires at {_t(h.expires_at)}")
                    continue
                res = conn.execute(update(LEASE).where(
                    LEASE.c.line_id == line, LEASE.c.owner == h.owner,
                    LEASE.c.heartbeat_at == h.heartbeat_at).values(
                    acquired_at=h.acquired_at if h.owner == owner else now, **vals))
                if res.rowcount != 1:
                    refused.append(f"line {line} was taken by another runtime just now")
                elif h.owner != owner:
                    taken.append(h)
            if refused:
                raise LeaseRefused("; ".join(refused))
    except IntegrityError:  # another runtime inserted the same line first
        raise LeaseRefused(f"another runtime took {', '.join(lines)} just now; "
                           "see `loopline status`") from None
    return taken


def renew(store: Store, lines: Iterable[str], owner: str, ttl_s: float = DEFAULT_TTL_S,
          *, now: datetime | None = None) -> list[str]:
    """Extend our leases; returns the lines that are no longer ours (taken over after
    they expired: this runtime must stop acting for them)."""
    now = now or utcnow()
    lost: list[str] = []
    with guard(store), store.begin() as conn:
        for line in lines:
            res = conn.execute(update(LEASE).where(
                LEASE.c.line_id == line, LEASE.c.owner == owner).values(
                heartbeat_at=now, expires_at=now + timedelta(seconds=ttl_s)))
            if res.rowcount != 1:
                lost.append(line)
    return lost


def release(store: Store, lines: Iterable[str], owner: str) -> None:
    """Give our lines back (a clean stop): the next runtime starts at once."""
    with guard(store), store.begin() as conn:
        conn.execute(delete(LEASE).where(LEASE.c.line_id.in_(list(lines)),
                                         LEASE.c.owner == owner))


def held(conn: Connection, line_id: str, owner: str, now: datetime | None = None) -> bool:
    """Inside a transaction: do we still hold ``line_id``? (The outbox asks before it
    claims an action, so a runtime whose lease lapsed does not act for that line.)"""
    exp = conn.execute(select(LEASE.c.expires_at).where(
        LEASE.c.line_id == line_id, LEASE.c.owner == owner)).scalar()
    return exp is not None and _aware(exp) > (now or utcnow())


def _rows(conn: Connection, lines: Sequence[str] | None = None) -> list[Holder]:
    q = select(LEASE)
    if lines is not None:
        q = q.where(LEASE.c.line_id.in_(list(lines)))
    return [Holder(r.line_id, r.owner, r.host, int(r.pid), _aware(r.acquired_at),
                   _aware(r.heartbeat_at), _aware(r.expires_at))
            for r in conn.execute(q.order_by(LEASE.c.line_id))]


def _aware(ts: datetime) -> datetime:
    from core.clock import ensure_utc

    return ensure_utc(ts)


def _dead_here(host: str, pid: int) -> bool:
    """The holder ran on this host and its process is gone (a crash on this PC)."""
    if host != host_name() or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _t(ts: datetime) -> str:
    return _aware(ts).strftime("%Y-%m-%d %H:%M:%S UTC")
