"""Upstream module path `horde_model_reference.text_backend_names` (see `compat.text_backend_names`)."""

from horde_model_reference.compat.text_backend_names import *  # noqa: F403
from horde_model_reference.compat.text_backend_names import __all__ as __all__
