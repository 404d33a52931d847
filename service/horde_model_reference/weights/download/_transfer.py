"""Moving bytes from one URL into `<destination>.part`: one resumable stream, or ranged segments.

Each function returns the number of bytes the partial file holds and, when the whole body passed
through in order, its sha256 (so the finished file need not be read again). Failures are typed:
`SourceDeclined` (the source will never serve it: 401/403/404/410), `TransientFailure` (worth a
retry; a resumable partial is kept), `RestartNeeded` (the partial was unusable and removed).
A progress callback's `DownloadAborted` removes the partial and propagates.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Final

from horde_model_reference.logs import get_logger
from horde_model_reference.weights.download._outcome import DownloadAborted, ProgressCallback

if TYPE_CHECKING:
    import httpx

__all__ = [
    "MAX_CONNECTIONS_PER_FILE",
    "MIN_SEGMENT_BYTES",
    "NON_RETRIABLE_STATUSES",
    "SEGMENT_THRESHOLD_BYTES",
    "RestartNeeded",
    "SourceDeclined",
    "TransientFailure",
    "fetch_segmented",
    "fetch_stream",
]

NON_RETRIABLE_STATUSES: Final = frozenset({401, 403, 404, 410})
SEGMENT_THRESHOLD_BYTES = 64 * 1024 * 1024
"""Files smaller than this are fetched as one stream even when several connections are allowed."""
MIN_SEGMENT_BYTES = 16 * 1024 * 1024
"""No segment is smaller than this (fewer connections are used instead)."""
MAX_CONNECTIONS_PER_FILE: Final = 8

_log = get_logger(__name__)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_TOTAL_ONLY = re.compile(r"bytes \*/(\d+)")


class SourceDeclined(Exception):
    """The source refused the file for good (its HTTP status is `status`)."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"HTTP {status}")


class TransientFailure(Exception):
    """A failure worth retrying (`reason` says what happened)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RestartNeeded(Exception):
    """The partial file could not be resumed and was removed; start again from byte 0."""


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.isdigit():
        return None
    return int(value)


def _write_body(
    response: httpx.Response,
    handle: object,
    *,
    expected: int | None,
    on_chunk: Callable[[bytes], None],
) -> int:
    """Write the body to `handle`; never more than `expected` bytes, never fewer without an error."""
    received = 0
    for chunk in response.iter_raw():
        if not chunk:
            continue
        received += len(chunk)
        if expected is not None and received > expected:
            raise TransientFailure(f"the body is longer than its Content-Length ({expected} bytes)")
        handle.write(chunk)  # type: ignore[attr-defined]
        on_chunk(chunk)
    if expected is not None and received < expected:
        raise TransientFailure(f"the body ended after {received} of {expected} bytes")
    return received


def fetch_stream(
    client: httpx.Client,
    url: str,
    partial: Path,
    *,
    headers: dict[str, str],
    progress: ProgressCallback | None,
) -> tuple[int, str | None]:
    """One attempt: resume `partial` (Range from its size) or start it; the bytes held and the streamed sha256."""
    held = partial.stat().st_size if partial.exists() else 0
    request_headers = dict(headers)
    if held:
        request_headers["Range"] = f"bytes={held}-"
    with client.stream("GET", url, headers=request_headers) as response:
        status = response.status_code
        if status in NON_RETRIABLE_STATUSES:
            raise SourceDeclined(status)
        if status == 416 and held:
            match = _TOTAL_ONLY.fullmatch(response.headers.get("Content-Range", ""))
            if match is not None and int(match.group(1)) == held:
                return held, None  # the partial already holds the whole file
            partial.unlink(missing_ok=True)
            raise RestartNeeded
        if held and status != 206:
            if status == 200 and _content_length(response) == held:
                return held, None
            partial.unlink(missing_ok=True)
            raise RestartNeeded
        if status >= 300:
            raise TransientFailure(f"HTTP {status}")
        if held:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != held:
                partial.unlink(missing_ok=True)
                raise RestartNeeded
        expected = _content_length(response)
        total = held + (expected or 0)
        hasher = hashlib.sha256() if held == 0 else None
        written = held

        def on_chunk(chunk: bytes) -> None:
            nonlocal written
            written += len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            if progress is not None:
                progress(written, total)

        try:
            with partial.open("ab") as handle:
                _write_body(response, handle, expected=expected, on_chunk=on_chunk)
                handle.flush()
                os.fsync(handle.fileno())
        except DownloadAborted:
            partial.unlink(missing_ok=True)
            raise
        except TransientFailure:
            if expected is not None and written - held > expected:
                partial.unlink(missing_ok=True)  # a source sending too much is not resumed
            raise
    return written, hasher.hexdigest() if hasher is not None else None


def _probe_total(client: httpx.Client, url: str, headers: dict[str, str]) -> int | None:
    """The file's size when the source serves ranges, else None. `SourceDeclined` for a refusal."""
    with client.stream("GET", url, headers={**headers, "Range": "bytes=0-0"}) as response:
        if response.status_code in NON_RETRIABLE_STATUSES:
            raise SourceDeclined(response.status_code)
        if response.status_code != 206:
            return None
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match is None or match.group(3) == "*":
            return None
        return int(match.group(3))


