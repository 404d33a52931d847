"""weights.layout: the weights root search, record file paths, presence, annotator paths.

Behaviour as upstream 8.6.2's `on_disk_layout` documents it, plus this package's bounds: the root
search is depth- and size-limited and survives symlink loops; a record placing a file outside the
weights root is an error.
"""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path

import msgspec
import pytest
from structlog.testing import capture_logs

import horde_model_reference
from horde_model_reference.categories import RECORD_TYPE
from horde_model_reference.records import (
    ControlNetModelRecord,
    DownloadRecord,
    GenericModelRecord,
    GenericModelRecordConfig,
    ImageGenerationModelRecord,
    TextGenerationModelRecord,
)
from horde_model_reference.registries import KNOWN_IMAGE_GENERATION_BASELINE
from horde_model_reference.weights import layout
from horde_model_reference.weights.annotators import ANNOTATOR_FILES, annotators_for_control_types
from horde_model_reference.weights.kinds import COMPONENT_PURPOSE_FOLDERS, component_relative_path
from horde_model_reference.weights.layout import (
    PresenceSummary,
    UnsafeWeightsPathError,
    annotator_file_path,
    annotator_root,
    annotators_present,
    annotators_present_for_control_types,
    file_paths_for,
    free_bytes_for,
    is_present,
    presence_summary,
    resolve_weights_root,
)


def _image(name: str, *files: tuple[str, str | None]) -> ImageGenerationModelRecord:
    downloads = tuple(
        DownloadRecord(
            file_name=file_name, file_url=f"https://example.invalid/{file_name}", file_purpose=purpose
        )
        for file_name, purpose in files
    )
    return ImageGenerationModelRecord(
        name=name,
        baseline=KNOWN_IMAGE_GENERATION_BASELINE.stable_diffusion_xl,
        nsfw=False,
        config=GenericModelRecordConfig(download=downloads),
    )


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"w")
    return path


def _tree(base: Path, *folders: str) -> Path:
    for folder in folders:
        (base / folder).mkdir(parents=True, exist_ok=True)
    return base


# --- component routing (weights.kinds, re-exported at upstream's paths) ---------------------------


@pytest.mark.parametrize(
    ("purpose", "expected"),
    [
        ("vae", "../vae/f.safetensors"),
        ("text_encoders", "../text_encoders/f.safetensors"),
        ("text_encoder", "../text_encoders/f.safetensors"),
        ("face_restore_helper", "../gfpgan/f.safetensors"),
        (None, "f.safetensors"),
        ("unet", "f.safetensors"),
        ("", "f.safetensors"),
    ],
)
def test_component_files_route_to_their_sibling_folder(purpose: str | None, expected: str) -> None:
    assert component_relative_path("f.safetensors", purpose) == Path(expected)


def test_component_purpose_folders_is_upstreams_plain_dict() -> None:
    assert COMPONENT_PURPOSE_FOLDERS["vae"] == "vae"
    assert COMPONENT_PURPOSE_FOLDERS["text_encoder"] == "text_encoders"


# --- resolve_weights_root ------------------------------------------------------------------------


def test_root_is_the_shallowest_folder_holding_every_default_marker(tmp_path: Path) -> None:
    _tree(tmp_path, "deep/er/compvis", "deep/er/clip", "x/compvis", "x/clip", "only_one/compvis")
    assert resolve_weights_root(tmp_path) == tmp_path / "x"


def test_root_is_the_start_itself_when_it_holds_the_markers(tmp_path: Path) -> None:
    _tree(tmp_path, "compvis", "clip", "sub/compvis", "sub/clip")
    assert resolve_weights_root(str(tmp_path)) == tmp_path


def test_siblings_are_searched_in_name_order(tmp_path: Path) -> None:
    _tree(tmp_path, "b/compvis", "b/clip", "a/compvis", "a/clip")
    assert resolve_weights_root(tmp_path) == tmp_path / "a"


def test_root_falls_back_to_the_start_when_no_folder_holds_the_markers(tmp_path: Path) -> None:
    _tree(tmp_path, "a/compvis", "b/clip")
    assert resolve_weights_root(tmp_path) == tmp_path
    missing = tmp_path / "does-not-exist"
    assert resolve_weights_root(missing) == missing


