"""Known-value registries: image baselines, model styles, ControlNet styles, text backends.

A value missing from a registry is not an error: a newer catalog must not break an older
consumer. `warn_unknown` logs each unknown value once per (registry, value), up to
`MAX_CACHED_UNLISTED` values; then once that the limit is reached, and no more.

Baselines and styles are open enums (`_open_enum`): records share one object per value, and a
value this version does not list still decodes; it waits in its registry's `pending` set until
`catalog.decode_catalog` reports it with the record that carries it.
"""

from __future__ import annotations

import threading
from enum import StrEnum

import msgspec

from horde_model_reference._open_enum import MAX_CACHED_UNLISTED, ClosedCallEnumType, OpenStrEnum, on_unlisted
from horde_model_reference.logs import get_logger

__all__ = [
    "CONTROLNET_STYLE",
    "KNOWN_IMAGE_GENERATION_BASELINE",
    "MODEL_STYLE",
    "TEXT_BACKENDS",
    "BaselineDescriptor",
    "all_baseline_descriptors",
    "get_baseline_descriptor",
    "get_baseline_native_resolution",
    "is_known_controlnet_style",
    "is_known_image_baseline",
    "is_known_model_style",
    "is_known_text_backend",
    "normalize_image_baseline",
    "register_controlnet_style",
    "register_image_baseline",
    "register_model_style",
    "register_text_backend",
]

_log = get_logger(__name__)


class KNOWN_IMAGE_GENERATION_BASELINE(OpenStrEnum, metaclass=ClosedCallEnumType):
    """Image generation baselines known to this version."""

    infer = "infer"
    stable_diffusion_1 = "stable_diffusion_1"
    stable_diffusion_2_768 = "stable_diffusion_2_768"
    stable_diffusion_2_512 = "stable_diffusion_2_512"
    stable_diffusion_xl = "stable_diffusion_xl"
    stable_cascade = "stable_cascade"
    flux_1 = "flux_1"
    flux_schnell = "flux_schnell"
    flux_dev = "flux_dev"
    qwen_image = "qwen_image"
    z_image_turbo = "z_image_turbo"
    krea2_turbo = "krea2_turbo"
    anima = "anima"


class MODEL_STYLE(OpenStrEnum, metaclass=ClosedCallEnumType):
    """Image model styles known to this version."""

    generalist = "generalist"
    anime = "anime"
    furry = "furry"
    artistic = "artistic"
    other = "other"
    realistic = "realistic"


class CONTROLNET_STYLE(OpenStrEnum, metaclass=ClosedCallEnumType):
    """ControlNet styles known to this version."""

    control_seg = "control_seg"
    control_scribble = "control_scribble"
    control_fakescribbles = "control_fakescribbles"
    control_openpose = "control_openpose"
    control_normal = "control_normal"
    control_mlsd = "control_mlsd"
    control_hough = "control_hough"
    control_hed = "control_hed"
    control_canny = "control_canny"
    control_depth = "control_depth"
    control_qr = "control_qr"
    control_qr_xl = "control_qr_xl"
    control_lineart = "control_lineart"
    control_lineart_anime = "control_lineart_anime"
    control_normal_bae = "control_normal_bae"
    control_recolor = "control_recolor"
    control_tile = "control_tile"
    control_shuffle = "control_shuffle"
    control_color = "control_color"


class TEXT_BACKENDS(StrEnum):
    """Text backends whose name prefixes appear in the legacy text db.json."""

    aphrodite = "aphrodite"
    koboldcpp = "koboldcpp"


class BaselineDescriptor(msgspec.Struct, frozen=True):
    """A baseline's native single-side resolution and the other names it goes by."""

    native_resolution: int | None
    alternative_names: tuple[str, ...] = ()


class _Registry:
    """A thread-safe set of known values that reports each unknown value once.

    Values an open enum decoded without listing them wait in `pending` until a catalog pass
    reports the unknown ones with the record that carries them (see `catalog.decode_catalog`).
    """

    def __init__(self, kind: str, values: list[str]) -> None:
        self.kind = kind
        self._values = set(values)
        self._reported: set[str] = set()
        self._pending: set[str] = set()
        self._silenced = False
        """Set once `MAX_CACHED_UNLISTED` values were reported: further unknown values are not logged."""
        self._lock = threading.Lock()

    def register(self, value: str) -> None:
        with self._lock:
            self._values.add(value)
            self._pending.discard(value)

    def is_known(self, value: str) -> bool:
        return value in self._values

    def note_unlisted(self, value: str) -> None:
        if value in self._values or value in self._reported:
            return
        with self._lock:
            self._pending.add(value)

    def pending(self) -> set[str]:
        """The decoded values not reported yet that may be unknown (empty almost always)."""
        if not self._pending:
            return set()
        with self._lock:
            return set(self._pending)

    def drop_pending(self, values: set[str]) -> None:
        """Forget pending values a catalog pass did not find (the next decode notes them again)."""
        with self._lock:
            self._pending -= values

    def warn_unknown(self, value: str, **context: object) -> None:
        with self._lock:
            self._pending.discard(value)
            if value in self._values or value in self._reported:
                return
            if len(self._reported) >= MAX_CACHED_UNLISTED:
                if self._silenced:
                    return
                self._silenced = True
                limit_reached = True
            else:
                self._reported.add(value)
                limit_reached = False
        if limit_reached:
            _log.warning(
                "unknown_values_limit", kind=self.kind, limit=MAX_CACHED_UNLISTED, value=value, **context
            )
        else:
            _log.warning("unknown_value", kind=self.kind, value=value, **context)


