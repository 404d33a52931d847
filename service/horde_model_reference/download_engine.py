"""Upstream module path `horde_model_reference.download_engine` (see `weights/download/`)."""

from horde_model_reference.weights.download import (
    R2_BY_HASH_PREFIX,
    UNKNOWN_SHA256_SENTINEL,
    DownloadAborted,
    DownloadOutcome,
    ProgressCallback,
    download_addressed_file,
    download_file,
    download_record_files,
    gateway_accepts_key,
    gateway_url_for,
    md5_of,
    sha256_of,
)

__all__ = [
    "R2_BY_HASH_PREFIX",
    "UNKNOWN_SHA256_SENTINEL",
    "DownloadAborted",
    "DownloadOutcome",
    "ProgressCallback",
    "download_addressed_file",
    "download_file",
    "download_record_files",
    "gateway_accepts_key",
    "gateway_url_for",
    "md5_of",
    "sha256_of",
]
