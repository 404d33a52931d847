"""The write path on the primary: propose, approve, apply; audited, atomic, authorised.

    from horde_model_reference.writes import WriteService, WriteSettings

    writes = WriteService(settings.writes)
    await run_service(config, FileSystemBackend(base_path), components=[writes.run])

Over NATS: request/reply on `<prefix>.write.<command>` with the Structs of `writes.contracts`.
See docs/writes.md. Imports are lazy so that `settings.py` can import `WriteSettings` without
pulling in the service.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from horde_model_reference.writes.audit import AuditFilter, AuditTrail
    from horde_model_reference.writes.auth import Authorizer, Principal, key_hash
    from horde_model_reference.writes.contracts import Change, ChangeStatus, Operation, Role
    from horde_model_reference.writes.errors import WriteError
    from horde_model_reference.writes.queue import ChangeQueue
    from horde_model_reference.writes.service import WriteService
    from horde_model_reference.writes.settings import WriteSettings
    from horde_model_reference.writes.validation import record_digest

__all__ = [
    "AuditFilter",
    "AuditTrail",
    "Authorizer",
    "Change",
    "ChangeQueue",
    "ChangeStatus",
    "Operation",
    "Principal",
    "Role",
    "WriteError",
    "WriteService",
    "WriteSettings",
    "key_hash",
    "record_digest",
]

_WHERE = {
    "AuditFilter": "audit",
    "AuditTrail": "audit",
    "Authorizer": "auth",
    "Principal": "auth",
    "key_hash": "auth",
    "Change": "contracts",
    "ChangeStatus": "contracts",
    "Operation": "contracts",
    "Role": "contracts",
    "WriteError": "errors",
    "ChangeQueue": "queue",
    "WriteService": "service",
    "WriteSettings": "settings",
    "record_digest": "validation",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
