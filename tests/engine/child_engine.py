"""A loopline engine process the outbox tests kill with SIGKILL at a chosen moment.

usage: child_engine.py DB MODE DEVICE_DIR
  after_approval     approve a lot hold, say APPROVED, then wait to be killed
  in_hold_adapter    approve a lot hold, run the outbox; the plant command blocks
  in_device_adapter  approve a setpoint, run the outbox; the read-back blocks
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE.parent)]

from core.clock import FrozenClock  # noqa: E402
from core.config import load_config  # noqa: E402
from core.engine.executors import RecordingPlant  # noqa: E402
from core.store.db import open_store  # noqa: E402
from engine.helpers import (  # noqa: E402
    PINS,
    PLANT_START,
    FileDevice,
    make_engine,
    scrap_setpoint,
    spc,
)


class BlockingPlant(RecordingPlant):
    def hold_lot(self, lot_id: str, equipment_id: str | None, key: str) -> None:
        say("IN_ADAPTER")
        time.sleep(600)


def say(word: str) -> None:
    sys.stdout.write(word + "\n")
    sys.stdout.flush()


def main() -> None:
    db, mode, device_dir = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    store = open_store(db)
    clock = FrozenClock(PLANT_START)
    loaded = load_config(HERE.parent.parent / "config.toml")
    device = FileDevice(device_dir, block_after_write=(mode == "in_device_adapter"),
                        on_block=lambda: say("IN_ADAPTER"))
    eng = make_engine(store, loaded, clock, plant=BlockingPlant(), device=device)
    if mode == "in_device_adapter":
        rid = eng.on_detection(scrap_setpoint(PLANT_START, delta=-5)).recommendation_id
        eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
    else:
        rid = eng.on_detection(spc(PLANT_START)).recommendation_id
        eng.approve(rid, user_id="quinn", pin=PINS["quinn"])
    say(f"APPROVED {rid}")
    if mode == "after_approval":
        time.sleep(600)
    eng.run_outbox()
    say("FINISHED")  # never reached when the test kills us in time


if __name__ == "__main__":
    main()
