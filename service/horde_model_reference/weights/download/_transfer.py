"""Moving bytes from one URL into a partial file: one resumable stream, or ranged segments.

`fetch_stream` makes one attempt at `<destination>.part` (resumed by `Range` from its size) and
returns the bytes it holds and, when the whole body passed through in order, its sha256 (so the
finished file need not be read again). Failures are typed: `SourceDeclined` (the source will never
serve it: 401/403/404/410), `TransientFailure` (worth a retry; a resumable partial is kept),
`RestartNeeded` (the partial was unusable and removed). A progress callback's `DownloadAborted`
removes the partial and propagates.

`fetch_segmented` fills a separate, never-resumed file (`<destination>.spart`) over several ranged
connections; it answers None when the source does not suit, so the caller uses one stream.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from horde_model_reference.logs import get_logger
from horde_model_reference.weights.download._outcome import DownloadAborted, ProgressCallback

if TYPE_CHECKING:
    import httpx

__all__ = [
    "MAX_CONNECTIONS_PER_FILE",
    "MIN_SEGMENT_BYTES",
    "NON_RETRIABLE_STATUSES",
    "SEGMENT_THRESHOLD_BYTES",
    "RangesUnavailable",
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
"""The most connections one file ever gets, whatever the caller asks for."""

_log = get_logger(__name__)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")
_TOTAL_ONLY = re.compile(r"bytes \*/(\d+)")
_RETRIABLE_SEGMENT_STATUSES: Final = frozenset({408, 429})


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


class RangesUnavailable(Exception):
    """A ranged request was not answered with the range asked for (`reason`): segments cannot be used."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _Stopped(Exception):
    """A segment stopped because another one failed."""


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None or not value.isdigit():
        return None
    return int(value)


def _write_body(
    response: httpx.Response,
    handle: IO[bytes],
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
        handle.write(chunk)
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


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


class _Segments:
    """The shared state of one segmented transfer: the open file, the count, the stop signal."""

    def __init__(
        self,
        client: httpx.Client,
        url: str,
        headers: dict[str, str],
        fd: int,
        total: int,
        progress: ProgressCallback | None,
    ) -> None:
        self.client = client
        self.url = url
        self.headers = headers
        self.fd = fd
        self.total = total
        self.progress = progress
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self._done = 0

    def count(self, amount: int) -> None:
        with self._lock:  # callbacks see a rising count, one at a time
            self._done += amount
            if self.progress is not None:
                self.progress(self._done, self.total)

    def fetch(self, span: _Span) -> None:
        """One request for what `span` still lacks; `span.position` advances as bytes are written."""
        start, end = span.position, span.end
        request_headers = {**self.headers, "Range": f"bytes={start}-{end}"}
        with self.client.stream("GET", self.url, headers=request_headers) as response:
            status = response.status_code
            if status >= 500 or status in _RETRIABLE_SEGMENT_STATUSES:
                raise TransientFailure(f"segment {start}-{end}: HTTP {status}")
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if status != 206 or match is None or int(match.group(1)) != start:
                raise RangesUnavailable(f"segment {start}-{end}: HTTP {status}, not the range asked for")
            for chunk in response.iter_raw():
                if self.stop.is_set():
                    raise _Stopped
                if span.position + len(chunk) > end + 1:
                    raise RangesUnavailable(f"segment {start}-{end}: the body is longer than the range")
                _pwrite_all(self.fd, chunk, span.position)
                span.position += len(chunk)
                self.count(len(chunk))
        if span.position != end + 1:
            raise TransientFailure(f"segment {start}-{end}: the body stopped at byte {span.position}")


class _Span:
    """One segment's inclusive byte range and how far it is filled."""

    __slots__ = ("end", "position")

    def __init__(self, start: int, end: int) -> None:
        self.position = start
        self.end = end


def _run_segment(state: _Segments, bounds: tuple[int, int], attempts: int, retry_pause: float) -> None:
    """Fill one range, resuming it from where a transient failure left it, up to `attempts` times."""
    import httpx

    span = _Span(*bounds)
    for attempt in range(1, attempts + 1):
        try:
            state.fetch(span)
            return
        except (TransientFailure, httpx.TransportError) as exc:
            if state.stop.is_set() or attempt >= attempts:
                raise
            reason = exc.reason if isinstance(exc, TransientFailure) else type(exc).__name__
            _log.info(
                "download_segment_retry", start=span.position, end=span.end, attempt=attempt, reason=reason
            )
            time.sleep(retry_pause)


def fetch_segmented(
    client: httpx.Client,
    url: str,
    spart: Path,
    *,
    headers: dict[str, str],
    progress: ProgressCallback | None,
    connections: int,
    attempts: int,
    retry_pause: float,
) -> int | None:
    """Fetch a large file over up to `connections` ranged requests into a fresh `spart`; its size.

    None when the source does not suit (too small, no ranges, one connection) or a segment failed
    after `attempts` tries (`spart` is then removed and the caller falls back to one stream). Any
    other exception (a progress callback's abort included) removes `spart` and propagates.
    """
    import httpx

    if min(connections, MAX_CONNECTIONS_PER_FILE) <= 1:
        return None
    try:
        total = _probe_total(client, url, headers)
    except httpx.HTTPError as exc:
        # The message is not logged: it holds the URL, whose query may carry a token.
        _log.info("download_segments_unsuitable", file=spart.name, reason=type(exc).__name__)
        return None
    if total is None or total < SEGMENT_THRESHOLD_BYTES:
        return None
    segments = _plan(total, connections)
    if len(segments) <= 1:
        return None
    fd = os.open(spart, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, total)
        state = _Segments(client, url, headers, fd, total, progress)
        with ThreadPoolExecutor(max_workers=len(segments), thread_name_prefix="hmr-download") as pool:
            futures = [pool.submit(_run_segment, state, bounds, attempts, retry_pause) for bounds in segments]
            wait(futures, return_when=FIRST_EXCEPTION)
            state.stop.set()  # the first failure stops the others; a no-op when all are done
        errors = [error for future in futures if (error := future.exception()) is not None]
        expected = (TransientFailure, RangesUnavailable, _Stopped, httpx.HTTPError)
        unexpected = next((error for error in errors if not isinstance(error, expected)), None)
        if unexpected is not None:
            raise unexpected
        if errors:
            cause = next((error for error in errors if not isinstance(error, _Stopped)), errors[0])
            reason = (
                str(cause)
                if isinstance(cause, (TransientFailure, RangesUnavailable))
                else type(cause).__name__
            )
            _log.info("download_segments_failed", file=spart.name, reason=reason, fallback="one stream")
            spart.unlink(missing_ok=True)
            return None
        os.fsync(fd)
    except BaseException:
        spart.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    return total
