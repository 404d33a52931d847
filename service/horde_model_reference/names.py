"""Model names: what a name may be, and the text backend prefixes a text model is also known by.

A model name is `model` or `org/model` (text model ids), optionally behind a text backend prefix
(`koboldcpp/`, `aphrodite/`): workers report text models under those prefixed names, and the
catalog keys them without the prefix. Anything that could be read as a path is refused, by every
read that takes a name and by the write path, and so is anything that could pass for another
name (the look-alike rules below).

Look-alikes, refused everywhere (`validate_model_name`):

- a name that NFKC normalisation changes (fullwidth letters, ligatures, the micro sign, the
  no-break space, the one-dot leader, ...): the name a reader types is the NFKC form;
- control, format, private-use, surrogate and unassigned characters (U+0085, the zero-width
  space, bidi overrides, ...), line and paragraph separators, and every space but U+0020;
- outside ASCII, anything but letters, digits and combining marks: no look-alikes of `/`, `\\`,
  `-`, `.` (the division slash, the fraction slash, the hyphen U+2010, ...);
- letters of more than one of the Latin, Greek and Cyrillic scripts in one name (`Stable` with a
  Cyrillic U+0430 for its `a`); a name wholly in one script (or in any other script) is fine.
"""

from __future__ import annotations

import unicodedata

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import InvalidModelNameError

__all__ = [
    "MAX_NAME_LENGTH",
    "TEXT_BACKEND_PREFIXES",
    "backend_prefix_of",
    "name_candidates",
    "validate_model_name",
]

TEXT_BACKEND_PREFIXES = ("aphrodite/", "koboldcpp/")
"""Prefixes of the names text workers report (`koboldcpp/org/model`), absent from catalog keys."""
_PREFIX_LENGTH = max(map(len, TEXT_BACKEND_PREFIXES))

MAX_NAME_LENGTH = 256

_SLASH_LOOKALIKES = frozenset("\u2044\u2215\u29f8\uff0f\u2571\u27cb\u2e4a\u3033\u1735\u0337\u0338")
"""Characters that read as `/`: refused with a message saying so (NFKC keeps most of them)."""
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_CONFUSABLE_SCRIPTS = ("LATIN", "GREEK", "CYRILLIC")


def validate_model_name(name: object) -> str:
    """Return `name` when it is a model name; raise `InvalidModelNameError` naming what is wrong.

    Refused: a leading `/`, `..`, an empty or `.` part, a second `/` (after a text backend prefix),
    a backslash, names over 256 characters, and look-alikes (see the module's docstring).
    """
    if not isinstance(name, str) or not name:
        raise InvalidModelNameError(name, "must be a non-empty string")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidModelNameError(name, f"longer than {MAX_NAME_LENGTH} characters ({len(name)})")
    if "\x00" in name or "\\" in name:
        raise InvalidModelNameError(name, "contains a NUL or a backslash")
    if not name.isascii():
        _check_unicode(name)
    if ".." in name:
        raise InvalidModelNameError(name, "contains '..'")
    parts = _without_backend_prefix(name).split("/")
    if any(part in ("", ".") for part in parts):
        raise InvalidModelNameError(name, "is absolute or has an empty or '.' part")
    if len(parts) > 2:
        raise InvalidModelNameError(name, "has more than one '/' (names are 'model' or 'org/model')")
    return name


def _describe(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, '(unnamed)')}"


def _check_unicode(name: str) -> None:
    """The look-alike rules (only non-ASCII names get here)."""
    for char in name:
        if char in _SLASH_LOOKALIKES:
            raise InvalidModelNameError(name, f"contains {_describe(char)}, which looks like '/'")
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES:
            raise InvalidModelNameError(name, f"contains the control or format character {_describe(char)}")
    normal = unicodedata.normalize("NFKC", name)
    if normal != name:
        raise InvalidModelNameError(name, f"is not in Unicode NFKC form (NFKC: {normal!r})")
    scripts: set[str] = set()
    for char in name:
        if char.isascii():
            if char.isalpha():
                scripts.add("LATIN")
            continue
        category = unicodedata.category(char)
        if category[0] not in "LNM":
            raise InvalidModelNameError(
                name, f"contains {_describe(char)}: outside ASCII only letters, digits and marks"
            )
        if category[0] == "L":
            script = unicodedata.name(char, "").split(" ", 1)[0]
            if script in _CONFUSABLE_SCRIPTS:
                scripts.add(script)
    if len(scripts) > 1:
        raise InvalidModelNameError(
            name, f"mixes the {' and '.join(sorted(scripts))} scripts (look-alike letters)"
        )


def _without_backend_prefix(name: str) -> str:
    return next((name[len(p) :] for p in TEXT_BACKEND_PREFIXES if name.startswith(p)), name)


def backend_prefix_of(name: str) -> str | None:
    """The text backend prefix `name` starts with (any case), or None."""
    head = name[:_PREFIX_LENGTH].lower()
    if not head.startswith(TEXT_BACKEND_PREFIXES):
        return None
    return next(p for p in TEXT_BACKEND_PREFIXES if head.startswith(p))


_ALIASES: dict[str, dict[str, str]] = {
    MODEL_REFERENCE_CATEGORY.controlnet: {"control_qr_sdxl": "control_qr_xl"},
}
"""Per category, deprecated catalog keys and the name they stand for: the real controlnet catalog
keeps `control_qr_xl` under the key `control_qr_sdxl`, and either name finds it (as upstream)."""


def name_candidates(category: str | MODEL_REFERENCE_CATEGORY, name: str) -> tuple[str, ...]:
    """The catalog keys `name` may stand for, in order.

    For text, `koboldcpp/x` (any backend prefix) means the record `x` first, then a record keyed
    `koboldcpp/x` itself, so a record named with a backend prefix can never shadow the one it
    prefixes (catalog decoding also skips such records, and writes refuse them). A deprecated
    key and the name it stands for find each other (canonical name first).
    """
    if category == MODEL_REFERENCE_CATEGORY.text_generation:
        bare = _without_backend_prefix(name)
        if bare is not name:
            return (bare, name)
    aliases = _ALIASES.get(category)
    if aliases:
        canonical = aliases.get(name, name)
        others = [alias for alias, target in aliases.items() if target == canonical and alias != name]
        if canonical != name or others:
            return tuple(dict.fromkeys((canonical, *others, name)))
    return (name,)
