"""PostgreSQL privileges: the ``loopline_writer`` role may write everything except history.

The audit chain is append-only: a trigger refuses UPDATE, DELETE and TRUNCATE on
``audit_entry`` (``core.store.models.AUDIT_GUARD_PG_SQL``), and the role the line PCs
log in with does not even hold those privileges, so a rewrite needs the owner role
twice over (drop the trigger, then write). The migrations run as the owner and call
``grant_writer`` after every change to the schema: the role is created when the owner
may create roles (else a DBA creates it, docs/operations.md), then granted SELECT,
INSERT, UPDATE, DELETE on every table and the sequences, minus UPDATE, DELETE and
TRUNCATE on ``audit_entry``.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

WRITER_ROLE = "loopline_writer"
APPEND_ONLY = ("audit_entry",)

_CREATE = f"""
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{WRITER_ROLE}')
     AND (SELECT rolcreaterole OR rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    CREATE ROLE {WRITER_ROLE} NOLOGIN;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
END $$"""


def writer_role_exists(conn: Connection) -> bool:
    return conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                        {"r": WRITER_ROLE}).first() is not None


def grant_writer(conn: Connection) -> bool:
    """Create/refresh the writer role's privileges; False when the role is missing."""
    if conn.dialect.name != "postgresql":
        return False
    conn.execute(text(_CREATE))
    if not writer_role_exists(conn):
        return False
    owned = [r[0] for r in conn.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
        "AND tableowner = current_user"))]
    if not owned:
        return True
    q = ", ".join(f'"{t}"' for t in owned)
    conn.execute(text(f"GRANT USAGE ON SCHEMA {_schema(conn)} TO {WRITER_ROLE}"))
    conn.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {q} TO {WRITER_ROLE}"))
    for t in APPEND_ONLY:
        if t in owned:
            conn.execute(text(f'REVOKE UPDATE, DELETE, TRUNCATE ON "{t}" FROM {WRITER_ROLE}'))
    seqs = [r[0] for r in conn.execute(text(
        "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema() "
        "AND sequenceowner = current_user"))]
    if seqs:
        conn.execute(text(f"GRANT USAGE, SELECT ON {', '.join(chr(34) + s + chr(34) for s in seqs)}"
                          f" TO {WRITER_ROLE}"))
    return True


def _schema(conn: Connection) -> str:
    return '"' + str(conn.execute(text("SELECT current_schema()")).scalar_one()) + '"'
