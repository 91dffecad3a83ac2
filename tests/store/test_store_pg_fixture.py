"""The test set-up's PostgreSQL: a real server the suite starts, one database per test."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from bench.pgserver import PgCluster
from core.store.db import open_store


def test_pg_url_is_a_fresh_empty_database_on_a_real_server(pg_url: str) -> None:
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SHOW server_version_num")).scalar_one() >= "150000"
            tables = conn.execute(text("SELECT count(*) FROM pg_tables "
                                       "WHERE schemaname = 'public'")).scalar_one()
    finally:
        engine.dispose()
    assert tables == 0


def test_each_test_gets_its_own_database(pg_cluster: PgCluster, pg_url: str) -> None:
    other = pg_cluster.new_database()
    try:
        assert other.rsplit("/", 1)[1] != pg_url.rsplit("/", 1)[1]
    finally:
        pg_cluster.drop_database(other.rsplit("/", 1)[1])


def test_db_url_opens_a_store_on_either_engine(db_url: str) -> None:
    with open_store(db_url) as st:
        assert st.schema_version() is not None
        assert (st.path is None) == db_url.startswith("postgresql")


def test_missing_binaries_fail_with_the_fix(tmp_path, monkeypatch) -> None:
    import pytest

    from bench.pgserver import PG_BIN_ENV, PgUnavailable, find_bindir

    monkeypatch.setenv(PG_BIN_ENV, str(tmp_path))
    with pytest.raises(PgUnavailable, match="make postgres"):
        find_bindir()
