"""Deleting the snapshot buckets tests leave on a shared NATS server.

Every service a test runs stores snapshots in JetStream (a KV bucket, and an Object Store for large
catalogs) named after its subject prefix. On the machine's shared server they would pile up run
after run, so each test's buckets are deleted when it ends, and buckets of test prefixes left by
killed runs are deleted at the start of a session once they are an hour old.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import nats
import nats.errors
import nats.js.errors
from nats.js.api import StreamInfo

from horde_model_reference.bus.jetstream_store import bucket_name
from horde_model_reference.logs import get_logger

__all__ = ["TEST_PREFIX_ROOT", "drop_snapshot_streams"]

TEST_PREFIX_ROOT = "hmrtest"
"""Subject prefixes of tests start with this (`hmrtest.<hex>`)."""

_log = get_logger(__name__)
_TIMEOUT = 10.0


def _streams_of(subject_prefix: str) -> tuple[str, str]:
    bucket = bucket_name(subject_prefix)
    return f"KV_{bucket}", f"OBJ_{bucket}_large"


async def _drop(nats_url: str, prefixes: tuple[str, ...], stale_after: dt.timedelta | None) -> None:
    nc = await nats.connect(
        nats_url, connect_timeout=_TIMEOUT, max_reconnect_attempts=0, allow_reconnect=False
    )
    try:
        js = nc.jetstream(timeout=_TIMEOUT)
        names = [name for prefix in prefixes for name in _streams_of(prefix)]
        if stale_after is not None:
            stale_names = (f"KV_{TEST_PREFIX_ROOT}_", f"OBJ_{TEST_PREFIX_ROOT}_")
            cutoff = dt.datetime.now(dt.UTC) - stale_after
            offset = 0
            while True:
                infos = await js.streams_info(offset=offset)
                if not infos:
                    break
                offset += len(infos)
                names.extend(
                    info.config.name
                    for info in infos
                    if info.config.name
                    and info.config.name.startswith(stale_names)
                    and _created(info) < cutoff
                )
        for name in names:
            try:
                await js.delete_stream(name)
            except nats.js.errors.NotFoundError:
                pass
    finally:
        await nc.close()


def _created(info: StreamInfo) -> dt.datetime:
    created = info.created
    if isinstance(created, dt.datetime):
        return created if created.tzinfo else created.replace(tzinfo=dt.UTC)
    return dt.datetime.max.replace(tzinfo=dt.UTC)


def drop_snapshot_streams(
    nats_url: str, prefixes: tuple[str, ...] = (), *, stale_after: dt.timedelta | None = None
) -> None:
    """Delete the snapshot buckets of `prefixes` (and, with `stale_after`, old ones of any test)."""
    try:
        asyncio.run(_drop(nats_url, prefixes, stale_after))
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        _log.warning("test_bucket_cleanup_failed", nats_url=nats_url, error=str(exc))
