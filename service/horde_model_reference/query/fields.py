"""The typed field DSL: `FieldRef` comparisons build `Predicate`s, combined with `&`, `|`, `~`.

    ImageFields.baseline == "stable_diffusion_xl"
    (ImageFields.nsfw.is_false()) & (ImageFields.size_on_disk_bytes > 2**30)
    ImageFields.size_on_disk_bytes.desc()

Each predicate is compiled once into closures over an attribute getter: a per-record test and a
list filter that the query runs without building any per-record dict.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Collection, Iterable
from typing import Any, NamedTuple

from horde_model_reference.query._paths import Filter, path_filter, path_getter

__all__ = ["FieldRef", "OrderSpec", "Predicate", "compile_condition", "false", "true", "truthiness"]

Test = Callable[[Any], bool]
Select = Callable[[Iterable[Any]], list[Any]]

_COLLECTIONS = (list, tuple, set, frozenset)

_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
}


class Predicate:
    """A condition on a record. Call it on a record, or combine with `&`, `|`, `~`.

    `fields` are the paths it reads, checked against the record type when given to a query.
    """

    __slots__ = ("_select", "_test", "fields")

    def __init__(
        self, test: Test, *, select: Select | None = None, fields: frozenset[str] = frozenset()
    ) -> None:
        self._test = test
        self._select: Select = select if select is not None else _selector(test)
        self.fields = fields

    def __call__(self, record: Any) -> bool:
        return self._test(record)

    def __and__(self, other: Predicate) -> Predicate:
        if not isinstance(other, Predicate):
            return NotImplemented
        a, b = self._test, other._test
        sel_a, sel_b = self._select, other._select
        return Predicate(
            lambda r: a(r) and b(r), select=lambda rs: sel_b(sel_a(rs)), fields=self.fields | other.fields
        )

    def __or__(self, other: Predicate) -> Predicate:
        if not isinstance(other, Predicate):
            return NotImplemented
        a, b = self._test, other._test
        return Predicate(lambda r: a(r) or b(r), fields=self.fields | other.fields)

    def __invert__(self) -> Predicate:
        a = self._test
        return Predicate(lambda r: not a(r), fields=self.fields)

    def __bool__(self) -> bool:
        raise TypeError("a Predicate has no truth value: combine predicates with &, | and ~, not and/or/not")

    def __repr__(self) -> str:
        return f"Predicate(fields={sorted(self.fields)})"


def _selector(test: Test) -> Select:
    return lambda records: [r for r in records if test(r)]


class OrderSpec(NamedTuple):
    """A field path and a direction for `order_by`."""

    field: str
    descending: bool = False


def compile_condition(path: str, op: str | None, value: Any) -> Predicate:
    """The predicate `path <op> value`; `op` None is equality, or membership for a list/tuple/set.

    Operators: lt, lte, gt, gte (a None value never matches), ne (not equal; None differs from
    everything but None), in, contains (a None or non-container value never matches).
    """
    get = path_getter(path)
    fields = frozenset((path,))
    if op is None and isinstance(value, _COLLECTIONS):
        op = "in"
    if op is None:
        return Predicate(
            lambda r: get(r) == value,
            select=_compiled_or(path, "eq", value, lambda rs: [r for r in rs if get(r) == value]),
            fields=fields,
        )
    if op == "ne":
        return Predicate(
            lambda r: get(r) != value,
            select=_compiled_or(path, "ne", value, lambda rs: [r for r in rs if get(r) != value]),
            fields=fields,
        )
    if op == "in":
        return _membership(path, get, value, fields)
    if op == "contains":
        return Predicate(lambda r: _contains(get(r), value), fields=fields)
    return _ordering(path, op, get, value, fields)


def _membership(path: str, get: Callable[[Any], Any], choices: Any, fields: frozenset[str]) -> Predicate:
    if isinstance(choices, str | bytes) or not isinstance(choices, Iterable):
        raise ValueError(
            f"{path}__in requires a non-string iterable value (a list, tuple or set), got {choices!r}"
        )
    listed = tuple(choices)
    try:
        pool: Collection[Any] = frozenset(listed)
    except TypeError:
        pool = listed

    def test(record: Any) -> bool:
        value = get(record)
        try:
            return value in pool
        except TypeError:  # an unhashable value (a list field) against a set of choices
            return value in listed

    return Predicate(test, fields=fields)


def _contains(container: Any, item: Any) -> bool:
    if container is None:
        return False
    try:
        return item in container
    except TypeError:
        return False


def _ordering(path: str, op: str, get: Callable[[Any], Any], bound: Any, fields: frozenset[str]) -> Predicate:
    compare = _ORDERING[op]

    def incomparable(value: Any) -> TypeError:
        return TypeError(
            f"cannot compare field {path!r} ({type(value).__name__}) with {bound!r} ({type(bound).__name__}) using {op}"
        )

    def test(record: Any) -> bool:
        value = get(record)
        try:
            return value is not None and compare(value, bound)
        except TypeError:
            raise incomparable(value) from None

    def select(records: Iterable[Any]) -> list[Any]:
        value = None
        try:
            return [r for r in records if (value := get(r)) is not None and compare(value, bound)]
        except TypeError:
            raise incomparable(value) from None

    return Predicate(test, select=select, fields=fields)


def truthiness(path: str, *, negate: bool = False) -> Predicate:
    """Records whose `path` is truthy (or falsy with `negate`; None counts as falsy)."""
    get = path_getter(path)
    fields = frozenset((path,))
    if negate:
        falsy = _compiled_or(path, "falsy", None, lambda rs: [r for r in rs if not get(r)])
        return Predicate(lambda r: not get(r), select=falsy, fields=fields)
    truthy = _compiled_or(path, "truthy", None, lambda rs: [r for r in rs if get(r)])
    return Predicate(lambda r: bool(get(r)), select=truthy, fields=fields)


def _compiled_or(path: str, test: str, value: Any, fallback: Select) -> Select:
    """The compiled filter of a one-field path bound to `value`, else `fallback` (nested paths)."""
    compiled: Filter | None = path_filter(path, test)
    if compiled is None:
        return fallback
    return lambda records: compiled(records, value)


def _identity(path: str, constant: object, *, negate: bool = False) -> Predicate:
    get = path_getter(path)
    fields = frozenset((path,))
    if negate:
        return Predicate(lambda r: get(r) is not constant, fields=fields)
    return Predicate(lambda r: get(r) is constant, fields=fields)


class FieldRef:
    """A record field (a Python attribute name, or `outer__inner` for a nested one)."""

    __slots__ = ("_path",)

    def __init__(self, path: str) -> None:
        self._path = path

    @property
    def field_name(self) -> str:
        """The field path."""
        return self._path

    def __eq__(self, other: object) -> Predicate:  # type: ignore[override]
        if isinstance(other, FieldRef):
            a, b = path_getter(self._path), path_getter(other._path)
            return Predicate(lambda r: a(r) == b(r), fields=frozenset((self._path, other._path)))
        if _is_collection(other):
            return self._eq_exact(other)
        return compile_condition(self._path, None, other)

    def __ne__(self, other: object) -> Predicate:  # type: ignore[override]
        if isinstance(other, FieldRef):
            a, b = path_getter(self._path), path_getter(other._path)
            return Predicate(lambda r: a(r) != b(r), fields=frozenset((self._path, other._path)))
        return compile_condition(self._path, "ne", other)

    def _eq_exact(self, value: object) -> Predicate:
        get = path_getter(self._path)
        return Predicate(lambda r: get(r) == value, fields=frozenset((self._path,)))

    def __lt__(self, other: object) -> Predicate:
        return compile_condition(self._path, "lt", other)

    def __le__(self, other: object) -> Predicate:
        return compile_condition(self._path, "lte", other)

    def __gt__(self, other: object) -> Predicate:
        return compile_condition(self._path, "gt", other)

    def __ge__(self, other: object) -> Predicate:
        return compile_condition(self._path, "gte", other)

    def __hash__(self) -> int:
        return hash((FieldRef, self._path))

    def contains(self, item: object) -> Predicate:
        """The field (a list, dict or string) contains `item`."""
        return compile_condition(self._path, "contains", item)

    def is_in(self, choices: Iterable[object]) -> Predicate:
        """The field's value is one of `choices`."""
        return compile_condition(self._path, "in", choices)

    def is_none(self) -> Predicate:
        """The field is None."""
        return _identity(self._path, None)

    def is_not_none(self) -> Predicate:
        """The field is not None."""
        return _identity(self._path, None, negate=True)

    def is_true(self) -> Predicate:
        """The field is exactly True."""
        return _identity(self._path, True)

    def is_false(self) -> Predicate:
        """The field is exactly False (None is not False)."""
        return _identity(self._path, False)

    def asc(self) -> OrderSpec:
        """Ascending order on this field."""
        return OrderSpec(self._path)

    def desc(self) -> OrderSpec:
        """Descending order on this field."""
        return OrderSpec(self._path, descending=True)

    def __repr__(self) -> str:
        return f"FieldRef({self._path!r})"


def _is_collection(value: object) -> bool:
    return isinstance(value, _COLLECTIONS)


def true() -> bool:
    """True, for `ImageFields.nsfw == true()` where a linter would rewrite `== True` (upstream's name)."""
    return True


def false() -> bool:
    """False, for `ImageFields.nsfw == false()` where a linter would rewrite `== False` (upstream's name)."""
    return False
