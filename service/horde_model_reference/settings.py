"""Settings from the environment: prefix `HORDE_MODEL_REFERENCE_`, `__` for nesting.

The names are those today's deployments use (`REPLICATE_MODE`, `CACHE_TTL_SECONDS`,
`REDIS__URL`, ...), so existing configuration keeps working. `AIWORKER_CACHE_HOME` (no prefix)
sets the base path, as today. An invalid value fails at start with the variable's name and what
it expected.
"""

import os
import re
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import msgspec

from horde_model_reference.errors import SettingsError
from horde_model_reference.writes.settings import HttpSettings, WriteSettings

__all__ = [
    "ENV_PREFIX",
    "GithubRepoSettings",
    "HordeModelReferenceSettings",
    "ImageGithubRepoSettings",
    "NatsSettings",
    "RedisSettings",
    "ReplicateMode",
    "TextGithubRepoSettings",
    "check_settings",
    "load_settings",
]

ENV_PREFIX = "HORDE_MODEL_REFERENCE_"
_PATH_RE = re.compile(r"at `\$((?:\.\w+)+)`")

PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]
"""A timeout or interval: seconds, more than 0."""
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0)]
"""A duration that may be 0."""
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class ReplicateMode(StrEnum):
    """PRIMARY owns the canonical files; REPLICA follows a primary or GitHub."""

    PRIMARY = "PRIMARY"
    REPLICA = "REPLICA"


class GithubRepoSettings(msgspec.Struct, kw_only=True):
    """A GitHub repository serving legacy files."""

    owner: str = "Haidra-Org"
    name: str = ""
    branch: str = "main"


class ImageGithubRepoSettings(GithubRepoSettings, kw_only=True):
    """The image reference repository."""

    name: str = "AI-Horde-image-model-reference"


class TextGithubRepoSettings(GithubRepoSettings, kw_only=True):
    """The text reference repository."""

    name: str = "AI-Horde-text-model-reference"


class RedisSettings(msgspec.Struct, kw_only=True):
    """The shared Redis cache (optional)."""

    url: str | None = None
    key_prefix: str = "hmr:v1"
    socket_timeout: PositiveSeconds = 2.0
    socket_connect_timeout: PositiveSeconds = 2.0
    pool_size: PositiveInt = 10
    publish_wait: PositiveSeconds = 0.5
    """`hmr serve`: the longest a change waits for its snapshot writes (Redis, JetStream) before
    its event is published anyway; a slower store is written later, in the background."""


class NatsSettings(msgspec.Struct, kw_only=True):
    """The NATS bus (optional for consumers; the service embeds a server when unset)."""

    url: str | None = None
    subject_prefix: str = "hmr.v1"
    user: str | None = None
    password: str | None = None
    token: str | None = None
    creds_file: str | None = None
    nkey_seed_file: str | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    request_timeout: PositiveSeconds = 2.0
    inbox_prefix: str | None = None
    """Prefix of this process's reply subjects (default `_INBOX`); give each NATS user its own
    (`_INBOX.consumer`, `_INBOX.operator`) so that it can subscribe to its own replies only."""
    trusted_keys: str | None = None
    """Consumers: the service's public keys (`ed25519:...`, from `hmr keygen`), comma-separated,
    at most two (rotation). When set, unsigned or otherwise signed events, heartbeats and
    snapshots are refused."""
    signing_key_file: str | None = None
    """`hmr serve`: path of its Ed25519 private key (PEM, from `hmr keygen`); it then signs its
    events, heartbeats and snapshots."""
    signing_key: str | None = None
    """`hmr serve`: the private key as PEM text (secret), instead of a file."""
    jetstream: bool = True
    """Snapshots in JetStream: `hmr serve` stores them in a KV bucket (`<prefix>_snapshots`, and
    an Object Store for catalogs over `max_payload`); consumers read them there first, then Redis,
    then the service. Without JetStream on the server both carry on without it."""
    jetstream_replicas: PositiveInt = 1
    """`hmr serve`: replicas of the snapshot bucket when it is created (3 in a 3-node cluster)."""
    resync_jitter: NonNegativeSeconds = 1.0
    """Consumers: a resync after a reconnect waits a random time up to this, so a fleet that
    reconnects at once does not resynchronise at once."""
    snapshot_requests: bool = True
    """Consumers: ask the service for snapshots JetStream and Redis lack; `false` for the public
    read-only identity (it may read JetStream only)."""


