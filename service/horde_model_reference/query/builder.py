"""`ModelQuery`: an immutable, lazily evaluated query over the records of one or more sources.

Every filter returns a new query of the same type. Execution order: predicates, then
de-duplication by name (the first source in selector order wins), then sort, offset, limit.

Reading: a query reads its sources once, at its first terminal (or `await q.fetch()`), and it
and every query derived from it share that read; build a new query to see newer data. Sync
terminals (`to_list`, `count`, ...) read synchronously: a canonical-only query straight from
the in-memory cache, a query with providers through the shared background loop. In async code,
`await q.fetch()` (or `await q.to_list_async()`) reads on the caller's loop; after that every
terminal works in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from horde_model_reference.categories import MODEL_DOMAIN, MODEL_PURPOSE
from horde_model_reference.errors import QueryValueError
from horde_model_reference.providers.gather import SourceRead, single_source
from horde_model_reference.query._paths import check_path, path_getter, split_condition
from horde_model_reference.query.fields import FieldRef, OrderSpec, Predicate, compile_condition
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.source_consts import HORDE_SOURCE_ID, SourceOutcome

__all__ = ["ModelQuery", "SourceLoader"]

R = TypeVar("R", bound=GenericModelRecord)
F = TypeVar("F", bound=str)
_T = TypeVar("_T")
_Row = tuple[str, Any, str]
"""(name, record, source id)"""


class SourceLoader(Protocol):
    """Reads the sources a query was built over."""

    def load(self) -> SourceRead:
        """Read synchronously (the caller has no running loop, or accepts blocking it)."""
        ...

    async def load_async(self) -> SourceRead:
        """Read on the running loop."""
        ...


class _Fixed:
    __slots__ = ("_read",)

    def __init__(self, read: SourceRead) -> None:
        self._read = read

    def load(self) -> SourceRead:
        return self._read

    async def load_async(self) -> SourceRead:
        return self._read


class _SharedRead:
    """The one read shared by a query and the queries derived from it."""

    __slots__ = ("loader", "read")

    def __init__(self, loader: SourceLoader) -> None:
        self.loader = loader
        self.read: SourceRead | None = None

    def get(self) -> SourceRead:
        read = self.read
        if read is None:
            read = self.read = self.loader.load()
        return read

    async def get_async(self) -> SourceRead:
        if self.read is None:
            self.read = await self.loader.load_async()
        return self.read


class ModelQuery(Generic[R, F]):
    """A query over records of type `R` whose field names are `F`. Immutable; see the module doc.

    "Name" below is the catalog key a record is listed under (normally its `name` field).
    """

    __slots__ = ("_dedupe", "_limit", "_offset", "_order", "_preds", "_read", "_record_type", "_sources")
    _default_record_type: ClassVar[type[GenericModelRecord]] = GenericModelRecord

    def __init__(self, record_type: type[R], loader: SourceLoader, *, dedupe: bool = True) -> None:
        """A query over what `loader` reads; `dedupe=False` keeps records of the same name."""
        self._record_type = record_type
        self._read = _SharedRead(loader)
        self._dedupe = dedupe
        self._preds: tuple[Predicate, ...] = ()
        self._sources: frozenset[str] | None = None
        self._order: tuple[str, Callable[[Any], Any], bool] | None = None
        self._offset = 0
        self._limit: int | None = None

    @classmethod
    def from_records(
        cls, records: Mapping[str, R], *, record_type: type[R] | None = None, source_id: str = HORDE_SOURCE_ID
    ) -> Self:
        """A query over one mapping of records (name -> record) attributed to `source_id`."""
        return cls.from_read(single_source(source_id, records), record_type=record_type)

    @classmethod
    def from_read(cls, read: SourceRead, *, record_type: type[R] | None = None) -> Self:
        """A query over an existing multi-source read."""
        return cls(record_type or cls._default_record_type, _Fixed(read))  # type: ignore[arg-type]

    def _with(self, attribute: str, value: Any) -> Self:
        new = object.__new__(type(self))
        new._record_type = self._record_type
        new._read = self._read
        new._dedupe = self._dedupe
        new._preds = self._preds
        new._sources = self._sources
        new._order = self._order
        new._offset = self._offset
        new._limit = self._limit
        setattr(new, attribute, value)
        return new

    def _field(self, field: F | FieldRef | str) -> str:
        path = field.field_name if isinstance(field, FieldRef) else field
        if not isinstance(path, str):
            raise TypeError(f"expected a field name or FieldRef, got {field!r}")
        check_path(self._record_type, path)
        return path

    def _add(self, predicate: Predicate) -> Self:
        for path in predicate.fields:
            check_path(self._record_type, path)
        return self._with("_preds", (*self._preds, predicate))

    # -- filters ------------------------------------------------------------------------------

    def where(self, *predicates: Predicate, **conditions: object) -> Self:
        """Keep records matching every predicate and every `field=value` / `field__op=value`.

        Operators: lt, lte, gt, gte, ne, in, contains (see `fields.compile_condition`); nested
        fields with `__` (`config__download`). A list, tuple or set value without an operator
        means `in`. Raises `ValueError` for an unknown field (listing the valid ones) or operator.
        """
        added = list(self._preds)
        for predicate in predicates:
            if not isinstance(predicate, Predicate):
                raise TypeError(
                    f"where() takes Predicates and keywords, got {predicate!r}; use filter() for callables"
                )
            for path in predicate.fields:
                check_path(self._record_type, path)
            added.append(predicate)
        for key, value in conditions.items():
            path, op = split_condition(self._record_type, key)
            added.append(compile_condition(path, op, value))
        return self._with("_preds", tuple(added))

    def where_classification(
        self, *, domain: MODEL_DOMAIN | str | None = None, purpose: MODEL_PURPOSE | str | None = None
    ) -> Self:
        """Keep records whose `model_classification` has this domain and/or purpose."""
        if domain is None and purpose is None:
            raise ValueError("where_classification() needs a domain, a purpose or both")
        want_domain = None if domain is None else str(domain)
        want_purpose = None if purpose is None else str(purpose)

        def test(record: Any) -> bool:
            c = record.model_classification
            return (
                c is not None
                and (want_domain is None or c.domain == want_domain)
                and (want_purpose is None or c.purpose == want_purpose)
            )

        return self._add(Predicate(test, fields=frozenset(("model_classification",))))

    def tags_any(self, tags: str | Iterable[str]) -> Self:
        """Keep records having at least one of `tags` (a string is one tag)."""
        wanted = self._tags("tags_any", tags)
        return self._add(Predicate(lambda r: bool(r.tags) and not wanted.isdisjoint(r.tags), fields=_TAGS))

    def tags_all(self, tags: str | Iterable[str]) -> Self:
        """Keep records having every one of `tags`."""
        wanted = self._tags("tags_all", tags)
        return self._add(Predicate(lambda r: bool(r.tags) and wanted.issubset(r.tags), fields=_TAGS))

    def tags_none(self, tags: str | Iterable[str]) -> Self:
        """Drop records having any of `tags` (records without tags stay)."""
        wanted = self._tags("tags_none", tags)
        return self._add(Predicate(lambda r: not r.tags or wanted.isdisjoint(r.tags), fields=_TAGS))

    def _tags(self, method: str, tags: str | Iterable[str]) -> frozenset[str]:
        check_path(self._record_type, "tags")
        wanted = frozenset((tags,) if isinstance(tags, str) else tags)
        if not wanted:
            raise ValueError(f"{method}() needs at least one tag")
        return wanted

    def filter(self, predicate: Callable[[R], object]) -> Self:
        """Keep records for which `predicate(record)` is truthy."""
        if isinstance(predicate, Predicate):
            return self._add(predicate)
        if not callable(predicate):
            raise TypeError(f"filter() needs a callable, got {predicate!r}")
        return self._add(Predicate(lambda r: bool(predicate(r))))

    def where_source(self, *source_ids: str) -> Self:
        """Keep records from these sources (applied with the predicates, before de-duplication)."""
        if not source_ids or not all(isinstance(s, str) and s for s in source_ids):
            raise ValueError(f"where_source() needs one or more source ids, got {source_ids!r}")
        wanted = frozenset(source_ids)
        return self._with("_sources", wanted if self._sources is None else self._sources & wanted)

    def order_by(self, field: F | FieldRef | OrderSpec, *, descending: bool = False) -> Self:
        """Sort by `field` (replacing any earlier order); None values last in either direction.

        An `OrderSpec` (`FieldRef.desc()`) carries its own direction. Values that are not mutually
        comparable raise `QueryValueError` (a ValueError and a TypeError) naming the field and the
        two types, when the query runs.
        """
        if isinstance(field, OrderSpec):
            path, descending = self._field(field.field), field.descending
        else:
            path = self._field(field)
        return self._with("_order", (path, path_getter(path), descending))

    def limit(self, n: int) -> Self:
        """Return at most `n` records."""
        return self._with("_limit", _count_arg("limit", n))

    def offset(self, n: int) -> Self:
        """Skip the first `n` records."""
        return self._with("_offset", _count_arg("offset", n))

    # -- reading ------------------------------------------------------------------------------

    async def fetch(self) -> Self:
        """Read the sources now on the running loop (no-op when already read); returns self."""
        await self._read.get_async()
        return self

    async def to_list_async(self) -> list[R]:
        """`to_list()` after `await fetch()`."""
        await self._read.get_async()
        return self.to_list()

    # -- execution ----------------------------------------------------------------------------

    def _blocks(self, read: SourceRead) -> tuple[tuple[str, Mapping[str, Any]], ...]:
        if self._sources is None:
            return read.blocks
        return tuple(block for block in read.blocks if block[0] in self._sources)

    def _select(self, records: Iterable[Any]) -> list[Any]:
        for predicate in self._preds:
            records = predicate._select(records)
        return records if isinstance(records, list) else list(records)

    def _matching_rows(self) -> list[_Row]:
        rows: list[_Row] = []
        for source_id, records in self._blocks(self._read.get()):
            if self._preds:
                kept = {id(record) for record in self._select(records.values())}
                rows.extend((name, rec, source_id) for name, rec in records.items() if id(rec) in kept)
            else:
                rows.extend((name, rec, source_id) for name, rec in records.items())
        return rows

    def _rows(self) -> list[_Row]:
        rows = self._matching_rows()
        if self._dedupe:
            unique: dict[str, _Row] = {}
            for row in rows:
                unique.setdefault(row[0], row)
            rows = list(unique.values())
        return self._arrange(rows, lambda row: row[1])

    def _arrange(self, items: list[_T], record_of: Callable[[_T], Any] | None) -> list[_T]:
        if self._order is not None:
            path, get, descending = self._order
            read = get if record_of is None else (lambda item: get(record_of(item)))
            items = _sorted(items, read, path, descending)
        end = None if self._limit is None else self._offset + self._limit
        return items[self._offset : end] if self._offset or end is not None else items

    # -- terminals ----------------------------------------------------------------------------

    def to_list(self) -> list[R]:
        """The matching records."""
        blocks = self._blocks(self._read.get())
        if len(blocks) == 1:
            return self._arrange(self._select(blocks[0][1].values()), None)
        return [row[1] for row in self._rows()]

    def first(self) -> R | None:
        """The first matching record, or None."""
        records = self.to_list()
        return records[0] if records else None

    def count(self) -> int:
        """How many records match."""
        return len(self.to_list())

    def names(self) -> list[str]:
        """The names of the matching records."""
        return [row[0] for row in self._rows()]

    def distinct(self, field: F | FieldRef) -> list[Any]:
        """The distinct values of `field` among the matching records, in first-seen order."""
        get = path_getter(self._field(field))
        seen: set[Hashable] = set()
        values: list[Any] = []
        for record in self.to_list():
            value = get(record)
            key = _hashable(field, value)
            if key not in seen:
                seen.add(key)
                values.append(value)
        return values

    def group_by(self, field: F | FieldRef) -> dict[Hashable, list[R]]:
        """The matching records grouped by the value of `field` (list values become tuples)."""
        get = path_getter(self._field(field))
        groups: dict[Hashable, list[R]] = {}
        for record in self.to_list():
            groups.setdefault(_hashable(field, get(record)), []).append(record)
        return groups

    # -- provenance ---------------------------------------------------------------------------

    def to_list_with_source(self) -> list[tuple[R, str]]:
        """The matching records, each with the id of the source it came from."""
        return [(row[1], row[2]) for row in self._rows()]

    def sources(self) -> list[str]:
        """The source id of each record of `to_list()`, in the same order."""
        return [row[2] for row in self._rows()]

    def group_by_source(self) -> dict[str, list[R]]:
        """The matching records grouped by source id."""
        groups: dict[str, list[R]] = {}
        for name_record_source in self._rows():
            groups.setdefault(name_record_source[2], []).append(name_record_source[1])
        return groups

    def duplicate_names(self) -> dict[str, list[str]]:
        """Names that more than one source has (after predicates, before de-duplication).

        Maps each to its source ids in precedence order: the first one wins in `to_list()`.
        """
        if not self._dedupe:
            return {}
        by_name: dict[str, list[str]] = {}
        for name, _, source_id in self._matching_rows():
            by_name.setdefault(name, []).append(source_id)
        return {name: ids for name, ids in by_name.items() if len(ids) > 1}

    def has_duplicate_names(self) -> bool:
        """Whether any name came from more than one source."""
        return bool(self.duplicate_names())

    def source_status(self) -> dict[str, SourceOutcome]:
        """Each selected source's outcome: "ok", "empty" or "error"."""
        return dict(self._read.get().status)

    def failed_sources(self) -> list[str]:
        """The selected sources whose outcome is "error"."""
        return [source_id for source_id, outcome in self._read.get().status.items() if outcome == "error"]

    def source_errors(self) -> dict[str, str]:
        """Why each failed source failed."""
        return dict(self._read.get().errors)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._record_type.__name__}, predicates={len(self._preds)})"


