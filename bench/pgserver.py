"""A throwaway PostgreSQL cluster for the tests and the benchmarks.

``initdb`` and ``postgres`` refuse to run as root, so when we are root the cluster is
created and run as an unprivileged user (``postgres`` when Debian's package made it,
else ``nobody``) in a temporary folder that user owns. It listens on 127.0.0.1 at a free
port (password auth, so a wrong password fails as it would on a plant server) and on a
unix socket in the same folder. Durability is off by default (fsync, synchronous_commit)
because a test cluster is thrown away; a benchmark passes ``durable=True``.

The binaries come from $LOOPLINE_PG_BIN (only there when set), else the newest
/usr/lib/postgresql/*/bin (Debian's ``postgresql`` package, installed by ``make
postgres``), else ``pg_ctl`` on PATH.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PG_BIN_ENV = "LOOPLINE_PG_BIN"
SUPERUSER = "postgres"
INSTALL_HINT = ("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: run "
                "`make postgres` (apt-get install postgresql) or set $LOOPLINE_PG_BIN to "
                "their folder")


class PgUnavailable(RuntimeError):
    """The PostgreSQL binaries are missing or the cluster would not start; str() says why."""


def find_bindir() -> Path:
    """The folder holding initdb/pg_ctl/postgres, or PgUnavailable with the fix."""
    env = os.environ.get(PG_BIN_ENV)
    if env:  # asked for: only that folder
        if all((Path(env) / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return Path(env)
        raise PgUnavailable(f"${PG_BIN_ENV}={env} holds no initdb/pg_ctl/postgres; "
                            + INSTALL_HINT)
    candidates: list[Path] = []
    versions = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    versions.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    candidates += [Path(p).parent for p in reversed(versions)]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for d in candidates:
        if all((d / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return d
    raise PgUnavailable(INSTALL_HINT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root, else None (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            continue
        return pw.pw_uid, pw.pw_gid
    raise PgUnavailable("running as root and no unprivileged user (postgres, nobody) "
                        "to run the PostgreSQL test cluster as")


class PgCluster:
    """A running throwaway cluster; ``url(db)`` for SQLAlchemy, ``new_database()`` per test."""

    def __init__(self, *, durable: bool = False, settings: dict[str, str] | None = None):
        self.bindir = find_bindir()
        self.owner = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="loopline-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.password = secrets.token_hex(8)
        self.host = "127.0.0.1"
        self._serial = 0
        self._started = False
        self.settings = {"listen_addresses": self.host, "port": str(self.port),
                         "unix_socket_directories": str(self.root),
                         "max_connections": "200", "shared_buffers": "64MB"}
        if not durable:
            self.settings |= {"fsync": "off", "synchronous_commit": "off",
                              "full_page_writes": "off"}
        self.settings |= settings or {}

    # -- process helpers -------------------------------------------------------------
    def _cmd(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        kw: dict = {}
        if self.owner:
            kw = {"user": self.owner[0], "group": self.owner[1], "extra_groups": []}
        r = subprocess.run(list(args), capture_output=True, text=True, cwd=self.root,
                           timeout=timeout, check=False,
                           env={**os.environ, "LC_ALL": "C.UTF-8", "PGTZ": "UTC"}, **kw)
        if r.returncode != 0:
            raise PgUnavailable(f"{Path(args[0]).name} failed ({r.returncode}): "
                                f"{(r.stderr or r.stdout).strip()[-800:]}")
        return r

    def start(self) -> PgCluster:
        if self.owner:
            os.chown(self.root, *self.owner)
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self.owner:
            os.chown(pwfile, *self.owner)
        self._cmd(str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "--auth-local=trust", "--auth-host=scram-sha-256",
                  f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
                  timeout=120)
        pwfile.unlink()
        with open(self.data / "postgresql.auto.conf", "a") as f:
            for k, v in self.settings.items():
                f.write(f"{k} = '{v}'\n")
        self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60",
                  "-l", str(self.root / "server.log"), "start", timeout=90)
        self._started = True
        return self

    def stop(self) -> None:
        """Stop the server and remove every file of the cluster."""
        try:
            if self._started:
                self._cmd(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m",
                          "immediate", "-w", "stop", timeout=60)
                self._started = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- URLs and databases ----------------------------------------------------------
    def url(self, dbname: str = "postgres", *, user: str = SUPERUSER,
            password: str | None = None) -> str:
        """A SQLAlchemy URL (psycopg 3) over TCP with password auth."""
        pw = self.password if password is None else password
        return f"postgresql+psycopg://{user}:{pw}@{self.host}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string for psycopg.connect (raw benchmarks)."""
        return (f"host={self.host} port={self.port} user={SUPERUSER} "
                f"password={self.password} dbname={dbname}")

    def execute(self, *sql: str, dbname: str = "postgres") -> None:
        """Run statements in autocommit (CREATE DATABASE cannot run in a transaction)."""
        import psycopg

        with psycopg.connect(self.dsn(dbname), autocommit=True) as conn:
            for stmt in sql:
                conn.execute(stmt)  # type: ignore[arg-type]

    def new_database(self, template: str | None = None, name: str | None = None) -> str:
        """Create an empty database (or a copy of ``template``); returns its URL."""
        self._serial += 1
        name = name or f"t{os.getpid()}_{self._serial}"
        tmpl = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{tmpl}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def throwaway_cluster(*, durable: bool = False,
                      settings: dict[str, str] | None = None) -> Iterator[PgCluster]:
    """Start a cluster, yield it, stop it and remove its files (even after an error)."""
    cluster = PgCluster(durable=durable, settings=settings)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
