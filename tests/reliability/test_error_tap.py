"""Errors logged anywhere in loopline while a runtime runs reach its count and events."""

from __future__ import annotations

import logging

from runtime.error_tap import COUNTED, ErrorTap


def test_logged_errors_are_counted_once_and_others_are_not() -> None:
    got: list[str] = []
    tap = ErrorTap(got.append).install()
    try:
        try:
            raise OSError("database is locked")
        except OSError:
            logging.getLogger("core.detect.loop").exception("alarm manager failed on %s", "k")
        logging.getLogger("core.x").warning("only a warning")
        logging.getLogger("asyncua.client").error("a library's own error")
        logging.getLogger("runtime.host").error("already counted", extra={COUNTED: True})
    finally:
        tap.remove()
    logging.getLogger("core.y").error("after the runtime stopped")
    assert got == ["core.detect.loop: alarm manager failed on k: OSError: database is locked"]
