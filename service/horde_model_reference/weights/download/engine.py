"""Downloading model files: resumable, verified, mirror first (upstream's `download_engine`).

`download_file` fetches one URL into `<destination>.part` (resuming it when the source serves
ranges; over several connections for a large file when asked), verifies the declared sha256 and
only then renames it into place, so `destination` never holds a file that failed its hash.
`download_addressed_file` tries the gated mirror first (see `_gateway`) and falls back to the
origin; `download_record_files` does that for every file of a record, under the weights root.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Final

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

__all__ = ["download_addressed_file", "download_file", "download_record_files"]

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


def _install(
    partial: Path, destination: Path, held: int, streamed: str | None, expected: str | None
) -> DownloadOutcome:
    """Verify the complete `partial` and, when it matches, rename it onto `destination`."""
    digest = streamed if streamed is not None else compute_digest(partial)
    if not checksum_matches(digest, expected):
        _log.error("download_checksum_mismatch", file=destination.name, expected=expected, actual=digest)
        partial.unlink(missing_ok=True)
        return DownloadOutcome(success=False, final_path=destination, bytes_written=held, sha256=digest)
    os.replace(partial, destination)
    record_digest(destination, "sha256", digest)
    return DownloadOutcome(success=True, final_path=destination, bytes_written=held, sha256=digest)


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

    A refusal (401/403/404/410) fails at once; other failures are retried up to `max_retries`
    attempts. `connections` > 1 fetches a large file over that many ranged connections (at most 8)
    when the source allows. `progress_callback(done, total)` may raise `DownloadAborted`, which
    removes the partial and propagates. `allow_redirects=False` keeps a privileged header from
    following a redirect to another host.
    """
    import httpx

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(f"{destination}.part")
    target = _with_token(url, auth_query_token)
    headers = {"Accept-Encoding": "identity", **(extra_headers or {})}
    timeout = httpx.Timeout(READ_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    with httpx.Client(timeout=timeout, follow_redirects=allow_redirects) as client:
        try:
            if connections > 1:
                held = _transfer.fetch_segmented(
                    client,
                    target,
                    partial,
                    headers=headers,
                    progress=progress_callback,
                    connections=connections,
                )
                if held is not None:
                    return _install(partial, destination, held, None, expected_sha256)
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
    resumed against another source. `connections` applies to the origin only.
    """
    destination = Path(destination)
    configured, ttl = configured_gateway() if use_configured_gateway else (None, 0)
    gateway = gateway_base_url if gateway_base_url is not None else configured
    addressed = bool(sha256) and sha256 != UNKNOWN_SHA256_SENTINEL
    sources: list[tuple[str, Mapping[str, str] | None, str | None, int]] = []
    if gateway and apikey and addressed and gateway_accepts_key(gateway):
        assert sha256 is not None
        if mirror_contains(gateway, sha256, ttl_seconds=ttl or 300):
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
    record's files have no place under `root` (a category without a weights folder).
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
