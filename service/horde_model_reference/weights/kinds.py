"""Shareable component kinds and the sibling folders component files are placed in."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Final

__all__ = [
    "COMPONENT_PURPOSE_FOLDERS",
    "ComponentKind",
    "component_kind_for_purpose",
    "component_relative_path",
]


class ComponentKind(StrEnum):
    """A model component that can be content-hashed and shared between models."""

    VAE = "vae"
    TEXT_ENCODERS = "text_encoders"


_KIND_BY_PURPOSE: Final = MappingProxyType(
    {
        "vae": ComponentKind.VAE,
        "text_encoders": ComponentKind.TEXT_ENCODERS,
        "text_encoder": ComponentKind.TEXT_ENCODERS,
    }
)

COMPONENT_PURPOSE_FOLDERS: dict[str, str] = {
    "vae": "vae",
    "text_encoders": "text_encoders",
    "text_encoder": "text_encoders",
    "face_restore_helper": "gfpgan",
}
"""`DownloadRecord.file_purpose` -> the folder (beside the category folders) the file goes in.

ComfyUI's component loaders look for VAEs in `<root>/vae` and text encoders in
`<root>/text_encoders`; face restorers load their detection helpers from `<root>/gfpgan`. A purpose
not listed here (a checkpoint, a unet) stays in its category's own folder. A plain dict, as
upstream: consumers index it (`COMPONENT_PURPOSE_FOLDERS["vae"]`).
"""


def component_kind_for_purpose(file_purpose: str | None) -> ComponentKind | None:
    """The `ComponentKind` a download's `file_purpose` names, or None when it is not shareable."""
    if file_purpose is None:
        return None
    return _KIND_BY_PURPOSE.get(file_purpose)


def component_relative_path(file_name: str, file_purpose: str | None) -> Path:
    """Where `file_name` goes relative to its category folder.

    A component purpose routes it to the sibling folder (`../vae/<file_name>`); anything else stays
    in the category folder (`<file_name>`).
    """
    folder = COMPONENT_PURPOSE_FOLDERS.get(file_purpose) if file_purpose else None
    if folder:
        return Path("..") / folder / file_name
    return Path(file_name)
