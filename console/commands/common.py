"""What every command shares: the user-error type ``main`` turns into a clean message,
and the store opener. Commands import this module, never ``console.cli`` (which imports
them)."""

from __future__ import annotations

import argparse

from core.clock import WallClock
from core.config import LoadedConfig, load_config
from core.masterdata import ensure_master_data
from core.store import StoreError
from core.store.db import Store, open_store


class UserError(Exception):
    """An error caused by input the user can fix; str() is the whole message."""


def open_db(url: str, *, create: bool = True) -> Store:
    """The store at ``url``; a store problem is a ``UserError`` (no traceback)."""
    try:
        return open_store(url, create=create)
    except StoreError as e:
        raise UserError(str(e)) from None


def open_cli_store(args: argparse.Namespace, *, read_only: bool = False,
                   create: bool | None = None) -> tuple[LoadedConfig, Store]:
    """Config + store for a command, master data loaded into a new store.

    Store problems become ``UserError`` (a clean message, no traceback). A read-only
    command (``read_only=True``), or one that only makes sense on an existing plant
    (``create=False``: approve, reject, unlock), never creates a store or its folder: a
    mistyped ``--db`` is an error, not a new empty plant.
    """
    loaded = load_config(getattr(args, "config", None), db=getattr(args, "db", None))
    store = open_db(loaded.db_url, create=not read_only if create is None else create)
    try:
        ensure_master_data(store, loaded, WallClock())
    except StoreError as e:
        store.close()
        raise UserError(str(e)) from None
    except BaseException:
        store.close()
        raise
    return loaded, store


def audit_head(store: Store) -> dict | None:
    """The audit chain's head, published with every export and report: an anchor kept
    outside the store (``loopline audit verify --anchor HASH:COUNT``)."""
    from core import audit

    h = audit.head(store.engine)
    return None if h is None else {"seq": h.seq, "hash": h.hash}
