"""The store held by another process's exclusive lock, and the disk filling up, while
the runtime writes: every sample received must be stored, spilled or counted as refused
with its reason, and every error must be in the summary's count."""

from __future__ import annotations

import contextlib
import errno
import os
import random
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.chaos import Row
from bench.chaos.procs import Headless, integrity, own_tracebacks

RUN_ARGS = ["--speed", "300", "--approve", "auto", "--no-ml", "--stats-every", "1",
            "--faults-per-day", "20"]


def _flowing(run: Headless, timeout: float = 120) -> bool:
    return run.wait_for(lambda e: e.get("kind") == "stats"
                        and (e.get("detail") or {}).get("samples", 0) > 0, timeout) is not None


def _account(row: Row, summary: dict[str, Any] | None, run: Headless, what: str) -> str:
    """Check the writer's balance and the error count; returns the figures."""
    if summary is None:
        row.fail(f"{what}: no summary (stderr: {run.stderr[-300:]})")
        return "no summary"
    d = summary.get("detail", {})
    ing = d.get("ingest", {})
    received, stored = ing.get("received", 0), ing.get("stored", 0)
    kept = stored + ing.get("quarantined", 0) + ing.get("spilled", 0)
    lost = received + ing.get("recovered", 0) - kept
    if lost or not ing.get("balanced", False):
        row.data_lost += max(lost, 0)
        row.fail(f"{what}: received {received}, kept {kept} ({ing})")
    if ing.get("dropped", 0):
        row.fail(f"{what}: {ing['dropped']} samples dropped at the queue")
    tracebacks = own_tracebacks(run.stderr)
    counted = int(d.get("errors_total", len(d.get("errors", []))))
    if tracebacks > counted:
        row.fail(f"{what}: {tracebacks} tracebacks on stderr, {counted} errors in the "
                 "summary")
    return (f"received {received:,}, stored {stored:,}, spilled {ing.get('spilled_total', 0):,}"
            f" (forwarded {ing.get('forwarded', 0):,}), lost {max(lost, 0)}, errors counted "
            f"{counted}")


def locked_store(workdir: Path, seed: int, holds_s: list[float]) -> Row:
    rng = random.Random(seed)
    row = Row("store locked")
    notes = []
    for i, hold in enumerate(holds_s):
        row.trials += 1
        db = workdir / f"locked-{i}.db"
        run = Headless(db, [*RUN_ARGS, "--seed", str(rng.randrange(1000))]).start(f"l{i}")
        try:
            if not _flowing(run):
                row.fail(f"lock {hold:g} s: the runtime never delivered data: "
                         f"{run.stderr[-300:]}")
                continue
            time.sleep(rng.uniform(1, 3))
            con = sqlite3.connect(db, timeout=30, isolation_level=None)
            con.execute("BEGIN EXCLUSIVE")
            time.sleep(hold)
            con.execute("ROLLBACK")
            con.close()
            time.sleep(4)  # the spill forwarded
        finally:
            summary = run.stop()
        notes.append(f"{hold:g} s: " + _account(row, summary, run, f"lock {hold:g} s"))
    row.note = "; ".join(notes)
    return row


def _mount_tmpfs(where: Path, size_mb: int) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs",
                          str(where)], capture_output=True, text=True, check=False)
    return res.returncode == 0


def _umount(where: Path) -> None:
    subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def _fill(where: Path) -> Path:
    """Write a filler file until the file system says it is full."""
    filler = where / "filler.bin"
    chunk = b"\0" * (1 << 20)
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
    with contextlib.suppress(OSError), open(filler, "ab") as f:  # the last bytes
        while True:
            f.write(b"\0" * 4096)
            f.flush()
    return filler


def disk_full(workdir: Path, seed: int, fulls_s: list[float]) -> Row:
    rng = random.Random(seed)
    row = Row("disk full")
    notes = []
    for i, full_s in enumerate(fulls_s):
        mnt = workdir / f"small-fs-{i}"
        if not _mount_tmpfs(mnt, 96):
            row.note = "skipped: cannot mount a tmpfs here (needs root)"
            return row
        row.trials += 1
        try:
            db = mnt / "loopline.db"
            run = Headless(db, [*RUN_ARGS, "--seed", str(rng.randrange(1000))],
                           logs=workdir).start(f"f{i}")
            try:
                if not _flowing(run):
                    row.fail(f"full {full_s:g} s: no data: {run.stderr[-300:]}")
                    continue
                time.sleep(rng.uniform(1, 3))
                filler = _fill(mnt)
                time.sleep(full_s)
                os.unlink(filler)
                time.sleep(4)
            finally:
                summary = run.stop()
            notes.append(f"{full_s:g} s: " + _account(row, summary, run, f"full {full_s:g} s"))
            ok = integrity(db) if db.exists() else "ok"
            if ok != "ok":
                row.fail(f"full {full_s:g} s: integrity_check {ok[:100]}")
        finally:
            _umount(mnt)
    row.note = "; ".join(notes)
    return row
