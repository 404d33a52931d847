"""Per-checkpoint component-identity sidecars: which shareable components a monolithic checkpoint
embeds, by content hash and size, cached beside it as `<checkpoint file name>.component-identity.json`.

The file is interchangeable with upstream `horde_model_reference` 8.6.2's
(`horde_model_reference.component_identity`): same name, same keys, schema version 1, and the same
staleness rule (a sidecar whose recorded `ckpt_size_bytes` differs from the checkpoint's size is
stale). A VAE extracted next to it is content-addressed (`vae-<first 16 hex of its hash>.safetensors`),
so checkpoints embedding the same VAE share one file. Computing a sidecar reads the safetensors
header and the component tensors only (see `component_hash`); every write is atomic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import msgspec

from horde_model_reference.compat._pydantic_style import PydanticStyle
from horde_model_reference.fileio import atomic_write_bytes
from horde_model_reference.logs import get_logger
from horde_model_reference.weights._safetensors import (
    LocalFileRegionReader,
    NoComponentTensorsError,
    ParsedHeader,
    parse_header,
)
from horde_model_reference.weights.component_hash import (
    ExtractedHashMismatchError,
    _extract_vae,
    _hash_tensors,
    _select,
)
from horde_model_reference.weights.kinds import ComponentKind

__all__ = [
    "ComponentIdentitySidecar",
    "EmbeddedComponentIdentity",
    "ensure_sidecar",
    "read_sidecar",
    "sidecar_path_for",
]

_log = get_logger(__name__)

SIDECAR_SUFFIX: Final = ".component-identity.json"
SCHEMA_VERSION: Final = 1
_MAX_SIDECAR_BYTES: Final = 1024 * 1024
"""A sidecar is a few hundred bytes; a larger file is refused unread, as corrupt."""

_ContentHash = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
_ExtractedName = Annotated[str, msgspec.Meta(pattern=r"^vae-[0-9a-f]{16}\.safetensors$")]
_ByteCount = Annotated[int, msgspec.Meta(ge=0)]


class EmbeddedComponentIdentity(msgspec.Struct, PydanticStyle, frozen=True, kw_only=True):
    """One component (VAE or text encoders) embedded in a checkpoint."""

    content_hash: _ContentHash
    """Its embedded content hash (`component_hash.hash_embedded_component`)."""
    tensor_bytes: _ByteCount
    """The total length of its tensors' data."""
    extracted_file_name: _ExtractedName | None = None
    """VAE only: the standalone copy's file name in the extraction folder, when one was made."""


class ComponentIdentitySidecar(msgspec.Struct, PydanticStyle, frozen=True, kw_only=True):
    """The cached identity of one monolithic checkpoint's embedded components."""

    schema_version: int = SCHEMA_VERSION
    ckpt_file_name: str
    """The checkpoint's file name (no directory), for reading the sidecar on its own."""
    ckpt_size_bytes: _ByteCount
    """The checkpoint's size when the sidecar was computed: a different size makes it stale."""
    total_tensor_bytes: _ByteCount
    """The data length of every tensor in the checkpoint."""
    embedded: dict[str, EmbeddedComponentIdentity] = msgspec.field(default_factory=dict)
    """By `ComponentKind` value (`"vae"`, `"text_encoders"`); a kind the checkpoint lacks is absent."""

    @property
    def residual_tensor_bytes(self) -> int:
        """Tensor bytes outside the embedded components (the UNet and the rest)."""
        return self.total_tensor_bytes - sum(c.tensor_bytes for c in self.embedded.values())


