"""Helpers shared by the legacy readers and writers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from horde_model_reference.catalog import RecordIssue
from horde_model_reference.errors import CatalogDecodeError
from horde_model_reference.logs import get_logger

_log = get_logger("horde_model_reference.legacy")


class RecordRejected(Exception):
    """Raised while converting one legacy record that cannot be converted; it is skipped."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def check_input(category: str, data: bytes, source: str | None) -> str:
    """The input as text; `CatalogDecodeError` when it is empty or not UTF-8."""
    if not data.strip():
        raise CatalogDecodeError(category, "the input is empty", source=source)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1]
        raise CatalogDecodeError(
            category, f"the input is not UTF-8 (byte {exc.start}: {bad!r})", source=source
        ) from None


def skipped(category: str, key: str, reason: str, field: str | None, source: str | None) -> RecordIssue:
    """Log a skipped record and return its issue."""
    _log.warning("record_skipped", category=category, model=key, reason=reason, field=field, source=source)
    return RecordIssue(category, key, reason, field)


def suspect(category: str, key: str, reason: str, source: str | None, **context: object) -> None:
    """Log a record that is kept although something about it is wrong."""
    _log.warning(
        "legacy_record_suspect", category=category, model=key, reason=reason, source=source, **context
    )


def freeze_values(mapping: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`mapping` with list values turned into tuples, as the immutable v2 records hold them."""
    if mapping is None:
        return None
    return {key: tuple(value) if isinstance(value, list) else value for key, value in mapping.items()}
