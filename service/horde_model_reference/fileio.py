"""File I/O: atomic replacement (readers see the old content or the new, never a mix), and
reading a catalog file without copying it again to drop its trailing newline."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["atomic_output", "atomic_write_bytes", "read_trimmed_bytes"]

_TAIL = 64


def read_trimmed_bytes(path: str | Path) -> bytes:
    """The file's bytes without trailing whitespace (up to the last 64 bytes' worth).

    Catalog files end with a newline, canonical bytes do not: reading only up to it spares a copy
    of the whole file (`bytes.strip` returns the same object when there is nothing left to strip).
    """
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        tail_start = max(size - _TAIL, 0)
        handle.seek(tail_start)
        tail = handle.read()
        keep = tail_start + len(tail.rstrip())
        handle.seek(0)
        return handle.read(keep)


@contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A file handle whose content replaces `path` only when the block completes.

    Written to a unique temporary file in the same directory, fsynced, renamed over `path`, and
    the directory fsynced; on any exception the temporary file is removed and `path` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    if os.name == "posix":
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (see `atomic_output`)."""
    with atomic_output(path) as handle:
        handle.write(data)