_TAGS = frozenset(("tags",))


def _count_arg(method: str, n: object) -> int:
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"{method}() needs an int, got {n!r}")
    if n < 0:
        raise ValueError(f"{method}() needs a number >= 0, got {n}")
    return n


def _sorted(items: list[_T], get: Callable[[_T], Any], path: str, descending: bool) -> list[_T]:
    present: list[tuple[Any, _T]] = []
    missing: list[_T] = []
    for item in items:
        value = get(item)
        if value is None:
            missing.append(item)
        else:
            present.append((value, item))
    try:
        present.sort(key=_first, reverse=descending)
    except TypeError:
        types = list(dict.fromkeys(type(value).__name__ for value, _ in present))
        a, b = (types * 2)[:2]
        raise QueryValueError(
            path, f"cannot order by {path!r}: values are not mutually comparable ({a} and {b})"
        ) from None
    return [item for _, item in present] + missing


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def _hashable(field: object, value: Any) -> Hashable:
    key = tuple(value) if isinstance(value, list) else value
    try:
        hash(key)
    except TypeError:
        name = field.field_name if isinstance(field, FieldRef) else str(field)
        raise QueryValueError(
            name,
            f"field {name!r} contains unhashable value of type {type(value).__name__}; cannot group or count it",
        ) from None
    return key
