"""Container-independent content hashes of model components (VAE, text encoders), without torch.

The hash answers "are these the same weights?" across files: it covers each tensor's canonical
name, dtype, shape and raw bytes, never the header's key order or its `__metadata__`, so the same
weights re-serialised hash the same and an fp16 copy of an fp32 VAE does not. The reference
tooling records these hashes; they are byte-for-byte those of upstream `horde_model_reference`
8.6.2 (`horde_model_reference.component_hash`).

The digest is sha256 over the tensors in ascending canonical-name order; for each tensor, with
every integer an unsigned 64-bit little-endian value: the UTF-8 name's length and bytes, the
dtype's length and bytes, the number of dimensions and each dimension, the data length, then the
data itself.

* **standalone** hashes take every tensor of a component file under its own key;
* **embedded** hashes select a component's tensors out of a monolithic checkpoint by key prefix
  and strip it: the VAE lives under `first_stage_model.` (SD1.5/SDXL) or `vae.` (Flux/Qwen), the
  text encoders under `conditioner.embedders.` (SDXL) or `cond_stage_model.` (SD1.5).

An embedded VAE's hash equals the standalone hash of the same VAE in its own file, and
`extract_embedded_vae` writes exactly such a file. Embedded text encoders are renamed by ComfyUI
at load, so their hash identifies them only among monolithic checkpoints and they are never
extracted. Only the byte ranges needed are read, so a remote file is hashed over HTTP `Range`
requests without downloading it. A pickle `.ckpt` is refused (`UnsupportedContainerError`): it
cannot be read without running its code.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from horde_model_reference.fileio import atomic_output
from horde_model_reference.logs import get_logger
from horde_model_reference.weights._safetensors import (
    ComponentTensor,
    HttpRangeRegionReader,
    LocalFileRegionReader,
    NoComponentTensorsError,
    ParsedHeader,
    RangeNotSupportedError,
    RegionReader,
    UnsupportedContainerError,
    iter_exact,
    parse_header,
    reader_source,
)
from horde_model_reference.weights.kinds import ComponentKind, component_kind_for_purpose

if TYPE_CHECKING:
    import httpx

__all__ = [
    "ComponentKind",
    "ComponentTensor",
    "HttpRangeRegionReader",
    "LocalFileRegionReader",
    "NoComponentTensorsError",
    "RangeNotSupportedError",
    "RegionReader",
    "UnsupportedContainerError",
    "component_kind_for_purpose",
    "extract_embedded_vae",
    "extract_embedded_vae_file",
    "hash_embedded_component",
    "hash_embedded_component_file",
    "hash_embedded_component_url",
    "hash_standalone_component",
    "hash_standalone_component_file",
    "hash_standalone_component_url",
]

_log = get_logger(__name__)

EMBEDDED_PREFIXES: dict[ComponentKind, tuple[str, ...]] = {
    ComponentKind.VAE: ("first_stage_model.", "vae."),
    ComponentKind.TEXT_ENCODERS: ("conditioner.embedders.", "cond_stage_model."),
}
"""The key prefixes a monolithic checkpoint stores each component under (the first that matches is
stripped). ComfyUI strips the VAE prefix without renaming, so the bare keys are a VAE file's."""

_U64 = struct.Struct("<Q")


def _select(
    source: str, tensors: tuple[ComponentTensor, ...], kind: ComponentKind | None
) -> list[ComponentTensor]:
    """The tensors of `kind` with their prefix stripped (`None`: every tensor under its own key).

    Two tensors that would share a canonical name make the hash ambiguous and are refused.
    """
    prefixes = EMBEDDED_PREFIXES[kind] if kind is not None else ("",)
    selected: dict[str, tuple[str, ComponentTensor]] = {}
    for tensor in tensors:
        key = tensor.canonical_name
        prefix = next((p for p in prefixes if key.startswith(p)), None)
        if prefix is None:
            continue
        name = key[len(prefix) :]
        if name in selected:
            raise UnsupportedContainerError(
                source, f"tensors {selected[name][0]!r} and {key!r} both become {name!r} without their prefix"
            )
        selected[name] = (key, msgspec.structs.replace(tensor, canonical_name=name))
    return [tensor for _, tensor in selected.values()]


def _select_component(source: str, header: ParsedHeader, kind: ComponentKind | None) -> list[ComponentTensor]:
    """`_select`, raising `NoComponentTensorsError` when nothing is selected."""
    tensors = _select(source, header.tensors, kind)
    if not tensors:
        raise NoComponentTensorsError(source, "standalone" if kind is None else kind.value)
    return tensors


def _fold_metadata(digest: Any, tensor: ComponentTensor) -> None:
    """Fold a tensor's name, dtype, shape and data length into `digest`, each length-prefixed."""
    name = tensor.canonical_name.encode("utf-8")
    dtype = tensor.dtype.encode("utf-8")
    digest.update(_U64.pack(len(name)) + name + _U64.pack(len(dtype)) + dtype + _U64.pack(len(tensor.shape)))
    digest.update(b"".join(_U64.pack(dim) for dim in tensor.shape))
    digest.update(_U64.pack(tensor.nbytes))


