"""Bad legacy input: a clear error for an unusable file, a skipped and reported record otherwise."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from horde_model_reference import MODEL_REFERENCE_CATEGORY, CatalogDecodeError
from horde_model_reference.errors import NoLegacyFormatError
from horde_model_reference.legacy import convert_legacy, convert_legacy_csv, convert_legacy_json
from horde_model_reference.records import ImageGenerationModelRecord, TextGenerationModelRecord

C = MODEL_REFERENCE_CATEGORY
HEADER = "name,parameters_bn,display_name,url,baseline,description,style,tags,instruct_format,settings\r\n"
GOOD_ROW = "org/Good-7B,7,,,,,,,,\r\n"


def _sd_record(name: str, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "name": name,
        "baseline": "stable diffusion 1",
        "type": "ckpt",
        "nsfw": False,
        "config": {
            "files": [{"path": f"{name}.safetensors", "sha256sum": "a" * 64}],
            "download": [
                {"file_name": f"{name}.safetensors", "file_path": "", "file_url": "https://x.test/f"}
            ],
        },
    }
    record.update(fields)
    return record


def _json(**records: object) -> bytes:
    return msgspec.json.encode(records)


BAD_FILES = {
    "malformed JSON": (b'{"a": {"name": ', "malformed JSON"),
    "non-empty array": (b'[{"name": "a"}, {"name": "b"}]', "got a JSON array of 2 items"),
    "string": (b'"stable_diffusion"', "got a JSON string"),
    "number": (b"42", "got a JSON number"),
    "null": (b"null", "got a JSON null"),
    "empty file": (b"", "the input is empty"),
    "whitespace only": (b" \r\n\t", "the input is empty"),
    "not UTF-8": (b'{"caf\xe9": {}}', "not UTF-8 (byte 5"),
}


@pytest.mark.parametrize("case", BAD_FILES, ids=str)
@pytest.mark.parametrize("category", [C.image_generation, C.controlnet], ids=lambda c: c.value)
def test_unusable_json_file_raises_a_clear_error(case: str, category: MODEL_REFERENCE_CATEGORY) -> None:
    data, message = BAD_FILES[case]
    with pytest.raises(CatalogDecodeError) as excinfo:
        convert_legacy_json(category, data, source="upstream/file.json")
    assert message in str(excinfo.value)
    assert excinfo.value.category == category.value
    assert excinfo.value.source == "upstream/file.json"


@pytest.mark.parametrize("category", [C.image_generation, C.lora, C.clip], ids=lambda c: c.value)
def test_empty_array_is_an_empty_catalog(category: MODEL_REFERENCE_CATEGORY) -> None:
    with capture_logs() as logs:
        catalog = convert_legacy_json(category, b"[]\n")
    assert (catalog.records, catalog.issues) == ({}, ())
    assert logs == []


def test_real_lora_json_is_an_empty_catalog(shared_data: object) -> None:
    from pathlib import Path

    assert isinstance(shared_data, Path)
    catalog = convert_legacy_json(C.lora, (shared_data / "current/image/lora.json").read_bytes())
    assert (catalog.records, catalog.issues) == ({}, ())


BAD_RECORDS = {
    "wrong type in one field": (_sd_record("bad", version=2), "version", "Expected `str | null`, got `int`"),
    "nested wrong type": (
        _sd_record("bad", config={"files": [{"path": 5}], "download": []}),
        "config.files",
        "got `int`",
    ),
    "missing baseline": ({"name": "bad", "nsfw": False}, "baseline", "missing required field `baseline`"),
    "missing name": ({"baseline": "flux_1"}, "name", "missing required field `name`"),
    "not an object": ("just a string", None, "Expected `object`, got `str`"),
    "download without file": (
        _sd_record("bad", config={"files": [], "download": [{"file_name": "x.ckpt", "file_url": "u"}]}),
        "config.download",
        "download 'x.ckpt' has no config.files entry",
    ),
    "file without download": (
        _sd_record("bad", config={"files": [{"path": "x.ckpt", "sha256sum": "b" * 64}], "download": []}),
        "config.files",
        "file 'x.ckpt' has no config.download entry",
    ),
}


@pytest.mark.parametrize("case", BAD_RECORDS, ids=str)
def test_bad_record_is_skipped_and_the_rest_loads(case: str) -> None:
    record, field, reason = BAD_RECORDS[case]
    data = _json(first=_sd_record("first"), bad=record, last=_sd_record("last"))
    with capture_logs() as logs:
        catalog = convert_legacy_json(C.image_generation, data, source="sd.json")
    assert list(catalog.records) == ["first", "last"]
    assert all(isinstance(r, ImageGenerationModelRecord) for r in catalog.records.values())
    [issue] = catalog.issues
    assert (issue.category, issue.name, issue.field) == ("image_generation", "bad", field)
    assert reason in issue.reason
    [entry] = [e for e in logs if e["event"] == "record_skipped"]
    assert (entry["model"], entry["source"], entry["log_level"]) == ("bad", "sd.json", "warning")


def test_every_record_bad_is_reported_not_silent() -> None:
    catalog = convert_legacy_json(C.clip, _json(a={"name": 1}, b={"name": 2}))
    assert catalog.records == {}
    assert [i.name for i in catalog.issues] == ["a", "b"]


def test_foreign_showcase_host_warns_and_keeps_the_record() -> None:
    showcases = ["https://huggingface.co/someone/model/resolve/main/preview.jpg"]
    data = _json(hf=_sd_record("hf", showcases=showcases))
    with capture_logs() as logs:
        catalog = convert_legacy_json(C.image_generation, data)
    record = catalog.records["hf"]
    assert isinstance(record, ImageGenerationModelRecord)
    assert record.showcases == tuple(showcases)
    assert catalog.issues == ()
    [entry] = logs
    assert (entry["event"], entry["model"], entry["showcases"]) == ("legacy_record_suspect", "hf", showcases)


def test_utf8_bom_is_accepted() -> None:
    catalog = convert_legacy_json(C.image_generation, b"\xef\xbb\xbf" + _json(a=_sd_record("a")))
    assert list(catalog.records) == ["a"]


def test_text_generation_is_not_a_json_category() -> None:
    with pytest.raises(NoLegacyFormatError, match="models.csv"):
        convert_legacy_json(C.text_generation, b"{}")


BAD_CSV_FILES = {
    "empty file": (b"", "the input is empty"),
    "not UTF-8": ((HEADER + "org/caf\xe9,7,,,,,,,,\r\n").encode("latin-1"), "not UTF-8"),
    "wrong header": (b"model,params,url\r\norg/a,7,u\r\n", "wrong CSV header"),
    "header without parameters_bn": (b"name,display_name\r\norg/a,A\r\n", "missing ['parameters_bn']"),
    "duplicated column": (b"name,parameters_bn,name\r\norg/a,7,b\r\n", "duplicated ['name']"),
    "JSON instead of CSV": (b'{"org/a": {"parameters": 7}}', "wrong CSV header"),
}


@pytest.mark.parametrize("case", BAD_CSV_FILES, ids=str)
def test_unusable_csv_raises_a_clear_error(case: str) -> None:
    data, message = BAD_CSV_FILES[case]
    with pytest.raises(CatalogDecodeError) as excinfo:
        convert_legacy_csv(data, source="models.csv")
    assert message in str(excinfo.value)
    assert excinfo.value.category == "text_generation"


BAD_ROWS = {
    "non-numeric parameter count": (
        "org/Bad,seven,,,,,,,,",
        "parameters_bn",
        "parameters_bn 'seven' is not a number",
    ),
    "empty parameter count": ("org/Bad,,,,,,,,,", "parameters_bn", "parameters_bn is empty"),
    "negative parameter count": ("org/Bad,-1,,,,,,,,", "parameters_bn", "not a finite, non-negative number"),
    "nan parameter count": ("org/Bad,nan,,,,,,,,", "parameters_bn", "not a finite, non-negative number"),
    "settings not JSON": ('org/Bad,7,,,,,,,,"{temperature: 1}"', "settings", "is not a flat JSON object"),
    "settings an array": ('org/Bad,7,,,,,,,,"[1, 2]"', "settings", "is not a flat JSON object"),
    "settings nested": ('org/Bad,7,,,,,,,,"{""a"": {""b"": 1}}"', "settings", "is not a flat JSON object"),
    "nine fields": ("org/Bad,7,,,,,,,", None, "has 9 fields, expected 10"),
    "eleven fields": ("org/Bad,7,,,,,,,,,", None, "has 11 fields, expected 10"),
    "backend prefix": ("koboldcpp/Bad,7,,,,,,,,", "name", "has a backend prefix"),
}


@pytest.mark.parametrize("case", BAD_ROWS, ids=str)
def test_bad_csv_row_is_skipped_with_a_reason(case: str) -> None:
    row, field, reason = BAD_ROWS[case]
    data = (HEADER + GOOD_ROW + row + "\r\n" + "org/Last-1B,1,,,,,,,,\r\n").encode()
    catalog = convert_legacy_csv(data)
    assert list(catalog.records) == ["org/Good-7B", "org/Last-1B"]
    [issue] = catalog.issues
    assert issue.name == row.split(",")[0]
    assert issue.field == field
    assert issue.reason.startswith("line 3")
    assert reason in issue.reason


def test_row_without_name_is_skipped_and_named_by_line() -> None:
    catalog = convert_legacy_csv((HEADER + GOOD_ROW + " ,7,,,,,,,,\r\n").encode())
    assert list(catalog.records) == ["org/Good-7B"]
    assert [(i.name, i.field) for i in catalog.issues] == [("<line 3>", "name")]


def test_csv_cells_are_kept_as_written() -> None:
    data = (
        HEADER
        + 'org/Model-12B, 12 ,Model 12B,https://h.test/m,org/Base,"Line one, with comma\r\nline two",roleplay,'
        + '"story, adventure",ChatML,"{""temperature"": 0.75, ""stop"": [""a""]}"\r\n'
    ).encode()
    record = convert_legacy_csv(data).records["org/Model-12B"]
    assert isinstance(record, TextGenerationModelRecord)
    assert record.parameters_count == 12_000_000_000
    assert record.description == "Line one, with comma\r\nline two"
    assert record.tags == ("story", "adventure")
    assert record.settings == {"temperature": 0.75, "stop": ("a",)}
    assert (record.version, record.nsfw, record.instruct_format) == ("", False, "ChatML")
    assert record.text_model_group == "Model"


def test_repeated_name_keeps_first_position_and_last_values() -> None:
    data = (HEADER + "org/A-1B,1,,,,first,,,,\r\n" + GOOD_ROW + "org/A-1B,2,,,,second,,,,\r\n").encode()
    catalog = convert_legacy_csv(data)
    assert list(catalog.records) == ["org/A-1B", "org/Good-7B"]
    record = catalog.records["org/A-1B"]
    assert isinstance(record, TextGenerationModelRecord)
    assert (record.description, record.parameters_count) == ("second", 2_000_000_000)
    assert catalog.issues == ()


def test_header_only_blank_lines_and_unknown_columns() -> None:
    assert convert_legacy_csv(HEADER.encode()).records == {}
    with capture_logs() as logs:
        catalog = convert_legacy_csv(b"name,parameters_bn,context_window\r\n\r\norg/A,1,{}\r\n\r\n")
    assert list(catalog.records) == ["org/A"]
    assert catalog.issues == ()
    assert [(e["event"], e["columns"]) for e in logs] == [("legacy_csv_columns_ignored", ["context_window"])]


def test_convert_legacy_dispatches_by_category() -> None:
    assert list(convert_legacy("text_generation", (HEADER + GOOD_ROW).encode()).records) == ["org/Good-7B"]
    assert list(convert_legacy("stable_diffusion", _json(a=_sd_record("a"))).records) == ["a"]


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    for category in (C.image_generation, C.esrgan, C.text_generation):
        try:
            convert_legacy(category, data)
        except CatalogDecodeError:
            pass


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_FIELDS = st.sampled_from(
    ["name", "baseline", "nsfw", "config", "showcases", "requirements", "files", "download"]
)


@settings(max_examples=300, deadline=None)
@given(
    records=st.dictionaries(
        st.text(max_size=6), st.dictionaries(_FIELDS, _JSON_VALUES, max_size=5), max_size=4
    )
)
def test_arbitrary_records_are_converted_or_reported(records: dict[str, dict[str, object]]) -> None:
    for category in (C.image_generation, C.controlnet):
        catalog = convert_legacy_json(category, msgspec.json.encode(records))
        assert set(catalog.records) | {i.name for i in catalog.issues} == set(records)
