"""The safetensors container without torch: a bounds-checked header parser, byte-range readers for a
local file or an HTTP URL (`Range` requests), and a streaming atomic writer.

A safetensors file is an 8-byte little-endian header length, that many bytes of UTF-8 JSON mapping
each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}` (plus an optional
`__metadata__` entry), then the data segment the offsets index into. Nothing here trusts the
header: its length, every entry and every offset are checked against the file before a byte of
tensor data is read, and a failed check names the file and what was wrong.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from horde_model_reference.errors import ModelReferenceError

if TYPE_CHECKING:
    import httpx

__all__ = [
    "MAX_HEADER_BYTES",
    "ComponentTensor",
    "HttpRangeRegionReader",
    "LocalFileRegionReader",
    "NoComponentTensorsError",
    "ParsedHeader",
    "RangeNotSupportedError",
    "RegionReader",
    "UnsupportedContainerError",
    "iter_exact",
    "parse_header",
    "reader_source",
]

MAX_HEADER_BYTES = 100_000_000
"""The largest header accepted: the `safetensors` library's own limit, so every file it loads is
accepted here and a non-safetensors file (a pickle's zip signature read as a length) is refused
before anything is allocated."""

READ_CHUNK_BYTES = 8 * 1024 * 1024
_PREFIX_BYTES = 8
_BRIEF_CHARS = 80
_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", int: "number", float: "number"}


class UnsupportedContainerError(ModelReferenceError, ValueError):
    """The file is not a usable safetensors container (a pickle `.ckpt`, a truncated or corrupt file)."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: not a usable safetensors container: {reason}")


class NoComponentTensorsError(ModelReferenceError, LookupError):
    """The container holds no tensors of the requested component (`component` is its kind, or
    `"standalone"` for a component file with no tensors at all)."""

    def __init__(self, source: str, component: str) -> None:
        self.source = source
        self.component = component
        what = "tensors at all" if component == "standalone" else f"{component} tensors"
        super().__init__(f"{source}: the file holds no {what}")


class RangeNotSupportedError(ModelReferenceError, RuntimeError):
    """The server did not answer an HTTP `Range` request with the requested range (206).

    Reading tensor bytes out of a whole-file answer would hash the wrong bytes, so it is refused.
    """

    def __init__(self, url: str, status_code: int, offset: int, length: int, detail: str = "") -> None:
        self.url = url
        self.status_code = status_code
        self.offset = offset
        self.length = length
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"{url}: the server answered a request for bytes {offset}-{offset + length - 1} "
            f"with status {status_code} instead of 206 Partial Content{extra}; it does not serve byte ranges"
        )


class ComponentTensor(msgspec.Struct, frozen=True):
    """One tensor: its canonical name, dtype, shape, and where its bytes lie in the data segment."""

    canonical_name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    """Offset of the first byte, relative to the start of the data segment (after the header)."""
    end: int
    """Exclusive end offset, relative to the start of the data segment."""

    @property
    def nbytes(self) -> int:
        """The length of the tensor's data in bytes."""
        return self.end - self.begin


class ParsedHeader(msgspec.Struct, frozen=True):
    """A checked header: every tensor (named by its header key, in header order) and where data starts."""

    tensors: tuple[ComponentTensor, ...]
    data_start: int
    """Absolute offset of the data segment (8 + the header length)."""


class RegionReader(Protocol):
    """A source of byte ranges of a safetensors file (a local file or a URL).

    `iter_region` streams a range in bounded chunks (it may yield fewer bytes at the end of the
    file); `read` returns a small range at once.
    """

    def iter_region(self, offset: int, length: int) -> Iterator[bytes]:
        """Yield up to `length` bytes starting at absolute `offset`, in chunks."""
        ...

    def read(self, offset: int, length: int) -> bytes:
        """Return up to `length` bytes starting at absolute `offset`."""
        ...


def reader_source(reader: RegionReader) -> str:
    """The path or URL a reader reads (for error messages); its repr for a foreign reader."""
    source = getattr(reader, "source", None)
    return source if isinstance(source, str) else repr(reader)


def _reader_size(reader: RegionReader) -> int | None:
    """The total file size when the reader knows it (ours do once they have read anything)."""
    size = getattr(reader, "size", None)
    return size if isinstance(size, int) and not isinstance(size, bool) else None


