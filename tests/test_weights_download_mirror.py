"""The download engine's digest caches, its mirror-first path, and 8.6.2's observable results.

The pinned results (`UPSTREAM_*`) were obtained by running the same calls against
horde-model-reference 8.6.2 in a Python 3.12 venv (`pip install horde-model-reference==8.6.2`)
with a local server, and reading what it returned and left on disk. The server is
`test_weights_download_server`.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from horde_model_reference import download_engine
from horde_model_reference.errors import SettingsError
from horde_model_reference.weights.download import engine
from test_weights_download_server import BODY, BODY_SHA, Behaviour, Server, isolated_downloads, listing, serve


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with isolated_downloads(monkeypatch):
        yield


@pytest.fixture
def server() -> Iterator[Server]:
    with serve() as state:
        yield state


# --- 8.6.2's results ----------------------------------------------------------------------------

UPSTREAM_CACHE_TEXT = "{digest} *{name}"
"""8.6.2's `<stem>.sha256` / `<stem>.md5`: hex digest, space, `*`, the file's name; no newline."""
UPSTREAM_OUTCOMES = {
    # name: (sha256 declared, served path, success, bytes_written, sha256 returned, files left)
    "good.bin": (BODY_SHA, "/f", True, len(BODY), BODY_SHA, ["good.bin", "good.sha256"]),
    "any.bin": (None, "/f", True, len(BODY), BODY_SHA, ["any.bin", "any.sha256"]),
    "fix.bin": ("FIXME", "/f", True, len(BODY), BODY_SHA, ["fix.bin", "fix.sha256"]),
    "bad.bin": ("0" * 64, "/f", False, len(BODY), BODY_SHA, ["bad.sha256"]),
    "absent.bin": (None, "/nothing", False, 0, None, []),
}
"""What 8.6.2's `download_addressed_file` returned and left in an empty folder, per destination."""
UPSTREAM_CACHE_FILES = {
    "w.v1.sha256": b"34c793c9beb4440cfc3badd697760712152fcbe08905a6a2137b3895fd7719df *w.v1.safetensors",
    "w.v1.md5": b"4d5d1cba9eb18884a5410f4b83bc6951 *w.v1.safetensors",
}
"""The exact cache files 8.6.2's `sha256_of` and `md5_of` wrote beside `w.v1.safetensors` holding
`b"hello world" * 1000` (read back byte for byte; 8.6.2 also took our caches as its own)."""


@pytest.mark.parametrize("name", sorted(UPSTREAM_OUTCOMES))
def test_addressed_outcomes_match_upstream(server: Server, tmp_path: Path, name: str) -> None:
    declared, path, success, size, digest, files = UPSTREAM_OUTCOMES[name]
    server.paths["/f"] = Behaviour(body=BODY)
    outcome = download_engine.download_addressed_file(f"{server.url}{path}", tmp_path / name, sha256=declared)
    assert outcome == download_engine.DownloadOutcome(
        success=success, final_path=tmp_path / name, bytes_written=size, sha256=digest
    )
    assert isinstance(outcome.final_path, Path)
    assert listing(tmp_path) == files
    assert len(server.requests) == 1  # a refusal is not retried


