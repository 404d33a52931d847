"""Upstream module path `horde_model_reference.image_baseline` (see `compat.image_baseline`)."""

from horde_model_reference.compat.image_baseline import *  # noqa: F403
from horde_model_reference.compat.image_baseline import __all__ as __all__
