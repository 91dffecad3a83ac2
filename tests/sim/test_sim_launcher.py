"""The child-process twin: `python -m sim` started by the console's launcher, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.twin import TwinStartError, free_port, start_twin

ROOT = Path(__file__).resolve().parents[2]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_launcher_starts_waits_and_stops_the_twin(cfg) -> None:
    op, mp = free_port(), free_port()
    tp = start_twin(cfg, opcua_port=op, modbus_port=mp,
                    extra_args=["--speed", "600", "--start", "2026-01-05T06:00:00Z"],
                    timeout_s=60)
    try:
        assert tp.running and _answers(op) and _answers(mp)
        assert tp.opcua_endpoint == f"opc.tcp://127.0.0.1:{op}/loopline/"
        assert tp.info["modbus_port"] == mp and tp.info["pid"] == tp.proc.pid
        with pytest.raises(TwinStartError, match="already in use"):
            start_twin(cfg, opcua_port=op, modbus_port=mp, timeout_s=5)
    finally:
        code = tp.stop()
    assert code == 0  # SIGTERM is a clean stop, not a kill
    assert not _answers(op) and not _answers(mp)


def test_launcher_reports_a_twin_that_cannot_start(cfg) -> None:
    with pytest.raises(TwinStartError, match="unknown equipment"):
        start_twin(cfg, opcua_port=free_port(), modbus_port=free_port(),
                   extra_args=["--inject", "bearing:NOPE@1h"], timeout_s=30)


def _sim(*args: str) -> subprocess.CompletedProcess[str]:
    """The twin as the launcher runs it: its own process, both servers up."""
    return subprocess.run([sys.executable, "-m", "sim", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)


@pytest.mark.parametrize("args, message", [
    (["--inject", "meteor:A-LATHE1@1h"], "unknown fault kind"),
    (["--inject", "bearing:A-LATHE1"], "KIND:EQUIPMENT@T"),
    (["--speed", "0.5"], "between 1 and 3600"),
    (["--duration", "soon"], "bad time"),
    (["--start", "yesterday"], "ISO-8601"),
    (["--inject", "clog:A-LATHE1@1h", "--duration", "1"], "has no clog degradation"),
])
def test_cli_bad_input_gives_a_clean_message(args: list[str], message: str, capsys) -> None:
    from console.cli import main

    rc = main(["sim", *args, "--opcua-port", str(free_port()), "--modbus-port",
               str(free_port())])
    err = capsys.readouterr().err
    assert rc != 0
    assert message in err
    assert "Traceback" not in err


def test_cli_same_seed_and_speed_give_identical_truth(tmp_path: Path) -> None:
    files = []
    for i in range(2):
        truth = tmp_path / f"truth{i}.jsonl"
        r = _sim("--seed", "5", "--speed", "3600", "--duration", "1", "--truth", str(truth),
                 "--start", "2026-01-05T06:00:00Z", "--inject", "bearing:A-MILL1@10m",
                 "--faults-per-day", "24",
                 "--opcua-port", str(free_port()), "--modbus-port", str(free_port()))
        assert r.returncode == 0, r.stderr
        files.append(truth.read_bytes())
    assert files[0] == files[1]
    events = [json.loads(x) for x in files[0].decode().splitlines()]
    assert events[0]["event"] == "start" and events[0]["seed"] == 5
    assert any(e["event"] == "fault_started" and e["equipment"] == "A-MILL1" for e in events)
    # one wall second at 3600× is exactly one twin hour, however slow the machine is
    assert events[-1] == {"t": "2026-01-05T07:00:00Z", "event": "stop", "twin_seconds": 3600}


def test_twin_does_not_outlive_a_crashed_console() -> None:
    code = (
        "import os\n"
        "from core.config import load_config\n"
        "from runtime.twin import start_twin, free_port\n"
        "tp = start_twin(load_config('config.toml'), opcua_port=free_port(),\n"
        "                modbus_port=free_port(), timeout_s=60)\n"
        "print(tp.proc.pid, flush=True)\n"
        "os._exit(0)\n"  # no atexit, no stop(): a crash
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       timeout=120, check=True)
    pid = int(r.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail("the twin kept running after its parent died")
