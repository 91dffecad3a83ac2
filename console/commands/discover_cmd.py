"""`loopline discover opcua|modbus`: commissioning a new machine without reading Python.

``opcua URL`` browses the server and prints (or writes with ``--out``) tag templates
in config.toml syntax; ``modbus HOST[:PORT] --range hr:0-999`` lists the addresses
that answer with their raw values under each register layout. The work is done in
``drivers.discover`` (reached through ``runtime.commissioning``); this module only
parses arguments and prints.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("discover", help="browse an OPC UA server or scan a Modbus device "
                       "and print what it offers as config")
    dsub = p.add_subparsers(dest="discover_cmd", metavar="PROTOCOL", required=True)
    o = dsub.add_parser("opcua", help="browse a server; print its variables as tag templates")
    o.add_argument("url", help="endpoint, e.g. opc.tcp://192.168.0.10:4840")
    o.add_argument("--security", default="None", metavar="POLICY[:MODE]",
                   help="None (default), Basic256Sha256:Sign or Basic256Sha256:SignAndEncrypt")
    o.add_argument("--certificate", metavar="PATH", help="the client's certificate")
    o.add_argument("--private-key", metavar="PATH", help="the client's private key")
    o.add_argument("--server-certificate", metavar="PATH", help="the server's certificate")
    o.add_argument("--user", metavar="NAME", help="user name (needs SignAndEncrypt)")
    o.add_argument("--password-env", metavar="VAR",
                   help="environment variable holding the password")
    o.add_argument("--timeout", type=float, default=4.0, metavar="S", help="request timeout")
    o.add_argument("--out", metavar="PATH", help="write the templates here (default: stdout)")
    o.set_defaults(func=opcua)
    m = dsub.add_parser("modbus", help="read register ranges; list the addresses that answer")
    m.add_argument("target", metavar="HOST[:PORT]", help="device or gateway (port 502 default)")
    m.add_argument("--unit", type=int, default=1, metavar="U", help="unit id (default 1)")
    m.add_argument("--range", action="append", dest="ranges", metavar="TABLE:FIRST-LAST",
                   help="e.g. hr:0-999, ir:0-99, co:0-63, 40001-40100 (repeatable)")
    m.add_argument("--max-block", type=int, default=125, metavar="N",
                   help="registers per request (default 125; some gateways need less)")
    m.add_argument("--timeout", type=float, default=1.0, metavar="S", help="request timeout")
    m.set_defaults(func=modbus)


def _quiet_libraries() -> None:
    """The protocol libraries log every failed attempt; the command says it once."""
    for name in ("asyncua", "pymodbus"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def opcua(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from console.commands.common import UserError
    from core.config.schema import OpcUaDriver as OpcUaDriverCfg
    from runtime.commissioning import DriverError
    from runtime.commissioning import discover_opcua as browse

    _quiet_libraries()
    policy, _, mode = args.security.partition(":")
    fields = {
        "kind": "opcua", "endpoint": args.url, "security_policy": policy or "None",
        "security_mode": mode or ("None" if policy in ("", "None") else "SignAndEncrypt"),
        "certificate": args.certificate, "private_key": args.private_key,
        "server_certificate": args.server_certificate, "username": args.user,
        "password_env": args.password_env, "timeout_s": args.timeout,
    }
    try:
        cfg = OpcUaDriverCfg.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        first = e.errors(include_url=False)[0]
        where = ".".join(str(x) for x in first["loc"])
        raise UserError(f"discover opcua: {where + ': ' if where else ''}"
                        f"{first['msg'].removeprefix('Value error, ')}") from None

    try:
        text = browse(cfg, Path.cwd())
    except DriverError as e:
        raise UserError(f"discover opcua: {e}") from None
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot write {args.out}: {e.strerror}") from None
        print(f"{args.out}: {text.count(' address = ')} tags written", file=sys.stderr)
    else:
        print(text)
    return 0


def modbus(args: argparse.Namespace) -> int:
    from console.commands.common import UserError
    from runtime.commissioning import DriverError, discover_modbus

    _quiet_libraries()
    host, _, port_text = args.target.rpartition(":") if ":" in args.target else (
        args.target, "", "502")
    try:
        port = int(port_text)
    except ValueError:
        raise UserError(f"discover modbus: port {port_text!r} is not a number") from None
    if not args.ranges:
        raise UserError("discover modbus: give at least one --range, e.g. --range hr:0-999")
    if not 1 <= args.max_block <= 125:
        raise UserError("discover modbus: --max-block must be 1..125")
    try:
        text = discover_modbus(host, port, args.unit, args.ranges, args.max_block, args.timeout)
    except ValueError as e:
        raise UserError(f"discover modbus: {e}") from None
    except DriverError as e:
        raise UserError(f"discover modbus: {e}") from None
    print(text)
    return 0
