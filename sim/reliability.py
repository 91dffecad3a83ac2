"""How long the twin's machines stay down: repair times, spare-part waits, planned jobs.

The default (no file) is the twin's built-in figure: a failure takes 1.5–4 h to repair
and a maintenance work order stops the machine for 20 min. A scenario (``loopline eval
--scenario``) can give per-equipment-type figures in a ``[reliability]`` table — the
twin's ground truth, which the console never reads:

    [reliability]
    planned_job_h = [0.5, 1.0]          # a work order done before the failure
    [reliability.repair_h]              # breakdown repair, uniform in [lo, hi]
    lathe = [2.0, 6.0]
    [reliability.spare_part]            # a share of breakdowns wait for a part
    probability = 0.3
    wait_h = [4.0, 16.0]

All draws come from a stream seeded by (seed, equipment, "repair"), so the loop's
actions (which change how often the production stream draws) cannot change a repair.
"""

from __future__ import annotations

import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_REPAIR_H = (1.5, 4.0)
DEFAULT_PLANNED_H = (20 / 60, 20 / 60)


class ReliabilityError(Exception):
    """The scenario's reliability table is unusable; str() is the message."""


@dataclass(frozen=True)
class Reliability:
    repair_h: dict[str, tuple[float, float]] = field(default_factory=dict)
    default_repair_h: tuple[float, float] = DEFAULT_REPAIR_H
    planned_job_h: tuple[float, float] = DEFAULT_PLANNED_H
    spare_probability: float = 0.0
    spare_wait_h: tuple[float, float] = (0.0, 0.0)

    def repair_s(self, equipment_type: str, rng: random.Random) -> tuple[int, int]:
        """(repair seconds, of which spent waiting for a spare part)."""
        lo, hi = self.repair_h.get(equipment_type, self.default_repair_h)
        repair = rng.uniform(lo, hi) * 3600
        wait = 0.0
        if self.spare_probability > 0 and rng.random() < self.spare_probability:
            wait = rng.uniform(*self.spare_wait_h) * 3600
        return int(repair + wait), int(wait)

    def planned_s(self, rng: random.Random) -> int:
        return int(rng.uniform(*self.planned_job_h) * 3600)


def _pair(v: object, what: str) -> tuple[float, float]:
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float))
                                                           for x in v)):
        raise ReliabilityError(f"{what}: give [low, high] hours, e.g. [2.0, 6.0]")
    lo, hi = float(v[0]), float(v[1])
    if not 0 <= lo <= hi:
        raise ReliabilityError(f"{what}: need 0 <= low <= high, not [{lo:g}, {hi:g}]")
    return lo, hi


def parse_reliability(raw: dict) -> Reliability:
    known = {"repair_h", "default_repair_h", "planned_job_h", "spare_part", "source"}
    extra = set(raw) - known
    if extra:
        raise ReliabilityError(f"[reliability]: unknown key(s) {', '.join(sorted(extra))}")
    rep = raw.get("repair_h", {})
    if not isinstance(rep, dict):
        raise ReliabilityError("[reliability] repair_h: a table of type = [low, high]")
    spare = raw.get("spare_part", {})
    if not isinstance(spare, dict) or set(spare) - {"probability", "wait_h"}:
        raise ReliabilityError("[reliability.spare_part]: keys probability, wait_h")
    p = float(spare.get("probability", 0.0))
    if not 0.0 <= p <= 1.0:
        raise ReliabilityError(f"[reliability.spare_part] probability {p:g}: 0..1")
    return Reliability(
        repair_h={k: _pair(v, f"repair_h.{k}") for k, v in rep.items()},
        default_repair_h=_pair(raw.get("default_repair_h", list(DEFAULT_REPAIR_H)),
                               "default_repair_h"),
        planned_job_h=_pair(raw.get("planned_job_h", list(DEFAULT_PLANNED_H)),
                            "planned_job_h"),
        spare_probability=p,
        spare_wait_h=_pair(spare.get("wait_h", [0.0, 0.0]), "spare_part.wait_h"))


def load_reliability(path: str | Path) -> Reliability:
    """The ``[reliability]`` table of a scenario file (defaults when it has none)."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ReliabilityError(f"{p}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ReliabilityError(f"{p}: TOML syntax error: {e}") from None
    try:
        return parse_reliability(raw.get("reliability", {}))
    except ReliabilityError as e:
        raise ReliabilityError(f"{p}: {e}") from None