_BASELINE_DESCRIPTORS: dict[str, BaselineDescriptor] = {
    "infer": BaselineDescriptor(None),
    "stable_diffusion_1": BaselineDescriptor(
        512,
        (
            "stable diffusion 1",
            "stable diffusion 1.4",
            "stable diffusion 1.5",
            "SD1",
            "SD14",
            "SD1.4",
            "SD15",
            "SD1.5",
            "stable_diffusion",
            "stable_diffusion_1.4",
            "stable_diffusion_1.5",
        ),
    ),
    "stable_diffusion_2_768": BaselineDescriptor(768, ("stable diffusion 2",)),
    "stable_diffusion_2_512": BaselineDescriptor(512, ("stable diffusion 2 512",)),
    "stable_diffusion_xl": BaselineDescriptor(1024, ("stable diffusion xl", "SDXL")),
    "stable_cascade": BaselineDescriptor(1024, ("stable cascade",)),
    "flux_1": BaselineDescriptor(1024, ("flux",)),
    "flux_schnell": BaselineDescriptor(1024, ("flux schnell",)),
    "flux_dev": BaselineDescriptor(1024, ("flux dev",)),
    "qwen_image": BaselineDescriptor(1024, ("qwen image", "qwen-image")),
    "z_image_turbo": BaselineDescriptor(1024, ("z image turbo", "zimage-turbo")),
    "krea2_turbo": BaselineDescriptor(1024, ("krea_2_turbo", "krea2")),
    "anima": BaselineDescriptor(1024, ("anima_base", "anima_aesthetic", "anima_turbo")),
}
_BASELINE_LOCK = threading.Lock()

BASELINES = _Registry("image_baseline", list(_BASELINE_DESCRIPTORS))
MODEL_STYLES = _Registry("model_style", [s.value for s in MODEL_STYLE])
CONTROLNET_STYLES = _Registry("controlnet_style", [s.value for s in CONTROLNET_STYLE])
TEXT_BACKEND_NAMES = _Registry("text_backend", [b.value for b in TEXT_BACKENDS])
on_unlisted(KNOWN_IMAGE_GENERATION_BASELINE, BASELINES.note_unlisted)
on_unlisted(MODEL_STYLE, MODEL_STYLES.note_unlisted)
on_unlisted(CONTROLNET_STYLE, CONTROLNET_STYLES.note_unlisted)


def register_image_baseline(name: str, descriptor: BaselineDescriptor) -> None:
    """Register (or replace) an image baseline."""
    with _BASELINE_LOCK:
        _BASELINE_DESCRIPTORS[name] = descriptor
    BASELINES.register(name)


def all_baseline_descriptors() -> dict[str, BaselineDescriptor]:
    """A copy of every registered baseline's descriptor, by canonical name."""
    with _BASELINE_LOCK:
        return dict(_BASELINE_DESCRIPTORS)


def is_known_image_baseline(name: str) -> bool:
    """Whether `name` is a known baseline (canonical name, not an alternative spelling)."""
    return BASELINES.is_known(name)


def get_baseline_descriptor(name: str) -> BaselineDescriptor | None:
    """The descriptor of a baseline given by its canonical or an alternative name."""
    canonical = normalize_image_baseline(name)
    return _BASELINE_DESCRIPTORS.get(canonical)


def get_baseline_native_resolution(name: str) -> int | None:
    """The native single-side resolution of a baseline, or None when unknown or not fixed."""
    descriptor = get_baseline_descriptor(name)
    return descriptor.native_resolution if descriptor else None


def normalize_image_baseline(name: str) -> str:
    """Map an alternative spelling (for example 'stable diffusion 1') to the canonical baseline name.

    Unknown names are returned unchanged.
    """
    if name in _BASELINE_DESCRIPTORS:
        return name
    for canonical, descriptor in list(_BASELINE_DESCRIPTORS.items()):
        if name in descriptor.alternative_names:
            return canonical
    return name


def register_model_style(style: str) -> None:
    """Register a model style."""
    MODEL_STYLES.register(style)


def is_known_model_style(style: str) -> bool:
    """Whether `style` is a known model style."""
    return MODEL_STYLES.is_known(style)


def register_controlnet_style(style: str) -> None:
    """Register a ControlNet style."""
    CONTROLNET_STYLES.register(style)


def is_known_controlnet_style(style: str) -> bool:
    """Whether `style` is a known ControlNet style."""
    return CONTROLNET_STYLES.is_known(style)


def register_text_backend(backend: str) -> None:
    """Register a text backend prefix."""
    TEXT_BACKEND_NAMES.register(backend)


def is_known_text_backend(backend: str) -> bool:
    """Whether `backend` is a known text backend."""
    return TEXT_BACKEND_NAMES.is_known(backend)
