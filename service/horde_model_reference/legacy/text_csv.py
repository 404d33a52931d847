"""Legacy text `models.csv` to v2 text generation records.

The CSV (UTF-8, header `name,parameters_bn,display_name,url,baseline,description,style,tags,
instruct_format,settings`) is the text catalog's source of truth; upstream's db.json is generated
from it. Per row: `parameters` is `int(float(parameters_bn) * 1e9)` (surrounding spaces allowed),
`tags` are the comma-separated cell (without the style and size tags db.json adds), `settings` is the
JSON object in its cell, empty `instruct_format` and `settings` are absent, the other cells are kept
as they are, `version` is "" and `nsfw` false (the CSV has neither column), and `text_model_group`
comes from the name. A name on several rows keeps its first position and takes the last row's
values, as in db.json.

A row that cannot be converted (wrong number of fields, no name, a non-numeric parameter count,
invalid settings, a backend-prefixed name) is skipped and reported; the rest still load.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator

import msgspec

from horde_model_reference.catalog import DecodedCatalog, RecordIssue
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import CatalogDecodeError
from horde_model_reference.legacy._common import RecordRejected, check_input, freeze_values, skipped
from horde_model_reference.legacy.text_groups import text_model_group
from horde_model_reference.logs import get_logger
from horde_model_reference.records import GenericModelRecord, RequirementValue, TextGenerationModelRecord
from horde_model_reference.registries import TEXT_BACKENDS

__all__ = ["TEXT_CSV_COLUMNS", "convert_legacy_csv"]

TEXT_CSV_COLUMNS: tuple[str, ...] = (
    "name",
    "parameters_bn",
    "display_name",
    "url",
    "baseline",
    "description",
    "style",
    "tags",
    "instruct_format",
    "settings",
)
"""The upstream models.csv header, in order."""

_REQUIRED_COLUMNS = ("name", "parameters_bn")
_CATEGORY = MODEL_REFERENCE_CATEGORY.text_generation.value
_BACKEND_PREFIXES = tuple(f"{backend.value}/" for backend in TEXT_BACKENDS)
_SETTINGS_DECODER = msgspec.json.Decoder(dict[str, RequirementValue])
_log = get_logger(__name__)


def _parameters(cell: str) -> int:
    """The parameter count in a `parameters_bn` cell (billions); `RecordRejected` if invalid."""
    text = cell.strip()
    if not text:
        raise RecordRejected("parameters_bn is empty", "parameters_bn")
    try:
        billions = float(text)
    except ValueError:
        raise RecordRejected(f"parameters_bn {cell!r} is not a number", "parameters_bn") from None
    if not math.isfinite(billions) or billions < 0:
        raise RecordRejected(f"parameters_bn {cell!r} is not a finite, non-negative number", "parameters_bn")
    return int(billions * 1_000_000_000)


def _header(rows: Iterator[list[str]], source: str | None) -> list[str]:
    header = next(rows, None)
    if not header:
        raise CatalogDecodeError(_CATEGORY, "the CSV has no header row", source=source)
    columns = [column.strip() for column in header]
    missing = [column for column in _REQUIRED_COLUMNS if column not in columns]
    duplicated = sorted({column for column in columns if columns.count(column) > 1})
    if missing or duplicated:
        problem = f"missing {missing}" if missing else f"duplicated {duplicated}"
        raise CatalogDecodeError(
            _CATEGORY,
            f"wrong CSV header {header!r}: {problem}; expected {','.join(TEXT_CSV_COLUMNS)}",
            source=source,
        )
    unknown = [column for column in columns if column not in TEXT_CSV_COLUMNS]
    if unknown:
        _log.warning("legacy_csv_columns_ignored", category=_CATEGORY, columns=unknown, source=source)
    return columns


def _record(cells: dict[str, str]) -> TextGenerationModelRecord:
    name = cells["name"].strip()
    if not name:
        raise RecordRejected("the name is empty", "name")
    if name.startswith(_BACKEND_PREFIXES):
        raise RecordRejected(f"name {name!r} has a backend prefix (db.json adds those)", "name")
    parameters = _parameters(cells["parameters_bn"])
    settings_cell = cells.get("settings", "").strip()
    try:
        settings = _SETTINGS_DECODER.decode(settings_cell) if settings_cell else None
    except msgspec.DecodeError as exc:
        raise RecordRejected(
            f"settings {settings_cell!r} is not a flat JSON object: {exc}", "settings"
        ) from None
    tags = tuple(tag.strip() for tag in cells.get("tags", "").split(",") if tag.strip())
    return TextGenerationModelRecord(
        name=name,
        description=cells.get("description", ""),
        version="",
        baseline=cells.get("baseline", ""),
        parameters_count=parameters,
        nsfw=False,
        style=cells.get("style", ""),
        display_name=cells.get("display_name", ""),
        url=cells.get("url", ""),
        tags=tags,
        instruct_format=cells.get("instruct_format") or None,
        settings=freeze_values(settings),
        text_model_group=text_model_group(name),
    )


def convert_legacy_csv(data: bytes, *, source: str | None = None) -> DecodedCatalog:
    """Convert the legacy text `models.csv` to v2 text generation records keyed by name.

    Raises `CatalogDecodeError` when the file as a whole is unusable (empty, not UTF-8, not CSV, a
    header without `name` and `parameters_bn`). Rows that cannot be converted are skipped and listed
    in `issues`; a repeated name takes the later row's values.
    """
    text = check_input(_CATEGORY, data, source)
    rows = csv.reader(io.StringIO(text, newline=""))
    records: dict[str, GenericModelRecord] = {}
    issues: list[RecordIssue] = []
    first_line: dict[str, int] = {}
    try:
        columns = _header(rows, source)
        name_at = columns.index("name")
        for row in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in row):
                continue
            key = (row[name_at].strip() if name_at < len(row) else "") or f"<line {line}>"
            if len(row) != len(columns):
                reason = f"line {line} has {len(row)} fields, expected {len(columns)}"
                issues.append(skipped(_CATEGORY, key, reason, None, source))
                continue
            try:
                record = _record(dict(zip(columns, row, strict=True)))
            except RecordRejected as exc:
                issues.append(skipped(_CATEGORY, key, f"line {line}: {exc.reason}", exc.field, source))
                continue
            if record.name in first_line:
                _log.debug(
                    "legacy_csv_name_repeated",
                    category=_CATEGORY,
                    model=record.name,
                    first_line=first_line[record.name],
                    line=line,
                    source=source,
                )
            else:
                first_line[record.name] = line
            records[record.name] = record
    except csv.Error as exc:
        raise CatalogDecodeError(
            _CATEGORY, f"malformed CSV at line {rows.line_num}: {exc}", source=source
        ) from None
    return DecodedCatalog(MODEL_REFERENCE_CATEGORY.text_generation, records, tuple(issues))
