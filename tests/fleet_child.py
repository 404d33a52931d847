"""A process holding several bus consumers that record every revision they install (fleet tests).

Usage: fleet_child.py NATS_URL SUBJECT_PREFIX REDIS_URL COUNT [nojs] (nojs: no JetStream reads). Prints `ready` once every consumer
finished its first sync, then answers commands on stdin, one JSON line each:
`history <category>` (per consumer, every revision installed, in order), `quit`.
"""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

import anyio
from anyio.from_thread import start_blocking_portal

from horde_model_reference.bus.consumer import BusConsumer, BusOptions
from horde_model_reference.cache import ChangeNotice, ReferenceCache


def main() -> int:
    nats_url, prefix, redis_url, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    histories: list[dict[str, list[int]]] = [{} for _ in range(count)]
    lock = threading.Lock()

    def recorder(index: int) -> Any:
        async def dispatch(notice: ChangeNotice) -> None:
            with lock:
                histories[index].setdefault(notice.category.value, []).append(notice.new_revision)

        return dispatch

    jetstream = sys.argv[5:] != ["nojs"]
    options = BusOptions(
        nats_url=nats_url,
        subject_prefix=prefix,
        redis_url=redis_url or None,
        retry_interval=0.2,
        jetstream=jetstream,
    )
    consumers = [BusConsumer(ReferenceCache(), options, dispatch=recorder(i)) for i in range(count)]

    async def run_all(*, task_status: Any) -> None:
        async with anyio.create_task_group() as tg:
            for consumer in consumers:
                await tg.start(consumer.run)
            task_status.started()

    with start_blocking_portal() as portal:
        future, _ = portal.start_task(run_all)
        print("ready", flush=True)
        for line in sys.stdin:
            words = line.split()
            if words and words[0] == "history":
                with lock:
                    print(json.dumps([h.get(words[1], []) for h in histories]), flush=True)
            elif words and words[0] == "quit":
                break
        future.cancel()
    return 0


if __name__ == "__main__":
    sys.exit(main())
