"""A newcomer's first hour with `hmr` (issue 17): each bug found there, as a test.

Commands run as processes in process groups of their own (killed at teardown), next to a real
`hmr serve` with its embedded NATS server, and synchronise on what they print or write.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from conftest import Lines, ProcessGroup, run_group, wait_for
from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.bus.embedded import EmbeddedNatsServer, find_nats_server, free_port
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.cli import main
from horde_model_reference.errors import BackendError

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples" / "reference"
HMR = str(Path(sys.executable).parent / "hmr")
CLIP = MODEL_REFERENCE_CATEGORY.clip

pytestmark = pytest.mark.integration

Start = Callable[..., ProcessGroup]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HORDE_MODEL_REFERENCE_", "HMR_TEST_"))}
    env.update(extra)
    return env


def _hmr(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return run_group([HMR, *args], env=_env(**env), timeout=timeout)


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting to be reaped has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


class Served:
    """`hmr serve --base-path BASE` with its embedded NATS server; its log in BASE/../serve-N.log."""

    def __init__(self, start: Start, base: Path, *extra: str) -> None:
        self.base = base
        self.url_file = base / ".hmr" / "nats.url"
        self.url_file.unlink(missing_ok=True)
        base.parent.mkdir(parents=True, exist_ok=True)
        runs = len(list(base.parent.glob("serve-*.log")))
        self.log = base.parent / f"serve-{runs}.log"
        with self.log.open("w") as out:
            self.group = start(
                [HMR, "serve", "--base-path", str(base), *extra],
                env=_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for(
            lambda: self.url_file.is_file() or self.group.process.poll() is not None,
            120,
            "hmr serve to start",
        )
        assert self.url_file.is_file(), self.log.read_text()[-3000:]
        self.url = self.url_file.read_text().strip()

    @property
    def nats_pid(self) -> int:
        return int((self.base / ".hmr" / "nats" / "nats-server.pid").read_text())

    def status_json(self) -> dict[str, object]:
        result = _hmr("status", "--base-path", str(self.base), "--json")
        assert result.returncode == 0, result.stderr
        reply: dict[str, object] = json.loads(result.stdout)
        return reply

    def stop(self) -> None:
        assert self.group.stop(signal.SIGTERM, timeout=60) == 0, self.log.read_text()[-3000:]


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return tmp_path / "primary"


@pytest.fixture
def served(process_groups: Start, base: Path) -> Served:
    return Served(process_groups, base, "--seed-from", str(EXAMPLES))


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


# -- reaching the service ------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["status", "changes", "watch"])
def test_an_unreachable_url_honours_the_timeout_with_one_line(command: str) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    result = _hmr(command, "--nats-url", url, "--timeout", "1")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"hmr {command}: cannot reach NATS at {url} within 1s: is `hmr serve` running?"
    ]


def test_a_url_that_is_no_url_honours_the_timeout_with_one_line() -> None:
    result = _hmr("status", "--timeout", "1", HORDE_MODEL_REFERENCE_NATS__URL="notaurl")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "hmr status: cannot reach NATS at notaurl within 1s: is `hmr serve` running?"
    ]


def test_status_after_the_service_stopped_says_so(served: Served) -> None:
    served.stop()
    result = _hmr("status", "--base-path", str(served.base))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"hmr status: no service is running under {served.base}: {served.url_file} is absent "
        f"(`hmr serve --base-path {served.base}` writes it while it runs)"
    ]


def test_status_and_watch_end_without_disconnect_noise(served: Served, process_groups: Start) -> None:
    quiet = _hmr("status", "--base-path", str(served.base))
    assert quiet.returncode == 0 and quiet.stderr == ""
    chatty = _hmr("--log-level", "INFO", "status", "--base-path", str(served.base))
    assert chatty.returncode == 0
    assert "nats_closed_unexpectedly" not in chatty.stderr
    assert not re.search(r'"event": "nats_disconnected", "level": "warning"', chatty.stderr), chatty.stderr
    watch = process_groups(
        [HMR, "--log-level", "INFO", "watch", "--base-path", str(served.base)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.process.stdout is not None
    Lines(watch.process.stdout).expect(r"^watching ")
    watch.process.send_signal(signal.SIGTERM)
    assert watch.process.wait(timeout=60) == 0  # SIGTERM is a normal way to stop watching
    assert watch.process.stderr is not None
    stderr = watch.process.stderr.read()
    assert "nats_closed_unexpectedly" not in stderr
    assert not re.search(r'"event": "nats_disconnected", "level": "warning"', stderr), stderr


def test_watch_ready_file_is_written_once_subscribed(
    served: Served, process_groups: Start, tmp_path: Path
) -> None:
    ready = tmp_path / "watching"
    watch = process_groups(
        [HMR, "watch", "--base-path", str(served.base), "--count", "1", "--ready-file", str(ready)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(lambda: ready.exists() or watch.process.poll() is not None, 120, "the ready file")
    assert ready.read_text().strip() == served.url
    (served.base / "clip.json").write_text(
        (served.base / "clip.json").read_text().replace("example_openai", "v2")
    )
    assert watch.process.wait(timeout=120) == 0
    assert watch.process.stdout is not None
    assert "changed  clip" in watch.process.stdout.read()


def test_watch_follows_a_restarted_service_on_another_port(
    served: Served, process_groups: Start, base: Path
) -> None:
    watch = process_groups(
        [HMR, "watch", "--base-path", str(base)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert watch.process.stdout is not None
    lines = Lines(watch.process.stdout)
    lines.expect(r"^watching ")
    old_port = int(served.url.rsplit(":", 1)[1])
    served.stop()
    with socket.socket() as squatter:  # the recorded port is taken: the service moves
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", old_port))
        squatter.listen()
        again = Served(process_groups, base)
        assert again.url != served.url
        lines.expect(rf"^following the service at {re.escape(again.url)}$")
    (base / "clip.json").write_text((base / "clip.json").read_text().replace("example_openai", "moved"))
    lines.expect(r"changed  clip\s+rev=2 ")
    assert watch.stop(signal.SIGTERM, timeout=60) == 0


# -- the embedded NATS server --------------------------------------------------------------------


def test_a_second_serve_is_refused_in_one_line_and_leaves_the_first_alone(served: Served) -> None:
    second = _hmr("serve", "--base-path", str(served.base))
    assert second.returncode == 1
    assert second.stderr.splitlines()[-1].endswith("another hmr serve is running with this data directory")
    assert served.url_file.read_text().strip() == served.url  # still findable
    assert _hmr("status", "--base-path", str(served.base)).returncode == 0


def test_a_restarted_service_keeps_its_port(served: Served, process_groups: Start, base: Path) -> None:
    served.stop()
    assert Served(process_groups, base).url == served.url


def test_sigkill_of_serve_takes_its_nats_server_along(
    served: Served, process_groups: Start, base: Path
) -> None:
    nats_pid = served.nats_pid
    assert _alive(nats_pid)
    served.group.process.send_signal(signal.SIGKILL)
    served.group.process.wait(timeout=60)
    wait_for(lambda: not _alive(nats_pid), 60, f"nats-server {nats_pid} to die with its parent")
    stale = _hmr("status", "--base-path", str(base), "--timeout", "1")  # the URL file is left behind
    assert stale.returncode == 1
    assert stale.stderr.splitlines() == [
        f"hmr status: cannot reach NATS at {served.url} (from {served.url_file}) within 1s: "
        "is `hmr serve` running?"
    ]
    again = Served(process_groups, base)
    assert again.url == served.url and again.nats_pid != nats_pid
    health = again.status_json()["categories"]
    assert isinstance(health, dict) and health["clip"]["revision"] == 1


def test_a_stale_nats_server_on_the_store_is_stopped_at_start(tmp_path: Path) -> None:
    store = (tmp_path / "nats").resolve()
    store.mkdir()
    port = free_port()
    args = [str(find_nats_server()), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)]
    with ProcessGroup(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) as stale:
        (store / "nats-server.pid").write_text(f"{stale.pid}\n")
        (store / "port").write_text(f"{port}\n")
        wait_for(lambda: not _port_free(port), 60, "the stale nats-server to listen")
        with EmbeddedNatsServer(store) as server:
            assert stale.process.poll() is not None, "the stale server still runs"
            assert server.running


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_the_recorded_port_is_reused_only_while_free(tmp_path: Path) -> None:
    with EmbeddedNatsServer(tmp_path / "nats") as first:
        port = first.port
    assert (tmp_path / "nats" / "port").read_text().strip() == str(port)
    with EmbeddedNatsServer(tmp_path / "nats") as second:
        assert second.port == port
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with EmbeddedNatsServer(tmp_path / "nats") as third:
            assert third.port != port
    assert (tmp_path / "nats" / "port").read_text().strip() == str(third.port)


# -- a corrupt catalog -----------------------------------------------------------------------------


def test_a_corrupt_catalog_is_shown_by_status(served: Served) -> None:
    (served.base / "clip.json").write_text('{"broken": \n')

    def clip() -> dict[str, object]:
        categories = served.status_json()["categories"]
        assert isinstance(categories, dict)
        state: dict[str, object] = categories["clip"]
        return state

    wait_for(lambda: clip()["last_error"], 120, "clip's last_error", interval=0.2)
    state = clip()
    assert state["state"] == "loaded" and state["revision"] == 1  # the last good snapshot is kept
    assert "clip.json" in str(state["last_error"]) and "cannot be decoded" in str(state["last_error"])
    assert isinstance(state["fetch_failures"], int) and state["fetch_failures"] > 0
    table = _hmr("status", "--base-path", str(served.base))
    assert re.search(r"^clip\s+loaded\s+1 .*cannot be decoded", table.stdout, flags=re.MULTILINE), (
        table.stdout
    )
    assert '"event": "catalog_rejected"' in served.log.read_text()


def test_file_backend_raises_once_per_corrupt_version_and_keeps_nothing_quiet(tmp_path: Path) -> None:
    good = (EXAMPLES.parent / "records" / "my-clip.json").read_text()
    (tmp_path / "clip.json").write_text(json.dumps({"my-clip": json.loads(good)}))
    backend = FileSystemBackend(tmp_path)
    first = backend.fetch_category_sync(CLIP)
    assert first is not None
    (tmp_path / "clip.json").write_text('{"broken": ')
    with pytest.raises(BackendError, match="cannot be decoded"):
        backend.fetch_category_sync(CLIP)
    assert backend.fetch_category_sync(CLIP) is first  # reported once; the caller kept its copy
    fresh = FileSystemBackend(tmp_path)  # nothing good to fall back on: every fetch raises
    for _ in range(2):
        with pytest.raises(BackendError, match="cannot be decoded"):
            fresh.fetch_category_sync(CLIP)


# -- the base path ---------------------------------------------------------------------------------


def test_serve_warns_when_it_creates_the_base_path(process_groups: Start, tmp_path: Path) -> None:
    base = tmp_path / "does" / "not" / "exist"
    served = Served(process_groups, base)
    served.stop()
    log = served.log.read_text()
    assert '"event": "base_path_created"' in log and '"event": "base_path_empty"' in log, log[-3000:]


def test_an_unusable_base_path_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = _hmr("serve", "--base-path", str(blocker / "base"))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"hmr serve: cannot use the base path {blocker / 'base'}: Not a directory"
    ]


# -- writes ----------------------------------------------------------------------------------------


def test_propose_names_the_malformed_file_and_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "record.json"
    record.write_text('{\n  "name": "x",\n  "config": {,}\n}\n')
    args = ["propose", "create", "clip", "x", "--record", str(record), "--nats-url", "nats://127.0.0.1:1"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hmr propose: {record} is not valid JSON at line 3, column 14"), err


def test_a_delete_without_base_revision_names_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["propose", "delete", "clip", "x", "--nats-url", "nats://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "--base-revision" in err and "base_revision=None" not in err


def test_print_id_prints_only_the_id(process_groups: Start, base: Path) -> None:
    keys = {"HORDE_MODEL_REFERENCE_WRITES__REQUESTER_KEYS": "alice-key"}
    with (base.parent / "serve-w.log").open("w") as out:
        group = process_groups(
            [HMR, "serve", "--base-path", str(base), "--seed-from", str(EXAMPLES)],
            env=_env(**keys),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for(lambda: (base / ".hmr" / "nats.url").is_file(), 120, "hmr serve to start")
    template = json.loads((EXAMPLES.parent / "records" / "my-clip.json").read_text())
    ids = []
    for name in ("one", "two"):
        record = str(base.parent / f"{name}.json")
        Path(record).write_text(json.dumps(template | {"name": name}))
        result = _hmr(
            "propose",
            "create",
            "clip",
            name,
            "--record",
            record,
            "--print-id",
            "--api-key",
            "alice-key",
            "--base-path",
            str(base),
        )
        assert result.returncode == 0, result.stderr
        ids.append(int(result.stdout))
    assert ids[1] == ids[0] + 1
    assert group.stop(signal.SIGTERM, timeout=60) == 0


# -- settings, help, version -----------------------------------------------------------------------


def test_an_invalid_setting_does_not_block_help_or_version() -> None:
    bad = {"HORDE_MODEL_REFERENCE_CACHE_TTL_SECONDS": "soon"}
    for args in (["--help"], ["serve", "--help"], ["status", "--help"], ["propose", "--help"]):
        result = _hmr(*args, **bad)
        assert result.returncode == 0 and "usage: hmr" in result.stdout, (args, result.stderr)
    version = _hmr("--version", **bad)
    assert version.returncode == 0 and re.fullmatch(r"hmr \d+\.\d+\.\d+\S*\n", version.stdout)
    status = _hmr("status", "--base-path", "/nonexistent", **bad)
    assert status.returncode == 1
    assert status.stderr.splitlines() == [
        "hmr status: HORDE_MODEL_REFERENCE_CACHE_TTL_SECONDS='soon' is invalid: expected `float`, got `str`"
    ]
