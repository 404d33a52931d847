"""Export the wire contracts and the settings table from the msgspec Structs.

    python -m horde_model_reference.contracts contracts/           # regenerate contracts/
    python -m horde_model_reference.contracts contracts/ --check   # exit 1 when it is out of date
    python -m horde_model_reference.contracts --settings-table     # print the settings table
    python -m horde_model_reference.contracts --settings-table docs/operators.md   # update it there

`contracts/` gets one JSON Schema (draft 2020-12) per event, reply, record type, category catalog
and write command or reply, and an AsyncAPI 3.0 document of the subjects. Output is deterministic
(sorted keys, two-space indent, a trailing newline), so a test compares it with the committed files.
"""

from __future__ import annotations

from horde_model_reference.contracts._asyncapi import asyncapi_document
from horde_model_reference.contracts._cli import main
from horde_model_reference.contracts._files import check, generate, write_contract_files
from horde_model_reference.contracts._schemas import (
    CONTRACTS_VERSION,
    EVENT_TYPES,
    WriteContracts,
    load_write_contracts,
    record_types,
)
from horde_model_reference.contracts._schemas import GENERATED_BY as GENERATED_BY
from horde_model_reference.contracts._schemas import JSON_SCHEMA_DIALECT as JSON_SCHEMA_DIALECT
from horde_model_reference.contracts._schemas import WRITE_CONTRACTS_MODULE as WRITE_CONTRACTS_MODULE
from horde_model_reference.contracts._settings_table import (
    PROCESS_VARIABLES,
    replace_settings_table,
    setting_variables,
    settings_table,
    settings_table_block,
)

__all__ = [
    "CONTRACTS_VERSION",
    "EVENT_TYPES",
    "PROCESS_VARIABLES",
    "WriteContracts",
    "asyncapi_document",
    "check",
    "generate",
    "load_write_contracts",
    "main",
    "record_types",
    "replace_settings_table",
    "setting_variables",
    "settings_table",
    "settings_table_block",
    "write_contract_files",
]
