"""v2 text generation records to the legacy `models.csv` and `db.json`.

`models.csv` gets one row per record with the upstream header; `tags` are the record's own tags,
`settings` its JSON object, and `parameters_bn` the shortest decimal that converts back to the same
parameter count. `db.json` is built from those rows exactly as upstream's convert.py builds it from
models.csv: three entries per model (`<name>`, `aphrodite/<name>`, `koboldcpp/<model_name>`, where
model_name is the part after the first slash), each `{name, model_name, defaults..., row...}` with
the style and a size tag (`"12B"`) added to the tags, an automatic `display_name` when the row has
none, and empty values left out.

The CSV has no `nsfw` or `version` column: a record with `nsfw` true, a version, downloads, a
fine-tune series or metadata loses them in the projection (logged as `legacy_projection_lossy`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.legacy.text_csv import TEXT_CSV_COLUMNS
from horde_model_reference.logs import get_logger
from horde_model_reference.records import (
    GenericModelRecord,
    GenericModelRecordMetadata,
    TextGenerationModelRecord,
)

__all__ = ["to_legacy_models_csv", "to_legacy_text_db", "to_legacy_text_files"]

_DB_DEFAULTS: dict[str, Any] = {
    "baseline": "",
    "parameters": None,
    "description": "",
    "version": "1",
    "style": "generalist",
    "nsfw": False,
}
"""The text repository's defaults.json, in its key order."""

_BACKEND_KEYS = ("{name}", "aphrodite/{name}", "koboldcpp/{model_name}")
_DEFAULT_METADATA = GenericModelRecordMetadata()
_log = get_logger(__name__)


def _billions(parameters: int) -> str:
    billions = parameters / 1_000_000_000
    if billions.is_integer():
        return str(int(billions))
    for candidate in (billions, math.nextafter(billions, math.inf)):
        if int(candidate * 1_000_000_000) == parameters:
            return repr(candidate)
    return repr(billions)


def _lost_fields(record: TextGenerationModelRecord) -> list[str]:
    lost = [
        ("nsfw", record.nsfw),
        ("version", record.version),
        ("config", record.config.download),
        ("finetune_series", record.finetune_series),
        ("metadata", record.metadata != _DEFAULT_METADATA),
    ]
    return [name for name, value in lost if value]


def _rows(records: Mapping[str, GenericModelRecord]) -> Iterator[dict[str, str]]:
    lossy: dict[str, list[str]] = {}
    for key, record in records.items():
        if not isinstance(record, TextGenerationModelRecord):
            raise TypeError(f"record {key!r} is a {type(record).__name__}, not a TextGenerationModelRecord")
        if lost := _lost_fields(record):
            lossy[key] = lost
        yield {
            "name": key,
            "parameters_bn": _billions(record.parameters_count),
            "display_name": record.display_name or "",
            "url": record.url or "",
            "baseline": record.baseline or "",
            "description": record.description or "",
            "style": record.style or "",
            "tags": ",".join(record.tags or ()),
            "instruct_format": record.instruct_format or "",
            "settings": json.dumps(record.settings) if record.settings else "",
        }
    if lossy:
        _log.warning(
            "legacy_projection_lossy",
            category=MODEL_REFERENCE_CATEGORY.text_generation.value,
            reason="models.csv has no column for these fields",
            models=lossy,
        )


def _csv_bytes(rows: list[dict[str, str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=TEXT_CSV_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _db_entries(row: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    name = row["name"]
    model_name = name.split("/")[1] if "/" in name else name
    billions = float(row["parameters_bn"])
    fields: dict[str, Any] = {column: row[column] for column in TEXT_CSV_COLUMNS[2:]}
    fields["parameters"] = int(billions * 1_000_000_000)
    tags = {tag.strip() for tag in fields["tags"].split(",") if tag.strip()}
    if fields["style"]:
        tags.add(fields["style"])
    tags.add(f"{round(billions, 0):.0f}B")
    fields["tags"] = sorted(tags)
    fields["settings"] = json.loads(fields["settings"]) if fields["settings"] else {}
    if not fields["display_name"]:
        fields["display_name"] = re.sub(r" +", " ", re.sub(r"[-_]", " ", model_name)).strip()
    shared = {"model_name": model_name, **_DB_DEFAULTS, **{k: v for k, v in fields.items() if v}}
    for pattern in _BACKEND_KEYS:
        key = pattern.format(name=name, model_name=model_name)
        yield key, {"name": key, **shared}


def _db_bytes(rows: list[dict[str, str]]) -> bytes:
    db: dict[str, Any] = {}
    for row in rows:
        db.update(_db_entries(row))
    return (json.dumps(db, indent=4) + "\n").encode("utf-8")


def to_legacy_models_csv(records: Mapping[str, GenericModelRecord]) -> bytes:
    """The legacy `models.csv` bytes (UTF-8, CRLF line ends, upstream header) of text records."""
    return _csv_bytes(list(_rows(records)))


def to_legacy_text_db(records: Mapping[str, GenericModelRecord]) -> bytes:
    """The legacy text `db.json` bytes, as upstream's convert.py builds them from our models.csv."""
    return _db_bytes(list(_rows(records)))


def to_legacy_text_files(records: Mapping[str, GenericModelRecord]) -> dict[str, bytes]:
    """Both legacy text files, `{"models.csv": ..., "db.json": ...}`."""
    rows = list(_rows(records))
    return {"models.csv": _csv_bytes(rows), "db.json": _db_bytes(rows)}
