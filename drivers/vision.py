"""Vision station results → the reading text of a ``kind = "vision"`` tag.

Each driver hands its raw form here: a JSON document (an OPC UA string node, an MQTT
``json:`` message) or Modbus registers; the ``VisionMap`` of the tag says where the
unit id or counter, the result, the defects and the image reference are. The output
is ``core.vision.encode_reading`` text, so the ingest path sees one shape whatever the
protocol. A shape that does not fit raises ``ValueError`` (the driver stores the
sample Bad with that message; nothing is guessed).
"""

from __future__ import annotations

import json
import math
from typing import Any

from core.config.schema import VisionMap
from core.vision import Defect, Reading, encode_reading
from drivers.mqtt_address import MISSING, extract, parse_path

HEADER = 3  # unit counter, result code, defect bitmask


def register_count(vm: VisionMap) -> int:
    return HEADER + len(vm.classes)


def from_registers(regs: list[int], vm: VisionMap) -> str:
    """[counter, result code (0 pass), bitmask (bit i = classes[i]), confidence × scale...]."""
    if len(regs) < register_count(vm):
        raise ValueError(f"vision layout needs {register_count(vm)} registers, got {len(regs)}")
    counter, code, mask = int(regs[0]), int(regs[1]), int(regs[2])
    if mask >> len(vm.classes):
        raise ValueError(f"defect bitmask {mask:#06x} names a class beyond the "
                         f"{len(vm.classes)} configured")
    defects = []
    for i, name in enumerate(vm.classes):
        if mask & (1 << i):
            conf = min(1.0, regs[HEADER + i] * vm.confidence_scale)
            if conf >= vm.min_confidence:
                defects.append(Defect(name, conf))
    return encode_reading(Reading(None, counter, code == 0, tuple(defects), None))


def _get(doc: Any, path: str | None) -> Any:
    if not path:
        return MISSING
    return extract(doc, parse_path(path))


def _passed(v: Any, vm: VisionMap) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int | float):
        return (str(int(v)) if v == int(v) else str(v)) in vm.pass_values
    if isinstance(v, str):
        return v.strip().lower() in {p.lower() for p in vm.pass_values}
    raise ValueError(f"result {v!r} is neither text, a number nor a bool")


def _defects(v: Any, vm: VisionMap) -> tuple[Defect, ...]:
    if v is MISSING or v is None:
        return ()
    if not isinstance(v, list):
        raise ValueError(f"defects {str(v)[:40]!r} is not a list")
    out = []
    for d in v:
        if isinstance(d, str):
            name, conf = d, 1.0
        elif isinstance(d, dict):
            name = d.get(vm.class_key)
            raw = d.get(vm.confidence_key, 1.0)
            if not isinstance(name, str) or not name:
                raise ValueError(f"a defect without a {vm.class_key!r} name: {str(d)[:60]}")
            if isinstance(raw, bool) or not isinstance(raw, int | float) \
                    or not math.isfinite(raw):
                raise ValueError(f"defect {name!r}: confidence {raw!r} is not a number")
            conf = float(raw)
            conf = conf / 100 if conf > 1 else conf  # a percentage
        else:
            raise ValueError(f"a defect {str(d)[:40]!r} is neither a name nor an object")
        if vm.classes and name not in vm.classes:
            raise ValueError(f"defect class {name!r} is not one of vision.classes")
        if conf >= vm.min_confidence:
            out.append(Defect(name, max(0.0, min(1.0, conf))))
    return tuple(out)


def from_json(doc: Any, vm: VisionMap) -> str:
    """A decoded JSON document (or its text) → reading text."""
    if isinstance(doc, str):
        if not doc.strip():
            doc = {}
        else:
            try:
                doc = json.loads(doc)
            except ValueError as e:
                raise ValueError(f"not JSON: {str(e)[:60]}") from None
    if not isinstance(doc, dict):
        raise ValueError("a vision result is a JSON object")
    if not doc:  # the station has published nothing yet
        return encode_reading(Reading(None, None, True))
    unit = _get(doc, vm.unit_path)
    counter = _get(doc, vm.counter_path)
    if counter is not MISSING and counter is not None and (
            isinstance(counter, bool) or not isinstance(counter, int)):
        raise ValueError(f"unit counter {counter!r} is not a whole number")
    result = _get(doc, vm.result_path)
    if result is MISSING:
        raise ValueError(f"no result at {vm.result_path!r}")
    image = _get(doc, vm.image_path)
    return encode_reading(Reading(
        None if unit is MISSING or unit is None else str(unit),
        None if counter is MISSING else counter, _passed(result, vm),
        _defects(_get(doc, vm.defects_path), vm),
        None if image is MISSING or image is None else str(image)))
