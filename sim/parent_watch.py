"""The twin dies with the process that started it, whatever moment that one dies at.

The launcher puts its own pid in ``$LOOPLINE_PARENT_PID`` before spawning the twin.
``watch_parent`` starts, before anything slow is imported, a daemon thread that compares
``os.getppid()`` with that pid: once the parent has died (SIGKILL during start-up
included) the twin has been re-parented and the pid differs, so it stops itself —
SIGTERM first (a clean stop of its servers), ``os._exit`` if that does not end it. A pid
read with ``os.getppid()`` after start-up would already be the re-parenting process's
when the launcher died during start-up, and the twin would serve on forever.
"""

from __future__ import annotations

import os
import signal
import threading
import time

ENV = "LOOPLINE_PARENT_PID"


def parent_gone(expected: int) -> bool:
    return os.getppid() != expected


def watch_parent(expected: int | None = None, *, interval_s: float = 0.2,
                 grace_s: float = 5.0) -> threading.Thread | None:
    """Watch ``expected`` (default: ``$LOOPLINE_PARENT_PID``); None when nothing to watch."""
    if expected is None:
        text = os.environ.get(ENV, "")
        if not text.isdigit():
            return None
        expected = int(text)

    def run() -> None:
        while not parent_gone(expected):
            time.sleep(interval_s)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(3)

    t = threading.Thread(target=run, name="parent-watch", daemon=True)
    t.start()
    return t
