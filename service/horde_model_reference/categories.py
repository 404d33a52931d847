"""The model reference categories and what each one is.

One `CategoryDescriptor` per `MODEL_REFERENCE_CATEGORY` says where its data lives (the v2 file
name, the legacy file name, which GitHub repository serves the legacy file) and how its records
are classified (domain and purpose).
"""

from enum import StrEnum
from typing import Literal

import msgspec

from horde_model_reference._open_enum import ClosedCallEnumType, OpenStrEnum
from horde_model_reference.compat._pydantic_style import PydanticStyle
from horde_model_reference.errors import UnknownCategoryError

__all__ = [
    "MODEL_DOMAIN",
    "MODEL_PURPOSE",
    "MODEL_REFERENCE_CATEGORY",
    "RECORD_TYPE",
    "CategoryDescriptor",
    "ModelClassification",
    "all_categories",
    "canonical_categories",
    "get_category_descriptor",
    "parse_category",
]


class MODEL_DOMAIN(OpenStrEnum, metaclass=ClosedCallEnumType):
    """What a model pertains to (open: a domain this version does not list still decodes)."""

    image = "image"
    text = "text"
    video = "video"
    audio = "audio"
    rendered_3d = "rendered_3d"


class MODEL_PURPOSE(OpenStrEnum, metaclass=ClosedCallEnumType):
    """The primary purpose of a model (open: a purpose this version does not list still decodes)."""

    generation = "generation"
    post_processing = "post_processing"
    auxiliary_or_patch = "auxiliary_or_patch"
    feature_extractor = "feature_extractor"
    safety_checker = "safety_checker"
    miscellaneous = "miscellaneous"


class MODEL_REFERENCE_CATEGORY(StrEnum):
    """The categories of the model reference, one catalog each."""

    blip = "blip"
    clip = "clip"
    codeformer = "codeformer"
    controlnet = "controlnet"
    controlnet_annotator = "controlnet_annotator"
    esrgan = "esrgan"
    gfpgan = "gfpgan"
    safety_checker = "safety_checker"
    image_generation = "image_generation"
    text_generation = "text_generation"
    video_generation = "video_generation"
    audio_generation = "audio_generation"
    miscellaneous = "miscellaneous"
    lora = "lora"
    ti = "ti"


# The names of MODEL_REFERENCE_CATEGORY again, spelled out because typing needs a class (a test
# keeps the two in step); MODEL_REFERENCE_CATEGORY stays closed: an unknown category is an error.
class RECORD_TYPE(OpenStrEnum):
    """A record's `record_type`: the name of its category (open: another value still decodes)."""

    blip = "blip"
    clip = "clip"
    codeformer = "codeformer"
    controlnet = "controlnet"
    controlnet_annotator = "controlnet_annotator"
    esrgan = "esrgan"
    gfpgan = "gfpgan"
    safety_checker = "safety_checker"
    image_generation = "image_generation"
    text_generation = "text_generation"
    video_generation = "video_generation"
    audio_generation = "audio_generation"
    miscellaneous = "miscellaneous"
    lora = "lora"
    ti = "ti"


class ModelClassification(msgspec.Struct, PydanticStyle, frozen=True, gc=False):
    """How a model is categorised: its domain and purpose.

    Both are open enums, plain strings on the wire: a newer catalog with a new domain or purpose
    still decodes in an older consumer.
    """

    domain: MODEL_DOMAIN
    purpose: MODEL_PURPOSE


class CategoryDescriptor(msgspec.Struct, frozen=True, gc=False):
    """Everything known about one category, in one place."""

    category: MODEL_REFERENCE_CATEGORY
    domain: MODEL_DOMAIN
    purpose: MODEL_PURPOSE
    github_source: Literal["image", "text"] | None = None
    """Which upstream GitHub repository serves the legacy file; None when there is none."""
    managed_elsewhere: bool = False
    """True for categories that come only from providers (LoRA, TI)."""
    filename_override: str | None = None
    legacy_filename_override: str | None = None
    on_disk_folder_name: str | None = None
    """The folder under a worker's model-weights root holding the category's files (None: no folder)."""
    weights_marker: bool = False
    """Whether that folder is one of those whose joint presence marks the model-weights root."""
    managed_download_elsewhere: bool = False
    """Whether the category's files are downloaded by another mechanism (LoRA, TI: CivitAI)."""

    @property
    def v2_filename(self) -> str:
        """The file name of the category's v2 catalog."""
        return self.filename_override or f"{self.category.value}.json"

    @property
    def legacy_filename(self) -> str | None:
        """The file name of the legacy catalog, or None when the category has no legacy format."""
        if self.github_source is None:
            return None
        return self.legacy_filename_override or self.v2_filename

    @property
    def has_legacy_format(self) -> bool:
        """Whether an upstream legacy file exists for the category."""
        return self.github_source is not None

    @property
    def classification(self) -> ModelClassification:
        """The default classification of the category's records."""
        return ModelClassification(domain=self.domain, purpose=self.purpose)


