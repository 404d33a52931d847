"""Legacy -> v2 on the real data: same records as golden-v2 and history-v2, and every historical version.

The deliberate differences from the reference conversion (docs/legacy-conversion.md) are applied to
the golden records before comparing, and each is asserted to touch exactly the records it should.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import msgspec
import pytest
from structlog.testing import capture_logs

from horde_model_reference import MODEL_REFERENCE_CATEGORY, decode_catalog, get_category_descriptor
from horde_model_reference.catalog import DecodedCatalog
from horde_model_reference.legacy import convert_legacy, convert_legacy_csv, convert_legacy_json
from horde_model_reference.records import GenericModelRecord, TextGenerationModelRecord

C = MODEL_REFERENCE_CATEGORY
IMAGE_FAMILY = (
    C.blip,
    C.clip,
    C.codeformer,
    C.controlnet,
    C.esrgan,
    C.gfpgan,
    C.miscellaneous,
    C.safety_checker,
    C.image_generation,
)
LEGACY_BASELINES = {"stable diffusion 1": "stable_diffusion_1", "stable_diffusion_xl": "stable_diffusion_xl"}


def _with_intended_differences(
    golden: dict[str, GenericModelRecord], legacy: dict[str, dict[str, object]]
) -> tuple[dict[str, GenericModelRecord], set[str]]:
    """The golden records with our two deliberate differences applied, and the keys that changed.

    1. `known_slow_download` is true for downloads served by civitai (upstream tests the file name).
    2. Miscellaneous records keep their legacy `baseline`, normalised (upstream drops it).
    """
    expected: dict[str, GenericModelRecord] = {}
    changed: set[str] = set()
    for key, record in golden.items():
        downloads = tuple(
            msgspec.structs.replace(d, known_slow_download="civitai.com" in d.file_url)
            for d in record.config.download
        )
        updated = msgspec.structs.replace(
            record, config=msgspec.structs.replace(record.config, download=downloads)
        )
        if "baseline" in legacy[key] and record.category is C.miscellaneous:
            updated = msgspec.structs.replace(
                updated, baseline=LEGACY_BASELINES[str(legacy[key]["baseline"])]
            )
        if updated != record:
            changed.add(key)
        expected[key] = updated
    return expected, changed


def _csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))[1:]


def _legacy_json(path: Path) -> dict[str, dict[str, object]]:
    result: dict[str, dict[str, object]] = msgspec.json.decode(path.read_bytes())
    return result


@pytest.mark.parametrize("category", IMAGE_FAMILY, ids=lambda c: c.value)
def test_current_image_files_match_golden(shared_data: Path, category: MODEL_REFERENCE_CATEGORY) -> None:
    descriptor = get_category_descriptor(category)
    assert descriptor.legacy_filename is not None
    legacy_path = shared_data / "current" / "image" / descriptor.legacy_filename
    ours = convert_legacy_json(category, legacy_path.read_bytes())
    golden = decode_catalog(category, (shared_data / "golden-v2" / descriptor.v2_filename).read_bytes())
    legacy = _legacy_json(legacy_path)

    expected, changed = _with_intended_differences(golden.records, legacy)

    assert ours.issues == ()
    assert list(ours.records) == list(golden.records)
    assert ours.records == expected
    civitai = {k for k, v in legacy.items() if "civitai.com" in str(v["config"])}
    with_baseline = (
        {k for k, v in legacy.items() if "baseline" in v} if category is C.miscellaneous else set()
    )
    assert changed == civitai | with_baseline


def test_intended_differences_are_the_ones_documented(shared_data: Path) -> None:
    sd = convert_legacy_json(
        C.image_generation, (shared_data / "current/image/stable_diffusion.json").read_bytes()
    )
    slow = sorted(k for k, r in sd.records.items() if any(d.known_slow_download for d in r.config.download))
    assert len(slow) == 9
    assert "Nova Anime XL" in slow
    misc = convert_legacy_json(
        C.miscellaneous, (shared_data / "current/image/miscellaneous.json").read_bytes()
    )
    assert {k: getattr(r, "baseline", None) for k, r in misc.records.items()} == {
        "layer_diffuse_sd15": "stable_diffusion_1",
        "layer_diffuse_sdxl": "stable_diffusion_xl",
    }
    doc = (Path(__file__).resolve().parent.parent / "docs" / "legacy-conversion.md").read_text()
    assert "known_slow_download" in doc and "miscellaneous" in doc.lower()


def test_catalog_key_is_not_the_name_field(shared_data: Path) -> None:
    controlnet = convert_legacy_json(
        C.controlnet, (shared_data / "current/image/controlnet.json").read_bytes()
    )
    assert controlnet.records["control_qr_sdxl"].name == "control_qr_xl"
    assert "control_qr_xl" not in controlnet.records


def test_models_csv_matches_golden(shared_data: Path) -> None:
    ours = convert_legacy_csv((shared_data / "current/text/models.csv").read_bytes())
    golden = decode_catalog(C.text_generation, (shared_data / "golden-v2/text_generation.json").read_bytes())
    assert ours.issues == ()
    assert list(ours.records) == list(golden.records)
    assert ours.records == golden.records


def _text(catalog: DecodedCatalog, name: str) -> TextGenerationModelRecord:
    record = catalog.records[name]
    assert isinstance(record, TextGenerationModelRecord)
    return record


def test_models_csv_quirks(shared_data: Path) -> None:
    data = (shared_data / "current/text/models.csv").read_bytes()
    assert data.count(b"\r\n") - 1 == 723
    ours = convert_legacy_csv(data)
    assert len(ours.records) == 719
    # Four names are on two rows each (three pairs differ): the later row wins, as in db.json.
    rows: dict[str, list[list[str]]] = {}
    for row in _csv_rows(data):
        rows.setdefault(row[0], []).append(row)
    repeated = {name: pair for name, pair in rows.items() if len(pair) > 1}
    assert sorted(repeated) == [
        "Casual-Autopsy/Maginum-Cydoms-24B",
        "Sao10K/Llama-3.1-8B-Stheno-v3.4",
        "lightblue/Karasu-Mixtral-8x22B-v0.1",
        "mistralai/Ministral-3-14B-Instruct-2512",
    ]
    assert sum(first != last for first, last in repeated.values()) == 3
    for name, (_, last) in repeated.items():
        record = _text(ours, name)
        assert (record.url, record.description, record.style) == (last[3], last[5], last[6])
        assert (record.tags, record.instruct_format or "") == (
            tuple(t.strip() for t in last[7].split(",") if t.strip()),
            last[8],
        )
    db = msgspec.json.decode((shared_data / "current/text/db.json").read_bytes())
    # A parameter cell with a leading space.
    spaced = [row[0] for row in _csv_rows(data) if row[1] == " 12"]
    assert len(spaced) == 1
    assert _text(ours, spaced[0]).parameters_count == 12_000_000_000
    # settings and instruct_format: db.json has them three times per model (three keys per name).
    with_settings = [n for n in ours.records if _text(ours, n).settings]
    with_format = [n for n in ours.records if _text(ours, n).instruct_format]
    assert (len(with_settings), len(with_format)) == (7, 127)
    assert sum("settings" in v for v in db.values()) == 3 * 7
    assert sum("instruct_format" in v for v in db.values()) == 3 * 127


def _history(shared_data: Path, kind: str) -> list[Path]:
    files = sorted((shared_data / "history" / kind).iterdir())
    assert len(files) == 40
    return files


@pytest.mark.parametrize("index", range(40), ids=lambda i: f"{i:03d}")
def test_every_image_history_version_converts(shared_data: Path, index: int) -> None:
    path = _history(shared_data, "image")[index]
    legacy = _legacy_json(path)
    with capture_logs() as logs:
        ours = convert_legacy_json(C.image_generation, path.read_bytes(), source=path.name)

    skipped = {issue.name for issue in ours.issues}
    expected_skips = {6: {"BB95 Furry Mix v14"}, 21: {"Prefect Pony"}}.get(index, set())
    assert skipped == expected_skips
    assert all(issue.field == "config.download" for issue in ours.issues)
    assert set(ours.records) == set(legacy) - expected_skips

    suspects = [entry["model"] for entry in logs if entry["event"] == "legacy_record_suspect"]
    if index <= 27:
        assert suspects == ["Dreamlike Photoreal"]
        assert "Dreamlike Photoreal" in ours.records
    else:
        assert suspects == []

    golden_path = shared_data / "history-v2" / "image" / path.name
    if index >= 28:
        golden = decode_catalog(C.image_generation, golden_path.read_bytes())
        expected, _ = _with_intended_differences(golden.records, legacy)
        assert list(ours.records) == list(golden.records)
        assert ours.records == expected
    else:
        assert not golden_path.exists()


@pytest.mark.parametrize("index", range(40), ids=lambda i: f"{i:03d}")
def test_every_text_history_version_converts(shared_data: Path, index: int) -> None:
    path = _history(shared_data, "text")[index]
    ours = convert_legacy(C.text_generation, path.read_bytes(), source=path.name)
    names = {row[0] for row in _csv_rows(path.read_bytes())}
    if index == 35:
        assert [(i.name, i.reason) for i in ours.issues] == [
            ("LatitudeGames/Equinox-31B", "line 713 has 9 fields, expected 10")
        ]
        assert set(ours.records) == names - {"LatitudeGames/Equinox-31B"}
    else:
        assert ours.issues == ()
        assert set(ours.records) == names
