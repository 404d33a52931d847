"""Mirrors `horde_model_reference.text_backend_names` (8.6.2): the legacy text backend name prefixes.

The legacy text catalog lists some models again under a backend prefix: `aphrodite/` + the
canonical name, `koboldcpp/` + the name without its author.
"""

from __future__ import annotations

from horde_model_reference.registries import TEXT_BACKENDS

__all__ = [
    "TEXT_LEGACY_BACKEND_PREFIXES",
    "get_model_name_variants",
    "has_legacy_text_backend_prefix",
    "strip_backend_prefix",
    "validate_not_backend_prefixed",
]

TEXT_LEGACY_BACKEND_PREFIXES: dict[TEXT_BACKENDS, str] = {
    TEXT_BACKENDS.aphrodite: "aphrodite/",
    TEXT_BACKENDS.koboldcpp: "koboldcpp/",
}
"""The prefix of each backend's duplicate entries in the legacy format."""


def has_legacy_text_backend_prefix(model_name: str) -> bool:
    """Whether `model_name` starts with a legacy backend prefix."""
    return model_name.startswith(tuple(TEXT_LEGACY_BACKEND_PREFIXES.values()))


def strip_backend_prefix(model_name: str) -> str:
    """`model_name` without its legacy backend prefix (unchanged when it has none)."""
    for prefix in TEXT_LEGACY_BACKEND_PREFIXES.values():
        if model_name.startswith(prefix):
            return model_name[len(prefix) :]
    return model_name


def validate_not_backend_prefixed(model_name: str) -> None:
    """Raise `ValueError` naming the prefix when `model_name` starts with a backend prefix."""
    for backend, prefix in TEXT_LEGACY_BACKEND_PREFIXES.items():
        if model_name.startswith(prefix):
            raise ValueError(
                f"Model name {model_name!r} starts with backend prefix {prefix!r} "
                f"(backend: {backend.value}). Use the canonical name without the prefix; "
                "backend-prefixed duplicates are generated automatically."
            )


def get_model_name_variants(canonical_name: str) -> list[str]:
    """The canonical name, then its aphrodite and koboldcpp variants (no repeats)."""
    name_only = canonical_name.split("/", 1)[1] if "/" in canonical_name else canonical_name
    variants = [canonical_name]
    for candidate in (
        TEXT_LEGACY_BACKEND_PREFIXES[TEXT_BACKENDS.aphrodite] + canonical_name,
        TEXT_LEGACY_BACKEND_PREFIXES[TEXT_BACKENDS.koboldcpp] + name_only,
    ):
        if candidate not in variants:
            variants.append(candidate)
    return variants
