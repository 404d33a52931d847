"""Mirrors `horde_model_reference.meta_consts` (8.6.2, with its `model_consts` submodules).

The enums, descriptors and registries are this package's own (`categories`, `registries`; open
enums: a value a newer catalog adds still decodes). What lives here is upstream's shape over
them: the derived lists and lookups (`MODEL_CLASSIFICATION_LOOKUP`,
`github_image_model_reference_categories`, ...), the functions with upstream's error behaviour
(`KeyError` for an unknown baseline or category, `ValueError` for registering a name twice) and
the upstream-only vocabularies (`KNOWN_IMAGE_SCHEDULER`, `KNOWN_TAGS`).
"""

from __future__ import annotations

from enum import StrEnum

from horde_model_reference import registries as _registries
from horde_model_reference.categories import (
    MODEL_DOMAIN,
    MODEL_PURPOSE,
    MODEL_REFERENCE_CATEGORY,
    CategoryDescriptor,
    ModelClassification,
    parse_category,
)
from horde_model_reference.categories import get_category_descriptor as _descriptor
from horde_model_reference.compat.image_baseline import ImageBaselineCatalog
from horde_model_reference.errors import UnknownCategoryError
from horde_model_reference.registries import (
    CONTROLNET_STYLE,
    KNOWN_IMAGE_GENERATION_BASELINE,
    MODEL_STYLE,
    TEXT_BACKENDS,
    BaselineDescriptor,
    is_known_controlnet_style,
    is_known_model_style,
    is_known_text_backend,
    register_controlnet_style,
    register_model_style,
)

__all__ = [
    "CONTROLNET_STYLE",
    "IMAGE_GENERATION_BASELINE_NATIVE_RESOLUTION_LOOKUP",
    "KNOWN_IMAGE_GENERATION_BASELINE",
    "KNOWN_IMAGE_SCHEDULER",
    "KNOWN_TAGS",
    "KNOWN_TEXT_BACKENDS",
    "MODEL_CLASSIFICATION_LOOKUP",
    "MODEL_DOMAIN",
    "MODEL_PURPOSE",
    "MODEL_REFERENCE_CATEGORY",
    "MODEL_STYLE",
    "STABLE_DIFFUSION_BASELINE_CATEGORY",
    "TEXT_BACKENDS",
    "WEIGHTS_MARKER_FOLDERS",
    "BaselineDescriptor",
    "CategoryDescriptor",
    "ModelClassification",
    "UnknownCategoryKeyError",
    "alternative_sdxl_baseline_names",
    "categories_managed_elsewhere",
    "category_folder",
    "get_all_registered_baselines",
    "get_all_registered_categories",
    "get_baseline_descriptor",
    "get_baseline_native_resolution",
    "get_baselines_by_resolution",
    "get_category_descriptor",
    "get_github_image_categories",
    "get_github_text_categories",
    "get_known_tags",
    "get_model_classification",
    "get_no_legacy_format_categories",
    "get_weights_marker_folders",
    "github_image_model_reference_categories",
    "github_text_model_reference_categories",
    "is_known_controlnet_style",
    "is_known_image_baseline",
    "is_known_image_scheduler",
    "is_known_model_domain",
    "is_known_model_purpose",
    "is_known_model_style",
    "is_known_tag",
    "is_known_text_backend",
    "no_legacy_format_available_categories",
    "register_category",
    "register_controlnet_style",
    "register_image_baseline",
    "register_image_baselines_from_catalog",
    "register_image_scheduler",
    "register_model_domain",
    "register_model_purpose",
    "register_model_style",
    "register_tag",
    "register_text_backend",
]

STABLE_DIFFUSION_BASELINE_CATEGORY = KNOWN_IMAGE_GENERATION_BASELINE
"""The name the baselines enum had before 8.x (horde-worker-reGen still imports it)."""

# ------------------------------------------------------------------------------------- categories

