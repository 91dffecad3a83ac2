"""SQLModel tables for the loopline domain (ISA-95 flavoured).

All datetimes are UTC: columns use ``UTCDateTime`` so they come back aware.
JSON payloads are stored as text (portable across SQLite and PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from core.store.types import UTCDateTime


def utc(*, nullable: bool = False, index: bool = False, default: Any = ...) -> Any:
    """A UTC datetime column."""
    if default is ...:
        default = None if nullable else ...
    return Field(default=default, sa_type=UTCDateTime, nullable=nullable, index=index)


class Meta(SQLModel, table=True):
    """Store-level key/value facts: schema_version, plant_epoch."""

    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class User(SQLModel, table=True):
    """Lock-out state of a user; identity and PIN hash come from config.toml [[users]]."""

    __tablename__ = "app_user"
    id: str = Field(primary_key=True)
    name: str
    roles: str = ""  # comma-separated
    failed_attempts: int = 0
    locked: bool = False
    locked_at: datetime | None = utc(nullable=True)
    last_login: datetime | None = utc(nullable=True)


class AuditEntry(SQLModel, table=True):
    """Append-only, hash-chained; the database refuses UPDATE/DELETE (see core.audit)."""

    __tablename__ = "audit_entry"
    seq: int | None = Field(default=None, primary_key=True)
    ts: datetime = utc(index=True)
    actor: str
    action: str = Field(index=True)
    entity: str = ""
    entity_id: str = ""
    detail: str = "{}"  # JSON text
    prev_hash: str
    hash: str
