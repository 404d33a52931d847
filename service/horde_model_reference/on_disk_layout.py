"""Upstream module path `horde_model_reference.on_disk_layout`: where weights live and whether they are there.

Re-exports `weights.layout` (weights root, file paths, presence, annotator paths), `weights.kinds`
(component routing) and the category folder helpers of `compat.meta_consts`.
"""

from horde_model_reference.compat.meta_consts import (
    WEIGHTS_MARKER_FOLDERS,
    category_folder,
    get_weights_marker_folders,
)
from horde_model_reference.weights.kinds import COMPONENT_PURPOSE_FOLDERS, component_relative_path
from horde_model_reference.weights.layout import (
    PresenceSummary,
    annotator_file_path,
    annotator_root,
    annotators_present,
    annotators_present_for_control_types,
    file_paths_for,
    free_bytes_for,
    is_present,
    presence_summary,
    resolve_weights_root,
)

__all__ = [
    "COMPONENT_PURPOSE_FOLDERS",
    "WEIGHTS_MARKER_FOLDERS",
    "PresenceSummary",
    "annotator_file_path",
    "annotator_root",
    "annotators_present",
    "annotators_present_for_control_types",
    "category_folder",
    "component_relative_path",
    "file_paths_for",
    "free_bytes_for",
    "get_weights_marker_folders",
    "is_present",
    "presence_summary",
    "resolve_weights_root",
]
