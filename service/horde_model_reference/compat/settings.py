"""Mirrors the settings objects of `horde_model_reference` (8.6.2 `__init__`) and `path_consts`.

Upstream builds `horde_model_reference_settings`, `ai_horde_worker_settings` (haidra-core's
`AIHordeWorkerSettings`) and `horde_model_reference_paths` when the package is imported. Here they
are built from the environment the first time one is asked for (the package root resolves them
lazily), from this package's own settings (`settings.load_settings`), so importing the package
never reads the environment or fails on a bad variable.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor
from horde_model_reference.settings import (
    GithubRepoSettings,
    HordeModelReferenceSettings,
    ImageGithubRepoSettings,
    RedisSettings,
    ReplicateMode,
    TextGithubRepoSettings,
    load_settings,
)

__all__ = [
    "DEFAULT_SHOWCASE_FOLDER_NAME",
    "GITHUB_IMAGE_REPO_NAME",
    "GITHUB_REPO_BRANCH",
    "GITHUB_REPO_OWNER",
    "GITHUB_TEXT_REPO_NAME",
    "LEGACY_REFERENCE_FOLDER_NAME",
    "PACKAGE_NAME",
    "AIHordeCISettings",
    "AIHordeWorkerSettings",
    "GithubRepoSettings",
    "HordeModelReferencePaths",
    "HordeModelReferenceSettings",
    "ImageGithubRepoSettings",
    "RedisSettings",
    "ReplicateMode",
    "TextGithubRepoSettings",
    "load_ai_horde_ci_settings",
    "load_ai_horde_worker_settings",
    "load_paths",
]

PACKAGE_NAME = "horde_model_reference"
LEGACY_REFERENCE_FOLDER_NAME = "legacy"
"""The folder under the base path holding the legacy-format files."""
DEFAULT_SHOWCASE_FOLDER_NAME = "showcase"
META_FOLDER_NAME = "meta"
GITHUB_REPO_OWNER = GithubRepoSettings().owner
GITHUB_IMAGE_REPO_NAME = ImageGithubRepoSettings().name
GITHUB_TEXT_REPO_NAME = TextGithubRepoSettings().name
GITHUB_REPO_BRANCH = GithubRepoSettings().branch

_TRUE = frozenset({"1", "true", "yes", "on"})


class AIHordeCISettings(msgspec.Struct, kw_only=True, frozen=True):
    """The CI flags upstream takes from haidra-core (`HORDELIB_CI_ONGOING`, `HORDE_SDK_TESTING`, `AI_HORDE_TESTING`)."""

    hordelib_ci_ongoing: bool = False
    horde_sdk_testing: bool = False
    ai_horde_testing: bool = False


class AIHordeWorkerSettings(msgspec.Struct, kw_only=True, frozen=True):
    """The worker settings upstream takes from haidra-core (environment variables of the same names)."""

    aiworker_cache_home: str = "./models"
    """`AIWORKER_CACHE_HOME`: where a worker keeps models (the model reference lives under it)."""
    logs_folder: str = "./logs"
    """`LOGS_FOLDER`."""
    hf_home: str = "~/.cache/huggingface"
    """`HF_HOME`."""
    xdg_cache_home: str = "~/.cache/"
    """`XDG_CACHE_HOME`."""


def load_ai_horde_worker_settings(environ: dict[str, str] | None = None) -> AIHordeWorkerSettings:
    """`AIHordeWorkerSettings` from `environ` (default: the process environment)."""
    env = os.environ if environ is None else environ
    defaults = AIHordeWorkerSettings()
    return AIHordeWorkerSettings(
        **{
            name: env.get(name.upper(), getattr(defaults, name))
            for name in ("aiworker_cache_home", "logs_folder", "hf_home", "xdg_cache_home")
        }
    )


def load_ai_horde_ci_settings(environ: dict[str, str] | None = None) -> AIHordeCISettings:
    """`AIHordeCISettings` from `environ` (default: the process environment); true is 1/true/yes/on."""
    env = os.environ if environ is None else environ
    return AIHordeCISettings(
        **{
            name: env.get(name.upper(), "").strip().lower() in _TRUE
            for name in ("hordelib_ci_ongoing", "horde_sdk_testing", "ai_horde_testing")
        }
    )


class HordeModelReferencePaths:
    """Where the model reference files are on disk (upstream's `path_consts.HordeModelReferencePaths`)."""

    def __init__(self, settings: HordeModelReferenceSettings, worker: AIHordeWorkerSettings) -> None:
        self.base_path = (
            Path(settings.base_path).resolve()
            if settings.base_path
            else Path(worker.aiworker_cache_home).resolve() / PACKAGE_NAME
        )
        self.log_folder = Path(worker.logs_folder).resolve()
        self.model_reference_filenames: dict[MODEL_REFERENCE_CATEGORY, str] = {}
        self.legacy_model_reference_filenames: dict[MODEL_REFERENCE_CATEGORY, str] = {}
        for category in MODEL_REFERENCE_CATEGORY:
            descriptor = get_category_descriptor(category)
            self.model_reference_filenames[category] = descriptor.v2_filename
            self.legacy_model_reference_filenames[category] = (
                descriptor.legacy_filename or descriptor.v2_filename
            )

    @property
    def legacy_path(self) -> Path:
        """`<base>/legacy`."""
        return self.base_path / LEGACY_REFERENCE_FOLDER_NAME

    @property
    def showcase_path(self) -> Path:
        """`<base>/showcase`."""
        return self.base_path / DEFAULT_SHOWCASE_FOLDER_NAME

    @property
    def meta_path(self) -> Path:
        """`<base>/meta`."""
        return self.base_path / META_FOLDER_NAME

    def _file_name(self, category: MODEL_REFERENCE_CATEGORY | str) -> str:
        return self.model_reference_filenames[MODEL_REFERENCE_CATEGORY(category)]

    def get_model_reference_filename(
        self, model_reference_category: MODEL_REFERENCE_CATEGORY | str, *, base_path: str | Path | None = None
    ) -> str | Path:
        """The category's v2 file name; with `base_path`, its resolved full path."""
        if base_path:
            return self.get_model_reference_file_path(model_reference_category, base_path=base_path).resolve()
        return self._file_name(model_reference_category)

    def get_model_reference_file_path(
        self, model_reference_category: MODEL_REFERENCE_CATEGORY | str, *, base_path: str | Path | None = None
    ) -> Path:
        """`<base>/<v2 file name>`."""
        return Path(base_path if base_path is not None else self.base_path) / self._file_name(
            model_reference_category
        )

    def get_all_model_reference_file_paths(
        self, *, base_path: str | Path | None = None
    ) -> dict[MODEL_REFERENCE_CATEGORY, Path | None]:
        """Every category's v2 file path, or None where the file does not exist."""
        paths = {
            c: self.get_model_reference_file_path(c, base_path=base_path) for c in MODEL_REFERENCE_CATEGORY
        }
        return {c: (p if p.exists() else None) for c, p in paths.items()}

    def get_legacy_model_reference_file_path(
        self, model_reference_category: MODEL_REFERENCE_CATEGORY | str, *, base_path: str | Path | None = None
    ) -> Path:
        """`<base>/legacy/<legacy file name>`."""
        name = self.legacy_model_reference_filenames[MODEL_REFERENCE_CATEGORY(model_reference_category)]
        return (
            Path(base_path if base_path is not None else self.base_path) / LEGACY_REFERENCE_FOLDER_NAME / name
        )

    def make_all_model_reference_folders(self) -> None:
        """Create the base, legacy, meta and log folders."""
        for folder in (self.base_path, self.legacy_path, self.meta_path, self.log_folder):
            folder.mkdir(parents=True, exist_ok=True)


def load_paths(
    settings: HordeModelReferenceSettings | None = None, worker: AIHordeWorkerSettings | None = None
) -> HordeModelReferencePaths:
    """The paths for `settings` and `worker` (default: both from the environment)."""
    return HordeModelReferencePaths(settings or load_settings(), worker or load_ai_horde_worker_settings())


_SINGLETONS: dict[str, object] = {}


def process_settings() -> dict[str, object]:
    """The process-wide objects upstream builds at import, built here on first use.

    `horde_model_reference_settings`, `ai_horde_worker_settings`, `ai_horde_ci_settings`,
    `horde_model_reference_paths`,
    `BASE_PATH` and `LEGACY_REFERENCE_FOLDER` (the last two are the pre-8.x names of the paths).
    """
    if not _SINGLETONS:
        settings = load_settings()
        worker = load_ai_horde_worker_settings()
        paths = HordeModelReferencePaths(settings, worker)
        _SINGLETONS.update(
            horde_model_reference_settings=settings,
            ai_horde_worker_settings=worker,
            ai_horde_ci_settings=load_ai_horde_ci_settings(),
            horde_model_reference_paths=paths,
            BASE_PATH=paths.base_path,
            LEGACY_REFERENCE_FOLDER=paths.legacy_path,
        )
    return _SINGLETONS


def lazy_attribute(module: str, name: str) -> object:
    """A module `__getattr__` body: the process-wide object `name`, or `AttributeError` as Python's."""
    objects = process_settings() if name in _LAZY_NAMES else {}
    if name not in objects:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    return objects[name]


_LAZY_NAMES = frozenset(
    {
        "horde_model_reference_settings",
        "ai_horde_worker_settings",
        "ai_horde_ci_settings",
        "horde_model_reference_paths",
        "BASE_PATH",
        "LEGACY_REFERENCE_FOLDER",
    }
)
