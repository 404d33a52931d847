"""Upstream module path `horde_model_reference.path_consts` (see `compat.path_consts`)."""

from horde_model_reference.compat.path_consts import *  # noqa: F403
from horde_model_reference.compat.path_consts import __all__ as __all__
from horde_model_reference.compat.path_consts import __getattr__ as __getattr__
