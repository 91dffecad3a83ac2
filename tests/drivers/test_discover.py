"""`loopline discover` against the twin: the template it writes ingests the same tags."""

from __future__ import annotations

import asyncio
import logging
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from driver_helpers import PIN_HASH, Collector, free_port

from console.cli import main
from core.config import load_config
from core.samples import Quality
from drivers.base import make_driver
from drivers.discover import ScanRange, modbus_table, scan_modbus
from drivers.modbus_map import split_address
from drivers.opcua_nodes import parse_node_id
from sim.master import load_master
from sim.runner import Twin, TwinOptions

ROOT = Path(__file__).resolve().parents[2]
TWIN_NS = "urn:loopline:twin"


@pytest.fixture
async def twin(tmp_path: Path) -> AsyncIterator[Twin]:
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    cfg = load_config(ROOT / "config.toml")
    opts = TwinOptions(seed=7, speed=60, host="127.0.0.1", opcua_port=free_port(),
                       modbus_port=free_port(), start=datetime(2026, 1, 5, 6, tzinfo=UTC),
                       truth=tmp_path / "truth.jsonl", injections=[])
    t = Twin(cfg, load_master(cfg.master_data_path), opts)
    task = asyncio.create_task(t.run())
    ready = asyncio.create_task(t.ready.wait())
    done, _ = await asyncio.wait({task, ready}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    assert ready in done, "twin did not start"
    try:
        yield t
    finally:
        t.stop()
        await asyncio.wait_for(task, timeout=30)


def _plant_with(templates: str, machines: list[str], endpoint: str) -> str:
    equipment = "\n".join(
        f'  [[lines.equipment]]\n  id = "{m}"\n  name = "{m}"\n  type = "generic"\n'
        f'  template = "{m}"\n  ideal_cycle_s = 10\n' for m in machines)
    return f"""
[site]
id = "new"
name = "Commissioning"

[[areas]]
id = "hall"
name = "Hall"

[[lines]]
id = "L"
name = "Line"
area = "hall"
driver = "plc"
{equipment}
[drivers.plc]
kind = "opcua"
endpoint = "{endpoint}"
publishing_interval_ms = 100

[[users]]
id = "olga"
name = "Olga"
roles = ["operator"]
pin_hash = "{PIN_HASH}"

{templates}
"""


async def test_discovered_template_ingests_the_twins_tags(tmp_path: Path, twin: Twin) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{twin.opts.opcua_port}/loopline/"
    out = tmp_path / "discovered.toml"
    rc = await asyncio.to_thread(main, ["discover", "opcua", endpoint, "--out", str(out)])
    assert rc == 0
    text = out.read_text(encoding="utf-8")
    templates = tomllib.loads(text)["templates"]
    found = {t["address"]: t for tpl in templates.values() for t in tpl["tags"]}
    # every OPC UA tag of the twin's config, with the same type and access, as nsu= ids
    served = load_config(ROOT / "config.toml")
    ua_tags = [t for t in served.tags if served.config.drivers[t.driver_id].kind == "opcua"]
    expected = {}
    for t in ua_tags:
        node = parse_node_id(t.spec.address)
        expected[f"nsu={TWIN_NS};s={node.Identifier}"] = t
    assert set(found) == set(expected)
    for addr, t in expected.items():
        assert found[addr]["data_type"] == t.spec.data_type, addr
        assert found[addr].get("writable", False) == t.spec.writable, addr
        assert found[addr].get("unit", "") == t.spec.unit, addr
    # pasted into a config: it validates, and every tag delivers Good values
    plant = tmp_path / "plant.toml"
    plant.write_text(_plant_with(text, sorted(templates), endpoint), encoding="utf-8")
    loaded = load_config(plant)
    assert len(loaded.tags) == len(expected)
    assert main(["config", "check", str(plant)]) == 1  # no master data here: says so
    drv = make_driver("plc", loaded.config.drivers["plc"], loaded.tags, loaded.base_dir)
    sink = Collector()
    await drv.start(sink)
    try:
        ids = [t.id for t in loaded.tags]
        await sink.wait_for(lambda: all(sink.good(i) for i in ids))
        assert not [s for s in sink.samples if s.quality is Quality.BAD]
    finally:
        await drv.stop()


async def test_modbus_scan_finds_the_register_map(twin: Twin) -> None:
    served = load_config(ROOT / "config.toml")
    regs = set()
    for t in served.tags_for("C-EXTR1"):
        table, a, _ = split_address(t.spec.address)
        assert table == "hr"
        regs.add(a)
    res = await scan_modbus("127.0.0.1", twin.opts.modbus_port, 1,
                            [ScanRange.parse("hr:90-160"), ScanRange.parse("40101-40103")],
                            max_block=50)
    assert regs <= set(res[0].values)  # every mapped register answers ...
    assert 95 in res[0].refused  # ... and the gap before the machine's block does not
    assert set(res[1].values) == {100, 101, 102}
    table = modbus_table(res)
    assert "hr:100    40101" in table and "CDAB" in table and "hr:90-99 refused" in table


def test_scan_ranges_parse() -> None:
    assert ScanRange.parse("hr:0-999") == ScanRange("hr", 0, 999)
    assert ScanRange.parse("40001-40100") == ScanRange("hr", 0, 99)
    assert ScanRange.parse("ir:7") == ScanRange("ir", 7, 7)
    for bad in ("hr:10-5", "hr:0-ir:5", "xx:0-9", "hr:1.2-3"):
        with pytest.raises(ValueError, match="range"):
            ScanRange.parse(bad)


def test_discover_cli_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["discover", "modbus", f"127.0.0.1:{port}", "--range", "hr:0-9"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(port) in err
    assert main(["discover", "modbus", "127.0.0.1", "--range", "zz:0-9"]) == 1
    assert "is not one of" in capsys.readouterr().err
    assert main(["discover", "opcua", "http://x"]) == 1
    assert "endpoint" in capsys.readouterr().err