def test_root_markers_can_be_given(tmp_path: Path) -> None:
    _tree(tmp_path, "a/compvis", "b/mine")
    assert resolve_weights_root(tmp_path, marker_subdirs=("mine",)) == tmp_path / "b"
    assert resolve_weights_root(tmp_path, marker_subdirs=()) == tmp_path


def test_root_starts_at_the_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path, "w/compvis", "w/clip")
    monkeypatch.setenv("AIWORKER_CACHE_HOME", str(tmp_path))
    assert resolve_weights_root() == tmp_path / "w"


def test_root_defaults_to_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIWORKER_CACHE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_weights_root() == Path("models")
    _tree(tmp_path, "models/nested/compvis", "models/nested/clip")
    assert resolve_weights_root() == Path("models/nested")


def test_an_empty_start_is_returned_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIWORKER_CACHE_HOME", "")
    assert resolve_weights_root() == Path("")
    assert resolve_weights_root("") == Path("")


def test_root_search_follows_a_symlinked_tree(tmp_path: Path) -> None:
    disk = _tree(tmp_path / "disk", "weights/compvis", "weights/clip")
    (tmp_path / "start").mkdir()
    (tmp_path / "start" / "link").symlink_to(disk, target_is_directory=True)
    assert resolve_weights_root(tmp_path / "start") == tmp_path / "start" / "link" / "weights"


def test_root_search_ends_on_a_symlink_loop(tmp_path: Path) -> None:
    _tree(tmp_path, "a/b")
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "a", target_is_directory=True)
    (tmp_path / "a" / "self").symlink_to(tmp_path / "a", target_is_directory=True)
    assert resolve_weights_root(tmp_path, max_depth=1000) == tmp_path


def test_root_search_stops_at_the_depth_bound(tmp_path: Path) -> None:
    _tree(tmp_path, "1/2/3/compvis", "1/2/3/clip")
    assert resolve_weights_root(tmp_path, max_depth=3) == tmp_path / "1/2/3"
    assert resolve_weights_root(tmp_path, max_depth=2) == tmp_path
    assert layout.MAX_SEARCH_DEPTH >= 3


def test_root_search_stops_at_the_directory_bound_with_a_warning(tmp_path: Path) -> None:
    _tree(tmp_path, *(f"d{i:02}" for i in range(10)), "z/compvis", "z/clip")
    assert resolve_weights_root(tmp_path, max_directories=12) == tmp_path / "z"
    with capture_logs() as logs:
        assert resolve_weights_root(tmp_path, max_directories=5) == tmp_path
    assert [e["event"] for e in logs] == ["weights_root_search_bounded"]
    assert (logs[0]["listed"], logs[0]["limit"]) == (5, "max_directories")


def test_root_search_stops_at_the_entry_bound_with_a_warning(tmp_path: Path) -> None:
    for i in range(20):
        _touch(tmp_path / f"file{i:02}")
    _tree(tmp_path, "zz/compvis", "zz/clip")
    assert resolve_weights_root(tmp_path, max_entries=24) == tmp_path / "zz"
    with capture_logs() as logs:
        assert resolve_weights_root(tmp_path, max_entries=10) == tmp_path
    assert [(e["event"], e["limit"], e["read"]) for e in logs] == [
        ("weights_root_search_bounded", "max_entries", 10)
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"marker_subdirs": "compvis"}, TypeError, "marker_subdirs must be an iterable of names"),
        ({"marker_subdirs": ["compvis", 3]}, TypeError, "marker_subdirs must hold strings, got 3"),
        ({"marker_subdirs": ["../compvis"]}, UnsafeWeightsPathError, "'../compvis': a marker must be"),
        ({"marker_subdirs": [""]}, UnsafeWeightsPathError, "'': a marker must be a single folder name"),
        ({"max_depth": -1}, ValueError, "max_depth must be an int >= 0, got -1"),
        ({"max_depth": True}, ValueError, "max_depth must be an int >= 0, got True"),
        ({"max_directories": 0}, ValueError, "max_directories must be an int >= 1, got 0"),
        ({"max_entries": 0.5}, ValueError, "max_entries must be an int >= 1, got 0.5"),
        ({"cache_home": 5}, TypeError, "cache_home must be a path"),
    ],
)
def test_root_search_refuses_bad_arguments(tmp_path: Path, kwargs: dict, error: type, match: str) -> None:
    kwargs.setdefault("cache_home", tmp_path)
    with pytest.raises(error, match=match):
        resolve_weights_root(**kwargs)


