"""Upstream module path `horde_model_reference.on_disk_layout`: `category_folder` and the marker folders.

Upstream's download and disk-presence helpers (`file_paths_for`, `is_present`, ...) are not
provided (see docs/consumers.md).
"""

from horde_model_reference.compat.meta_consts import (
    WEIGHTS_MARKER_FOLDERS,
    category_folder,
    get_weights_marker_folders,
)

__all__ = ["WEIGHTS_MARKER_FOLDERS", "category_folder", "get_weights_marker_folders"]
