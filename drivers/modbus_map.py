"""Modbus register maps from config: address parsing and read-block planning.

Reading one block of nearby registers costs one round trip instead of one per tag,
which is what makes polling hundreds of tags per second possible. Blocks never
exceed ``max_block`` registers (the protocol allows 125) and only bridge gaps up
to ``max_gap`` registers, since unmapped gaps may answer with exception code 2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from core.config.loader import ResolvedTag
from drivers.base import DriverConfigError
from drivers.codec import register_count

Table = Literal["hr", "ir", "co", "di"]

_ADDR = re.compile(r"^\s*(hr|ir|co|di)\s*:\s*(\d+)(?:\.(\d+))?\s*$", re.IGNORECASE)
# Modicon notation: table digit + 1-based register, 5 digits (40001) or 6 (400001)
_MODICON = re.compile(r"^\s*([0134])(\d{4,5})(?:\.(\d+))?\s*$")
_MODICON_TABLES = {"0": "co", "1": "di", "3": "ir", "4": "hr"}
ADDRESS_FORMS = "hr:N, ir:N, hr:N.BIT, co:N, di:N (0-based) or 4xxxx/3xxxx/0xxxx/1xxxx (1-based)"


def split_address(address: str) -> tuple[str, int, int | None]:
    """An address -> (table, 0-based register, bit); ``ValueError`` says what is wrong.

    ``hr:N`` forms are 0-based protocol addresses; Modicon ``4xxxx`` forms are the
    1-based register numbers of device manuals, so ``40001`` is ``hr:0``.
    """
    m = _ADDR.match(address)
    if m:
        table, reg = m.group(1).lower(), int(m.group(2))
    else:
        m = _MODICON.match(address)
        if not m:
            digit = address.strip()[:1]
            if address.strip().isdigit() and digit not in _MODICON_TABLES:
                raise ValueError(f"Modbus address {address!r}: Modicon numbers start with "
                                 "0, 1, 3 or 4 (coil, input, input register, holding), "
                                 f"not {digit}")
            raise ValueError(f"Modbus address {address!r} is not one of {ADDRESS_FORMS}")
        table, number = _MODICON_TABLES[m.group(1)], int(m.group(2))
        if number < 1:
            raise ValueError(f"Modbus address {address!r}: Modicon numbers are 1-based "
                             f"({m.group(1)}0001 is the first register)")
        reg = number - 1
    bit = int(m.group(3)) if m.group(3) is not None else None
    if reg > 65535:
        raise ValueError(f"register {reg} is outside 0..65535")
    return table, reg, bit

MAX_BITS = 2000  # protocol limit for coils / discrete inputs in one request


@dataclass(frozen=True, slots=True)
class Item:
    """One tag's place in the device: table, first register, size, optional bit."""

    tag: ResolvedTag
    table: Table
    address: int
    count: int
    bit: int | None = None
    unit: int = 1  # Modbus device id (unit id) behind the gateway

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(slots=True)
class Block:
    """A contiguous read; ``split`` after the device refused it as a whole."""

    table: Table
    address: int
    count: int
    items: list[Item] = field(default_factory=list)
    split: bool = False
    unit: int = 1


def parse_address(tag: ResolvedTag, unit: int = 1) -> Item:
    """``hr:100``, ``ir:7``, ``hr:100.3`` (bit 3), ``co:5``, ``di:5``, ``40101`` -> Item."""
    spec = tag.spec
    try:
        table, address, bit = split_address(spec.address)
    except ValueError as e:
        raise DriverConfigError(f"tag {tag.id}: {e}") from None
    if table in ("co", "di"):
        if bit is not None:
            raise DriverConfigError(f"tag {tag.id}: {table} addresses take no bit index")
        if spec.data_type != "bool":
            raise DriverConfigError(
                f"tag {tag.id}: {table} (coils/discrete inputs) hold bools, not {spec.data_type}"
            )
        if spec.writable and table == "di":
            raise DriverConfigError(f"tag {tag.id}: writable, but discrete inputs are read-only "
                                    "(use a coil, co: or 0xxxx)")
        return Item(tag, table, address, 1, None, unit)  # type: ignore[arg-type]
    if spec.writable and table == "ir":
        raise DriverConfigError(f"tag {tag.id}: writable, but input registers are read-only "
                                "(use a holding register, hr: or 4xxxx)")
    if spec.kind == "vision":
        from drivers.vision import register_count as vision_count

        vm = spec.vision
        if bit is not None or vm is None or not vm.classes:
            raise DriverConfigError(
                f"tag {tag.id}: a Modbus vision tag is a register address with "
                "vision.classes (bit i of the defect mask names classes[i])")
        n = vision_count(vm)
        if address + n > 65536:
            raise DriverConfigError(f"tag {tag.id}: vision registers at {address} run past 65535")
        return Item(tag, table, address, n, None, unit)  # type: ignore[arg-type]
    if bit is not None:
        if not 0 <= bit <= 15:
            raise DriverConfigError(f"tag {tag.id}: bit {bit} is outside 0..15")
        if spec.data_type != "bool":
            raise DriverConfigError(f"tag {tag.id}: a status-word bit must be data_type bool")
        return Item(tag, table, address, 1, bit, unit)  # type: ignore[arg-type]
    if spec.data_type in ("bool", "string"):
        raise DriverConfigError(
            f"tag {tag.id}: data_type {spec.data_type} in a register needs a bit "
            f"(e.g. {table}:{address}.0)"
            if spec.data_type == "bool"
            else f"tag {tag.id}: data_type string is not supported over Modbus"
        )
    n = register_count(spec.data_type)
    if address + n > 65536:
        raise DriverConfigError(f"tag {tag.id}: {spec.data_type} at {address} runs past 65535")
    return Item(tag, table, address, n, None, unit)  # type: ignore[arg-type]


def plan_blocks(items: Iterable[Item], max_block: int = 125, max_gap: int = 8) -> list[Block]:
    """Group items per unit and table into contiguous reads of at most ``max_block`` units."""
    by_key: dict[tuple[int, str], list[Item]] = {}
    for it in items:
        by_key.setdefault((it.unit, it.table), []).append(it)
    order = {"hr": 0, "ir": 1, "co": 2, "di": 3}
    blocks: list[Block] = []
    for unit, table in sorted(by_key, key=lambda k: (k[0], order[k[1]])):
        its = sorted(by_key[(unit, table)], key=lambda i: (i.address, i.count))
        limit = min(MAX_BITS, max_block * 16) if table in ("co", "di") else max_block
        gap = max_gap * 16 if table in ("co", "di") else max_gap
        cur: Block | None = None
        for it in its:
            if cur is not None:
                new_end = max(cur.address + cur.count, it.end)
                if it.address - (cur.address + cur.count) <= gap and new_end - cur.address <= limit:
                    cur.count = new_end - cur.address
                    cur.items.append(it)
                    continue
                blocks.append(cur)
            cur = Block(table, it.address, it.count, [it], False, unit)  # type: ignore[arg-type]
        if cur is not None:
            blocks.append(cur)
    return blocks
