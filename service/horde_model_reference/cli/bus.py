"""`hmr watch` and `hmr status`: follow the bus, ask the service how it is."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import msgspec

from horde_model_reference.bus.connection import (
    NatsClient,
    NatsOptions,
    connect_nats,
    nats_auth_from_settings,
    redact_url,
)
from horde_model_reference.bus.events import CategoryChanged, HealthReply, Heartbeat, Subjects, decode_event
from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.logs import get_logger
from horde_model_reference.settings import load_settings
from horde_model_reference.supervisor import sole_exception

__all__ = [
    "SERVICE_URL_FILE",
    "NatsUnreachableError",
    "NoServiceUrlError",
    "ServiceUrl",
    "add_bus_parsers",
    "add_common_bus_options",
    "bus_client",
    "discover_nats_url",
    "require_service_url",
    "subject_prefix",
]

_log = get_logger(__name__)

SERVICE_URL_FILE = ".hmr/nats.url"
"""Written by `hmr serve` under its base path while it runs, so other commands find an embedded server."""


class NoServiceUrlError(ModelReferenceError):
    """No NATS URL was given and no running `hmr serve` left one under the base path."""

    def __init__(self, url_file: Path | None) -> None:
        self.url_file = url_file
        if url_file is None:
            message = (
                "no NATS URL: give --base-path (of a running `hmr serve`), --nats-url, "
                "or HORDE_MODEL_REFERENCE_NATS__URL"
            )
        else:
            base = url_file.parent.parent
            message = (
                f"no service is running under {base}: {url_file} is absent "
                f"(`hmr serve --base-path {base}` writes it while it runs)"
            )
        super().__init__(message)


class NatsUnreachableError(ModelReferenceError):
    """NATS did not accept a connection within the command's timeout."""

    def __init__(self, url: str, timeout: float, source: Path | None) -> None:
        self.url = url
        self.timeout = timeout
        where = f" (from {source})" if source is not None else ""
        super().__init__(
            f"cannot reach NATS at {redact_url(url)}{where} within {timeout:g}s: is `hmr serve` running?"
        )


class ServiceUrl(msgspec.Struct, frozen=True):
    """A NATS URL and the file it was read from (None: given as an option or a setting)."""

    url: str
    url_file: Path | None = None

    def reread(self) -> str | None:
        """The URL the file holds now (a restarted service may listen elsewhere), if any."""
        if self.url_file is None:
            return None
        try:
            return self.url_file.read_text().strip() or None
        except OSError:
            return None


def require_service_url(explicit: str | None, base_path: str | None) -> ServiceUrl:
    """The NATS URL: the option, else the setting, else the file `hmr serve` writes in the base path."""
    if explicit:
        return ServiceUrl(explicit)
    settings = load_settings()
    if settings.nats.url:
        return ServiceUrl(settings.nats.url)
    root = Path(base_path) if base_path else settings.resolved_base_path()
    url_file = root / SERVICE_URL_FILE
    found = ServiceUrl("", url_file).reread()
    if found is None:
        raise NoServiceUrlError(url_file if base_path else None)
    return ServiceUrl(found, url_file)


def discover_nats_url(explicit: str | None, base_path: str | None) -> str | None:
    """The NATS URL as `require_service_url` finds it, or None."""
    try:
        return require_service_url(explicit, base_path).url
    except NoServiceUrlError:
        return None


def subject_prefix(args: argparse.Namespace) -> str:
    """`--subject-prefix`, else the setting (read only when the command runs, never for `--help`)."""
    prefix: str = args.subject_prefix or load_settings().nats.subject_prefix
    return prefix


@asynccontextmanager
async def bus_client(target: ServiceUrl, name: str, timeout: float) -> AsyncIterator[NatsClient]:
    """A NATS client connected within `timeout` (else `NatsUnreachableError`), closed quietly on exit."""
    closing = False
    try:
        with anyio.fail_after(timeout):
            nc = await connect_nats(
                NatsOptions(url=target.url, name=name, auth=nats_auth_from_settings(load_settings().nats)),
                is_closing=lambda: closing,
            )
    except TimeoutError:
        raise NatsUnreachableError(target.url, timeout, target.url_file) from None
    try:
        yield nc
    finally:
        closing = True
        with anyio.move_on_after(2, shield=True):
            await nc.close()


def _format(event: object) -> str:
    stamp = time.strftime("%H:%M:%S")
    if isinstance(event, CategoryChanged):
        delta = "delta" if event.records is not None else "no-delta"
        return (
            f"{stamp} changed  {event.category:<18} rev={event.revision:<5} +{len(event.added)} "
            f"-{len(event.removed)} ~{len(event.changed)} {delta} digest={event.digest[:12]}"
        )
    if isinstance(event, Heartbeat):
        revisions = " ".join(f"{name}={state.revision}" for name, state in sorted(event.categories.items()))
        return f"{stamp} heartbeat service={event.service_id[:8]} {revisions}"
    return f"{stamp} {event!r}"