# --- file_paths_for / is_present -----------------------------------------------------------------


def test_file_paths_put_files_in_the_category_folder_and_components_beside_it(tmp_path: Path) -> None:
    record = _image(
        "qwen", ("unet.safetensors", None), ("vae.safetensors", "vae"), ("te.safetensors", "text_encoder")
    )
    assert file_paths_for(record, tmp_path) == [
        tmp_path / "compvis" / "unet.safetensors",
        tmp_path / "vae" / "vae.safetensors",
        tmp_path / "text_encoders" / "te.safetensors",
    ]


def test_file_paths_prefer_an_existing_copy_on_another_root(tmp_path: Path) -> None:
    main, extra = tmp_path / "main", tmp_path / "extra"
    record = _image("m", ("a.safetensors", None), ("v.safetensors", "vae"))
    _touch(extra / "vae" / "v.safetensors")
    assert file_paths_for(record, main, extra_roots=[extra]) == [
        main / "compvis" / "a.safetensors",
        extra / "vae" / "v.safetensors",
    ]
    _touch(main / "vae" / "v.safetensors")
    assert file_paths_for(record, main, extra_roots=[extra])[1] == main / "vae" / "v.safetensors"


def test_a_category_without_a_weights_folder_has_no_paths(tmp_path: Path) -> None:
    record = TextGenerationModelRecord(
        name="t",
        parameters_count=1,
        config=GenericModelRecordConfig(download=(DownloadRecord(file_name="t.gguf", file_url="u"),)),
    )
    assert file_paths_for(record, tmp_path) == []
    assert not is_present(record, tmp_path)


def test_a_generic_record_uses_the_category_its_record_type_names(tmp_path: Path) -> None:
    download = (DownloadRecord(file_name="c.pth", file_url="u"),)
    generic = GenericModelRecord(
        name="c", record_type=RECORD_TYPE.controlnet, config=GenericModelRecordConfig(download=download)
    )
    assert file_paths_for(generic, tmp_path) == [tmp_path / "controlnet" / "c.pth"]
    unknown = GenericModelRecord(
        name="c", record_type=RECORD_TYPE("nope"), config=GenericModelRecordConfig(download=download)
    )
    assert file_paths_for(unknown, tmp_path) == []


def test_presence_needs_every_file_on_some_root(tmp_path: Path) -> None:
    main, extra = tmp_path / "main", tmp_path / "extra"
    record = _image("m", ("a.safetensors", None), ("v.safetensors", "vae"))
    assert not is_present(record, main, extra_roots=[extra])
    _touch(main / "compvis" / "a.safetensors")
    assert not is_present(record, main, extra_roots=[extra])
    _touch(extra / "vae" / "v.safetensors")
    assert is_present(record, main, extra_roots=[extra])
    assert not is_present(record, main)


def test_a_record_without_files_is_not_present(tmp_path: Path) -> None:
    assert not is_present(_image("empty"), tmp_path)
    assert file_paths_for(_image("empty"), tmp_path) == []


def test_presence_follows_symlinks(tmp_path: Path) -> None:
    target = _touch(tmp_path / "elsewhere" / "a.safetensors")
    (tmp_path / "compvis").mkdir()
    link = tmp_path / "compvis" / "a.safetensors"
    link.symlink_to(target)
    record = _image("m", ("a.safetensors", None))
    assert is_present(record, tmp_path)
    target.unlink()
    assert not is_present(record, tmp_path)


def test_annotator_records_land_under_the_controlnet_annotators_folder(tmp_path: Path) -> None:
    download = DownloadRecord(file_name="annotators/lllyasviel/Annotators/res101.pth", file_url="u")
    record = ControlNetModelRecord(name="c", config=GenericModelRecordConfig(download=(download,)))
    assert file_paths_for(record, tmp_path) == [annotator_root(tmp_path) / "lllyasviel/Annotators/res101.pth"]


@pytest.mark.parametrize(
    ("file_name", "purpose"),
    [("../../etc/passwd", None), ("/etc/passwd", None), ("", None), ("../../x", "vae"), ("../compvis", None)],
)
def test_a_file_outside_the_weights_folders_is_refused(
    tmp_path: Path, file_name: str, purpose: str | None
) -> None:
    record = _image("evil", (file_name, purpose))
    with pytest.raises(UnsafeWeightsPathError, match="record 'evil' places this file outside") as info:
        file_paths_for(record, tmp_path)
    assert info.value.value == file_name
    with pytest.raises(UnsafeWeightsPathError):
        is_present(record, tmp_path)


