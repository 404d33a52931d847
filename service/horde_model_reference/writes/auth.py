"""Who is calling: API keys checked against allowlists, optionally verified with AI-Horde.

A key is looked up (by its sha256) in the configured requester and approver keys first. When
`horde_api_url` is set and the key is not listed, `GET <url>/v2/find_user` (header `apikey`)
names its user (`name#<id>`), whose id must be in `requester_ids` or `approver_ids`. Answers are
cached for `horde_cache_seconds` by key hash. Nothing is allowed when no allowlist is configured.
Keys are never logged or stored: a `Principal` carries `key:<hash prefix>` or `horde:<user id>`.
"""

from __future__ import annotations

import hashlib
import time

import httpx
import msgspec

from horde_model_reference.logs import get_logger
from horde_model_reference.writes.contracts import Role
from horde_model_reference.writes.errors import AuthUnavailableError, ForbiddenError, UnauthorizedError
from horde_model_reference.writes.settings import WriteSettings

__all__ = ["Authorizer", "Principal", "key_hash"]

_log = get_logger(__name__)
_SHA_PREFIX = "sha256:"
_MAX_KEY_LENGTH = 1024
_MAX_CACHED = 4096
"""Keys whose AI-Horde answer is cached at once."""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated caller: its actor id (for logs and the audit trail) and roles."""

    actor: str
    roles: frozenset[Role]


def key_hash(api_key: str) -> str:
    """sha256 (hex) of an API key: what settings may list instead of the key (`sha256:<hex>`)."""
    return hashlib.sha256(api_key.encode()).hexdigest()


def _digests(entries: tuple[str, ...]) -> set[str]:
    return {
        entry[len(_SHA_PREFIX) :].lower() if entry.startswith(_SHA_PREFIX) else key_hash(entry)
        for entry in entries
    }


_APPROVER_ROLES = frozenset({Role.requester, Role.approver})
_REQUESTER_ROLES = frozenset({Role.requester})


class Authorizer:
    """Turns an API key into a `Principal`, or refuses it."""

    def __init__(self, settings: WriteSettings, *, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._approver_keys = _digests(settings.keys("approver"))
        self._requester_keys = _digests(settings.keys("requester")) - self._approver_keys
        self._approver_ids = set(settings.user_ids("approver"))
        self._requester_ids = set(settings.user_ids("requester")) - self._approver_ids
        self._horde_url = settings.horde_api_url.rstrip("/") if settings.horde_api_url else None
        self._client = client
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._warned_closed = False

    @property
    def enabled(self) -> bool:
        """False when no allowlist is configured (every command is refused)."""
        has_ids = self._horde_url is not None and bool(self._approver_ids or self._requester_ids)
        return bool(self._approver_keys or self._requester_keys or has_ids)

    async def authenticate(self, api_key: str | None, *, role: Role, command: str) -> Principal:
        """The caller of `api_key` if it holds `role`.

        Raises `UnauthorizedError` (no key, unknown key, nothing configured), `ForbiddenError`
        (known, without the role), `AuthUnavailableError` (find_user could not be asked).
        """
        if not self.enabled:
            if not self._warned_closed:
                _log.warning("writes_auth_closed", reason="no API keys or user ids are allowlisted")
                self._warned_closed = True
            raise UnauthorizedError("writes are disabled: no API keys or user ids are allowlisted")
        if not api_key:
            raise UnauthorizedError("an API key is required")
        if len(api_key) > _MAX_KEY_LENGTH:
            raise UnauthorizedError("unknown API key")
        digest = key_hash(api_key)
        principal = self._static(digest)
        if principal is None and self._horde_url is not None:
            principal = await self._horde(api_key, digest)
        if principal is None:
            _log.info("write_auth_refused", key=f"{digest[:12]}", command=command)
            raise UnauthorizedError("unknown API key")
        if role not in principal.roles:
            raise ForbiddenError(principal.actor, role.value, command)
        return principal

    def _static(self, digest: str) -> Principal | None:
        if digest in self._approver_keys:
            return Principal(actor=f"key:{digest[:16]}", roles=_APPROVER_ROLES)
        if digest in self._requester_keys:
            return Principal(actor=f"key:{digest[:16]}", roles=_REQUESTER_ROLES)
        return None

    async def _horde(self, api_key: str, digest: str) -> Principal | None:
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            return cached[1]
        user_id = await self._find_user(api_key)
        principal: Principal | None = None
        if user_id in self._approver_ids:
            principal = Principal(actor=f"horde:{user_id}", roles=_APPROVER_ROLES)
        elif user_id in self._requester_ids:
            principal = Principal(actor=f"horde:{user_id}", roles=_REQUESTER_ROLES)
        elif user_id is not None:
            _log.info("write_auth_user_not_allowlisted", user=f"horde:{user_id}")
        self._remember(digest, (now + self._settings.horde_cache_seconds, principal), now)
        return principal

    def _remember(self, digest: str, entry: tuple[float, Principal | None], now: float) -> None:
        """Cache a key's answer; at `_MAX_CACHED` keys, expired ones go, then the oldest (random keys
        sent by outsiders cannot grow the cache without bound)."""
        if len(self._cache) >= _MAX_CACHED:
            for key in [key for key, (expires, _) in self._cache.items() if expires <= now]:
                del self._cache[key]
            while len(self._cache) >= _MAX_CACHED:
                del self._cache[next(iter(self._cache))]
        self._cache[digest] = entry

    async def _find_user(self, api_key: str) -> str | None:
        """The AI-Horde user id of `api_key`, or None when AI-Horde does not know the key."""
        assert self._horde_url is not None
        url = f"{self._horde_url}/v2/find_user"
        try:
            if self._client is not None:
                response = await self._client.get(
                    url, headers={"apikey": api_key}, timeout=self._settings.horde_timeout
                )
            else:
                async with httpx.AsyncClient(timeout=self._settings.horde_timeout) as client:
                    response = await client.get(url, headers={"apikey": api_key})
        except httpx.HTTPError as exc:
            _log.warning("horde_find_user_failed", url=url, error=type(exc).__name__)
            raise AuthUnavailableError(url, type(exc).__name__) from None
        if response.status_code in (401, 403, 404):
            return None
        if response.status_code != 200:
            raise AuthUnavailableError(url, f"HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError:
            raise AuthUnavailableError(url, "the answer is not JSON") from None
        username = str(body.get("username", "")) if isinstance(body, dict) else ""
        if "#" not in username:
            return None
        return username.rsplit("#", 1)[-1].strip() or None
