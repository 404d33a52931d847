"""weights.annotators: the annotator catalog, control-type selection, and its records."""

from __future__ import annotations

import hashlib
import json

import msgspec
import pytest

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.records import ControlNetAnnotatorModelRecord
from horde_model_reference.weights.annotators import (
    ANNOTATOR_FILES,
    ANNOTATOR_HF_REPO,
    AnnotatorCatalogError,
    AnnotatorFile,
    annotator_model_name,
    annotator_records,
    annotators_for_control_types,
)

# Pinned against horde-model-reference 8.6.2 (PyPI), computed in a Python 3.12 venv with that wheel
# (`pip install horde-model-reference==8.6.2`) by running `_catalog_digest` / `_records_digest`
# below against `horde_model_reference.annotator_catalog.ANNOTATOR_FILES` and
# `horde_model_reference.annotator_records.annotator_records()`; this package gives the same.
_UPSTREAM_FILE_COUNT = 16
_UPSTREAM_CATALOG_DIGEST = "8b8f2efb3971680a943e620a2334e8508239bcf819229c0cf94f5407e992e4bc"
_UPSTREAM_RECORD_COUNT = 12
_UPSTREAM_RECORDS_DIGEST = "388abf09419b5457ddbd18722e141fdd244d4dd3e83ef6a8897e8873ba8140a1"


def _sha(value: object, **dumps: object) -> str:
    return hashlib.sha256(json.dumps(value, separators=(",", ":"), **dumps).encode()).hexdigest()  # type: ignore[arg-type]


def _catalog_digest(files: tuple[AnnotatorFile, ...]) -> str:
    rows = [
        [
            e.repo,
            e.subfolder,
            e.filename,
            e.sha256,
            list(e.control_types),
            list(e.preprocessors),
            e.relative_path,
            e.origin_url,
        ]
        for e in files
    ]
    return _sha(rows)


def _records_digest(records: dict[str, ControlNetAnnotatorModelRecord]) -> str:
    dumped = {name: r.model_dump(mode="json", exclude_none=True) for name, r in records.items()}
    return _sha(dumped, sort_keys=True)


def test_catalog_matches_upstream_8_6_2() -> None:
    assert len(ANNOTATOR_FILES) == _UPSTREAM_FILE_COUNT
    assert _catalog_digest(ANNOTATOR_FILES) == _UPSTREAM_CATALOG_DIGEST


def test_records_match_upstream_8_6_2() -> None:
    records = annotator_records()
    assert len(records) == _UPSTREAM_RECORD_COUNT
    assert _records_digest(records) == _UPSTREAM_RECORDS_DIGEST


def test_paths_and_urls_without_a_subfolder() -> None:
    entry = AnnotatorFile(repo=ANNOTATOR_HF_REPO, filename="res101.pth")
    assert entry.relative_path == "lllyasviel/Annotators/res101.pth"
    assert entry.origin_url == "https://huggingface.co/lllyasviel/Annotators/resolve/main/res101.pth"


def test_paths_and_urls_with_a_subfolder() -> None:
    entry = AnnotatorFile("owner/repo", "m.pth", "a//b/")
    assert entry.relative_path == "owner/repo/a/b/m.pth"
    assert entry.origin_url == "https://huggingface.co/owner/repo/resolve/main/a/b/m.pth"


def test_every_catalog_file_is_unique_and_hashed() -> None:
    assert len({e.relative_path for e in ANNOTATOR_FILES}) == len(ANNOTATOR_FILES)
    assert all(e.sha256 and e.control_types and e.preprocessors for e in ANNOTATOR_FILES)


def test_entries_are_frozen_hashable_and_normalise_name_lists() -> None:
    entry = AnnotatorFile("o/r", "f.pth", control_types=["depth"], preprocessors=["P"])  # type: ignore[arg-type]
    assert entry.control_types == ("depth",)
    assert entry == AnnotatorFile("o/r", "f.pth", control_types=("depth",), preprocessors=("P",))
    assert hash(entry) == hash(AnnotatorFile("o/r", "f.pth", control_types=("depth",), preprocessors=("P",)))
    with pytest.raises(AttributeError):
        entry.filename = "g.pth"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"repo": "no-slash"}, "repo"),
        ({"repo": "a/b/c"}, "repo"),
        ({"repo": "../x"}, "repo"),
        ({"repo": 3}, "repo"),
        ({"filename": ""}, "filename"),
        ({"filename": "a/b.pth"}, "filename"),
        ({"filename": ".."}, "filename"),
        ({"subfolder": "ok/../up"}, "subfolder"),
        ({"subfolder": "a\\b"}, "subfolder"),
        ({"sha256": "abc"}, "sha256"),
        ({"control_types": "depth"}, "control_types"),
        ({"control_types": ("depth", "")}, "control_types"),
        ({"preprocessors": (1,)}, "preprocessors"),
    ],
)
def test_a_bad_entry_is_refused_naming_the_field(kwargs: dict, field: str) -> None:
    fields = {"repo": "o/r", "filename": "f.pth", **kwargs}
    with pytest.raises(AnnotatorCatalogError, match=f"annotator file {field}=") as info:
        AnnotatorFile(**fields)
    assert info.value.field == field
    assert info.value.value == kwargs[field]


