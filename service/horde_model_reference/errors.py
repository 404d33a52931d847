"""Exception types. Each carries the offending value so callers can report it precisely."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "BackendError",
    "BusNoDataError",
    "CatalogDecodeError",
    "CategoryNotFoundError",
    "ConflictError",
    "InvalidModelNameError",
    "ModelNotFoundError",
    "ModelReferenceError",
    "NoLegacyFormatError",
    "QueryValueError",
    "RecordDecodeError",
    "SettingsError",
    "UnknownCategoryError",
]


class ModelReferenceError(Exception):
    """Base class of every error this package raises on purpose."""


class UnknownCategoryError(ModelReferenceError, ValueError):
    """A category name that is not one of `MODEL_REFERENCE_CATEGORY`."""

    def __init__(self, value: object, valid: Iterable[str] = ()) -> None:
        self.value = value
        self.valid = tuple(valid)
        super().__init__(f"unknown category {value!r}; valid categories: {', '.join(self.valid)}")


class BusNoDataError(ModelReferenceError, TimeoutError):
    """A manager following the bus received no catalog at all within its ready timeout."""

    def __init__(self, nats_url: str, timeout: float) -> None:
        self.nats_url = nats_url
        self.timeout = timeout
        super().__init__(
            f"the bus had no model reference data in time: nothing arrived from NATS ({nats_url}) within "
            f"{timeout:g}s; is `hmr serve` running and publishing under this subject prefix?"
        )


class CategoryNotFoundError(ModelReferenceError, LookupError, RuntimeError):
    """A known category for which no catalog could be loaded.

    Also a `RuntimeError`, which is what today's library raises here.
    """

    def __init__(self, category: str, reason: str = "no catalog is available") -> None:
        self.category = category
        self.reason = reason
        super().__init__(f"category {category!r}: {reason}")


class ModelNotFoundError(ModelReferenceError, KeyError, RuntimeError):
    """A model name that is not in its category's catalog (also a `RuntimeError`, as today)."""

    def __init__(self, category: str, name: str) -> None:
        self.category = category
        self.name = name
        super().__init__(f"model {name!r} not found in category {category!r}")

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidModelNameError(ModelReferenceError, ValueError):
    """A model name that may not be used (empty, too long, or containing path separators or '..')."""

    def __init__(self, name: object, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"invalid model name {name!r}: {reason}")


class QueryValueError(ModelReferenceError, ValueError, TypeError):
    """A query cannot run on the values it met: ordering values that are not mutually comparable,
    grouping by an unhashable value. A `ValueError` as upstream's, and a `TypeError` as before.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class CatalogDecodeError(ModelReferenceError, ValueError):
    """A whole catalog could not be decoded (bad JSON, wrong top-level shape, bad encoding)."""

    def __init__(self, category: str, reason: str, *, source: str | None = None) -> None:
        self.category = category
        self.reason = reason
        self.source = source
        where = f" ({source})" if source else ""
        super().__init__(f"catalog {category!r}{where} cannot be decoded: {reason}")


class RecordDecodeError(ModelReferenceError, ValueError):
    """One record could not be decoded (raised in strict mode; reported and skipped otherwise)."""

    def __init__(self, category: str, name: str, reason: str, *, field: str | None = None) -> None:
        self.category = category
        self.name = name
        self.reason = reason
        self.field = field
        at = f" field {field!r}:" if field else ""
        super().__init__(f"record {name!r} in category {category!r}:{at} {reason}")


class NoLegacyFormatError(ModelReferenceError, ValueError):
    """A legacy conversion asked of a category that has no such legacy format."""

    def __init__(self, category: str, reason: str) -> None:
        self.category = category
        self.reason = reason
        super().__init__(f"category {category!r} has no legacy format for this: {reason}")


class BackendError(ModelReferenceError):
    """A backend failed to load or store data (network, disk, server)."""

    def __init__(self, backend: str, category: str | None, reason: str) -> None:
        self.backend = backend
        self.category = category
        self.reason = reason
        cat = f" category {category!r}:" if category else ""
        super().__init__(f"{backend}:{cat} {reason}")


class ConflictError(ModelReferenceError):
    """A write based on an older revision than the one it would replace."""

    def __init__(self, category: str, name: str, expected: object, actual: object) -> None:
        self.category = category
        self.name = name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"conflict on {name!r} in {category!r}: based on {expected!r} but the current one is {actual!r}"
        )


class SettingsError(ModelReferenceError, ValueError):
    """An invalid setting, named by its environment variable."""

    def __init__(self, variable: str, value: object, expected: str) -> None:
        self.variable = variable
        self.value = value
        self.expected = expected
        super().__init__(f"{variable}={value!r} is invalid: expected {expected}")
