"""weights.identity: component-identity sidecars, interchangeable with upstream 8.6.2's files."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest
import structlog
from structlog.testing import capture_logs

from horde_model_reference import component_identity as root_component_identity
from horde_model_reference.weights.component_hash import (
    ComponentKind,
    UnsupportedContainerError,
    hash_embedded_component_file,
    hash_standalone_component_file,
)
from horde_model_reference.weights.identity import (
    ComponentIdentitySidecar,
    EmbeddedComponentIdentity,
    ensure_sidecar,
    read_sidecar,
    sidecar_path_for,
)
from test_weights_component_hash import (
    TEXT_ENCODERS,
    UNET,
    UPSTREAM_EXTRACTED_VAE_FILE_SHA256,
    UPSTREAM_TEXT_ENCODERS_HASH,
    UPSTREAM_VAE_HASH,
    build_safetensors,
    prefixed,
    sd15_checkpoint,
    sdxl_checkpoint,
)

# Written by upstream horde-model-reference 8.6.2 (Python 3.12 venv, `pip install horde-model-reference==8.6.2`):
# ensure_sidecar(<dir>/model.safetensors, extract_vae=True, extraction_dir=<tmp>/vae) with that file holding
# sdxl_checkpoint(), and ensure_sidecar(<dir>/plain.safetensors) with sd15_checkpoint(), both built by the
# builders in test_weights_component_hash.py; the file texts are copied verbatim.
UPSTREAM_SIDECAR = (
    "{\n"
    '  "schema_version": 1,\n'
    '  "ckpt_file_name": "model.safetensors",\n'
    '  "ckpt_size_bytes": 1334,\n'
    '  "total_tensor_bytes": 240,\n'
    '  "embedded": {\n'
    '    "vae": {\n'
    '      "content_hash": "882628c06d47d125e50107be35e913d6a1d8bd6ddad129d47f92ff73ec6797e4",\n'
    '      "tensor_bytes": 64,\n'
    '      "extracted_file_name": "vae-882628c06d47d125.safetensors"\n'
    "    },\n"
    '    "text_encoders": {\n'
    '      "content_hash": "fbe961a3ad92259d34941b5484b7b2323d04a7504b2ab29c0a7e9a455d274502",\n'
    '      "tensor_bytes": 32,\n'
    '      "extracted_file_name": null\n'
    "    }\n"
    "  }\n"
    "}"
)
UPSTREAM_PLAIN_SIDECAR = (
    "{\n"
    '  "schema_version": 1,\n'
    '  "ckpt_file_name": "plain.safetensors",\n'
    '  "ckpt_size_bytes": 1274,\n'
    '  "total_tensor_bytes": 240,\n'
    '  "embedded": {\n'
    '    "vae": {\n'
    '      "content_hash": "882628c06d47d125e50107be35e913d6a1d8bd6ddad129d47f92ff73ec6797e4",\n'
    '      "tensor_bytes": 64,\n'
    '      "extracted_file_name": null\n'
    "    },\n"
    '    "text_encoders": {\n'
    '      "content_hash": "fbe961a3ad92259d34941b5484b7b2323d04a7504b2ab29c0a7e9a455d274502",\n'
    '      "tensor_bytes": 32,\n'
    '      "extracted_file_name": null\n'
    "    }\n"
    "  }\n"
    "}"
)
EXTRACTED_NAME = f"vae-{UPSTREAM_VAE_HASH[:16]}.safetensors"


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    folder = tmp_path / "stable_diffusion"
    folder.mkdir()
    path = folder / "model.safetensors"
    path.write_bytes(sdxl_checkpoint())
    return path


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


def _events(logs: Sequence[Mapping[str, Any]]) -> list[object]:
    return [entry["event"] for entry in logs]


# --- interoperability ---


def test_reads_the_sidecar_upstream_wrote(checkpoint: Path) -> None:
    sidecar_path_for(checkpoint).write_text(UPSTREAM_SIDECAR, encoding="utf-8")
    sidecar = read_sidecar(checkpoint)
    assert sidecar == ComponentIdentitySidecar(
        schema_version=1,
        ckpt_file_name="model.safetensors",
        ckpt_size_bytes=1334,
        total_tensor_bytes=240,
        embedded={
            "vae": EmbeddedComponentIdentity(
                content_hash=UPSTREAM_VAE_HASH, tensor_bytes=64, extracted_file_name=EXTRACTED_NAME
            ),
            "text_encoders": EmbeddedComponentIdentity(
                content_hash=UPSTREAM_TEXT_ENCODERS_HASH, tensor_bytes=32
            ),
        },
    )
    assert sidecar.residual_tensor_bytes == 240 - 64 - 32
    assert sidecar.embedded.get(ComponentKind.VAE.value) is not None


def test_writes_the_bytes_upstream_writes(checkpoint: Path, tmp_path: Path) -> None:
    vae_dir = tmp_path / "vae"
    sidecar = ensure_sidecar(checkpoint, extract_vae=True, extraction_dir=vae_dir)
    assert sidecar_path_for(checkpoint).read_text(encoding="utf-8") == UPSTREAM_SIDECAR
    assert [p.name for p in vae_dir.iterdir()] == [EXTRACTED_NAME]
    extracted = vae_dir / EXTRACTED_NAME
    assert hashlib.sha256(extracted.read_bytes()).hexdigest() == UPSTREAM_EXTRACTED_VAE_FILE_SHA256
    assert hash_standalone_component_file(extracted) == sidecar.embedded["vae"].content_hash

    plain = checkpoint.with_name("plain.safetensors")
    plain.write_bytes(sd15_checkpoint())
    ensure_sidecar(plain)
    assert sidecar_path_for(plain).read_text(encoding="utf-8") == UPSTREAM_PLAIN_SIDECAR
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == [
        "model.safetensors",
        "model.safetensors.component-identity.json",
        "plain.safetensors",
        "plain.safetensors.component-identity.json",
    ]


def test_sidecar_path_is_the_full_name_plus_suffix(tmp_path: Path) -> None:
    assert (
        sidecar_path_for(tmp_path / "a.b.safetensors") == tmp_path / "a.b.safetensors.component-identity.json"
    )
    assert sidecar_path_for("x.ckpt") == Path("x.ckpt.component-identity.json")


def test_pydantic_style_methods(checkpoint: Path) -> None:
    sidecar = ensure_sidecar(checkpoint)
    dumped = sidecar.model_dump()
    assert dumped["embedded"]["vae"]["tensor_bytes"] == 64
    assert json.loads(sidecar.model_dump_json()) == json.loads(UPSTREAM_SIDECAR) | {
        "embedded": {
            "vae": {"content_hash": UPSTREAM_VAE_HASH, "tensor_bytes": 64, "extracted_file_name": None},
            "text_encoders": {
                "content_hash": UPSTREAM_TEXT_ENCODERS_HASH,
                "tensor_bytes": 32,
                "extracted_file_name": None,
            },
        }
    }
    assert sidecar.model_copy(update={"total_tensor_bytes": 100}).residual_tensor_bytes == 4


# --- read_sidecar ---


def test_round_trip_and_idempotence(checkpoint: Path) -> None:
    written = ensure_sidecar(checkpoint)
    before = _identity(sidecar_path_for(checkpoint))
    assert read_sidecar(checkpoint) == written
    assert ensure_sidecar(checkpoint) == written
    assert _identity(sidecar_path_for(checkpoint)) == before
    assert written.embedded["vae"].extracted_file_name is None
    assert written.embedded["vae"].content_hash == hash_embedded_component_file(checkpoint, ComponentKind.VAE)


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """Let debug lines through the level filter for the test (capture_logs keeps the filter)."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.mark.usefixtures("debug_logging")
def test_missing_sidecar(checkpoint: Path) -> None:
    """The normal state before the first `ensure_sidecar`: logged at debug level only."""
    with capture_logs() as logs:
        assert read_sidecar(checkpoint) is None
    assert _events(logs) == ["component_identity_sidecar_missing"]
    assert logs[0]["log_level"] == "debug"


