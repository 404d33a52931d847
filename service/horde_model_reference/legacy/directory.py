"""Whole legacy files and folders: legacy -> v2 JSON bytes, and v2 -> the legacy projection on disk."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from horde_model_reference.catalog import DecodedCatalog, RecordIssue, encode_catalog
from horde_model_reference.categories import (
    MODEL_REFERENCE_CATEGORY,
    canonical_categories,
    get_category_descriptor,
    parse_category,
)
from horde_model_reference.errors import CatalogDecodeError, NoLegacyFormatError
from horde_model_reference.fileio import atomic_write_bytes
from horde_model_reference.legacy.image_json import convert_legacy_json
from horde_model_reference.legacy.image_out import to_legacy_stable_diffusion
from horde_model_reference.legacy.text_csv import convert_legacy_csv
from horde_model_reference.legacy.text_out import to_legacy_text_files
from horde_model_reference.logs import get_logger
from horde_model_reference.records import GenericModelRecord

__all__ = [
    "V2_INDENT",
    "convert_legacy",
    "convert_legacy_directory",
    "legacy_projection",
    "legacy_to_v2_json",
    "write_legacy_projection",
]

V2_INDENT = 4
"""The indent of the v2 JSON made from legacy files."""

_log = get_logger(__name__)


def convert_legacy(
    category: str | MODEL_REFERENCE_CATEGORY, data: bytes, *, source: str | None = None
) -> DecodedCatalog:
    """Convert a category's legacy file (models.csv for text, JSON otherwise) to v2 records."""
    cat = parse_category(category)
    if cat is MODEL_REFERENCE_CATEGORY.text_generation:
        return convert_legacy_csv(data, source=source)
    return convert_legacy_json(cat, data, source=source)


def legacy_to_v2_json(
    category: str | MODEL_REFERENCE_CATEGORY, data: bytes, *, source: str | None = None
) -> tuple[bytes, tuple[RecordIssue, ...]]:
    """A category's legacy file as v2 JSON bytes (indent 4, records in source order) and the skipped records."""
    catalog = convert_legacy(category, data, source=source)
    return encode_catalog(catalog.records, indent=V2_INDENT), catalog.issues


def convert_legacy_directory(path: str | Path) -> dict[MODEL_REFERENCE_CATEGORY, bytes]:
    """The v2 JSON bytes of every legacy file in `path` (upstream names), by category.

    Categories whose file is absent are left out, and so is a category whose file is unusable as a
    whole (logged as `legacy_file_rejected`): the caller keeps what it had rather than an empty
    catalog. Skipped records are logged.
    """
    folder = Path(path)
    result: dict[MODEL_REFERENCE_CATEGORY, bytes] = {}
    for category in canonical_categories():
        filename = get_category_descriptor(category).legacy_filename
        if filename is None or not (folder / filename).is_file():
            continue
        file = folder / filename
        try:
            result[category], _ = legacy_to_v2_json(category, file.read_bytes(), source=str(file))
        except CatalogDecodeError as exc:
            _log.error("legacy_file_rejected", category=category.value, source=str(file), reason=exc.reason)
    return result


def legacy_projection(
    category: str | MODEL_REFERENCE_CATEGORY, records: Mapping[str, GenericModelRecord]
) -> dict[str, bytes]:
    """The legacy files (name -> bytes) that represent `records`.

    image_generation gives stable_diffusion.json; text_generation gives models.csv and db.json.
    Raises `NoLegacyFormatError` for other categories (their legacy files carry fields, such as the
    model `type`, that v2 records do not keep).
    """
    cat = parse_category(category)
    if cat is MODEL_REFERENCE_CATEGORY.image_generation:
        return {get_category_descriptor(cat).v2_filename: to_legacy_stable_diffusion(records)}
    if cat is MODEL_REFERENCE_CATEGORY.text_generation:
        return to_legacy_text_files(records)
    raise NoLegacyFormatError(cat.value, "only image_generation and text_generation are written back")


def write_legacy_projection(
    category: str | MODEL_REFERENCE_CATEGORY, records: Mapping[str, GenericModelRecord], directory: str | Path
) -> tuple[Path, ...]:
    """Write the legacy files of `records` into `directory`, each atomically; return their paths."""
    folder = Path(directory)
    written: list[Path] = []
    for filename, data in legacy_projection(category, records).items():
        atomic_write_bytes(folder / filename, data)
        written.append(folder / filename)
    return tuple(written)
