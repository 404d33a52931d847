"""What a download returns, and how a caller stops one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import msgspec

__all__ = ["DownloadAborted", "DownloadOutcome", "ProgressCallback"]

ProgressCallback = Callable[[int, int], None]
"""Called with `(downloaded_bytes, total_bytes)` after each chunk written; may raise `DownloadAborted`."""


class DownloadAborted(Exception):
    """Raised by a progress callback to stop a download: the partial file is removed and this propagates."""


class DownloadOutcome(msgspec.Struct, frozen=True):
    """The result of fetching one file (fields in 8.6.2's order, so it can be built positionally as there)."""

    success: bool
    """Whether the file is now at `final_path` and (when a hash was declared) matched it."""
    final_path: Path
    """Where the file is (or would have been) installed."""
    bytes_written: int
    """How many bytes the finished file holds (resumed prefix included); 0 when nothing completed."""
    sha256: str | None
    """The sha256 of the completed bytes; None when the download did not complete."""


def failed(destination: Path) -> DownloadOutcome:
    """The outcome of a download that did not complete."""
    return DownloadOutcome(success=False, final_path=destination, bytes_written=0, sha256=None)
