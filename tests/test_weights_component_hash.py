"""weights.component_hash: container-independent component hashes, VAE extraction, bad containers,
HTTP range reads against a local server, and hashes pinned to upstream 8.6.2's values."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import struct
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from horde_model_reference import component_hash as root_component_hash
from horde_model_reference.weights.component_hash import (
    ComponentKind,
    HttpRangeRegionReader,
    LocalFileRegionReader,
    NoComponentTensorsError,
    RangeNotSupportedError,
    UnsupportedContainerError,
    component_kind_for_purpose,
    extract_embedded_vae,
    extract_embedded_vae_file,
    hash_embedded_component,
    hash_embedded_component_file,
    hash_embedded_component_url,
    hash_standalone_component,
    hash_standalone_component_file,
    hash_standalone_component_url,
)

# --- deterministic synthetic safetensors files (also run through upstream for the golden values) ---

Tensors = Mapping[str, tuple[str, list[int], bytes]]


def payload(seed: int, length: int) -> bytes:
    """`length` deterministic bytes."""
    return bytes((seed * 31 + index * 7) % 256 for index in range(length))


def build_safetensors(
    tensors: Tensors, *, metadata: dict[str, str] | None = None, order: list[str] | None = None
) -> bytes:
    """A safetensors file: tensors laid out in `order` (default: mapping order)."""
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    data = b""
    for name in order if order is not None else list(tensors):
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    encoded = json.dumps(header).encode("utf-8")
    return struct.pack("<Q", len(encoded)) + encoded + data


def prefixed(prefix: str, tensors: Tensors) -> dict[str, tuple[str, list[int], bytes]]:
    return {prefix + name: value for name, value in tensors.items()}


VAE: Tensors = {
    "encoder.conv_in.weight": ("F16", [4, 3], payload(1, 24)),
    "encoder.conv_in.bias": ("F16", [4], payload(2, 8)),
    "decoder.conv_out.weight": ("F32", [3, 2], payload(3, 24)),
    "decoder.scale": ("F32", [], payload(4, 4)),
    "decoder.empty": ("F32", [0], b""),
    "encoder.n\u00e4me": ("BF16", [2], payload(5, 4)),
}
TEXT_ENCODERS: Tensors = {
    "0.transformer.text_model.embeddings.weight": ("F16", [2, 4], payload(6, 16)),
    "1.model.ln_final.weight": ("F32", [4], payload(7, 16)),
}
UNET: Tensors = {
    "model.diffusion_model.input_blocks.0.0.weight": ("F16", [8, 8], payload(8, 128)),
    "model.diffusion_model.out.2.bias": ("F32", [4], payload(9, 16)),
}


def sdxl_checkpoint() -> bytes:
    """UNet, text encoders under `conditioner.embedders.`, VAE under `first_stage_model.`."""
    return build_safetensors(
        {
            **UNET,
            **prefixed("conditioner.embedders.", TEXT_ENCODERS),
            **prefixed("first_stage_model.", VAE),
        },
        metadata={"format": "pt"},
    )


def sd15_checkpoint() -> bytes:
    """Text encoders under `cond_stage_model.`, VAE under `first_stage_model.`."""
    return build_safetensors(
        {**prefixed("first_stage_model.", VAE), **prefixed("cond_stage_model.", TEXT_ENCODERS), **UNET}
    )


def flux_style_checkpoint() -> bytes:
    """VAE under `vae.`, no text encoders."""
    return build_safetensors({**UNET, **prefixed("vae.", VAE)})


def standalone_vae() -> bytes:
    return build_safetensors(VAE)


# Golden values, obtained by running upstream horde-model-reference 8.6.2 (`pip install
# horde-model-reference==8.6.2` in a Python 3.12 venv) on the files the builders above produce (a script
# pulled these builder functions out of this file with `ast` and exec'd them there):
# hash_standalone_component_file(standalone_vae()), hash_embedded_component_file(<each checkpoint>, kind),
# and the sha256 of the file upstream's extract_embedded_vae_file(sdxl_checkpoint()) wrote.
UPSTREAM_VAE_HASH = "882628c06d47d125e50107be35e913d6a1d8bd6ddad129d47f92ff73ec6797e4"
# SDXL and SD1.5 store the same bare text-encoder keys here under different prefixes: one value.
UPSTREAM_TEXT_ENCODERS_HASH = "fbe961a3ad92259d34941b5484b7b2323d04a7504b2ab29c0a7e9a455d274502"
UPSTREAM_EXTRACTED_VAE_FILE_SHA256 = "d5367d330c38c1042f6bafc7f5749a27a68cb207595afd1e49468356a20a7cbd"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# --- hashes ---


def test_hashes_match_upstream(tmp_path: Path) -> None:
    assert (
        hash_standalone_component_file(write(tmp_path / "vae.safetensors", standalone_vae()))
        == UPSTREAM_VAE_HASH
    )
    sdxl = write(tmp_path / "sdxl.safetensors", sdxl_checkpoint())
    sd15 = write(tmp_path / "sd15.safetensors", sd15_checkpoint())
    flux = write(tmp_path / "flux.safetensors", flux_style_checkpoint())
    assert hash_embedded_component_file(sdxl, ComponentKind.VAE) == UPSTREAM_VAE_HASH
    assert hash_embedded_component_file(sd15, ComponentKind.VAE) == UPSTREAM_VAE_HASH
    assert hash_embedded_component_file(flux, ComponentKind.VAE) == UPSTREAM_VAE_HASH
    assert hash_embedded_component_file(sdxl, ComponentKind.TEXT_ENCODERS) == UPSTREAM_TEXT_ENCODERS_HASH
    assert hash_embedded_component_file(sd15, ComponentKind.TEXT_ENCODERS) == UPSTREAM_TEXT_ENCODERS_HASH


def test_hash_ignores_key_order_and_metadata(tmp_path: Path) -> None:
    reordered = build_safetensors(
        VAE, metadata={"format": "pt", "note": "other"}, order=sorted(VAE, reverse=True)
    )
    first = hash_standalone_component_file(write(tmp_path / "a.safetensors", standalone_vae()))
    second = hash_standalone_component_file(write(tmp_path / "b.safetensors", reordered))
    assert first == second == UPSTREAM_VAE_HASH


def test_hash_ignores_header_padding(tmp_path: Path) -> None:
    raw = standalone_vae()
    (length,) = struct.unpack("<Q", raw[:8])
    padded = struct.pack("<Q", length + 6) + raw[8 : 8 + length] + b" " * 6 + raw[8 + length :]
    assert hash_standalone_component_file(write(tmp_path / "p.safetensors", padded)) == UPSTREAM_VAE_HASH


@pytest.mark.parametrize(
    ("name", "change"),
    [
        ("dtype", ("F16", [4, 3], payload(1, 24))),
        ("shape", ("F32", [12], payload(1, 24))),
        ("bytes", ("F32", [4, 3], payload(1, 23) + b"\xff")),
        ("length", ("F32", [4, 3], payload(1, 28))),
    ],
)
def test_any_tensor_change_changes_the_hash(
    tmp_path: Path, name: str, change: tuple[str, list[int], bytes]
) -> None:
    base: dict[str, tuple[str, list[int], bytes]] = {
        "w": ("F32", [4, 3], payload(1, 24)),
        "b": ("F32", [2], b"\0" * 8),
    }
    changed = {**base, "w": change}
    assert hash_standalone_component_file(write(tmp_path / "a", build_safetensors(base))) != (
        hash_standalone_component_file(write(tmp_path / "b", build_safetensors(changed)))
    ), name


def test_tensor_names_are_part_of_the_hash(tmp_path: Path) -> None:
    one = build_safetensors({"a": ("F32", [1], b"1234")})
    other = build_safetensors({"b": ("F32", [1], b"1234")})
    assert hash_standalone_component_file(write(tmp_path / "1", one)) != hash_standalone_component_file(
        write(tmp_path / "2", other)
    )


def test_text_encoder_prefixes_are_stripped(tmp_path: Path) -> None:
    bare = hash_standalone_component_file(
        write(tmp_path / "te.safetensors", build_safetensors(TEXT_ENCODERS))
    )
    sdxl = write(tmp_path / "sdxl.safetensors", sdxl_checkpoint())
    assert hash_embedded_component_file(sdxl, ComponentKind.TEXT_ENCODERS) == bare
    assert hash_embedded_component_file(sdxl, "text_encoders") == bare
    # SD1.5's text-encoder keys hash differently only because their bare names differ from SDXL's.
    sd15_layout = build_safetensors(prefixed("cond_stage_model.", TEXT_ENCODERS))
    assert (
        hash_embedded_component_file(write(tmp_path / "sd15", sd15_layout), ComponentKind.TEXT_ENCODERS)
        == bare
    )


def test_vae_and_text_encoders_are_told_apart(tmp_path: Path) -> None:
    sdxl = write(tmp_path / "sdxl.safetensors", sdxl_checkpoint())
    assert hash_embedded_component_file(sdxl, ComponentKind.VAE) != hash_embedded_component_file(
        sdxl, ComponentKind.TEXT_ENCODERS
    )


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    sdxl = write(tmp_path / "sdxl.safetensors", sdxl_checkpoint())
    with pytest.raises(ValueError, match="unet"):
        hash_embedded_component_file(sdxl, "unet")


def test_component_kind_for_purpose() -> None:
    assert component_kind_for_purpose("vae") is ComponentKind.VAE
    assert component_kind_for_purpose("text_encoder") is ComponentKind.TEXT_ENCODERS
    assert component_kind_for_purpose("checkpoint") is None
    assert component_kind_for_purpose(None) is None


# --- extraction ---


def test_extracted_vae_hashes_as_embedded_and_matches_upstream_bytes(tmp_path: Path) -> None:
    sdxl = write(tmp_path / "sdxl.safetensors", sdxl_checkpoint())
    dest = tmp_path / "out" / "vae.safetensors"
    returned = extract_embedded_vae_file(sdxl, dest)
    assert returned == hash_embedded_component_file(sdxl, ComponentKind.VAE)
    assert hash_standalone_component_file(dest) == returned == UPSTREAM_VAE_HASH
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == UPSTREAM_EXTRACTED_VAE_FILE_SHA256
    assert sorted(p.name for p in dest.parent.iterdir()) == ["vae.safetensors"]


def test_extraction_from_vae_prefix_and_replaces_existing_file(tmp_path: Path) -> None:
    flux = write(tmp_path / "flux.safetensors", flux_style_checkpoint())
    dest = write(tmp_path / "vae.safetensors", b"old")
    with LocalFileRegionReader(flux) as reader:
        assert extract_embedded_vae(reader, dest) == UPSTREAM_VAE_HASH
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == UPSTREAM_EXTRACTED_VAE_FILE_SHA256


def test_extraction_without_vae_writes_nothing(tmp_path: Path) -> None:
    ckpt = write(tmp_path / "unet.safetensors", build_safetensors(UNET))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(NoComponentTensorsError, match="no vae tensors") as caught:
        extract_embedded_vae_file(ckpt, out / "vae.safetensors")
    assert caught.value.component == "vae"
    assert caught.value.source == str(ckpt)
    assert list(out.iterdir()) == []


class _ShortReader:
    """A reader without a known size whose data ends early: the failure shows mid-extraction."""

    def __init__(self, data: bytes, cut: int) -> None:
        self._data = data
        self._cut = cut
        self.source = "short-reader"

    def iter_region(self, offset: int, length: int) -> Iterator[bytes]:
        yield self._data[offset : min(offset + length, self._cut)]

    def read(self, offset: int, length: int) -> bytes:
        return self._data[offset : min(offset + length, self._cut)]


def test_interrupted_extraction_leaves_destination_untouched(tmp_path: Path) -> None:
    data = sdxl_checkpoint()
    dest = write(tmp_path / "vae.safetensors", b"previous")
    reader = _ShortReader(data, len(data) - 10)
    with pytest.raises(UnsupportedContainerError, match="the file ended after") as caught:
        extract_embedded_vae(reader, dest)
    assert caught.value.source == "short-reader"
    assert dest.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae.safetensors"]


# --- bad containers ---


def _pickle_ckpt() -> bytes:
    """A torch-style `.ckpt`: a zip archive holding a pickle."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"state_dict": {"w": [1.0, 2.0]}}))
    return buffer.getvalue()


