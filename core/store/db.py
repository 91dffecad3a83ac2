"""Open the store: the engine from a URL, SQLite tuned for a shop-floor PC, schema upgraded.

SQLite runs in WAL mode so the console reads while the writer thread writes, with a
busy timeout so short lock waits are absorbed instead of failing, foreign keys on,
and ``synchronous=NORMAL`` for the hot path (the audit chain raises it to FULL for
its own writes). PostgreSQL (``postgresql+psycopg://…``, psycopg 3) gets none of the
PRAGMAs: a connect timeout, a pre-ping so a restarted server costs one retry, not an
error, and UTC as the session time zone. Every failure to open or use the store
becomes a ``StoreError`` with a message naming it (a password in a URL masked),
which the CLI prints without a traceback.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, create_engine, event, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlmodel import Session

from core.store import StoreError, migrations
from core.store.models import Meta

DEFAULT_BUSY_TIMEOUT_MS = 5000
BUSY_TIMEOUT_ENV = "LOOPLINE_BUSY_TIMEOUT_MS"  # how long to wait for another writer's lock


def busy_timeout_default() -> int:
    try:
        return max(0, int(os.environ.get(BUSY_TIMEOUT_ENV, DEFAULT_BUSY_TIMEOUT_MS)))
    except ValueError:
        return DEFAULT_BUSY_TIMEOUT_MS


@dataclass
class Store:
    """An open store: the engine plus where it lives."""

    engine: Engine
    url: str  # for display: a password in it is masked
    path: Path | None  # the SQLite file, None for a server database

    @property
    def where(self) -> str:
        return str(self.path) if self.path else self.engine.url.render_as_string()

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @property
    def target(self) -> str | Path:
        """What ``--db``, ``open_store`` and ``core.store.raw.connect_raw`` take: the
        SQLite file, or the full URL (password included: never print it, print ``where``)."""
        if self.path is not None:
            return self.path
        return self.engine.url.render_as_string(hide_password=False)

    # named locks across processes, either engine (core.store.locks)
    def lock(self, name: str, timeout_s: float | None = None) -> Any:
        """``with store.lock(name):`` — wait for the lock (StoreError after timeout_s)."""
        from core.store import locks

        return locks.lock(self, name, timeout_s=timeout_s)

    def try_lock(self, name: str) -> bool:
        """Take ``name`` if free; True when this store now holds it (``unlock`` frees it)."""
        from core.store import locks

        return locks.try_lock(self, name)

    def unlock(self, name: str) -> None:
        from core.store import locks

        locks.unlock(self, name)

    def holds(self, name: str) -> bool:
        """Whether this store still holds ``name`` (False once its connection dropped)."""
        from core.store import locks

        return locks.holds(self, name)

    def session(self) -> Session:
        """An ORM session whose objects stay readable after commit."""
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A Core transaction; lock and I/O errors become StoreError."""
        with guard(self), self.engine.begin() as conn:
            yield conn

    def get_meta(self, key: str) -> str | None:
        with guard(self), self.engine.connect() as conn:
            row = conn.execute(select(Meta.value).where(Meta.key == key)).first()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.session() as s, guard(self):
            s.merge(Meta(key=key, value=value))
            s.commit()

    def schema_version(self) -> int | None:
        v = self.get_meta("schema_version")
        return int(v) if v is not None else None

    def count(self, model: Any) -> int:
        with guard(self), self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())

    def close(self) -> None:
        if self.__dict__.get("_locks"):
            from core.store import locks

            locks.release_all(self)
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def exec_sql(conn: Connection, sql: str, params: Sequence[Any] = ()) -> CursorResult[Any]:
    """Run SQL written with ``?`` placeholders on either engine's driver (psycopg: ``%s``)."""
    if conn.dialect.paramstyle != "qmark":
        from core.store.raw import pg_sql

        sql = pg_sql(sql)  # exec_driver_sql always passes parameters: % is escaped
    return conn.exec_driver_sql(sql, tuple(params))


def mask(target: str) -> str:
    """A store URL with its password replaced by ``***`` (anything else unchanged)."""
    if "://" not in target or "@" not in target:
        return target
    try:
        return make_url(target).render_as_string(hide_password=True)
    except ArgumentError:
        head, _, tail = target.partition("://")
        cred, _, host = tail.rpartition("@")
        return f"{head}://{cred.split(':', 1)[0]}:***@{host}" if ":" in cred else target


