"""`loopline user pin|unlock|list`: PIN hashes for config.toml, lock-out handling."""

from __future__ import annotations

import argparse
import getpass
import sys

from console.commands.common import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("user", help="PIN hashes, lock-outs, who may decide what")
    usub = p.add_subparsers(dest="user_cmd", metavar="ACTION", required=True)
    h = usub.add_parser("pin", help="print a scrypt hash of a PIN for config.toml [[users]]")
    h.add_argument("--pin", help="the PIN (default: asked without echo)")
    h.set_defaults(func=pin)
    u = usub.add_parser("unlock", help="unlock a user after too many wrong PINs (admin)")
    u.add_argument("user_id")
    u.add_argument("--admin", required=True, help="admin user id")
    u.add_argument("--pin", help="the admin's PIN (default: asked without echo)")
    u.set_defaults(func=unlock)
    ls = usub.add_parser("list", help="users, roles, lock-out state")
    ls.set_defaults(func=list_users)


def _ask(prompt: str, given: str | None) -> str:
    if given is not None:
        return given
    if not sys.stdin.isatty():

        raise UserError("no PIN given: pass --pin or run on a terminal")
    return getpass.getpass(prompt)


def pin(args: argparse.Namespace) -> int:
    from core.pins import hash_pin

    value = _ask("PIN: ", args.pin)
    if not value.isdigit() or not 4 <= len(value) <= 12:
        raise UserError("a PIN is 4 to 12 digits")
    print(hash_pin(value))
    return 0


def unlock(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store
    from core.auth import Authenticator, AuthError

    loaded, store = open_cli_store(args, create=False)
    try:
        auth = Authenticator(store.engine, loaded.config.users, loaded.config.auth)
        auth.unlock(args.admin, _ask("admin PIN: ", args.pin), args.user_id)
    except AuthError as e:
        raise UserError(str(e)) from None
    finally:
        store.close()
    print(f"{args.user_id} unlocked")
    return 0


def list_users(args: argparse.Namespace) -> int:
    from console.commands.common import open_cli_store
    from core.auth import Authenticator

    loaded, store = open_cli_store(args, read_only=True)
    try:
        auth = Authenticator(store.engine, loaded.config.users, loaded.config.auth)
        for u in loaded.config.users:
            perms = loaded.config.auth.permissions
            classes = sorted({c for r in u.roles for c in perms.get(r, [])})
            lock = "LOCKED" if auth.is_locked(u.id) else ""
            print(f"{u.id:<8} {u.name:<18} {','.join(u.roles):<24} "
                  f"decides: {', '.join(classes) or '—'}  {lock}")
    finally:
        store.close()
    return 0
