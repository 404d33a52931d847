"""Upstream's module path for the query field references: `FieldRef`, the `*Fields` namespaces,
`Predicate`, `OrderSpec`, and `true()` / `false()`. A re-export of `horde_model_reference.query`'s
own classes (`query/fields.py`, `query/namespaces.py`); nothing is wrapped.
"""

from horde_model_reference.query.fields import FieldRef, OrderSpec, Predicate, false, true
from horde_model_reference.query.namespaces import (
    AudioFields,
    BlipFields,
    ClipFields,
    CodeformerFields,
    ControlNetAnnotatorFields,
    ControlNetFields,
    EsrganFields,
    GenericFields,
    GfpganFields,
    ImageFields,
    LoraFields,
    MiscellaneousFields,
    SafetyCheckerFields,
    TextFields,
    TextualInversionFields,
    VideoFields,
)

__all__ = [
    "AudioFields",
    "BlipFields",
    "ClipFields",
    "CodeformerFields",
    "ControlNetAnnotatorFields",
    "ControlNetFields",
    "EsrganFields",
    "FieldRef",
    "GenericFields",
    "GfpganFields",
    "ImageFields",
    "LoraFields",
    "MiscellaneousFields",
    "OrderSpec",
    "Predicate",
    "SafetyCheckerFields",
    "TextFields",
    "TextualInversionFields",
    "VideoFields",
    "false",
    "true",
]
