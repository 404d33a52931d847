"""The public edge: a consumer over WebSocket (`ws://`), and the read-only identity meant to be
shared publicly, against a real nats-server of the test's own."""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import anyio
import nats
import pytest

from bus_harness import running_service
from fleet_harness import follower, options
from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.bus.connection import NatsAuth
from horde_model_reference.bus.embedded import free_port
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.supervisor import ServiceConfig, run_service
from nats_process import NatsProcess

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

CLIP = MODEL_REFERENCE_CATEGORY.clip
REPO = Path(__file__).resolve().parent.parent


def _websocket(port: int) -> str:
    return f'websocket {{\n  listen: "127.0.0.1:{port}"\n  no_tls: true\n}}\n'


async def test_a_consumer_follows_over_websocket(tmp_path: Path, golden_base: Path) -> None:
    ws_port = free_port()
    with NatsProcess(tmp_path / "nats", extra=_websocket(ws_port)) as server:
        async with running_service(golden_base, nats_url=server.url, subject_prefix="hmr.v1") as service:
            url = f"ws://127.0.0.1:{ws_port}"
            async with follower(options(url, "hmr.v1")) as fan:
                assert fan.engine.connected
                assert fan.digest(CLIP) == service.snapshot(CLIP).digest  # type: ignore[union-attr]
                assert fan.engine.stats["snapshots_jetstream"] >= 10
                before = fan.revision(CLIP) or 0
                clip = golden_base / "clip.json"
                clip.write_bytes(clip.read_bytes().replace(b"ViT", b"ViT4"))
                await fan.wait_revision(before + 1, CLIP, timeout=30)


def _public_config(directory: Path, ws_port: int) -> str:
    """The deploy's permissions (deploy/edge/*-permissions.conf, copied next to the config: NATS
    includes are relative), two users, a websocket listener."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("public-permissions.conf", "service-permissions.conf"):
        shutil.copy(REPO / "deploy" / "edge" / name, directory / name)
    return (
        "include ./public-permissions.conf\ninclude ./service-permissions.conf\n"
        + """
accounts {
  HMR {
    jetstream: enabled
    users: [
      { user: hmr-service, password: s, permissions: $SERVICE_JETSTREAM_PERMISSIONS }
      { user: hmr-public, password: public, permissions: $PUBLIC_PERMISSIONS }
    ]
  }
}
"""
        + _websocket(ws_port)
    )


async def test_the_public_identity_reads_snapshots_and_follows_but_cannot_publish(
    tmp_path: Path, golden_base: Path
) -> None:
    ws_port = free_port()
    with NatsProcess(tmp_path / "nats", extra=_public_config(tmp_path / "nats", ws_port)) as server:
        config = ServiceConfig(
            data_dir=str(tmp_path / "data"),
            nats_url=server.url,
            nats_auth=NatsAuth(user="hmr-service", password="s", inbox_prefix="_INBOX.service"),
        )
        async with anyio.create_task_group() as tg:
            service = await tg.start(
                partial(run_service, config, FileSystemBackend(golden_base), handle_signals=False)
            )
            public = options(
                f"ws://127.0.0.1:{ws_port}",
                "hmr.v1",
                auth=NatsAuth(user="hmr-public", password="public", inbox_prefix="_INBOX.public"),
                snapshot_requests=False,
            )
            async with follower(public) as fan:
                assert fan.digest(CLIP) == service.snapshot(CLIP).digest
                assert fan.engine.stats["snapshots_jetstream"] >= 10
                assert fan.engine.stats["snapshots_nats"] == 0
                before = fan.revision(CLIP) or 0
                clip = golden_base / "clip.json"
                clip.write_bytes(clip.read_bytes().replace(b"ViT", b"ViT5"))
                await fan.wait_revision(before + 1, CLIP, timeout=30)
            errors: list[Exception] = []

            async def error_cb(exc: Exception) -> None:
                errors.append(exc)

            nc = await nats.connect(
                f"ws://127.0.0.1:{ws_port}",
                user="hmr-public",
                password="public",
                inbox_prefix="_INBOX.public",
                error_cb=error_cb,
                allow_reconnect=False,
            )
            try:
                for subject in ("hmr.v1.changed.clip", "hmr.v1.heartbeat", "hmr.v1.snapshot.clip"):
                    await nc.publish(subject, b"{}")
                await nc.flush(timeout=5)
                with anyio.fail_after(10):
                    while len(errors) < 3:
                        await anyio.sleep(0.02)
            finally:
                await nc.close()
            assert all("permissions violation" in str(e).lower() for e in errors), errors
            assert service.status().categories["clip"].state == "loaded"
            tg.cancel_scope.cancel()
