"""The download engine against a real HTTP server on 127.0.0.1 (started by each test).

The server serves bytes by path and can misbehave on request: ignore `Range`, fail the first N
requests, cut a body short, send more than it declares, or act as the gated mirror (inventory,
sessions, content-addressed objects). Every request it sees is recorded, so the tests check what
the engine asked for as well as what it left on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from horde_model_reference import download_engine
from horde_model_reference.errors import SettingsError
from horde_model_reference.model_reference_records import ImageGenerationModelRecord
from horde_model_reference.weights.download import _transfer, engine
from horde_model_reference.weights.download._gateway import clear_gateway_caches

BODY = bytes((i * 7 + 3) % 251 for i in range(5000))
BODY_SHA = hashlib.sha256(BODY).hexdigest()


@dataclass
class Behaviour:
    """How the server answers one path."""

    body: bytes = b""
    status: int = 200
    ranges: bool = True
    fail_first: int = 0
    truncate_first: int = 0
    declared_length: int | None = None
    json_body: object = None


@dataclass
class Server:
    """The test's HTTP server: its base URL, what it serves and what it was asked."""

    url: str
    paths: dict[str, Behaviour]
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def asked(self, path: str) -> list[dict[str, str]]:
        return [headers for _, p, headers in self.requests if p == path]