def test_a_sibling_folder_named_by_the_file_name_is_allowed(tmp_path: Path) -> None:
    assert file_paths_for(_image("m", ("../vae/v.pt", None)), tmp_path) == [tmp_path / "vae" / "v.pt"]


def test_path_functions_refuse_bad_arguments(tmp_path: Path) -> None:
    record = _image("m", ("a.safetensors", None))
    with pytest.raises(TypeError, match="record must be a GenericModelRecord, got 'm'"):
        file_paths_for("m", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="root must be a path"):
        is_present(record, 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="extra_roots must be a sequence of paths"):
        is_present(record, tmp_path, extra_roots=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="extra_roots entry must be a path"):
        file_paths_for(record, tmp_path, extra_roots=[None])  # type: ignore[list-item]


# --- presence_summary ----------------------------------------------------------------------------


def test_presence_summary_partitions_names_in_order(tmp_path: Path) -> None:
    reference = {n: _image(n, (f"{n}.safetensors", None)) for n in ("a", "b", "c")}
    _touch(tmp_path / "compvis" / "c.safetensors")
    _touch(tmp_path / "compvis" / "a.safetensors")
    summary = presence_summary(reference, ["c", "zz", "b", "a", "yy"], tmp_path)
    assert summary == PresenceSummary(present=("c", "a"), missing=("b",), unknown=("zz", "yy"))
    assert (summary.num_present, summary.num_requested) == (2, 5)


def test_presence_summary_searches_extra_roots(tmp_path: Path) -> None:
    reference = {"a": _image("a", ("a.safetensors", None))}
    _touch(tmp_path / "extra" / "compvis" / "a.safetensors")
    summary = presence_summary(reference, iter(["a"]), tmp_path / "main", extra_roots=[tmp_path / "extra"])
    assert summary.present == ("a",)


def test_presence_summary_refuses_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="names must be an iterable of names, not 'abc'"):
        presence_summary({}, "abc", tmp_path)
    with pytest.raises(TypeError, match="names must hold strings, got 1"):
        presence_summary({}, [1], tmp_path)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="reference must be a mapping"):
        presence_summary([], ["a"], tmp_path)  # type: ignore[arg-type]


def test_presence_summary_is_a_frozen_struct() -> None:
    summary = PresenceSummary(("a",), (), ())
    with pytest.raises(AttributeError):
        summary.present = ()  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(summary), type=PresenceSummary) == summary


# --- free_bytes_for ------------------------------------------------------------------------------


def test_free_bytes_of_an_existing_and_a_future_root(tmp_path: Path) -> None:
    assert isinstance(free_bytes_for(tmp_path), int)
    assert isinstance(free_bytes_for(tmp_path / "not" / "yet"), int)


def test_free_bytes_is_measured_at_the_nearest_existing_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    probed: list[Path] = []
    real = shutil.disk_usage

    def spy(path: Path) -> object:
        probed.append(Path(path))
        return real(path)

    monkeypatch.setattr(layout.shutil, "disk_usage", spy)
    free_bytes_for(tmp_path / "not" / "yet")
    assert probed == [tmp_path]


def test_free_bytes_is_none_when_the_volume_cannot_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(path: Path) -> object:
        raise PermissionError(13, "denied", str(path))

    monkeypatch.setattr(layout.shutil, "disk_usage", fail)
    with capture_logs() as logs:
        assert free_bytes_for(tmp_path) is None
    assert logs[0]["event"] == "free_bytes_unreadable"


def test_free_bytes_refuses_a_non_path() -> None:
    with pytest.raises(TypeError, match="root must be a path"):
        free_bytes_for(3.5)  # type: ignore[arg-type]


# --- annotators on disk --------------------------------------------------------------------------


def test_annotator_root_is_controlnet_annotators(tmp_path: Path) -> None:
    assert annotator_root(tmp_path) == tmp_path / "controlnet" / "annotators"


