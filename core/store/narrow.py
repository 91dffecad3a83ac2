"""Contextualized rows into the narrow history tables, on any DB-API connection.

A ``Row`` is what the ingest path carries (and spills): ``(tag_id, ts_us, value,
text, quality, reason, ctx)`` where ``ctx`` is the 8-tuple of context ids in
``CTX_FIELDS`` order (or None). ``NarrowWriter.write(rows)`` turns a batch into

- one ``sample`` row ``(tag number, ts, value, quality, reason code)`` per number
  (a text value goes to ``sample_text`` instead),
- a ``sample_tag`` / ``sample_reason`` row the first time a tag id / reason text is seen,
- a ``context_interval`` change whenever a machine's context differs from its open
  interval: the open one is closed at the sample's time and a new one opened there.
  A sample older than the open interval's start (a late one) changes nothing: it is
  joined with the interval of its own time when read. Context without an equipment id
  (rows written by tools) gets intervals of its own, scoped ``@<tag id>``.

It runs inside the caller's transaction; the in-memory catalogue (tag numbers,
reason codes, open intervals) is re-read with ``reload`` after a rollback. Both the
threaded store writer (sqlite3) and ``core.store.sample_writer`` (SQLAlchemy's
driver connection) use it, so both produce identical tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from core.store.chunks import to_us

CTX_FIELDS = ("equipment_id", "line_id", "order_id", "lot_id", "recipe_id", "batch_id",
              "shift_id", "operator_id")
Row = tuple[Any, ...]
TAG, TS, VALUE, TEXT, QUALITY, REASON, CTX = range(7)

INSERT_SAMPLE = "INSERT INTO sample (tag, ts, value, quality, reason) VALUES (?, ?, ?, ?, ?)"
INSERT_TEXT = "INSERT INTO sample_text (tag, ts, text, quality, reason) VALUES (?, ?, ?, ?, ?)"
_OPEN = (f"INSERT INTO context_interval (scope, {', '.join(CTX_FIELDS)}, valid_from) "
         f"VALUES ({', '.join('?' for _ in range(len(CTX_FIELDS) + 2))})")
_CLOSE = "UPDATE context_interval SET valid_to = ? WHERE scope = ? AND valid_to IS NULL"


class NarrowWriter:
    """Writes ``Row`` batches on one DB-API connection (qmark or format paramstyle)."""

    def __init__(self, con: Any, paramstyle: str = "qmark") -> None:
        self.con = con
        self._fmt: Callable[[str], str] = (
            (lambda s: s) if paramstyle == "qmark" else (lambda s: s.replace("?", "%s")))
        self.tags: dict[str, int] = {}
        self.scope: dict[str, str | None] = {}
        self.names: dict[int, str] = {}
        self.reasons: dict[str, int] = {}
        self.open: dict[str, tuple[int, tuple[Any, ...]]] = {}  # scope -> (from, ctx)
        self.reload()

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.con.cursor()
        try:
            cur.execute(self._fmt(sql), tuple(params))
            return list(cur.fetchall()) if cur.description else []
        finally:
            cur.close()

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            cur = self.con.cursor()
            try:
                cur.executemany(self._fmt(sql), rows)
            finally:
                cur.close()

    def reload(self) -> None:
        """Catalogue from the tables (at start, and after a rolled-back batch)."""
        self.tags, self.scope, self.names = {}, {}, {}
        for num, tag_id, scope in self._q("SELECT num, tag_id, scope FROM sample_tag"):
            self.tags[tag_id], self.scope[tag_id], self.names[num] = num, scope, tag_id
        self.reasons = {t: c for c, t in self._q("SELECT code, text FROM sample_reason")}
        self.open = {}
        cols = ", ".join(CTX_FIELDS)
        for r in self._q(f"SELECT scope, valid_from, {cols} FROM context_interval "
                         "WHERE valid_to IS NULL ORDER BY id"):
            self.open[r[0]] = (int(r[1]), tuple(r[2:]))

    def tag_num(self, tag_id: str, scope: str | None) -> int:
        num = self.tags.get(tag_id)
        if num is None:
            self._q("INSERT INTO sample_tag (tag_id, scope) VALUES (?, ?) "
                    "ON CONFLICT (tag_id) DO NOTHING", (tag_id, scope))
            got = self._q("SELECT num, scope FROM sample_tag WHERE tag_id = ?", (tag_id,))
            num, scope = int(got[0][0]), got[0][1]
            self.tags[tag_id], self.scope[tag_id], self.names[num] = num, scope, tag_id
        if scope is not None and self.scope.get(tag_id) is None:
            self._q("UPDATE sample_tag SET scope = ? WHERE num = ?", (scope, num))
            self.scope[tag_id] = scope
        return num

    def reason_code(self, text: str) -> int:
        code = self.reasons.get(text)
        if code is None:
            self._q("INSERT INTO sample_reason (text) VALUES (?) ON CONFLICT (text) DO NOTHING",
                    (text,))
            code = int(self._q("SELECT code FROM sample_reason WHERE text = ?", (text,))[0][0])
            self.reasons[text] = code
        return code

    def _context(self, scope: str, ts: int, ctx: tuple[Any, ...]) -> None:
        cur = self.open.get(scope)
        if cur is not None and (cur[1] is ctx or cur[1] == ctx):
            return
        if cur is not None and ts < cur[0]:
            return  # a late sample: the interval of its time is already written
        self._q(_CLOSE, (ts, scope))
        self._q(_OPEN, (scope, *ctx, ts))
        self.open[scope] = (ts, ctx)

    def write(self, rows: Iterable[Row]) -> tuple[int, int]:
        """Insert the batch; returns (number rows, text rows). Raises on a bad row."""
        nums: list[tuple[Any, ...]] = []
        texts: list[tuple[Any, ...]] = []
        tags, opened, reasons = self.tags, self.open, self.reasons
        last_ctx: object = None
        for r in rows:
            tag_id, ts, ctx = r[TAG], r[TS], r[CTX]
            scope = ctx[0] if ctx is not None else None
            if scope is None and ctx is not None and any(ctx):
                scope = f"@{tag_id}"  # context without a machine: the tag's own intervals
            num = tags.get(tag_id)
            if num is None or (scope is not None and self.scope.get(tag_id) is None):
                num = self.tag_num(tag_id, scope)  # a None id fails here, in the database
            if scope is not None and ctx is not last_ctx:
                self._context(scope, ts, ctx)
                last_ctx = ctx if opened[scope][1] == ctx else None
            reason = r[REASON]
            code = None if reason is None else reasons.get(reason) or self.reason_code(reason)
            if r[TEXT] is not None:
                texts.append((num, ts, r[TEXT], r[QUALITY], code))
            else:
                nums.append((num, ts, r[VALUE], r[QUALITY], code))
        self._many(INSERT_TEXT, texts)
        self._many(INSERT_SAMPLE, nums)
        return len(nums), len(texts)

    def write_stamped(self, samples: Sequence[Any]) -> list[tuple[Any, ...]]:
        """``write`` straight from ``ContextSample`` objects, without the Row step.

        The store writer's fast path: one loop converts and stamps, reusing the time
        and context of the previous sample when they are the same objects (a poll block,
        one machine's Context). Returns the ``sample`` tuples inserted (for rollups).
        Raises TypeError/ValueError for a sample it cannot store; the caller then takes
        the row-by-row path, which quarantines just that sample.
        """
        nums: list[tuple[Any, ...]] = []
        texts: list[tuple[Any, ...]] = []
        tags, scopes, opened, reasons = self.tags, self.scope, self.open, self.reasons
        last_ts: object = None
        last_c: object = None
        us = 0
        ctx: tuple[Any, ...] | None = None
        scope: str | None = None
        check = False
        inf = math.inf
        for s in samples:
            ts = s.source_ts
            if ts is not last_ts:
                last_ts, us = ts, to_us(ts)
            c = s.ctx
            if c is not last_c:
                last_c = c
                ctx = (c.equipment_id, c.line_id, c.order_id, c.lot_id, c.recipe_id,
                       c.batch_id, c.shift_id, c.operator_id)
                scope = ctx[0]
                if scope is None and any(ctx):
                    raise ValueError("context without an equipment id")  # the row path
                check = scope is not None
            tag_id = s.tag_id
            num = tags.get(tag_id)
            if num is None or (scope is not None and scopes.get(tag_id) is None):
                if tag_id.__class__ is not str:
                    raise TypeError("tag id is not a string")
                num = self.tag_num(tag_id, scope)
            if check:
                self._context(scope, us, ctx)  # type: ignore[arg-type]
                check = opened[scope][1] != ctx  # type: ignore[index]
            q = int(s.quality)
            reason = s.reason
            v = s.value
            cls = v.__class__
            if cls is float:
                if v != v or v == inf or v == -inf:
                    v, q = None, 2
                    reason = reason or f"non-finite value {s.value}"
            elif v is None:
                pass
            elif cls is str:
                code = None if reason is None else reasons.get(reason) or self.reason_code(reason)
                texts.append((num, us, v, q, code))
                continue
            elif cls is int or cls is bool:
                v = float(v)
            else:
                raise TypeError(f"value of type {cls.__name__} cannot be stored")
            if q == 2:
                v = None
            if reason is None:
                nums.append((num, us, v, q, None))
            else:
                if reason.__class__ is not str:
                    reason = str(reason)
                nums.append((num, us, v, q, reasons.get(reason) or self.reason_code(reason)))
        self._many(INSERT_TEXT, texts)
        self._many(INSERT_SAMPLE, nums)
        return nums
