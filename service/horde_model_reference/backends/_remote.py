"""The downloading backends' shared machinery (`_RemoteBackend`, the base of GitHub and HTTP).

Every request is conditional when a good copy is held (ETag / If-None-Match), bounded by a timeout,
and retried on 5xx, 429 and transport errors with jittered exponential backoff (bounded attempts).
A download replaces the local copy only after it parsed; otherwise the last good copy (in memory,
then on disk) is kept and the error logged. A good copy on disk is served at once on the first
fetch (the backend starts offline) while a refresh runs in the background.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path
from typing import TypedDict

import anyio
import anyio.to_thread
import httpx
import msgspec

from horde_model_reference.backends._net import _PerLoop
from horde_model_reference.backends.base import CategoryPayload, InvalidationCallback, fetch_categories
from horde_model_reference.backends.filesystem import atomic_write_bytes
from horde_model_reference.catalog import catalog_digest, validate_catalog_bytes
from horde_model_reference.categories import (
    MODEL_REFERENCE_CATEGORY,
    canonical_categories,
    get_category_descriptor,
    parse_category,
)
from horde_model_reference.errors import BackendError, CatalogDecodeError
from horde_model_reference.logs import get_logger
from horde_model_reference.urls import redact_url

__all__ = ["RemoteOptions"]

_log = get_logger("horde_model_reference.backends.http")  # the log lines of the downloading backends
_USER_AGENT = "horde-model-reference"
_THREAD_THRESHOLD = 65536
"""Bodies larger than this are parsed in a worker thread so the event loop stays responsive."""


class RemoteOptions(TypedDict, total=False):
    """Options shared by the downloading backends (see `_RemoteBackend`)."""

    timeout: float
    max_attempts: int
    backoff_base: float
    backoff_max: float
    refresh_on_start: bool


class _Validator(msgspec.Struct, frozen=True):
    """The sidecar next to a local copy: what is needed to revalidate it with the server."""

    url: str
    etag: str | None
    body_digest: str
    """sha256 of the downloaded body (the legacy file for GitHub, the v2 bytes otherwise)."""
    digest: str
    """sha256 of the v2 bytes the body produced; the ETag is trusted only if the v2 file matches."""


class _RemoteBackend:
    """Downloads, keeps the last good copy in memory and on disk, and revalidates with ETags.

    `timeout` bounds each request (connect to last byte); `max_attempts` bounds the tries of one
    fetch, with jittered exponential backoff from `backoff_base` up to `backoff_max` seconds;
    `refresh_on_start` refreshes a disk copy in the background when it is first served.
    """

    name = "remote"

    def __init__(
        self,
        base_path: str | Path,
        *,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        refresh_on_start: bool = True,
    ) -> None:
        if timeout <= 0 or max_attempts < 1:
            raise ValueError("timeout must be > 0 and max_attempts >= 1")
        self.base_path = Path(base_path)
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.refresh_on_start = refresh_on_start
        self._clients: _PerLoop[httpx.AsyncClient] = _PerLoop(self._new_client, lambda c: c.aclose())
        self._payloads: dict[MODEL_REFERENCE_CATEGORY, CategoryPayload] = {}
        self._validators: dict[MODEL_REFERENCE_CATEGORY, _Validator] = {}
        self._callbacks: list[InvalidationCallback] = []
        self._refreshing: set[MODEL_REFERENCE_CATEGORY] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ hooks for subclasses

    def url_for(self, category: MODEL_REFERENCE_CATEGORY) -> str | None:
        """The URL of `category`'s file, or None when this source has none."""
        raise NotImplementedError

    def _to_v2(self, category: MODEL_REFERENCE_CATEGORY, body: bytes, url: str) -> bytes:
        """The v2 bytes of a downloaded body; raises `CatalogDecodeError` when it is unusable."""
        raise NotImplementedError

    def _validator_path(self, category: MODEL_REFERENCE_CATEGORY) -> Path:
        raise NotImplementedError

    def _body_path(self, category: MODEL_REFERENCE_CATEGORY) -> Path | None:
        """Where to keep the raw download besides the v2 file (None: nowhere)."""
        return None

    async def _on_source_failure(
        self, category: MODEL_REFERENCE_CATEGORY, held: CategoryPayload | None, error: BackendError
    ) -> CategoryPayload | None:
        """The source failed: keep the last good copy, or raise when there is none."""
        _log.error(
            "remote_source_failed",
            backend=self.name,
            category=category.value,
            reason=error.reason,
            kept_last_good=held is not None,
        )
        if held is None:
            raise error
        return held

    # ------------------------------------------------------------------ the protocol

    def path_for(self, category: MODEL_REFERENCE_CATEGORY) -> Path:
        """The local v2 copy of `category`."""
        return self.base_path / get_category_descriptor(category).v2_filename

    async def fetch_category(
        self, category: MODEL_REFERENCE_CATEGORY, *, force_refresh: bool = False
    ) -> CategoryPayload | None:
        """The category's bytes: revalidated with the server, or the last good copy if it fails.

        The first fetch of a category with a good local copy returns that copy at once and
        refreshes in the background (unless `force_refresh`).
        """
        category = parse_category(category)
        url = self.url_for(category)
        if url is None:
            return None
        if self._payloads.get(category) is None:
            local = await anyio.to_thread.run_sync(self._load_local_copy, category, url)
            if local is not None and not force_refresh:
                if self.refresh_on_start:
                    self._schedule_refresh(category, url)
                return local
        return await self._refresh(category, url)

    async def fetch_all(
        self, *, force_refresh: bool = False
    ) -> dict[MODEL_REFERENCE_CATEGORY, CategoryPayload]:
        """Every category this source serves, fetched concurrently (failures logged, left out)."""
        served = [c for c in canonical_categories() if self.url_for(c) is not None]
        return await fetch_categories(self, served, force_refresh=force_refresh)

    def last_fetched(self, category: MODEL_REFERENCE_CATEGORY) -> float | None:
        """When `category` was last downloaded or revalidated (or written, for a disk copy)."""
        payload = self._payloads.get(category)
        return payload.fetched_at if payload else None

    def add_invalidation_callback(self, callback: InvalidationCallback) -> None:
        """Call `callback(category)` when a download changes a category's bytes."""
        self._callbacks.append(callback)

    def supports_writes(self) -> bool:
        """False: a replica never writes upstream."""
        return False

    async def write_category(self, category: MODEL_REFERENCE_CATEGORY, data: bytes) -> CategoryPayload:
        """Always raises `BackendError` (read-only)."""
        raise BackendError(self.name, parse_category(category).value, "this backend is read-only")

    async def aclose(self) -> None:
        """Cancel background refreshes and close the HTTP clients of every loop."""
        current = asyncio.get_running_loop()
        with self._lock:
            tasks = list(self._tasks)
        mine = [task for task in tasks if task.get_loop() is current]
        for task in tasks:
            loop = task.get_loop()
            if task in mine:
                task.cancel()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
        if mine:
            await asyncio.gather(*mine, return_exceptions=True)
        await self._clients.aclose()

    # ------------------------------------------------------------------ internals

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout),
            follow_redirects=True,
            headers={"User-Agent": _USER_AGENT},
        )

    async def _refresh(self, category: MODEL_REFERENCE_CATEGORY, url: str) -> CategoryPayload | None:
        held = self._payloads.get(category)
        validator = self._validators.get(category)
        etag = validator.etag if held is not None and validator is not None and validator.url == url else None
        try:
            response = await self._get(category, url, etag)
        except BackendError as exc:
            return await self._on_source_failure(category, held, exc)
        now = time.time()
        if response.status_code == 404:
            _log.info(
                "remote_category_absent", backend=self.name, category=category.value, url=redact_url(url)
            )
            with self._lock:
                self._payloads.pop(category, None)
                self._validators.pop(category, None)
            return None
        if response.status_code == 304 and held is not None:
            return self._install(category, held.updated(fetched_at=now), validator)
        if response.status_code != 200:
            error = BackendError(
                self.name, category.value, f"GET {redact_url(url)}: HTTP {response.status_code}"
            )
            return await self._on_source_failure(category, held, error)
        body = response.content
        body_digest = catalog_digest(body)
        new_etag = response.headers.get("etag")
        if held is not None and validator is not None and validator.body_digest == body_digest:
            # Same body as the good copy (a server without ETags): nothing to parse or write.
            kept = _Validator(url, new_etag, body_digest, held.digest)
            return self._install(category, held.updated(fetched_at=now), kept)
        try:
            if len(body) > _THREAD_THRESHOLD:
                data = await anyio.to_thread.run_sync(self._to_v2, category, body, url)
            else:
                data = self._to_v2(category, body, url)
        except CatalogDecodeError as exc:
            error = BackendError(
                self.name, category.value, f"rejected the download of {redact_url(url)}: {exc.reason}"
            )
            return await self._on_source_failure(category, held, error)
        payload = CategoryPayload.from_bytes(category, data, source=redact_url(url))
        new_validator = _Validator(url, new_etag, body_digest, payload.digest)
        await anyio.to_thread.run_sync(self._save_local_copy, category, body, payload, new_validator)
        return self._install(category, payload, new_validator)

    async def _get(self, category: MODEL_REFERENCE_CATEGORY, url: str, etag: str | None) -> httpx.Response:
        """GET `url`; 5xx, 429 and transport errors are retried, then raise `BackendError`."""
        client = self._clients.get()
        headers = {"If-None-Match": etag} if etag else {}
        reason = ""
        for attempt in range(1, self.max_attempts + 1):
            retry_after: float | None = None
            try:
                with anyio.fail_after(self.timeout):
                    response = await client.get(url, headers=headers)
            except TimeoutError:
                reason = f"no complete answer within {self.timeout:g}s"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                if response.status_code != 429 and response.status_code < 500:
                    return response
                reason = f"HTTP {response.status_code}"
                retry_after = _retry_after(response)
            _log.warning(
                "remote_request_failed",
                backend=self.name,
                category=category.value,
                url=redact_url(url),
                attempt=attempt,
                attempts=self.max_attempts,
                reason=reason,
            )
            if attempt < self.max_attempts:
                await anyio.sleep(self._backoff(attempt, retry_after))
        raise BackendError(
            self.name,
            category.value,
            f"GET {redact_url(url)} failed after {self.max_attempts} attempt(s): {reason}",
        )

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Exponential backoff with equal jitter, at least `Retry-After`, capped at `backoff_max`."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.backoff_max)

    def _install(
        self, category: MODEL_REFERENCE_CATEGORY, payload: CategoryPayload, validator: _Validator | None
    ) -> CategoryPayload:
        with self._lock:
            previous = self._payloads.get(category)
            self._payloads[category] = payload
            if validator is not None:
                self._validators[category] = validator
        if previous is not None and previous.digest != payload.digest:
            self._notify(category)
        return payload

    def _notify(self, category: MODEL_REFERENCE_CATEGORY) -> None:
        for callback in list(self._callbacks):
            try:
                callback(category)
            except Exception:
                _log.exception("invalidation_callback_failed", backend=self.name, category=category.value)

    def _schedule_refresh(self, category: MODEL_REFERENCE_CATEGORY, url: str) -> None:
        with self._lock:
            if category in self._refreshing:
                return
            self._refreshing.add(category)
        task = asyncio.get_running_loop().create_task(self._background_refresh(category, url))
        with self._lock:
            self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        with self._lock:
            self._tasks.discard(task)

    async def _background_refresh(self, category: MODEL_REFERENCE_CATEGORY, url: str) -> None:
        try:
            await self._refresh(category, url)
        except BackendError as exc:
            _log.warning("background_refresh_failed", backend=self.name, error=str(exc))
        except Exception:
            _log.exception("background_refresh_crashed", backend=self.name, category=category.value)
        finally:
            with self._lock:
                self._refreshing.discard(category)

    def _load_local_copy(self, category: MODEL_REFERENCE_CATEGORY, url: str) -> CategoryPayload | None:
        """Adopt a good v2 file on disk as the held copy (with its ETag when the sidecar matches)."""
        path = self.path_for(category)
        try:
            data = path.read_bytes()
            mtime = path.stat().st_mtime
            validate_catalog_bytes(category, data, source=str(path))
        except FileNotFoundError:
            return None
        except (OSError, CatalogDecodeError) as exc:
            log = _log.bind(backend=self.name, category=category.value, path=str(path))
            log.error("local_copy_unusable", error=str(exc))
            return None
        payload = CategoryPayload.from_bytes(category, data, source=str(path), fetched_at=mtime)
        validator = self._read_validator(category)
        if validator is not None and (validator.digest != payload.digest or validator.url != url):
            validator = None
        with self._lock:
            if category in self._payloads:  # a download won the race
                return self._payloads[category]
            self._payloads[category] = payload
            if validator is not None:
                self._validators[category] = validator
        _log.info("local_copy_adopted", backend=self.name, category=category.value, path=str(path))
        return payload

    def _read_validator(self, category: MODEL_REFERENCE_CATEGORY) -> _Validator | None:
        path = self._validator_path(category)
        try:
            return msgspec.json.decode(path.read_bytes(), type=_Validator)
        except FileNotFoundError:
            return None
        except (OSError, msgspec.DecodeError) as exc:
            _log.warning("validator_unreadable", path=str(path), error=str(exc))
            return None

    def _save_local_copy(
        self, category: MODEL_REFERENCE_CATEGORY, body: bytes, payload: CategoryPayload, validator: _Validator
    ) -> None:
        """Write the raw body, the v2 file, then the sidecar (each atomically; the sidecar last)."""
        try:
            body_path = self._body_path(category)
            if body_path is not None:
                atomic_write_bytes(body_path, body)
            atomic_write_bytes(self.path_for(category), payload.data)
            atomic_write_bytes(self._validator_path(category), msgspec.json.encode(validator))
        except OSError as exc:
            _log.error("local_copy_write_failed", backend=self.name, category=category.value, error=str(exc))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
