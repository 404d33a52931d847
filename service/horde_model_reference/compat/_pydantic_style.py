"""The pydantic-style record methods of `horde_model_reference.model_reference_records` (8.x).

Upstream records are pydantic models; consumers call `model_dump`, `model_dump_json`,
`model_copy(update=...)`, `model_validate`, `model_validate_json` and read `model_fields` on them.
Records here are msgspec Structs: `PydanticStyle` is a slot-less mixin giving them those methods
(nothing is added to an instance, decoding never runs them), and `WireNamesMeta` lets a
constructor take a field's wire name (`TextGenerationModelRecord(parameters=...)`) as pydantic's
`populate_by_name` does. Both are leaves: they import nothing from this package.
"""

from __future__ import annotations

import copy
import enum
from collections.abc import Mapping
from typing import Any, Literal, Self

import msgspec

__all__ = ["FieldInfo", "PydanticStyle", "WireNamesMeta", "wire_to_attribute_names"]

_StructMeta: type = type(msgspec.Struct)


class FieldInfo(msgspec.Struct, frozen=True):
    """What `model_fields[name]` holds: the field's wire name (`alias`), default and annotation."""

    annotation: Any
    alias: str | None
    default: Any
    default_factory: Any

    def is_required(self) -> bool:
        """Whether the field has neither a default nor a default factory (as pydantic's)."""
        return self.default is msgspec.NODEFAULT and self.default_factory is msgspec.NODEFAULT


_FIELDS: dict[type, dict[str, FieldInfo]] = {}
_RENAMES: dict[type, dict[str, str]] = {}


def wire_to_attribute_names(cls: type) -> dict[str, str]:
    """{wire name: attribute name} of the fields of `cls` whose two names differ (cached per class)."""
    renames = _RENAMES.get(cls)
    if renames is None:
        renames = {f.encode_name: f.name for f in msgspec.structs.fields(cls) if f.encode_name != f.name}
        _RENAMES[cls] = renames
    return renames


class WireNamesMeta(_StructMeta):
    """A Struct metaclass whose constructor also takes wire names (`parameters=` for `parameters_count`).

    Only the constructor is affected: msgspec decodes without calling it.
    """

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        renames = wire_to_attribute_names(cls)
        for wire, attribute in renames.items():
            if wire in kwargs:
                if attribute in kwargs:
                    raise TypeError(f"{cls.__name__}() got both {wire!r} and {attribute!r}")
                kwargs[attribute] = kwargs.pop(wire)
        return super().__call__(*args, **kwargs)


class _ClassFields:
    """`Model.model_fields` (and `instance.model_fields`): {attribute name: FieldInfo}."""

    def __get__(self, instance: object, owner: type) -> dict[str, FieldInfo]:
        fields = _FIELDS.get(owner)
        if fields is None:
            fields = {
                f.name: FieldInfo(
                    annotation=f.type,
                    alias=f.encode_name if f.encode_name != f.name else None,
                    default=f.default,
                    default_factory=f.default_factory,
                )
                for f in msgspec.structs.fields(owner)
            }
            _FIELDS[owner] = fields
        return fields


def _python_value(value: Any, by_alias: bool, exclude_none: bool) -> Any:
    """A field value as pydantic's `model_dump()` gives it: nested records as dicts, tuples as lists."""
    if isinstance(value, msgspec.Struct):
        return _dump(value, by_alias, exclude_none)
    if isinstance(value, tuple | list):
        return [_python_value(v, by_alias, exclude_none) for v in value]
    if isinstance(value, dict):
        return {k: _python_value(v, by_alias, exclude_none) for k, v in value.items()}
    return value


def _dump(record: msgspec.Struct, by_alias: bool, exclude_none: bool) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for f in msgspec.structs.fields(record):
        value = getattr(record, f.name)
        if exclude_none and value is None:
            continue
        result[f.encode_name if by_alias else f.name] = _python_value(value, by_alias, exclude_none)
    return result


def _json_ready(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, dict):
        return {str(_json_ready(k)): _json_ready(v) for k, v in value.items()}
    if isinstance(value, str | int | float | None):
        return value
    return msgspec.to_builtins(value)  # dates and times as ISO strings, as pydantic's JSON mode


def _filter(data: dict[str, Any], include: Any, exclude: Any) -> dict[str, Any]:
    if include is not None:
        data = {k: v for k, v in data.items() if k in include}
    if exclude is not None:
        data = {k: v for k, v in data.items() if k not in exclude}
    return data


class PydanticStyle:
    """Mixin: the pydantic `BaseModel` methods consumers call on records (see the module docstring)."""

    __slots__ = ()

    model_fields = _ClassFields()

    def model_dump(
        self,
        *,
        mode: Literal["python", "json"] | str = "python",
        by_alias: bool = False,
        exclude_none: bool = False,
        include: Any = None,
        exclude: Any = None,
    ) -> dict[str, Any]:
        """Every field by attribute name (`by_alias=True`: wire names), as pydantic's `model_dump`.

        `mode="json"` gives JSON-ready values (enum members as their strings).
        """
        if mode not in ("python", "json"):
            raise ValueError(f"mode must be 'python' or 'json', got {mode!r}")
        assert isinstance(self, msgspec.Struct)
        data = _filter(_dump(self, by_alias, exclude_none), include, exclude)
        return _json_ready(data) if mode == "json" else data

    def model_dump_json(
        self,
        *,
        indent: int | None = None,
        by_alias: bool = False,
        exclude_none: bool = False,
        include: Any = None,
        exclude: Any = None,
    ) -> str:
        """`model_dump(mode="json")` as a JSON string (compact unless `indent` is given)."""
        data = self.model_dump(
            mode="json", by_alias=by_alias, exclude_none=exclude_none, include=include, exclude=exclude
        )
        encoded = msgspec.json.encode(data)
        if indent is not None:
            encoded = msgspec.json.format(encoded, indent=indent)
        return encoded.decode()

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with `update` applied (attribute or wire names), as pydantic's `model_copy`.

        Like pydantic, the updated values are not validated.
        """
        assert isinstance(self, msgspec.Struct)
        base = copy.deepcopy(self) if deep else self
        if not update:
            return base if deep else copy.copy(self)
        renames = wire_to_attribute_names(type(self))
        changes = {renames.get(k, k): v for k, v in update.items()}
        return msgspec.structs.replace(base, **changes)

    @classmethod
    def model_validate(cls, obj: Any, *, strict: bool | None = None) -> Self:
        """Build a record from a mapping (wire or attribute names) or return `obj` if it is one.

        Raises `msgspec.ValidationError` (a `ValueError`, as pydantic's `ValidationError` is) naming
        the offending field.
        """
        if isinstance(obj, cls):
            return obj
        if isinstance(obj, Mapping):
            attribute_to_wire = {a: w for w, a in wire_to_attribute_names(cls).items()}
            if attribute_to_wire:
                obj = {attribute_to_wire.get(k, k): v for k, v in obj.items()}
        result: Self = msgspec.convert(obj, cls, strict=bool(strict))
        return result

    @classmethod
    def model_validate_json(cls, data: str | bytes) -> Self:
        """Decode one record from JSON (wire names); raises `msgspec.ValidationError` on bad input."""
        result: Self = msgspec.json.decode(data, type=cls)
        return result

    @classmethod
    def model_construct(cls, **values: Any) -> Self:
        """Build without validation (as pydantic's): the same as calling the class."""
        return cls(**values)
