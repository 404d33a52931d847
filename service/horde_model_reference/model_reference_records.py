"""Upstream module path `horde_model_reference.model_reference_records` (see `compat.model_reference_records`)."""

from horde_model_reference.compat.model_reference_records import *  # noqa: F403
from horde_model_reference.compat.model_reference_records import __all__ as __all__
