"""The on-disk store-and-forward buffer: append-only JSON-lines files, fsync'd.

One line per batch (a JSON array of row arrays). ``append`` returns only after the
line is on disk, so a spilled batch is acknowledged as durable. Files are numbered
(``spill-00000001.jsonl``); the writer forwards them oldest first and records how far
it got (file number and byte offset) in the store in the same transaction as the
forwarded rows, so a crash between the insert and the bookkeeping can neither lose
nor duplicate a batch. A torn last line (killed mid-append, never acknowledged) is
cut off on recovery.
"""

from __future__ import annotations

import json
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from core.ingest.rows import Row, from_spilled

PREFIX, SUFFIX = "spill-", ".jsonl"
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(slots=True)
class Entry:
    file_no: int
    offset: int  # byte offset of the line
    end: int  # byte offset after the line
    rows: int
    skip: int = 0  # leading rows already stored (a poison batch bisected mid-way)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class SpillBuffer:
    """Batches waiting on disk for the database, in order."""

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.entries: deque[Entry] = deque()
        self.rows = 0  # rows waiting
        self._tail: IO[bytes] | None = None
        self._tail_no = 0
        self._tail_size = 0
        self._next_no = 1

    def path(self, no: int) -> Path:
        return self.dir / f"{PREFIX}{no:08d}{SUFFIX}"

    def files(self) -> list[int]:
        out = []
        for p in self.dir.glob(f"{PREFIX}*{SUFFIX}"):
            try:
                out.append(int(p.name[len(PREFIX):-len(SUFFIX)]))
            except ValueError:
                continue
        return sorted(out)

    def recover(self, cursor: tuple[int, int] | None) -> int:
        """Index spill files left by an earlier run, after the forwarded ``cursor``."""
        if cursor is not None:  # never reuse a number the cursor has passed
            self._next_no = max(self._next_no, cursor[0] + 1)
        for no in self.files():
            self._next_no = max(self._next_no, no + 1)
            if cursor is not None and no < cursor[0]:
                self.path(no).unlink(missing_ok=True)
                continue
            start = cursor[1] if cursor is not None and no == cursor[0] else 0
            self._index_file(no, start)
        return self.rows

    def _index_file(self, no: int, start: int) -> None:
        p = self.path(no)
        good_end = 0
        with p.open("rb") as f:
            pos = 0
            for line in f:
                end = pos + len(line)
                if not line.endswith(b"\n"):
                    break  # torn append, never acknowledged
                try:
                    n = len(json.loads(line))
                except ValueError:
                    break
                if pos >= start:
                    self.entries.append(Entry(no, pos, end, n))
                    self.rows += n
                good_end = pos = end
        if good_end < p.stat().st_size:
            with p.open("r+b") as f:
                f.truncate(good_end)
                os.fsync(f.fileno())

    def append(self, rows: list[Row]) -> None:
        """Write one batch durably (fsync) behind everything already spilled."""
        if not rows:
            return
        data = (json.dumps(rows, separators=(",", ":")) + "\n").encode()
        if self._tail is None or self._tail_size > MAX_FILE_BYTES:
            self._close_tail()
            self._tail_no = self._next_no
            self._next_no += 1
            self._tail = self.path(self._tail_no).open("ab")
            self._tail_size = self._tail.tell()
            _fsync_dir(self.dir)
        offset = self._tail_size
        self._tail.write(data)
        self._tail.flush()
        os.fsync(self._tail.fileno())
        self._tail_size += len(data)
        self.entries.append(Entry(self._tail_no, offset, offset + len(data), len(rows)))
        self.rows += len(rows)

    def peek(self) -> tuple[Entry, list[Row]] | None:
        """The oldest waiting batch (rows not yet stored)."""
        if not self.entries:
            return None
        e = self.entries[0]
        with self.path(e.file_no).open("rb") as f:
            f.seek(e.offset)
            rows = [from_spilled(r) for r in json.loads(f.read(e.end - e.offset))]
        return e, rows[e.skip:]

    def pop(self) -> None:
        """The oldest batch is stored: forget it and delete files fully forwarded."""
        e = self.entries.popleft()
        self.rows -= e.rows - e.skip
        nxt = self.entries[0].file_no if self.entries else None
        if nxt != e.file_no:
            if e.file_no == self._tail_no:
                self._close_tail()
            self.path(e.file_no).unlink(missing_ok=True)

    def _close_tail(self) -> None:
        if self._tail is not None:
            self._tail.close()
            self._tail = None

    def close(self) -> None:
        self._close_tail()