def explain(where: str, e: BaseException) -> str:
    """A one-line reason a person can act on, from a driver error."""
    msg = str(getattr(e, "orig", None) or e).strip()
    low = msg.lower()
    if "password authentication failed" in low or "no password supplied" in low \
            or ("role" in low and "does not exist" in low):
        return (f"the store {where} refused the login ({_first_line(msg)}); check the user "
                "in the URL and the password ([store] password_env, $PGPASSWORD or ~/.pgpass)")
    if "connection refused" in low or "could not translate host" in low \
            or "timeout expired" in low or ("connection to server" in low and "failed" in low):
        return (f"the store {where} cannot be reached ({_first_line(msg)}); check the host "
                "and port in the URL and that the PostgreSQL server is running")
    if "database" in low and "does not exist" in low:
        return f"the store {where}: {_first_line(msg)} (create it: docs/operations.md)"
    if "ssl" in low or "certificate" in low:
        return f"the store {where}: TLS failed ({_first_line(msg)}); check sslmode and "\
               "sslrootcert in the URL"
    if "locked" in low or "busy" in low:
        return (f"the store {where} is locked by another process (another loopline "
                "running, or a tool holding a write lock); close it or wait and retry")
    if "not a database" in low or "malformed" in low or "file is encrypted" in low:
        return f"the store {where} is not a readable loopline database ({msg})"
    if "unable to open" in low or "readonly" in low or "read-only" in low:
        return f"the store {where} cannot be opened for writing ({msg}); check the path and "\
               "its permissions"
    if "disk" in low and ("full" in low or "i/o" in low):
        return f"the store {where} could not be written: {msg}"
    return f"store {where}: {msg}"


def _first_line(msg: str) -> str:
    """The driver's reason without its context lines, password never included."""
    lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
    return lines[-1] if lines and "FATAL" in lines[-1] else (lines[0] if lines else msg)


@contextmanager
def guard(store_or_where: Store | str) -> Iterator[None]:
    """Turn driver errors into StoreError with a message naming the store."""
    where = store_or_where.where if isinstance(store_or_where, Store) else store_or_where
    try:
        yield
    except StoreError:
        raise
    except (DBAPIError, sqlite3.Error) as e:
        raise StoreError(explain(where, e)) from e


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()

    return on_connect


def to_url(target: str) -> str:
    """A file path or a URL to a URL (``data/x.db`` → ``sqlite:///data/x.db``)."""
    return target if "://" in target else f"sqlite:///{Path(target).expanduser()}"


def open_store(target: str, *, busy_timeout_ms: int | None = None,
               upgrade: bool = True, create: bool = True) -> Store:
    """Open (creating if needed) and upgrade the store at a URL or SQLite file path.

    ``busy_timeout_ms`` defaults to $LOOPLINE_BUSY_TIMEOUT_MS or 5 s. ``create=False``
    (read-only commands): a SQLite file that does not exist is an error, and neither it
    nor its folder is created.
    """
    if busy_timeout_ms is None:
        busy_timeout_ms = busy_timeout_default()
    if "\x00" in target:
        raise StoreError(f"store {target!r}: not a usable file name (a NUL character)")
    url_text = to_url(target)
    try:
        url = make_url(url_text)
    except ArgumentError as e:
        raise StoreError(f"store URL {mask(target)!r} is not valid: {e}") from None
    path: Path | None = None
    kwargs: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        db = url.database
        if db and db != ":memory:" and not db.startswith("file:"):
            path = Path(db).expanduser().resolve()
            if path.is_dir():
                raise StoreError(f"the store {path} is a folder, not a database file")
            if not create and not path.exists():
                raise StoreError(f"no store at {path} (nothing to read: check --db or "
                                 "[store] path; the runtime creates it at its first start)")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StoreError(f"cannot create the folder for the store {path}: "
                                 f"{e.strerror}") from None
            url = url.set(database=str(path))
        kwargs["connect_args"] = {"timeout": busy_timeout_ms / 1000}
    elif url.get_backend_name() == "postgresql":
        if url.get_driver_name() in ("psycopg2", "pg8000", "asyncpg"):
            raise StoreError(f"store URL {mask(target)!r}: loopline talks to PostgreSQL "
                             "through psycopg 3: write postgresql+psycopg://…")
        url = url.set(drivername="postgresql+psycopg")  # postgresql:// means psycopg 3 too
        kwargs["pool_pre_ping"] = True
        # every session in UTC (times are stored naive UTC: core.store.types); the URL's
        # own ``options`` (e.g. ``-csearch_path=plant1``) are kept in front (connect_args
        # would replace them; the URL keeps them for raw connections, core.store.raw)
        opts = " ".join(filter(None, (str(url.query.get("options") or ""), "-c TimeZone=UTC")))
        kwargs["connect_args"] = {"connect_timeout": 10, "options": opts}
    try:
        engine = create_engine(url, **kwargs)
    except (NoSuchModuleError, ArgumentError, ImportError) as e:
        raise StoreError(f"store URL {mask(target)!r} cannot be used: {e}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout_ms))

    store = Store(engine=engine, url=url.render_as_string(), path=path)  # password hidden
    try:
        with guard(store):
            with engine.connect() as conn:  # fail early on an unreadable file
                conn.exec_driver_sql("SELECT count(*) FROM sqlite_master"
                                     if engine.dialect.name == "sqlite" else "SELECT 1")
            if upgrade:
                migrations.upgrade(engine)
    except StoreError:
        engine.dispose()
        raise
    except SQLAlchemyError as e:
        engine.dispose()
        raise StoreError(explain(store.where, e)) from e
    return store
