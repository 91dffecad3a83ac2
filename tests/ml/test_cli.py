"""CLI: `loopline ml cmapss` on a small slice, `models`, `models rollback`, `train`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from console.cli import main

DATA = Path(__file__).parent / "data" / "train_FD001_units1-15.txt"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    p = tmp_path / "config.toml"
    p.write_text(text.replace('models_dir = "data/models"', 'models_dir = "models"'),
                 encoding="utf-8")
    return p


def test_cmapss_on_a_slice_prints_rmse_and_phm08(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ml", "cmapss", "--train", str(DATA), "--trees", "80", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["train_engines"] == 12 and len(rep["holdout_engines"]) == 3
    primary = rep["evaluations"][0]
    assert primary["primary"] and "truncated" in primary["protocol"]
    assert math.isfinite(primary["rmse"]) and 0 < primary["rmse"] < 35
    assert primary["phm08_score"] >= 0
    assert main(["ml", "cmapss", "--train", str(DATA), "--trees", "30"]) == 0
    out = capsys.readouterr().out
    assert "RMSE" in out and "PHM08 score" in out and "held out 3 engines" in out


def test_cmapss_with_a_test_file_and_its_rul(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    lines = DATA.read_text().splitlines()
    test = [ln for ln in lines if ln.split()[0] in {"14", "15"}]
    test = [ln for ln in test if int(ln.split()[1]) <= 100]  # truncate at cycle 100
    (tmp_path / "test.txt").write_text("\n".join(test) + "\n")
    last = {u: max(int(ln.split()[1]) for ln in lines if ln.split()[0] == u)
            for u in ("14", "15")}
    (tmp_path / "rul.txt").write_text(f"{last['14'] - 100}\n{last['15'] - 100}\n")
    assert main(["ml", "cmapss", "--train", str(DATA), "--test", str(tmp_path / "test.txt"),
                 "--rul", str(tmp_path / "rul.txt"), "--trees", "30", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["evaluations"][0]["engines"] == 2


@pytest.mark.parametrize(("argv", "msg"), [
    (["--train", "/nonexistent/train.txt"], "no such file"),
    (["--train", str(DATA), "--test", str(DATA)], "--test and --rul go together"),
    (["--train", str(ROOT / "pyproject.toml")], "expected 26 columns"),
])
def test_cmapss_bad_input_is_a_clean_message(argv: list[str], msg: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ml", "cmapss", *argv]) == 1
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_train_without_history_says_so(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--config", str(cfg)]) == 1
    assert "no history" in capsys.readouterr().err
    assert main(["train", "nope", "--config", str(cfg)]) == 1
    assert "no [[ml.jobs]] named 'nope'" in capsys.readouterr().err


def test_train_list_and_rollback_through_the_cli(cfg: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--config", str(cfg)]) == 0
    assert "no trained models" in capsys.readouterr().out
    # Same plant (seed 3): a one-tree model, a real one (wins), a one-tree one (refused).
    for trees in ("1", "40", "1"):
        assert main(["train", "failure_risk", "--synthetic", "3", "--trees", trees,
                     "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "failure_risk: v1 champion (no champion yet)" in out
    assert "failure_risk: v2 champion (beats v1 on auc)" in out
    assert "failure_risk: v3 kept as challenger (does not beat v2 on auc)" in out
    assert main(["models", "--json", "--config", str(cfg)]) == 0
    recs = json.loads(capsys.readouterr().out)["versions"]
    assert [(r["version"], r["status"]) for r in recs] == [
        (1, "retired"), (2, "champion"), (3, "challenger")]
    assert main(["models", "--config", str(cfg)]) == 0
    assert "champion" in capsys.readouterr().out
    assert main(["models", "rollback", "failure_risk", "--config", str(cfg)]) == 0
    assert "v1 is champion again" in capsys.readouterr().out
    assert main(["models", "rollback", "failure_risk", "--config", str(cfg)]) == 1
    assert "nothing to roll back" in capsys.readouterr().err
    assert main(["models", "rollback", "nope", "--config", str(cfg)]) == 1
    assert "no model named 'nope'" in capsys.readouterr().err