def test_missing_checkpoint(tmp_path: Path) -> None:
    with capture_logs() as logs:
        assert read_sidecar(tmp_path / "absent.safetensors") is None
    assert _events(logs) == ["component_identity_checkpoint_unreadable"]
    with pytest.raises(FileNotFoundError):
        ensure_sidecar(tmp_path / "absent.safetensors")


def test_stale_sidecar_is_ignored_then_recomputed(checkpoint: Path) -> None:
    sidecar_path_for(checkpoint).write_text(UPSTREAM_SIDECAR.replace("1334", "999"), encoding="utf-8")
    with capture_logs() as logs:
        assert read_sidecar(checkpoint) is None
    assert logs[0]["event"] == "component_identity_sidecar_stale"
    assert (logs[0]["recorded_size"], logs[0]["size"]) == (999, 1334)
    assert logs[0]["path"] == str(sidecar_path_for(checkpoint))
    fresh = ensure_sidecar(checkpoint)
    assert fresh.ckpt_size_bytes == 1334
    assert read_sidecar(checkpoint) == fresh


def test_grown_checkpoint_makes_the_sidecar_stale(checkpoint: Path) -> None:
    ensure_sidecar(checkpoint)
    with checkpoint.open("ab") as handle:
        handle.write(b"\0" * 8)
    assert read_sidecar(checkpoint) is None
    assert ensure_sidecar(checkpoint).ckpt_size_bytes == 1342


