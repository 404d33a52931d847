"""An example consumer: follow the model reference over NATS and print every change.

In the repository's virtualenv (`source .venv/bin/activate`, or run `.venv/bin/python`), next to
`make run` (which serves var/primary):

    python examples/consumer.py --base-path var/primary
    python examples/consumer.py --nats-url nats://127.0.0.1:4222
    HORDE_MODEL_REFERENCE_NATS__URL=tls://nats-1:4222 python examples/consumer.py --name worker-7

Credentials, TLS, Redis and the subject prefix come from the HORDE_MODEL_REFERENCE_* settings
(docs/operators.md). Stops on Ctrl-C or SIGTERM, or after `--exit-after` changes.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from horde_model_reference import MODEL_REFERENCE_CATEGORY, ChangeNotice, ModelReferenceManager
from horde_model_reference.cli.bus import NoServiceUrlError, require_service_url


def _describe(name: str, notice: ChangeNotice) -> str:
    old = "-" if notice.old_revision is None else str(notice.old_revision)
    return (
        f"{name}: {notice.category.value} revision {old} -> {notice.new_revision} "
        f"(+{len(notice.added)} -{len(notice.removed)} ~{len(notice.changed)}) "
        f"added={list(notice.added)[:5]} changed={list(notice.changed)[:5]} removed={list(notice.removed)[:5]}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print what the manager holds, then every change, until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nats-url", help="NATS URL (default: HORDE_MODEL_REFERENCE_NATS__URL)")
    parser.add_argument(
        "--base-path",
        help="the base path of a running `hmr serve` (its embedded NATS URL is read from there)",
    )
    parser.add_argument("--name", default="consumer", help="label printed before every line")
    parser.add_argument("--exit-after", type=int, help="exit 0 after this many changes")
    parser.add_argument("--timeout", type=float, help="with --exit-after: exit 1 after this many seconds")
    args = parser.parse_args(argv)

    stop = threading.Event()
    seen = 0

    def on_change(notice: ChangeNotice) -> None:
        nonlocal seen
        print(_describe(args.name, notice), flush=True)
        seen += 1
        if args.exit_after is not None and seen >= args.exit_after:
            stop.set()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    nats_url = args.nats_url
    if args.base_path and not nats_url:
        try:
            nats_url = require_service_url(None, args.base_path).url
        except NoServiceUrlError as exc:
            print(f"{args.name}: {exc}", file=sys.stderr)
            return 2
    manager = ModelReferenceManager(**({"nats_url": nats_url} if nats_url else {}))
    try:
        manager.warm_cache()  # following the bus: waits for the first data (up to 10 s)
        for category in MODEL_REFERENCE_CATEGORY:
            revision = manager.revision(category)
            if revision is not None:
                count = len(manager.get_model_names(category))
                print(
                    f"{args.name}: holding {category.value} revision {revision} ({count} models)", flush=True
                )
        manager.on_change(on_change)
        print(f"{args.name}: following changes (connected={manager.bus_connected})", flush=True)
        finished = stop.wait(args.timeout if args.exit_after is not None else None)
    finally:
        ModelReferenceManager.reset()
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