_DESCRIPTORS: dict[MODEL_REFERENCE_CATEGORY, CategoryDescriptor] = {
    c: _descriptor(c) for c in MODEL_REFERENCE_CATEGORY
}

MODEL_CLASSIFICATION_LOOKUP: dict[MODEL_REFERENCE_CATEGORY | str, ModelClassification] = {
    c: d.classification for c, d in _DESCRIPTORS.items()
}
"""Each category's default classification (domain and purpose)."""

github_image_model_reference_categories: list[MODEL_REFERENCE_CATEGORY | str] = [
    c for c, d in _DESCRIPTORS.items() if d.github_source == "image"
]
"""Categories whose legacy file is in the image GitHub repository."""

github_text_model_reference_categories: list[MODEL_REFERENCE_CATEGORY | str] = [
    c for c, d in _DESCRIPTORS.items() if d.github_source == "text"
]
"""Categories whose legacy file is in the text GitHub repository."""

no_legacy_format_available_categories: list[MODEL_REFERENCE_CATEGORY | str] = [
    c for c, d in _DESCRIPTORS.items() if not d.has_legacy_format
]
"""Categories without a legacy-format file."""

categories_managed_elsewhere: list[MODEL_REFERENCE_CATEGORY | str] = [
    c for c, d in _DESCRIPTORS.items() if d.managed_elsewhere
]
"""Categories served by providers only (LoRA, TI)."""

WEIGHTS_MARKER_FOLDERS: tuple[str, ...] = tuple(
    d.on_disk_folder_name for d in _DESCRIPTORS.values() if d.weights_marker and d.on_disk_folder_name
)
"""Folder names whose joint presence marks a worker's model-weights root."""


class UnknownCategoryKeyError(UnknownCategoryError, KeyError):
    """An unknown category: the `KeyError` upstream raises, and this package's `UnknownCategoryError`."""


def get_category_descriptor(category: MODEL_REFERENCE_CATEGORY | str) -> CategoryDescriptor:
    """The descriptor of `category`; `KeyError` for an unknown one (as upstream)."""
    try:
        return _DESCRIPTORS[parse_category(category)]
    except UnknownCategoryError as exc:
        raise UnknownCategoryKeyError(category, exc.valid) from None


def get_all_registered_categories() -> dict[MODEL_REFERENCE_CATEGORY | str, CategoryDescriptor]:
    """A copy of the category registry."""
    return {category: descriptor for category, descriptor in _DESCRIPTORS.items()}


def register_category(name: MODEL_REFERENCE_CATEGORY | str, descriptor: CategoryDescriptor) -> None:
    """Upstream registers new categories at run time; here the categories are a closed set.

    Raises `ValueError` naming the category: an already known one is "already registered" (as
    upstream), an unknown one cannot be added (see docs/consumers.md).
    """
    if name in _DESCRIPTORS:
        raise ValueError(f"{name!r} is already registered")
    raise ValueError(
        f"category {name!r} cannot be registered: the categories are fixed here "
        f"({', '.join(c.value for c in MODEL_REFERENCE_CATEGORY)})"
    )


def get_github_image_categories() -> list[MODEL_REFERENCE_CATEGORY | str]:
    """Categories whose legacy file is in the image GitHub repository."""
    return list(github_image_model_reference_categories)


def get_github_text_categories() -> list[MODEL_REFERENCE_CATEGORY | str]:
    """Categories whose legacy file is in the text GitHub repository."""
    return list(github_text_model_reference_categories)


def get_no_legacy_format_categories() -> list[MODEL_REFERENCE_CATEGORY | str]:
    """Categories without a legacy-format file."""
    return list(no_legacy_format_available_categories)


def get_model_classification(category: MODEL_REFERENCE_CATEGORY | str) -> ModelClassification:
    """The default classification of `category`; `KeyError` for an unknown one."""
    return MODEL_CLASSIFICATION_LOOKUP[category]


