"""v2 image generation records to the legacy `stable_diffusion.json` layout.

Each v2 download becomes a `config.files` entry (path, `sha256sum` unless it is the `"FIXME"`
placeholder, `file_type` from `file_purpose`) plus a `config.download` entry (file name, empty
`file_path`, URL). The baseline goes back to its legacy spelling (`stable_diffusion_1` ->
`stable diffusion 1`), `type` is `"ckpt"`, and empty `tags`, `showcases` and `trigger` are left out.
Fields the legacy layout has but v2 does not keep (`download_all`, `available`,
`features_not_supported`, yaml config files, `md5sum`) are not written. Converting the result back
gives the same v2 records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import msgspec

from horde_model_reference.legacy.image_json import MISSING_SHA256
from horde_model_reference.records import (
    GenericModelRecord,
    GenericModelRecordMetadata,
    ImageGenerationModelRecord,
)

__all__ = ["to_legacy_stable_diffusion"]

_LEGACY_BASELINES = {
    "stable_diffusion_1": "stable diffusion 1",
    "stable_diffusion_2_768": "stable diffusion 2",
    "stable_diffusion_2_512": "stable diffusion 2 512",
}
_DEFAULT_METADATA = GenericModelRecordMetadata()


def _config(record: ImageGenerationModelRecord) -> dict[str, Any]:
    files: list[dict[str, Any]] = []
    downloads: list[dict[str, Any]] = []
    for download in record.config.download:
        entry: dict[str, Any] = {"path": download.file_name}
        if download.sha256sum and download.sha256sum != MISSING_SHA256:
            entry["sha256sum"] = download.sha256sum
        if download.file_purpose is not None:
            entry["file_type"] = download.file_purpose
        files.append(entry)
        downloads.append({"file_name": download.file_name, "file_path": "", "file_url": download.file_url})
    return {"files": files, "download": downloads}


def _entry(record: ImageGenerationModelRecord) -> dict[str, Any]:
    fields: list[tuple[str, Any]] = [
        ("name", record.name),
        ("baseline", _LEGACY_BASELINES.get(record.baseline, record.baseline)),
        ("optimization", record.optimization),
        ("type", "ckpt"),
        ("inpainting", bool(record.inpainting)),
        ("description", record.description),
        ("tags", record.tags or None),
        ("showcases", record.showcases or None),
        ("version", record.version),
        ("style", record.style),
        ("trigger", record.trigger or None),
        ("homepage", record.homepage),
        ("min_bridge_version", record.min_bridge_version),
        ("nsfw", record.nsfw),
        ("requirements", record.requirements),
        ("config", _config(record)),
        ("size_on_disk_bytes", record.size_on_disk_bytes),
        ("metadata", msgspec.to_builtins(record.metadata) if record.metadata != _DEFAULT_METADATA else None),
    ]
    return {name: value for name, value in fields if value is not None}


def to_legacy_stable_diffusion(records: Mapping[str, GenericModelRecord]) -> bytes:
    """The legacy `stable_diffusion.json` bytes (indent 4, as upstream) of image generation records."""
    entries: dict[str, Any] = {}
    for key, record in records.items():
        if not isinstance(record, ImageGenerationModelRecord):
            raise TypeError(f"record {key!r} is a {type(record).__name__}, not an ImageGenerationModelRecord")
        entries[key] = _entry(record)
    return (json.dumps(entries, indent=4) + "\n").encode("utf-8")
