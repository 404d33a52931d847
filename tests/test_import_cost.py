"""Importing the package (what every worker does) pulls in no network client it may never use.

A worker that reads from a file or HTTP backend must not pay for nats-py, aiohttp, redis or httpx
at import: the manager imports the bus when it is given a NATS URL, and the HTTP clients on their
first request. Measured in `make bench` (import + first load); checked here by module presence.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_HEAVY = ("nats", "aiohttp", "redis", "httpx", "pydantic", "horde_model_reference.bus")


def _modules_after(statement: str) -> set[str]:
    code = f"import json, sys\n{statement}\nprint(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(proc.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "statement",
    [
        "import horde_model_reference",
        "from horde_model_reference.model_reference_manager import ModelReferenceManager",
        "from horde_model_reference import MODEL_REFERENCE_CATEGORY, PendingModelProvider",
    ],
)
def test_package_import_loads_no_network_client(statement: str) -> None:
    loaded = _modules_after(statement)
    assert not {name for name in _HEAVY if name in loaded}, statement


def test_a_manager_without_nats_url_does_not_import_the_bus(tmp_path) -> None:
    statement = (
        "from horde_model_reference import ModelReferenceManager\n"
        f"ModelReferenceManager(base_path={str(tmp_path)!r}, prefetch_strategy='lazy')"
    )
    loaded = _modules_after(statement)
    assert "horde_model_reference.bus" not in loaded
    assert "nats" not in loaded
