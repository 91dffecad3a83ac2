"""Config loading: the default plant is valid, and each kind of bad file gets a clear message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from console.cli import main
from core.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "config.toml"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "plant.toml"
    p.write_text(text, encoding="utf-8")
    return p


def _mutate(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT.read_text(encoding="utf-8")
    assert old in text, f"fixture text {old!r} not in config.toml"
    return _write(tmp_path, text.replace(old, new, 1))


def _line_of(path: Path, needle: str) -> int:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return n
    raise AssertionError(needle)


def test_default_config_is_valid() -> None:
    cfg = load_config(DEFAULT)
    c = cfg.config
    assert len(c.lines) == 3
    assert sum(len(ln.equipment) for ln in c.lines) >= 12
    roles = {r for u in c.users for r in u.roles}
    assert roles == {"operator", "shift_lead", "maintenance", "quality", "admin"}
    # templates expand with per-equipment addresses, Modbus offsets from register_base
    t = cfg.tag("C-OVEN1.bearing_temp")
    assert t.spec.address == "hr:202" and t.driver_id == "modbus" and t.line_id == "C"
    assert cfg.tag("A-LATHE1.vibration_rms").spec.address == "ns=2;s=A.A-LATHE1.VibrationRMS"
    assert cfg.tag("B-MOLD1.pressure_sp").spec.writable


def test_relative_paths_resolve_against_config_folder(tmp_path: Path) -> None:
    p = _write(tmp_path, DEFAULT.read_text(encoding="utf-8"))
    cfg = load_config(p)
    assert cfg.db_path == (tmp_path / "data" / "loopline.db").resolve()
    assert cfg.master_data_path == (tmp_path / "data" / "master.toml").resolve()


def test_db_override(tmp_path: Path) -> None:
    cfg = load_config(DEFAULT, db=str(tmp_path / "x.db"))
    assert cfg.db_url == f"sqlite:///{(tmp_path / 'x.db').resolve()}"


def test_unknown_key_names_file_key_and_line(tmp_path: Path) -> None:
    p = _mutate(tmp_path, "flush_ms = 200", "flush_ms = 200\nflush_msec = 100")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert str(p) in msg
    assert "store.flush_msec" in msg and "unknown key" in msg
    assert f":{_line_of(p, 'flush_msec')}:" in msg


def test_wrong_type_says_expected_and_found(tmp_path: Path) -> None:
    p = _mutate(tmp_path, 'ideal_cycle_s = 45', 'ideal_cycle_s = "fast"')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert "lines[0].equipment[1].ideal_cycle_s" in msg
    assert "expected" in msg and "'fast'" in msg
    n = _line_of(p, 'ideal_cycle_s = "fast"')
    assert f":{n}:" in msg


def test_nested_unknown_key_in_array_of_tables(tmp_path: Path) -> None:
    p = _mutate(tmp_path, 'name = "Curing oven 1"', 'name = "Curing oven 1"\ncolour = "red"')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert "lines[2].equipment[1].colour" in msg
    assert f":{_line_of(p, 'colour')}:" in msg


def test_missing_section(tmp_path: Path) -> None:
    text = DEFAULT.read_text(encoding="utf-8")
    start = text.index("[site]")
    end = text.index("[[areas]]")
    p = _write(tmp_path, text[:start] + text[end:])
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert "missing required key 'site'" in str(ei.value)


def test_toml_syntax_error_has_line(tmp_path: Path) -> None:
    p = _mutate(tmp_path, "flush_ms = 200", "flush_ms = = 200")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert "TOML syntax error" in msg and f"line {_line_of(p, 'flush_ms = =')}" in msg


def test_bad_reference_and_password_without_encryption(tmp_path: Path) -> None:
    p = _mutate(tmp_path, 'driver = "modbus"', 'driver = "profibus"')
    with pytest.raises(ConfigError, match="unknown driver 'profibus'"):
        load_config(p)
    p = _mutate(tmp_path, "queue_size = 10", 'queue_size = 10\nusername = "u"\npassword = "p"')
    with pytest.raises(ConfigError, match="encrypted channel"):
        load_config(p)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config("/nonexistent/plant.toml")


def test_config_check_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(DEFAULT)]) == 0
    assert "ok" in capsys.readouterr().out
    bad = _mutate(tmp_path, "flush_ms = 200", "flush_ms = -5")
    assert main(["config", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "store.flush_ms" in err and "Traceback" not in err


def test_config_check_subprocess_no_traceback(tmp_path: Path) -> None:
    bad = _mutate(tmp_path, "\n[simulator]\n", "\n[simulatorr]\n")
    r = subprocess.run([sys.executable, "-m", "console.cli", "config", "check", str(bad)],
                       capture_output=True, text=True, cwd=ROOT, check=False)
    assert r.returncode == 1
    assert "simulatorr" in r.stderr and "Traceback" not in r.stderr


def test_schema_is_json_and_forbids_extras(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert "site" in schema["required"]


def test_default_plant_ideal_cycles_are_not_slower_than_its_recipes(loaded_config) -> None:  # type: ignore[no-untyped-def]
    """ISO 22400 performance = ideal time / run time: an ideal cycle slower than a recipe's
    routing cycle would report performance above 100 %."""
    import tomllib

    master = tomllib.loads(loaded_config.master_data_path.read_text())
    fastest: dict[str, float] = {}
    for r in master["recipes"]:
        for st in r["routing"]:
            for eq in st["equipment"]:
                fastest[eq] = min(fastest.get(eq, float("inf")), st["cycle_s"])
    for _, eq in loaded_config.equipment():
        assert eq.ideal_cycle_s <= fastest.get(eq.id, float("inf")), eq.id


def test_errors_inside_a_driver_name_the_driver_and_the_line(tmp_path: Path) -> None:
    p = _mutate(tmp_path, "publishing_interval_ms = 250",
                "publishing_interval_ms = 250\npublish_msec = 100")
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    msg = str(ei.value)
    assert "'drivers.opcua.publish_msec'" in msg
    assert f"plant.toml:{_line_of(p, 'publish_msec')}:" in msg
    p = _mutate(tmp_path, "port = 5020", 'port = "five"')
    with pytest.raises(ConfigError) as ei:
        load_config(p)
    assert "drivers.modbus.port" in str(ei.value) and "'five'" in str(ei.value)


def test_store_password_from_the_environment(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    url = 'url = "postgresql+psycopg://loopline_pc@db.plant.local:5432/loopline?sslmode=verify-full"'
    p = _mutate(tmp_path, "[store]\n", f'[store]\n{url}\npassword_env = "LOOPLINE_DB_PASSWORD"\n')
    monkeypatch.delenv("LOOPLINE_DB_PASSWORD", raising=False)
    with pytest.raises(ConfigError, match=r"LOOPLINE_DB_PASSWORD \(\[store\] password_env\) is "
                                          "not set"):
        load_config(p)
    monkeypatch.setenv("LOOPLINE_DB_PASSWORD", "s3cr:et@!")
    cfg = load_config(p)
    assert cfg.db_path is None
    assert cfg.db_url == ("postgresql+psycopg://loopline_pc:s3cr%3Aet%40%21@db.plant.local:5432/"
                          "loopline?sslmode=verify-full")
    from core.store.db import mask

    assert "s3cr" not in mask(cfg.db_url)
    both = _mutate(tmp_path, "[store]\n", '[store]\nurl = "postgresql://u:pw@h/db"\n'
                   'password_env = "LOOPLINE_DB_PASSWORD"\n')
    with pytest.raises(ConfigError, match="give one of them"):
        load_config(both)