def test_a_present_verified_file_is_not_downloaded_again(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    first = download_engine.download_addressed_file(f"{server.url}/f", tmp_path / "good.bin", sha256=BODY_SHA)
    second = download_engine.download_addressed_file(
        f"{server.url}/f", tmp_path / "good.bin", sha256=BODY_SHA
    )
    assert first == second and second.success  # 8.6.2 fetches it again for the same result
    assert len(server.requests) == 1


def test_digest_caches_are_written_in_upstreams_format(tmp_path: Path) -> None:
    path = tmp_path / "w.v1.safetensors"
    path.write_bytes(BODY)
    download_engine.sha256_of(path)
    download_engine.md5_of(path)
    md5 = hashlib.md5(BODY).hexdigest()
    assert (tmp_path / "w.v1.sha256").read_bytes() == UPSTREAM_CACHE_TEXT.format(
        digest=BODY_SHA, name=path.name
    ).encode()
    assert (tmp_path / "w.v1.md5").read_bytes() == UPSTREAM_CACHE_TEXT.format(
        digest=md5, name=path.name
    ).encode()


def test_cache_files_are_byte_for_byte_upstreams_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "w.v1.safetensors"
    path.write_bytes(b"hello world" * 1000)
    sha, md5 = download_engine.sha256_of(path), download_engine.md5_of(path)
    assert md5 is not None
    assert {name: (tmp_path / name).read_bytes() for name in UPSTREAM_CACHE_FILES} == UPSTREAM_CACHE_FILES
    assert (sha, md5) == tuple(data.split()[0].decode() for data in UPSTREAM_CACHE_FILES.values())
    later = path.stat().st_mtime + 10
    for name in UPSTREAM_CACHE_FILES:  # 8.6.2's files, with other digests, stay trusted while newer
        (tmp_path / name).write_bytes(UPSTREAM_CACHE_FILES[name].replace(b"4", b"e"))
        os.utime(tmp_path / name, (later, later))
    assert download_engine.sha256_of(path) == sha.replace("4", "e")
    assert download_engine.md5_of(path) == md5.replace("4", "e")


def test_a_cache_goes_stale_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(BODY)
    assert download_engine.sha256_of(path) == BODY_SHA
    cache_time = (tmp_path / "w.sha256").stat().st_mtime
    with path.open("ab") as grown:  # a different size, written after the cache
        grown.write(b"more")
    os.utime(path, (cache_time + 5, cache_time + 5))
    assert download_engine.sha256_of(path) == hashlib.sha256(BODY + b"more").hexdigest()
    assert download_engine.md5_of(path) == hashlib.md5(BODY + b"more").hexdigest()


# --- digests ------------------------------------------------------------------------------------


def test_sha256_of_uses_a_cache_newer_than_the_file_and_only_then(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(BODY)
    cache = tmp_path / "w.sha256"
    cache.write_text(f"{'a' * 64} *w.safetensors")
    stat = path.stat()
    os.utime(cache, (stat.st_atime + 10, stat.st_mtime + 10))
    assert download_engine.sha256_of(path) == "a" * 64  # trusted: newer than the file
    assert (
        download_engine.sha256_of(path, use_cache=False) == BODY_SHA
    )  # read from the bytes, cache rewritten
    os.utime(path, (stat.st_atime + 100, stat.st_mtime + 100))
    cache.write_text(f"{'b' * 64} *w.safetensors")
    os.utime(cache, (stat.st_atime + 50, stat.st_mtime + 50))
    assert download_engine.sha256_of(path) == BODY_SHA  # older than the file: ignored


def test_a_malformed_digest_cache_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(BODY)
    cache = tmp_path / "w.sha256"
    cache.write_text("not-a-digest *w.bin")
    os.utime(cache, (path.stat().st_mtime + 10, path.stat().st_mtime + 10))
    assert download_engine.sha256_of(path) == BODY_SHA


def test_md5_and_missing_files(tmp_path: Path) -> None:
    path = tmp_path / "w.bin"
    path.write_bytes(BODY)
    assert download_engine.md5_of(path) == hashlib.md5(BODY).hexdigest()
    assert (tmp_path / "w.md5").read_text().startswith(hashlib.md5(BODY).hexdigest())
    assert download_engine.md5_of(tmp_path / "absent") is None
    with pytest.raises(FileNotFoundError, match="absent"):
        download_engine.sha256_of(tmp_path / "absent")


# --- the mirror ---------------------------------------------------------------------------------


def _mirror(server: Server, *, hashes: list[str], session: bool = True, object_status: int = 200) -> str:
    server.paths["/gw/v1/manifest"] = Behaviour(
        json_body={"schema_version": 1, "objects": {h: {} for h in hashes}}
    )
    if session:
        server.paths["/gw/v1/session"] = Behaviour(
            json_body={"token": "hmr1.abc", "expires_at": 4_000_000_000}
        )
    server.paths[f"/gw/by-hash/{BODY_SHA}"] = Behaviour(body=BODY, status=object_status)
    server.paths["/origin"] = Behaviour(body=BODY)
    return f"{server.url}/gw"


def _fetch(
    server: Server, tmp_path: Path, gateway: str | None, apikey: str | None = "key"
) -> download_engine.DownloadOutcome:
    return download_engine.download_addressed_file(
        f"{server.url}/origin", tmp_path / "m.bin", sha256=BODY_SHA, gateway_base_url=gateway, apikey=apikey
    )


def test_the_mirror_serves_a_listed_file_with_a_session_token(server: Server, tmp_path: Path) -> None:
    gateway = _mirror(server, hashes=[BODY_SHA])
    outcome = _fetch(server, tmp_path, gateway)
    assert outcome.success
    (object_request,) = server.asked(f"/gw/by-hash/{BODY_SHA}")
    assert object_request["authorization"] == "Bearer hmr1.abc"
    assert "apikey" not in object_request
    assert server.asked("/gw/v1/session")[0]["apikey"] == "key"
    assert server.asked("/origin") == []
    assert server.asked("/gw/v1/manifest")[0].get("apikey") is None  # the inventory is public


def test_a_gateway_without_sessions_gets_the_key_header(server: Server, tmp_path: Path) -> None:
    gateway = _mirror(server, hashes=[BODY_SHA], session=False)
    assert _fetch(server, tmp_path, gateway).success
    assert server.asked(f"/gw/by-hash/{BODY_SHA}")[0]["apikey"] == "key"


def test_a_failing_mirror_falls_back_to_the_origin_at_once(server: Server, tmp_path: Path) -> None:
    gateway = _mirror(server, hashes=[BODY_SHA], object_status=500)
    assert _fetch(server, tmp_path, gateway).success
    assert len(server.asked(f"/gw/by-hash/{BODY_SHA}")) == 1  # one try at the mirror
    assert len(server.asked("/origin")) == 1
    assert not (tmp_path / "m.bin.part").exists()


@pytest.mark.parametrize(
    "manifest",
    [
        {"schema_version": 1, "objects": {"f" * 64: {}}},  # does not list the file
        {"schema_version": 2, "objects": {BODY_SHA: {}}},  # unknown schema
        {"schema_version": 1, "objects": {"not-a-hash": {}}},  # malformed
        ["not", "an", "object"],
    ],
)
def test_the_mirror_is_skipped_unless_its_inventory_lists_the_file(
    server: Server, tmp_path: Path, manifest: object
) -> None:
    gateway = _mirror(server, hashes=[])
    server.paths["/gw/v1/manifest"] = Behaviour(json_body=manifest)
    assert _fetch(server, tmp_path, gateway).success
    assert server.asked(f"/gw/by-hash/{BODY_SHA}") == []
    assert len(server.asked("/origin")) == 1


def test_the_mirror_needs_a_key_and_a_known_hash(server: Server, tmp_path: Path) -> None:
    gateway = _mirror(server, hashes=[BODY_SHA])
    assert _fetch(server, tmp_path, gateway, apikey=None).success
    download_engine.download_addressed_file(
        f"{server.url}/origin", tmp_path / "n.bin", sha256="FIXME", gateway_base_url=gateway, apikey="key"
    )
    assert [p for _, p, _ in server.requests if p.startswith("/gw")] == []


def test_the_key_never_travels_over_plain_http_to_another_host(server: Server, tmp_path: Path) -> None:
    assert download_engine.gateway_accepts_key("https://mirror.example")
    assert download_engine.gateway_accepts_key("http://127.0.0.1:8787")
    assert download_engine.gateway_accepts_key("http://localhost:8787")
    for refused in (
        "http://mirror.example",
        "https://user:pw@mirror.example",
        "https://m.example/?a=1",
        "ftp://m",
    ):
        assert not download_engine.gateway_accepts_key(refused), refused
    server.paths["/origin"] = Behaviour(body=BODY)
    assert _fetch(server, tmp_path, "http://mirror.invalid").success
    assert [p for _, p, _ in server.requests] == ["/origin"]


def test_gateway_url_for_addresses_by_lowercase_hash() -> None:
    assert (
        download_engine.gateway_url_for("https://m.example/", "AB" * 32)
        == f"https://m.example/by-hash/{'ab' * 32}"
    )


def test_the_configured_gateway_comes_from_upstreams_variable(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = _mirror(server, hashes=[BODY_SHA])
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_R2__GATEWAY_URL", gateway)
    assert _fetch(server, tmp_path, None).success
    assert len(server.asked(f"/gw/by-hash/{BODY_SHA}")) == 1
    download_engine.download_addressed_file(
        f"{server.url}/origin",
        tmp_path / "o.bin",
        sha256=BODY_SHA,
        apikey="key",
        use_configured_gateway=False,
    )
    assert len(server.asked(f"/gw/by-hash/{BODY_SHA}")) == 1  # not asked again


def test_a_bad_inventory_ttl_is_a_settings_error_naming_the_variable(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_R2__MANIFEST_TTL_SECONDS", "soon")
    with pytest.raises(SettingsError, match="HORDE_MODEL_REFERENCE_R2__MANIFEST_TTL_SECONDS"):
        _fetch(server, tmp_path, None)
    assert server.requests == []


def test_the_inventory_ttl_comes_from_upstreams_variable_even_with_an_explicit_gateway(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = _mirror(server, hashes=[BODY_SHA])
    asked: list[int] = []

    def contains(gateway_base_url: str, sha256: str, *, ttl_seconds: int) -> bool:
        asked.append(ttl_seconds)
        return True

    monkeypatch.setattr(engine, "mirror_contains", contains)
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_R2__MANIFEST_TTL_SECONDS", "42")
    outcome = download_engine.download_addressed_file(
        f"{server.url}/origin",
        tmp_path / "m.bin",
        sha256=BODY_SHA,
        gateway_base_url=gateway,
        apikey="key",
        use_configured_gateway=False,
    )
    assert outcome.success and asked == [42]
    monkeypatch.delenv("HORDE_MODEL_REFERENCE_R2__MANIFEST_TTL_SECONDS")
    download_engine.download_addressed_file(
        f"{server.url}/origin", tmp_path / "n.bin", sha256=BODY_SHA, gateway_base_url=gateway, apikey="key"
    )
    assert asked == [42, 300]  # 8.6.2's default