def _header(obj: object) -> bytes:
    encoded = json.dumps(obj).encode()
    return struct.pack("<Q", len(encoded)) + encoded


BAD_CONTAINERS: dict[str, tuple[bytes, str]] = {
    "empty file": (b"", "0 bytes long"),
    "shorter than the length": (b"\x05\x00\x00", "3 bytes long"),
    "pickle ckpt (zip)": (_pickle_ckpt(), "implausible"),
    "raw pickle": (pickle.dumps({"w": 1}) + b"\0" * 16, "implausible"),
    "huge header length": (struct.pack("<Q", 2**40) + b"{}", f"header length {2**40} is implausible"),
    "zero header length": (struct.pack("<Q", 0) + b"{}", "header length 0 is implausible"),
    "header past the end": (
        struct.pack("<Q", 500) + b"{}",
        "header length 500 runs past the end of the 10-byte file",
    ),
    "non-JSON header": (struct.pack("<Q", 8) + b"not json", "not JSON"),
    "non-UTF-8 header": (struct.pack("<Q", 4) + b'"\xff"x', "not UTF-8"),
    "array header": (_header([1, 2]), "is a JSON array, not an object"),
    "string header": (_header("x"), "is a JSON string, not an object"),
    "entry not an object": (_header({"w": 5}), "tensor 'w': its entry is a JSON number"),
    "dtype missing": (_header({"w": {"shape": [1], "data_offsets": [0, 0]}}), "tensor 'w': dtype None"),
    "shape not a list": (
        _header({"w": {"dtype": "F32", "shape": "4", "data_offsets": [0, 0]}}),
        "tensor 'w': shape '4' is not a list",
    ),
    "negative dimension": (
        _header({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}),
        "tensor 'w': shape [-1]",
    ),
    "negative offset": (
        _header({"w": {"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]}}),
        "tensor 'w': data_offsets [-4, 0]",
    ),
    "reversed offsets": (
        _header({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}) + b"\0" * 4,
        "tensor 'w': data_offsets [4, 0]",
    ),
    "three offsets": (
        _header({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}) + b"\0" * 8,
        "tensor 'w': data_offsets [0, 4, 8]",
    ),
    "offsets outside the file": (
        _header({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}) + b"\0" * 8,
        "tensor 'w': data_offsets [0, 16] run past the end of the data segment (8 bytes)",
    ),
    "truncated data": (sdxl_checkpoint()[:-3], "run past the end of the data segment"),
    "overlapping tensors": (
        _header(
            {
                "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
            }
        )
        + b"\0" * 12,
        "tensors 'a' [0, 8] and 'b' [4, 12] overlap",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTAINERS))
def test_bad_containers_are_refused_with_the_reason(tmp_path: Path, case: str) -> None:
    data, reason = BAD_CONTAINERS[case]
    path = write(tmp_path / "bad.ckpt", data)
    for call in (
        lambda: hash_standalone_component_file(path),
        lambda: hash_embedded_component_file(path, ComponentKind.VAE),
        lambda: extract_embedded_vae_file(path, tmp_path / "out" / "vae.safetensors"),
    ):
        with pytest.raises(UnsupportedContainerError) as caught:
            call()
        assert reason in str(caught.value)
        assert str(path) in str(caught.value)
        assert caught.value.source == str(path)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_ambiguous_prefix_stripping_is_refused(tmp_path: Path) -> None:
    both = build_safetensors({"first_stage_model.x": ("F32", [1], b"1234"), "vae.x": ("F32", [1], b"5678")})
    path = write(tmp_path / "both.safetensors", both)
    with pytest.raises(UnsupportedContainerError, match="'first_stage_model.x' and 'vae.x' both become 'x'"):
        hash_embedded_component_file(path, ComponentKind.VAE)


def test_files_without_tensors(tmp_path: Path) -> None:
    only_metadata = write(tmp_path / "m.safetensors", _header({"__metadata__": {"format": "pt"}}))
    with pytest.raises(NoComponentTensorsError, match="holds no tensors at all") as caught:
        hash_standalone_component_file(only_metadata)
    assert caught.value.component == "standalone"
    unet = write(tmp_path / "unet.safetensors", build_safetensors(UNET))
    with pytest.raises(NoComponentTensorsError, match="no text_encoders tensors"):
        hash_embedded_component_file(unet, ComponentKind.TEXT_ENCODERS)
    assert isinstance(caught.value, LookupError)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        hash_standalone_component_file(tmp_path / "absent.safetensors")


# --- HTTP range reads ---


class _Files:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ignore_range = False
        self.bytes_served = 0
        self.lock = threading.Lock()


def _handler(state: _Files) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/sdxl.safetensors")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = state.files.get(self.path)
            if data is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            range_header = self.headers.get("Range")
            if state.ignore_range or not range_header:
                self._send(200, data, {})
                return
            first_text, _, last_text = range_header.removeprefix("bytes=").partition("-")
            first, last = int(first_text), min(int(last_text), len(data) - 1)
            if first >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._send(206, data[first : last + 1], {"Content-Range": f"bytes {first}-{last}/{len(data)}"})

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                return
            with state.lock:
                state.bytes_served += len(body)

    return Handler


@pytest.fixture
def http_files() -> Iterator[tuple[str, _Files]]:
    state = _Files()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _big_checkpoint() -> bytes:
    """An SDXL-like checkpoint whose UNet dwarfs the VAE, to show only the VAE's bytes are fetched."""
    return build_safetensors(
        {"model.diffusion_model.big": ("U8", [1 << 20], bytes(1 << 20)), **prefixed("vae.", VAE)}
    )


def test_url_hashes_equal_file_hashes_and_read_only_the_component(http_files: tuple[str, _Files]) -> None:
    base, state = http_files
    big = _big_checkpoint()
    state.files = {"/sdxl.safetensors": sdxl_checkpoint(), "/vae.safetensors": standalone_vae(), "/big": big}
    assert hash_standalone_component_url(f"{base}/vae.safetensors") == UPSTREAM_VAE_HASH
    assert hash_embedded_component_url(f"{base}/sdxl.safetensors", ComponentKind.VAE) == UPSTREAM_VAE_HASH
    assert (
        hash_embedded_component_url(f"{base}/sdxl.safetensors", "text_encoders")
        == UPSTREAM_TEXT_ENCODERS_HASH
    )
    state.bytes_served = 0
    assert hash_embedded_component_url(f"{base}/big", ComponentKind.VAE) == UPSTREAM_VAE_HASH
    assert state.bytes_served < 10_000 < len(big)


def test_url_with_a_caller_client_follows_redirects_and_leaves_it_open(
    http_files: tuple[str, _Files],
) -> None:
    base, state = http_files
    state.files = {"/sdxl.safetensors": sdxl_checkpoint()}
    with httpx.Client(timeout=10) as client:
        assert (
            hash_embedded_component_url(f"{base}/moved", ComponentKind.VAE, session=client)
            == UPSTREAM_VAE_HASH
        )
        assert not client.is_closed


def test_server_ignoring_range_is_refused(http_files: tuple[str, _Files]) -> None:
    base, state = http_files
    state.files = {"/sdxl.safetensors": sdxl_checkpoint()}
    state.ignore_range = True
    with pytest.raises(RangeNotSupportedError, match="status 200 instead of 206") as caught:
        hash_embedded_component_url(f"{base}/sdxl.safetensors", ComponentKind.VAE)
    assert caught.value.url == f"{base}/sdxl.safetensors"
    assert caught.value.status_code == 200
    assert (caught.value.offset, caught.value.length) == (0, 8)


def test_truncated_remote_file_is_refused(http_files: tuple[str, _Files]) -> None:
    base, state = http_files
    state.files = {"/tiny": b"\x05\x00", "/cut": sdxl_checkpoint()[:-3]}
    with pytest.raises(UnsupportedContainerError, match="2 bytes long"):
        hash_standalone_component_url(f"{base}/tiny")
    with pytest.raises(UnsupportedContainerError, match="run past the end of the data segment"):
        hash_embedded_component_url(f"{base}/cut", ComponentKind.VAE)


def test_range_past_the_end_is_a_container_error(http_files: tuple[str, _Files]) -> None:
    base, state = http_files
    state.files = {"/f": b"0123456789"}
    with HttpRangeRegionReader(f"{base}/f", timeout=10) as reader:
        assert reader.read(2, 3) == b"234"
        assert reader.size == 10
        with pytest.raises(UnsupportedContainerError, match="no bytes 50-59 \\(416\\)"):
            reader.read(50, 10)


def test_missing_remote_file_raises_the_http_error(http_files: tuple[str, _Files]) -> None:
    base, _state = http_files
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        hash_standalone_component_url(f"{base}/absent")


# --- module surface ---


UPSTREAM_ALL = [
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


def test_upstream_module_path_exports_every_upstream_name() -> None:
    assert sorted(root_component_hash.__all__) == UPSTREAM_ALL
    for name in UPSTREAM_ALL:
        assert getattr(root_component_hash, name) is not None
    assert issubclass(UnsupportedContainerError, ValueError)
    assert issubclass(NoComponentTensorsError, LookupError)
    assert issubclass(RangeNotSupportedError, RuntimeError)


def test_import_loads_no_heavy_or_network_module() -> None:
    code = (
        "import sys, horde_model_reference.component_hash, horde_model_reference.component_identity\n"
        "print(sorted(m for m in ('httpx', 'torch', 'numpy', 'safetensors', 'requests', 'pydantic')"
        " if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[]"


def test_local_reader_reads_regions(tmp_path: Path) -> None:
    path = write(tmp_path / "f", b"0123456789")
    with LocalFileRegionReader(path) as reader:
        assert reader.read(3, 4) == b"3456"
        assert b"".join(reader.iter_region(8, 10)) == b"89"
        assert reader.size == 10
    with LocalFileRegionReader(write(tmp_path / "vae", standalone_vae())) as reader:
        assert hash_standalone_component(reader) == UPSTREAM_VAE_HASH
        with pytest.raises(NoComponentTensorsError):
            hash_embedded_component(reader, ComponentKind.VAE)
