"""Every error loopline's own code logs while a runtime runs is one of the runtime's errors.

Parts of the runtime catch what they must survive (the alarm manager under a locked
store, a publisher that failed) and log it; before this tap such an error reached
stderr as a traceback while the run summary said ``errors 0``. The tap is a logging
handler on the root logger for the runtime's lifetime: each ERROR record from
loopline's packages is counted and handed to the runtime, which lists it in its
summary and emits it as a ``runtime`` ``error`` event. The runtime's own ``_error``
marks its records (``extra={COUNTED: True}``) so they are not counted twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

COUNTED = "loopline_counted"
OWN = ("core", "runtime", "drivers", "ml", "console", "sim")


class ErrorTap(logging.Handler):
    def __init__(self, on_error: Callable[[str], None]) -> None:
        super().__init__(level=logging.ERROR)
        self.on_error = on_error
        self._inside = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, COUNTED, False) or record.name.split(".")[0] not in OWN:
            return
        if getattr(self._inside, "busy", False):  # an error while reporting one
            return
        self._inside.busy = True
        try:
            msg = record.getMessage().splitlines()[0] if record.msg else record.name
            if record.exc_info and record.exc_info[1] is not None:
                e = record.exc_info[1]
                msg = f"{msg}: {type(e).__name__}: {e}".splitlines()[0]
            self.on_error(f"{record.name}: {msg}")
        except Exception:  # never let reporting break the code that logged
            pass
        finally:
            self._inside.busy = False

    def install(self) -> ErrorTap:
        logging.getLogger().addHandler(self)
        return self

    def remove(self) -> None:
        logging.getLogger().removeHandler(self)
