"""Upstream's settings objects, paths, text backend names and image-baseline records.

From upstream 8.6.2's source: the settings objects are process-wide singletons, the paths live
under `$AIWORKER_CACHE_HOME/horde_model_reference` with the legacy files in `legacy/`, backend
prefixes are `aphrodite/` + the canonical name and `koboldcpp/` + the name without its author, and
a baseline change set must hold at least one change.
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

import horde_model_reference as root
from horde_model_reference.compat.settings import (
    load_ai_horde_ci_settings,
    load_ai_horde_worker_settings,
    load_paths,
)
from horde_model_reference.image_baseline import (
    BaselineCapabilities,
    HordeBaselinePolicy,
    ImageBaselineCatalog,
    ImageBaselineChange,
    ImageBaselineChangeSet,
    ImageBaselineRecord,
)
from horde_model_reference.meta_consts import MODEL_REFERENCE_CATEGORY as CATEGORY
from horde_model_reference.settings import HordeModelReferenceSettings, ReplicateMode
from horde_model_reference.text_backend_names import (
    TEXT_LEGACY_BACKEND_PREFIXES,
    get_model_name_variants,
    has_legacy_text_backend_prefix,
    strip_backend_prefix,
    validate_not_backend_prefixed,
)


def test_settings_objects_are_process_wide() -> None:
    from horde_model_reference import path_consts

    assert root.horde_model_reference_settings is root.horde_model_reference_settings
    assert isinstance(root.horde_model_reference_settings, root.HordeModelReferenceSettings)
    assert root.horde_model_reference_paths is path_consts.horde_model_reference_paths
    assert root.horde_model_reference_paths.base_path == root.BASE_PATH
    assert root.LEGACY_REFERENCE_FOLDER == root.BASE_PATH / "legacy"
    assert root.ai_horde_worker_settings.aiworker_cache_home


def test_ci_settings_from_the_environment() -> None:
    ci = load_ai_horde_ci_settings({"AI_HORDE_TESTING": "true", "HORDE_SDK_TESTING": "0"})
    assert (ci.ai_horde_testing, ci.horde_sdk_testing, ci.hordelib_ci_ongoing) == (True, False, False)
    assert root.ai_horde_ci_settings is root.ai_horde_ci_settings


def test_github_constants() -> None:
    assert (root.GITHUB_REPO_OWNER, root.GITHUB_REPO_BRANCH) == ("Haidra-Org", "main")
    assert root.GITHUB_IMAGE_REPO_NAME == "AI-Horde-image-model-reference"
    assert root.GITHUB_TEXT_REPO_NAME == "AI-Horde-text-model-reference"


def test_replicate_mode_values() -> None:
    assert [m.value for m in ReplicateMode] == ["PRIMARY", "REPLICA"]
    assert HordeModelReferenceSettings().replicate_mode is ReplicateMode.REPLICA


def test_worker_settings_from_the_environment() -> None:
    worker = load_ai_horde_worker_settings({"AIWORKER_CACHE_HOME": "/srv/models", "LOGS_FOLDER": "/srv/logs"})
    assert (worker.aiworker_cache_home, worker.logs_folder) == ("/srv/models", "/srv/logs")
    assert load_ai_horde_worker_settings({}).aiworker_cache_home == "./models"


def test_paths(tmp_path: Path) -> None:
    worker = load_ai_horde_worker_settings(
        {"AIWORKER_CACHE_HOME": str(tmp_path), "LOGS_FOLDER": str(tmp_path / "logs")}
    )
    paths = load_paths(HordeModelReferenceSettings(), worker)
    base = tmp_path.resolve() / "horde_model_reference"
    assert paths.base_path == base
    assert paths.legacy_path == base / "legacy"
    assert paths.get_model_reference_filename(CATEGORY.image_generation) == "stable_diffusion.json"
    assert (
        paths.get_model_reference_filename("clip", base_path=tmp_path) == (tmp_path / "clip.json").resolve()
    )
    assert paths.get_model_reference_file_path(CATEGORY.text_generation) == base / "text_generation.json"
    assert (
        paths.get_legacy_model_reference_file_path(CATEGORY.text_generation) == base / "legacy" / "models.csv"
    )
    assert paths.legacy_model_reference_filenames[CATEGORY.image_generation] == "stable_diffusion.json"
    assert set(paths.get_all_model_reference_file_paths().values()) == {None}
    paths.make_all_model_reference_folders()
    (base / "blip.json").write_text("{}")
    assert paths.get_all_model_reference_file_paths()[CATEGORY.blip] == base / "blip.json"
    assert paths.legacy_path.is_dir()


def test_paths_follow_an_explicit_base_path(tmp_path: Path) -> None:
    paths = load_paths(
        HordeModelReferenceSettings(base_path=str(tmp_path)), load_ai_horde_worker_settings({})
    )
    assert paths.base_path == tmp_path.resolve()


def test_paths_reject_an_unknown_category(tmp_path: Path) -> None:
    paths = load_paths(
        HordeModelReferenceSettings(base_path=str(tmp_path)), load_ai_horde_worker_settings({})
    )
    with pytest.raises(ValueError, match="not_a_category"):
        paths.get_model_reference_file_path("not_a_category")


@pytest.mark.parametrize(
    ("name", "stripped"),
    [
        ("koboldcpp/Broken-Tutu-24B", "Broken-Tutu-24B"),
        ("aphrodite/ReadyArt/Broken-Tutu-24B", "ReadyArt/Broken-Tutu-24B"),
        ("ReadyArt/Broken-Tutu-24B", "ReadyArt/Broken-Tutu-24B"),
    ],
)
def test_strip_backend_prefix(name: str, stripped: str) -> None:
    assert strip_backend_prefix(name) == stripped
    assert has_legacy_text_backend_prefix(name) == (name != stripped)


def test_model_name_variants() -> None:
    assert get_model_name_variants("ReadyArt/Broken-Tutu-24B") == [
        "ReadyArt/Broken-Tutu-24B",
        "aphrodite/ReadyArt/Broken-Tutu-24B",
        "koboldcpp/Broken-Tutu-24B",
    ]
    assert get_model_name_variants("Solo-7B") == ["Solo-7B", "aphrodite/Solo-7B", "koboldcpp/Solo-7B"]
    assert list(TEXT_LEGACY_BACKEND_PREFIXES.values()) == ["aphrodite/", "koboldcpp/"]


def test_a_backend_prefixed_name_is_refused_for_writes() -> None:
    validate_not_backend_prefixed("ReadyArt/Model")
    with pytest.raises(ValueError, match="backend prefix 'koboldcpp/'"):
        validate_not_backend_prefixed("koboldcpp/Model")


def test_image_baseline_records() -> None:
    record = ImageBaselineRecord(
        name="stable_diffusion_xl", native_resolution=1024, alternative_names=("SDXL",)
    )
    assert record.capabilities == BaselineCapabilities()
    assert record.horde_policy.kudos == 1 and record.horde_policy.batching == 1
    catalog = ImageBaselineCatalog.model_validate(
        {"baselines": {"sdxl": record.model_dump(mode="json")}, "metadata": {"revision": 2}}
    )
    assert catalog.baselines["sdxl"] == record
    assert catalog.metadata.schema_version == 1
    change = ImageBaselineChange(operation="upsert", name="sdxl", record=record)
    assert ImageBaselineChangeSet(title="SDXL", changes=(change,)).changes[0].record == record


def test_image_baseline_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one change"):
        ImageBaselineChangeSet(title="empty")
    with pytest.raises(msgspec.ValidationError, match="unknown_field"):
        ImageBaselineRecord.model_validate({"name": "x", "unknown_field": 1})
    with pytest.raises(msgspec.ValidationError, match="batching"):
        HordeBaselinePolicy.model_validate({"batching": 0})
    with pytest.raises(msgspec.ValidationError, match="name"):
        ImageBaselineRecord.model_validate({"name": ""})
    with pytest.raises(msgspec.ValidationError, match="operation"):
        ImageBaselineChange.model_validate({"operation": "rename", "name": "x"})