def get_weights_marker_folders() -> tuple[str, ...]:
    """Folder names whose joint presence marks a worker's model-weights root."""
    return WEIGHTS_MARKER_FOLDERS


def category_folder(category: MODEL_REFERENCE_CATEGORY | str) -> str | None:
    """The folder under the model-weights root holding `category`'s files (None: none, or unknown)."""
    try:
        return get_category_descriptor(category).on_disk_folder_name
    except UnknownCategoryKeyError:
        return None


class _ValueSet:
    """Upstream's `EnumRegistry`: a set of known strings, extendable at run time."""

    def __init__(self, values: list[str]) -> None:
        self.values = set(values)

    def register(self, value: str) -> None:
        self.values.add(str(value))

    def is_known(self, value: str) -> bool:
        return str(value) in self.values


_DOMAINS = _ValueSet([d.value for d in MODEL_DOMAIN])
_PURPOSES = _ValueSet([p.value for p in MODEL_PURPOSE])


def register_model_domain(domain: MODEL_DOMAIN | str) -> None:
    """Register a model domain."""
    _DOMAINS.register(domain)


def is_known_model_domain(domain: MODEL_DOMAIN | str) -> bool:
    """Whether `domain` is a known model domain."""
    return _DOMAINS.is_known(domain)


def register_model_purpose(purpose: MODEL_PURPOSE | str) -> None:
    """Register a model purpose."""
    _PURPOSES.register(purpose)


def is_known_model_purpose(purpose: MODEL_PURPOSE | str) -> bool:
    """Whether `purpose` is a known model purpose."""
    return _PURPOSES.is_known(purpose)


# -------------------------------------------------------------------------------------- baselines

IMAGE_GENERATION_BASELINE_NATIVE_RESOLUTION_LOOKUP: dict[KNOWN_IMAGE_GENERATION_BASELINE | str, int] = {}
"""The native single-side resolution of each baseline that has one (`infer` has none)."""

_ALTERNATIVE_NAMES: dict[str, str] = {}


def _rebuild_baselines() -> None:
    IMAGE_GENERATION_BASELINE_NATIVE_RESOLUTION_LOOKUP.clear()
    _ALTERNATIVE_NAMES.clear()
    for name, descriptor in get_all_registered_baselines().items():
        if descriptor.native_resolution is not None:
            IMAGE_GENERATION_BASELINE_NATIVE_RESOLUTION_LOOKUP[KNOWN_IMAGE_GENERATION_BASELINE.of(name)] = (
                descriptor.native_resolution
            )
        for alternative in descriptor.alternative_names:
            _ALTERNATIVE_NAMES[alternative] = str(name)


def get_all_registered_baselines() -> dict[KNOWN_IMAGE_GENERATION_BASELINE | str, BaselineDescriptor]:
    """A copy of the baseline registry (listed and registered baselines)."""
    return {
        KNOWN_IMAGE_GENERATION_BASELINE.of(k): v for k, v in _registries.all_baseline_descriptors().items()
    }


def register_image_baseline(
    name: KNOWN_IMAGE_GENERATION_BASELINE | str, descriptor: BaselineDescriptor
) -> None:
    """Register a new baseline; `ValueError` ("is already registered") when it is known (as upstream)."""
    if _registries.is_known_image_baseline(str(name)):
        raise ValueError(f"{name!r} is already registered")
    _registries.register_image_baseline(str(name), descriptor)
    _rebuild_baselines()


def register_image_baselines_from_catalog(catalog: ImageBaselineCatalog) -> None:
    """Register every baseline the served catalog names, replacing the descriptor of a known one."""
    for record in catalog.baselines.values():
        descriptor = BaselineDescriptor(record.native_resolution, tuple(record.alternative_names))
        _registries.register_image_baseline(record.name, descriptor)
    _rebuild_baselines()