CORRUPT: dict[str, str | bytes] = {
    "not JSON": "{not json",
    "empty": "",
    "not UTF-8": b"\xff\xfe{}",
    "a list": "[]",
    "size is a string": UPSTREAM_SIDECAR.replace("1334", '"1334"'),
    "negative size": UPSTREAM_SIDECAR.replace("1334", "-1"),
    "missing field": UPSTREAM_SIDECAR.replace('"total_tensor_bytes": 240,', ""),
    "hash not hex": UPSTREAM_SIDECAR.replace(UPSTREAM_VAE_HASH, "z" * 64),
    "extracted name escapes the folder": UPSTREAM_SIDECAR.replace(EXTRACTED_NAME, "../../etc/passwd"),
    "component not an object": UPSTREAM_SIDECAR.replace('"embedded": {', '"embedded": {"x": 1,'),
    "larger than 1 MiB": UPSTREAM_SIDECAR[:-1] + ', "pad": "' + "x" * (1 << 20) + '"}',
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_sidecar_is_ignored_then_recomputed(checkpoint: Path, case: str) -> None:
    content = CORRUPT[case]
    path = sidecar_path_for(checkpoint)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    with capture_logs() as logs:
        assert read_sidecar(checkpoint) is None
    assert _events(logs) == ["component_identity_sidecar_corrupt"]
    assert logs[0]["path"] == str(path)
    assert logs[0]["error"]
    assert ensure_sidecar(checkpoint).embedded["vae"].content_hash == UPSTREAM_VAE_HASH
    assert read_sidecar(checkpoint) is not None


def test_unknown_fields_are_ignored(checkpoint: Path) -> None:
    sidecar_path_for(checkpoint).write_text(UPSTREAM_SIDECAR[:-1] + ', "future": 1}', encoding="utf-8")
    sidecar = read_sidecar(checkpoint)
    assert sidecar is not None
    assert sidecar.total_tensor_bytes == 240


def test_other_schema_version_is_not_trusted(checkpoint: Path) -> None:
    sidecar_path_for(checkpoint).write_text(
        UPSTREAM_SIDECAR.replace('"schema_version": 1', '"schema_version": 2'), encoding="utf-8"
    )
    with capture_logs() as logs:
        assert read_sidecar(checkpoint) is None
    assert _events(logs) == ["component_identity_sidecar_unsupported"]
    assert logs[0]["schema_version"] == 2
    assert ensure_sidecar(checkpoint).schema_version == 1


# --- ensure_sidecar and VAE extraction ---


def test_extraction_is_added_to_an_existing_sidecar(checkpoint: Path, tmp_path: Path) -> None:
    ensure_sidecar(checkpoint)
    vae_dir = tmp_path / "vae"
    sidecar = ensure_sidecar(checkpoint, extract_vae=True, extraction_dir=vae_dir)
    assert sidecar.embedded["vae"].extracted_file_name == EXTRACTED_NAME
    assert read_sidecar(checkpoint) == sidecar
    assert sidecar_path_for(checkpoint).read_text(encoding="utf-8") == UPSTREAM_SIDECAR
    assert hash_standalone_component_file(vae_dir / EXTRACTED_NAME) == UPSTREAM_VAE_HASH


def test_missing_extracted_vae_is_extracted_again(checkpoint: Path, tmp_path: Path) -> None:
    vae_dir = tmp_path / "vae"
    first = ensure_sidecar(checkpoint, extract_vae=True, extraction_dir=vae_dir)
    sidecar_before = _identity(sidecar_path_for(checkpoint))
    (vae_dir / EXTRACTED_NAME).unlink()
    assert ensure_sidecar(checkpoint, extract_vae=True, extraction_dir=vae_dir) == first
    assert hash_standalone_component_file(vae_dir / EXTRACTED_NAME) == UPSTREAM_VAE_HASH
    assert _identity(sidecar_path_for(checkpoint)) == sidecar_before


def test_existing_extracted_vae_is_reused(checkpoint: Path, tmp_path: Path) -> None:
    """Content-addressed: a non-empty file under the name is the same VAE (as upstream, not re-read)."""
    vae_dir = tmp_path / "vae"
    vae_dir.mkdir()
    shared = vae_dir / EXTRACTED_NAME
    shared.write_bytes(b"extracted earlier from another checkpoint")
    sidecar = ensure_sidecar(checkpoint, extract_vae=True, extraction_dir=vae_dir)
    assert sidecar.embedded["vae"].extracted_file_name == EXTRACTED_NAME
    assert shared.read_bytes() == b"extracted earlier from another checkpoint"


def test_checkpoint_changed_in_place_is_recomputed(checkpoint: Path, tmp_path: Path) -> None:
    """Same size, different VAE bytes: the recorded hash no longer holds, so nothing is extracted under it."""
    ensure_sidecar(checkpoint)
    data = bytearray(checkpoint.read_bytes())
    data[-30] ^= 0xFF  # a byte of the VAE's data (the checkpoint's last tensors are the VAE's)
    checkpoint.write_bytes(bytes(data))
    new_hash = hash_embedded_component_file(checkpoint, ComponentKind.VAE)
    assert new_hash != UPSTREAM_VAE_HASH
    vae_dir = tmp_path / "vae"
    with capture_logs() as logs:
        sidecar = ensure_sidecar(checkpoint, extract_vae=True, extraction_dir=vae_dir)
    assert "component_identity_sidecar_outdated" in _events(logs)
    assert sidecar.embedded["vae"].content_hash == new_hash
    assert [p.name for p in vae_dir.iterdir()] == [f"vae-{new_hash[:16]}.safetensors"]


def test_checkpoint_without_vae(tmp_path: Path) -> None:
    ckpt = tmp_path / "no_vae.safetensors"
    ckpt.write_bytes(build_safetensors({**UNET, **prefixed("cond_stage_model.", TEXT_ENCODERS)}))
    sidecar = ensure_sidecar(ckpt, extract_vae=True, extraction_dir=tmp_path / "vae")
    assert sorted(sidecar.embedded) == ["text_encoders"]
    assert sidecar.residual_tensor_bytes == 144
    assert not (tmp_path / "vae").exists()
    assert ensure_sidecar(ckpt, extract_vae=True, extraction_dir=tmp_path / "vae") == sidecar


def test_checkpoint_without_components(tmp_path: Path) -> None:
    ckpt = tmp_path / "unet.safetensors"
    ckpt.write_bytes(build_safetensors(UNET))
    sidecar = ensure_sidecar(ckpt)
    assert sidecar.embedded == {}
    assert sidecar.residual_tensor_bytes == sidecar.total_tensor_bytes == 144


def test_extract_vae_needs_a_folder(checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="extraction_dir"):
        ensure_sidecar(checkpoint, extract_vae=True)
    assert not sidecar_path_for(checkpoint).exists()


def test_pickle_checkpoint_is_refused_without_writing(tmp_path: Path) -> None:
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"PK\x03\x04\x14\x00\x00\x00" + b"\x00" * 56)  # a zip, as torch saves
    with pytest.raises(UnsupportedContainerError, match="implausible") as caught:
        ensure_sidecar(ckpt, extract_vae=True, extraction_dir=tmp_path / "vae")
    assert caught.value.source == str(ckpt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ckpt"]


def test_corrupt_checkpoint_is_refused_without_writing(checkpoint: Path, tmp_path: Path) -> None:
    checkpoint.write_bytes(sdxl_checkpoint()[:-5])
    with pytest.raises(UnsupportedContainerError, match="run past the end"):
        ensure_sidecar(checkpoint, extract_vae=True, extraction_dir=tmp_path / "vae")
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == ["model.safetensors"]
    assert not (tmp_path / "vae").exists()


def test_structs_decode_strictly() -> None:
    with pytest.raises(msgspec.ValidationError, match="content_hash"):
        msgspec.json.decode(b'{"content_hash": "abc", "tensor_bytes": 1}', type=EmbeddedComponentIdentity)


def test_upstream_module_path_exports_every_upstream_name() -> None:
    assert sorted(root_component_identity.__all__) == [
        "ComponentIdentitySidecar",
        "EmbeddedComponentIdentity",
        "ensure_sidecar",
        "read_sidecar",
        "sidecar_path_for",
    ]
    assert root_component_identity.read_sidecar is read_sidecar
    assert root_component_identity.ensure_sidecar is ensure_sidecar
