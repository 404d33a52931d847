"""Model names: what a name may be, and the text backend prefixes a text model is also known by.

A model name is `model` or `org/model` (text model ids), optionally behind a text backend prefix
(`koboldcpp/`, `aphrodite/`): workers report text models under those prefixed names, and the
catalog keys them without the prefix. Anything that could be read as a path is refused, by every
read that takes a name and by the write path.
"""

from __future__ import annotations

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import InvalidModelNameError

__all__ = ["MAX_NAME_LENGTH", "TEXT_BACKEND_PREFIXES", "name_candidates", "validate_model_name"]

TEXT_BACKEND_PREFIXES = ("aphrodite/", "koboldcpp/")
"""Prefixes of the names text workers report (`koboldcpp/org/model`), absent from catalog keys."""

MAX_NAME_LENGTH = 256


def validate_model_name(name: object) -> str:
    """Return `name` when it is a model name; raise `InvalidModelNameError` naming what is wrong.

    Refused: a leading `/`, `..`, an empty or `.` part, a second `/` (after a text backend prefix),
    a backslash, a NUL, and names over 256 characters.
    """
    if not isinstance(name, str) or not name:
        raise InvalidModelNameError(name, "must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidModelNameError(name, f"longer than {MAX_NAME_LENGTH} characters ({len(name)})")
    if "\x00" in name or "\\" in name:
        raise InvalidModelNameError(name, "contains a NUL or a backslash")
    if ".." in name:
        raise InvalidModelNameError(name, "contains '..'")
    parts = _without_backend_prefix(name).split("/")
    if any(part in ("", ".") for part in parts):
        raise InvalidModelNameError(name, "is absolute or has an empty or '.' part")
    if len(parts) > 2:
        raise InvalidModelNameError(name, "has more than one '/' (names are 'model' or 'org/model')")
    return name


def _without_backend_prefix(name: str) -> str:
    return next((name[len(p) :] for p in TEXT_BACKEND_PREFIXES if name.startswith(p)), name)


def name_candidates(category: str | MODEL_REFERENCE_CATEGORY, name: str) -> tuple[str, ...]:
    """The catalog keys `name` may stand for: itself, then for text the name without its backend prefix."""
    if category == MODEL_REFERENCE_CATEGORY.text_generation:
        bare = _without_backend_prefix(name)
        if bare is not name:
            return (name, bare)
    return (name,)
