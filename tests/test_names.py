"""`names`: the one rule for model names (reads, writes, HTTP): look-alikes refused, every real
catalog name still accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from horde_model_reference.catalog import decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import InvalidModelNameError, RecordDecodeError
from horde_model_reference.names import backend_prefix_of, name_candidates, validate_model_name
from horde_model_reference.writes.validation import validate_write_name
from manager_harness import counting_manager

TEXT = MODEL_REFERENCE_CATEGORY.text_generation


def _catalog_names(shared_data: Path) -> set[str]:
    names: set[str] = set()
    for path in shared_data.rglob("*.json"):
        try:
            document = json.loads(path.read_bytes())
        except ValueError:
            continue
        if isinstance(document, dict):
            names.update(key for key in document if isinstance(key, str))
    return names


def test_every_real_catalog_name_is_accepted(shared_data: Path) -> None:
    names = _catalog_names(shared_data)
    assert len(names) > 1000
    refused = {}
    for name in names:
        try:
            validate_model_name(name)
        except InvalidModelNameError as exc:
            refused[name] = exc.reason
    assert not refused


def test_every_real_v2_name_may_still_be_updated(shared_data: Path) -> None:
    for path in (shared_data / "golden-v2").glob("*.json"):
        category = TEXT if path.stem == "text_generation" else MODEL_REFERENCE_CATEGORY.clip
        for name in json.loads(path.read_bytes()):
            assert validate_write_name(category, name, exists=True) == name


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("\uff36\uff49\uff34-L", "NFKC"),  # fullwidth letters
        ("ﬁne-tune", "NFKC"),  # a ligature
        ("1\u00b5", "NFKC"),  # the micro sign
        ("no\u00a0break", "NFKC"),
        ("dot\u2024dot", "NFKC"),  # one dot leader, a '.' after NFKC
        ("next\u0085line", "control or format"),
        ("zero\u200bwidth", "control or format"),
        ("bidi\u202eoverride", "control or format"),
        ("isolate\u2066x", "control or format"),
        ("line\u2028sep", "control or format"),
        ("private\ue000use", "control or format"),
        ("ViT-L\u221514", "looks like '/'"),  # division slash
        ("ViT-L\u204414", "looks like '/'"),  # fraction slash
        ("ViT-L\u29f814", "looks like '/'"),  # big solidus
        ("org\uff0fmodel", "looks like '/'"),  # fullwidth solidus
        ("ViT\u2010L", "only letters, digits and marks"),  # a hyphen, not '-'
        ("x\u2215", "looks like '/'"),
        ("St\u0430ble", "mixes"),  # Cyrillic a
        ("\u039fpen model", "mixes"),  # Greek capital omicron
        ("\u0441\u043b\u043e\u0432\u043e \u03b1", "mixes"),  # Cyrillic and Greek
    ],
)
def test_look_alikes_are_refused(name: str, reason: str) -> None:
    with pytest.raises(InvalidModelNameError) as caught:
        validate_model_name(name)
    assert reason in caught.value.reason and caught.value.name == name


@pytest.mark.parametrize("name", ["Привет", "Ωμέγα", "模型-7B", "Café au lait", "naïve-v2", "org/modèle"])
def test_names_in_one_script_are_fine(name: str) -> None:
    assert validate_model_name(name) == name


def test_backend_prefixed_text_names_are_not_created() -> None:
    for name in ("koboldcpp/x", "aphrodite/org/x", "KoboldCpp/x"):
        with pytest.raises(InvalidModelNameError) as caught:
            validate_write_name(TEXT, name, exists=False)
        assert "backend prefix" in caught.value.reason
    assert backend_prefix_of("APHRODITE/x") == "aphrodite/" and backend_prefix_of("org/x") is None
    assert name_candidates(TEXT, "koboldcpp/org/x") == ("org/x", "koboldcpp/org/x")


_TEXT_RECORD = {"name": "org/x", "parameters": 7000000000, "baseline": "llama"}


def _shadowed_catalog(base: Path) -> None:
    impostor = dict(_TEXT_RECORD, name="koboldcpp/org/x", description="not the real one")
    catalog = {"org/x": _TEXT_RECORD, "koboldcpp/org/x": impostor}
    (base / "text_generation.json").write_text(json.dumps(catalog))


def test_a_backend_prefixed_text_record_is_skipped_on_decode(tmp_path: Path) -> None:
    _shadowed_catalog(tmp_path)
    data = (tmp_path / "text_generation.json").read_bytes()
    decoded = decode_catalog(TEXT, data)
    assert list(decoded.records) == ["org/x"]
    assert [(issue.name, "backend prefix" in issue.reason) for issue in decoded.issues] == [
        ("koboldcpp/org/x", True)
    ]
    with pytest.raises(RecordDecodeError) as caught:
        decode_catalog(TEXT, data, strict=True)
    assert caught.value.name == "koboldcpp/org/x"


@pytest.mark.usefixtures("manager_reset")
def test_a_prefixed_lookup_finds_the_record_it_prefixes(tmp_path: Path) -> None:
    _shadowed_catalog(tmp_path)
    manager = counting_manager(tmp_path)
    record = manager.get_model(TEXT, "koboldcpp/org/x")
    assert record.name == "org/x" and record.description is None
    assert manager.get_model(TEXT, "org/x") is record


def test_a_deprecated_key_and_its_name_find_each_other(tmp_path: Path, manager_reset: None) -> None:
    record = {"record_type": "controlnet", "name": "control_qr_xl", "style": "sdxl"}
    (tmp_path / "controlnet.json").write_text(json.dumps({"control_qr_sdxl": record}))
    controlnet = MODEL_REFERENCE_CATEGORY.controlnet
    assert name_candidates(controlnet, "control_qr_xl") == ("control_qr_xl", "control_qr_sdxl")
    assert name_candidates(controlnet, "control_qr_sdxl") == ("control_qr_xl", "control_qr_sdxl")
    manager = counting_manager(tmp_path)
    found = manager.get_model(controlnet, "control_qr_xl")
    assert found is manager.get_model(controlnet, "control_qr_sdxl") and found.name == "control_qr_xl"
