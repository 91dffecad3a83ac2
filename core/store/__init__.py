"""The context store: SQLModel tables, the engine, schema upgrades and the sample writer."""

from __future__ import annotations


class StoreError(Exception):
    """The store cannot be opened or used (locked, unreadable, wrong schema); str() says why."""
