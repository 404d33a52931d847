"""The legacy GitHub formats (image `*.json`, text `models.csv` and `db.json`) and v2, both ways.

Reading returns a `DecodedCatalog`: the records keyed by catalog key, plus a `RecordIssue` for each
record that was skipped. The conversion rules and where they differ from the reference
implementation are in docs/legacy-conversion.md.
"""

from __future__ import annotations

from horde_model_reference.legacy.directory import (
    V2_INDENT,
    convert_legacy,
    convert_legacy_directory,
    legacy_projection,
    legacy_to_v2_json,
    write_legacy_projection,
)
from horde_model_reference.legacy.image_json import convert_legacy_json
from horde_model_reference.legacy.image_out import to_legacy_stable_diffusion
from horde_model_reference.legacy.text_csv import TEXT_CSV_COLUMNS, convert_legacy_csv
from horde_model_reference.legacy.text_groups import text_model_group
from horde_model_reference.legacy.text_out import (
    to_legacy_models_csv,
    to_legacy_text_db,
    to_legacy_text_files,
)

__all__ = [
    "TEXT_CSV_COLUMNS",
    "V2_INDENT",
    "convert_legacy",
    "convert_legacy_csv",
    "convert_legacy_directory",
    "convert_legacy_json",
    "legacy_projection",
    "legacy_to_v2_json",
    "text_model_group",
    "to_legacy_models_csv",
    "to_legacy_stable_diffusion",
    "to_legacy_text_db",
    "to_legacy_text_files",
    "write_legacy_projection",
]
