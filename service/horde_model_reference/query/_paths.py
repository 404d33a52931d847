"""Field paths: checking them against a record type and reading them from records fast.

A path is a field's Python attribute name, or `outer__inner` to descend into a nested Struct
field (`metadata__created_at`) or a dict field (`requirements__min_steps`).
"""

from __future__ import annotations

import keyword
import types
from collections.abc import Callable, Iterable
from functools import cache, lru_cache
from operator import attrgetter
from typing import Any, Union, get_args, get_origin

import msgspec

__all__ = ["OPERATORS", "check_path", "field_names", "path_filter", "path_getter", "split_condition"]

OPERATORS = ("lt", "lte", "gt", "gte", "ne", "in", "contains")
"""The operator suffixes `where()` accepts (`field__op=value`); no suffix means equality."""


@cache
def _field_types(struct_type: type) -> dict[str, Any]:
    return {f.name: f.type for f in msgspec.structs.fields(struct_type)}


def field_names(record_type: type) -> tuple[str, ...]:
    """The Python attribute names of a record type's fields, in declaration order."""
    return tuple(_field_types(record_type))


def _arms(tp: Any) -> tuple[Any, ...]:
    origin = get_origin(tp)
    return get_args(tp) if origin is Union or origin is types.UnionType else (tp,)


def _unknown_field(struct_type: type, name: str, path: str) -> ValueError:
    valid = ", ".join(sorted(_field_types(struct_type)))
    where = "" if name == path else f" (in {path!r})"
    return ValueError(
        f"unknown field {name!r}{where} for {struct_type.__name__} (the field does not exist); valid fields: {valid}"
    )


class _LeafError(Exception):
    """A path tried to descend into a field that is neither a Struct nor a dict."""

    def __init__(self, parent: str, tp: Any) -> None:
        self.parent = parent
        self.tp = tp


@cache
def check_path(record_type: type, path: str) -> None:
    """Raise `ValueError` naming the field (and listing the valid ones) unless `path` resolves."""
    try:
        _resolve(record_type, path)
    except _LeafError as exc:
        raise ValueError(
            f"cannot read {path!r} on {record_type.__name__}: field {exc.parent!r} ({exc.tp}) has no sub-fields"
        ) from None


def _resolve(record_type: type, path: str) -> None:
    parts = path.split("__")
    current: tuple[Any, ...] = (record_type,)
    for depth, part in enumerate(parts):
        if not part:
            raise ValueError(f"malformed field path {path!r}")
        struct = next((a for a in current if isinstance(a, type) and issubclass(a, msgspec.Struct)), None)
        if struct is not None:
            fields = _field_types(struct)
            if part not in fields:
                raise _unknown_field(struct, part, path)
            current = _arms(fields[part])
            continue
        mapping = next((a for a in current if get_origin(a) is dict or a is dict), None)
        if mapping is not None:
            args = get_args(mapping)
            current = _arms(args[1]) if args else (Any,)
            continue
        raise _LeafError(
            "__".join(parts[:depth]), " | ".join(getattr(a, "__name__", str(a)) for a in current)
        )


@cache
def split_condition(record_type: type, key: str) -> tuple[str, str | None]:
    """Split a `where()` keyword into (path, operator or None) and check the path.

    Raises `ValueError` for an unknown field (listing the valid ones) or an unknown operator.
    """
    head, sep, last = key.rpartition("__")
    if sep and last in OPERATORS:
        check_path(record_type, head)
        return head, last
    try:
        _resolve(record_type, key)
    except _LeafError as exc:
        if exc.parent == head:
            raise ValueError(
                f"unknown operator {last!r} in {key!r}; valid operators: {', '.join(OPERATORS)}"
            ) from None
        raise ValueError(f"cannot read {key!r}: field {exc.parent!r} ({exc.tp}) has no sub-fields") from None
    return key, None


@cache
def path_getter(path: str) -> Callable[[Any], Any]:
    """A function reading `path` from a record: None when a step on the way is None or missing."""
    parts = tuple(path.split("__"))
    if len(parts) == 1:
        return attrgetter(path)

    def get(record: Any) -> Any:
        value = record
        for part in parts:
            if value is None:
                return None
            value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        return value

    return get


_FILTERS = {
    "eq": "[r for r in records if r.{0} == value]",
    "ne": "[r for r in records if r.{0} != value]",
    "truthy": "[r for r in records if r.{0}]",
    "falsy": "[r for r in records if not r.{0}]",
}
"""The filters `path_filter` compiles, by test."""

Filter = Callable[[Iterable[Any], Any], list[Any]]


@lru_cache(maxsize=512)
def path_filter(path: str, test: str) -> Filter | None:
    """`[r for r in records if r.<path> <test> value]` compiled for a one-field path, or None.

    Filtering is the inner loop of every query. Reading a constant attribute name inline is about
    twice as fast per record as calling an `attrgetter` (CPython specialises the load), so one
    function is compiled per field and test, as `dataclasses` compiles its methods. Only a plain
    identifier is ever compiled: a nested path (`a__b`) or any other string returns None, and the
    caller falls back to `path_getter`. Non-ASCII names are not compiled either (Python
    normalises them in source, so the compiled read could name another attribute).
    """
    if "__" in path or not (path.isascii() and path.isidentifier()) or keyword.iskeyword(path):
        return None
    namespace: dict[str, Any] = {}
    exec(f"def select(records, value):\n    return {_FILTERS[test].format(path)}\n", namespace)
    compiled: Filter = namespace["select"]
    return compiled
