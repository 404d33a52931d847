"""A consumer process for bus tests: a real ModelReferenceManager following the bus.

Usage: consumer_process.py NATS_URL WORKDIR. Reads commands on stdin, one JSON answer per line:
`ping`, `state` (revision and digest of every category held), `wait <category> <revision>`,
`quit`.
"""

from __future__ import annotations

import json
import sys

from horde_model_reference.backends.filesystem import LocalReadOnlyBackend
from horde_model_reference.manager import ModelReferenceManager
from horde_model_reference.manager.prefetch import PrefetchStrategy


def main() -> int:
    nats_url, workdir = sys.argv[1], sys.argv[2]
    manager = ModelReferenceManager(
        backend=LocalReadOnlyBackend(workdir), prefetch_strategy=PrefetchStrategy.LAZY, nats_url=nats_url
    )
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            print(json.dumps({"ok": True}), flush=True)
            break
        if words[0] == "ping":
            print(json.dumps({"ok": True}), flush=True)
        elif words[0] == "state":
            manager.get_model_reference_or_none("image_generation")
            state = {}
            for category in ("image_generation", "text_generation"):
                snapshot = manager.snapshot(category)
                if snapshot is not None:
                    state[category] = [snapshot.revision, snapshot.digest, len(snapshot.records)]
            print(json.dumps(state), flush=True)
        elif words[0] == "wait":
            reached = manager.wait_for_revision(
                words[1], int(words[2]), timeout=float(words[3]) if len(words) > 3 else 10
            )
            print(json.dumps({"reached": reached, "revision": manager.revision(words[1])}), flush=True)
    ModelReferenceManager.reset()
    return 0


if __name__ == "__main__":
    sys.exit(main())