class _Watch:
    """One `hmr watch`: prints events until `count` is reached or a signal asks it to stop."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.prefix = subject_prefix(args)
        self.heartbeats: bool = args.heartbeats
        self.count: int | None = args.count
        self.ready_file: str | None = args.ready_file
        self.timeout: float = args.timeout
        self.seen = 0
        self.done = anyio.Event()

    async def on_message(self, msg: object) -> None:
        data = getattr(msg, "data", b"")
        try:
            event = decode_event(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            print(f"undecodable event on {getattr(msg, 'subject', '?')}: {exc}", flush=True)
            return
        if isinstance(event, Heartbeat) and not self.heartbeats:
            return
        print(_format(event), flush=True)
        self.seen += 1
        if self.count is not None and self.seen >= self.count:
            self.done.set()

    async def _stop_on_signal(self) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                self.done.set()
                return

    async def _follow(self, target: ServiceUrl, first: bool) -> str | None:
        """Subscribe on `target` and wait; the URL a restarted service moved to, or None when done."""
        subjects = Subjects(self.prefix)
        async with bus_client(target, "hmr-watch", self.timeout) as nc:
            await nc.subscribe(subjects.changed_all, cb=self.on_message)
            await nc.subscribe(subjects.heartbeat, cb=self.on_message)
            await nc.flush(timeout=max(1, round(self.timeout)))  # the server has the subscriptions: ready
            if first:
                print(f"watching {self.prefix}.* on {redact_url(target.url)} (Ctrl-C to stop)", flush=True)
                if self.ready_file:
                    await anyio.Path(self.ready_file).write_text(target.url + "\n")
            else:
                print(f"following the service at {redact_url(target.url)}", flush=True)
            while True:
                with anyio.move_on_after(0.5):
                    await self.done.wait()
                    return None
                moved = None if nc.is_connected else target.reread()
                if moved is not None and moved != target.url:
                    _log.info("watch_service_moved", old=redact_url(target.url), new=redact_url(moved))
                    return moved

    async def run(self, target: ServiceUrl) -> int:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._stop_on_signal)
                first = True
                while (moved := await self._follow(target, first)) is not None:
                    target, first = ServiceUrl(moved, target.url_file), False
                tg.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise sole_exception(group) from None
        return 0


def _format_health(data: bytes) -> str:
    health = msgspec.json.decode(data, type=HealthReply)
    lines = [
        f"service {health.service_id}  uptime {health.uptime:.0f}s  "
        f"nats={'up' if health.nats_connected else 'down'}  "
        f"redis={'n/a' if health.redis_connected is None else 'up' if health.redis_connected else 'down'}",
        f"{'category':<22} {'state':<7} {'rev':>5} {'models':>6} {'restarts':>8}  {'digest':<12}  "
        f"{'last change':<19}  last error",
    ]
    for name, state in sorted(health.categories.items()):
        changed = (
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(state.last_change))
            if state.last_change
            else "-"
        )
        lines.append(
            f"{name:<22} {state.state or '-':<7} {state.revision:>5} {state.record_count:>6} {state.restarts:>8}  "
            f"{(state.digest or '-')[:12]:<12}  {changed:<19}  {state.last_error or '-'}"
        )
    return "\n".join(lines)


async def _status(target: ServiceUrl, prefix: str, args: argparse.Namespace) -> int:
    timeout: float = args.timeout
    async with bus_client(target, "hmr-status", timeout) as nc:
        try:
            reply = await nc.request(Subjects(prefix).health, b"", timeout=timeout)
        except Exception as exc:
            print(
                f"hmr status: no answer from the service on {redact_url(target.url)} within {timeout:g}s "
                f"({type(exc).__name__}: is `hmr serve` running?)",
                file=sys.stderr,
            )
            return 1
    if args.revision:
        categories = msgspec.json.decode(reply.data, type=HealthReply).categories
        if args.revision not in categories:
            print(
                f"hmr status: the service has no category {args.revision!r} "
                f"(it has: {', '.join(sorted(categories))})",
                file=sys.stderr,
            )
            return 1
        print(categories[args.revision].revision)
    elif args.json:
        sys.stdout.write(msgspec.json.format(reply.data, indent=2).decode() + "\n")
    else:
        print(_format_health(reply.data))
    return 0


def _run_watch(args: argparse.Namespace) -> int:
    target = require_service_url(args.nats_url, args.base_path)
    return anyio.run(_Watch(args).run, target)


def _run_status(args: argparse.Namespace) -> int:
    target = require_service_url(args.nats_url, args.base_path)
    return anyio.run(_status, target, subject_prefix(args), args)


def add_common_bus_options(parser: argparse.ArgumentParser, timeout: float) -> None:
    """`--nats-url`, `--base-path`, `--subject-prefix` and `--timeout`, shared by every bus command."""
    parser.add_argument("--nats-url", help="NATS URL (default: the setting, else the one `hmr serve` wrote)")
    parser.add_argument(
        "--base-path", help="the service's base path, to find its embedded NATS server (.hmr/nats.url)"
    )
    parser.add_argument("--subject-prefix", help="subject prefix (default: the setting, hmr.v1)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        help=f"seconds to wait for NATS and the reply (default {timeout:g})",
    )


def add_bus_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `hmr watch` and `hmr status`."""
    watch = subparsers.add_parser(
        "watch",
        help="print change events (and heartbeats) as they happen",
        description=(
            "Print change events as they happen. With --base-path it follows a restarted service "
            "(the URL file is read again while disconnected). SIGTERM or Ctrl-C exits 0."
        ),
    )
    add_common_bus_options(watch, timeout=10.0)
    watch.add_argument("--heartbeats", action="store_true", help="also print heartbeats")
    watch.add_argument("--count", type=int, help="exit after this many events")
    watch.add_argument(
        "--ready-file",
        metavar="FILE",
        help="write FILE once subscribed (scripts wait for it before a change)",
    )
    watch.set_defaults(func=_run_watch)
    status = subparsers.add_parser("status", help="ask the running service for its health")
    add_common_bus_options(status, timeout=2.0)
    status.add_argument("--json", action="store_true", help="print the raw health reply as JSON")
    status.add_argument(
        "--revision", metavar="CATEGORY", help="print only this category's revision (for scripts)"
    )
    status.set_defaults(func=_run_status)
