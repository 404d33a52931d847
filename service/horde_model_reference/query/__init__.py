"""The query builder: filter, sort and aggregate records, with provenance across sources."""

from horde_model_reference.query.build import (
    build_controlnet_query,
    build_cross_category_query,
    build_image_query,
    build_query,
    build_text_query,
)
from horde_model_reference.query.builder import ModelQuery
from horde_model_reference.query.fields import FieldRef, OrderSpec, Predicate, false, true
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
    "build_controlnet_query",
    "build_cross_category_query",
    "build_image_query",
    "build_query",
    "build_text_query",
    "false",
    "is_quantized_name",
    "true",
    *_namespaces_all,
]
