"""The snapshot cache and payloads: digests given or computed on first use, notices only when wanted."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path

import msgspec
import pytest

from horde_model_reference.backends.base import CategoryPayload
from horde_model_reference.cache import ReferenceCache
from horde_model_reference.catalog import decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY

CLIP = MODEL_REFERENCE_CATEGORY.clip
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "reference"


def _clip_bytes() -> bytes:
    return (EXAMPLES / "clip.json").read_bytes().strip()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_digest_not_given_is_computed_from_the_bytes_on_first_use() -> None:
    data = _clip_bytes()
    cache = ReferenceCache()
    records = decode_catalog(CLIP, data).records
    cache.install(CLIP, records, revision=0, digest=None, raw=data, notify=False)
    snapshot = cache.snapshots[CLIP.value]
    assert "digest" not in snapshot.__dict__, "installing without a notice must not hash the bytes"
    assert snapshot.digest == _sha256(data)


def test_a_given_digest_is_kept_and_bytes_are_optional() -> None:
    data = _clip_bytes()
    cache = ReferenceCache()
    cache.install(CLIP, decode_catalog(CLIP, data).records, revision=3, digest="d" * 64, raw=None)
    assert cache.snapshots[CLIP.value].digest == "d" * 64


def test_install_without_digest_or_bytes_is_refused_and_nothing_is_installed() -> None:
    cache = ReferenceCache()
    with pytest.raises(ValueError, match="clip"):
        cache.install(CLIP, {}, revision=1, digest=None, raw=None)
    assert CLIP.value not in cache.snapshots


def test_same_bytes_at_a_new_revision_install_without_a_notice() -> None:
    data = _clip_bytes()
    records = decode_catalog(CLIP, data).records
    cache = ReferenceCache()
    first = cache.install(CLIP, dict(records), revision=1, digest=None, raw=data)
    assert first is not None and first.digest == _sha256(data) and set(first.added) == set(records)
    assert cache.install(CLIP, dict(records), revision=2, digest=None, raw=data) is None
    assert cache.snapshots[CLIP.value].revision == 2


def test_notify_false_installs_and_builds_no_notice() -> None:
    data = _clip_bytes()
    cache = ReferenceCache()
    notice = cache.install(
        CLIP, decode_catalog(CLIP, data).records, revision=0, digest=None, raw=data, notify=False
    )
    assert notice is None
    snapshot = cache.snapshots[CLIP.value]
    assert len(snapshot.records) > 0 and "digest" not in snapshot.__dict__


def test_payload_digest_is_lazy_seedable_and_kept_by_updated() -> None:
    data = _clip_bytes()
    payload = CategoryPayload.from_bytes(CLIP, data + b"\n", source="example")
    assert payload.data == data
    assert payload.known_digest() is None
    assert payload.digest == _sha256(data)
    assert payload.known_digest() == _sha256(data)
    moved = payload.updated(fetched_at=payload.fetched_at + 5, revision=7)
    assert (moved.fetched_at, moved.revision, moved.known_digest()) == (
        payload.fetched_at + 5,
        7,
        _sha256(data),
    )
    seeded = CategoryPayload.from_bytes(CLIP, data, digest="e" * 64, fetched_at=1.0)
    assert (seeded.digest, seeded.fetched_at) == ("e" * 64, 1.0)


def test_notify_none_builds_a_notice_only_when_a_callback_is_registered() -> None:
    data = _clip_bytes()
    records = decode_catalog(CLIP, data).records
    cache = ReferenceCache()
    assert cache.install(CLIP, dict(records), revision=1, digest=None, raw=data, notify=None) is None
    cache.add_callback(lambda notice: None)
    smaller = dict(list(records.items())[:-1]) if len(records) > 1 else {}
    notice = cache.install(CLIP, smaller, revision=2, digest="f" * 64, raw=None, notify=None)
    assert notice is not None and notice.old_revision == 1 and notice.digest == "f" * 64


def test_payloads_and_snapshots_take_keywords_and_copies_keep_a_given_digest() -> None:
    data = _clip_bytes()
    with pytest.raises(TypeError):
        CategoryPayload(CLIP, data, "d" * 64, 1.0)  # type: ignore[misc]  # the old field order
    cache = ReferenceCache()
    cache.install(CLIP, {}, revision=4, digest="a" * 64, raw=None)
    snapshot = cache.snapshots[CLIP.value]
    assert copy.copy(snapshot).digest == "a" * 64
    assert msgspec.structs.replace(snapshot, revision=5).digest == "a" * 64
