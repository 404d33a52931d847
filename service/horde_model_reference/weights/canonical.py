"""The canonical set of shareable components (VAEs, text encoders), derived from the reference.

A component is worth loading once and sharing between processes when several models carry the very
same weights. Its identity is the torch-free *content hash* (`DownloadRecord.content_hash` of a
component file, or `GenericModelRecordConfig.embedded_component_hashes` of a single-file checkpoint),
which is the same on every machine. A `(content hash, kind)` is promoted when at least
`min_shared_models` distinct models carry it, or when its hash is allow-listed; a deny-listed hash
is never promoted (deny wins over allow). Each promoted component lists every model it can be
obtained from, as its own file or embedded in a checkpoint.

Upstream module path: `horde_model_reference.canonical_components`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from typing import Final

import msgspec

from horde_model_reference.compat._pydantic_style import PydanticStyle
from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.weights.kinds import ComponentKind, component_kind_for_purpose

__all__ = [
    "DEFAULT_MIN_SHARED_MODELS",
    "CanonicalComponent",
    "CanonicalComponentRegistry",
    "CanonicalComponentSource",
    "CanonicalDerivationError",
    "derive_canonical_registry",
]

DEFAULT_MIN_SHARED_MODELS: Final = 2
"""Carried by this many distinct models, a component is promoted (two already saves a copy)."""


class CanonicalDerivationError(ModelReferenceError, ValueError):
    """A bad argument to `derive_canonical_registry`; carries the argument name and value."""

    def __init__(self, argument: str, value: object, reason: str) -> None:
        self.argument = argument
        self.value = value
        super().__init__(f"{argument}={value!r}: {reason}")


class CanonicalComponentSource(msgspec.Struct, PydanticStyle, frozen=True, kw_only=True, omit_defaults=True):
    """One model that carries a canonical component, and how to get the component's bytes from it."""

    model_name: str
    """The model carrying the component."""
    kind: ComponentKind
    """Which component this is."""
    embedded: bool
    """True: slice it out of the model's checkpoint; False: the model lists it as its own file."""
    file_name: str | None = None
    """The component file's `DownloadRecord.file_name` (None when `embedded`)."""
    file_purpose: str | None = None
    """The component file's `DownloadRecord.file_purpose` (None when `embedded`)."""


class CanonicalComponent(msgspec.Struct, PydanticStyle, frozen=True, kw_only=True, omit_defaults=True):
    """A promoted component, identified by its content hash."""

    content_hash: str
    """The machine-independent content hash the registry keys on."""
    kind: ComponentKind
    """`vae` or `text_encoders`."""
    shared_by_model_count: int
    """How many distinct models carry this exact component."""
    sources: tuple[CanonicalComponentSource, ...] = ()
    """Every model it can be obtained from (a worker uses one it has on disk)."""


class CanonicalComponentRegistry(
    msgspec.Struct, PydanticStyle, frozen=True, kw_only=True, omit_defaults=True
):
    """The derived canonical components, sorted by kind then hash."""

    components: tuple[CanonicalComponent, ...] = ()

    def by_hash(self, content_hash: str) -> CanonicalComponent | None:
        """The component with `content_hash`, or None when it is not canonical."""
        return next((c for c in self.components if c.content_hash == content_hash), None)

    def for_kind(self, kind: ComponentKind | str) -> list[CanonicalComponent]:
        """The components of `kind` (`ComponentKind` or its value, e.g. `"vae"`)."""
        return [c for c in self.components if c.kind == kind]


_Group = tuple[str, ComponentKind]


def _candidates(
    model_name: str, record: GenericModelRecord
) -> Iterator[tuple[_Group, CanonicalComponentSource]]:
    """Every hashed component `record` carries: component downloads first, then embedded ones."""
    config = record.config
    for download in config.download:
        kind = component_kind_for_purpose(download.file_purpose)
        if kind is not None and download.content_hash is not None:
            source = CanonicalComponentSource(
                model_name=model_name,
                kind=kind,
                embedded=False,
                file_name=download.file_name,
                file_purpose=download.file_purpose,
            )
            yield (download.content_hash, kind), source
    for purpose, content_hash in (config.embedded_component_hashes or {}).items():
        kind = component_kind_for_purpose(purpose)
        if kind is not None:
            yield (
                (content_hash, kind),
                CanonicalComponentSource(model_name=model_name, kind=kind, embedded=True),
            )


def _hash_set(argument: str, value: object) -> frozenset[str]:
    if isinstance(value, str | bytes) or not isinstance(value, Collection):
        raise CanonicalDerivationError(
            argument, value, "must be a collection of content hashes, not one string"
        )
    for item in value:
        if not isinstance(item, str):
            raise CanonicalDerivationError(argument, value, f"holds {item!r}, not a content hash string")
    return frozenset(value)


def derive_canonical_registry(
    records: Mapping[str, GenericModelRecord],
    *,
    min_shared_models: int = DEFAULT_MIN_SHARED_MODELS,
    allow: Collection[str] = (),
    deny: Collection[str] = (),
) -> CanonicalComponentRegistry:
    """The canonical components of `records` (keyed by model name).

    A `(content hash, kind)` carried by at least `min_shared_models` distinct models is promoted; a
    hash in `allow` is promoted whatever its count, one in `deny` never. Sources are listed once per
    (model, embedded, file name), in record order. Raises `CanonicalDerivationError` for a bad argument.
    """
    if not isinstance(records, Mapping):
        raise CanonicalDerivationError("records", records, "must be a mapping of model name to record")
    if isinstance(min_shared_models, bool) or not isinstance(min_shared_models, int) or min_shared_models < 1:
        raise CanonicalDerivationError("min_shared_models", min_shared_models, "must be an int >= 1")
    allowed = _hash_set("allow", allow)
    denied = _hash_set("deny", deny)

    carriers: dict[_Group, set[str]] = {}
    sources: dict[_Group, dict[tuple[str, bool, str | None], CanonicalComponentSource]] = {}
    for model_name, record in records.items():
        if not isinstance(record, GenericModelRecord):
            raise CanonicalDerivationError("records", record, f"entry {model_name!r} is not a model record")
        for group, source in _candidates(model_name, record):
            carriers.setdefault(group, set()).add(model_name)
            sources.setdefault(group, {})[(source.model_name, source.embedded, source.file_name)] = source

    promoted = [
        CanonicalComponent(
            content_hash=content_hash,
            kind=kind,
            shared_by_model_count=len(models),
            sources=tuple(sources[(content_hash, kind)].values()),
        )
        for (content_hash, kind), models in carriers.items()
        if content_hash not in denied and (content_hash in allowed or len(models) >= min_shared_models)
    ]
    promoted.sort(key=lambda c: (c.kind.value, c.content_hash))
    return CanonicalComponentRegistry(components=tuple(promoted))
