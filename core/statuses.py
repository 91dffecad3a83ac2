"""The status words of the domain's rows, and the sets of them that queries share.

Defined once: a query for "open orders" in the plant view, the scheduler and the lists
must mean the same rows. The words themselves are the store's (see core.store.models).
"""

from __future__ import annotations

ORDER_OPEN = ("planned", "released", "in_progress")
OPERATION_STARTED = ("running", "paused")
OPERATION_PLANNABLE = ("planned", "released", "running")  # material can still be called

LOT_ALL = ("planned", "wip", "held", "released", "complete", "scrapped")
LOT_OPEN = ("planned", "wip", "held")
LOT_MOVABLE = ("planned", "wip")  # a lot that can still take parts or be re-routed

REC_ALL = ("proposed", "withheld", "approved", "executing", "executed", "failed",
           "rejected", "expired", "superseded", "undone")
REC_OPEN = ("proposed", "withheld")  # waiting for a decision
REC_IN_FLIGHT = ("approved", "executing")  # decided, not yet done
REC_PENDING = ("proposed", "approved", "executing")  # the queue's open rows
REC_DONE = ("executed", "failed", "rejected")  # shown in the queue as results

WO_ALL = ("open", "scheduled", "in_progress", "done", "cancelled")
WO_OPEN = ("open", "scheduled", "in_progress")
WO_NOT_STARTED = ("open", "scheduled")