def _hash_tensors(reader: RegionReader, header: ParsedHeader, tensors: list[ComponentTensor]) -> str:
    """The content hash of `tensors` (see the module docstring), reading their bytes through `reader`."""
    digest = hashlib.sha256()
    for tensor in sorted(tensors, key=lambda t: t.canonical_name):
        _fold_metadata(digest, tensor)
        what = f"tensor {tensor.canonical_name!r}"
        for chunk in iter_exact(reader, header.data_start + tensor.begin, tensor.nbytes, what):
            digest.update(chunk)
    return digest.hexdigest()


def _kind(kind: ComponentKind | str) -> ComponentKind:
    return kind if isinstance(kind, ComponentKind) else ComponentKind(kind)


def hash_standalone_component(reader: RegionReader) -> str:
    """The content hash of a standalone component file (every tensor under its own key).

    Raises `UnsupportedContainerError` (not a usable safetensors file) or `NoComponentTensorsError`.
    """
    source = reader_source(reader)
    header = parse_header(reader)
    return _hash_tensors(reader, header, _select_component(source, header, None))


def hash_embedded_component(reader: RegionReader, kind: ComponentKind | str) -> str:
    """The content hash of `kind`'s tensors in a monolithic checkpoint, their prefix stripped.

    For the VAE it equals the standalone hash of the same VAE in its own file.
    Raises `UnsupportedContainerError` or `NoComponentTensorsError` (no tensors of `kind`).
    """
    source = reader_source(reader)
    header = parse_header(reader)
    return _hash_tensors(reader, header, _select_component(source, header, _kind(kind)))


def hash_standalone_component_file(path: str | Path) -> str:
    """`hash_standalone_component` of a local file."""
    with LocalFileRegionReader(path) as reader:
        return hash_standalone_component(reader)


def hash_embedded_component_file(path: str | Path, kind: ComponentKind | str) -> str:
    """`hash_embedded_component` of a local checkpoint."""
    with LocalFileRegionReader(path) as reader:
        return hash_embedded_component(reader, kind)


def hash_standalone_component_url(url: str, session: httpx.Client | None = None) -> str:
    """`hash_standalone_component` of a remote file, over HTTP `Range` requests.

    Also raises `RangeNotSupportedError` when the server ignores `Range`, and httpx's errors.
    """
    with HttpRangeRegionReader(url, session=session) as reader:
        return hash_standalone_component(reader)


def hash_embedded_component_url(
    url: str, kind: ComponentKind | str, session: httpx.Client | None = None
) -> str:
    """`hash_embedded_component` of a remote checkpoint, over HTTP `Range` requests."""
    with HttpRangeRegionReader(url, session=session) as reader:
        return hash_embedded_component(reader, kind)


class ExtractedHashMismatchError(UnsupportedContainerError):
    """The VAE read for extraction does not hash to the identity it was expected to have (the
    checkpoint changed since that identity was recorded); nothing was written."""

    def __init__(self, source: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(source, f"its VAE now hashes to {actual}, not the recorded {expected}")


def _extract_vae(
    reader: RegionReader, header: ParsedHeader, dest: Path, expected_hash: str | None = None
) -> str:
    """Write the embedded VAE to `dest` as a standalone file and return its content hash.

    Tensors go in canonical-name order, packed from offset 0, under a `json.dumps` header without
    `__metadata__` (the bytes upstream writes). The hash is computed from the bytes as they are
    written, which are exactly what the new file's standalone hash reads; with `expected_hash` a
    different hash aborts the write (`ExtractedHashMismatchError`). `dest` is replaced atomically.
    """
    source = reader_source(reader)
    ordered = sorted(_select_component(source, header, ComponentKind.VAE), key=lambda t: t.canonical_name)
    index: dict[str, object] = {}
    cursor = 0
    for tensor in ordered:
        index[tensor.canonical_name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [cursor, cursor + tensor.nbytes],
        }
        cursor += tensor.nbytes
    header_bytes = json.dumps(index).encode("utf-8")
    digest = hashlib.sha256()
    with atomic_output(dest) as out:
        out.write(_U64.pack(len(header_bytes)) + header_bytes)
        for tensor in ordered:
            _fold_metadata(digest, tensor)
            what = f"tensor {tensor.canonical_name!r}"
            for chunk in iter_exact(reader, header.data_start + tensor.begin, tensor.nbytes, what):
                digest.update(chunk)
                out.write(chunk)
        content_hash = digest.hexdigest()
        if expected_hash is not None and content_hash != expected_hash:
            raise ExtractedHashMismatchError(source, expected_hash, content_hash)
    _log.info("vae_extracted", source=source, dest=str(dest), content_hash=content_hash, bytes=cursor)
    return content_hash


def extract_embedded_vae(reader: RegionReader, dest_path: str | Path) -> str:
    """Extract a checkpoint's embedded VAE to a standalone safetensors file at `dest_path`.

    Returns the new file's standalone hash, which equals the checkpoint's embedded VAE hash. The
    file appears complete or not at all. Raises `UnsupportedContainerError` or
    `NoComponentTensorsError` (no VAE tensors); text encoders are never extracted.
    """
    return _extract_vae(reader, parse_header(reader), Path(dest_path))


def extract_embedded_vae_file(source_path: str | Path, dest_path: str | Path) -> str:
    """`extract_embedded_vae` from a local checkpoint."""
    with LocalFileRegionReader(source_path) as reader:
        return extract_embedded_vae(reader, dest_path)
