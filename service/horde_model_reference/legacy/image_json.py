"""Legacy image-family JSON (stable_diffusion.json, clip.json, ...) to v2 records.

A legacy file maps catalog keys to records. The rules (docs/legacy-conversion.md):

- `config.files` and `config.download` merge into v2 `config.download`, one entry per file:
  the file's `sha256sum` (or `"FIXME"` when it has none, as upstream) and `file_type` (as
  `file_purpose`) join the download's `file_url`; `known_slow_download` is true for files served by
  civitai. Files whose path mentions `yaml` are model configs and are dropped, as are `md5sum` and
  `file_path`. A download without a file entry, or a file without a download, rejects the record.
- Image generation: the baseline is normalised (`stable diffusion 1` -> `stable_diffusion_1`,
  `stable diffusion 2` -> `stable_diffusion_2_768`, ...); missing `tags`, `showcases` and `trigger`
  become empty lists; `nsfw` defaults to false. `type`, `available`, `download_all` and
  `features_not_supported` are dropped.
- ControlNet: `controlnet_style` is the legacy `type` (or `style`). CLIP keeps `pretrained_name`.
  Miscellaneous keeps its (normalised) `baseline`. Other fields are dropped.

A record that cannot be converted is skipped and reported; the rest of the file still loads.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import msgspec

from horde_model_reference.catalog import DecodedCatalog, RecordIssue
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, parse_category
from horde_model_reference.errors import CatalogDecodeError, NoLegacyFormatError
from horde_model_reference.legacy._common import RecordRejected, check_input, freeze_values, skipped, suspect
from horde_model_reference.records import (
    DownloadRecord,
    GenericModelRecord,
    GenericModelRecordConfig,
    GenericModelRecordMetadata,
    ImageGenerationModelRecord,
    RequirementValue,
    record_type_for,
)
from horde_model_reference.registries import (
    KNOWN_IMAGE_GENERATION_BASELINE,
    MODEL_STYLE,
    normalize_image_baseline,
)

__all__ = ["convert_legacy_json"]

MISSING_SHA256 = "FIXME"
"""The `sha256sum` upstream gives a file whose legacy entry has none."""

_SLOW_HOSTS = ("civitai",)
_FOREIGN_SHOWCASE_HOSTS = ("huggingface.co", "hf.co")


class _LegacyFile(msgspec.Struct, frozen=True, gc=False):
    path: str | None = None
    sha256sum: str | None = None
    file_type: str | None = None


class _LegacyDownload(msgspec.Struct, frozen=True, gc=False):
    file_name: str | None = None
    file_url: str | None = None


class _LegacyConfig(msgspec.Struct, frozen=True, gc=False):
    files: list[_LegacyFile] | None = None
    download: list[_LegacyDownload] | None = None


class _LegacyRecord(msgspec.Struct, frozen=True, gc=False, kw_only=True):
    name: str
    description: str | None = None
    version: str | None = None
    type: str | None = None
    style: str | None = None
    baseline: str | None = None
    pretrained_name: str | None = None
    config: _LegacyConfig | None = None
    metadata: GenericModelRecordMetadata | None = None


class _LegacyImageRecord(_LegacyRecord, frozen=True, gc=False, kw_only=True):
    baseline: str
    nsfw: bool | None = None
    inpainting: bool = False
    optimization: str | None = None
    tags: list[str] | None = None
    showcases: list[str] | None = None
    min_bridge_version: int | None = None
    trigger: list[str] | None = None
    homepage: str | None = None
    size_on_disk_bytes: int | None = None
    requirements: dict[str, RequirementValue] | None = None


_DECODERS: dict[bool, tuple[msgspec.json.Decoder[Any], msgspec.json.Decoder[Any]]] = {
    True: (msgspec.json.Decoder(dict[str, _LegacyImageRecord]), msgspec.json.Decoder(_LegacyImageRecord)),
    False: (msgspec.json.Decoder(dict[str, _LegacyRecord]), msgspec.json.Decoder(_LegacyRecord)),
}
"""By "is image generation": the whole-file decoder and the one-record decoder."""
_FIELD_IN_MESSAGE = re.compile(r"at `\$\.([A-Za-z_][\w.]*)|missing required field `(\w+)`")
_RAW_DECODER = msgspec.json.Decoder(dict[str, msgspec.Raw] | list[msgspec.Raw])
_JSON_KINDS = {"str": "string", "int": "number", "float": "number", "bool": "boolean", "NoneType": "null"}


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _downloads(config: _LegacyConfig | None) -> tuple[DownloadRecord, ...]:
    if config is None:
        return ()
    files: dict[str, _LegacyFile] = {}
    for entry in config.files or ():
        if entry.path and "yaml" not in entry.path.lower():
            files[entry.path] = entry
    urls: dict[str, str] = {}
    for download in config.download or ():
        name = download.file_name or ""
        if name not in files:
            raise RecordRejected(f"download {name!r} has no config.files entry", "config.download")
        urls[name] = download.file_url or ""
    for path in files:
        if path not in urls:
            raise RecordRejected(f"file {path!r} has no config.download entry", "config.files")
    return tuple(
        DownloadRecord(
            file_name=path,
            file_url=urls[path],
            sha256sum=entry.sha256sum or MISSING_SHA256,
            file_purpose=entry.file_type,
            known_slow_download=any(host in _host(urls[path]) for host in _SLOW_HOSTS),
        )
        for path, entry in files.items()
    )


def _image_record(key: str, legacy: _LegacyImageRecord, source: str | None) -> ImageGenerationModelRecord:
    foreign = [s for s in legacy.showcases or () if _host(s).endswith(_FOREIGN_SHOWCASE_HOSTS)]
    if foreign:
        suspect(
            MODEL_REFERENCE_CATEGORY.image_generation.value,
            key,
            "showcases hosted outside the reference repository",
            source,
            showcases=foreign,
        )
    return ImageGenerationModelRecord(
        name=legacy.name,
        description=legacy.description,
        version=legacy.version,
        metadata=legacy.metadata or GenericModelRecordMetadata(),
        config=GenericModelRecordConfig(download=_downloads(legacy.config)),
        size_on_disk_bytes=legacy.size_on_disk_bytes,
        inpainting=legacy.inpainting,
        baseline=KNOWN_IMAGE_GENERATION_BASELINE.of(normalize_image_baseline(legacy.baseline)),
        optimization=legacy.optimization,
        tags=tuple(legacy.tags or ()),
        showcases=tuple(legacy.showcases or ()),
        min_bridge_version=legacy.min_bridge_version,
        trigger=tuple(legacy.trigger or ()),
        homepage=legacy.homepage,
        nsfw=bool(legacy.nsfw),
        style=None if legacy.style is None else MODEL_STYLE.of(legacy.style),
        requirements=freeze_values(legacy.requirements),
    )


def _generic_record(record_type: type[GenericModelRecord], legacy: _LegacyRecord) -> GenericModelRecord:
    fields = record_type.__struct_fields__
    extra: dict[str, Any] = {}
    if "controlnet_style" in fields:
        extra["controlnet_style"] = legacy.type or legacy.style
    if "pretrained_name" in fields and legacy.pretrained_name is not None:
        extra["pretrained_name"] = legacy.pretrained_name
    if "baseline" in fields and legacy.baseline is not None:
        extra["baseline"] = normalize_image_baseline(legacy.baseline)
    return record_type(
        name=legacy.name,
        description=legacy.description,
        version=legacy.version,
        metadata=legacy.metadata or GenericModelRecordMetadata(),
        config=GenericModelRecordConfig(download=_downloads(legacy.config)),
        **extra,
    )


def _top_level(category: str, text: str, source: str | None) -> dict[str, msgspec.Raw]:
    try:
        value = _RAW_DECODER.decode(text)
    except msgspec.DecodeError:
        try:
            kind = type(msgspec.json.decode(text)).__name__
        except msgspec.DecodeError as exc:
            raise CatalogDecodeError(category, f"malformed JSON: {exc}", source=source) from None
        raise CatalogDecodeError(
            category,
            f"expected a JSON object mapping model names to records, got a JSON {_JSON_KINDS.get(kind, kind)}",
            source=source,
        ) from None
    if isinstance(value, list):
        if value:
            raise CatalogDecodeError(
                category,
                f"expected a JSON object mapping model names to records, got a JSON array of {len(value)} items",
                source=source,
            )
        return {}
    return value


def convert_legacy_json(
    category: str | MODEL_REFERENCE_CATEGORY, data: bytes, *, source: str | None = None
) -> DecodedCatalog:
    """Convert a legacy image-family JSON file (`stable_diffusion.json`, `clip.json`, ...) to v2 records.

    Raises `CatalogDecodeError` when the file as a whole is unusable (empty, not UTF-8, malformed,
    not an object; an empty JSON array is an empty catalog). Records that cannot be converted are
    skipped and listed in `issues`. `source` names the input in messages and logs.
    """
    cat = parse_category(category)
    if cat is MODEL_REFERENCE_CATEGORY.text_generation:
        raise NoLegacyFormatError(cat.value, "its legacy source is models.csv: use convert_legacy_csv")
    text = check_input(cat.value, data, source)
    file_decoder, record_decoder = _DECODERS[cat is MODEL_REFERENCE_CATEGORY.image_generation]
    record_type = record_type_for(cat)
    try:
        legacy_records: dict[str, Any] = file_decoder.decode(text)
    except msgspec.DecodeError:  # also ValidationError: decode record by record below
        legacy_records = dict(_top_level(cat.value, text, source))

    records: dict[str, GenericModelRecord] = {}
    issues: list[RecordIssue] = []
    for key, item in legacy_records.items():
        try:
            legacy = item if isinstance(item, _LegacyRecord) else record_decoder.decode(item)
            if isinstance(legacy, _LegacyImageRecord):
                records[key] = _image_record(key, legacy, source)
            else:
                records[key] = _generic_record(record_type, legacy)
        except msgspec.ValidationError as exc:
            issues.append(skipped(cat.value, key, str(exc), _field_of(str(exc)), source))
        except RecordRejected as exc:
            issues.append(skipped(cat.value, key, exc.reason, exc.field, source))
    return DecodedCatalog(cat, records, tuple(issues))


def _field_of(message: str) -> str | None:
    match = _FIELD_IN_MESSAGE.search(message)
    return (match.group(1) or match.group(2)) if match else None
