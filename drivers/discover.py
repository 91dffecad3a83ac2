"""Commissioning: find what a new device offers and write it as config.

``browse_opcua`` walks a server's address space from the Objects folder and returns
every variable with its node id (namespace *URI*, so the id survives a reordered
namespace table), data type, unit and access level; ``opcua_template`` renders them
as tag templates in config.toml syntax, one per parent object (a machine, usually).

``scan_modbus`` reads register ranges in blocks, narrowing a refused block down to
the addresses that answer, and ``modbus_table`` lists each answering address with
its raw value and the 32-bit readings under every register layout (ABCD, CDAB,
BADC, DCBA), which is how an engineer finds a float whose layout the manual omits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from asyncua import Client, ua

from drivers import codec
from drivers.base import DriverError
from drivers.modbus_map import ADDRESS_FORMS, split_address
from drivers.opcua_nodes import with_uri

# OPC UA built-in data types (ns=0 numeric ids) -> config data_type
UA_TYPES: dict[int, str] = {
    1: "bool", 2: "int16", 3: "uint16", 4: "int16", 5: "uint16", 6: "int32", 7: "uint32",
    8: "int64", 10: "float32", 11: "float64", 12: "string", 13: "string", 21: "string",
    29: "int32",  # Enumeration: Int32 on the wire
}
_BROWSE_BATCH = 100  # nodes per Browse/Read request (servers cap MaxNodesPerBrowse)


@dataclass
class FoundVariable:
    """One OPC UA variable as ``discover`` reports it."""

    address: str  # nsu=...;s=... (or i=... in namespace 0)
    path: list[str]  # browse names from below Objects down to the variable
    data_type: str | None  # config data_type, None when loopline cannot carry it
    ua_type: str  # the server's type name, for the comment when unsupported
    unit: str = ""
    writable: bool = False
    readable: bool = True
    array: bool = False
    description: str = ""


# ---------------------------------------------------------------- OPC UA


async def browse_opcua(client: Client, max_nodes: int = 20_000) -> list[FoundVariable]:
    """Every variable below Objects (namespace 0, the server's own, excluded)."""
    namespaces = list(await client.get_namespace_array())
    seen: set[ua.NodeId] = set()
    level: list[tuple[ua.NodeId, list[str]]] = [(ua.NodeId(ua.ObjectIds.ObjectsFolder), [])]
    variables: list[tuple[ua.NodeId, list[str]]] = []
    while level and len(seen) < max_nodes:
        nxt: list[tuple[ua.NodeId, list[str]]] = []
        for start in range(0, len(level), _BROWSE_BATCH):
            chunk = level[start : start + _BROWSE_BATCH]
            results = await _browse(client, [n for n, _ in chunk])
            for (_, path), refs in zip(chunk, results, strict=True):
                for ref in refs:
                    nid = ref.NodeId
                    node_id = ua.NodeId(nid.Identifier, nid.NamespaceIndex, nid.NodeIdType)
                    if node_id in seen or node_id.NamespaceIndex == 0:
                        continue
                    seen.add(node_id)
                    child = [*path, ref.BrowseName.Name]
                    if ref.ReferenceTypeId == ua.NodeId(ua.ObjectIds.HasProperty):
                        continue  # EngineeringUnits, EURange...: read with their variable
                    if ref.NodeClass == ua.NodeClass.Variable:
                        variables.append((node_id, child))
                    nxt.append((node_id, child))  # variables may have children too
        level = nxt
    return await _describe(client, variables, namespaces)


async def _browse(
    client: Client, nodes: Sequence[ua.NodeId]
) -> list[list[ua.ReferenceDescription]]:
    params = ua.BrowseParameters()
    params.View = ua.ViewDescription()
    params.RequestedMaxReferencesPerNode = 0
    for n in nodes:
        d = ua.BrowseDescription()
        d.NodeId = n
        d.BrowseDirection = ua.BrowseDirection.Forward
        d.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HierarchicalReferences)
        d.IncludeSubtypes = True
        d.NodeClassMask = int(ua.NodeClass.Object) | int(ua.NodeClass.Variable)
        d.ResultMask = ua.BrowseResultMask.All
        params.NodesToBrowse.append(d)
    results = await client.uaclient.browse(params)
    return [list(r.References or []) for r in results]