class _Handler(BaseHTTPRequestHandler):
    server_state: Server

    def _answer(self) -> None:
        state: Server = self.server.state  # type: ignore[attr-defined]
        state.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
        behaviour = state.paths.get(self.path)
        if behaviour is None:
            self._send(404, b"")
            return
        if behaviour.fail_first > 0:
            behaviour.fail_first -= 1
            self._send(500, b"")
            return
        if behaviour.status != 200:
            self._send(behaviour.status, b"")
            return
        if behaviour.json_body is not None:
            self._send(200, json.dumps(behaviour.json_body).encode())
            return
        body = behaviour.body
        header = self.headers.get("Range")
        if header and behaviour.ranges:
            start_text, _, end_text = header.removeprefix("bytes=").partition("-")
            start = int(start_text)
            end = int(end_text) if end_text else len(body) - 1
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            part = body[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{start + len(part) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            self.wfile.write(part)
            return
        if behaviour.truncate_first > 0:
            behaviour.truncate_first -= 1
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.close_connection = True
            return
        length = behaviour.declared_length if behaviour.declared_length is not None else len(body)
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.write(body)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[Server]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)  # bound here: ready before the thread runs
    state = Server(url=f"http://127.0.0.1:{httpd.server_address[1]}", paths={})
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(engine, "RETRY_SLEEP_SECONDS", 0.0)
    monkeypatch.delenv("HORDE_MODEL_REFERENCE_R2__GATEWAY_URL", raising=False)
    monkeypatch.delenv("HORDE_MODEL_REFERENCE_R2__MANIFEST_TTL_SECONDS", raising=False)
    clear_gateway_caches()
    yield
    clear_gateway_caches()


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- one source ---------------------------------------------------------------------------------


def test_a_verified_download_lands_with_its_digest_cache(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", expected_sha256=BODY_SHA)
    assert outcome == download_engine.DownloadOutcome(
        success=True, final_path=tmp_path / "m.bin", bytes_written=len(BODY), sha256=BODY_SHA
    )
    assert (tmp_path / "m.bin").read_bytes() == BODY
    assert (tmp_path / "m.sha256").read_text() == f"{BODY_SHA} *m.bin"  # the sha256sum format, as 8.6.2
    assert _listing(tmp_path) == ["m.bin", "m.sha256"]


def test_unknown_hashes_are_accepted_unverified(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    for expected in (None, "FIXME"):
        outcome = download_engine.download_file(
            f"{server.url}/f", tmp_path / "m.bin", expected_sha256=expected
        )
        assert outcome.success and outcome.sha256 == BODY_SHA


def test_a_partial_file_is_resumed_from_where_it_stopped(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    (tmp_path / "m.bin.part").write_bytes(BODY[:1200])
    outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", expected_sha256=BODY_SHA)
    assert outcome.success and outcome.bytes_written == len(BODY)
    assert [h.get("range") for h in server.asked("/f")] == ["bytes=1200-"]
    assert (tmp_path / "m.bin").read_bytes() == BODY


def test_a_source_that_ignores_range_restarts_the_download(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY, ranges=False)
    (tmp_path / "m.bin.part").write_bytes(b"not the right prefix")
    outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", expected_sha256=BODY_SHA)
    assert outcome.success
    assert (tmp_path / "m.bin").read_bytes() == BODY
    assert len(server.asked("/f")) == 2  # the refused resume, then the whole file


def test_a_complete_partial_is_installed_without_downloading_again(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    (tmp_path / "m.bin.part").write_bytes(BODY)
    outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", expected_sha256=BODY_SHA)
    assert outcome.success and (tmp_path / "m.bin").read_bytes() == BODY


def test_a_hash_mismatch_leaves_nothing_installed(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", expected_sha256="0" * 64)
    assert not outcome.success
    assert outcome.sha256 == BODY_SHA and outcome.bytes_written == len(BODY)
    assert _listing(tmp_path) == []  # no file, no partial, no digest cache of a file that is not there


def test_a_refusal_is_not_retried(server: Server, tmp_path: Path) -> None:
    for status in (401, 403, 404, 410):
        server.paths["/f"] = Behaviour(status=status)
        outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin")
        assert outcome == download_engine.DownloadOutcome(
            success=False, final_path=tmp_path / "m.bin", bytes_written=0, sha256=None
        )
    assert len(server.asked("/f")) == 4
    assert _listing(tmp_path) == []


def test_server_errors_are_retried_up_to_the_limit(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY, fail_first=2)
    assert download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", max_retries=3).success
    assert len(server.asked("/f")) == 3
    server.paths["/g"] = Behaviour(body=BODY, fail_first=5)
    assert not download_engine.download_file(f"{server.url}/g", tmp_path / "g.bin", max_retries=2).success
    assert len(server.asked("/g")) == 2


def test_a_body_cut_short_is_resumed_on_the_next_attempt(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY, truncate_first=1)
    outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", expected_sha256=BODY_SHA)
    assert outcome.success and (tmp_path / "m.bin").read_bytes() == BODY
    ranges = [h.get("range") for h in server.asked("/f")]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")


def test_bytes_beyond_the_declared_length_are_never_taken(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY, declared_length=1000)
    outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", expected_sha256=BODY_SHA)
    assert not outcome.success
    assert outcome.bytes_written == 1000  # what was declared, not what was sent
    assert _listing(tmp_path) == []


def test_a_progress_callback_can_abort_and_the_partial_goes(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    seen: list[tuple[int, int]] = []

    def stop(done: int, total: int) -> None:
        seen.append((done, total))
        raise download_engine.DownloadAborted

    with pytest.raises(download_engine.DownloadAborted):
        download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", progress_callback=stop)
    assert seen and seen[0][1] == len(BODY)
    assert _listing(tmp_path) == []


def test_an_auth_token_goes_in_the_query(server: Server, tmp_path: Path) -> None:
    server.paths["/f?token=secret"] = Behaviour(body=BODY)
    assert download_engine.download_file(
        f"{server.url}/f", tmp_path / "m.bin", auth_query_token="secret"
    ).success


# --- segments -----------------------------------------------------------------------------------


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_transfer, "SEGMENT_THRESHOLD_BYTES", 1000)
    monkeypatch.setattr(_transfer, "MIN_SEGMENT_BYTES", 1000)


@pytest.mark.usefixtures("small_segments")
def test_a_large_file_comes_over_several_ranged_connections(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    progress: list[int] = []
    outcome = download_engine.download_file(
        f"{server.url}/f",
        tmp_path / "m.bin",
        expected_sha256=BODY_SHA,
        connections=4,
        progress_callback=lambda done, total: progress.append(done),
    )
    assert outcome.success and (tmp_path / "m.bin").read_bytes() == BODY
    ranges = sorted(h["range"] for h in server.asked("/f") if h.get("range") != "bytes=0-0")
    assert ranges == ["bytes=0-1249", "bytes=1250-2499", "bytes=2500-3749", "bytes=3750-4999"]
    assert max(progress) == len(BODY)


@pytest.mark.usefixtures("small_segments")
def test_segments_fall_back_to_one_stream_without_ranges(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY, ranges=False)
    outcome = download_engine.download_file(
        f"{server.url}/f", tmp_path / "m.bin", expected_sha256=BODY_SHA, connections=4
    )
    assert outcome.success and (tmp_path / "m.bin").read_bytes() == BODY


@pytest.mark.usefixtures("small_segments")
def test_an_abort_during_segments_removes_the_partial(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)

    def stop(done: int, total: int) -> None:
        raise download_engine.DownloadAborted

    with pytest.raises(download_engine.DownloadAborted):
        download_engine.download_file(
            f"{server.url}/f", tmp_path / "m.bin", connections=4, progress_callback=stop
        )
    assert _listing(tmp_path) == []


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


def _fetch(server: Server, tmp_path: Path, gateway: str | None, apikey: str | None = "key") -> object:
    return download_engine.download_addressed_file(
        f"{server.url}/origin", tmp_path / "m.bin", sha256=BODY_SHA, gateway_base_url=gateway, apikey=apikey
    )


def test_the_mirror_serves_a_listed_file_with_a_session_token(server: Server, tmp_path: Path) -> None:
    gateway = _mirror(server, hashes=[BODY_SHA])
    outcome = _fetch(server, tmp_path, gateway)
    assert outcome.success  # type: ignore[attr-defined]
    (object_request,) = server.asked(f"/gw/by-hash/{BODY_SHA}")
    assert object_request["authorization"] == "Bearer hmr1.abc"
    assert "apikey" not in object_request
    assert server.asked("/gw/v1/session")[0]["apikey"] == "key"
    assert server.asked("/origin") == []
    assert server.asked("/gw/v1/manifest")[0].get("apikey") is None  # the inventory is public


def test_a_gateway_without_sessions_gets_the_key_header(server: Server, tmp_path: Path) -> None:
    gateway = _mirror(server, hashes=[BODY_SHA], session=False)
    assert _fetch(server, tmp_path, gateway).success  # type: ignore[attr-defined]
    assert server.asked(f"/gw/by-hash/{BODY_SHA}")[0]["apikey"] == "key"


def test_a_failing_mirror_falls_back_to_the_origin_at_once(server: Server, tmp_path: Path) -> None:
    gateway = _mirror(server, hashes=[BODY_SHA], object_status=500)
    assert _fetch(server, tmp_path, gateway).success  # type: ignore[attr-defined]
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
    assert _fetch(server, tmp_path, gateway).success  # type: ignore[attr-defined]
    assert server.asked(f"/gw/by-hash/{BODY_SHA}") == []
    assert len(server.asked("/origin")) == 1


def test_the_mirror_needs_a_key_and_a_known_hash(server: Server, tmp_path: Path) -> None:
    gateway = _mirror(server, hashes=[BODY_SHA])
    assert _fetch(server, tmp_path, gateway, apikey=None).success  # type: ignore[attr-defined]
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
    assert _fetch(server, tmp_path, "http://mirror.invalid").success  # type: ignore[attr-defined]
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
    assert _fetch(server, tmp_path, None).success  # type: ignore[attr-defined]
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


# --- records ------------------------------------------------------------------------------------


def _record(server: Server, vae_sha: str) -> ImageGenerationModelRecord:
    return ImageGenerationModelRecord.model_validate(
        {
            "name": "Split",
            "baseline": "flux_1",
            "nsfw": False,
            "config": {
                "download": [
                    {
                        "file_name": "split.safetensors",
                        "file_url": f"{server.url}/unet",
                        "sha256sum": BODY_SHA,
                    },
                    {
                        "file_name": "ae.safetensors",
                        "file_url": f"{server.url}/vae",
                        "sha256sum": vae_sha,
                        "file_purpose": "vae",
                    },
                ]
            },
        }
    )


def test_a_records_files_land_in_its_category_folder_and_components_beside_it(
    server: Server, tmp_path: Path
) -> None:
    vae = b"vae weights"
    server.paths["/unet"] = Behaviour(body=BODY)
    server.paths["/vae"] = Behaviour(body=vae)
    record = _record(server, hashlib.sha256(vae).hexdigest())
    (tmp_path / "compvis").mkdir()
    (tmp_path / "compvis" / "split.safetensors").write_bytes(b"corrupt")
    assert download_engine.download_record_files(record, tmp_path, use_configured_gateway=False)
    assert (tmp_path / "compvis" / "split.safetensors").read_bytes() == BODY  # the corrupt copy was replaced
    assert (tmp_path / "vae" / "ae.safetensors").read_bytes() == vae
    asked = len(server.requests)
    assert download_engine.download_record_files(
        record, tmp_path
    )  # all present and verified: nothing fetched
    assert len(server.requests) == asked


def test_a_record_with_a_missing_file_reports_false(server: Server, tmp_path: Path) -> None:
    server.paths["/unet"] = Behaviour(body=BODY)
    assert not download_engine.download_record_files(_record(server, "0" * 64), tmp_path)
    assert (tmp_path / "compvis" / "split.safetensors").exists()
    assert not (tmp_path / "vae").exists() or _listing(tmp_path / "vae") == []


def test_a_source_that_never_answers_times_out_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "READ_TIMEOUT_SECONDS", 0.2)
    with socket.socket() as listener:  # accepts connections (the kernel's backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/f"
        outcome = download_engine.download_file(url, tmp_path / "m.bin", max_retries=2)
    assert not outcome.success and outcome.sha256 is None
    assert _listing(tmp_path) == []  # no headers ever came: nothing was started
