"""The v2 records: one msgspec Struct per category, field names and JSON keys as in the v2 files.

Records are immutable (frozen Structs whose sequences are tuples: readers share them across threads
without copying, and an empty tuple costs nothing) and carry no GC header (`gc=False`: a record
never references itself). Unknown JSON fields are ignored, so a newer catalog decodes in an older
consumer. Image baselines and image and ControlNet styles are open string enums (`registries`): one
shared object per value, equal to its string; a value this version does not list still decodes and
is logged once by `catalog.decode_catalog`, never rejected.
"""

from collections.abc import Callable
from typing import Any, ClassVar, TypeAlias, TypeVar, overload

import msgspec

from horde_model_reference._open_enum import OpenStrEnum
from horde_model_reference.categories import (
    MODEL_REFERENCE_CATEGORY,
    RECORD_TYPE,
    ModelClassification,
    get_category_descriptor,
    parse_category,
)
from horde_model_reference.compat._pydantic_style import PydanticStyle, WireNamesMeta
from horde_model_reference.compat._record_mixin import UpstreamRecordMixin
from horde_model_reference.registries import CONTROLNET_STYLE, KNOWN_IMAGE_GENERATION_BASELINE, MODEL_STYLE

__all__ = [
    "MODEL_RECORD_TYPE_LOOKUP",
    "SCHEMA_VERSION",
    "SCHEMA_VERSION_VALUE",
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
    "RequirementValue",
    "SafetyCheckerModelRecord",
    "TextGenerationModelRecord",
    "TextualInversionModelRecord",
    "VideoGenerationModelRecord",
    "record_type_for",
    "register_record_type",
]


class SCHEMA_VERSION_VALUE(OpenStrEnum):
    """A record's `metadata.schema_version` (open: another version still decodes)."""

    v2_1_0 = "2.1.0"


SCHEMA_VERSION = SCHEMA_VERSION_VALUE.v2_1_0

RequirementValue: TypeAlias = int | float | str | bool | tuple[int | float | str, ...]
"""A value in an image model's `requirements` or a text model's `settings`."""


def _classification(category: MODEL_REFERENCE_CATEGORY) -> ModelClassification:
    return get_category_descriptor(category).classification


