"""The query builder: filter, sort and aggregate records, with provenance across sources."""

from horde_model_reference.query.builder import ModelQuery
from horde_model_reference.query.fields import FieldRef, OrderSpec, Predicate
from horde_model_reference.query.namespaces import *  # noqa: F403
from horde_model_reference.query.namespaces import __all__ as _namespaces_all
from horde_model_reference.query.typed import (
    ControlNetQuery,
    ImageGenerationQuery,
    TextModelQuery,
    base_model_name,
    is_quantized_name,
)

__all__ = [
    "ControlNetQuery",
    "FieldRef",
    "ImageGenerationQuery",
    "ModelQuery",
    "OrderSpec",
    "Predicate",
    "TextModelQuery",
    "base_model_name",
    "is_quantized_name",
    *_namespaces_all,
]
