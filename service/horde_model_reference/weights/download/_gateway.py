"""The gated mirror (upstream's "R2 gateway"): where a file is, whether it is there, how to ask.

Files are addressed by content: `<gateway>/by-hash/<sha256>`. The gateway publishes its public
inventory at `<gateway>/v1/manifest` (`{"schema_version": 1, "objects": {<sha256>: ...}}`), and
exchanges a worker's AI-Horde key at `<gateway>/v1/session` for a short-lived mirror-only token
(`{"token": "hmr1....", "expires_at": <unix seconds>}`); a gateway without sessions takes the key
in an `apikey` header. The key only ever travels over https (or to localhost).

Both answers are cached per gateway, in bounded caches. Any failure means "not on the mirror":
the mirror is an accelerator, the origin is the authority.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

import msgspec

from horde_model_reference.errors import SettingsError
from horde_model_reference.logs import get_logger

if TYPE_CHECKING:
    import httpx

__all__ = [
    "GATEWAY_URL_VARIABLE",
    "MANIFEST_TTL_VARIABLE",
    "R2_BY_HASH_PREFIX",
    "clear_gateway_caches",
    "configured_gateway",
    "gateway_accepts_key",
    "gateway_auth_headers",
    "gateway_url_for",
    "mirror_contains",
]

_log = get_logger(__name__)

R2_BY_HASH_PREFIX: Final = "by-hash"
"""The path prefix of content-addressed objects on the gateway: `<gateway>/by-hash/<sha256>`."""
GATEWAY_URL_VARIABLE: Final = "HORDE_MODEL_REFERENCE_R2__GATEWAY_URL"
MANIFEST_TTL_VARIABLE: Final = "HORDE_MODEL_REFERENCE_R2__MANIFEST_TTL_SECONDS"
_DEFAULT_MANIFEST_TTL: Final = 300
_FAILURE_TTL: Final = 60.0
"""A gateway whose inventory or session failed is not asked again for this long."""
_REQUEST_TIMEOUT: Final = 10.0
_MANIFEST_MAX_BYTES: Final = 32 * 1024 * 1024
_SESSION_MAX_BYTES: Final = 64 * 1024
_CACHE_ENTRIES: Final = 64
_EXPIRY_SKEW: Final = 15
_LOCAL_HOSTS: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Manifest(msgspec.Struct):
    schema_version: int
    objects: dict[str, object]


class _Session(msgspec.Struct):
    token: str
    expires_at: int


class _Bounded:
    """A small thread-safe cache of `(value, expires_at)` that forgets its oldest entries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[object, tuple[object, float]] = OrderedDict()

    def get(self, key: object, now: float) -> tuple[bool, object]:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[1] <= now:
                return False, None
            return True, entry[0]

    def put(self, key: object, value: object, expires_at: float) -> None:
        with self._lock:
            self._entries[key] = (value, expires_at)
            self._entries.move_to_end(key)
            while len(self._entries) > _CACHE_ENTRIES:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_INVENTORIES = _Bounded()
_SESSIONS = _Bounded()


def clear_gateway_caches() -> None:
    """Forget every cached inventory and session (tests, or an explicit refresh)."""
    _INVENTORIES.clear()
    _SESSIONS.clear()


def gateway_accepts_key(gateway_base_url: str) -> bool:
    """Whether the AI-Horde key may be sent to this gateway: https, or plain http on localhost only."""
    parts = urlsplit(gateway_base_url)
    if parts.username or parts.password or parts.query or parts.fragment or not parts.hostname:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and parts.hostname in _LOCAL_HOSTS


def gateway_url_for(gateway_base_url: str, sha256: str) -> str:
    """The content-addressed URL of the file with this sha256 on the gateway."""
    return f"{gateway_base_url.rstrip('/')}/{R2_BY_HASH_PREFIX}/{sha256.lower()}"


