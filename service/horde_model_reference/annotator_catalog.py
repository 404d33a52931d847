"""Upstream module path `horde_model_reference.annotator_catalog`: the ControlNet annotator files.

Re-exports `weights.annotators`.
"""

from horde_model_reference.weights.annotators import (
    ANNOTATOR_FILES,
    ANNOTATOR_HF_REPO,
    AnnotatorFile,
    annotators_for_control_types,
)

__all__ = ["ANNOTATOR_FILES", "ANNOTATOR_HF_REPO", "AnnotatorFile", "annotators_for_control_types"]
