"""Hand edits seen at once: the operating system's file events (inotify, FSEvents, ... through
`watchfiles`) wake the actor of the category whose catalog file changed; the poll stays as the
fallback (a watcher that cannot start, or stops, is logged and the poll alone carries on)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

import anyio
import watchfiles

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.logs import get_logger

__all__ = ["FileBacked", "watch_catalog_files"]

_log = get_logger(__name__)
_STEP_MS = 5
"""How long a burst of events must be quiet before it is handed over (watchfiles' `step`)."""
_DEBOUNCE_MS = 50
"""The longest a burst is grouped (watchfiles' `debounce`)."""
_RUST_TIMEOUT_MS = 200
"""The watcher's thread returns this often when nothing happens: a cancellation (service stop)
waits for that thread, so this bounds how long a stop waits for the watcher."""
_RESTART_DELAY = 5.0


class FileBacked(Protocol):
    """A backend reading one file per category under a base directory (`FileSystemBackend`)."""

    base_path: Path

    def path_for(self, category: MODEL_REFERENCE_CATEGORY) -> Path: ...


async def watch_catalog_files(
    backend: FileBacked,
    categories: Mapping[MODEL_REFERENCE_CATEGORY, object],
    poke: Callable[[MODEL_REFERENCE_CATEGORY], None],
) -> None:
    """Until cancelled: `poke(category)` whenever the file of one of `categories` is written,
    created, replaced (an atomic rename) or removed."""
    names = {backend.path_for(category).name: category for category in categories}
    directory = Path(backend.base_path)

    def interesting(change: watchfiles.Change, path: str) -> bool:
        del change
        return Path(path).name in names

    while True:
        try:
            _log.info("file_watch_started", directory=str(directory), files=len(names))
            async for changes in watchfiles.awatch(
                directory,
                watch_filter=interesting,
                step=_STEP_MS,
                debounce=_DEBOUNCE_MS,
                rust_timeout=_RUST_TIMEOUT_MS,
                recursive=False,
            ):
                for name in sorted({Path(path).name for _, path in changes}):
                    poke(names[name])
        except (OSError, RuntimeError) as exc:  # no inotify watches left, directory gone, ...
            _log.warning(
                "file_watch_failed",
                directory=str(directory),
                error=repr(exc),
                fallback="poll",
                retry_in=_RESTART_DELAY,
            )
        await anyio.sleep(_RESTART_DELAY)
