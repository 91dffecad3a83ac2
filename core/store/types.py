"""Column types shared by the tables.

SQLite has no time zone type: ``UTCDateTime`` stores naive UTC and hands back aware
UTC, so every reader gets comparable datetimes without remembering to convert. On
PostgreSQL the same type maps to ``timestamp`` (naive UTC) for one behaviour everywhere.

On SQLite the text format is SQLAlchemy's own (``YYYY-MM-DD HH:MM:SS.ffffff``), but
produced and parsed by one C-level call per value (``isoformat``/``fromisoformat``)
instead of SQLAlchemy's two-stage processing: timestamps are on the sample hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


def _to_naive_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _sqlite_bind(value: Any) -> str | None:
    v = _to_naive_utc(value)
    return None if v is None else v.isoformat(" ", "microseconds")


def _sqlite_result(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in, aware UTC out; naive input is taken as UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        return _to_naive_utc(value)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        return _sqlite_result(value)

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_bind
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Any, coltype: Any) -> Callable[[Any], Any] | None:
        if dialect.name == "sqlite":
            return _sqlite_result
        return super().result_processor(dialect, coltype)
