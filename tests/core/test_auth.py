"""Auth: roles decide what a user may decide, PINs lock out after 5 misses, e-signatures."""

from __future__ import annotations

import pytest

from core import audit
from core.auth import Authenticator, AuthError, SigningSession, signature_hash
from core.clock import FrozenClock
from core.config import LoadedConfig
from core.store.db import Store


@pytest.fixture
def auth(store: Store, loaded_config: LoadedConfig, frozen_clock: FrozenClock) -> Authenticator:
    return Authenticator(store.engine, loaded_config.config.users, loaded_config.config.auth,
                         frozen_clock)


def _actions(store: Store) -> list[str]:
    return [r.action for r in reversed(audit.recent(store.engine, 100))]


def test_roles_decide_classes(auth: Authenticator) -> None:
    assert auth.may_decide("maya", "work_order")
    assert not auth.may_decide("maya", "lot_hold")
    assert auth.may_decide("quinn", "lot_hold")
    assert not auth.may_decide("olga", "setpoint")
    assert all(auth.may_decide("ada", c) for c in
               ("lot_hold", "lot_release", "work_order", "setpoint", "replan", "replenish"))
    with pytest.raises(AuthError, match="may not decide lot_hold; allowed: quality, admin"):
        auth.require("maya", "lot_hold")


def test_right_pin_and_wrong_pin(auth: Authenticator, store: Store) -> None:
    who = auth.authenticate("maya", "3333")
    assert who.name == "Maya Lindqvist" and who.roles == ("maintenance",)
    with pytest.raises(AuthError, match="4 attempt"):
        auth.authenticate("maya", "0000")
    with pytest.raises(AuthError, match="unknown user"):
        auth.authenticate("mallory", "1234")
    assert "auth.failed_pin" in _actions(store)


def test_lockout_after_five_failures_is_audited(auth: Authenticator, store: Store) -> None:
    for _ in range(4):
        with pytest.raises(AuthError, match="attempt"):
            auth.authenticate("sam", "9999")
    with pytest.raises(AuthError, match="locked out after 5"):
        auth.authenticate("sam", "9999")
    assert auth.is_locked("sam")
    # even the right PIN is refused now
    with pytest.raises(AuthError, match="locked out"):
        auth.authenticate("sam", "2222")
    acts = _actions(store)
    assert acts.count("auth.failed_pin") == 5
    assert "auth.locked_out" in acts and "auth.refused_locked" in acts
    # only an admin unlocks
    with pytest.raises(AuthError, match="not an admin"):
        auth.unlock("maya", "3333", "sam")
    auth.unlock("ada", "9999", "sam")
    assert not auth.is_locked("sam")
    assert auth.authenticate("sam", "2222").user_id == "sam"
    assert "auth.unlocked" in _actions(store)
    assert audit.verify(store.engine).ok


def test_success_resets_the_failure_count(auth: Authenticator) -> None:
    for _ in range(4):
        with pytest.raises(AuthError):
            auth.authenticate("quinn", "1")
    auth.authenticate("quinn", "4444")
    for _ in range(4):
        with pytest.raises(AuthError):
            auth.authenticate("quinn", "1")
    assert not auth.is_locked("quinn")


def test_signature_binds_name_time_meaning_and_record(auth: Authenticator,
                                                      frozen_clock: FrozenClock) -> None:
    rec = audit.record_hash({"id": "REC-1", "action": "hold lot L-00101"})
    sig = auth.sign("quinn", "4444", "approve: hold lot L-00101", rec)
    assert sig.printed_name == "Quinn Adeyemi"
    assert sig.signed_at == frozen_clock.now()
    assert sig.record_hash == rec
    assert sig.hash == signature_hash("quinn", sig.signed_at, sig.meaning, rec)
    other = audit.record_hash({"id": "REC-1", "action": "hold lot L-00102"})
    assert sig.hash != signature_hash("quinn", sig.signed_at, sig.meaning, other)


def test_signing_session_asks_pin_again_after_idle(auth: Authenticator,
                                                   frozen_clock: FrozenClock) -> None:
    s = SigningSession(auth)
    assert s.needs_pin()
    with pytest.raises(AuthError, match="sign in first"):
        s.sign("approve", "h0")
    s.sign_in("maya", "3333")
    assert not s.needs_pin()
    s.sign("approve WO", "h1")  # within the session: no PIN needed
    frozen_clock.advance(auth.settings.signature_idle_timeout_s + 1)
    assert s.needs_pin()
    with pytest.raises(AuthError, match="idle"):
        s.sign("approve WO", "h2")
    with pytest.raises(AuthError, match="wrong PIN"):
        s.sign("approve WO", "h2", pin="0000")
    sig = s.sign("approve WO", "h2", pin="3333")
    assert sig.user_id == "maya" and not s.needs_pin()
