"""The short version of ``python -m bench chaos``: each way of breaking loopline, a few
trials, against the real runtime, twin, store and CLI on loopback. The full campaign
(20 kills, 20 restarts, 200 fuzzed files...) is the benchmark; its figures are in
docs/operations.md, "What loopline guarantees"."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Row, device, fuzz, kills, render, store_faults, tamper

REPO = Path(__file__).resolve().parents[2]
SEED = 7


def ok(row: Row) -> None:
    assert row.trials > 0, render([row])
    assert row.failures == 0 and row.data_lost == 0 and row.doubled == 0, render([row])


def test_kills_during_start_up_and_running_leave_no_orphan(tmp_path: Path) -> None:
    ok(kills.runtime_kills(tmp_path, SEED, 2, max_at_s=8.0))  # the first within the twin's start


def test_twin_restart_resumes_and_flags_its_clock(tmp_path: Path) -> None:
    row = kills.server_restarts(tmp_path, SEED, 1)
    # resumption time is measured, not asserted (the drivers' backoff decides it)
    assert row.trials == 1 and row.data_lost == 0, render([row])
    assert "clock-jump alarms 1" in row.note, render([row])
    assert not [p for p in row.problems if "reconnected" not in p], render([row])


def test_locked_store_loses_nothing(tmp_path: Path) -> None:
    ok(store_faults.locked_store(tmp_path, SEED, [5.0]))


def test_full_disk_loses_nothing(tmp_path: Path) -> None:
    row = store_faults.disk_full(tmp_path, SEED, [3.0])
    if row.note.startswith("skipped"):
        pytest.skip(row.note)
    ok(row)


def test_bad_device_values_are_kept_with_their_quality(tmp_path: Path) -> None:
    ok(device.bad_device(tmp_path, SEED))


def test_fuzzed_configs_and_master_data(tmp_path: Path) -> None:
    ok(fuzz.configs(tmp_path, SEED, 40))
    ok(fuzz.master_data(tmp_path, SEED, 40))


def test_malformed_command_lines(tmp_path: Path) -> None:
    ok(fuzz.cli_invocations(tmp_path, SEED, 60, env_cases=4))


def test_every_tampering_is_found(tmp_path: Path) -> None:
    ok(tamper.run(tmp_path, REPO / "config.toml", SEED, batch=True))
