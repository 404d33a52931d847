"""Source ids: where a record comes from, and how a read selects sources.

The canonical data is the reserved source `"horde"`; third-party providers register under their
own ids. A selector names the sources of one read, in precedence order (the first source that
has a name wins it). Dependency-light on purpose: the query and provider layers both import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypeAlias

__all__ = [
    "ANY_SOURCE",
    "HORDE_SOURCE_ID",
    "RESERVED_SOURCE_IDS",
    "SourceOutcome",
    "SourceSelector",
    "normalize_source_selector",
    "validate_provider_id",
]

HORDE_SOURCE_ID = "horde"
"""The canonical source; the default of every read, so existing callers are unaffected."""

ANY_SOURCE = "any"
"""Selects the canonical source first, then every registered provider in registration order."""

RESERVED_SOURCE_IDS: frozenset[str] = frozenset({HORDE_SOURCE_ID, ANY_SOURCE})
"""Ids no provider may register under."""

SourceOutcome: TypeAlias = Literal["ok", "empty", "error"]
"""How one selected source fared in one read: `"ok"` (it gave records), `"empty"` (it had none
for the category, or does not serve it), `"error"` (it raised, timed out or returned data of the
wrong shape, and was skipped)."""

SourceSelector: TypeAlias = str | Sequence[str]
"""`"horde"`, `"any"`, one provider id, or an ordered sequence of ids (earlier ids win)."""


def normalize_source_selector(source: SourceSelector) -> list[str]:
    """`source` as an ordered list of ids without repeats (as upstream); an empty sequence means `["horde"]`.

    `"any"` is kept as is (the caller expands it, knowing the live providers). Raises `TypeError`
    for anything but a string or a sequence of strings, `ValueError` for an empty or blank id.
    """
    items: Sequence[object] = (source,) if isinstance(source, str) else source
    if not isinstance(items, Sequence):
        raise TypeError(f"source must be a string or a sequence of strings, got {type(source).__name__}")
    seen: dict[str, None] = {}
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"source ids must be strings, got {item!r} ({type(item).__name__})")
        if not item.strip():
            raise ValueError(f"source id {item!r} is empty")
        seen.setdefault(item, None)
    return list(seen) or [HORDE_SOURCE_ID]


def validate_provider_id(source_id: object) -> str:
    """Return `source_id` if a provider may register under it.

    Raises `TypeError` for a non-string and `ValueError` naming the id when it is empty, contains
    whitespace, or is reserved (`"horde"`, `"any"`).
    """
    if not isinstance(source_id, str):
        raise TypeError(f"provider source_id must be a string, got {source_id!r}")
    if not source_id:
        raise ValueError("provider source_id must be a non-empty string")
    if any(ch.isspace() for ch in source_id):
        raise ValueError(f"provider source_id {source_id!r} must not contain whitespace")
    if source_id in RESERVED_SOURCE_IDS:
        raise ValueError(
            f"provider source_id {source_id!r} is reserved; reserved ids: {', '.join(sorted(RESERVED_SOURCE_IDS))}"
        )
    return source_id