def _plan(total: int, connections: int) -> list[tuple[int, int]]:
    """Inclusive byte ranges covering `total` bytes, at most `connections` of them, none tiny."""
    count = max(1, min(connections, MAX_CONNECTIONS_PER_FILE, total // MIN_SEGMENT_BYTES))
    size = -(-total // count)
    return [(start, min(start + size, total) - 1) for start in range(0, total, size)]


def fetch_segmented(
    client: httpx.Client,
    url: str,
    partial: Path,
    *,
    headers: dict[str, str],
    progress: ProgressCallback | None,
    connections: int,
) -> int | None:
    """Fetch a large file over up to `connections` ranged requests into a fresh `partial`.

    None when the source does not suit (too small, no ranges) or a segment failed (the partial is
    then removed and the caller falls back to one stream).
    """
    total = _probe_total(client, url, headers)
    if total is None or total < SEGMENT_THRESHOLD_BYTES:
        return None
    segments = _plan(total, connections)
    partial.unlink(missing_ok=True)
    lock = threading.Lock()
    stop = threading.Event()
    done = 0

    def count(amount: int) -> None:
        nonlocal done
        with lock:
            done += amount
            if progress is not None:
                progress(done, total)

    fd = os.open(partial, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, total)

        def segment(bounds: tuple[int, int]) -> None:
            start, end = bounds
            expected = end - start + 1
            range_headers = {**headers, "Range": f"bytes={start}-{end}"}
            with client.stream("GET", url, headers=range_headers) as response:
                match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
                if response.status_code != 206 or match is None or int(match.group(1)) != start:
                    raise TransientFailure(f"segment {start}-{end}: HTTP {response.status_code}")
                offset = start
                for chunk in response.iter_raw():
                    if stop.is_set():
                        raise TransientFailure("stopped: another segment failed")
                    if offset + len(chunk) > end + 1:
                        raise TransientFailure(f"segment {start}-{end}: the body is longer than the range")
                    os.pwrite(fd, chunk, offset)
                    offset += len(chunk)
                    count(len(chunk))
                if offset != end + 1:
                    raise TransientFailure(
                        f"segment {start}-{end}: ended after {offset - start} of {expected} bytes"
                    )

        with ThreadPoolExecutor(max_workers=len(segments), thread_name_prefix="hmr-download") as pool:
            futures = [pool.submit(segment, bounds) for bounds in segments]
            wait(futures, return_when=FIRST_EXCEPTION)
            stop.set()  # the first failure stops the others; a no-op when all are done
        errors = [error for future in futures if (error := future.exception()) is not None]
        if any(isinstance(error, DownloadAborted) for error in errors):
            raise DownloadAborted
        if errors:
            _log.info(
                "download_segments_failed", file=partial.name, error=str(errors[0]), fallback="one stream"
            )
            partial.unlink(missing_ok=True)
            return None
        os.fsync(fd)
    except DownloadAborted:
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return total
