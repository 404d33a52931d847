"""Typed per-category properties of the manager (`image_generation_models`, ...)."""

from __future__ import annotations

from typing import TypeVar

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.records import (
    AudioGenerationModelRecord,
    BlipModelRecord,
    ClipModelRecord,
    CodeformerModelRecord,
    ControlNetAnnotatorModelRecord,
    ControlNetModelRecord,
    EsrganModelRecord,
    GfpganModelRecord,
    ImageGenerationModelRecord,
    LoraModelRecord,
    MiscellaneousModelRecord,
    SafetyCheckerModelRecord,
    TextGenerationModelRecord,
    TextualInversionModelRecord,
    VideoGenerationModelRecord,
)

__all__ = ["TypedAccessMixin"]

R = TypeVar("R")


class TypedAccessMixin:
    """One property per category returning `{name: record}` typed with the category's record type.

    A category without a catalog reads as an empty mapping.
    """

    def _typed(self, category: MODEL_REFERENCE_CATEGORY, record_type: type[R]) -> dict[str, R]:
        records = self.get_model_reference_or_none(category)  # type: ignore[attr-defined]
        if not records:
            return {}
        return {name: record for name, record in records.items() if isinstance(record, record_type)}

    @property
    def blip_models(self) -> dict[str, BlipModelRecord]:
        """The blip records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.blip, BlipModelRecord)

    @property
    def clip_models(self) -> dict[str, ClipModelRecord]:
        """The clip records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.clip, ClipModelRecord)

    @property
    def codeformer_models(self) -> dict[str, CodeformerModelRecord]:
        """The codeformer records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.codeformer, CodeformerModelRecord)

    @property
    def controlnet_models(self) -> dict[str, ControlNetModelRecord]:
        """The controlnet records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.controlnet, ControlNetModelRecord)

    @property
    def controlnet_annotator_models(self) -> dict[str, ControlNetAnnotatorModelRecord]:
        """The controlnet_annotator records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.controlnet_annotator, ControlNetAnnotatorModelRecord)

    @property
    def esrgan_models(self) -> dict[str, EsrganModelRecord]:
        """The esrgan records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.esrgan, EsrganModelRecord)

    @property
    def gfpgan_models(self) -> dict[str, GfpganModelRecord]:
        """The gfpgan records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.gfpgan, GfpganModelRecord)

    @property
    def safety_checker_models(self) -> dict[str, SafetyCheckerModelRecord]:
        """The safety_checker records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.safety_checker, SafetyCheckerModelRecord)

    @property
    def image_generation_models(self) -> dict[str, ImageGenerationModelRecord]:
        """The image_generation records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.image_generation, ImageGenerationModelRecord)

    @property
    def text_generation_models(self) -> dict[str, TextGenerationModelRecord]:
        """The text_generation records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.text_generation, TextGenerationModelRecord)

    @property
    def video_generation_models(self) -> dict[str, VideoGenerationModelRecord]:
        """The video_generation records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.video_generation, VideoGenerationModelRecord)

    @property
    def audio_generation_models(self) -> dict[str, AudioGenerationModelRecord]:
        """The audio_generation records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.audio_generation, AudioGenerationModelRecord)

    @property
    def miscellaneous_models(self) -> dict[str, MiscellaneousModelRecord]:
        """The miscellaneous records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.miscellaneous, MiscellaneousModelRecord)

    @property
    def lora_models(self) -> dict[str, LoraModelRecord]:
        """The lora records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.lora, LoraModelRecord)

    @property
    def ti_models(self) -> dict[str, TextualInversionModelRecord]:
        """The ti records by name."""
        return self._typed(MODEL_REFERENCE_CATEGORY.ti, TextualInversionModelRecord)
