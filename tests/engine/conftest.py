"""Engine tests: every test that used a store ends with the audit chain verified."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core import audit


@pytest.fixture(autouse=True)
def _audit_chain_holds(request: pytest.FixtureRequest) -> Iterator[None]:
    st = request.getfixturevalue("store") if "store" in request.fixturenames else None
    yield
    if st is not None:  # the engine reconnects after the store fixture disposed it
        res = audit.verify(st.engine)
        assert res.ok, res.message()