async def _read(client: Client, nodes: Sequence[ua.NodeId], attr: ua.AttributeIds
                ) -> list[ua.DataValue]:
    out: list[ua.DataValue] = []
    for start in range(0, len(nodes), _BROWSE_BATCH):
        out += await client.uaclient.read_attributes(list(nodes[start : start + _BROWSE_BATCH]),
                                                     attr)
    return out


async def _describe(client: Client, variables: list[tuple[ua.NodeId, list[str]]],
                    namespaces: list[str]) -> list[FoundVariable]:
    ids = [n for n, _ in variables]
    types = await _read(client, ids, ua.AttributeIds.DataType)
    access = await _read(client, ids, ua.AttributeIds.UserAccessLevel)
    ranks = await _read(client, ids, ua.AttributeIds.ValueRank)
    descs = await _read(client, ids, ua.AttributeIds.Description)
    units = await _units(client, ids)
    type_names: dict[ua.NodeId, str] = {}
    out: list[FoundVariable] = []
    for i, (nid, path) in enumerate(variables):
        dt = _value(types[i])
        dtype: str | None = None
        ua_name = "?"
        if isinstance(dt, ua.NodeId):
            if dt.NamespaceIndex == 0 and isinstance(dt.Identifier, int):
                dtype = UA_TYPES.get(dt.Identifier)
                ua_name = ua.ObjectIdNames.get(dt.Identifier, str(dt.Identifier))
            else:
                if dt not in type_names:
                    try:
                        bn = await client.get_node(dt).read_browse_name()
                        type_names[dt] = bn.Name
                    except Exception:
                        type_names[dt] = dt.to_string()
                ua_name = type_names[dt]
        al = _value(access[i])
        level = int(al) if isinstance(al, int) else 1
        rank = _value(ranks[i])
        desc = _value(descs[i])
        out.append(FoundVariable(
            address=with_uri(nid, namespaces), path=path, data_type=dtype, ua_type=ua_name,
            unit=units.get(nid, ""),
            writable=bool(level & (1 << int(ua.AccessLevel.CurrentWrite))),
            readable=bool(level & (1 << int(ua.AccessLevel.CurrentRead))),
            array=isinstance(rank, int) and rank >= 1,
            description=desc.Text or "" if isinstance(desc, ua.LocalizedText) else "",
        ))
    return out


async def _units(client: Client, ids: Sequence[ua.NodeId]) -> dict[ua.NodeId, str]:
    """The EngineeringUnits property of each variable that has one."""
    props: list[tuple[ua.NodeId, ua.NodeId]] = []
    for start in range(0, len(ids), _BROWSE_BATCH):
        chunk = ids[start : start + _BROWSE_BATCH]
        params = ua.BrowseParameters()
        params.View = ua.ViewDescription()
        for n in chunk:
            d = ua.BrowseDescription()
            d.NodeId = n
            d.BrowseDirection = ua.BrowseDirection.Forward
            d.ReferenceTypeId = ua.NodeId(ua.ObjectIds.HasProperty)
            d.IncludeSubtypes = True
            d.NodeClassMask = int(ua.NodeClass.Variable)
            d.ResultMask = ua.BrowseResultMask.All
            params.NodesToBrowse.append(d)
        for n, r in zip(chunk, await client.uaclient.browse(params), strict=True):
            for ref in r.References or []:
                if ref.BrowseName.Name == "EngineeringUnits":
                    props.append((n, ref.NodeId))
    if not props:
        return {}
    values = await _read(client, [p for _, p in props], ua.AttributeIds.Value)
    out: dict[ua.NodeId, str] = {}
    for (n, _), dv in zip(props, values, strict=True):
        v = _value(dv)
        if isinstance(v, ua.EUInformation) and v.DisplayName is not None:
            out[n] = v.DisplayName.Text or ""
        elif isinstance(v, str):
            out[n] = v
    return out


def _value(dv: ua.DataValue) -> object:
    if dv is None or dv.Value is None:
        return None
    if dv.StatusCode is not None and not dv.StatusCode.is_good():
        return None
    return dv.Value.Value


