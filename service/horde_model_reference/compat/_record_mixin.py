"""The convenience properties of upstream's `GenericModelRecord` (8.6.2 `model_reference_records`).

horde-worker-reGen and horde-engine read `declared_total_size_bytes`, `download_count` and
`primary_download_url` on records. Properties only (computed on access, nothing stored).
"""

from __future__ import annotations

from typing import Any

from horde_model_reference.compat._pydantic_style import PydanticStyle

__all__ = ["UpstreamRecordMixin"]


class UpstreamRecordMixin(PydanticStyle):
    """Mixin for `GenericModelRecord`: upstream's pydantic-style methods and download properties."""

    __slots__ = ()

    config: Any
    size_on_disk_bytes: int | None

    @property
    def declared_total_size_bytes(self) -> int | None:
        """The sum of the downloads' `size_bytes` when every one declares it, else `size_on_disk_bytes`."""
        downloads = self.config.download
        if downloads and all(d.size_bytes is not None for d in downloads):
            return sum(d.size_bytes for d in downloads)
        return self.size_on_disk_bytes

    @property
    def primary_download_url(self) -> str | None:
        """The first download's URL, or None when there is none."""
        downloads = self.config.download
        return downloads[0].file_url if downloads else None

    @property
    def all_download_urls(self) -> list[str]:
        """Every download's URL, in order."""
        return [d.file_url for d in self.config.download]

    @property
    def download_count(self) -> int:
        """How many downloads the record lists."""
        return len(self.config.download)
