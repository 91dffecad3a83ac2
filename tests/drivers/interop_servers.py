"""Independent device stacks as child processes: node-opcua (npm) and libmodbus (C).

Both are installed by the project's set-up (``make interop``: ``npm ci`` here, the
Debian package libmodbus-dev and a gcc build of ``modbus_server.c``), never by hand.
Each server listens on a loopback port the test chose, says ``ready PORT`` on stdout
when it does, and takes ``NAME VALUE`` (node-opcua) or ``hr ADDRESS VALUE...`` (libmodbus)
lines on stdin to change its values; it answers each with one line. Protocol lines start
with ``@@ `` (node-opcua writes its own log to stdout too).
"""

from __future__ import annotations

import queue
import signal
import subprocess
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "interop"
NODE_SERVER = HERE / "opcua_server.js"
MODBUS_SOURCE = HERE / "modbus_server.c"
MODBUS_BINARY = HERE / "build" / "modbus_server"
NODE_MODULES = HERE / "node_modules"
SETUP_HINT = "run `make interop` (the project's set-up installs the independent stacks)"


class ServerProcess:
    """A server child process speaking the ready/stdin line protocol above."""

    def __init__(self, argv: list[str], port: int, startup_s: float = 60.0) -> None:
        self.argv, self.port, self.startup_s = argv, port, startup_s
        self.proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=HERE, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        # a reader thread, not select() on the pipe: one read can bring several lines into
        # the file's buffer, and select() then waits for bytes that were already read
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        line = self._line(self.startup_s)
        if line != f"ready {self.port}":
            err = self.stop()
            raise RuntimeError(f"{self.argv[0]} did not start ({line!r}): {err[-2000:]}")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("@@ "):  # a protocol line, not the server's own logging
                self._lines.put(line[3:].strip())
        self._lines.put(None)

    def _line(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return ""
        if line is None:
            self._lines.put(None)  # the server ended: every later read says so at once
            return ""
        return line

    def send(self, line: str, timeout: float = 10.0) -> str:
        """One command; returns the server's one-line answer."""
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self._line(timeout)

    def stop(self) -> str:
        """SIGTERM, wait; returns what it wrote on stderr."""
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        return err or ""


def node_opcua(port: int, pki: Path, extra_namespaces: int = 0) -> ServerProcess:
    if not (NODE_MODULES / "node-opcua-server").is_dir():
        raise RuntimeError(f"node-opcua is not installed in {NODE_MODULES}: {SETUP_HINT}")
    return ServerProcess(["node", str(NODE_SERVER), str(port), str(pki),
                          str(extra_namespaces)], port)


def libmodbus(port: int) -> ServerProcess:
    if not MODBUS_BINARY.is_file() or (MODBUS_BINARY.stat().st_mtime
                                       < MODBUS_SOURCE.stat().st_mtime):
        raise RuntimeError(f"{MODBUS_BINARY} is missing or older than its source: {SETUP_HINT}")
    return ServerProcess([str(MODBUS_BINARY), str(port)], port, startup_s=10.0)
