"""Stores as loopline left them before the narrow history (schema version 3).

``make_v3(target, rows)`` builds the version-3 layout from today's tables: the wide
``sample`` table (tag id text, time text, the context ids on every row) with its two
indexes, exactly as version 3 created it, and none of the narrow history tables (nor
production_count and dispatch, which version 3 made on first use). ``target`` is a
SQLite file or a PostgreSQL URL (the same DDL with PostgreSQL's types).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.store.db import open_store
from core.store.raw import connect_raw

WIDE_DDL = (
    """CREATE TABLE sample (
\tid INTEGER NOT NULL, 
\ttag_id VARCHAR NOT NULL, 
\tts DATETIME NOT NULL, 
\tvalue FLOAT, 
\ttext_value VARCHAR, 
\tquality SMALLINT NOT NULL, 
\treason VARCHAR, 
\tequipment_id VARCHAR, 
\tline_id VARCHAR, 
\torder_id VARCHAR, 
\tlot_id VARCHAR, 
\trecipe_id VARCHAR, 
\tbatch_id VARCHAR, 
\tshift_id VARCHAR, 
\toperator_id VARCHAR, 
\tPRIMARY KEY (id)
)""",  # noqa: W291 - SQLAlchemy's DDL text, trailing blanks and all
    "CREATE INDEX ix_sample_tag_ts ON sample (tag_id, ts)",
    "CREATE INDEX ix_sample_ts ON sample (ts)",
)
WIDE_COLUMNS = ("tag_id", "ts", "value", "text_value", "quality", "reason", "equipment_id",
                "line_id", "order_id", "lot_id", "recipe_id", "batch_id", "shift_id",
                "operator_id")
NARROW_TABLES = ("sample", "sample_chunk", "sample_text", "context_interval", "sample_tag",
                 "sample_reason")


def make_v3(target: Path | str, rows: Iterable[tuple[Any, ...]] = ()) -> None:
    """A version-3 store holding ``rows`` (tuples in ``WIDE_COLUMNS`` order, ts as text)."""
    open_store(str(target)).close()
    con = connect_raw(target)
    pg = con.dialect == "postgresql"
    for t in (*NARROW_TABLES, "production_count", "dispatch"):
        con.execute(f"DROP TABLE {t}{' CASCADE' if pg else ''}")
    if not pg:
        con.execute("DELETE FROM sqlite_sequence")
    for stmt in WIDE_DDL:
        if pg:
            stmt = stmt.replace("id INTEGER NOT NULL", "id SERIAL NOT NULL").replace(
                "DATETIME", "TIMESTAMP WITHOUT TIME ZONE")
        con.execute(stmt)
    con.executemany(f"INSERT INTO sample ({', '.join(WIDE_COLUMNS)}) "
                    f"VALUES ({', '.join('?' for _ in WIDE_COLUMNS)})", list(rows))
    con.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    con.close()
