"""File digests with a cache file beside each file (`<stem>.sha256`, `<stem>.md5`).

The cache holds `<hex> *<file name>` (the `sha256sum` format, as upstream writes it) and is trusted
only while it is newer than the file it describes; writing it is best effort (a read-only volume
just means the digest is computed again next time).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Final

from horde_model_reference.fileio import atomic_write_bytes
from horde_model_reference.logs import get_logger

__all__ = [
    "UNKNOWN_SHA256_SENTINEL",
    "checksum_matches",
    "compute_digest",
    "md5_of",
    "record_digest",
    "sha256_of",
]

_log = get_logger(__name__)

UNKNOWN_SHA256_SENTINEL: Final = "FIXME"
"""The `DownloadRecord.sha256sum` placeholder meaning "no known hash": such files are accepted unverified."""

_HEX_LENGTH: Final = {"sha256": 64, "md5": 32}
_CACHE_MAX_BYTES: Final = 4096
"""A digest cache file larger than this is not a digest cache (it is ignored, never read whole)."""


def _cache_path(path: Path, algorithm: str) -> Path:
    return path.with_suffix(f".{algorithm}")


def _cached_digest(path: Path, algorithm: str) -> str | None:
    cache = _cache_path(path, algorithm)
    try:
        if not cache.is_file() or cache.stat().st_mtime <= path.stat().st_mtime:
            return None
        with cache.open("rb") as handle:
            text = handle.read(_CACHE_MAX_BYTES).decode("ascii", errors="replace")
    except OSError as exc:
        _log.debug("digest_cache_unreadable", path=str(cache), error=str(exc))
        return None
    fields = text.split()
    digest = fields[0].lower() if fields else ""
    if len(digest) != _HEX_LENGTH[algorithm] or re.fullmatch(r"[0-9a-f]+", digest) is None:
        _log.warning("digest_cache_invalid", path=str(cache))
        return None
    return digest


def record_digest(path: Path, algorithm: str, digest: str) -> None:
    """Write `path`'s digest cache (best effort: a failure is logged, never raised)."""
    cache = _cache_path(path, algorithm)
    try:
        atomic_write_bytes(cache, f"{digest} *{path.name}".encode())
    except OSError as exc:
        _log.debug("digest_cache_unwritable", path=str(cache), error=str(exc))


def compute_digest(path: Path, algorithm: str = "sha256") -> str:
    """`path`'s digest, read from its bytes (no cache read or written)."""
    _log.info("digest_computing", file=path.name, algorithm=algorithm)
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def _digest(path: Path, algorithm: str, *, use_cache: bool) -> str:
    if use_cache:
        cached = _cached_digest(path, algorithm)
        if cached is not None:
            return cached
    digest = compute_digest(path, algorithm)
    record_digest(path, algorithm, digest)
    return digest


def sha256_of(path: Path, *, use_cache: bool = True) -> str:
    """The sha256 of `path`, from its `.sha256` cache when newer than the file (`use_cache=False`: always read).

    Raises `FileNotFoundError` when `path` is not a file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No file {path}")
    return _digest(path, "sha256", use_cache=use_cache)


def md5_of(path: Path) -> str | None:
    """The md5 of `path` (cached in `.md5` as the sha256 is), or None when `path` is not a file."""
    path = Path(path)
    if not path.is_file():
        return None
    return _digest(path, "md5", use_cache=True)


def checksum_matches(actual_sha256: str, expected_sha256: str | None) -> bool:
    """Whether `actual_sha256` satisfies the declared hash (None and `"FIXME"` accept anything)."""
    if expected_sha256 is None or expected_sha256 == UNKNOWN_SHA256_SENTINEL:
        return True
    return actual_sha256.lower() == expected_sha256.lower()
