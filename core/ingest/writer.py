"""The store writer: contextualized samples to the store from its own thread, nothing lost.

``submit`` (any thread, never blocks) puts a batch on a bounded queue (``queue_max``
rows) and counts what does not fit as dropped. The writer thread, on its own
connection (sqlite3, or psycopg for a PostgreSQL store: ``core.store.raw``), flushes
every ``flush_ms`` or ``batch_rows`` rows with one executemany per transaction.

Store-and-forward: when the database is locked (``database is locked``/``busy`` after
a short busy timeout), a disk I/O error occurs, or a flush took longer than
``slow_flush_ms``, batches go to the ``SpillBuffer`` (fsync'd JSON lines in
``spill_dir``) and are forwarded oldest first once the database takes writes again.
While anything is spilled, new batches go behind it, so order holds across spill and
live data. Forwarded batches move the spill cursor (in ``meta``) in the same
transaction, so on start a writer forwards exactly what an earlier (crashed) run left.

Poison: a batch the database rejects for a non-transient reason (constraint, type)
is bisected; good rows land, each bad row goes to ``quarantine.jsonl`` with the reason.
Nothing is retried forever.

Rollups: stored rows are folded into 1-minute partials (``rollups``) merged every
``rollup_every_s``, with the highest sample id they cover (``meta``) in the same
transaction; on start, rows above that mark (stored by a killed writer whose
partials were lost) are folded in again, so rollups stay exact across a crash.

Counters: ``received = stored + quarantined + queued + in_flight + spilled`` at
every instant (``WriterStats.balanced``); ``dropped`` counts what never entered.
A row is *acknowledged* (survives a kill) once it is stored or spilled.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.ingest.compaction import compact
from core.ingest.rollups import RollupAccumulator, merge_sql
from core.ingest.rows import Row, ctx_tuple, row_dict, to_row
from core.ingest.spill import SpillBuffer
from core.samples import ContextSample
from core.store.chunks import to_us
from core.store.narrow import NarrowWriter
from core.store.pg_copy import narrow_writer
from core.store.raw import DB_ERRORS, RawConnection, connect_raw, is_transient

log = logging.getLogger(__name__)

CURSOR_KEY = "ingest.spill_cursor"
ROLLUP_KEY = "ingest.rollup_through"  # highest sample id folded into sample_rollup
_META_UPSERT = ("INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value")
__all__ = ["StoreWriter", "WriterStats", "is_transient"]


@dataclass
class WriterStats:
    received: int = 0  # rows accepted by submit
    dropped: int = 0  # rows refused by submit (queue full or writer closed)
    stored: int = 0  # rows committed to the sample table
    quarantined: int = 0
    queued: int = 0  # rows waiting in memory
    in_flight: int = 0  # rows taken by the thread, not yet stored or spilled
    spilled: int = 0  # rows waiting on disk now
    spilled_total: int = 0  # rows ever written to the spill buffer
    forwarded: int = 0  # rows stored from the spill buffer
    recovered: int = 0  # rows found in spill files at start
    flushes: int = 0
    lock_events: int = 0  # transient failures that sent batches to the spill buffer
    slow_flushes: int = 0
    last_flush_ms: float = 0.0
    max_flush_ms: float = 0.0
    rollup_rows: int = 0
    compacted: int = 0  # recent rows moved into per-tag chunks
    state: str = "starting"  # starting | live | spilling | closed | failed
    error: str | None = None

    @property
    def balanced(self) -> bool:
        return self.received + self.recovered == (self.stored + self.quarantined + self.queued
                                                  + self.in_flight + self.spilled)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class StoreWriter:
    """Thread-owned writer of ``ContextSample`` batches into the store's sample table."""

    def __init__(self, db_path: str | Path, spill_dir: str | Path, *,
                 quarantine_path: str | Path | None = None, queue_max: int = 200_000,
                 flush_ms: int = 200, batch_rows: int = 5000, lock_timeout_ms: int = 250,
                 slow_flush_ms: float = 2000.0, retry_ms: float = 500.0,
                 rollups: bool = True, rollup_every_s: float = 5.0,
                 compact_rows: int = 100_000,
                 on_stored: Callable[[Sequence[Row]], None] | None = None) -> None:
        # a SQLite file path, or a store URL (sqlite:///… or postgresql+psycopg://…)
        self.db_path = db_path if isinstance(db_path, str) and "://" in db_path \
            else Path(db_path)
        self.spill = SpillBuffer(Path(spill_dir))
        self.quarantine_path = Path(quarantine_path) if quarantine_path else \
            Path(spill_dir) / "quarantine.jsonl"
        self.queue_max = queue_max
        self.flush_s = flush_ms / 1000
        self.batch_rows = batch_rows
        self.lock_timeout_s = lock_timeout_ms / 1000
        self.slow_flush_s = slow_flush_ms / 1000
        self.retry_s = retry_ms / 1000
        self.rollup_every_s = rollup_every_s
        self.rollups = RollupAccumulator() if rollups else None
        self.on_stored = on_stored
        self.compact_rows = compact_rows  # recent rows that trigger a compaction (0: never)
        self._narrow: NarrowWriter | None = None
        self._uncompacted = 0
        self._committed_roll_id = 0  # rollup mark as committed (compaction stays below it)
        self._compact_req = False
        self._compactions = 0
        # the writer's own copy of the recent rows (ids from _buf_first on, no gaps), so
        # compaction need not read them back; None when the table holds rows it has not
        self._buf: list[tuple[Any, ...]] | None = None
        self._buf_first = 0
        self.stats = WriterStats()
        self._q: deque[list[ContextSample]] = deque()
        self._cond = threading.Condition()
        self._progress = threading.Condition()
        self._closing = False
        self._retry_at = 0.0
        self._thread: threading.Thread | None = None
        self._con: RawConnection | None = None
        self._started = threading.Event()
        self._pending_id = 0  # last row id of the latest insert
        self._rolled_id = 0  # highest row id handed to the rollup accumulator

    @classmethod
    def from_config(cls, loaded: Any, **kw: Any) -> StoreWriter:
        """A writer on the configured store, spill dir and [store] limits."""
        st = loaded.config.store
        return cls(loaded.db_path or loaded.db_url, loaded.spill_dir, queue_max=st.queue_max,
                   flush_ms=st.flush_ms, batch_rows=st.batch_rows, **kw)

    # ------------------------------------------------------------ producer side

    def start(self) -> StoreWriter:
        """Start the thread; spill files from an earlier run are forwarded first."""
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()
        self._started.wait()
        if self.stats.state == "failed":
            raise RuntimeError(f"store writer could not start: {self.stats.error}")
        return self

    def submit(self, samples: Sequence[ContextSample]) -> int:
        """Queue a batch without blocking; returns the rows accepted (the rest are dropped)."""
        n = len(samples)
        if not n:
            return 0
        with self._cond:
            st = self.stats
            room = self.queue_max - st.queued if not self._closing else 0
            if room < n:
                take = max(room, 0)
                st.dropped += n - take
                samples = list(samples[:take])
                n = take
                if not n:
                    return 0
            self._q.append(list(samples))
            st.queued += n
            st.received += n
            if st.queued >= self.batch_rows:
                self._cond.notify()
        return n

    def wait_until(self, predicate: Callable[[WriterStats], bool],
                   timeout: float = 30.0) -> bool:
        """Block until predicate(stats) holds (checked after every flush), or timeout."""
        deadline = time.monotonic() + timeout
        with self._progress:
            while not predicate(self.stats):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._progress.wait(min(left, 0.5))
        return True

    def compact_now(self, timeout: float = 60.0) -> bool:
        """Ask the thread to roll up and compact everything stored; wait until it has."""
        if self._thread is None or not self._thread.is_alive():
            return False
        with self._cond:
            target = self._compactions + 1
            self._compact_req = True
            self._cond.notify()
        deadline = time.monotonic() + timeout
        with self._progress:
            while self._compactions < target:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._progress.wait(min(left, 0.5))
        return True

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything received is stored or quarantined."""
        with self._cond:
            self._cond.notify()
        return self.wait_until(lambda s: s.queued == 0 and s.in_flight == 0 and s.spilled == 0,
                               timeout)

    def close(self, timeout: float = 60.0) -> WriterStats:
        """Stop accepting, store everything queued and spilled, flush rollups, stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("store writer did not drain within %.0f s; %d rows stay spilled",
                          timeout, self.stats.spilled)
        return self.stats

    def __enter__(self) -> StoreWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ writer thread

    def _connect(self) -> RawConnection:
        return connect_raw(self.db_path, timeout_s=self.lock_timeout_s)

    def _read_cursor(self) -> tuple[int, int] | None:
        assert self._con is not None
        row = self._con.execute("SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)).fetchone()
        if not row:
            return None
        no, off = row[0].split(":")
        return int(no), int(off)

    def _recover_rollups(self) -> None:
        """Fold rows stored after the last rollup merge (a killed writer's) into rollups."""
        con = self._con
        if self.rollups is None or con is None:
            return
        row = con.execute("SELECT value FROM meta WHERE key = ?", (ROLLUP_KEY,)).fetchone()
        top = con.execute("SELECT max(id) FROM sample").fetchone()[0] or 0
        through = int(row[0]) if row else top  # first run: earlier rows are not ours
        assert self._narrow is not None
        names = self._narrow.names
        self._uncompacted = con.execute("SELECT count(*) FROM sample").fetchone()[0]
        self._buf = [] if self._uncompacted == 0 else None
        while through < top:
            chunk = con.execute("SELECT id, tag, ts, value, quality FROM sample WHERE id > ? "
                                "ORDER BY id LIMIT 50000", (through,)).fetchall()
            if not chunk:
                break
            self.rollups.add((names.get(r[1]), r[2], r[3], None, r[4]) for r in chunk)
            through = chunk[-1][0]
        self._rolled_id = through
        self._flush_rollups(force=True)

    def _run(self) -> None:
        try:
            self._con = self._connect()
            self._con.execute("SELECT 1 FROM sample LIMIT 1")
            cursor = None
            while True:
                try:
                    self._narrow = narrow_writer(self._con, self._con.paramstyle)
                    cursor = self._read_cursor()
                    break
                except DB_ERRORS as e:
                    if not is_transient(e):
                        raise
                    time.sleep(self.retry_s)
            self._recover_rollups()
            if self._con.dialect == "postgresql":  # day partitions: no compaction (pg_history)
                self.compact_rows, self._buf = 0, None
            self._committed_roll_id = self._rolled_id
            n = self.spill.recover(cursor)
            with self._cond:
                self.stats.recovered = n
                self.stats.spilled = n
        except Exception as e:
            self.stats.state, self.stats.error = "failed", str(e)
            self._started.set()
            return
        self.stats.state = "spilling" if self.spill.rows else "live"
        self._started.set()
        last_flush = last_rollup = time.monotonic()
        try:
            while True:
                batch = self._take(last_flush)
                if batch is None:
                    break
                last_flush = time.monotonic()
                try:
                    if batch:
                        self._handle(batch)
                    self._forward_some()
                except Exception as e:  # keep the thread alive; the stats show the error
                    log.exception("store writer step failed")
                    self.stats.error = f"{type(e).__name__}: {e}"
                    time.sleep(self.retry_s)
                if self.rollups is not None and \
                        time.monotonic() - last_rollup >= self.rollup_every_s:
                    self._flush_rollups()
                    last_rollup = time.monotonic()
                if self._compact_req or (self.compact_rows
                                         and self._uncompacted >= self.compact_rows):
                    if self.rollups is not None:
                        self._flush_rollups()
                        last_rollup = time.monotonic()
                    self._compact()
                self._notify()
            self._final_drain()
        finally:
            self._flush_rollups()
            self.spill.close()
            if self._con is not None:
                self._con.close()
            self.stats.state = "closed"
            self._notify()

    def _notify(self) -> None:
        with self._progress:
            self._progress.notify_all()

    def _take(self, last_flush: float) -> list[ContextSample] | None:
        """Up to batch_rows queued samples once due; None when closing and all is drained."""
        with self._cond:
            st = self.stats
            while True:
                if self._closing and not self._q:
                    return None
                now = time.monotonic()
                if self._q and (st.queued >= self.batch_rows or self._closing
                                or now >= last_flush + self.flush_s):
                    break
                if not self._q and self.spill.rows and now >= self._retry_at:
                    return []  # nothing new: use the time to forward
                if not self._q and self._compact_req:
                    return []
                if self._q:
                    wait = last_flush + self.flush_s - now
                elif self.spill.rows:
                    wait = self._retry_at - now
                else:
                    wait = self.flush_s
                self._cond.wait(max(wait, 0.005))
            out: list[ContextSample] = []
            while self._q and len(out) < self.batch_rows:
                chunk = self._q[0]
                room = self.batch_rows - len(out)
                if len(chunk) <= room:
                    out.extend(self._q.popleft())
                else:
                    out.extend(chunk[:room])
                    self._q[0] = chunk[room:]
            st.queued -= len(out)
            st.in_flight += len(out)
            return out

    def _convert(self, samples: Iterable[ContextSample]) -> list[Row]:
        rows: list[Row] = []
        last_ts: object = None
        last_us = 0
        last_ctx: object = None
        ctx_t: tuple[Any, ...] | None = None
        for s in samples:
            try:
                ts = s.source_ts
                if ts is not last_ts:
                    last_ts, last_us = ts, to_us(ts)
                c = s.ctx
                if c is not last_ctx:
                    last_ctx, ctx_t = c, ctx_tuple(c)
                rows.append(to_row(s, last_us, ctx_t))
            except (TypeError, ValueError, AttributeError) as e:
                self._quarantine_raw(s, f"cannot convert: {e}")
        return rows

    def _handle(self, samples: list[ContextSample]) -> None:
        if self.spill.rows or time.monotonic() < self._retry_at:
            self._to_spill(self._convert(samples))
            return
        if self.on_stored is None and self._fast(samples):
            return
        rows = self._convert(samples)
        done = self._insert_bisect(rows, None)
        if done < len(rows):
            self._to_spill(rows[done:])

    def _fast(self, samples: list[ContextSample]) -> bool:
        """One transaction straight from the samples; False: take the row-by-row path.

        A transient error spills the batch (True); a sample that cannot be stored or a
        row the database refuses sends the batch to ``_insert_bisect``, which finds it.
        """
        con, narrow = self._con, self._narrow
        assert con is not None and narrow is not None
        t0 = time.monotonic()
        try:
            con.execute("BEGIN IMMEDIATE")
            nums = narrow.write_stamped(samples)
            if nums:
                self._pending_id = con.execute("SELECT last_insert_rowid()").fetchone()[0]
            con.execute("COMMIT")
        except (*DB_ERRORS, TypeError, ValueError, AttributeError) as e:
            if con.in_transaction:
                with contextlib.suppress(*DB_ERRORS):
                    con.execute("ROLLBACK")
            with contextlib.suppress(*DB_ERRORS):
                narrow.reload()
            if isinstance(e, DB_ERRORS) and is_transient(e):
                self.stats.lock_events += 1
                self._retry_at = time.monotonic() + self.retry_s
                self._to_spill(self._convert(samples))
                return True
            return False
        dt = time.monotonic() - t0
        st = self.stats
        st.last_flush_ms = dt * 1000
        st.max_flush_ms = max(st.max_flush_ms, st.last_flush_ms)
        st.flushes += 1
        if dt > self.slow_flush_s:
            st.slow_flushes += 1
            self._retry_at = time.monotonic() + self.retry_s
        self._uncompacted += len(nums)
        self._keep(nums)
        with self._cond:
            st.stored += len(samples)
            st.in_flight -= len(samples)
        if self.rollups is not None:
            self.rollups.add_narrow(nums, narrow.names)
            self._rolled_id = max(self._rolled_id, self._pending_id)
        return True

    def _keep(self, nums: list[tuple[Any, ...]]) -> None:
        """Remember the rows just committed (ids up to ``_pending_id``) for compaction."""
        buf = self._buf
        if buf is None or not nums:
            return
        first = self._pending_id - len(nums) + 1
        if not buf:
            self._buf_first = first
        elif first != self._buf_first + len(buf):
            self._buf = None  # someone else wrote between our batches
            return
        buf.extend(nums)

    def _to_spill(self, rows: list[Row]) -> None:
        while rows:
            try:
                self.spill.append(rows)
            except OSError as e:
                # the disk refuses too: hold the rows and retry; straight to the database
                # only when nothing is spilled ahead of them (order first)
                log.error("spill buffer write failed (%s); retrying", e)
                self.stats.error = f"spill: {e}"
                time.sleep(self.retry_s)
                if not self.spill.rows:
                    self._retry_at = 0.0
                    rows = rows[self._insert_bisect(rows, None):]
                continue
            with self._cond:
                self.stats.in_flight -= len(rows)
                self.stats.spilled += len(rows)
                self.stats.spilled_total += len(rows)
            self.stats.state = "spilling"
            return

    def _forward_some(self) -> None:
        """Forward spilled batches while the database takes them and the queue allows."""
        while self.spill.rows and time.monotonic() >= self._retry_at:
            got = self.spill.peek()
            if got is None:
                break
            entry, rows = got
            cursor = f"{entry.file_no}:{entry.end}"
            done = self._insert_bisect(rows, cursor, from_spill=True)
            if done < len(rows):
                entry.skip += done  # partly stored before a transient error
                break
            self.spill.pop()
            if self.stats.queued >= self.batch_rows:
                break  # let live data join the spill instead of waiting behind forwarding
        if not self.spill.rows:
            self.stats.state = "live"

    def _final_drain(self) -> None:
        deadline = time.monotonic() + 30.0
        while self.spill.rows and time.monotonic() < deadline:
            self._retry_at = min(self._retry_at, time.monotonic())
            self._forward_some()
            self._notify()
            if self.spill.rows:
                time.sleep(self.retry_s)

    def _try_insert(self, rows: Sequence[Row], cursor: str | None) -> BaseException | None:
        con, narrow = self._con, self._narrow
        assert con is not None and narrow is not None
        try:
            con.execute("BEGIN IMMEDIATE")
            nums, _ = narrow.write(rows)
            if nums:  # text rows go first, so this is the sample table's id
                self._pending_id = con.execute("SELECT last_insert_rowid()").fetchone()[0]
            if cursor is not None:
                con.execute(_META_UPSERT, (CURSOR_KEY, cursor))
            con.execute("COMMIT")
            self._uncompacted += nums
            if nums:
                self._buf = None  # rows not kept in memory: compaction reads them back
            return None
        except DB_ERRORS as e:
            if con.in_transaction:
                with contextlib.suppress(*DB_ERRORS):
                    con.execute("ROLLBACK")
            with contextlib.suppress(*DB_ERRORS):
                narrow.reload()  # tag numbers or intervals of the rolled-back batch
            return e

    def _insert_bisect(self, rows: list[Row], cursor: str | None,
                       from_spill: bool = False) -> int:
        """Store rows, bisecting around poison; returns how many leading rows are handled.

        Stops early (returning fewer than len(rows)) on a transient error, after which
        the caller spills or keeps the rest; the database is then left alone for retry_ms.
        """
        if not rows:
            if cursor is not None:
                self._try_insert([], cursor)
            return 0
        t0 = time.monotonic()
        err = self._try_insert(rows, cursor)
        dt = time.monotonic() - t0
        st = self.stats
        st.last_flush_ms = dt * 1000
        st.max_flush_ms = max(st.max_flush_ms, st.last_flush_ms)
        if err is None:
            st.flushes += 1
            self._stored(rows, from_spill)
            if dt > self.slow_flush_s:
                st.slow_flushes += 1
                self._retry_at = time.monotonic() + self.retry_s
            return len(rows)
        if is_transient(err):
            st.lock_events += 1
            self._retry_at = time.monotonic() + self.retry_s
            return 0
        if len(rows) == 1:
            self._quarantine(rows[0], f"{type(err).__name__}: {err}", from_spill)
            if cursor is not None:
                self._try_insert([], cursor)
            return 1
        mid = len(rows) // 2
        left = self._insert_bisect(rows[:mid], None, from_spill)
        if left < mid:
            return left
        return mid + self._insert_bisect(rows[mid:], cursor, from_spill)

    def _stored(self, rows: Sequence[Row], from_spill: bool) -> None:
        n = len(rows)
        with self._cond:
            self.stats.stored += n
            if from_spill:
                self.stats.spilled -= n
                self.stats.forwarded += n
            else:
                self.stats.in_flight -= n
        if self.rollups is not None:
            self.rollups.add(rows)
            self._rolled_id = max(self._rolled_id, self._pending_id)
        if self.on_stored is not None:
            try:
                self.on_stored(rows)
            except Exception:  # a listener must not stop the writer
                log.exception("on_stored listener failed")

    def _write_quarantine(self, record: dict[str, Any]) -> None:
        self.quarantine_path.parent.mkdir(parents=True, exist_ok=True)
        with self.quarantine_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()

    def _quarantine(self, row: Row, reason: str, from_spill: bool) -> None:
        self._write_quarantine({"at": datetime.now(UTC).isoformat(), "reason": reason,
                                "row": row_dict(row)})
        with self._cond:
            self.stats.quarantined += 1
            if from_spill:
                self.stats.spilled -= 1
            else:
                self.stats.in_flight -= 1

    def _quarantine_raw(self, s: Any, reason: str) -> None:
        self._write_quarantine({"at": datetime.now(UTC).isoformat(), "reason": reason,
                                "row": repr(s)})
        with self._cond:
            self.stats.quarantined += 1
            self.stats.in_flight -= 1

    def _flush_rollups(self, force: bool = False) -> None:
        if self.rollups is None or self._con is None:
            return
        if not len(self.rollups) and not force:
            return
        if time.monotonic() < self._retry_at:
            return
        params = self.rollups.take()
        con = self._con
        try:
            con.execute("BEGIN IMMEDIATE")
            con.executemany(merge_sql(con.dialect), params)
            # the rows these partials cover, committed with them (crash recovery)
            con.execute(_META_UPSERT, (ROLLUP_KEY, str(self._rolled_id)))
            con.execute("COMMIT")
            self._committed_roll_id = self._rolled_id
            self.stats.rollup_rows += len(params)
        except DB_ERRORS as e:
            if con.in_transaction:
                with contextlib.suppress(*DB_ERRORS):
                    con.execute("ROLLBACK")
            # keep the partials for the next attempt (merging is order-independent)
            self.rollups.add_partials(params)
            if is_transient(e):
                self._retry_at = time.monotonic() + self.retry_s
            else:
                log.error("rollup merge failed: %s", e)

    def _compact(self) -> None:
        """Move recent rows into per-tag chunks (rows already rolled up, when rollups run)."""
        con = self._con
        if con is None:
            return
        mark = self._committed_roll_id if self.rollups is not None else None
        try:
            if con.dialect == "postgresql":
                return  # rows stay in their day partition until it is archived whole
            if time.monotonic() >= self._retry_at:
                buf = self._buf
                moved, left = compact(con, mark, (self._buf_first, buf) if buf else None)
                self.stats.compacted += moved
                self._uncompacted = left
                if buf is not None and len(buf) - moved == left:
                    del buf[:moved]
                    self._buf_first += moved
                else:
                    self._buf = [] if left == 0 else None
        except DB_ERRORS as e:
            if is_transient(e):
                self._retry_at = time.monotonic() + self.retry_s
            else:
                log.error("compaction failed: %s", e)
        finally:  # a request is answered once, done or not (the next one retries)
            self._compact_req = False
            self._compactions += 1
