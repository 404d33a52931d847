"""Upstream module path `horde_model_reference.download_engine` (8.6.2's
`horde_model_reference/download_engine.py`); the implementation is `weights/download/`.

`_segmented_download` is private upstream but imported by horde-engine's ad-hoc LoRA manager, so it
is provided here with 8.6.2's signature.
"""

from horde_model_reference.weights.download import (
    R2_BY_HASH_PREFIX,
    UNKNOWN_SHA256_SENTINEL,  # noqa: F401 - a module attribute upstream, outside its __all__
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
from horde_model_reference.weights.download.engine import (
    segmented_download as _segmented_download,  # noqa: F401 - imported by horde-engine
)

__all__ = [
    "R2_BY_HASH_PREFIX",
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
