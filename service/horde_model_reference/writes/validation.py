"""Checks on proposed changes: model names, payload size, the record itself, and record digests.

Model names for writes (stricter than reads, see docs/writes.md):

- never empty or padded with whitespace, never over 256 characters, no control characters, no
  backslash, no `..` anywhere, no look-alikes (`names.validate_model_name`: NFKC, format
  characters, slash look-alikes, mixed Latin/Greek/Cyrillic letters);
- never starting with a text backend prefix (`koboldcpp/`, `aphrodite/`, any case): workers'
  prefixed names are looked up without it, so such a record would shadow the real one;
- `/` only in text_generation ids, exactly once, between two non-empty parts (`org/model`);
  in other categories a name with `/` may only be updated or deleted when a record of that exact
  name already exists (clip's `ViT-L/14`), never created.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import msgspec

from horde_model_reference.catalog import decode_record
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import InvalidModelNameError, RecordDecodeError
from horde_model_reference.names import MAX_NAME_LENGTH, backend_prefix_of, validate_model_name
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.writes.contracts import Operation
from horde_model_reference.writes.errors import InvalidRequestError, PayloadTooLargeError

__all__ = [
    "MAX_NAME_LENGTH",
    "MAX_TEXT_LENGTH",
    "TOO_DEEP",
    "compact",
    "raw_record_digest",
    "record_digest",
    "validate_record",
    "validate_write_name",
]

TOO_DEEP = "JSON nested too deeply"
"""The refusal of a JSON body nested deeper than msgspec decodes (about 1,000 levels)."""

MAX_TEXT_LENGTH = 4096
"""Bound on notes, reasons and batch titles."""

_ENCODER = msgspec.json.Encoder()


def validate_write_name(category: MODEL_REFERENCE_CATEGORY, name: object, *, exists: bool) -> str:
    """Return `name` when it may be written in `category`; raise `InvalidModelNameError` otherwise."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidModelNameError(name, "must be a non-empty string")
    if name != name.strip():
        raise InvalidModelNameError(name, "must not start or end with whitespace")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidModelNameError(name, f"longer than {MAX_NAME_LENGTH} characters ({len(name)})")
    if any(ord(char) < 32 or ord(char) == 127 for char in name):
        raise InvalidModelNameError(name, "contains a control character")
    if "\\" in name:
        raise InvalidModelNameError(name, "contains a backslash")
    if ".." in name:
        raise InvalidModelNameError(name, "contains '..'")
    prefix = backend_prefix_of(name)
    if prefix is not None and not exists:
        raise InvalidModelNameError(
            name, f"starts with the text backend prefix {prefix!r}: catalog names are kept without it"
        )
    if "/" in name:
        if category is MODEL_REFERENCE_CATEGORY.text_generation:
            org, _, model = name.partition("/")
            if not org or not model or "/" in model:
                raise InvalidModelNameError(name, "a text model id has exactly one '/' between two parts")
        elif not exists:
            raise InvalidModelNameError(
                name, f"contains '/' (only text_generation ids may, not {category.value})"
            )
    return validate_model_name(name)


def compact(raw: bytes) -> bytes:
    """JSON bytes without insignificant whitespace (one line)."""
    return msgspec.json.format(raw, indent=-1)


def record_digest(record: GenericModelRecord) -> str:
    """The digest of a record: sha256 (hex) of its canonical JSON (`msgspec.json.encode(record)`)."""
    return hashlib.sha256(_ENCODER.encode(record)).hexdigest()


def raw_record_digest(category: MODEL_REFERENCE_CATEGORY, raw: bytes) -> str:
    """`record_digest` of a record given as JSON (the digest of its compact bytes when it cannot be decoded)."""
    try:
        return record_digest(decode_record(category, bytes(raw)))
    except RecordDecodeError:
        return hashlib.sha256(compact(bytes(raw))).hexdigest()


def _as_bytes(record: Any) -> bytes:
    if isinstance(record, msgspec.Raw):
        return bytes(record)
    if isinstance(record, bytes | bytearray | memoryview):
        return bytes(record)
    if isinstance(record, GenericModelRecord | Mapping):
        return _ENCODER.encode(record)
    raise InvalidRequestError(
        "record", type(record).__name__, "expected a JSON object, a mapping or a record"
    )


def validate_record(
    category: MODEL_REFERENCE_CATEGORY,
    name: str,
    operation: Operation,
    record: Any,
    *,
    max_bytes: int,
    existing_name: str | None = None,
) -> GenericModelRecord | None:
    """Decode and check the record of a proposed change; None for a delete.

    Raises `InvalidRequestError` (a record missing, or given to a delete), `PayloadTooLargeError`,
    or `RecordDecodeError` (not a valid record of the category: wrong type, a field missing or of
    the wrong type, another category's `record_type`, or a `name` field that differs from the name).
    """
    if operation is Operation.delete:
        if record is not None:
            raise InvalidRequestError("record", "...", "a delete takes no record")
        return None
    if record is None:
        raise InvalidRequestError("record", None, f"a {operation.value} needs the record")
    data = _as_bytes(record)
    if len(data) > max_bytes:
        raise PayloadTooLargeError(len(data), max_bytes)
    try:
        decoded = decode_record(category, data)
    except RecordDecodeError as exc:  # decode_record does not know the name: say which record
        raise RecordDecodeError(category.value, name, exc.reason, field=exc.field) from None
    except RecursionError:
        raise InvalidRequestError("record", "...", TOO_DEEP) from None
    if decoded.record_type not in ("", category.value):
        raise RecordDecodeError(
            category.value,
            name,
            f"record_type {decoded.record_type!r} is not {category.value!r}",
            field="record_type",
        )
    if decoded.name != name and decoded.name != existing_name:
        raise RecordDecodeError(
            category.value, name, f"the record's name {decoded.name!r} differs from {name!r}", field="name"
        )
    return decoded
