"""PostgreSQL as the store: the same schema as SQLite, the audit rule enforced by the
server (trigger + a role without UPDATE/DELETE), clear errors without the password."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from bench.pgserver import PgCluster
from core import audit
from core.store import StoreError
from core.store.db import open_store
from core.store.migrations import SCHEMA_VERSION
from core.store.roles import WRITER_ROLE


def _shape(target: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    """table -> (columns, primary key, index names): what both engines must agree on."""
    with open_store(target) as st, st.engine.connect() as c:
        insp = inspect(c)
        return {t: (tuple(col["name"] for col in insp.get_columns(t)),
                    tuple(insp.get_pk_constraint(t)["constrained_columns"]),
                    tuple(sorted(i["name"] for i in insp.get_indexes(t)
                                 if not i.get("duplicates_constraint"))))  # a UNIQUE
                for t in insp.get_table_names()}


def test_migrations_make_the_same_schema_on_both_engines(pg_url: str, tmp_path: Path) -> None:
    lite, pg = _shape(str(tmp_path / "x.db")), _shape(pg_url)
    assert set(lite) == set(pg) and {"production_count", "dispatch"} <= set(pg)
    # sample is day-partitioned on PostgreSQL (core.store.pg_history): same columns, its
    # own keys (no global primary key on a partitioned table; (tag, ts) + BRIN on id)
    assert lite.pop("sample")[0] == pg.pop("sample")[0]
    assert lite == pg
    with open_store(pg_url) as st, st.engine.connect() as c:
        assert c.execute(text("SHOW TimeZone")).scalar_one() == "UTC"


def test_production_count_and_dispatch_come_from_the_migrations(pg_url: str) -> None:
    """An old PostgreSQL store without them (version 4) gets them from step 5."""
    with open_store(pg_url) as st, st.begin() as c:
        c.execute(text("DROP TABLE production_count, dispatch"))
        c.execute(text("UPDATE meta SET value = '4' WHERE key = 'schema_version'"))
    with open_store(pg_url) as st, st.engine.connect() as c:
        assert st.schema_version() == SCHEMA_VERSION
        assert {"production_count", "dispatch"} <= set(inspect(c).get_table_names())


def test_writer_role_cannot_rewrite_the_audit_chain(pg_cluster: PgCluster, pg_url: str) -> None:
    """The line PCs' login (a member of loopline_writer) appends, but may not UPDATE,
    DELETE or TRUNCATE audit_entry even with the trigger gone; the owner hits the trigger."""
    db = pg_url.rsplit("/", 1)[1]
    with open_store(pg_url) as owner:
        audit.append(owner.engine, "sam", "test.event", "thing", "T1", {"i": 1})
    pg_cluster.execute(
        f"DO $$ BEGIN CREATE ROLE line_pc LOGIN PASSWORD 'pc-secret' IN ROLE {WRITER_ROLE}; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    pg_cluster.execute(f'GRANT CONNECT ON DATABASE "{db}" TO line_pc')
    app_url = pg_cluster.url(db, user="line_pc", password="pc-secret")
    with open_store(app_url) as app:  # schema current: opens without DDL rights
        audit.append(app.engine, "olga", "test.event", "thing", "T2", {"i": 2})
        for stmt in ("UPDATE audit_entry SET actor = 'eve' WHERE seq = 1",
                     "DELETE FROM audit_entry WHERE seq = 1", "TRUNCATE audit_entry"):
            with pytest.raises(DBAPIError, match="permission denied"), app.engine.begin() as c:
                c.execute(text(stmt))
        with app.engine.begin() as c:  # other tables: full write access
            c.execute(text("INSERT INTO meta (key, value) VALUES ('pc', 'ok')"))
            c.execute(text("UPDATE meta SET value = 'fine' WHERE key = 'pc'"))
        assert audit.verify(app.engine).ok
    with open_store(pg_url) as owner:
        with pytest.raises(DBAPIError, match="append-only: TRUNCATE refused"), \
                owner.engine.begin() as c:
            c.execute(text("TRUNCATE audit_entry"))
        assert audit.verify(owner.engine).checked == 2


def test_wrong_password_is_a_clear_error_without_the_password(pg_cluster: PgCluster) -> None:
    url = pg_cluster.url("postgres", password="not-the-right-one")
    with pytest.raises(StoreError) as err:
        open_store(url)
    msg = str(err.value)
    assert "refused the login" in msg and "password authentication failed" in msg
    assert "not-the-right-one" not in msg and "***" in msg


def test_unreachable_server_and_wrong_driver_are_clear_errors(pg_cluster: PgCluster) -> None:
    from bench.pgserver import free_port

    url = f"postgresql+psycopg://u:hunter2@127.0.0.1:{free_port()}/x"
    with pytest.raises(StoreError, match="cannot be reached") as err:
        open_store(url)
    assert "hunter2" not in str(err.value)
    with pytest.raises(StoreError, match="psycopg 3") as err:
        open_store("postgresql+psycopg2://u:hunter2@127.0.0.1/x")
    assert "hunter2" not in str(err.value)


def test_plain_postgresql_url_means_psycopg(pg_cluster: PgCluster, pg_url: str) -> None:
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with open_store(plain) as st:
        assert st.engine.dialect.driver == "psycopg" and st.schema_version() == SCHEMA_VERSION
    engine = create_engine(pg_url)
    engine.dispose()
