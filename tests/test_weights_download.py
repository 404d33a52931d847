"""The download engine, one source at a time, against a real HTTP server on 127.0.0.1.

Covers `download_file` (resume, restart, refusals, retries, cut-short and over-long bodies,
aborts, hung sources), the segmented path (and 8.6.2's `_segmented_download`, which horde-engine
imports) and `download_record_files`. The server is `test_weights_download_server`.
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from horde_model_reference import download_engine
from horde_model_reference.model_reference_records import (
    ImageGenerationModelRecord,
    TextGenerationModelRecord,
)
from horde_model_reference.weights.download import _transfer, engine
from horde_model_reference.weights.layout import UnsafeWeightsPathError
from test_weights_download_server import BODY, BODY_SHA, Behaviour, Server, isolated_downloads, listing, serve


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with isolated_downloads(monkeypatch):
        yield


@pytest.fixture
def server() -> Iterator[Server]:
    with serve() as state:
        yield state


# --- one source ---------------------------------------------------------------------------------


def test_a_verified_download_lands_with_its_digest_cache(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", expected_sha256=BODY_SHA)
    assert outcome == download_engine.DownloadOutcome(
        success=True, final_path=tmp_path / "m.bin", bytes_written=len(BODY), sha256=BODY_SHA
    )
    assert (tmp_path / "m.bin").read_bytes() == BODY
    assert (tmp_path / "m.sha256").read_text() == f"{BODY_SHA} *m.bin"  # the sha256sum format, as 8.6.2
    assert listing(tmp_path) == ["m.bin", "m.sha256"]


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
    (tmp_path / "m.bin").write_bytes(b"an older, wrong copy")
    outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", expected_sha256="0" * 64)
    assert not outcome.success
    assert outcome.sha256 == BODY_SHA and outcome.bytes_written == len(BODY)
    # No file and no partial; the rejected bytes' digest stays in `m.sha256`, as 8.6.2 leaves it.
    assert listing(tmp_path) == ["m.sha256"]
    assert (tmp_path / "m.sha256").read_text() == f"{BODY_SHA} *m.bin"


def test_a_present_file_that_matches_is_kept_without_a_request(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    (tmp_path / "m.bin").write_bytes(BODY)
    outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", expected_sha256=BODY_SHA)
    assert outcome == download_engine.DownloadOutcome(True, tmp_path / "m.bin", len(BODY), BODY_SHA)
    assert server.requests == []
    download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin")  # no hash: fetched again
    assert len(server.asked("/f")) == 1


def test_a_refusal_is_not_retried(server: Server, tmp_path: Path) -> None:
    for status in (401, 403, 404, 410):
        server.paths["/f"] = Behaviour(status=status)
        outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin")
        assert outcome == download_engine.DownloadOutcome(
            success=False, final_path=tmp_path / "m.bin", bytes_written=0, sha256=None
        )
    assert len(server.asked("/f")) == 4
    assert listing(tmp_path) == []


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
    assert listing(tmp_path) == ["m.sha256"]  # the digest of the 1000 bytes taken; no file


def test_a_progress_callback_can_abort_and_the_partial_goes(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    seen: list[tuple[int, int]] = []

    def stop(done: int, total: int) -> None:
        seen.append((done, total))
        raise download_engine.DownloadAborted

    with pytest.raises(download_engine.DownloadAborted):
        download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin", progress_callback=stop)
    assert seen and seen[0][1] == len(BODY)
    assert listing(tmp_path) == []


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
def test_a_cut_segment_resumes_its_own_range(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY, cut_ranges_first=1)
    outcome = download_engine.download_file(
        f"{server.url}/f", tmp_path / "m.bin", expected_sha256=BODY_SHA, connections=2
    )
    assert outcome.success and (tmp_path / "m.bin").read_bytes() == BODY
    ranges = server.ranges("/f")
    assert ranges[0] == "bytes=0-0" and len(ranges) == 4  # probe, two segments, one resumed segment
    planned = {"bytes=0-2499", "bytes=2500-4999"}
    assert set(ranges[1:3]) == planned
    (resumed,) = set(ranges[3:]) - planned
    assert resumed in {"bytes=1250-2499", "bytes=3750-4999"}  # from where the cut answer stopped
    assert listing(tmp_path) == ["m.bin", "m.sha256"]


@pytest.mark.usefixtures("small_segments")
def test_segments_that_keep_failing_fall_back_to_one_stream(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY, cut_ranges_first=100)
    outcome = download_engine.download_file(
        f"{server.url}/f", tmp_path / "m.bin", expected_sha256=BODY_SHA, connections=2, max_retries=2
    )
    assert outcome.success and (tmp_path / "m.bin").read_bytes() == BODY
    assert server.ranges("/f")[-1] is None  # the last request was the whole file, in one stream
    assert listing(tmp_path) == ["m.bin", "m.sha256"]


@pytest.mark.usefixtures("small_segments")
def test_a_segmented_download_never_resumes_and_supersedes_a_partial(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    # What a killed segmented run leaves: a full-size file with holes. It must never be installed.
    (tmp_path / "m.bin.spart").write_bytes(bytes(len(BODY)))
    outcome = download_engine.download_file(f"{server.url}/f", tmp_path / "m.bin")
    assert outcome.success and (tmp_path / "m.bin").read_bytes() == BODY
    assert listing(tmp_path) == ["m.bin", "m.sha256"]
    (tmp_path / "n.bin.part").write_bytes(BODY[:100])
    assert download_engine.download_file(f"{server.url}/f", tmp_path / "n.bin", connections=4).success
    assert listing(tmp_path) == ["m.bin", "m.sha256", "n.bin", "n.sha256"]  # the stale partial is gone


@pytest.mark.usefixtures("small_segments")
def test_any_callback_exception_during_segments_propagates(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)

    class Cancelled(Exception):
        pass

    def cancel(done: int, total: int) -> None:
        raise Cancelled(done)

    with pytest.raises(Cancelled):
        download_engine.download_file(
            f"{server.url}/f", tmp_path / "m.bin", connections=4, progress_callback=cancel
        )
    assert listing(tmp_path) == []


@pytest.mark.usefixtures("small_segments")
def test_hordelibs_segmented_download_entry_point(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)
    segmented = download_engine._segmented_download
    arguments: dict[str, Any] = {
        "expected_sha256": BODY_SHA,
        "progress_callback": None,
        "extra_headers": None,
        "max_retries": 2,
        "allow_redirects": True,
    }
    outcome = segmented(f"{server.url}/f", tmp_path / "m.bin", connections=4, **arguments)
    assert outcome == download_engine.DownloadOutcome(True, tmp_path / "m.bin", len(BODY), BODY_SHA)
    assert segmented(f"{server.url}/f", tmp_path / "o.bin", connections=1, **arguments) is None
    server.paths["/small"] = Behaviour(body=BODY[:999])
    assert segmented(f"{server.url}/small", tmp_path / "s.bin", connections=4, **arguments) is None
    assert segmented(f"{server.url}/absent", tmp_path / "a.bin", connections=4, **arguments) is None
    bad = segmented(
        f"{server.url}/f", tmp_path / "b.bin", connections=4, **{**arguments, "expected_sha256": "0" * 64}
    )
    assert bad is not None and not bad.success and bad.sha256 == BODY_SHA
    assert not (tmp_path / "b.bin").exists()


@pytest.mark.usefixtures("small_segments")
def test_a_source_unreachable_for_the_range_probe_is_tried_in_one_stream(tmp_path: Path) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{unused.getsockname()[1]}/f"  # bound, not listening: refused
        outcome = download_engine.download_file(url, tmp_path / "m.bin", connections=4, max_retries=1)
    assert not outcome.success and listing(tmp_path) == []


@pytest.mark.usefixtures("small_segments")
def test_an_abort_during_segments_removes_the_partial(server: Server, tmp_path: Path) -> None:
    server.paths["/f"] = Behaviour(body=BODY)

    def stop(done: int, total: int) -> None:
        raise download_engine.DownloadAborted

    with pytest.raises(download_engine.DownloadAborted):
        download_engine.download_file(
            f"{server.url}/f", tmp_path / "m.bin", connections=4, progress_callback=stop
        )
    assert listing(tmp_path) == []


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
    assert not (tmp_path / "vae").exists() or listing(tmp_path / "vae") == []


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
    assert listing(tmp_path) == []  # no headers ever came: nothing was started


@pytest.mark.parametrize("file_name", ["../../escaped.bin", "/etc/escaped.bin", "..", "a/../../x.bin"])
def test_a_file_name_leaving_the_weights_root_is_refused_before_any_request(
    server: Server, tmp_path: Path, file_name: str
) -> None:
    server.paths["/unet"] = Behaviour(body=BODY)
    record = ImageGenerationModelRecord.model_validate(
        {
            "name": "Escape",
            "baseline": "flux_1",
            "nsfw": False,
            "config": {
                "download": [
                    {"file_name": file_name, "file_url": f"{server.url}/unet", "sha256sum": BODY_SHA}
                ]
            },
        }
    )
    with pytest.raises(UnsafeWeightsPathError, match="Escape") as caught:
        download_engine.download_record_files(record, tmp_path / "root")
    assert caught.value.value == file_name
    assert server.requests == []
    assert listing(tmp_path) == []


def test_a_record_whose_category_has_no_weights_folder_reports_false(server: Server, tmp_path: Path) -> None:
    server.paths["/m"] = Behaviour(body=BODY)
    record = TextGenerationModelRecord.model_validate(
        {
            "name": "Words",
            "baseline": "llama",
            "parameters": 7_000_000_000,
            "config": {
                "download": [{"file_name": "m.gguf", "file_url": f"{server.url}/m", "sha256sum": BODY_SHA}]
            },
        }
    )
    assert not download_engine.download_record_files(record, tmp_path)
    assert server.requests == []
    assert listing(tmp_path) == []
