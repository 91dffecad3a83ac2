"""Start-up of the console, process start to the first screen with the plant drawn.

Run by ``bench console``: each command runs in its own process on a pseudo-terminal
(80×24), as ``make run`` starts it; the console writes the monotonic time at which its
Lines view was first drawn with the store's plant (``LOOPLINE_STARTUP_PROBE``) and
quits. The raw baseline is a bare Textual app (one Static) started the same way in
the same run: the interpreter, Textual's imports and the first frame.
"""

from __future__ import annotations

import fcntl
import os
import pty
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

BARE_APP = '''
import os, time
from textual.app import App
from textual.widgets import Static

class Bare(App):
    def compose(self):
        yield Static("hello")
    def on_mount(self):
        self.call_after_refresh(self.probe)
    def probe(self):
        open(os.environ["LOOPLINE_STARTUP_PROBE"], "w").write(f"{time.monotonic():.6f}")
        self.exit()

Bare().run()
'''


def time_to_first_screen(argv: list[str], timeout_s: float = 60.0,
                         size: tuple[int, int] = (80, 24)) -> float:
    """Seconds from spawning ``argv`` on a pty to the probe file being written."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe"
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        env = dict(os.environ, LOOPLINE_STARTUP_PROBE=str(probe),
                   LOOPLINE_STARTUP_PROBE_EXIT="1", TERM="xterm-256color")
        stop = threading.Event()

        def drain() -> None:  # the terminal output must flow, or the app blocks on write
            while not stop.is_set():
                try:
                    if not os.read(master, 65536):
                        break
                except OSError:
                    break

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        t0 = time.monotonic()
        proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                cwd=str(REPO), start_new_session=True)
        os.close(slave)
        try:
            deadline = t0 + timeout_s
            while not probe.exists() or not probe.read_text():
                if proc.poll() is not None and not probe.exists():
                    raise RuntimeError(f"{argv[2:]} exited ({proc.returncode}) before its "
                                       "first screen")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"no first screen within {timeout_s:.0f} s")
                time.sleep(0.01)
            drawn = float(probe.read_text())
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        finally:
            stop.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(master)
        return drawn - t0


def measure(rounds: int = 3) -> dict[str, object]:
    """Medians over ``rounds`` of: the bare app, the demo console on a fresh store (the
    first `make run`), and on the store the previous round left (every later one)."""
    from runtime.twin import free_port

    py = sys.executable
    bare: list[float] = []
    fresh: list[float] = []
    warm: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            bare.append(time_to_first_screen([py, "-c", BARE_APP]))
            db = Path(tmp) / f"startup-{i}.db"
            for into in (fresh, warm):  # the first start makes the store, the second reuses it
                argv = [py, "-m", "console.cli", "tui", "--demo", "--config",
                        str(REPO / "config.toml"), "--db", str(db), "--opcua-port",
                        str(free_port()), "--modbus-port", str(free_port())]
                into.append(time_to_first_screen(argv))

    def med(xs: list[float]) -> float | None:
        return round(statistics.median(xs), 2) if xs else None

    return {"rounds": rounds, "bare_textual_s": med(bare), "console_fresh_store_s": med(fresh),
            "console_warm_store_s": med(warm), "target_s": 5.0,
            "all": {"bare": [round(x, 2) for x in bare], "fresh": [round(x, 2) for x in fresh],
                    "warm": [round(x, 2) for x in warm]}}
