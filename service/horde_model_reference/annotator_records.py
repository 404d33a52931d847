"""Upstream module path `horde_model_reference.annotator_records`: the annotator catalog as records.

Re-exports `weights.annotators`.
"""

from horde_model_reference.weights.annotators import (
    ANNOTATOR_ON_DISK_SUBFOLDER,
    annotator_model_name,
    annotator_records,
)

__all__ = ["ANNOTATOR_ON_DISK_SUBFOLDER", "annotator_model_name", "annotator_records"]
