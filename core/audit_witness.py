"""The audit chain's anchor outside the database: a witness file beside the store.

A hash chain proves every entry is unaltered, not that none is missing: whoever holds the
file can drop the triggers and delete the newest entries, or edit one and re-hash every
entry after it, and the chain still holds. The witness records the chain's head (seq
and hash) outside the database, in ``<store>.audit-head``, after each committed append;
``core.audit.verify`` with an anchor then finds both (fewer entries than the anchor
names, or another hash at its seq). Exports and reports publish the same head, so an
anchor can also be kept elsewhere (``loopline audit verify --anchor HASH:COUNT``).

The witness is written after the commit: the pool's check-in of the connection that
appended re-reads the entry, so a rolled-back append never moves it, and it only ever
moves forward (several processes append to one store). A crash between the commit and
the write leaves it one append behind — the only entries it cannot vouch for.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event

SUFFIX = ".audit-head"
_PENDING = "loopline_audit_head"


@dataclass(frozen=True)
class Anchor:
    """A chain head someone kept: entry ``seq`` must exist and have ``hash``."""

    seq: int
    hash: str
    source: str = ""

    def text(self) -> str:
        return f"{self.hash}:{self.seq}"


class AnchorError(ValueError):
    """An anchor that cannot be read; str() says why."""


def witness_path(db_path: Path | str) -> Path:
    p = Path(db_path)
    return p.with_name(p.name.removesuffix(p.suffix) + SUFFIX)


def read_witness(path: Path) -> Anchor | None:
    """The witness at ``path``; None when there is none; AnchorError when unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise AnchorError(f"cannot read the audit witness {path}: {e.strerror}") from None
    return _from_json(text, str(path))


def _from_json(text: str, source: str) -> Anchor:
    try:
        doc = json.loads(text)
        head = doc.get("audit_head", doc) if isinstance(doc, dict) else None
        return Anchor(int(head["seq"]), str(head["hash"]), source)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise AnchorError(f"{source} holds no audit head (expected "
                          '{"seq": N, "hash": "..."})') from None


def parse_anchor(text: str) -> Anchor:
    """``HASH:COUNT``, or a file: a witness, or a report/export JSON with ``audit_head``."""
    h, sep, n = text.rpartition(":")
    if sep and n.isdigit() and len(h) == 64 and all(c in "0123456789abcdef" for c in h):
        return Anchor(int(n), h, "--anchor")
    p = Path(text)
    if not p.is_file():
        raise AnchorError(f"--anchor {text!r}: neither HASH:COUNT (64 hex digits, a "
                          "colon, the entry count) nor a readable file")
    try:
        return _from_json(p.read_text(encoding="utf-8"), str(p))
    except OSError as e:
        raise AnchorError(f"cannot read {p}: {e.strerror}") from None


def write_witness(path: Path, seq: int, hash_: str) -> None:
    """Move the witness forward to ``seq`` (never back), atomically and durably."""
    lock = path.with_name(path.name + ".lock")
    with open(lock, "a") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        with contextlib.suppress(AnchorError):
            cur = read_witness(path)
            if cur is not None and cur.seq >= seq:
                return
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"seq": seq, "hash": hash_}, f)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def note_append(conn: Connection, seq: int, hash_: str) -> None:
    """Called by ``core.audit`` for each entry: the witness moves once it is committed."""
    engine = conn.engine
    if engine.dialect.name != "sqlite":
        return
    db = engine.url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return
    _install(engine, witness_path(db))
    conn.info[_PENDING] = (seq, hash_)


_INSTALLED: weakref.WeakSet[Engine] = weakref.WeakSet()


def _install(engine: Engine, path: Path) -> None:
    if engine in _INSTALLED:
        return

    def on_checkin(dbapi_conn: Any, record: Any) -> None:
        pending = record.info.pop(_PENDING, None) if record is not None else None
        if pending is None or dbapi_conn is None:
            return
        seq, h = pending
        try:
            row = dbapi_conn.execute("SELECT hash FROM audit_entry WHERE seq = ?",
                                     (seq,)).fetchone()
            if row is not None and row[0] == h:  # committed, not rolled back
                write_witness(path, seq, h)
        except Exception:  # never fail a commit that already happened
            import logging

            logging.getLogger(__name__).warning("audit witness %s not updated", path,
                                                exc_info=True)

    event.listen(engine, "checkin", on_checkin)
    _INSTALLED.add(engine)