class DownloadRecord(msgspec.Struct, PydanticStyle, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """A file to download for a model."""

    file_name: str
    file_url: str
    sha256sum: str | None = None
    content_hash: str | None = None
    """The component's container-independent tensor-content hash (`weights.canonical` keys on it)."""
    file_purpose: str | None = None
    known_slow_download: bool | None = None
    size_bytes: int | None = None


class GenericModelRecordConfig(
    msgspec.Struct, PydanticStyle, frozen=True, gc=False, kw_only=True, omit_defaults=True
):
    """The files that make up a model."""

    download: tuple[DownloadRecord, ...] = ()
    embedded_component_hashes: dict[str, str] | None = None
    """{component kind ("vae", "text_encoders"): content hash} of the components inside a single-file
    checkpoint (split-file models put `content_hash` on each component download instead)."""


class GenericModelRecordMetadata(
    msgspec.Struct, PydanticStyle, frozen=True, gc=False, kw_only=True, omit_defaults=True
):
    """Who created and updated a record, and when (Unix seconds)."""

    schema_version: SCHEMA_VERSION_VALUE = SCHEMA_VERSION
    created_at: int | None = None
    updated_at: int | None = None
    created_by: str | None = None
    updated_by: str | None = None


class FineTuneSeriesInfo(
    msgspec.Struct, PydanticStyle, frozen=True, gc=False, kw_only=True, omit_defaults=True
):
    """The fine-tuning series a model belongs to."""

    name: str
    version: str | None = None
    author: str | None = None
    description: str | None = None
    homepage: str | None = None


_DEFAULT_METADATA = GenericModelRecordMetadata()


class GenericModelRecord(
    msgspec.Struct, UpstreamRecordMixin, frozen=True, gc=False, kw_only=True, omit_defaults=True
):
    """The fields every record has. Also the record type of categories without a dedicated one.

    `UpstreamRecordMixin` adds upstream's pydantic-style methods (`model_dump`, `model_copy`, ...)
    and download properties (`declared_total_size_bytes`, ...): methods only, no per-record cost.
    """

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = None

    record_type: RECORD_TYPE = RECORD_TYPE("")
    """The record's category name; empty (and left out of the JSON) when a record does not say."""
    name: str
    description: str | None = None
    version: str | None = None
    finetune_series: FineTuneSeriesInfo | None = None
    metadata: GenericModelRecordMetadata = _DEFAULT_METADATA
    config: GenericModelRecordConfig = msgspec.field(default_factory=GenericModelRecordConfig)
    model_classification: ModelClassification | None = None
    size_on_disk_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-ready builtins (wire field names)."""
        result: dict[str, Any] = msgspec.to_builtins(self)
        return result

    def to_json(self) -> bytes:
        """The record as JSON bytes (wire field names)."""
        return msgspec.json.encode(self)


def _typed(category: MODEL_REFERENCE_CATEGORY) -> tuple[RECORD_TYPE, ModelClassification]:
    return RECORD_TYPE(category.value), _classification(category)


_C = MODEL_REFERENCE_CATEGORY
_IMAGE_GEN, _IMAGE_GEN_CLS = _typed(_C.image_generation)
_TEXT_GEN, _TEXT_GEN_CLS = _typed(_C.text_generation)
_CONTROLNET, _CONTROLNET_CLS = _typed(_C.controlnet)
_ANNOTATOR, _ANNOTATOR_CLS = _typed(_C.controlnet_annotator)
_BLIP, _BLIP_CLS = _typed(_C.blip)
_CLIP, _CLIP_CLS = _typed(_C.clip)
_CODEFORMER, _CODEFORMER_CLS = _typed(_C.codeformer)
_ESRGAN, _ESRGAN_CLS = _typed(_C.esrgan)
_GFPGAN, _GFPGAN_CLS = _typed(_C.gfpgan)
_SAFETY, _SAFETY_CLS = _typed(_C.safety_checker)
_VIDEO, _VIDEO_CLS = _typed(_C.video_generation)
_AUDIO, _AUDIO_CLS = _typed(_C.audio_generation)
_MISC, _MISC_CLS = _typed(_C.miscellaneous)
_LORA, _LORA_CLS = _typed(_C.lora)
_TI, _TI_CLS = _typed(_C.ti)


class ImageGenerationModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """An image generation checkpoint (`stable_diffusion.json`)."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.image_generation

    record_type: RECORD_TYPE = _IMAGE_GEN
    model_classification: ModelClassification | None = _IMAGE_GEN_CLS
    inpainting: bool | None = False
    baseline: KNOWN_IMAGE_GENERATION_BASELINE
    optimization: str | None = None
    tags: tuple[str, ...] | None = None
    showcases: tuple[str, ...] | None = None
    min_bridge_version: int | None = None
    trigger: tuple[str, ...] | None = None
    homepage: str | None = None
    nsfw: bool
    style: MODEL_STYLE | None = None
    requirements: dict[str, RequirementValue] | None = None


class TextGenerationModelRecord(
    GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True, metaclass=WireNamesMeta
):
    """A text generation model. `parameters_count` is `parameters` on the wire.

    The constructor takes either name (`parameters=` as upstream's records accept).
    """

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.text_generation

    record_type: RECORD_TYPE = _TEXT_GEN
    model_classification: ModelClassification | None = _TEXT_GEN_CLS
    baseline: str | None = None
    parameters_count: int = msgspec.field(name="parameters")
    nsfw: bool = False
    style: str | None = None
    display_name: str | None = None
    url: str | None = None
    tags: tuple[str, ...] | None = None
    instruct_format: str | None = None
    settings: dict[str, RequirementValue] | None = None
    text_model_group: str | None = None


class ControlNetModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """A ControlNet model."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.controlnet

    record_type: RECORD_TYPE = _CONTROLNET
    model_classification: ModelClassification | None = _CONTROLNET_CLS
    controlnet_style: CONTROLNET_STYLE | None = None


class ControlNetAnnotatorModelRecord(
    GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True
):
    """A ControlNet annotator (detector) checkpoint."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.controlnet_annotator

    record_type: RECORD_TYPE = _ANNOTATOR
    model_classification: ModelClassification | None = _ANNOTATOR_CLS
    control_types: tuple[str, ...] = ()
    preprocessors: tuple[str, ...] = ()


class BlipModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """A BLIP captioning model."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.blip

    record_type: RECORD_TYPE = _BLIP
    model_classification: ModelClassification | None = _BLIP_CLS


class ClipModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """A CLIP model."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.clip

    record_type: RECORD_TYPE = _CLIP
    model_classification: ModelClassification | None = _CLIP_CLS
    pretrained_name: str | None = None


class CodeformerModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """A CodeFormer face restoration model."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.codeformer

    record_type: RECORD_TYPE = _CODEFORMER
    model_classification: ModelClassification | None = _CODEFORMER_CLS


class EsrganModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """An ESRGAN upscaler."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.esrgan

    record_type: RECORD_TYPE = _ESRGAN
    model_classification: ModelClassification | None = _ESRGAN_CLS


class GfpganModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """A GFPGAN face restoration model."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.gfpgan

    record_type: RECORD_TYPE = _GFPGAN
    model_classification: ModelClassification | None = _GFPGAN_CLS


class SafetyCheckerModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """A safety checker model."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.safety_checker

    record_type: RECORD_TYPE = _SAFETY
    model_classification: ModelClassification | None = _SAFETY_CLS


class VideoGenerationModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """A video generation model."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.video_generation

    record_type: RECORD_TYPE = _VIDEO
    model_classification: ModelClassification | None = _VIDEO_CLS
    baseline: str | None = None
    nsfw: bool = False
    tags: tuple[str, ...] | None = None


class AudioGenerationModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """An audio generation model."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.audio_generation

    record_type: RECORD_TYPE = _AUDIO
    model_classification: ModelClassification | None = _AUDIO_CLS
    baseline: str | None = None
    nsfw: bool = False
    tags: tuple[str, ...] | None = None


class MiscellaneousModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """A model that fits no other category."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.miscellaneous

    record_type: RECORD_TYPE = _MISC
    model_classification: ModelClassification | None = _MISC_CLS
    baseline: str | None = None


class LoraModelRecord(GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True):
    """A LoRA (served by providers only)."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.lora

    record_type: RECORD_TYPE = _LORA
    model_classification: ModelClassification | None = _LORA_CLS
    baseline: str | None = None
    nsfw: bool = False
    tags: tuple[str, ...] | None = None
    trigger: tuple[str, ...] | None = None
    homepage: str | None = None
    showcases: tuple[str, ...] | None = None


class TextualInversionModelRecord(
    GenericModelRecord, frozen=True, gc=False, kw_only=True, omit_defaults=True
):
    """A textual inversion embedding (served by providers only)."""

    category: ClassVar[MODEL_REFERENCE_CATEGORY | None] = _C.ti

    record_type: RECORD_TYPE = _TI
    model_classification: ModelClassification | None = _TI_CLS
    baseline: str | None = None
    nsfw: bool = False
    tags: tuple[str, ...] | None = None
    trigger: tuple[str, ...] | None = None
    homepage: str | None = None
    showcases: tuple[str, ...] | None = None


MODEL_RECORD_TYPE_LOOKUP: dict[MODEL_REFERENCE_CATEGORY, type[GenericModelRecord]] = {
    _C.image_generation: ImageGenerationModelRecord,
    _C.text_generation: TextGenerationModelRecord,
    _C.controlnet: ControlNetModelRecord,
    _C.controlnet_annotator: ControlNetAnnotatorModelRecord,
    _C.blip: BlipModelRecord,
    _C.clip: ClipModelRecord,
    _C.codeformer: CodeformerModelRecord,
    _C.esrgan: EsrganModelRecord,
    _C.gfpgan: GfpganModelRecord,
    _C.safety_checker: SafetyCheckerModelRecord,
    _C.video_generation: VideoGenerationModelRecord,
    _C.audio_generation: AudioGenerationModelRecord,
    _C.miscellaneous: MiscellaneousModelRecord,
    _C.lora: LoraModelRecord,
    _C.ti: TextualInversionModelRecord,
}
"""The record type of each category."""


_R = TypeVar("_R", bound=type[GenericModelRecord])


@overload
def register_record_type(category: str | MODEL_REFERENCE_CATEGORY, record_type: _R) -> _R: ...


@overload
def register_record_type(category: str | MODEL_REFERENCE_CATEGORY) -> Callable[[_R], _R]: ...


def register_record_type(
    category: str | MODEL_REFERENCE_CATEGORY, record_type: _R | None = None
) -> _R | Callable[[_R], _R]:
    """Use `record_type` to decode `category` (it must subclass `GenericModelRecord`); returns it.

    Without `record_type`, returns a class decorator doing the same (upstream's form:
    `@register_record_type(MODEL_REFERENCE_CATEGORY.lora)`).
    """
    if record_type is None:
        parse_category(category)

        def decorator(cls: _R) -> _R:
            return register_record_type(category, cls)

        return decorator
    if not (isinstance(record_type, type) and issubclass(record_type, GenericModelRecord)):
        raise TypeError(f"record type for {category!r} must subclass GenericModelRecord, got {record_type!r}")
    MODEL_RECORD_TYPE_LOOKUP[parse_category(category)] = record_type
    return record_type


def record_type_for(category: str | MODEL_REFERENCE_CATEGORY) -> type[GenericModelRecord]:
    """The record type that decodes `category`."""
    return MODEL_RECORD_TYPE_LOOKUP.get(parse_category(category), GenericModelRecord)
