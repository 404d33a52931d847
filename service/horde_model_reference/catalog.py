"""Decoding and encoding whole v2 catalogs without ever losing a category to one bad record.

`decode_catalog` tries the whole catalog in one msgspec pass (the fast path). Only when that
fails does it decode record by record, skipping and reporting each record that cannot be decoded
(category, key, the decoder's message), so the rest of the category still loads. In strict mode
the first bad record raises `RecordDecodeError` naming the record and the field.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from functools import cache
from typing import Any

import msgspec

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, canonical_categories, parse_category
from horde_model_reference.errors import CatalogDecodeError, RecordDecodeError
from horde_model_reference.logs import get_logger
from horde_model_reference.names import backend_prefix_of
from horde_model_reference.records import GenericModelRecord, record_type_for
from horde_model_reference.registries import BASELINES, CONTROLNET_STYLES, MODEL_STYLES

__all__ = [
    "DecodedCatalog",
    "RecordIssue",
    "catalog_digest",
    "decode_catalog",
    "decode_record",
    "encode_catalog",
    "validate_catalog_bytes",
]

_log = get_logger(__name__)
_FIELD_IN_PATH = re.compile(r"at `\$(?:\[[^\]]*\])?\.?([A-Za-z_][\w.]*)?")


class RecordIssue(msgspec.Struct, frozen=True):
    """A record that was skipped while decoding a catalog, and why."""

    category: str
    name: str
    reason: str
    field: str | None = None


class DecodedCatalog(msgspec.Struct, frozen=True):
    """The records of one category keyed by catalog key, and the records that were skipped."""

    category: MODEL_REFERENCE_CATEGORY
    records: dict[str, GenericModelRecord]
    issues: tuple[RecordIssue, ...] = ()


@cache
def _catalog_decoder(record_type: type[GenericModelRecord]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(dict[str, record_type])  # type: ignore[valid-type]


@cache
def _record_decoder(record_type: type[GenericModelRecord]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(record_type)


_RAW_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ENCODER = msgspec.json.Encoder()


def _build_canonical_decoders() -> None:
    """Build the catalog decoders of every canonical category's record type now.

    msgspec compiles a type's decoding plan when the first decoder for it is built (about 0.6 ms
    for all record types here, mostly evaluating annotations). Built at import, that cost sits
    where pydantic puts its validators, not on each process's first load.
    """
    for category in canonical_categories():
        _catalog_decoder(record_type_for(category))


_build_canonical_decoders()


def _warn_unknown(registry: Any, records: dict[str, GenericModelRecord], field: str, category: str) -> None:
    pending = registry.pending()
    if not pending:
        return
    for key, record in records.items():
        value = getattr(record, field)
        if value in pending:
            pending.discard(value)
            registry.warn_unknown(value, category=category, model=key)
            if not pending:
                return
    # Noted by a record that was then skipped, or outside any catalog: not this pass's to report.
    # A value forgotten here is noted again by the next decode that meets it, so none is lost.
    registry.drop_pending(pending)


def _check_image(records: dict[str, GenericModelRecord]) -> None:
    _warn_unknown(BASELINES, records, "baseline", "image_generation")
    _warn_unknown(MODEL_STYLES, records, "style", "image_generation")


def _check_controlnet(records: dict[str, GenericModelRecord]) -> None:
    _warn_unknown(CONTROLNET_STYLES, records, "controlnet_style", "controlnet")


_KNOWN_VALUE_CHECKS = {
    MODEL_REFERENCE_CATEGORY.image_generation: _check_image,
    MODEL_REFERENCE_CATEGORY.controlnet: _check_controlnet,
}
"""Per category, a pass that logs (once per value) baselines and styles this version does not know.

