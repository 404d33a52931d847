"""Resumable, verified downloads of model files, mirror first (upstream's `download_engine`).

httpx is imported by the first download, not by this package.
"""

from horde_model_reference.weights.download._digests import UNKNOWN_SHA256_SENTINEL, md5_of, sha256_of
from horde_model_reference.weights.download._gateway import (
    R2_BY_HASH_PREFIX,
    clear_gateway_caches,
    gateway_accepts_key,
    gateway_url_for,
)
from horde_model_reference.weights.download._outcome import DownloadAborted, DownloadOutcome, ProgressCallback
from horde_model_reference.weights.download.engine import (
    download_addressed_file,
    download_file,
    download_record_files,
)

__all__ = [
    "R2_BY_HASH_PREFIX",
    "UNKNOWN_SHA256_SENTINEL",
    "DownloadAborted",
    "DownloadOutcome",
    "ProgressCallback",
    "clear_gateway_caches",
    "download_addressed_file",
    "download_file",
    "download_record_files",
    "gateway_accepts_key",
    "gateway_url_for",
    "md5_of",
    "sha256_of",
]
