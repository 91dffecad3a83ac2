"""Shared fixtures for the whole suite.

- ``config_path``: the repository's default config.toml (the plant everyone tests against).
- ``loaded_config``: that config loaded and validated (``core.config.LoadedConfig``).
- ``frozen_clock``: a ``FrozenClock`` at ``PLANT_START`` (2026-01-05T06:00:00Z, a Monday,
  start of the early shift); advance it explicitly in a test.
- ``pg_cluster`` (session): a throwaway PostgreSQL cluster (``bench.pgserver.PgCluster``)
  started at the first test that needs it and removed at the end of the run. Missing
  binaries FAIL those tests with the fix (``make postgres``); nothing skips silently.
- ``pg_url``: the URL (``postgresql+psycopg://…``) of a fresh, empty database on it,
  dropped after the test.
- ``db_url`` (parametrized ``sqlite`` / ``postgresql``): where a test's store lives — a
  SQLite file path in ``tmp_path`` (what ``--db`` and ``open_store`` accept) or a fresh
  empty PostgreSQL database's URL. Nothing is created yet: pass it to ``open_store`` or
  to a command's ``--db``.
- ``store`` (parametrized the same way): a fresh store, schema created and master data
  loaded with ``frozen_clock`` (so the plant epoch is ``PLANT_START``). Closed after the
  test. So every test using ``store`` or ``db_url`` runs on both engines; the PostgreSQL
  runs carry the ``postgresql`` mark (``-m "not postgresql"`` for a quick SQLite-only run).
- ``sqlite_store``: the same on SQLite only; a module whose tests are SQLite-only by
  nature overrides ``store`` with it (``def store(sqlite_store): return sqlite_store``).

Each test gets its own store file or database, so tests can run in parallel processes.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.pgserver import PgCluster, PgUnavailable
from core.clock import FrozenClock
from core.config import LoadedConfig, load_config
from core.masterdata import load_master_data
from core.store.db import Store, open_store

REPO = Path(__file__).resolve().parent.parent
ENGINES = ("sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql))
PLANT_START = datetime(2026, 1, 5, 6, 0, 0, tzinfo=UTC)


@pytest.fixture
def config_path() -> Path:
    return REPO / "config.toml"


@pytest.fixture
def loaded_config(config_path: Path) -> LoadedConfig:
    return load_config(config_path)


@pytest.fixture
def frozen_clock() -> FrozenClock:
    return FrozenClock(PLANT_START)


class _PgServer:
    """The session's cluster, plus a migrated template database the ``store`` copies."""

    def __init__(self) -> None:
        self.cluster: PgCluster | None = None
        self.error: str | None = None
        self.template: str | None = None

    def get(self) -> PgCluster:
        if self.error is None and self.cluster is None:
            try:
                self.cluster = PgCluster().start()
            except PgUnavailable as e:
                self.error = str(e)
        if self.error is not None:
            pytest.fail(f"PostgreSQL test cluster unavailable: {self.error}", pytrace=False)
        assert self.cluster is not None
        return self.cluster

    def migrated_template(self) -> str:
        cluster = self.get()
        if self.template is None:
            url = cluster.new_database(name="loopline_template")
            open_store(url).close()  # no connection may stay open on a template
            self.template = "loopline_template"
        return self.template


_PG = _PgServer()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    try:
        yield _PG.get()
    finally:
        if _PG.cluster is not None:
            _PG.cluster.stop()
            _PG.cluster = None


def _fresh_pg(cluster: PgCluster, template: str | None = None) -> Iterator[str]:
    url = cluster.new_database(template=template)
    name = url.rsplit("/", 1)[1]
    try:
        yield url
    finally:
        cluster.drop_database(name)
        for d in ("spill", "history"):  # what `--db URL` gave a runtime (core.config.loader)
            shutil.rmtree(REPO / "data" / f"{name}-{d}", ignore_errors=True)


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> Iterator[str]:
    yield from _fresh_pg(pg_cluster)


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "loopline.db")
        return
    yield from _fresh_pg(request.getfixturevalue("pg_cluster"))


@pytest.fixture
def sqlite_store(tmp_path: Path, loaded_config: LoadedConfig,
                 frozen_clock: FrozenClock) -> Iterator[Store]:
    """The ``store`` on SQLite only, for a module that overrides ``store`` with it."""
    st = open_store(str(tmp_path / "loopline.db"))
    try:
        load_master_data(st, loaded_config, frozen_clock)
        yield st
    finally:
        st.close()


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest, tmp_path: Path, loaded_config: LoadedConfig,
          frozen_clock: FrozenClock) -> Iterator[Store]:
    if request.param == "sqlite":
        st = open_store(str(tmp_path / "loopline.db"))
        dbs: Iterator[str] | None = None
    else:
        cluster = request.getfixturevalue("pg_cluster")
        dbs = _fresh_pg(cluster, _PG.migrated_template())
        st = open_store(next(dbs))
    try:
        load_master_data(st, loaded_config, frozen_clock)
        yield st
    finally:
        st.close()
        if dbs is not None:
            dbs.close()