def configured_gateway() -> tuple[str | None, int]:
    """The gateway URL and inventory TTL from the environment (upstream's `r2` settings)."""
    url = os.environ.get(GATEWAY_URL_VARIABLE) or None
    raw_ttl = os.environ.get(MANIFEST_TTL_VARIABLE)
    if raw_ttl is None or raw_ttl == "":
        return url, _DEFAULT_MANIFEST_TTL
    try:
        ttl = int(raw_ttl)
    except ValueError:
        raise SettingsError(MANIFEST_TTL_VARIABLE, raw_ttl, "a whole number of seconds") from None
    if ttl < 0:
        raise SettingsError(MANIFEST_TTL_VARIABLE, raw_ttl, "a whole number of seconds, 0 or more")
    return url, ttl


def _bounded_body(response: httpx.Response, limit: int) -> bytes:
    """The answer's body, refused (`ValueError`) once it grows past `limit` bytes."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise ValueError(f"the answer is larger than {limit} bytes")
    return bytes(body)


def _fetch_inventory(gateway: str) -> frozenset[str]:
    import httpx

    with (
        httpx.Client(timeout=_REQUEST_TIMEOUT, follow_redirects=False) as client,
        client.stream("GET", f"{gateway}/v1/manifest") as response,
    ):
        response.raise_for_status()
        manifest = msgspec.json.decode(_bounded_body(response, _MANIFEST_MAX_BYTES), type=_Manifest)
    if manifest.schema_version != 1:
        raise ValueError(f"unsupported manifest schema_version {manifest.schema_version}")
    hashes = frozenset(key.lower() for key in manifest.objects)
    bad = next((key for key in hashes if _SHA256.fullmatch(key) is None), None)
    if bad is not None:
        raise ValueError(f"the manifest lists {bad!r}, which is not a sha256")
    return hashes


def mirror_contains(gateway_base_url: str, sha256: str, *, ttl_seconds: int = _DEFAULT_MANIFEST_TTL) -> bool:
    """Whether the gateway's inventory lists this sha256 (False when the inventory cannot be had)."""
    import httpx

    gateway = gateway_base_url.rstrip("/")
    now = time.monotonic()
    found, hashes = _INVENTORIES.get(gateway, now)
    if not found:
        try:
            hashes = _fetch_inventory(gateway)
            _INVENTORIES.put(gateway, hashes, now + max(1, ttl_seconds))
        except (httpx.HTTPError, msgspec.DecodeError, ValueError) as exc:
            _log.info("mirror_inventory_unavailable", gateway=gateway, error=str(exc), fallback="origin")
            hashes = frozenset()
            _INVENTORIES.put(gateway, hashes, now + _FAILURE_TTL)
    assert isinstance(hashes, frozenset)
    return sha256.lower() in hashes


def gateway_auth_headers(gateway_base_url: str, apikey: str) -> dict[str, str]:
    """The headers that authorise a download from the gateway: a session token, else the key itself."""
    import httpx

    gateway = gateway_base_url.rstrip("/")
    key = (gateway, hashlib.sha256(apikey.encode()).hexdigest())
    now = time.time()
    found, token = _SESSIONS.get(key, now)
    if not found:
        try:
            with (
                httpx.Client(timeout=_REQUEST_TIMEOUT, follow_redirects=False) as client,
                client.stream(
                    "POST", f"{gateway}/v1/session", headers={"apikey": apikey, "accept": "application/json"}
                ) as response,
            ):
                response.raise_for_status()
                session = msgspec.json.decode(_bounded_body(response, _SESSION_MAX_BYTES), type=_Session)
            if not session.token.startswith("hmr1."):
                raise ValueError("the session token is not a mirror token")
            token = session.token
            _SESSIONS.put(key, token, max(now + 1, session.expires_at - _EXPIRY_SKEW))
        except (httpx.HTTPError, msgspec.DecodeError, ValueError) as exc:
            _log.info("mirror_session_unavailable", gateway=gateway, error=str(exc), fallback="apikey header")
            token = None
            _SESSIONS.put(key, None, now + _FAILURE_TTL)
    return {"Authorization": f"Bearer {token}"} if token else {"apikey": apikey}
