"""Line leases on a real store: all-or-none acquisition, the refusal naming the holder,
renewal, takeover after expiry (and at once from a dead process on this host), release."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest

from core.clock import FrozenClock, utcnow
from core.config import LoadedConfig
from core.masterdata import load_master_data
from core.store import leases
from core.store.db import Store, open_store


@pytest.fixture
def store(db_url: str, loaded_config: LoadedConfig, frozen_clock: FrozenClock
          ) -> Iterator[Store]:
    """The plant's store on each engine (SQLite file, throwaway PostgreSQL database)."""
    st = open_store(db_url)
    load_master_data(st, loaded_config, frozen_clock)
    try:
        yield st
    finally:
        st.close()



def test_acquire_refuses_a_live_holder_and_names_it(store: Store) -> None:
    now = utcnow()
    assert leases.acquire(store, ["A", "B"], "pc1:1:aa", 30, now=now) == []
    with pytest.raises(leases.LeaseRefused) as e:
        leases.acquire(store, ["B", "C"], "pc2:2:bb", 30, now=now + timedelta(seconds=5))
    msg = str(e.value)
    assert "line B is owned by runtime pc1:1:aa" in msg and "stop it or wait until its " \
        "lease expires at" in msg
    # all or none: C was not taken either
    assert set(leases.holders(store)) == {"A", "B"}


def test_takeover_after_expiry_and_renewal_loss(store: Store) -> None:
    now = utcnow()
    leases.acquire(store, ["A"], "pc1:1:aa", 10, now=now)
    assert leases.renew(store, ["A"], "pc1:1:aa", 10, now=now + timedelta(seconds=5)) == []
    with pytest.raises(leases.LeaseRefused):  # renewed: still live at +12 s
        leases.acquire(store, ["A"], "pc2:2:bb", 10, now=now + timedelta(seconds=12))
    taken = leases.acquire(store, ["A"], "pc2:2:bb", 10, now=now + timedelta(seconds=16))
    assert [h.owner for h in taken] == ["pc1:1:aa"]
    # the first owner's heartbeat now finds the line gone
    assert leases.renew(store, ["A"], "pc1:1:aa", 10, now=now + timedelta(seconds=17)) == ["A"]
    with store.begin() as conn:
        assert leases.held(conn, "A", "pc2:2:bb", now + timedelta(seconds=17))
        assert not leases.held(conn, "A", "pc1:1:aa", now + timedelta(seconds=17))
        assert not leases.held(conn, "A", "pc2:2:bb", now + timedelta(seconds=30))


def test_release_frees_at_once(store: Store) -> None:
    leases.acquire(store, ["C"], "pc1:1:aa", 30)
    leases.release(store, ["C"], "pc1:1:aa")
    assert leases.holders(store) == {}
    leases.acquire(store, ["C"], "pc2:2:bb", 30)
    assert leases.ownership(store)["C"]["live"] is True


def test_a_dead_process_on_this_host_frees_its_lines_at_once(store: Store,
                                                             monkeypatch) -> None:
    monkeypatch.delenv(leases.HOST_ENV, raising=False)
    code = ("import sys; from core.store.db import open_store; from core.store import leases; "
            "leases.acquire(open_store(sys.argv[1]), ['A'], leases.runtime_id(), 3600)")
    target = str(store.path) if store.path else store.engine.url.render_as_string(False)
    subprocess.run([sys.executable, "-c", code, target], check=True, timeout=60)
    h = leases.holders(store)["A"]
    assert h.expires_at > utcnow() + timedelta(minutes=50) and not h.live()
    taken = leases.acquire(store, ["A"], leases.runtime_id(), 30)
    assert [t.pid for t in taken] == [h.pid]