def is_known_image_baseline(baseline: str) -> bool:
    """Whether `baseline` is a registered baseline or one of their alternative names."""
    return _registries.is_known_image_baseline(str(baseline)) or baseline in _ALTERNATIVE_NAMES


def get_baseline_descriptor(baseline: KNOWN_IMAGE_GENERATION_BASELINE | str) -> BaselineDescriptor:
    """The descriptor of a registered baseline; `KeyError` otherwise (alternative names are not keys)."""
    if not _registries.is_known_image_baseline(str(baseline)):
        raise KeyError(baseline)
    descriptor = _registries.get_baseline_descriptor(str(baseline))
    if descriptor is None:
        raise KeyError(baseline)
    return descriptor


def get_baseline_native_resolution(baseline: KNOWN_IMAGE_GENERATION_BASELINE | str) -> int:
    """The native resolution of `baseline`; `KeyError` when it has none (`infer`) or is unknown."""
    return IMAGE_GENERATION_BASELINE_NATIVE_RESOLUTION_LOOKUP[baseline]


def get_baselines_by_resolution(resolution: int) -> list[KNOWN_IMAGE_GENERATION_BASELINE | str]:
    """The baselines whose native resolution is `resolution`."""
    return [b for b, r in IMAGE_GENERATION_BASELINE_NATIVE_RESOLUTION_LOOKUP.items() if r == resolution]


_rebuild_baselines()

alternative_sdxl_baseline_names: list[str] = [
    "stable_diffusion_xl",
    *get_baseline_descriptor(KNOWN_IMAGE_GENERATION_BASELINE.stable_diffusion_xl).alternative_names,
]
"""The names SDXL goes by."""

# ------------------------------------------------------------------ upstream-only vocabularies


class KNOWN_IMAGE_SCHEDULER(StrEnum):
    """The sigma schedules an image model may require (upstream's `requirements.schedulers` values)."""

    normal = "normal"
    karras = "karras"
    exponential = "exponential"
    sgm_uniform = "sgm_uniform"
    simple = "simple"
    ddim_uniform = "ddim_uniform"
    beta = "beta"
    linear_quadratic = "linear_quadratic"
    kl_optimal = "kl_optimal"
    align_your_steps = "align_your_steps"
    gits = "gits"


_SCHEDULERS = _ValueSet([s.value for s in KNOWN_IMAGE_SCHEDULER])


def register_image_scheduler(scheduler: KNOWN_IMAGE_SCHEDULER | str) -> None:
    """Register an image scheduler."""
    _SCHEDULERS.register(scheduler)


def is_known_image_scheduler(scheduler: KNOWN_IMAGE_SCHEDULER | str) -> bool:
    """Whether `scheduler` is a known image scheduler."""
    return _SCHEDULERS.is_known(scheduler)


_TAGS = _ValueSet(
    [
        "anime",
        "manga",
        "cyberpunk",
        "tv show",
        "booru",
        "retro",
        "character",
        "hentai",
        "scenes",
        "low poly",
        "cg",
        "sketch",
        "high resolution",
        "landscapes",
        "comic",
        "cartoon",
        "painting",
        "game",
    ]
)
KNOWN_TAGS: set[str] = _TAGS.values
"""The known model tags (a live set: `register_tag` adds to it)."""


def get_known_tags() -> list[str]:
    """The known tags, sorted."""
    return sorted(_TAGS.values)


def register_tag(tag: str) -> None:
    """Register a model tag."""
    _TAGS.register(tag)


def is_known_tag(tag: str) -> bool:
    """Whether `tag` is a known model tag."""
    return _TAGS.is_known(tag)


KNOWN_TEXT_BACKENDS: set[str] = {b.value for b in TEXT_BACKENDS}
"""The known text backend names (a live set: `register_text_backend` adds to it)."""


def register_text_backend(backend: str) -> None:
    """Register a text backend name."""
    KNOWN_TEXT_BACKENDS.add(str(backend))
    _registries.register_text_backend(str(backend))
