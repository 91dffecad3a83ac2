"""Plain protocol clients (asyncua, pymodbus; no loopline code) against the running twin."""

from __future__ import annotations

import json
import struct
from datetime import UTC, datetime, timedelta

import pytest
from asyncua import Client, ua
from pymodbus.client import AsyncModbusTcpClient

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def f32(regs: list[int]) -> float:
    return struct.unpack(">f", struct.pack(">HH", *regs))[0]


def f32_regs(v: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", v)))


async def test_opcua_plain_client_reads_documented_nodes(twin) -> None:
    async with Client(twin.opcua.endpoint) as c:
        assert await c.get_namespace_index("urn:loopline:twin") == 2
        vib = c.get_node("ns=2;s=A.A-LATHE1.VibrationRMS")
        dv = await vib.read_data_value()
        assert dv.StatusCode.is_good() and isinstance(dv.Value.Value, float)
        assert dv.Value.VariantType == ua.VariantType.Double
        # SourceTimestamp is the twin's clock, which started at START
        assert START <= dv.SourceTimestamp.replace(tzinfo=UTC) < START + timedelta(days=1)
        eu = await vib.get_child("2:EngineeringUnits")
        assert (await eu.read_value()).DisplayName.Text == "mm/s"
        assert "mm/s" in (await vib.read_description()).Text
        state = await c.get_node("ns=2;s=A.A-LATHE1.State").read_value()
        assert state in range(7)
        assert (await c.get_node("ns=2;s=A.A-LATHE1.Lot").read_value()).startswith("L-")
        clock = await c.get_node("ns=2;s=Plant.Clock").read_value()
        assert clock.startswith("2026-01-05T")
        # folder per line and equipment
        line = c.get_node("ns=2;s=B")
        names = {(await n.read_browse_name()).Name for n in await line.get_children()}
        assert {"B-DRY1", "B-MOLD1", "B-MOLD2", "B-PACK1"} <= names
        # every OPC UA tag of the config is served
        for t in twin.plant.loaded.tags:
            if t.driver_id == "opcua":
                await c.get_node(t.spec.address).read_data_type()


async def test_opcua_setpoint_limits_and_commands(twin) -> None:
    async with Client(twin.opcua.endpoint) as c:
        sp = c.get_node("ns=2;s=A.A-LATHE1.SpeedSP")
        with pytest.raises(ua.UaStatusCodeError) as e:
            await sp.write_value(ua.DataValue(ua.Variant(5000.0, ua.VariantType.Float)))
        assert e.value.code == ua.StatusCodes.BadOutOfRange
        assert await sp.read_value() == 1800.0
        await sp.write_value(ua.DataValue(ua.Variant(1900.0, ua.VariantType.Float)))
        written = await sp.read_data_value()
        assert written.Value.Value == 1900.0
        # stamped with the twin's clock (January), not the server's wall clock
        assert START <= written.SourceTimestamp.replace(tzinfo=UTC) < START + timedelta(days=1)
        assert twin.plant.machines["A-LATHE1"].sp["speed_sp"].value == 1900.0
        cmd = c.get_node("ns=2;s=A.A-LATHE1.Command")
        with pytest.raises(ua.UaStatusCodeError):
            await cmd.write_value(ua.DataValue(ua.Variant("{not json", ua.VariantType.String)))
        payload = {"cmd": "complete_wo", "fault": "bearing", "wo": "WO-7"}
        await cmd.write_value(ua.DataValue(ua.Variant(json.dumps(payload),
                                                      ua.VariantType.String)))
    twin.truth.flush()
    lines = [json.loads(x) for x in twin.opts.truth.read_text().splitlines()]
    events = [x["event"] for x in lines]
    assert "setpoint_refused" in events and "setpoint" in events and "wo_completed" in events


async def test_opcua_comms_drop_reads_bad(twin) -> None:
    async with Client(twin.opcua.endpoint) as c:
        dv = await c.get_node("ns=2;s=B.B-PACK1.GoodCount").read_data_value(
            raise_on_bad_status=False)
        assert dv.StatusCode.is_bad()


async def test_modbus_plain_client_reads_and_writes_documented_registers(twin) -> None:
    c = AsyncModbusTcpClient("127.0.0.1", port=twin.opts.modbus_port, timeout=3)
    await c.connect()
    try:
        rr = await c.read_holding_registers(100, count=18, device_id=1)  # C-EXTR1 block
        assert not rr.isError()
        r = rr.registers
        assert 0.0 < f32(r[0:2]) < 30.0  # vibration_rms, mm/s
        assert 0.0 < f32(r[2:4]) < 150.0  # bearing_temp, °C
        assert 0 <= r[4] < 1000  # motor_current ×0.1 A
        assert r[5] in range(7)  # state
        assert r[6] & 0b1 == (1 if r[5] == 1 else 0)  # status word bit 0 = running
        good = (r[7] << 16) | r[8]
        assert good >= 0
        temp = await c.read_holding_registers(119, count=2, device_id=1)
        assert 150 < f32(temp.registers) < 230  # zone_temp near 190 °C
        gap = await c.read_holding_registers(125, count=1, device_id=1)  # not in the map
        assert gap.isError()
        # setpoints: inside limits accepted, outside refused with ILLEGAL_VALUE
        ok = await c.write_registers(130, f32_regs(32.0), device_id=1)
        assert not ok.isError()
        assert twin.plant.machines["C-EXTR1"].sp["speed_sp"].value == 32.0
        back = await c.read_holding_registers(130, count=2, device_id=1)
        assert f32(back.registers) == 32.0
        bad = await c.write_registers(130, f32_regs(99.0), device_id=1)
        assert bad.isError() and bad.exception_code == 3
        assert twin.plant.machines["C-EXTR1"].sp["speed_sp"].value == 32.0
        half = await c.write_register(130, f32_regs(33.0)[0], device_id=1)  # half a float
        assert half.isError() and half.exception_code == 3
        ro = await c.write_registers(100, [0, 0], device_id=1)  # a measurement
        assert ro.isError()
        cmd = await c.write_register(140, 1, device_id=1)  # complete bearing WO
        assert not cmd.isError()
        unknown = await c.write_register(140, 77, device_id=1)
        assert unknown.isError() and unknown.exception_code == 3
        # comms-drop on C-OVEN1 (injected at t=0): its registers stop answering
        drop = await c.read_holding_registers(200, count=2, device_id=1)
        assert drop.isError() and drop.exception_code == 0x0B
    finally:
        c.close()