def snake(name: str) -> str:
    """``VibrationRMS`` -> ``vibration_rms``, ``DB10.Temp 1`` -> ``db10_temp_1``."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    s = re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_").lower()
    return s if s[:1].isalpha() else f"v_{s}" if s else "value"


def _template_name(path: Sequence[str]) -> str:
    s = re.sub(r"[^A-Za-z0-9_\-]+", "_", "_".join(path) or "objects").strip("_")
    s = s if s[:1].isalpha() else f"t_{s}"
    return s[:64]


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # a TOML basic string
    return repr(v)


def opcua_template(found: Iterable[FoundVariable], source: str) -> str:
    """Tag templates in config.toml syntax, one per parent object, ready to paste."""
    groups: dict[str, list[FoundVariable]] = {}
    for v in found:
        groups.setdefault(_template_name(v.path[-2:-1] or ["objects"]), []).append(v)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    n = sum(len(g) for g in groups.values())
    out = [f"# loopline discover opcua {source} at {stamp}: {n} variables under "
           f"{len(groups)} objects.",
           "# Give a machine its tags with `template = \"NAME\"` in its [[lines.equipment]];",
           "# node ids carry the namespace URI (nsu=), so a reordered namespace table is fine.",
           "# Check kind (signal, counter, state, setpoint, context...) and limits by hand.", ""]
    for name, vs in groups.items():
        out.append(f"[templates.{name}]")
        out.append("tags = [")
        used: set[str] = set()
        for v in vs:
            if v.data_type is None or v.array or not v.readable:
                why = ("an array" if v.array else "not readable" if not v.readable
                       else f"type {v.ua_type} is not supported")
                out.append(f"  # skipped {v.address}: {why}")
                continue
            tag = snake(v.path[-1])
            base, k = tag, 2
            while tag in used:
                tag, k = f"{base}_{k}", k + 1
            used.add(tag)
            fields: dict[str, object] = {"name": tag, "address": v.address,
                                         "data_type": v.data_type}
            if v.unit:
                fields["unit"] = v.unit
            if v.writable:
                fields["writable"] = True
            out.append("  { " + ", ".join(f"{k} = {_toml(x)}" for k, x in fields.items()) + " },")
        out.append("]")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- Modbus


@dataclass
class ScanRange:
    table: str  # hr, ir, co, di
    first: int
    last: int

    @classmethod
    def parse(cls, text: str) -> ScanRange:
        """``hr:0-999``, ``ir:10-19``, ``40001-40100`` (Modicon, 1-based), ``hr:7``."""
        a, sep, b = text.partition("-")
        try:
            table, first, bit = split_address(a)
            table2, last, bit2 = table, first, None
            if sep:
                # "hr:0-999" gives the table once; "40001-40100" repeats it in the number
                b_text = b if (":" in b or ":" not in a) else f"{table}:{b}"
                table2, last, bit2 = split_address(b_text)
        except ValueError as e:
            raise ValueError(f"range {text!r}: {e}") from None
        if bit is not None or bit2 is not None or table2 != table:
            raise ValueError(f"range {text!r}: give TABLE:FIRST-LAST, e.g. hr:0-999 "
                             f"(addresses: {ADDRESS_FORMS})")
        if last < first:
            raise ValueError(f"range {text!r}: the last address is before the first")
        return cls(table, first, last)


@dataclass
class ScanResult:
    table: str
    values: dict[int, int | bool] = field(default_factory=dict)  # address -> raw
    refused: dict[int, str] = field(default_factory=dict)  # first address of a run -> reason


async def scan_modbus(host: str, port: int, unit: int, ranges: Sequence[ScanRange],
                      max_block: int = 125, timeout_s: float = 1.0) -> list[ScanResult]:
    """Read each range in blocks; a refused block is bisected to the addresses that
    answer, so a sparse map is found without one request per register."""
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient(host, port=port, timeout=timeout_s, retries=0,
                                  reconnect_delay=0, name="loopline-discover")
    try:
        ok = await asyncio.wait_for(client.connect(), timeout_s + 1.0)
    except (TimeoutError, OSError) as e:
        client.close()
        raise DriverError(f"{host}:{port}: {e or type(e).__name__}") from None
    if not ok or not client.connected:
        client.close()
        raise DriverError(f"{host}:{port}: connection refused or timed out")
    try:
        out = []
        for r in ranges:
            res = ScanResult(r.table)
            size = min(max_block, 2000) if r.table in ("co", "di") else max_block
            for a in range(r.first, r.last + 1, size):
                await _scan_block(client, res, unit, a, min(size, r.last + 1 - a), timeout_s)
            out.append(res)
        return out
    finally:
        client.close()


async def _scan_block(client: object, res: ScanResult, unit: int, address: int, count: int,
                      timeout_s: float) -> None:
    fn = {"hr": "read_holding_registers", "ir": "read_input_registers", "co": "read_coils",
          "di": "read_discrete_inputs"}[res.table]
    try:
        rr = await asyncio.wait_for(getattr(client, fn)(address, count=count, device_id=unit),
                                    timeout_s + 0.5)
    except TimeoutError:
        res.refused[address] = f"no answer within {timeout_s:g}s ({count} from here)"
        return
    except Exception as e:
        raise DriverError(f"reading {res.table}:{address}+{count}: {e or type(e).__name__}"
                          ) from None
    if rr.isError():
        if count > 1:  # part of the block is unmapped: find which part
            half = count // 2
            await _scan_block(client, res, unit, address, half, timeout_s)
            await _scan_block(client, res, unit, address + half, count - half, timeout_s)
            return
        from drivers.modbus import exception_reason

        res.refused[address] = exception_reason(int(getattr(rr, "exception_code", 0)))
        return
    data = list(rr.bits[:count]) if res.table in ("co", "di") else list(rr.registers)
    for i, v in enumerate(data[:count]):
        res.values[address + i] = bool(v) if res.table in ("co", "di") else int(v)


def _fmt(x: float | int) -> str:
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.6g}"
    return str(x)


def modbus_table(results: Sequence[ScanResult]) -> str:
    """One line per answering address: raw word, int16, and the 32-bit readings of it
    with the next register under each layout; refused runs are listed after."""
    lines: list[str] = []
    for res in results:
        addrs = sorted(res.values)
        lines.append(f"# {res.table}: {len(addrs)} addresses answer"
                     + (f", {len(res.refused)} refused" if res.refused else ""))
        if res.table in ("co", "di"):
            for a in addrs:
                lines.append(f"{res.table}:{a:<6} {modicon(res.table, a):<8}  "
                             f"{int(bool(res.values[a]))}")
        else:
            lines.append("# address   modicon   hex     uint16  int16 | 32-bit with the next: "
                         "float32 and int32 per layout")
            for a in addrs:
                w = int(res.values[a])
                int16 = codec.decode([w], "int16")
                row = (f"{res.table}:{a:<6} {modicon(res.table, a):<8}  0x{w:04X}  {w:<7} "
                       f"{int16:<6}")
                if a + 1 in res.values:
                    regs = [w, int(res.values[a + 1])]
                    parts = []
                    for name in codec.LAYOUTS:
                        f = codec.decode(regs, "float32", name)  # type: ignore[arg-type]
                        i = codec.decode(regs, "int32", name)  # type: ignore[arg-type]
                        parts.append(f"{name} {_fmt(f)}/{i}")
                    row += "| " + "  ".join(parts)
                lines.append(row.rstrip())
        runs: list[list[object]] = []  # [first, last, why]: adjacent refusals as one line
        for a, why in sorted(res.refused.items()):
            if runs and runs[-1][1] == a - 1 and runs[-1][2] == why:
                runs[-1][1] = a
            else:
                runs.append([a, a, why])
        for first, last, why in runs:
            span = f"{first}" if first == last else f"{first}-{last}"
            lines.append(f"# {res.table}:{span} refused: {why}")
    return "\n".join(lines)


def modicon(table: str, address: int) -> str:
    """The 1-based Modicon number of a 0-based address: hr:100 -> 40101 (6 digits past 9998)."""
    digit = {"co": 0, "di": 1, "ir": 3, "hr": 4}[table]
    n = address + 1
    return f"{digit}{n:04d}" if n <= 9999 else f"{digit}{n:05d}"


async def open_opcua_client(cfg: object, base_dir: object = None) -> Client:
    """A connected client with the driver's own security set-up (certificates, user)."""
    from pathlib import Path

    from drivers.opcua import OpcUaDriver, identity_refusal

    drv = OpcUaDriver("discover", cfg, [], Path(str(base_dir)) if base_dir else None)  # type: ignore[arg-type]
    client = await drv._new_client()
    try:
        await asyncio.wait_for(client.connect(), cfg.timeout_s * 2 + 1.0)  # type: ignore[attr-defined]
    except Exception as e:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 1.0)
        msg = str(e) or type(e).__name__
        refused = identity_refusal(e)
        raise DriverError(f"{cfg.endpoint}: {refused + ': ' if refused else ''}{msg}"  # type: ignore[attr-defined]
                          ) from None
    return client