def test_a_bad_entry_in_json_is_a_validation_error() -> None:
    with pytest.raises(msgspec.ValidationError, match="repo"):
        msgspec.json.decode(b'{"repo": "x", "filename": "f"}', type=AnnotatorFile)


def test_selection_is_deduplicated_in_catalog_order() -> None:
    picked = annotators_for_control_types(["hough", "depth", "mlsd", "canny"])
    assert [e.filename for e in picked] == ["res101.pth", "latest_net_G.pth", "mlsd_large_512_fp32.pth"]


def test_weightless_and_unknown_control_types_need_nothing() -> None:
    assert annotators_for_control_types(["canny", "scribble", "nope"]) == ()
    assert annotators_for_control_types([]) == ()


def test_selection_from_another_catalog() -> None:
    mine = (
        AnnotatorFile("o/r", "a.pth", control_types=("x",)),
        AnnotatorFile("o/r", "b.pth", control_types=("y",)),
    )
    assert annotators_for_control_types({"y"}, catalog=mine) == (mine[1],)


def test_selection_refuses_bad_arguments() -> None:
    with pytest.raises(
        TypeError, match="control_types must be an iterable of control type names, got 'depth'"
    ):
        annotators_for_control_types("depth")
    with pytest.raises(TypeError, match="catalog entries must be AnnotatorFile, got 'a.pth'"):
        annotators_for_control_types(["depth"], catalog=["a.pth"])  # type: ignore[list-item]


def test_record_name_is_the_first_control_type() -> None:
    assert annotator_model_name(ANNOTATOR_FILES[0]) == "annotator_hed"
    assert annotator_model_name(AnnotatorFile("o/r", "f.pth")) == "annotator_misc"


def test_records_group_files_by_name_in_catalog_order() -> None:
    records = annotator_records()
    openpose = records["annotator_openpose"]
    assert isinstance(openpose, ControlNetAnnotatorModelRecord)
    assert openpose.category is MODEL_REFERENCE_CATEGORY.controlnet_annotator
    assert openpose.record_type == "controlnet_annotator"
    assert openpose.control_types == ("openpose",)
    assert openpose.preprocessors == ("OpenposePreprocessor",)
    assert [d.file_name for d in openpose.config.download] == [
        "annotators/lllyasviel/Annotators/body_pose_model.pth",
        "annotators/lllyasviel/Annotators/hand_pose_model.pth",
        "annotators/lllyasviel/Annotators/facenet.pth",
    ]
    first = openpose.config.download[0]
    assert first.file_url == "https://huggingface.co/lllyasviel/Annotators/resolve/main/body_pose_model.pth"
    assert first.sha256sum == ANNOTATOR_FILES[3].sha256


def test_records_of_a_custom_catalog() -> None:
    catalog = (
        AnnotatorFile("o/r", "a.pth", control_types=("x", "x2"), preprocessors=("PX",)),
        AnnotatorFile("o/r", "b.pth", "sub", control_types=("x",), preprocessors=("other",)),
        AnnotatorFile("o/r", "c.pth"),
    )
    records = annotator_records(catalog)
    assert list(records) == ["annotator_x", "annotator_misc"]
    x = records["annotator_x"]
    assert x.control_types == ("x", "x2") and x.preprocessors == ("PX",)
    assert [d.file_name for d in x.config.download] == ["annotators/o/r/a.pth", "annotators/o/r/sub/b.pth"]
    assert records["annotator_misc"].config.download[0].sha256sum == "FIXME"
    assert annotator_records(()) == {}


def test_records_round_trip_through_json() -> None:
    for record in annotator_records().values():
        decoded = msgspec.json.decode(record.to_json(), type=ControlNetAnnotatorModelRecord)
        assert decoded == record


def test_records_refuse_a_bad_catalog() -> None:
    with pytest.raises(TypeError, match="catalog must be an iterable of AnnotatorFile"):
        annotator_records(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="catalog entries must be AnnotatorFile, got 3"):
        annotator_records([3])  # type: ignore[list-item]
