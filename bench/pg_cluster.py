"""A throwaway PostgreSQL cluster for benches (``--pg``) and tests: initdb, start, remove.

Uses the server binaries of the machine (Debian's ``postgresql`` package:
``/usr/lib/postgresql/<major>/bin``, or ``$LOOPLINE_PG_BIN``). The cluster listens on
a Unix socket in its own temporary folder only (no TCP port to collide with) and
trusts local connections; the server keeps its default durability (fsync on), so
figures are those of a real server. As root, initdb and the server run as the
``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

PORT = 5432  # only names the socket file: there is no TCP listener


def bin_dir() -> Path | None:
    env = os.environ.get("LOOPLINE_PG_BIN")
    if env and (Path(env) / "initdb").exists():
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    which = shutil.which("initdb")
    return Path(which).parent if which else None


def _run(cmd: list[str], user: str | None) -> None:
    if user:
        cmd = ["runuser", "-u", user, "--", *cmd]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                   timeout=120)


@contextlib.contextmanager
def cluster() -> Iterator[str]:
    """Yields the admin URL (``postgresql+psycopg://postgres@/postgres?host=<socket dir>``)."""
    bins = bin_dir()
    if bins is None:
        raise RuntimeError("no PostgreSQL server binaries (initdb) found: install the "
                           "Debian postgresql package or set LOOPLINE_PG_BIN")
    root = Path(tempfile.mkdtemp(prefix="loopline-pg-"))
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        shutil.chown(root, user)
    data = root / "data"
    started = False
    try:
        _run([str(bins / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
              "--no-sync"], user)
        opts = f"-p {PORT} -k {root} -c listen_addresses=''"
        _run([str(bins / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(root / "log"),
              "-w", "start"], user)
        started = True
        yield f"postgresql+psycopg://postgres@/postgres?host={root}&port={PORT}"
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run([str(bins / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w",
                      "stop"], user)
        shutil.rmtree(root, ignore_errors=True)


def with_database(admin_url: str, name: str) -> str:
    """The URL of database ``name`` on the same server (created fresh: dropped if there)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