class LocalFileRegionReader:
    """Byte ranges of a local file. A context manager: leaving it closes the file."""

    def __init__(self, path: str | Path) -> None:
        """Open `path` (raises `OSError` when it cannot be opened)."""
        self.source = str(path)
        self._handle = open(path, "rb")  # noqa: SIM115 - closed by close()/__exit__
        self.size: int | None = os.fstat(self._handle.fileno()).st_size

    def __enter__(self) -> LocalFileRegionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._handle.close()

    def iter_region(self, offset: int, length: int) -> Iterator[bytes]:
        """Yield up to `length` bytes from `offset` in chunks of at most 8 MiB."""
        self._handle.seek(offset)
        remaining = length
        while remaining > 0:
            chunk = self._handle.read(min(READ_CHUNK_BYTES, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

    def read(self, offset: int, length: int) -> bytes:
        """Return up to `length` bytes from `offset`."""
        self._handle.seek(offset)
        return self._handle.read(length)


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    """(first byte, total size or None for `*`) of a `Content-Range: bytes a-b/total` value."""
    if not value or not value.startswith("bytes "):
        return None
    span, _, total = value[len("bytes ") :].partition("/")
    first, _, _last = span.partition("-")
    try:
        return int(first), None if total.strip() == "*" else int(total)
    except ValueError:
        return None


class HttpRangeRegionReader:
    """Byte ranges of a remote file, one HTTP `Range` request per region (httpx, imported on use).

    `session` is an `httpx.Client` to reuse (its connection pool, proxies, headers); without one the
    reader owns a client and closes it on exit. Every request has `timeout` seconds per network
    wait and follows redirects (model hosts redirect to their CDN).
    """

    def __init__(self, url: str, session: httpx.Client | None = None, *, timeout: float = 30.0) -> None:
        """Bind to `url`; reuse `session` when given."""
        import httpx

        self.source = url
        self.size: int | None = None
        self._timeout = httpx.Timeout(timeout)
        self._client = session if session is not None else httpx.Client(timeout=self._timeout)
        self._owns_client = session is None

    def __enter__(self) -> HttpRangeRegionReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client when this reader created it."""
        if self._owns_client:
            self._client.close()

    def iter_region(self, offset: int, length: int) -> Iterator[bytes]:
        """Yield up to `length` bytes from `offset` (see the class docstring).

        Raises `RangeNotSupportedError` unless the server answers 206 with the requested start,
        `UnsupportedContainerError` on 416 (the file is shorter than the range), and
        `httpx.HTTPStatusError` on any other error status.
        """
        if length <= 0:
            return
        last = offset + length - 1
        headers = {"Range": f"bytes={offset}-{last}", "Accept-Encoding": "identity"}
        with self._client.stream(
            "GET", self.source, headers=headers, timeout=self._timeout, follow_redirects=True
        ) as response:
            if response.status_code == 416:
                raise UnsupportedContainerError(
                    self.source,
                    f"the file has no bytes {offset}-{last} (416): it is shorter than its header says",
                )
            if response.status_code != 206:
                response.raise_for_status()
                raise RangeNotSupportedError(self.source, response.status_code, offset, length)
            content_range = _content_range(response.headers.get("content-range"))
            if content_range is None or content_range[0] != offset:
                raise RangeNotSupportedError(
                    self.source,
                    206,
                    offset,
                    length,
                    f"Content-Range {response.headers.get('content-range')!r} is not the requested range",
                )
            if content_range[1] is not None:
                self.size = content_range[1]
            remaining = length
            for chunk in response.iter_bytes(READ_CHUNK_BYTES):
                piece = chunk[:remaining]
                remaining -= len(piece)
                if piece:
                    yield piece
                if remaining <= 0:
                    return

    def read(self, offset: int, length: int) -> bytes:
        """Return up to `length` bytes from `offset`."""
        return b"".join(self.iter_region(offset, length))


def iter_exact(reader: RegionReader, offset: int, length: int, what: str) -> Iterator[bytes]:
    """Stream exactly `length` bytes from `offset`; `UnsupportedContainerError` if the file ends first."""
    received = 0
    chunks = reader.iter_region(offset, length)
    try:
        for chunk in chunks:
            piece = chunk[: length - received]
            received += len(piece)
            if piece:
                yield piece
            if received >= length:
                return
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()
    if received < length:
        raise UnsupportedContainerError(
            reader_source(reader),
            f"{what}: expected {length} bytes at offset {offset}, the file ended after {received}",
        )


def _brief(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _BRIEF_CHARS else text[: _BRIEF_CHARS - 3] + "..."


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor_entry(source: str, name: str, entry: object) -> ComponentTensor:
    """Check one header entry and return it as a tensor named by its header key."""
    if not isinstance(entry, dict):
        raise UnsupportedContainerError(source, f"tensor {name!r}: its entry is a JSON {_json_type(entry)}")
    dtype = entry.get("dtype")
    if not isinstance(dtype, str) or not dtype:
        raise UnsupportedContainerError(source, f"tensor {name!r}: dtype {_brief(dtype)} is not a string")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(_is_count(dim) for dim in shape):
        raise UnsupportedContainerError(
            source, f"tensor {name!r}: shape {_brief(shape)} is not a list of non-negative integers"
        )
    offsets = entry.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_count(offset) for offset in offsets)
        or offsets[0] > offsets[1]
    ):
        raise UnsupportedContainerError(
            source,
            f"tensor {name!r}: data_offsets {_brief(offsets)} are not [begin, end] with 0 <= begin <= end",
        )
    return ComponentTensor(name, dtype, tuple(shape), offsets[0], offsets[1])


def _check_layout(source: str, tensors: list[ComponentTensor], data_length: int | None) -> None:
    """Every tensor inside the data segment, and no two non-empty tensors sharing a byte."""
    if data_length is not None:
        for tensor in tensors:
            if tensor.end > data_length:
                raise UnsupportedContainerError(
                    source,
                    f"tensor {tensor.canonical_name!r}: data_offsets [{tensor.begin}, {tensor.end}] run past "
                    f"the end of the data segment ({data_length} bytes)",
                )
    previous: ComponentTensor | None = None
    for tensor in sorted((t for t in tensors if t.nbytes), key=lambda t: (t.begin, t.end)):
        if previous is not None and tensor.begin < previous.end:
            raise UnsupportedContainerError(
                source,
                f"tensors {previous.canonical_name!r} [{previous.begin}, {previous.end}] and "
                f"{tensor.canonical_name!r} [{tensor.begin}, {tensor.end}] overlap",
            )
        previous = tensor


def parse_header(reader: RegionReader) -> ParsedHeader:
    """Read and check the header: raises `UnsupportedContainerError` naming the file and the fault."""
    source = reader_source(reader)
    prefix = reader.read(0, _PREFIX_BYTES)
    if len(prefix) < _PREFIX_BYTES:
        raise UnsupportedContainerError(
            source, f"the file is {len(prefix)} bytes long, shorter than the 8-byte header length"
        )
    (header_length,) = struct.unpack("<Q", prefix)
    if header_length == 0 or header_length > MAX_HEADER_BYTES:
        raise UnsupportedContainerError(
            source, f"header length {header_length} is implausible (limit {MAX_HEADER_BYTES} bytes)"
        )
    size = _reader_size(reader)
    data_start = _PREFIX_BYTES + header_length
    if size is not None and data_start > size:
        raise UnsupportedContainerError(
            source, f"header length {header_length} runs past the end of the {size}-byte file"
        )
    raw = b"".join(iter_exact(reader, _PREFIX_BYTES, header_length, "header"))
    header = _decode_header(source, raw)
    tensors = [_tensor_entry(source, name, entry) for name, entry in header.items() if name != "__metadata__"]
    _check_layout(source, tensors, None if size is None else size - data_start)
    return ParsedHeader(tuple(tensors), data_start)


def _decode_header(source: str, raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise UnsupportedContainerError(source, f"the header is not UTF-8 (byte {error.start})") from error
    except json.JSONDecodeError as error:
        raise UnsupportedContainerError(
            source, f"the header is not JSON ({error.msg} at character {error.pos})"
        ) from error
    except RecursionError as error:
        raise UnsupportedContainerError(source, "the header's JSON nests too deeply") from error
    if not isinstance(header, dict):
        raise UnsupportedContainerError(source, f"the header is a JSON {_json_type(header)}, not an object")
    return header
