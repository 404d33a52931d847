"""Upstream module path `horde_model_reference.meta_consts` (see `compat.meta_consts`)."""

from horde_model_reference.compat.meta_consts import *  # noqa: F403
from horde_model_reference.compat.meta_consts import __all__ as __all__
