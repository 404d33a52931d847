"""Licensing records (upstream 8.6.2 `horde_model_reference.licensing`), as msgspec Structs.

A `LicenseDefinition` is a reusable license (its `license_id` acts as a foreign key); a
`LicenseAssignment` is the reviewed conclusion for one scope (a model, a file, an asset): an
SPDX expression, the definitions it names, and the permissions concluded. `ModelLicensing` adds
per-download-file overrides; `LicensedAsset` is a licensed non-model asset (a software component,
a custom node). The JSON is upstream's (every field written, dates as `YYYY-MM-DD`, enums as
their values, unknown fields refused), so documents written by either side decode on the other.

Records are checked on construction and on decode (`__post_init__`): values are converted to
the declared types (`"allowed"` -> `PermissionStatus.ALLOWED`, lists -> tuples, ISO strings ->
dates) and upstream's rules enforced; a refusal is a `LicensingValueError` (a `ValueError`)
naming the record, field and value; decoding reports it as `msgspec.ValidationError`.

SPDX expressions are parsed as upstream's `license-expression` parses them without a license
list: `AND`, `OR`, `WITH` in any case (`WITH` binds tightest, then `AND`), parentheses, and
identifiers of letters, digits, `_ . : + -`; adjacent words form one identifier (`Apache 2.0`).
An identifier with an exception counts as one identifier: `GPL-2.0 WITH Classpath-exception-2.0`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from enum import StrEnum
from typing import Any

import msgspec

from horde_model_reference.compat._pydantic_style import PydanticStyle

__all__ = [
    "LICENSE_DATA_SCHEMA_VERSION",
    "NOASSERTION",
    "LicenseAssignment",
    "LicenseDefinition",
    "LicenseEvidence",
    "LicenseObligation",
    "LicensedAsset",
    "LicensedAssetKind",
    "LicensingRecordMetadata",
    "LicensingValueError",
    "ModelLicensing",
    "PermissionStatus",
    "aggregate_permission_statuses",
    "license_expression_identifiers",
    "unknown_model_licensing",
]

LICENSE_DATA_SCHEMA_VERSION = 1
"""Current schema version of the normalized licensing datasets."""

NOASSERTION = "NOASSERTION"
"""The SPDX sentinel for "no reviewed conclusion": an expression, never a definition."""

_UNKNOWN_NOTE = "No reviewed licensing conclusion is currently available."


class LicensingValueError(ValueError):
    """A licensing record refused: `record.field` held `value`, for `reason`."""

    def __init__(self, record: str, field: str, value: object, reason: str) -> None:
        self.record = record
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{record}.{field}: {reason} (got {value!r})")


class PermissionStatus(StrEnum):
    """The reviewed permission status for one activity (commercial use, redistribution)."""

    ALLOWED = "allowed"
    ALLOWED_WITH_CONDITIONS = "allowed_with_conditions"
    PROHIBITED = "prohibited"
    UNKNOWN = "unknown"


class LicenseObligation(StrEnum):
    """A common obligation consumers may need to surface."""

    ATTRIBUTION = "attribution"
    INCLUDE_LICENSE = "include_license"
    SHARE_ALIKE = "share_alike"
    DISCLOSE_SOURCE = "disclose_source"
    NETWORK_SOURCE_DISCLOSURE = "network_source_disclosure"
    RESPONSIBLE_USE_RESTRICTIONS = "responsible_use_restrictions"
    OTHER = "other"


class LicensedAssetKind(StrEnum):
    """The kind of a non-model licensed asset."""

    SOFTWARE_COMPONENT = "software_component"
    CUSTOM_NODE = "custom_node"
    OTHER = "other"


# --- SPDX expressions -------------------------------------------------------------------------

_TOKENS = re.compile(r"[^\s()]+|[()]")
_WORD = re.compile(r"[-:\w.+]+")
_OPERATORS = frozenset({"and", "or", "with"})


class _ExpressionSyntaxError(Exception):
    """Internal: why an expression does not parse (turned into a `LicensingValueError`)."""


class _Parser:
    """Recursive descent over `or := and (OR and)*`, `and := term (AND term)*`,
    `term := '(' or ')' | id [WITH id]`; collects the identifiers met."""

    def __init__(self, expression: str) -> None:
        self.tokens = self._tokenize(expression)
        self.position = 0
        self.identifiers: set[str] = set()

    @staticmethod
    def _tokenize(expression: str) -> list[tuple[str, str]]:
        """(kind, text) pairs; kind is "(", ")", "and", "or", "with" or "id" (words joined)."""
        tokens: list[tuple[str, str]] = []
        for match in _TOKENS.finditer(expression):
            text = match.group()
            lowered = text.lower()
            if text in "()":
                tokens.append((text, text))
            elif lowered in _OPERATORS:
                tokens.append((lowered, text))
            elif not _WORD.fullmatch(text):
                raise _ExpressionSyntaxError(
                    f"{text!r} is not a license identifier (letters, digits, '_', '.', ':', '+', '-')"
                )
            elif tokens and tokens[-1][0] == "id":
                tokens[-1] = ("id", f"{tokens[-1][1]} {text}")
            else:
                tokens.append(("id", text))
        return tokens

    def _peek(self) -> str | None:
        return self.tokens[self.position][0] if self.position < len(self.tokens) else None

    def _take(self, kind: str, wanted: str) -> str:
        if self._peek() != kind:
            found = repr(self.tokens[self.position][1]) if self.position < len(self.tokens) else "the end"
            raise _ExpressionSyntaxError(f"expected {wanted}, found {found}")
        text = self.tokens[self.position][1]
        self.position += 1
        return text

    def parse(self) -> frozenset[str]:
        if not self.tokens:
            raise _ExpressionSyntaxError("the expression is empty")
        self._or()
        if self.position < len(self.tokens):
            raise _ExpressionSyntaxError(f"unexpected {self.tokens[self.position][1]!r}")
        return frozenset(self.identifiers)

    def _or(self) -> None:
        self._and()
        while self._peek() == "or":
            self.position += 1
            self._and()

    def _and(self) -> None:
        self._term()
        while self._peek() == "and":
            self.position += 1
            self._term()

    def _term(self) -> None:
        if self._peek() == "(":
            self.position += 1
            self._or()
            self._take(")", "')'")
            return
        identifier = self._take("id", "a license identifier or '('")
        if self._peek() == "with":
            self.position += 1
            identifier = f"{identifier} WITH {self._take('id', 'an exception identifier after WITH')}"
        self.identifiers.add(identifier)


def license_expression_identifiers(expression: str) -> frozenset[str]:
    """The license identifiers an SPDX expression names (`X WITH E` counts as one).

    Raises `LicensingValueError` (field `license_expression`) when the expression does not parse.
    """
    try:
        return _Parser(expression).parse()
    except _ExpressionSyntaxError as exc:
        raise LicensingValueError(
            "license expression", "license_expression", expression, f"invalid SPDX expression: {exc}"
        ) from None


# --- records ----------------------------------------------------------------------------------

_FIELD_TYPES: dict[type, tuple[tuple[str, Any], ...]] = {}


class _LicensingRecord(PydanticStyle):
    """Mixin: converts fields to their declared types and `model_dump(mode="json")` gives dates as strings."""

    __slots__ = ()

    def _convert_fields(self) -> None:
        """Convert every field to its declared type, as pydantic does on construction."""
        assert isinstance(self, msgspec.Struct)
        cls = type(self)
        types = _FIELD_TYPES.get(cls)
        if types is None:
            types = _FIELD_TYPES[cls] = tuple((f.name, f.type) for f in msgspec.structs.fields(self))
        for name, field_type in types:
            value = getattr(self, name)
            try:
                converted = msgspec.convert(value, field_type, strict=False)
            except msgspec.ValidationError as exc:
                raise LicensingValueError(cls.__name__, name, value, str(exc)) from None
            if converted is not value:
                msgspec.structs.force_setattr(self, name, converted)

    def _require_text(self, *names: str) -> None:
        """Refuse an empty string in any of the named fields (upstream's `min_length=1`)."""
        for name in names:
            if getattr(self, name) == "":
                raise LicensingValueError(type(self).__name__, name, "", "must not be empty")


class LicensingRecordMetadata(
    msgspec.Struct, _LicensingRecord, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """Lifecycle metadata of an independently edited licensing record (Unix seconds, user ids)."""

    revision: int = 1
    created_at: int | None = None
    created_by: str | None = None
    updated_at: int | None = None
    updated_by: str | None = None

    def __post_init__(self) -> None:
        self._convert_fields()
        if self.revision < 1:
            raise LicensingValueError(type(self).__name__, "revision", self.revision, "must be at least 1")


class LicenseEvidence(
    msgspec.Struct, _LicensingRecord, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """One source supporting a licensing conclusion."""

    source: str
    description: str | None = None
    checked_at: date | None = None

    def __post_init__(self) -> None:
        self._convert_fields()
        self._require_text("source")


class LicenseDefinition(
    msgspec.Struct, _LicensingRecord, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """A reusable license: one atomic SPDX identifier or `LicenseRef-...`, and what it permits."""

    license_id: str
    name: str
    spdx_identifier: str | None = None
    canonical_url: str
    commercial_use: PermissionStatus
    redistribution: PermissionStatus
    obligations: tuple[LicenseObligation, ...] = ()
    restrictions: tuple[str, ...] = ()
    notes: str | None = None
    deprecated: bool = False
    metadata: LicensingRecordMetadata = msgspec.field(default_factory=LicensingRecordMetadata)

    def __post_init__(self) -> None:
        self._convert_fields()
        self._require_text("license_id", "name", "canonical_url")
        record = type(self).__name__
        try:
            identifiers = license_expression_identifiers(self.license_id)
        except LicensingValueError as exc:
            raise LicensingValueError(record, "license_id", self.license_id, exc.reason) from None
        if identifiers != {self.license_id}:
            raise LicensingValueError(
                record, "license_id", self.license_id, "must be one atomic SPDX identifier or LicenseRef"
            )
        if self.license_id == NOASSERTION:
            raise LicensingValueError(
                record, "license_id", self.license_id, "NOASSERTION is a conclusion, not a reusable license"
            )


class LicenseAssignment(
    msgspec.Struct, _LicensingRecord, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """A reviewed license conclusion for one scope.

    `license_ids` must be exactly the identifiers in `license_expression` (at least one), except
    for `NOASSERTION`, which names none and requires both permissions `unknown`.
    """

    license_expression: str
    license_ids: tuple[str, ...] = ()
    commercial_use: PermissionStatus
    redistribution: PermissionStatus
    obligations: tuple[LicenseObligation, ...] = ()
    attribution: str | None = None
    evidence: tuple[LicenseEvidence, ...] = ()
    reviewed_by: str | None = None
    reviewed_at: date | None = None
    notes: str | None = None

    def __post_init__(self) -> None:
        self._convert_fields()
        self._require_text("license_expression")
        record = type(self).__name__
        try:
            identifiers = license_expression_identifiers(self.license_expression)
        except LicensingValueError as exc:
            raise LicensingValueError(
                record, "license_expression", self.license_expression, exc.reason
            ) from None
        if self.license_expression == NOASSERTION:
            if self.license_ids:
                raise LicensingValueError(
                    record,
                    "license_ids",
                    self.license_ids,
                    "NOASSERTION must not reference license definitions",
                )
            for name in ("commercial_use", "redistribution"):
                if getattr(self, name) is not PermissionStatus.UNKNOWN:
                    raise LicensingValueError(
                        record, name, str(getattr(self, name)), f"NOASSERTION requires {name}='unknown'"
                    )
            return
        if identifiers != set(self.license_ids):
            raise LicensingValueError(
                record,
                "license_ids",
                self.license_ids,
                f"must be exactly the identifiers of {self.license_expression!r}: {sorted(identifiers)}",
            )


class ModelLicensing(LicenseAssignment, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A model's licensing conclusion, with optional overrides keyed by download `file_name`."""

    files: dict[str, LicenseAssignment] = msgspec.field(default_factory=dict)

    def assignment_for_file(self, file_name: str) -> LicenseAssignment:
        """The override for `file_name` (a `DownloadRecord.file_name`), else the model's own."""
        return self.files.get(file_name, self)


class LicensedAsset(msgspec.Struct, _LicensingRecord, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A licensed non-model asset (software component, custom node), keyed by kind and identifier."""

    asset_kind: LicensedAssetKind
    asset_identifier: str
    display_name: str
    source_url: str | None = None
    version: str | None = None
    locations: tuple[str, ...] = ()
    related_assets: tuple[str, ...] = ()
    licensing: LicenseAssignment
    notes: str | None = None
    metadata: LicensingRecordMetadata = msgspec.field(default_factory=LicensingRecordMetadata)

    def __post_init__(self) -> None:
        self._convert_fields()
        self._require_text("asset_identifier", "display_name")

    @property
    def asset_key(self) -> str:
        """The stable key of the asset: `<asset_kind>:<asset_identifier>`."""
        return f"{self.asset_kind.value}:{self.asset_identifier}"


def aggregate_permission_statuses(statuses: Iterable[PermissionStatus | str]) -> PermissionStatus:
    """The most conservative of several scoped conclusions.

    Any `prohibited` wins; else any `unknown` (or no status at all) gives `unknown`; else any
    `allowed_with_conditions`; else `allowed`. A value that is not a status raises `ValueError`.
    """
    present = {PermissionStatus(status) for status in statuses}
    for status in (PermissionStatus.PROHIBITED, PermissionStatus.UNKNOWN):
        if status in present:
            return status
    if not present:
        return PermissionStatus.UNKNOWN
    if PermissionStatus.ALLOWED_WITH_CONDITIONS in present:
        return PermissionStatus.ALLOWED_WITH_CONDITIONS
    return PermissionStatus.ALLOWED


def unknown_model_licensing(*, note: str | None = None) -> ModelLicensing:
    """An explicit fail-closed conclusion for an unreviewed model: `NOASSERTION`, both permissions `unknown`.

    `note` (a default explanation when empty) goes in `notes`.
    """
    return ModelLicensing(
        license_expression=NOASSERTION,
        commercial_use=PermissionStatus.UNKNOWN,
        redistribution=PermissionStatus.UNKNOWN,
        notes=note or _UNKNOWN_NOTE,
    )
