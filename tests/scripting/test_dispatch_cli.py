"""`loopline dispatch ...`: a machine without context tags gets contextualized samples,
lots, counts and OEE by product after a start from the CLI; refusals are one line."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from console.cli import main
from core import audit
from core.clock import FrozenClock
from core.config import load_config
from core.dispatch import current_dispatch
from core.history import history
from core.ingest.pipeline import IngestPipeline
from core.plant_clock import publish_plant_clock
from core.reports import oee_report
from core.samples import Quality, Sample
from core.store.db import Store, exec_sql
from core.store.models import Operation

EQ = "A-LATHE1"


def dispatch_config(config_path: Path, tmp_path: Path) -> Path:
    """The default plant with line A's context from dispatch (its tags stay as they are)."""
    text = config_path.read_text(encoding="utf-8")
    marker = 'name = "Line A — Shafts"\narea = "machining"\ndriver = "opcua"\n'
    assert marker in text
    text = text.replace(marker, marker + 'context_source = "dispatch"\n')
    text = text.replace('master_data = "data/master.toml"',
                        f'master_data = "{config_path.parent / "data" / "master.toml"}"')
    p = tmp_path / "plant.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture
def dcli(config_path: Path, tmp_path: Path, store: Store,
         capsys: pytest.CaptureFixture[str]):
    cfg = dispatch_config(config_path, tmp_path)

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main([*argv, "--config", str(cfg), "--db", str(store.target)])
        out = capsys.readouterr()
        return rc, out.out, out.err
    run.config = cfg  # type: ignore[attr-defined]
    return run


def test_start_from_the_cli_contextualizes_a_machine_without_context_tags(
        dcli, store: Store, frozen_clock: FrozenClock, tmp_path: Path) -> None:
    publish_plant_clock(store, frozen_clock)  # as a runtime at plant time does
    rc, out, err = dcli("dispatch", "start", EQ, "PO-0001", "--user", "sam",
                        "--operator", "olga", "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert (d["operation_id"], d["status"], d["context_source"]) == (
        "PO-0001-10", "running", "dispatch")
    loaded = load_config(dcli.config, db=str(store.target))
    # a machine that publishes no order/lot/recipe/batch/operator tags at all
    loaded.tags = [t for t in loaded.tags
                   if not (t.equipment_id == EQ and t.spec.kind == "context")]
    loaded.config.store.spill_dir = str(tmp_path / "spill")
    loaded.config.store.archive_dir = str(tmp_path / "history")
    t0 = frozen_clock.now()
    with store.session() as ses:
        op = ses.get(Operation, "PO-0001-10")
        assert op is not None and op.actual_start is not None
        assert abs((op.actual_start - t0).total_seconds()) < 60  # plant time, not wall time
    pipe = IngestPipeline(loaded, store, frozen_clock, flush_ms=20).start()
    try:
        def s(tag: str, sec: float, v: object) -> Sample:
            return Sample(f"{EQ}.{tag}", t0 + timedelta(seconds=sec), v, Quality.GOOD)
        pipe.handle([s("state", 0, 1), s("good_count", 0, 1000), s("vibration_rms", 1, 2.0)])
        pipe.handle([s("good_count", 400, 1010), s("scrap_count", 0, 3),
                     s("scrap_count", 400, 4), s("vibration_rms", 401, 2.1)])
        assert pipe.writer.drain(30)
        rep = pipe.maintain(archive=False)
        assert rep.errors == []
    finally:
        pipe.close()
    with store.begin() as conn:
        counts = exec_sql(conn,
            "SELECT order_id, lot_id, operation_id, sum(good), sum(scrap) FROM production_count"
            " WHERE equipment_id = ? GROUP BY 1, 2, 3", (EQ,)).fetchall()
    stamped = history(store, None, [f"{EQ}.vibration_rms"], datetime(2000, 1, 1, tzinfo=UTC),
                      datetime(2100, 1, 1, tzinfo=UTC)).select(
        "order_id", "lot_id", "recipe_id", "operator_id").rows()
    assert stamped == [("PO-0001", d["lot_id"], "R-SH20", "olga")] * 2
    assert [tuple(r) for r in counts] == [("PO-0001", d["lot_id"], "PO-0001-10", 10, 1)]
    oee = {o.key: o for o in oee_report(store, "product", t0, t0 + timedelta(hours=1))}
    assert oee["P-SH20"].good == 10 and oee["P-SH20"].performance > 0
    # pause, resume, complete from the CLI; each audited
    assert dcli("dispatch", "pause", EQ, "--user", "olga", "--reason", "tool")[0] == 0
    rc, out, _ = dcli("dispatch", "list")
    assert rc == 0 and "paused" in out and "PO-0001-10" in out
    assert dcli("dispatch", "resume", EQ, "--user", "olga")[0] == 0
    rc, out, _ = dcli("dispatch", "complete", EQ, "--user", "olga")
    assert rc == 0 and "complete on A-LATHE1" in out
    assert current_dispatch(store) == {}
    acts = [r.action for r in audit.recent(store.engine, 100) if r.action.startswith("dispatch")]
    assert sorted(acts) == sorted(["dispatch.start", "dispatch.pause", "dispatch.resume",
                                   "dispatch.complete"])
    assert audit.verify(store.engine).ok


def test_cli_refusals_are_one_line(dcli) -> None:
    rc, _, err = dcli("dispatch", "start", EQ, "PO-0003", "--user", "sam")
    assert rc == 1 and "has no operation on A-LATHE1" in err and "Traceback" not in err
    rc, _, err = dcli("dispatch", "start", EQ, "PO-0001", "--user", "maya")
    assert rc == 1 and "may not dispatch" in err
    rc, _, err = dcli("dispatch", "pause", EQ, "--user", "sam")
    assert rc == 1 and "nothing is dispatched" in err
    rc, _, err = dcli("dispatch", "start", EQ, "PO-0001", "--user", "nobody")
    assert rc == 1 and "unknown user" in err
