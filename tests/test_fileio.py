"""fileio and the file backend's writes: atomic replacement, bad bytes refused, read-only refused, trimmed reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from horde_model_reference import fileio as fileio_module
from horde_model_reference.backends.base import CategoryPayload
from horde_model_reference.backends.filesystem import FileSystemBackend, LocalReadOnlyBackend
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import BackendError, CatalogDecodeError
from horde_model_reference.fileio import atomic_write_bytes, read_trimmed_bytes

CASES = {
    "trailing newline": (b'{"a": 1}\n', b'{"a": 1}'),
    "no trailing whitespace": (b'{"a": 1}', b'{"a": 1}'),
    "mixed trailing whitespace": (b'{"a": 1} \r\n\t\n', b'{"a": 1}'),
    "leading whitespace kept": (b'\n {"a": 1}\n', b'\n {"a": 1}'),
    "empty file": (b"", b""),
    "whitespace only": (b" \n\n", b""),
    "long file": (b'{"a": "' + b"x" * 10_000 + b'"}\n', b'{"a": "' + b"x" * 10_000 + b'"}'),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_read_trimmed_bytes(tmp_path: Path, case: str) -> None:
    content, expected = CASES[case]
    path = tmp_path / "catalog.json"
    path.write_bytes(content)
    assert read_trimmed_bytes(path) == expected


def test_more_trailing_whitespace_than_the_tail_is_stripped_by_the_payload(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_bytes(b'{"a": 1}' + b"\n" * 200)
    data = read_trimmed_bytes(path)
    assert data.startswith(b'{"a": 1}') and len(data) < 200
    payload = CategoryPayload.from_bytes(MODEL_REFERENCE_CATEGORY.clip, data)
    assert payload.data == b'{"a": 1}'


def test_canonical_bytes_are_not_copied_again(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    atomic_write_bytes(path, b'{"a": 1}\n')
    data = read_trimmed_bytes(path)
    assert CategoryPayload.from_bytes(MODEL_REFERENCE_CATEGORY.clip, data).data is data


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_trimmed_bytes(tmp_path / "absent.json")


def test_a_write_that_fails_before_the_rename_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "catalog.json"
    atomic_write_bytes(path, b'{"old": 1}')

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio_module.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        atomic_write_bytes(path, b'{"new": 2}')
    assert path.read_bytes() == b'{"old": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["catalog.json"]


@pytest.mark.anyio
async def test_the_file_backend_refuses_bad_bytes_and_changes_nothing(tmp_path: Path) -> None:
    backend = FileSystemBackend(tmp_path)
    good = b'{"ViT-L/14": {"name": "ViT-L/14", "pretrained_name": "openai"}}'
    await backend.write_category(MODEL_REFERENCE_CATEGORY.clip, good)
    for bad, reason in [
        (b"", "empty"),
        (b'{"a": ', "malformed"),
        (b"[1, 2]", "got a JSON list"),
        (b"\xff\xfe", "UTF-8"),
    ]:
        with pytest.raises(CatalogDecodeError, match=reason):
            await backend.write_category(MODEL_REFERENCE_CATEGORY.clip, bad)
    assert (tmp_path / "clip.json").read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.json"]


@pytest.mark.anyio
async def test_the_read_only_backend_refuses_every_write(tmp_path: Path) -> None:
    backend = LocalReadOnlyBackend(tmp_path)
    assert not backend.supports_writes()
    with pytest.raises(BackendError, match="read-only"):
        await backend.write_category(MODEL_REFERENCE_CATEGORY.clip, b"{}")
    assert list(tmp_path.iterdir()) == []
