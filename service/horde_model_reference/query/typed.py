"""Query builders with helpers for image generation, text generation and ControlNet records."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import ClassVar, Self

from horde_model_reference.query.builder import ModelQuery
from horde_model_reference.query.fields import Predicate, compile_condition, truthiness
from horde_model_reference.query.namespaces import ControlNetFieldName, ImageGenFieldName, TextGenFieldName
from horde_model_reference.records import (
    ControlNetModelRecord,
    GenericModelRecord,
    ImageGenerationModelRecord,
    TextGenerationModelRecord,
)
from horde_model_reference.registries import (
    KNOWN_IMAGE_GENERATION_BASELINE,
    TEXT_BACKENDS,
    is_known_text_backend,
    normalize_image_baseline,
)

__all__ = [
    "ControlNetQuery",
    "ImageGenerationQuery",
    "TextModelQuery",
    "base_model_name",
    "is_quantized_name",
]

_NSFW = truthiness("nsfw")
_SFW = truthiness("nsfw", negate=True)
_INPAINTING = truthiness("inpainting")
_NOT_INPAINTING = truthiness("inpainting", negate=True)


class ImageGenerationQuery(ModelQuery[ImageGenerationModelRecord, ImageGenFieldName]):
    """A query over image generation checkpoints."""

    __slots__ = ()
    _default_record_type: ClassVar[type[GenericModelRecord]] = ImageGenerationModelRecord

    def for_baseline(self, baseline: KNOWN_IMAGE_GENERATION_BASELINE | str) -> Self:
        """Keep models of `baseline`, given by its name or an alternative one ("SDXL")."""
        if not isinstance(baseline, str) or not baseline:
            raise ValueError(f"for_baseline() needs a baseline name, got {baseline!r}")
        return self._add(compile_condition("baseline", None, normalize_image_baseline(str(baseline))))

    def only_nsfw(self) -> Self:
        """Keep NSFW models."""
        return self._add(_NSFW)

    def exclude_nsfw(self) -> Self:
        """Drop NSFW models."""
        return self._add(_SFW)

    def only_inpainting(self) -> Self:
        """Keep inpainting models."""
        return self._add(_INPAINTING)

    def exclude_inpainting(self) -> Self:
        """Drop inpainting models (an unset `inpainting` counts as not inpainting)."""
        return self._add(_NOT_INPAINTING)


# Quantization markers, each a whole token (bounded by a non-alphanumeric or the name's ends):
# format names (GGUF, GGML, GPTQ, AWQ, EXL2/EXL3, HQQ, BNB), llama.cpp quant types (Q4_K_M, Q5_0,
# Q8, IQ4_XS), bit widths (4bit, 4.65bpw, int4, int8, nf4, fp8, w4a16).
_QUANT = re.compile(
    r"(?<![a-z0-9])(?:gguf|ggml|gptq|awq|exl[23]|hqq|bnb|nf4|int[48]|fp8|w[48]a(?:8|16)"
    r"|i?q[1-8](?:_[a-z0-9]{1,2})*|[2-8]-?bits?|\d+(?:\.\d+)?bpw)(?![a-z0-9]|\.\d)",
    re.IGNORECASE,
)
_UNQUANTIZED = re.compile(r"(?<![a-z0-9])unquantized(?![a-z0-9])", re.IGNORECASE)
# Tokens dropped from a name to find its base model: parameter counts (8B, 8x7B, 350M), versions
# (v1, v0.2) and common variant words.
_NOT_BASE = re.compile(
    r"(?:\d+x)?\d+(?:\.\d+)?[bm]|v\d+(?:\.\d+)*|instruct|chat|it|base|hf|uncensored",
    re.IGNORECASE,
)
_SEPARATORS = re.compile(r"[-_\s]+")


@lru_cache(maxsize=4096)
def is_quantized_name(name: str) -> bool:
    """Whether a text model name marks a quantized variant.

    True when the name has a quantization marker as a whole token (GGUF, GGML, GPTQ, AWQ, EXL2,
    EXL3, HQQ, BNB, NF4, INT4/INT8, FP8, W4A16, llama.cpp types such as Q4_K_M, Q5_0, Q8, IQ4_XS,
    `4bit`, `4.65bpw`; any case) and does not say "unquantized" (Gemma QAT checkpoints named
    `...-qat-q4_0-unquantized` are full precision).
    """
    return _QUANT.search(name) is not None and _UNQUANTIZED.search(name) is None


def _strip_backend(name: str) -> str:
    head, sep, rest = name.partition("/")
    return rest if sep and is_known_text_backend(head) else name


@lru_cache(maxsize=4096)
def base_model_name(name: str) -> str:
    """The base model a text model name is a variant of, for grouping.

    Drops the backend prefix ("koboldcpp/"), the author ("org/"), quantization markers,
    parameter counts, versions and variant words (instruct, chat, it, base, hf, uncensored):
    "koboldcpp/Org/Llama-3.1-8B-Instruct-Q4_K_M" -> "Llama-3.1". Falls back to the name
    without backend and author when nothing else is left.
    """
    bare = _strip_backend(name).rsplit("/", 1)[-1]
    tokens = [t for t in _SEPARATORS.split(_QUANT.sub("", bare)) if t and not _NOT_BASE.fullmatch(t)]
    return "-".join(tokens) or bare


def _is_backend_variation(name: str) -> bool:
    head, sep, _ = name.partition("/")
    return bool(sep) and is_known_text_backend(head)


class TextModelQuery(ModelQuery[TextGenerationModelRecord, TextGenFieldName]):
    """A query over text generation models.

    Backends: the legacy text db.json lists a model once per backend under a prefixed name
    ("aphrodite/Org/Model", "koboldcpp/Model"). `for_backend` keeps those backend variations of
    one backend; `exclude_backend_variations` keeps the plain names. v2 catalogs list plain
    names only, so on them `for_backend` matches nothing.
    """

    __slots__ = ()
    _default_record_type: ClassVar[type[GenericModelRecord]] = TextGenerationModelRecord

    def for_backend(self, backend: TEXT_BACKENDS | str) -> Self:
        """Keep models listed under `backend`'s prefix (`"koboldcpp/..."`)."""
        if not isinstance(backend, str) or not is_known_text_backend(str(backend)):
            known = ", ".join(b.value for b in TEXT_BACKENDS)
            raise ValueError(f"unknown text backend {backend!r}; known backends: {known}")
        prefix = f"{backend}/"
        return self._add(Predicate(lambda r: r.name.startswith(prefix), fields=_NAME))

    def exclude_backend_variations(self) -> Self:
        """Drop names carrying a known backend prefix."""
        return self._add(Predicate(lambda r: not _is_backend_variation(r.name), fields=_NAME))

    def only_quantized(self) -> Self:
        """Keep quantized variants (see `is_quantized_name`)."""
        return self._add(Predicate(lambda r: is_quantized_name(r.name), fields=_NAME))

    def exclude_quantized(self) -> Self:
        """Drop quantized variants (see `is_quantized_name`)."""
        return self._add(Predicate(lambda r: not is_quantized_name(r.name), fields=_NAME))

    def group_by_base_model(self) -> dict[str, list[TextGenerationModelRecord]]:
        """The matching records grouped by `base_model_name` of their name."""
        groups: dict[str, list[TextGenerationModelRecord]] = {}
        for record in self.to_list():
            groups.setdefault(base_model_name(record.name), []).append(record)
        return groups


class ControlNetQuery(ModelQuery[ControlNetModelRecord, ControlNetFieldName]):
    """A query over ControlNet models."""

    __slots__ = ()
    _default_record_type: ClassVar[type[GenericModelRecord]] = ControlNetModelRecord

    def for_style(self, style: str) -> Self:
        """Keep models of ControlNet style `style` (for example "control_canny")."""
        if not isinstance(style, str) or not style:
            raise ValueError(f"for_style() needs a style name, got {style!r}")
        return self._add(compile_condition("controlnet_style", None, str(style)))

    def group_by_style(self) -> dict[str, list[ControlNetModelRecord]]:
        """The matching records grouped by ControlNet style (models without one are left out)."""
        groups: dict[str, list[ControlNetModelRecord]] = {}
        for record in self.to_list():
            if record.controlnet_style is not None:
                groups.setdefault(record.controlnet_style, []).append(record)
        return groups


_NAME = frozenset(("name",))
