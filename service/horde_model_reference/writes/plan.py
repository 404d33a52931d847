"""Planning an apply: the new catalog of each category, checked for conflicts, with stamped records.

Pure functions: nothing here touches the disk, the queue or the bus. Changes are applied in id
order on raw records (`dict[str, msgspec.Raw]`), so records the changes do not touch keep their
exact JSON, and a second change of the same record in one apply sees the first one's result (two
updates based on the same digest conflict instead of both succeeding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from horde_model_reference.catalog import decode_record
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.errors import ConflictError, RecordDecodeError
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.writes.contracts import Change, FieldChange, Operation, raw_or_none
from horde_model_reference.writes.validation import compact, raw_record_digest, record_digest

__all__ = ["CategoryPlan", "PlannedChange", "field_delta", "plan_apply", "stamp_metadata"]

_ENCODER = msgspec.json.Encoder()


class PlannedChange(msgspec.Struct, frozen=True, kw_only=True):
    """One change as it will be written: the record before and after (compact JSON), its new digest."""

    change: Change
    before: msgspec.Raw | None
    after: msgspec.Raw | None
    result_digest: str | None


class CategoryPlan(msgspec.Struct, kw_only=True):
    """The records a category will hold after the apply, and the changes that make them."""

    category: MODEL_REFERENCE_CATEGORY
    records: dict[str, msgspec.Raw]
    planned: list[PlannedChange]


def stamp_metadata(
    record: GenericModelRecord, previous: GenericModelRecord | None, *, actor: str, now: int
) -> GenericModelRecord:
    """`record` with created_* kept from `previous` (or set now) and updated_* set to now and `actor`."""
    old = previous.metadata if previous is not None else None
    metadata = msgspec.structs.replace(
        record.metadata,
        created_at=old.created_at if old is not None and old.created_at is not None else now,
        created_by=old.created_by if old is not None and old.created_by is not None else actor,
        updated_at=now,
        updated_by=actor,
    )
    return msgspec.structs.replace(record, metadata=metadata)


def field_delta(before: bytes, after: bytes) -> dict[str, FieldChange]:
    """The top-level fields whose values differ between two JSON records."""
    old: dict[str, Any] = msgspec.json.decode(before)
    new: dict[str, Any] = msgspec.json.decode(after)
    return {
        key: FieldChange(old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    }


def _base_label(change: Change) -> str:
    digest = f"record digest {change.base_digest}"
    return f"revision {change.base_revision} ({digest})" if change.base_revision is not None else digest


def _previous(category: MODEL_REFERENCE_CATEGORY, raw: msgspec.Raw | None) -> GenericModelRecord | None:
    if raw is None:
        return None
    try:
        return decode_record(category, bytes(raw))
    except RecordDecodeError:
        return None


def _plan_one(
    category: MODEL_REFERENCE_CATEGORY,
    records: dict[str, msgspec.Raw],
    change: Change,
    *,
    actor: str,
    now: int,
) -> PlannedChange:
    name = change.name
    current = records.get(name)
    before = msgspec.Raw(compact(bytes(current))) if current is not None else None
    if change.operation is Operation.create:
        if current is not None:
            actual = f"record digest {raw_record_digest(category, bytes(current))}"
            raise ConflictError(category.value, name, "no record (create)", actual)
    else:
        if current is None:
            raise ConflictError(category.value, name, _base_label(change), "no record")
        actual_digest = raw_record_digest(category, bytes(current))
        if actual_digest != change.base_digest:
            raise ConflictError(category.value, name, _base_label(change), f"record digest {actual_digest}")
    if change.operation is Operation.delete:
        del records[name]
        return PlannedChange(change=change, before=before, after=None, result_digest=None)
    queued = raw_or_none(change.record)
    if queued is None:
        raise RecordDecodeError(category.value, name, "the queued change has no record")
    proposed = decode_record(category, bytes(queued))
    stamped = stamp_metadata(proposed, _previous(category, current), actor=actor, now=now)
    after = msgspec.Raw(_ENCODER.encode(stamped))
    records[name] = after
    return PlannedChange(change=change, before=before, after=after, result_digest=record_digest(stamped))


def plan_apply(
    changes: Sequence[Change],
    catalogs: Mapping[MODEL_REFERENCE_CATEGORY, Mapping[str, msgspec.Raw]],
    *,
    actor: str,
    now: float,
) -> dict[MODEL_REFERENCE_CATEGORY, CategoryPlan]:
    """The plan of each category touched by `changes`; raises `ConflictError` on the first conflict."""
    plans: dict[MODEL_REFERENCE_CATEGORY, CategoryPlan] = {}
    for change in sorted(changes, key=lambda c: c.change_id):
        category = parse_category(change.category)
        plan = plans.get(category)
        if plan is None:
            plan = plans[category] = CategoryPlan(
                category=category, records=dict(catalogs.get(category, {})), planned=[]
            )
        plan.planned.append(_plan_one(category, plan.records, change, actor=actor, now=int(now)))
    return plans
