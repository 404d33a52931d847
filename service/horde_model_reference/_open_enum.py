"""String enums that accept values they do not list.

Decoding a listed value yields its member; any other string yields a member created for it on
first sight and cached, so every record carrying the same value shares one object (records hold
one pointer instead of a copy of the string). Members are `str`: they compare equal to their value,
hash like it and encode as it, so a value from a newer catalog decodes and round-trips unchanged.

`ClosedCallEnumType` makes an explicit call (`KNOWN_IMAGE_GENERATION_BASELINE("x")`, and a
pydantic field of that type) refuse an unlisted value with `ValueError`, as the closed StrEnums of
today's library do, while decoding still accepts it; `OpenStrEnum.of(value)` is the open lookup.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import EnumType, StrEnum
from typing import Any

import msgspec

__all__ = ["MAX_CACHED_UNLISTED", "ClosedCallEnumType", "OpenStrEnum", "on_unlisted"]

MAX_CACHED_UNLISTED = 1024
"""Unlisted values cached per enum. Past it, each decode of another unlisted value gets a member of
its own (still equal to its string, freed with the record), so a source sending ever-new values
cannot grow memory without bound."""

_LOCK = threading.Lock()
_UNLISTED_HOOKS: dict[type[StrEnum], Callable[[str], None]] = {}
_UNLISTED_CACHED: dict[type[StrEnum], int] = {}


class OpenStrEnum(StrEnum):
    """A string enum whose unlisted values are members created on demand (see the module docstring)."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        member = cls._value2member_map_.get(value)
        if member is None:
            with _LOCK:
                member = cls._value2member_map_.get(value)
                if member is None:
                    member = str.__new__(cls, value)
                    member._name_ = value
                    member._value_ = value
                    cached = _UNLISTED_CACHED.get(cls, 0)
                    if cached < MAX_CACHED_UNLISTED:
                        cls._value2member_map_[value] = member
                        _UNLISTED_CACHED[cls] = cached + 1
        hook = _UNLISTED_HOOKS.get(cls)
        if hook is not None:
            hook(value)
        return member

    @classmethod
    def of(cls, value: str) -> Any:
        """The member for `value`, listed or not (what decoding gives)."""
        member = cls._value2member_map_.get(value)
        return member if member is not None else cls._missing_(value)

    def __reduce_ex__(self, protocol: Any) -> Any:
        return type(self).of, (self._value_,)


_LISTED: dict[type, frozenset[str]] = {}


class ClosedCallEnumType(EnumType):
    """Metaclass of an `OpenStrEnum` whose explicit calls accept listed values only.

    `Enum(value)` raises `ValueError` ("... is not a valid ...") for a value the class does not list,
    as a closed enum does; msgspec decodes without calling the class, so catalogs stay open.
    """

    def __call__(cls, value: Any, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs:
            return super().__call__(value, *args, **kwargs)
        listed = _LISTED.get(cls)
        if listed is None:
            listed = _LISTED[cls] = frozenset(m._value_ for m in cls._member_map_.values())
        if value not in listed:
            raise ValueError(f"{value!r} is not a valid {cls.__qualname__}")
        return super().__call__(value)


def on_unlisted(enum: type[OpenStrEnum], hook: Callable[[str], None]) -> None:
    """Call `hook(value)` whenever `enum` meets a value it does not list.

    Call it right after defining `enum`, before any value is looked up: msgspec then builds (and
    caches on the class) its table of the listed values only, so it asks `_missing_`, and through it
    the hook, about every other value each time it decodes one.
    """
    msgspec.json.Decoder(enum)
    _UNLISTED_HOOKS[enum] = hook
