"""v2 -> legacy (stable_diffusion.json, models.csv, db.json), the v2 bytes, and the directory helpers."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from horde_model_reference import MODEL_REFERENCE_CATEGORY, decode_catalog, encode_catalog
from horde_model_reference.errors import NoLegacyFormatError
from horde_model_reference.legacy import (
    TEXT_CSV_COLUMNS,
    convert_legacy_csv,
    convert_legacy_directory,
    convert_legacy_json,
    legacy_projection,
    legacy_to_v2_json,
    to_legacy_models_csv,
    to_legacy_stable_diffusion,
    to_legacy_text_db,
    write_legacy_projection,
)
from horde_model_reference.records import (
    DownloadRecord,
    GenericModelRecordConfig,
    GenericModelRecordMetadata,
    ImageGenerationModelRecord,
    TextGenerationModelRecord,
)

C = MODEL_REFERENCE_CATEGORY


def test_stable_diffusion_round_trips_through_legacy(shared_data: Path) -> None:
    for path in [
        *sorted((shared_data / "history/image").iterdir()),
        shared_data / "current/image/stable_diffusion.json",
    ]:
        v2 = convert_legacy_json(C.image_generation, path.read_bytes()).records
        again = convert_legacy_json(C.image_generation, to_legacy_stable_diffusion(v2))
        assert again.issues == ()
        assert list(again.records) == list(v2)
        assert again.records == v2, path.name


def test_legacy_stable_diffusion_layout(shared_data: Path) -> None:
    source = json.loads((shared_data / "current/image/stable_diffusion.json").read_bytes())
    v2 = convert_legacy_json(
        C.image_generation, (shared_data / "current/image/stable_diffusion.json").read_bytes()
    )
    legacy = json.loads(to_legacy_stable_diffusion(v2.records))
    assert list(legacy) == list(source)
    for key, entry in legacy.items():
        original = source[key]
        for field in (
            "name",
            "baseline",
            "inpainting",
            "description",
            "version",
            "style",
            "nsfw",
            "homepage",
        ):
            assert entry.get(field) == original.get(field), (key, field)
        assert entry["type"] == "ckpt"
        assert entry.get("tags", []) == original.get("tags", [])
        assert entry.get("showcases", []) == original.get("showcases", [])
        assert entry.get("requirements") == original.get("requirements")
        model_files = [f for f in original["config"]["files"] if "yaml" not in f["path"]]
        assert [(f["path"], f.get("sha256sum")) for f in entry["config"]["files"]] == [
            (f["path"], f.get("sha256sum")) for f in model_files
        ]
        assert [
            {k: d[k] for k in ("file_name", "file_path", "file_url")} for d in original["config"]["download"]
        ] == (entry["config"]["download"])
        assert not {"download_all", "available", "features_not_supported", "metadata"} & set(entry)


def _sd(name: str, **fields: object) -> ImageGenerationModelRecord:
    download = DownloadRecord(
        file_name=f"{name}.ckpt", file_url="https://x.test/f", sha256sum="FIXME", known_slow_download=False
    )
    return ImageGenerationModelRecord(
        name=name,
        baseline="stable_diffusion_2_768",
        nsfw=False,
        config=GenericModelRecordConfig(download=(download,)),
        **fields,  # type: ignore[arg-type]
    )


def test_stable_diffusion_fields_without_upstream_examples_round_trip() -> None:
    metadata = GenericModelRecordMetadata(created_at=1_700_000_000, created_by="alice")
    record = _sd("m", min_bridge_version=30, metadata=metadata, optimization="lightning")
    legacy = json.loads(to_legacy_stable_diffusion({"key": record}))["key"]
    assert legacy["baseline"] == "stable diffusion 2"
    assert legacy["config"]["files"] == [{"path": "m.ckpt"}]
    assert legacy["metadata"] == {
        "created_at": 1_700_000_000,
        "created_by": "alice",
    }
    back = convert_legacy_json(C.image_generation, to_legacy_stable_diffusion({"key": record})).records["key"]
    assert back == msgspec.structs.replace(record, tags=(), showcases=(), trigger=())


def test_legacy_writers_reject_other_record_types() -> None:
    text = TextGenerationModelRecord(name="a", parameters_count=1)
    with pytest.raises(TypeError, match="'a' is a TextGenerationModelRecord"):
        to_legacy_stable_diffusion({"a": text})
    with pytest.raises(TypeError, match="'b' is a ImageGenerationModelRecord"):
        to_legacy_models_csv({"b": _sd("b")})


def test_text_db_json_is_byte_identical_to_upstream(shared_data: Path) -> None:
    v2 = convert_legacy_csv((shared_data / "current/text/models.csv").read_bytes()).records
    assert to_legacy_text_db(v2) == (shared_data / "current/text/db.json").read_bytes()


def test_text_db_json_from_golden_v2_is_byte_identical_to_upstream(shared_data: Path) -> None:
    golden = decode_catalog(C.text_generation, (shared_data / "golden-v2/text_generation.json").read_bytes())
    assert to_legacy_text_db(golden.records) == (shared_data / "current/text/db.json").read_bytes()


def test_models_csv_round_trips(shared_data: Path) -> None:
    for path in sorted((shared_data / "history/text").iterdir()):
        v2 = convert_legacy_csv(path.read_bytes()).records
        written = to_legacy_models_csv(v2)
        again = convert_legacy_csv(written)
        assert again.issues == ()
        assert list(again.records) == list(v2)
        assert again.records == v2, path.name


def test_models_csv_layout(shared_data: Path) -> None:
    original = (shared_data / "current/text/models.csv").read_bytes()
    written = to_legacy_models_csv(convert_legacy_csv(original).records)
    assert (
        written.split(b"\r\n", 1)[0] == original.split(b"\r\n", 1)[0] == ",".join(TEXT_CSV_COLUMNS).encode()
    )
    rows = list(csv.reader(io.StringIO(written.decode(), newline="")))
    assert len(rows) == 1 + 719
    assert all(len(row) == 10 for row in rows)
    assert written.count(b"\r\n") == 720


@settings(max_examples=500, deadline=None)
@given(parameters=st.integers(min_value=0, max_value=10**13))
def test_any_parameter_count_survives_the_csv(parameters: int) -> None:
    record = TextGenerationModelRecord(name="org/m", parameters_count=parameters, tags=[], version="")
    again = convert_legacy_csv(to_legacy_models_csv({"org/m": record})).records["org/m"]
    assert isinstance(again, TextGenerationModelRecord)
    assert again.parameters_count == parameters


def test_text_fields_the_csv_cannot_hold_are_reported() -> None:
    record = TextGenerationModelRecord(name="org/m", parameters_count=7_000_000_000, nsfw=True, version="2")
    with capture_logs() as logs:
        files = legacy_projection(C.text_generation, {"org/m": record})
    assert set(files) == {"models.csv", "db.json"}
    [entry] = logs
    assert entry["event"] == "legacy_projection_lossy"
    assert entry["models"] == {"org/m": ["nsfw", "version"]}
    db = json.loads(files["db.json"])
    assert list(db) == ["org/m", "aphrodite/org/m", "koboldcpp/m"]
    assert db["koboldcpp/m"] == {
        "name": "koboldcpp/m",
        "model_name": "m",
        "baseline": "",
        "parameters": 7_000_000_000,
        "description": "",
        "version": "1",
        "style": "generalist",
        "nsfw": False,
        "display_name": "m",
        "tags": ["7B"],
    }


def test_v2_json_bytes(shared_data: Path) -> None:
    legacy = (shared_data / "current/image/controlnet.json").read_bytes()
    data, issues = legacy_to_v2_json("controlnet", legacy)
    assert issues == ()
    assert data.startswith(b'{\n    "control_canny_sd2": {\n        "name": "control_canny_sd2",')
    records = convert_legacy_json(C.controlnet, legacy).records
    assert data == encode_catalog(records, indent=4)
    assert decode_catalog(C.controlnet, data).records == records


def test_convert_legacy_directory(shared_data: Path, tmp_path: Path) -> None:
    for path in (shared_data / "current/image").iterdir():
        shutil.copy(path, tmp_path / path.name)
    shutil.copy(shared_data / "current/text/models.csv", tmp_path / "models.csv")
    (tmp_path / "esrgan.json").write_bytes(b'{"broken": ')

    with capture_logs() as logs:
        result = convert_legacy_directory(tmp_path)

    expected = {C.blip, C.clip, C.codeformer, C.controlnet, C.gfpgan, C.safety_checker}
    expected |= {C.image_generation, C.text_generation, C.miscellaneous}
    assert set(result) == expected  # esrgan rejected as a whole; lora has no legacy format
    for category, data in result.items():
        golden = (
            shared_data
            / "golden-v2"
            / f"{'stable_diffusion' if category is C.image_generation else category.value}.json"
        )
        assert list(decode_catalog(category, data).records) == list(
            decode_catalog(category, golden.read_bytes()).records
        )
    rejected = [e for e in logs if e["event"] == "legacy_file_rejected"]
    assert [(e["category"], e["log_level"]) for e in rejected] == [("esrgan", "error")]
    assert "malformed JSON" in rejected[0]["reason"]


def test_write_legacy_projection(shared_data: Path, tmp_path: Path) -> None:
    sd = convert_legacy_json(
        C.image_generation, (shared_data / "current/image/stable_diffusion.json").read_bytes()
    )
    text = convert_legacy_csv((shared_data / "current/text/models.csv").read_bytes())
    (tmp_path / "db.json").write_text("old")

    written = write_legacy_projection("image_generation", sd.records, tmp_path)
    written += write_legacy_projection(C.text_generation, text.records, tmp_path)

    assert [p.name for p in written] == ["stable_diffusion.json", "models.csv", "db.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["db.json", "models.csv", "stable_diffusion.json"]
    assert (tmp_path / "db.json").read_bytes() == (shared_data / "current/text/db.json").read_bytes()
    assert convert_legacy_directory(tmp_path) == {
        C.image_generation: encode_catalog(sd.records, indent=4),
        C.text_generation: encode_catalog(text.records, indent=4),
    }


@pytest.mark.parametrize(
    "category", [C.controlnet, C.clip, C.lora, C.video_generation], ids=lambda c: c.value
)
def test_projection_of_other_categories_is_refused(
    category: MODEL_REFERENCE_CATEGORY, tmp_path: Path
) -> None:
    with pytest.raises(NoLegacyFormatError) as excinfo:
        write_legacy_projection(category, {}, tmp_path)
    assert excinfo.value.category == category.value
    assert list(tmp_path.iterdir()) == []
