"""Fixtures of the fleet tests, loaded as a plugin (`pytest_plugins = ["fleet_fixtures"]`)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest

from horde_model_reference.bus.jetstream_store import bucket_name

__all__ = ["drop_buckets", "golden_base"]


@pytest.fixture
def golden_base(tmp_path: Path, shared_data: Path) -> Path:
    """A primary's base path holding the real golden catalogs."""
    target = tmp_path / "primary"
    shutil.copytree(shared_data / "golden-v2", target)
    return target


@pytest.fixture
async def drop_buckets(nats_url: str, subject_prefix: str) -> AsyncIterator[None]:
    """Delete the test's snapshot bucket and object store from the shared server afterwards."""
    yield
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for delete, name in ((js.delete_key_value, bucket_name(subject_prefix)),):
            try:
                await delete(name)
            except nats.js.errors.NotFoundError:
                pass
        try:
            await js.delete_object_store(bucket_name(subject_prefix) + "_large")
        except nats.js.errors.NotFoundError:
            pass
    finally:
        await nc.close()