class HordeModelReferenceSettings(msgspec.Struct, kw_only=True):
    """Every setting, with its default."""

    replicate_mode: ReplicateMode = ReplicateMode.REPLICA
    offline: bool = False
    base_path: str | None = None
    """Where catalogs live; default `$AIWORKER_CACHE_HOME/horde_model_reference`, else `./models/...`."""
    cache_ttl_seconds: NonNegativeSeconds = 60.0
    """How often a manager without the bus revalidates a category (in the background)."""
    primary_api_url: str | None = None
    primary_api_timeout: PositiveSeconds = 10.0
    github_seed_enabled: bool = False
    github_base_url: str = "https://raw.githubusercontent.com"
    github_proxy_url_base: str | None = None
    image_github_repo: ImageGithubRepoSettings = msgspec.field(default_factory=ImageGithubRepoSettings)
    text_github_repo: TextGithubRepoSettings = msgspec.field(default_factory=TextGithubRepoSettings)
    provider_timeout_seconds: PositiveSeconds = 5.0
    negative_cache_seconds: NonNegativeSeconds = 5.0
    redis: RedisSettings = msgspec.field(default_factory=RedisSettings)
    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    writes: WriteSettings = msgspec.field(default_factory=WriteSettings)
    http: HttpSettings = msgspec.field(default_factory=HttpSettings)

    def resolved_base_path(self) -> Path:
        """The base path, with the `AIWORKER_CACHE_HOME` fallback applied."""
        if self.base_path:
            return Path(self.base_path)
        cache_home = os.environ.get("AIWORKER_CACHE_HOME")
        root = Path(cache_home) if cache_home else Path("models")
        return root / "horde_model_reference"


def _nest(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        node = tree
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SettingsError(key, value, f"{ENV_PREFIX}{part.upper()} is not a group of settings")
            node = child
        node[parts[-1]] = value
    return tree


def _variable_for(path: str) -> str:
    return ENV_PREFIX + "__".join(part.upper() for part in path.strip(".").split("."))


def load_settings(environ: Mapping[str, str] | None = None) -> HordeModelReferenceSettings:
    """Read settings from `environ` (default `os.environ`).

    Raises `SettingsError` naming the variable, its value and what was expected.
    """
    env = os.environ if environ is None else environ
    tree = _nest(env)
    if not tree:
        return HordeModelReferenceSettings()  # nothing to convert: skips building msgspec's type info
    return _convert(tree, lambda variable, _path: env.get(variable))


def check_settings(settings: HordeModelReferenceSettings) -> HordeModelReferenceSettings:
    """`settings` (built in code, not read from the environment) when every value is valid.

    Raises `SettingsError` naming the variable that sets the offending value, as `load_settings`
    does (a Struct built in code is not checked against its bounds until then).
    """
    try:
        tree: dict[str, Any] = msgspec.to_builtins(settings, enc_hook=_path_as_str)
    except TypeError as exc:
        raise SettingsError(ENV_PREFIX + "*", settings, f"settings of plain values ({exc})") from None

    def value_at(_variable: str, path: str) -> object:
        node: Any = tree
        for part in path.strip(".").split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    return _convert(tree, value_at)


def _path_as_str(value: object) -> str:
    if isinstance(value, os.PathLike):
        return str(os.fspath(value))
    raise TypeError(f"{type(value).__name__} is not a setting value")


def _convert(tree: dict[str, Any], value_of: Callable[[str, str], object]) -> HordeModelReferenceSettings:
    try:
        return msgspec.convert(tree, HordeModelReferenceSettings, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc)
        match = _PATH_RE.search(message)
        if match is None:
            raise SettingsError(ENV_PREFIX + "*", tree, message) from None
        variable = _variable_for(match.group(1))
        expected = message.split(" - at ")[0].removeprefix("Expected ")
        if expected.startswith("Invalid enum value"):
            expected = "one of " + ", ".join(mode.value for mode in ReplicateMode)
        raise SettingsError(variable, value_of(variable, match.group(1)), expected) from None