The open enums of `registries` note every value they decode without listing it, so the pass
costs nothing unless such a value was decoded and not yet reported."""


def _checked(category: MODEL_REFERENCE_CATEGORY, records: dict[str, GenericModelRecord]) -> None:
    check = _KNOWN_VALUE_CHECKS.get(category)
    if check is not None:
        check(records)


def _field_of(message: str) -> str | None:
    match = _FIELD_IN_PATH.search(message)
    return match.group(1) if match and match.group(1) else None


def _check_bytes(category: str, data: bytes, source: str | None) -> None:
    if not data.strip():
        raise CatalogDecodeError(category, "the input is empty", source=source)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CatalogDecodeError(
            category,
            f"the input is not UTF-8 (byte {exc.start}: {data[exc.start : exc.start + 1]!r})",
            source=source,
        ) from None


def _top_level_error(category: str, data: bytes, exc: Exception, source: str | None) -> CatalogDecodeError:
    try:
        value = msgspec.json.decode(data)
    except msgspec.DecodeError as inner:
        return CatalogDecodeError(category, f"malformed JSON: {inner}", source=source)
    kind = type(value).__name__
    return CatalogDecodeError(
        category, f"expected a JSON object mapping model names to records, got a JSON {kind}", source=source
    )


def decode_catalog(
    category: str | MODEL_REFERENCE_CATEGORY,
    data: bytes,
    *,
    strict: bool = False,
    source: str | None = None,
) -> DecodedCatalog:
    """Decode a category's v2 JSON bytes into records keyed by catalog key.

    Raises `CatalogDecodeError` when the input as a whole is unusable (empty, not UTF-8, malformed
    JSON, not an object). A bad record is skipped and reported in `issues` (or raises
    `RecordDecodeError` with `strict=True`).
    """
    cat = parse_category(category)
    record_type = record_type_for(cat)
    try:
        records: dict[str, GenericModelRecord] = _catalog_decoder(record_type).decode(data)
        prefixed = _without_prefixed_text_names(cat, records, strict, source)
        _checked(cat, records)
        return DecodedCatalog(cat, records, prefixed)
    except msgspec.ValidationError:
        pass
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        _check_bytes(cat.value, data, source)
        raise _top_level_error(cat.value, data, exc, source) from None

    try:
        raw = _RAW_DECODER.decode(data)
    except msgspec.ValidationError as exc:
        raise _top_level_error(cat.value, data, exc, source) from None
    decoder = _record_decoder(record_type)
    records = {}
    issues: list[RecordIssue] = []
    for key, raw_record in raw.items():
        try:
            records[key] = decoder.decode(raw_record)
        except msgspec.ValidationError as exc:
            reason = str(exc)
            issue = RecordIssue(cat.value, key, reason, _field_of(reason))
            if strict:
                raise RecordDecodeError(cat.value, key, reason, field=issue.field) from None
            _log.warning(
                "record_skipped",
                category=cat.value,
                model=key,
                reason=reason,
                field=issue.field,
                source=source,
            )
            issues.append(issue)
    issues.extend(_without_prefixed_text_names(cat, records, strict, source))
    _checked(cat, records)
    return DecodedCatalog(cat, records, tuple(issues))


def _without_prefixed_text_names(
    category: MODEL_REFERENCE_CATEGORY,
    records: dict[str, GenericModelRecord],
    strict: bool,
    source: str | None,
) -> tuple[RecordIssue, ...]:
    """Skip (and report) text records keyed with a backend prefix: `koboldcpp/x` must mean `x`."""
    if category is not MODEL_REFERENCE_CATEGORY.text_generation:
        return ()
    issues = []
    for key in [key for key in records if backend_prefix_of(key) is not None]:
        reason = f"a text model's name must not start with a backend prefix ({backend_prefix_of(key)!r})"
        if strict:
            raise RecordDecodeError(category.value, key, reason)
        _log.warning("record_skipped", category=category.value, model=key, reason=reason, source=source)
        del records[key]
        issues.append(RecordIssue(category.value, key, reason, None))
    return tuple(issues)


def validate_catalog_bytes(
    category: str | MODEL_REFERENCE_CATEGORY, data: bytes, *, source: str | None = None
) -> dict[str, msgspec.Raw]:
    """Check that `data` is a UTF-8 JSON object and return its records as raw JSON by key.

    Raises `CatalogDecodeError` otherwise. Cheap: records are not decoded.
    """
    cat = parse_category(category)
    try:
        raw: dict[str, msgspec.Raw] = _RAW_DECODER.decode(data)
        return raw
    except msgspec.ValidationError as exc:
        raise _top_level_error(cat.value, data, exc, source) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        _check_bytes(cat.value, data, source)
        raise _top_level_error(cat.value, data, exc, source) from None


def decode_record(
    category: str | MODEL_REFERENCE_CATEGORY, data: bytes | Mapping[str, Any]
) -> GenericModelRecord:
    """Decode and validate one record of `category` from JSON bytes or a plain mapping.

    Raises `RecordDecodeError` naming the record and the field on failure.
    """
    cat = parse_category(category)
    record_type = record_type_for(cat)
    name = "?"
    try:
        if isinstance(data, bytes | bytearray | memoryview):
            record: GenericModelRecord = _record_decoder(record_type).decode(data)
        else:
            name = str(data.get("name", "?"))
            record = msgspec.convert(data, record_type, from_attributes=False)
    except msgspec.ValidationError as exc:
        reason = str(exc)
        raise RecordDecodeError(cat.value, name, reason, field=_field_of(reason)) from None
    except msgspec.DecodeError as exc:
        raise RecordDecodeError(cat.value, name, f"malformed JSON: {exc}") from None
    _checked(cat, {record.name: record})
    return record


def encode_catalog(records: Mapping[str, GenericModelRecord], *, indent: int = 0) -> bytes:
    """Encode records (keyed by catalog key) as v2 JSON bytes; `indent` > 0 pretty-prints."""
    data = _ENCODER.encode(dict(records))
    return msgspec.json.format(data, indent=indent) if indent else data


def catalog_digest(data: bytes) -> str:
    """The digest of a catalog's canonical bytes (sha256, hex)."""
    return hashlib.sha256(data).hexdigest()
