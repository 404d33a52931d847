"""fileio: atomic writes and reading a catalog file without its trailing whitespace."""

from __future__ import annotations

from pathlib import Path

import pytest

from horde_model_reference.backends.base import CategoryPayload
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
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
