"""Mirrors `horde_model_reference.path_consts` (8.6.2; `BASE_PATH` and `LEGACY_REFERENCE_FOLDER` from 2.x).

`horde_model_reference_paths`, `BASE_PATH` and `LEGACY_REFERENCE_FOLDER` are built from the
environment on first access (see `compat.settings`).
"""

from __future__ import annotations

from horde_model_reference.compat.settings import (
    DEFAULT_SHOWCASE_FOLDER_NAME,
    LEGACY_REFERENCE_FOLDER_NAME,
    META_FOLDER_NAME,
    PACKAGE_NAME,
    HordeModelReferencePaths,
    lazy_attribute,
)

__all__ = [
    "DEFAULT_SHOWCASE_FOLDER_NAME",
    "LEGACY_REFERENCE_FOLDER_NAME",
    "META_FOLDER_NAME",
    "PACKAGE_NAME",
    "HordeModelReferencePaths",
]


def __getattr__(name: str) -> object:
    """`horde_model_reference_paths`, `BASE_PATH`, `LEGACY_REFERENCE_FOLDER` (built on first use)."""
    return lazy_attribute(__name__, name)
