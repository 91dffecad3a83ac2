"""The audit chain: append-only, hash-chained, durable.

Each entry's SHA-256 covers its own content and the previous entry's hash, so changing
or removing any row breaks the chain from that row on. The database refuses UPDATE
and DELETE on the table (triggers: ``core.store.models.AUDIT_GUARD_SQL``); verification
finds tampering done around them (raw SQL with the triggers dropped, or a copy of the
file edited elsewhere). Audit writes run with ``synchronous=FULL`` on SQLite so an
acknowledged entry survives a power cut.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from core.audit_witness import Anchor, note_append
from core.clock import ensure_utc, utcnow
from core.store.locks import xact_lock
from core.store.models import AuditEntry

GENESIS = "0" * 64
_TABLE = AuditEntry.__table__  # type: ignore[attr-defined]



class AuditError(Exception):
    """The audit chain could not be written; the action it records must not proceed."""


def _canonical(seq: int, ts: datetime, actor: str, action: str, entity: str,
               entity_id: str, detail: str) -> bytes:
    body = {
        "seq": seq,
        "ts": ensure_utc(ts).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "detail": detail,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(prev_hash: str, seq: int, ts: datetime, actor: str, action: str,
               entity: str, entity_id: str, detail: str) -> str:
    h = hashlib.sha256()
    h.update(prev_hash.encode())
    h.update(_canonical(seq, ts, actor, action, entity, entity_id, detail))
    return h.hexdigest()


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 of a record's canonical JSON: what an e-signature is bound to."""
    data = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    ts: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    detail: dict[str, Any]
    hash: str


def append(
    engine_or_conn: Engine | Connection,
    actor: str,
    action: str,
    entity: str = "",
    entity_id: str = "",
    detail: dict[str, Any] | None = None,
    ts: datetime | None = None,
) -> AuditRecord:
    """Append one entry durably and return it.

    Given an Engine, the entry is written in its own transaction with a write lock
    taken up front (BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL) so two
    processes never chain onto the same predecessor. Given a Connection, it joins the
    caller's transaction, so the audit entry commits or rolls back with the change it
    records.
    """
    det = json.dumps(detail or {}, sort_keys=True, default=str, ensure_ascii=False)
    when = ensure_utc(ts or utcnow())
    if isinstance(engine_or_conn, Connection):
        return _append(engine_or_conn, actor, action, entity, entity_id, det, when)
    engine = engine_or_conn
    try:
        with engine.connect() as conn:
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.commit()
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                rec = _append(conn, actor, action, entity, entity_id, det, when)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                if sqlite:
                    conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
            return rec
    except Exception as e:
        if isinstance(e, AuditError):
            raise
        raise AuditError(f"audit entry {action!r} could not be written: {e}") from e


def _append(conn: Connection, actor: str, action: str, entity: str, entity_id: str,
            detail: str, ts: datetime) -> AuditRecord:
    xact_lock(conn, "loopline.audit")  # PostgreSQL: appenders take turns on the head
    last = conn.execute(
        select(_TABLE.c.seq, _TABLE.c.hash).order_by(_TABLE.c.seq.desc()).limit(1)
    ).first()
    seq = (last.seq + 1) if last else 1
    prev = last.hash if last else GENESIS
    h = entry_hash(prev, seq, ts, actor, action, entity, entity_id, detail)
    conn.execute(
        insert(_TABLE).values(
            seq=seq, ts=ts, actor=actor, action=action, entity=entity,
            entity_id=entity_id, detail=detail, prev_hash=prev, hash=h,
        )
    )
    note_append(conn, seq, h)
    return AuditRecord(seq, ts, actor, action, entity, entity_id, json.loads(detail), h)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""
    anchor_hash: str | None = None  # the hash found at the anchor's seq

    def message(self) -> str:
        if self.ok:
            return f"audit chain holds: {self.checked} entries verified"
        return f"audit chain BROKEN at entry {self.first_bad_seq}: {self.problem}"


def head(engine: Engine) -> Anchor | None:
    """The chain's newest entry as an anchor (seq = the entry count of a whole chain)."""
    with engine.connect() as conn:
        r = conn.execute(select(_TABLE.c.seq, _TABLE.c.hash)
                         .order_by(_TABLE.c.seq.desc()).limit(1)).first()
    return Anchor(int(r.seq), str(r.hash), "store") if r else None


def verify(engine: Engine, anchor: Anchor | None = None) -> VerifyResult:
    """Walk the chain in order; name the first entry whose hash or link does not hold.

    With an ``anchor`` (a head kept outside the database) the chain must also reach it:
    fewer entries means the newest were deleted, another hash at its seq means the chain
    was re-written (edited and re-hashed)."""
    res = _walk(engine, None if anchor is None else anchor.seq)
    if not res.ok or anchor is None:
        return res
    if res.checked < anchor.seq:
        return VerifyResult(False, res.checked, res.checked + 1,
                            f"entries missing at the end: the chain has {res.checked}, "
                            f"the anchor ({anchor.source or 'given'}) says {anchor.seq}")
    if res.anchor_hash != anchor.hash:
        return VerifyResult(False, res.checked, anchor.seq,
                            f"entry {anchor.seq} is not the one the anchor "
                            f"({anchor.source or 'given'}) recorded: the chain was "
                            "re-written")
    return res


def _walk(engine: Engine, anchor_seq: int | None) -> VerifyResult:
    prev = GENESIS
    anchor_hash: str | None = None
    expected_seq = 1
    n = 0
    with engine.connect() as conn:
        rows = conn.execute(select(_TABLE).order_by(_TABLE.c.seq))
        for r in rows:
            n += 1
            if r.seq != expected_seq:
                return VerifyResult(False, n, expected_seq,
                                    f"entry missing (next present is {r.seq})")
            if r.prev_hash != prev:
                return VerifyResult(False, n, r.seq, "link to the previous entry does not match")
            h = entry_hash(prev, r.seq, r.ts, r.actor, r.action, r.entity, r.entity_id, r.detail)
            if h != r.hash:
                return VerifyResult(False, n, r.seq, "content does not match its hash")
            prev = r.hash
            if r.seq == anchor_seq:
                anchor_hash = r.hash
            expected_seq += 1
    return VerifyResult(True, n, anchor_hash=anchor_hash)


def recent(engine: Engine, limit: int = 50) -> list[AuditRecord]:
    with engine.connect() as conn:
        rows = conn.execute(select(_TABLE).order_by(_TABLE.c.seq.desc()).limit(limit)).all()
    return [
        AuditRecord(r.seq, ensure_utc(r.ts), r.actor, r.action, r.entity, r.entity_id,
                    json.loads(r.detail or "{}"), r.hash)
        for r in rows
    ]
