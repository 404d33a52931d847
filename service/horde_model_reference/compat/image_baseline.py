"""Mirrors `horde_model_reference.image_baseline` (8.6.2): the served image-baseline catalog's records.

msgspec Structs in place of upstream's frozen pydantic models, with the same field names and
defaults. Unknown fields are rejected (upstream's `extra="forbid"`); the numeric and length bounds
are checked when decoding (`msgspec.convert` / `model_validate`), not on plain construction.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from horde_model_reference.compat._pydantic_style import PydanticStyle

__all__ = [
    "IMAGE_BASELINE_SCHEMA_VERSION",
    "BaselineCapabilities",
    "BaselineRecordMetadata",
    "HordeBaselinePolicy",
    "ImageBaselineCatalog",
    "ImageBaselineCatalogMetadata",
    "ImageBaselineChange",
    "ImageBaselineChangeSet",
    "ImageBaselineRecord",
]

IMAGE_BASELINE_SCHEMA_VERSION = 1

_AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]
_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]


class BaselineCapabilities(
    msgspec.Struct, PydanticStyle, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """What exists for one baseline family (conservative defaults: nothing claimed)."""

    controlnet: bool = False
    controlnet_types_unavailable: tuple[str, ...] = ()
    transparent: bool = False
    qr_code: bool = False
    remix: bool = False
    flow_matching: bool = False


class HordeBaselinePolicy(
    msgspec.Struct, PydanticStyle, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """AI-Horde scheduling and pricing policy for one baseline (defaults: par values)."""

    kudos: float = 1
    kudos_qr_code: float | None = None
    kudos_hires: float | None = None
    batching: _AtLeastOne = 1
    ttl: _AtLeastOne = 1
    resolution_floor: Annotated[int, msgspec.Meta(ge=0)] = 0


class BaselineRecordMetadata(
    msgspec.Struct, PydanticStyle, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """Revision and authorship of one baseline record."""

    revision: _AtLeastOne = 1
    created_at: int | None = None
    created_by: str | None = None
    updated_at: int | None = None
    updated_by: str | None = None


class ImageBaselineRecord(
    msgspec.Struct, PydanticStyle, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """One baseline family: its names, native resolution, capabilities and Horde policy."""

    name: _NonEmpty
    display_name: str | None = None
    native_resolution: _AtLeastOne | None = None
    alternative_names: tuple[str, ...] = ()
    capabilities: BaselineCapabilities = BaselineCapabilities()
    horde_policy: HordeBaselinePolicy = HordeBaselinePolicy()
    metadata: BaselineRecordMetadata = msgspec.field(default_factory=BaselineRecordMetadata)


class ImageBaselineCatalogMetadata(
    msgspec.Struct, PydanticStyle, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """The catalog's schema version and revision."""

    schema_version: int = IMAGE_BASELINE_SCHEMA_VERSION
    revision: _AtLeastOne = 1
    updated_at: int | None = None


class ImageBaselineCatalog(msgspec.Struct, PydanticStyle, kw_only=True, forbid_unknown_fields=True):
    """Every baseline record, by name."""

    metadata: ImageBaselineCatalogMetadata = msgspec.field(default_factory=ImageBaselineCatalogMetadata)
    baselines: dict[str, ImageBaselineRecord] = msgspec.field(default_factory=dict)


class ImageBaselineChange(
    msgspec.Struct, PydanticStyle, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """One proposed upsert or delete of a baseline."""

    operation: Literal["upsert", "delete"]
    name: _NonEmpty
    record: ImageBaselineRecord | None = None
    expected_before: ImageBaselineRecord | None = None


class ImageBaselineChangeSet(
    msgspec.Struct, PydanticStyle, frozen=True, kw_only=True, forbid_unknown_fields=True
):
    """A titled, non-empty list of baseline changes."""

    title: Annotated[str, msgspec.Meta(min_length=1, max_length=160)]
    changes: tuple[ImageBaselineChange, ...] = ()

    def __post_init__(self) -> None:
        if not self.changes:
            raise ValueError("A baseline change set must contain at least one change.")
