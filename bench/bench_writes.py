"""writes: what one proposal costs the write queue with 10 and with 2,000 changes pending (issue 16).

The proposal's storage work as `WriteService` does it, in this process: one queue transaction
(the two pending bounds counted, a new id, the change's row written and committed with fsync)
and its audit event appended (fsync). The queue is pre-filled with 10, then 2,000 pending
changes of a ~1 KB record. The figure is the median of 200 proposals; the ratio is the cost at 10
over the cost at 2,000, so 1.0 means a proposal does not get dearer as the queue grows (goal:
at least 0.5). The queue of earlier versions rewrote one JSON document per change: the issue
measured 17 ms at the start and 65 ms at 2,000 pending.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import msgspec

from _common import Context, Row, log
from horde_model_reference.writes.audit import AuditTrail
from horde_model_reference.writes.contracts import AuditAction, AuditEvent, Change, ChangeStatus, Operation
from horde_model_reference.writes.queue import ChangeFilter, ChangeQueue, QueueState

GOAL = 0.5
_PENDING = frozenset({ChangeStatus.pending})
_RECORD = msgspec.Raw(msgspec.json.encode({"name": "m", "description": "d" * 1000, "nsfw": False}))


def _propose(queue: ChangeQueue, trail: AuditTrail, actor: str) -> None:
    def add(state: QueueState) -> Change:
        state.count(ChangeFilter(statuses=_PENDING))
        state.count(ChangeFilter(statuses=_PENDING, requester=actor))
        change_id = state.new_change_id()
        now = time.time()
        return state.put(
            Change(
                change_id=change_id,
                category="image_generation",
                name=f"model {change_id}",
                operation=Operation.create,
                status=ChangeStatus.pending,
                record=_RECORD,
                requested_by=actor,
                requested_at=now,
                request_id="bench",
                updated_at=now,
            )
        )

    change = queue.transact_sync(add)
    event = AuditEvent(
        event_id=0,
        time=0.0,
        action=AuditAction.proposed,
        category=change.category,
        name=change.name,
        actor=actor,
        change_id=change.change_id,
        after=_RECORD,
    )
    trail._append_sync([event])


def _median_ns(pending: int, samples: int) -> float:
    with tempfile.TemporaryDirectory(prefix="hmr-bench-writes-") as tmp:
        queue, trail = ChangeQueue(Path(tmp)), AuditTrail(Path(tmp) / "audit")
        for i in range(pending):
            _propose(queue, trail, f"key:filler{i % 50}")
        times = []
        for _ in range(samples):
            started = time.perf_counter_ns()
            _propose(queue, trail, "key:bench")
            times.append(time.perf_counter_ns() - started)
        queue.close()
        return statistics.median(times)


def run(ctx: Context) -> list[Row]:
    samples = 20 if ctx.quick else 200
    log("writes: propose at 10 pending")
    small = _median_ns(10, samples)
    log("writes: propose at 2,000 pending")
    large = _median_ns(2000, samples)
    return [
        Row(
            name="propose at 2,000 pending (baseline: at 10 pending)",
            ours=large,
            baseline=small,
            unit="ns",
            goal=GOAL,
            note=f"{small / 1e6:.2f} ms at 10, {large / 1e6:.2f} ms at 2,000 (median of {samples})",
            details={"samples": samples, "at_10_ns": small, "at_2000_ns": large},
        )
    ]