def sidecar_path_for(ckpt_path: str | Path) -> Path:
    """The sidecar beside `ckpt_path`: its full file name plus `.component-identity.json`."""
    path = Path(ckpt_path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def _extracted_name(content_hash: str) -> str:
    return f"vae-{content_hash[:16]}.safetensors"


def _load(ckpt_path: Path, ckpt_size: int) -> ComponentIdentitySidecar | None:
    """The sidecar when it exists, decodes, has schema version 1 and records `ckpt_size`; else None
    with the reason logged."""
    path = sidecar_path_for(ckpt_path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(_MAX_SIDECAR_BYTES + 1)
    except FileNotFoundError:
        _log.debug("component_identity_sidecar_missing", path=str(path))
        return None
    except OSError as error:
        _log.warning("component_identity_sidecar_unreadable", path=str(path), error=str(error))
        return None
    if len(raw) > _MAX_SIDECAR_BYTES:
        _log.warning("component_identity_sidecar_corrupt", path=str(path), error="larger than 1 MiB")
        return None
    try:
        sidecar = msgspec.json.decode(raw, type=ComponentIdentitySidecar)
    except msgspec.DecodeError as error:
        _log.warning("component_identity_sidecar_corrupt", path=str(path), error=str(error))
        return None
    if sidecar.schema_version != SCHEMA_VERSION:
        _log.warning(
            "component_identity_sidecar_unsupported",
            path=str(path),
            schema_version=sidecar.schema_version,
            supported=SCHEMA_VERSION,
        )
        return None
    if sidecar.ckpt_size_bytes != ckpt_size:
        _log.warning(
            "component_identity_sidecar_stale",
            path=str(path),
            recorded_size=sidecar.ckpt_size_bytes,
            size=ckpt_size,
        )
        return None
    return sidecar


def read_sidecar(ckpt_path: str | Path) -> ComponentIdentitySidecar | None:
    """The cached sidecar of `ckpt_path`, or None when it is missing, corrupt or stale (reason logged).

    Never computes anything: `ensure_sidecar` does.
    """
    ckpt = Path(ckpt_path)
    try:
        size = ckpt.stat().st_size
    except OSError as error:
        _log.warning("component_identity_checkpoint_unreadable", path=str(ckpt), error=str(error))
        return None
    return _load(ckpt, size)


def _write(ckpt_path: Path, sidecar: ComponentIdentitySidecar) -> None:
    path = sidecar_path_for(ckpt_path)
    atomic_write_bytes(path, msgspec.json.format(msgspec.json.encode(sidecar), indent=2))
    _log.info("component_identity_sidecar_written", path=str(path), embedded=sorted(sidecar.embedded))


def _present(path: Path) -> bool:
    return path.is_file() and path.stat().st_size > 0


def _materialise_vae(
    reader: LocalFileRegionReader, header: ParsedHeader, content_hash: str, folder: Path
) -> str:
    """Extract the VAE as `vae-<hash16>.safetensors` in `folder` unless a non-empty copy is there."""
    dest = folder / _extracted_name(content_hash)
    if not _present(dest):
        _extract_vae(reader, header, dest, expected_hash=content_hash)
    return dest.name


def _compute(ckpt_path: Path, size: int, extraction_dir: Path | None) -> ComponentIdentitySidecar:
    """Read the checkpoint once: every embedded component's hash and size, the VAE extracted into
    `extraction_dir` when given."""
    embedded: dict[str, EmbeddedComponentIdentity] = {}
    with LocalFileRegionReader(ckpt_path) as reader:
        header = parse_header(reader)
        for kind in ComponentKind:
            tensors = _select(reader.source, header.tensors, kind)
            if not tensors:
                continue
            content_hash = _hash_tensors(reader, header, tensors)
            extracted = None
            if kind is ComponentKind.VAE and extraction_dir is not None:
                extracted = _materialise_vae(reader, header, content_hash, extraction_dir)
            embedded[kind.value] = EmbeddedComponentIdentity(
                content_hash=content_hash,
                tensor_bytes=sum(t.nbytes for t in tensors),
                extracted_file_name=extracted,
            )
    return ComponentIdentitySidecar(
        ckpt_file_name=ckpt_path.name,
        ckpt_size_bytes=size,
        total_tensor_bytes=sum(t.nbytes for t in header.tensors),
        embedded=embedded,
    )


def _with_extracted_vae(
    ckpt_path: Path, sidecar: ComponentIdentitySidecar, extraction_dir: Path
) -> ComponentIdentitySidecar | None:
    """`sidecar` with its VAE extracted and named; the same object when nothing changed; None when
    the checkpoint no longer holds the recorded VAE (changed in place at the same size)."""
    vae = sidecar.embedded[ComponentKind.VAE.value]
    name = _extracted_name(vae.content_hash)
    dest = extraction_dir / name
    present = _present(dest)
    if present and vae.extracted_file_name == name:
        return sidecar
    if not present:
        with LocalFileRegionReader(ckpt_path) as reader:
            try:
                _extract_vae(reader, parse_header(reader), dest, expected_hash=vae.content_hash)
            except (ExtractedHashMismatchError, NoComponentTensorsError) as error:
                _log.warning("component_identity_sidecar_outdated", path=str(ckpt_path), error=str(error))
                return None
        if vae.extracted_file_name == name:
            return sidecar
    embedded = {
        **sidecar.embedded,
        ComponentKind.VAE.value: msgspec.structs.replace(vae, extracted_file_name=name),
    }
    return msgspec.structs.replace(sidecar, embedded=embedded)


def ensure_sidecar(
    ckpt_path: str | Path, *, extract_vae: bool = False, extraction_dir: str | Path | None = None
) -> ComponentIdentitySidecar:
    """`ckpt_path`'s sidecar, computed and written when missing, corrupt or stale.

    A fresh sidecar is returned as is. With `extract_vae`, the embedded VAE is also made available
    as `extraction_dir/vae-<hash16>.safetensors` (extracted when missing) and the sidecar records
    its name; a checkpoint without a VAE has nothing to extract.

    Raises `ValueError` when `extract_vae` is set without `extraction_dir`,
    `UnsupportedContainerError` when the checkpoint is not a usable safetensors file (a pickle
    `.ckpt`), and `OSError` when it cannot be read or the files cannot be written.
    """
    if extract_vae and extraction_dir is None:
        raise ValueError("ensure_sidecar: extract_vae=True needs an extraction_dir to write the VAE into")
    ckpt = Path(ckpt_path)
    folder = Path(extraction_dir) if extract_vae and extraction_dir is not None else None
    size = ckpt.stat().st_size
    existing = _load(ckpt, size)
    if existing is not None:
        if folder is None or ComponentKind.VAE.value not in existing.embedded:
            return existing
        updated = _with_extracted_vae(ckpt, existing, folder)
        if updated is existing:
            return existing
        if updated is not None:
            _write(ckpt, updated)
            return updated
    sidecar = _compute(ckpt, size, folder)
    _write(ckpt, sidecar)
    return sidecar