_C = MODEL_REFERENCE_CATEGORY
_D = MODEL_DOMAIN
_P = MODEL_PURPOSE

_DESCRIPTORS: dict[MODEL_REFERENCE_CATEGORY, CategoryDescriptor] = {
    d.category: d
    for d in (
        CategoryDescriptor(_C.blip, _D.image, _P.feature_extractor, "image", on_disk_folder_name="blip"),
        CategoryDescriptor(
            _C.clip, _D.image, _P.feature_extractor, "image", on_disk_folder_name="clip", weights_marker=True
        ),
        CategoryDescriptor(
            _C.codeformer, _D.image, _P.post_processing, "image", on_disk_folder_name="codeformer"
        ),
        CategoryDescriptor(
            _C.controlnet, _D.image, _P.auxiliary_or_patch, "image", on_disk_folder_name="controlnet"
        ),
        CategoryDescriptor(
            _C.controlnet_annotator, _D.image, _P.auxiliary_or_patch, on_disk_folder_name="controlnet"
        ),
        CategoryDescriptor(_C.esrgan, _D.image, _P.post_processing, "image", on_disk_folder_name="esrgan"),
        CategoryDescriptor(_C.gfpgan, _D.image, _P.post_processing, "image", on_disk_folder_name="gfpgan"),
        CategoryDescriptor(
            _C.safety_checker, _D.image, _P.safety_checker, "image", on_disk_folder_name="safety_checker"
        ),
        CategoryDescriptor(
            _C.image_generation,
            _D.image,
            _P.generation,
            "image",
            filename_override="stable_diffusion.json",
            on_disk_folder_name="compvis",
            weights_marker=True,
        ),
        CategoryDescriptor(
            _C.text_generation,
            _D.text,
            _P.generation,
            "text",
            filename_override="text_generation.json",
            legacy_filename_override="models.csv",
        ),
        CategoryDescriptor(_C.video_generation, _D.video, _P.generation),
        CategoryDescriptor(_C.audio_generation, _D.audio, _P.generation),
        CategoryDescriptor(
            _C.miscellaneous, _D.image, _P.miscellaneous, "image", on_disk_folder_name="miscellaneous"
        ),
        CategoryDescriptor(
            _C.lora,
            _D.image,
            _P.auxiliary_or_patch,
            managed_elsewhere=True,
            on_disk_folder_name="lora",
            managed_download_elsewhere=True,
        ),
        CategoryDescriptor(
            _C.ti,
            _D.image,
            _P.auxiliary_or_patch,
            managed_elsewhere=True,
            on_disk_folder_name="ti",
            managed_download_elsewhere=True,
        ),
    )
}

_ALIASES: dict[str, MODEL_REFERENCE_CATEGORY] = {
    "stable_diffusion": MODEL_REFERENCE_CATEGORY.image_generation,
}


def parse_category(value: str | MODEL_REFERENCE_CATEGORY) -> MODEL_REFERENCE_CATEGORY:
    """Return the category named by `value` (a member, its value, or a known alias).

    Raises `UnknownCategoryError` naming the value and the valid categories otherwise.
    """
    if isinstance(value, MODEL_REFERENCE_CATEGORY):
        return value
    try:
        return MODEL_REFERENCE_CATEGORY(value)
    except ValueError:
        alias = _ALIASES.get(value) if isinstance(value, str) else None
        if alias is not None:
            return alias
        raise UnknownCategoryError(value, (c.value for c in MODEL_REFERENCE_CATEGORY)) from None


def get_category_descriptor(category: str | MODEL_REFERENCE_CATEGORY) -> CategoryDescriptor:
    """Return the descriptor of `category`."""
    return _DESCRIPTORS[parse_category(category)]


def all_categories() -> tuple[MODEL_REFERENCE_CATEGORY, ...]:
    """Every category, in declaration order."""
    return tuple(MODEL_REFERENCE_CATEGORY)


def canonical_categories() -> tuple[MODEL_REFERENCE_CATEGORY, ...]:
    """The categories whose canonical data this service owns (all but those managed elsewhere)."""
    return tuple(c for c in MODEL_REFERENCE_CATEGORY if not _DESCRIPTORS[c].managed_elsewhere)
