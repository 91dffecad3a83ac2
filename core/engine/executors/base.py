"""What every outbox adapter shares: the action as an adapter sees it, errors, helpers.

Adapters must be idempotent by the action's idempotency key: the executor may run an
action a second time after a crash (it was left 'running'), and the adapter then finds
its own earlier effect (a Hold or WorkOrder row whose id derives from the key, a
marker row, a device already at the value) and reports done without repeating it.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol


class ActionFailed(Exception):
    """The action cannot succeed as asked (interlock, read-back mismatch, missing row)."""


class TransientError(Exception):
    """Worth another attempt (device unreachable, store busy)."""


@dataclass(frozen=True)
class ActionView:
    id: int
    kind: str
    params: dict[str, Any]
    idempotency_key: str
    attempts: int  # including this one
    recommendation_id: str | None

    @property
    def resumed(self) -> bool:
        return self.attempts > 1


class Adapter(Protocol):
    kinds: tuple[str, ...]

    def execute(self, action: ActionView) -> dict[str, Any]:
        """Do the action (or find it done); return a JSON-able result, raise ActionFailed."""
        ...


def key_id(prefix: str, key: str) -> str:
    """A short, stable row id derived from an idempotency key."""
    return f"{prefix}{hashlib.sha256(key.encode()).hexdigest()[:10].upper()}"


def resolve(value: Any, loop: asyncio.AbstractEventLoop | None = None,
            timeout_s: float = 10.0) -> Any:
    """Sync or async interfaces alike: await a coroutine on its own loop when given one."""
    if not inspect.isawaitable(value):
        return value
    if loop is not None and loop.is_running():
        fut = asyncio.run_coroutine_threadsafe(_wrap(value), loop)
        try:
            return fut.result(timeout_s)
        except FutureTimeout as e:
            fut.cancel()
            raise TransientError(f"no answer within {timeout_s:g} s") from e
    return asyncio.run(_wrap(value))


async def _wrap(aw: Any) -> Any:
    return await aw
