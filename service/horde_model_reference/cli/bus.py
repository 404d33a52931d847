"""`hmr watch` and `hmr status`: follow the bus, ask the service how it is."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import anyio
import msgspec

from horde_model_reference.bus.connection import NatsOptions, connect_nats, nats_auth_from_settings
from horde_model_reference.bus.events import CategoryChanged, HealthReply, Heartbeat, Subjects, decode_event
from horde_model_reference.settings import load_settings

__all__ = ["add_bus_parsers", "discover_nats_url"]

SERVICE_URL_FILE = ".hmr/nats.url"
"""Written by `hmr serve` under its base path, so other commands find an embedded server."""


def discover_nats_url(explicit: str | None, base_path: str | None) -> str | None:
    """The NATS URL: the option, else the setting, else the file `hmr serve` left in the base path."""
    if explicit:
        return explicit
    settings = load_settings()
    if settings.nats.url:
        return settings.nats.url
    root = Path(base_path) if base_path else settings.resolved_base_path()
    url_file = root / SERVICE_URL_FILE
    if url_file.is_file():
        return url_file.read_text().strip() or None
    return None


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


async def _watch(url: str, prefix: str, heartbeats: bool, count: int | None) -> int:
    subjects = Subjects(prefix)
    nc = await connect_nats(
        NatsOptions(url=url, name="hmr-watch", auth=nats_auth_from_settings(load_settings().nats))
    )
    seen = 0
    done = anyio.Event()

    async def on_message(msg: object) -> None:
        nonlocal seen
        data = getattr(msg, "data", b"")
        try:
            event = decode_event(data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            print(f"undecodable event on {getattr(msg, 'subject', '?')}: {exc}", flush=True)
            return
        if isinstance(event, Heartbeat) and not heartbeats:
            return
        print(_format(event), flush=True)
        seen += 1
        if count is not None and seen >= count:
            done.set()

    try:
        await nc.subscribe(subjects.changed_all, cb=on_message)
        await nc.subscribe(subjects.heartbeat, cb=on_message)
        print(f"watching {prefix}.* on {url} (Ctrl-C to stop)", flush=True)
        await done.wait()
    finally:
        with anyio.move_on_after(2, shield=True):
            await nc.close()
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


async def _status(url: str, prefix: str, timeout: float, as_json: bool) -> int:
    nc = await connect_nats(
        NatsOptions(url=url, name="hmr-status", auth=nats_auth_from_settings(load_settings().nats))
    )
    try:
        reply = await nc.request(Subjects(prefix).health, b"", timeout=timeout)
    except Exception as exc:
        print(f"hmr status: no answer from the service on {url}: {exc!r}", file=sys.stderr)
        return 1
    finally:
        with anyio.move_on_after(2, shield=True):
            await nc.close()
    if as_json:
        sys.stdout.write(msgspec.json.format(reply.data, indent=2).decode() + "\n")
    else:
        print(_format_health(reply.data))
    return 0


def _require_url(args: argparse.Namespace) -> str | None:
    url = discover_nats_url(args.nats_url, args.base_path)
    if url is None:
        print(
            f"hmr {args.command}: no NATS URL (use --nats-url, HORDE_MODEL_REFERENCE_NATS__URL, or --base-path)",
            file=sys.stderr,
        )
    return url


def _run_watch(args: argparse.Namespace) -> int:
    url = _require_url(args)
    if url is None:
        return 2
    try:
        return anyio.run(_watch, url, args.subject_prefix, args.heartbeats, args.count)
    except KeyboardInterrupt:
        return 0


def _run_status(args: argparse.Namespace) -> int:
    url = _require_url(args)
    if url is None:
        return 2
    return anyio.run(_status, url, args.subject_prefix, args.timeout, args.json)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats-url", help="NATS URL (default: the setting, else the one `hmr serve` wrote)")
    parser.add_argument("--base-path", help="the service's base path, to find an embedded NATS server")
    parser.add_argument(
        "--subject-prefix", default=load_settings().nats.subject_prefix, help="subject prefix"
    )


def add_bus_parsers(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `hmr watch` and `hmr status`."""
    watch = subparsers.add_parser("watch", help="print change events (and heartbeats) as they happen")
    _common(watch)
    watch.add_argument("--heartbeats", action="store_true", help="also print heartbeats")
    watch.add_argument("--count", type=int, help="exit after this many events")
    watch.set_defaults(func=_run_watch)
    status = subparsers.add_parser("status", help="ask the running service for its health")
    _common(status)
    status.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for the answer")
    status.add_argument("--json", action="store_true", help="print the raw health reply as JSON")
    status.set_defaults(func=_run_status)
