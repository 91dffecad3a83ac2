"""The MQTT benchmark runs small against a real mosquitto and its figures add up (no timing)."""

from __future__ import annotations

import json

import pytest

from bench.__main__ import available
from bench.__main__ import main as bench_main
from bench.bench_mqtt import plant_devices


def test_mqtt_bench_counts_every_value_on_both_paths(capsys: pytest.CaptureFixture[str]) -> None:
    assert available()["mqtt"] == "bench.bench_mqtt"
    assert bench_main(["mqtt", "--messages", "300", "--reps", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    _, devices = plant_devices()  # the default config's equipment tags, a device each
    assert r["tags"] == sum(len(ms) for ms in devices.values()) > 200
    assert r["devices"] == len(devices) == 12
    assert r["raw_missing"] == 0 and r["loopline_missing"] == 0 and r["seq_gaps"] == 0
    ours = r["runs"]["loopline"][0]
    assert ours["stored"] == ours["values"] == r["values_per_run"] - 2  # bdSeq, Rebirth
    assert r["raw_values_per_s"] > 0 and r["loopline_values_per_s"] > 0
    assert r["writer_dropped"] == 0
