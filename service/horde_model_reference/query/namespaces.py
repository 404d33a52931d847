"""Field namespaces (one per record type) and the field-name literals the builders are typed with.

Python attribute names throughout (text `parameters_count`, `parameters` on the wire). A test
checks every namespace and literal against the record Structs, so they cannot drift.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

from horde_model_reference.query.fields import FieldRef

__all__ = [
    "AudioFieldName",
    "AudioFields",
    "BlipFields",
    "ClipFieldName",
    "ClipFields",
    "CodeformerFields",
    "ControlNetAnnotatorFieldName",
    "ControlNetAnnotatorFields",
    "ControlNetFieldName",
    "ControlNetFields",
    "EsrganFields",
    "GenericFieldName",
    "GenericFields",
    "GfpganFields",
    "ImageFields",
    "ImageGenFieldName",
    "LoraFieldName",
    "LoraFields",
    "MiscellaneousFieldName",
    "MiscellaneousFields",
    "SafetyCheckerFields",
    "TextFields",
    "TextGenFieldName",
    "TextualInversionFieldName",
    "TextualInversionFields",
    "VideoFieldName",
    "VideoFields",
]

_GENERIC = Literal[
    "record_type",
    "name",
    "description",
    "version",
    "finetune_series",
    "metadata",
    "config",
    "model_classification",
    "size_on_disk_bytes",
]
GenericFieldName: TypeAlias = _GENERIC
ImageGenFieldName: TypeAlias = Literal[
    _GENERIC,
    "inpainting",
    "baseline",
    "optimization",
    "tags",
    "showcases",
    "min_bridge_version",
    "trigger",
    "homepage",
    "nsfw",
    "style",
    "requirements",
]
TextGenFieldName: TypeAlias = Literal[
    _GENERIC,
    "baseline",
    "parameters_count",
    "nsfw",
    "style",
    "display_name",
    "url",
    "tags",
    "instruct_format",
    "settings",
    "text_model_group",
]
ControlNetFieldName: TypeAlias = Literal[_GENERIC, "controlnet_style"]
ControlNetAnnotatorFieldName: TypeAlias = Literal[_GENERIC, "control_types", "preprocessors"]
ClipFieldName: TypeAlias = Literal[_GENERIC, "pretrained_name"]
VideoFieldName: TypeAlias = Literal[_GENERIC, "baseline", "nsfw", "tags"]
AudioFieldName: TypeAlias = Literal[_GENERIC, "baseline", "nsfw", "tags"]
MiscellaneousFieldName: TypeAlias = Literal[_GENERIC, "baseline"]
LoraFieldName: TypeAlias = Literal[_GENERIC, "baseline", "nsfw", "tags", "trigger", "homepage", "showcases"]
TextualInversionFieldName: TypeAlias = LoraFieldName


class GenericFields:
    """Fields of `GenericModelRecord` (every record has them)."""

    record_type = FieldRef("record_type")
    name = FieldRef("name")
    description = FieldRef("description")
    version = FieldRef("version")
    finetune_series = FieldRef("finetune_series")
    metadata = FieldRef("metadata")
    config = FieldRef("config")
    model_classification = FieldRef("model_classification")
    size_on_disk_bytes = FieldRef("size_on_disk_bytes")


class ImageFields(GenericFields):
    """Fields of `ImageGenerationModelRecord`."""

    inpainting = FieldRef("inpainting")
    baseline = FieldRef("baseline")
    optimization = FieldRef("optimization")
    tags = FieldRef("tags")
    showcases = FieldRef("showcases")
    min_bridge_version = FieldRef("min_bridge_version")
    trigger = FieldRef("trigger")
    homepage = FieldRef("homepage")
    nsfw = FieldRef("nsfw")
    style = FieldRef("style")
    requirements = FieldRef("requirements")


class TextFields(GenericFields):
    """Fields of `TextGenerationModelRecord` (`parameters_count` is `parameters` on the wire)."""

    baseline = FieldRef("baseline")
    parameters_count = FieldRef("parameters_count")
    nsfw = FieldRef("nsfw")
    style = FieldRef("style")
    display_name = FieldRef("display_name")
    url = FieldRef("url")
    tags = FieldRef("tags")
    instruct_format = FieldRef("instruct_format")
    settings = FieldRef("settings")
    text_model_group = FieldRef("text_model_group")


class ControlNetFields(GenericFields):
    """Fields of `ControlNetModelRecord`."""

    controlnet_style = FieldRef("controlnet_style")


class ControlNetAnnotatorFields(GenericFields):
    """Fields of `ControlNetAnnotatorModelRecord`."""

    control_types = FieldRef("control_types")
    preprocessors = FieldRef("preprocessors")


class BlipFields(GenericFields):
    """Fields of `BlipModelRecord`."""


class ClipFields(GenericFields):
    """Fields of `ClipModelRecord`."""

    pretrained_name = FieldRef("pretrained_name")


class CodeformerFields(GenericFields):
    """Fields of `CodeformerModelRecord`."""


class EsrganFields(GenericFields):
    """Fields of `EsrganModelRecord`."""


class GfpganFields(GenericFields):
    """Fields of `GfpganModelRecord`."""


class SafetyCheckerFields(GenericFields):
    """Fields of `SafetyCheckerModelRecord`."""


class VideoFields(GenericFields):
    """Fields of `VideoGenerationModelRecord`."""

    baseline = FieldRef("baseline")
    nsfw = FieldRef("nsfw")
    tags = FieldRef("tags")


class AudioFields(GenericFields):
    """Fields of `AudioGenerationModelRecord`."""

    baseline = FieldRef("baseline")
    nsfw = FieldRef("nsfw")
    tags = FieldRef("tags")


class MiscellaneousFields(GenericFields):
    """Fields of `MiscellaneousModelRecord`."""

    baseline = FieldRef("baseline")


class LoraFields(GenericFields):
    """Fields of `LoraModelRecord`."""

    baseline = FieldRef("baseline")
    nsfw = FieldRef("nsfw")
    tags = FieldRef("tags")
    trigger = FieldRef("trigger")
    homepage = FieldRef("homepage")
    showcases = FieldRef("showcases")


class TextualInversionFields(LoraFields):
    """Fields of `TextualInversionModelRecord` (the same as a LoRA's)."""
