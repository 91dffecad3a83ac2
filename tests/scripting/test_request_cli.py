"""`loopline request setpoint|command`: a signed request becomes a recommendation with its
author; four-eyes refuses the requester's own approval, a second person's goes to the
outbox once; interlocks refuse at the request with one line."""

from __future__ import annotations

import json

from core import audit
from core.engine.executors import RecordingPlant, default_adapters
from core.engine.outbox import Executor
from core.store.db import Store, exec_sql

PINS = {"olga": "1111", "sam": "2222", "maya": "3333", "quinn": "4444", "tom": "5555",
        "ada": "9999"}


def test_setpoint_request_four_eyes_and_one_execution(cli, store: Store, now_clock) -> None:
    rc, out, err = cli("request", "setpoint", "A-LATHE1", "speed_sp", "1850", "--recipe",
                       "R-SH20", "--reason", "finer finish on the next lot", "--user", "quinn",
                       "--pin", PINS["quinn"], "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["decision_class"] == "setpoint" and r["four_eyes"] is True
    assert r["params"]["requested_by"] == "quinn" and r["params"]["value"] == 1850
    rid = r["recommendation_id"]
    rc, _, err = cli("approve", rid, "--user", "quinn", "--pin", PINS["quinn"])
    assert rc == 1 and "four-eyes" in err
    rc, out, err = cli("approve", rid, "--user", "sam", "--pin", PINS["sam"], "--json")
    assert rc == 0, err
    assert json.loads(out)["action_id"] is not None
    rc, _, err = cli("approve", rid, "--user", "ada", "--pin", PINS["ada"])
    assert rc == 1 and "already" in err
    with store.begin() as conn:
        acts = exec_sql(conn, "SELECT kind, params FROM action WHERE "
                                    "recommendation_id = ?", (rid,)).fetchall()
    assert len(acts) == 1 and acts[0][0] == "write_setpoint"
    assert json.loads(acts[0][1])["approved_by"] == "sam"
    assert audit.verify(store.engine).ok


def test_command_request_is_sent_once_after_approval(cli, store: Store, now_clock) -> None:
    rc, out, err = cli("request", "command", "A-LATHE1", "complete_wo", "--arg",
                       "fault=bearing", "--reason", "bearing changed on the night shift",
                       "--user", "maya", "--pin", PINS["maya"], "--json")
    assert rc == 0, err
    rid = json.loads(out)["recommendation_id"]
    rc, _, err = cli("approve", rid, "--user", "maya", "--pin", PINS["maya"])
    assert rc == 1 and "four-eyes" in err
    rc, _, err = cli("approve", rid, "--user", "tom", "--pin", PINS["tom"])
    assert rc == 0, err
    plant = RecordingPlant()
    ex = Executor(store, default_adapters(store, now_clock, plant), now_clock)
    ex.run_once()
    assert ex.run_once() == []
    [(eq, cmd, args, _key)] = plant.named("send_command")
    assert (eq, cmd, args) == ("A-LATHE1", "complete_wo", (("fault", "bearing"),))
    with store.begin() as conn:
        status = exec_sql(conn, "SELECT status FROM recommendation WHERE id = ?",
                                      (rid,)).scalar()
    assert status == "executed"


def test_request_refusals_are_one_line(cli) -> None:
    rc, _, err = cli("request", "setpoint", "A-LATHE1", "speed_sp", "9000", "--recipe",
                     "R-SH20", "--reason", "faster", "--user", "quinn", "--pin", PINS["quinn"])
    assert rc == 1 and "outside the recipe limits" in err and "Traceback" not in err
    rc, _, err = cli("request", "setpoint", "A-LATHE1", "bogus_sp", "1", "--reason", "x",
                     "--user", "quinn", "--pin", PINS["quinn"])
    assert rc == 1 and "has no setpoint 'bogus_sp'" in err and "speed_sp" in err
    rc, _, err = cli("request", "setpoint", "A-LATHE1", "speed_sp", "1800", "--reason", "x",
                     "--user", "olga", "--pin", PINS["olga"], "--recipe", "R-SH20")
    assert rc == 1 and "may not request" in err
    rc, _, err = cli("request", "setpoint", "A-LATHE1", "speed_sp", "1800", "--reason", "x",
                     "--user", "quinn", "--pin", "0000", "--recipe", "R-SH20")
    assert rc == 1 and "wrong PIN" in err
    rc, _, err = cli("request", "command", "A-LATHE1", "explode", "--reason", "x",
                     "--user", "maya", "--pin", PINS["maya"])
    assert rc == 1 and "unknown machine command" in err
    rc, _, err = cli("request", "command", "A-LATHE1", "complete_wo", "--reason", "x",
                     "--user", "maya", "--pin", PINS["maya"])
    assert rc == 1 and "needs fault" in err
