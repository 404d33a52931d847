"""Where each file a record declares is downloaded to under the weights root.

A file goes in its category's folder (`category_folder`), except a component (a VAE, a text
encoder, a face-restore helper), which goes in the folder beside it named by its `file_purpose`
(`component_relative_path`, e.g. `<root>/vae/<file_name>`). A file that would land anywhere but
inside a folder of the root (`../../x`, an absolute name) is refused, never written.
"""

from __future__ import annotations

import os
from pathlib import Path

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.compat.meta_consts import category_folder
from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.weights.kinds import component_relative_path

__all__ = ["UnsafeDownloadPathError", "record_destinations"]


class UnsafeDownloadPathError(ModelReferenceError, ValueError):
    """A record's `file_name` (`value`) that would be written outside a folder of the weights root."""

    def __init__(self, value: str, model: str) -> None:
        self.value = value
        self.model = model
        super().__init__(f"{value!r} of record {model!r} would be written outside the weights root's folders")


def _category_of(record: GenericModelRecord) -> MODEL_REFERENCE_CATEGORY | None:
    """The record type's category, else the one its `record_type` names (None when neither is known)."""
    category = type(record).category
    if category is not None:
        return category
    try:
        return MODEL_REFERENCE_CATEGORY(str(record.record_type))
    except ValueError:
        return None


def record_destinations(record: GenericModelRecord, root: Path) -> list[Path]:
    """Where each of `record`'s declared files goes under `root`, in declaration order.

    Empty when the record's category has no weights folder. Raises `UnsafeDownloadPathError` for a
    file that would land outside a folder of `root`.
    """
    category = _category_of(record)
    folder = category_folder(category) if category is not None else None
    if folder is None:
        return []
    destinations = []
    for download in record.config.download:
        placed = Path(folder) / component_relative_path(download.file_name, download.file_purpose)
        relative = Path(os.path.normpath(placed))
        if relative.is_absolute() or relative.parts[:1] == ("..",) or len(relative.parts) < 2:
            raise UnsafeDownloadPathError(download.file_name, record.name)
        destinations.append(Path(root) / relative)
    return destinations
