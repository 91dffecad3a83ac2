"""The values the campaign found accepted are refused, each with its file, line and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
TEXT = (REPO / "config.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize("old, new, key", [
    ("on_delay_s = 600", "on_delay_s = inf", "on_delay_s"),
    ("on_delay_s = 600", "on_delay_s = 1e999", "on_delay_s"),
    ("on_delay_s = 600", "on_delay_s = -5", "on_delay_s"),
    ("seed = 42", "seed = 18446744073709551616", "simulator.seed"),
    ("seed = 42", "seed = -1", "simulator.seed"),
    ("queue_size = 10", "queue_size = -3", "queue_size"),
    ("queue_size = 10", "queue_size = 18446744073709551616", "queue_size"),
    ("ideal_cycle_s = 40", "ideal_cycle_s = nan", "ideal_cycle_s"),
    ('type = "mill"', 'type = "spaceship"', "equipment[1].type"),
    ('name = "Riverside Components"', 'name = ""', "site.name"),
    ('path = "data/loopline.db"', 'path = " "', "store.path"),
    ('  id = "A-MILL1"', '  id = "A-LATHE1"', "equipment[1].id"),
])
def test_refused_with_line_and_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in TEXT, old
    text = TEXT.replace(old, new, 1)
    p = tmp_path / "config.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    first = str(e.value).splitlines()[0]
    m = re.match(rf"^{re.escape(str(p))}:(\d+): (\S+)", first)
    assert m and key in m.group(2), first
    assert text.splitlines()[int(m.group(1)) - 1].strip() == new.strip(), first
