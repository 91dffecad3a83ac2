"""What the console asks of the devices outside a running plant: checking a config
against everything the drivers would refuse, and discovering a new machine's tags.

The console never imports drivers/ (see tests/test_layering.py); this module is its
door to them. The work itself lives in ``drivers.validate`` and ``drivers.discover``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.config import ConfigError, LoadedConfig
from drivers.base import DriverError
from drivers.discover import (
    ScanRange,
    browse_opcua,
    modbus_table,
    opcua_template,
    open_opcua_client,
    scan_modbus,
)
from drivers.validate import device_problems

__all__ = ["DriverError", "ScanRange", "config_problems", "discover_modbus", "discover_opcua"]


def config_problems(loaded: LoadedConfig) -> list[str]:
    """What `run` would refuse beyond the schema: master-data references and every
    driver's addresses, types and certificates. One line each; empty when usable."""
    from core.masterdata import check_references, read_master

    out: list[str] = []
    try:
        spec, text = read_master(loaded.master_data_path)
        check_references(spec, loaded, loaded.master_data_path, text)  # with its lines
    except ConfigError as e:
        out += str(e).splitlines()
    out += [f"{loaded.path}: {p}" for p in device_problems(loaded)]
    return out


def discover_opcua(cfg: Any, base_dir: Path) -> str:
    """Browse the server of an ``OpcUaDriver`` config; tag templates as TOML text.

    Raises ``DriverError`` when the server cannot be reached or refuses us."""

    async def go() -> str:
        client = await open_opcua_client(cfg, base_dir)
        try:
            found = await browse_opcua(client)
        finally:
            await asyncio.wait_for(client.disconnect(), 5.0)
        return opcua_template(found, cfg.endpoint)

    try:
        return asyncio.run(go())
    except DriverError:
        raise
    except Exception as e:  # a server misbehaving mid-browse: say what, no traceback
        raise DriverError(f"{cfg.endpoint}: browsing failed: {type(e).__name__}: {e}") from None


def discover_modbus(host: str, port: int, unit: int, ranges: Sequence[str],
                    max_block: int = 125, timeout_s: float = 1.0) -> str:
    """Scan register ranges (``hr:0-999``...); the answering addresses as a text table.

    Raises ``ValueError`` for a bad range, ``DriverError`` when the device cannot be read."""
    parsed = [ScanRange.parse(r) for r in ranges]
    results = asyncio.run(scan_modbus(host, port, unit, parsed, max_block, timeout_s))
    return f"# loopline discover modbus {host}:{port} unit {unit}\n" + modbus_table(results)