def test_annotator_file_path_targets_the_primary_root_then_finds_copies(tmp_path: Path) -> None:
    main, extra = tmp_path / "main", tmp_path / "extra"
    teed = next(a for a in ANNOTATOR_FILES if a.subfolder)
    expected = main / "controlnet/annotators/bdsqlsz/qinglong_controlnet-lllite/Annotators/7_model.pth"
    assert annotator_file_path(teed, main, extra_roots=[extra]) == expected
    copy = _touch(annotator_root(extra) / teed.relative_path)
    assert annotator_file_path(teed, main, extra_roots=[extra]) == copy


def test_annotators_present_needs_every_file(tmp_path: Path) -> None:
    depth = annotators_for_control_types(["depth"])
    assert len(depth) == 2
    assert annotators_present([], tmp_path)
    assert not annotators_present(depth, tmp_path)
    _touch(annotator_root(tmp_path) / depth[0].relative_path)
    assert not annotators_present_for_control_types(["depth"], tmp_path)
    _touch(annotator_root(tmp_path / "extra") / depth[1].relative_path)
    assert annotators_present_for_control_types(["depth"], tmp_path, extra_roots=[tmp_path / "extra"])


def test_weightless_and_unknown_control_types_are_vacuously_present(tmp_path: Path) -> None:
    assert annotators_present_for_control_types(["canny", "scribble", "no-such-type"], tmp_path)
    assert annotators_present_for_control_types([], tmp_path)


def test_annotator_helpers_refuse_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="annotator must be an AnnotatorFile, got 'x.pth'"):
        annotator_file_path("x.pth", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="annotators must be an iterable of AnnotatorFile"):
        annotators_present(None, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match="control_types must be an iterable of control type names, got 'depth'"
    ):
        annotators_present_for_control_types("depth", tmp_path)


# --- upstream module paths -----------------------------------------------------------------------

# Every name horde-engine 7.12.0 imports from these paths (hordelib/settings.py, preload.py,
# model_manager/{base,compvis,annotator_provider}.py, execution/component_materialize.py), plus the
# rest of upstream 8.6.2's `__all__` of the modules.
_UPSTREAM_NAMES = {
    "horde_model_reference": [
        "COMPONENT_PURPOSE_FOLDERS",
        "PresenceSummary",
        "category_folder",
        "component_relative_path",
        "file_paths_for",
        "free_bytes_for",
        "is_present",
        "presence_summary",
        "resolve_weights_root",
    ],
    "horde_model_reference.on_disk_layout": [
        "COMPONENT_PURPOSE_FOLDERS",
        "PresenceSummary",
        "annotator_file_path",
        "annotator_root",
        "annotators_present",
        "annotators_present_for_control_types",
        "category_folder",
        "component_relative_path",
        "file_paths_for",
        "free_bytes_for",
        "is_present",
        "presence_summary",
        "resolve_weights_root",
    ],
    "horde_model_reference.annotator_catalog": [
        "ANNOTATOR_FILES",
        "ANNOTATOR_HF_REPO",
        "AnnotatorFile",
        "annotators_for_control_types",
    ],
    "horde_model_reference.annotator_records": [
        "ANNOTATOR_ON_DISK_SUBFOLDER",
        "annotator_model_name",
        "annotator_records",
    ],
    "horde_model_reference.canonical_components": [
        "DEFAULT_MIN_SHARED_MODELS",
        "CanonicalComponent",
        "CanonicalComponentRegistry",
        "CanonicalComponentSource",
        "derive_canonical_registry",
    ],
}


@pytest.mark.parametrize("module_name", sorted(_UPSTREAM_NAMES))
def test_upstream_names_resolve_at_their_upstream_path(module_name: str) -> None:
    module = importlib.import_module(module_name)
    for name in _UPSTREAM_NAMES[module_name]:
        assert getattr(module, name) is not None, name
        assert name in module.__all__, name


def test_root_names_are_the_layout_functions() -> None:
    assert horde_model_reference.resolve_weights_root is resolve_weights_root
    assert horde_model_reference.is_present is is_present
    assert horde_model_reference.component_relative_path is component_relative_path


def test_hordelib_style_submodule_import() -> None:
    from horde_model_reference import annotator_catalog

    assert annotator_catalog.ANNOTATOR_FILES is ANNOTATOR_FILES
    assert os.fspath(horde_model_reference.resolve_weights_root("nowhere-at-all")) == "nowhere-at-all"
