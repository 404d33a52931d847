"""File I/O: atomic replacement (readers see the old content or the new, never a mix), and
reading a catalog file without copying it again to drop its trailing newline."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "read_trimmed_bytes"]

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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path`: a temporary file in the same directory, fsync, rename, fsync the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
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
