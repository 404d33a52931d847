"""The README runs as a newcomer types it.

Every test works in a temporary copy of the repository whose `.venv` is this virtualenv (as after
`make setup`), with that virtualenv off PATH: commands find `hmr` only through the README's own
`source .venv/bin/activate`. The service is started with the README's `make run` line, stopped
with Ctrl-C (SIGINT to its process group, as a terminal does), and every block is run by bash
exactly as the README prints it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Lines, ProcessGroup, run_group, wait_for

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent.parent

pytestmark = pytest.mark.integration


def _section(title: str) -> str:
    text = (REPO_ROOT / "README.md").read_text()
    start = text.index(f"\n## {title}\n") if f"\n## {title}\n" in text else text.index(f"\n### {title}\n")
    end = text.find("\n#", start + 1)
    return text[start:end]


def _blocks(title: str, language: str = "sh") -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(title), flags=re.DOTALL)


def _env(**extra: str) -> dict[str, str]:
    """The user's environment: no project settings, this virtualenv not on PATH, and not inside a
    `make` (as under `make test`, whose MAKELEVEL would make `make` print its directory)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("HORDE_MODEL_REFERENCE_", "HMR_TEST_", "VIRTUAL_ENV"))
        and key not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")
    }
    venv_bin = str(VENV / "bin")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p and p != venv_bin)
    env.update(extra)
    return env


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the repository after `make setup` (its `.venv` is this virtualenv)."""
    root = tmp_path / "horde-model-reference"
    root.mkdir()
    for name in ("README.md", "Makefile", "pyproject.toml"):
        shutil.copy2(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / "examples", root / "examples")
    (root / ".venv").symlink_to(VENV)
    stamp = VENV / ".installed"
    if stamp.exists():  # installed after the last pyproject edit: `make` does not reinstall
        before = stamp.stat().st_mtime - 60
        os.utime(root / "pyproject.toml", (before, before))
    return root


class Service:
    """`make run` (or the README's variant of it) in a terminal of its own."""

    def __init__(self, command: str, cwd: Path, log: Path) -> None:
        self.command = command
        self.log = log
        self.url_file = cwd / "var" / "primary" / ".hmr" / "nats.url"
        self.url_file.unlink(missing_ok=True)
        with log.open("w") as out:
            self.group = ProcessGroup(
                ["bash", "-c", command], cwd=cwd, env=_env(), stdout=out, stderr=subprocess.STDOUT
            )
        wait_for(
            lambda: self.url_file.is_file() or self.group.process.poll() is not None, 120, f"`{command}`"
        )
        assert self.url_file.is_file(), f"`{command}` did not start:\n{log.read_text()[-3000:]}"

    def ctrl_c(self) -> str:
        """Stop it as Ctrl-C does; the log of `hmr serve`, checked for a clean stop."""
        self.group.stop(signal.SIGINT, timeout=30)
        output = self.log.read_text()
        assert "service_stopped" in output and "Traceback" not in output, output[-3000:]
        return output


@pytest.fixture
def make_run(checkout: Path) -> Iterator[Service]:
    """The quick start's `make run`, running."""
    (first,) = [line for line in _blocks("Quick start")[0].splitlines() if line.startswith("make run")]
    service = Service(first.split("#")[0].strip(), checkout, checkout / "make-run.log")
    try:
        yield service
    finally:
        service.group.kill()


def test_readme_names_the_two_commands() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    assert "make run" in text and "make test" in text
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, flags=re.MULTILINE) and re.search(
        r"^test:", makefile, flags=re.MULTILINE
    )


def test_quick_start_as_typed(checkout: Path, make_run: Service) -> None:
    """Second terminal: activate, status, watch; third terminal: the edit; the watch shows it."""
    second, third = _blocks("Quick start")[1:3]
    assert second.startswith("source .venv/bin/activate\n")
    with ProcessGroup(
        ["bash", "-euo", "pipefail", "-c", second],
        cwd=checkout,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as terminal:
        assert terminal.process.stdout is not None
        lines = Lines(terminal.process.stdout)
        lines.expect(r"^clip\s+loaded\s+1\s")
        lines.expect(r"^watching hmr\.v1\.\* on nats://127\.0\.0\.1:\d+")
        edit = run_group(["bash", "-euo", "pipefail", "-c", third], cwd=checkout, env=_env(), timeout=60)
        assert edit.returncode == 0, edit.stderr
        assert re.search(r"changed  clip\s+rev=2 ", lines.expect(r"changed  clip"))
        assert terminal.stop(signal.SIGINT, timeout=30) == 0, lines.seen  # Ctrl-C ends `hmr watch`: 0
    make_run.ctrl_c()


def test_worker_snippet_runs_against_make_run(checkout: Path, make_run: Service) -> None:
    """Saved as worker.py and run with `python worker.py` in the activated virtualenv."""
    [snippet] = _blocks("Using it in a worker or service", "python")
    (checkout / "worker.py").write_text(snippet)
    result = run_group(
        ["bash", "-c", "source .venv/bin/activate && python worker.py"], cwd=checkout, env=_env(), timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first, revision = result.stdout.splitlines()[-2:]
    assert first == "Quarry Photoreal 6 ['Quarry Photoreal']", result.stdout
    assert revision == "1"


def test_worker_snippet_without_a_service_says_the_bus_had_no_data(
    checkout: Path, nats_url: str, subject_prefix: str
) -> None:
    """A URL file left behind, no service publishing: a `BusNoDataError`, not `ModelNotFoundError`."""
    [snippet] = _blocks("Using it in a worker or service", "python")
    (checkout / "worker.py").write_text(snippet)
    url_file = checkout / "var" / "primary" / ".hmr" / "nats.url"
    url_file.parent.mkdir(parents=True)
    url_file.write_text(nats_url)
    result = run_group(
        ["bash", "-c", "source .venv/bin/activate && python worker.py"],
        cwd=checkout,
        env=_env(HORDE_MODEL_REFERENCE_NATS__SUBJECT_PREFIX=subject_prefix),
        timeout=120,
    )
    assert result.returncode == 1
    assert re.search(
        r"^horde_model_reference\.errors\.BusNoDataError: the bus had no model reference data in time",
        result.stderr,
        flags=re.MULTILINE,
    ), result.stderr[-3000:]
    assert "ModelNotFoundError" not in result.stderr


def test_example_consumer_runs_as_its_docstring_says(checkout: Path, make_run: Service) -> None:
    docstring = (checkout / "examples" / "consumer.py").read_text().split('"""')[1]
    [command] = [line.strip() for line in docstring.splitlines() if "--base-path var/primary" in line]
    with ProcessGroup(
        ["bash", "-c", f"source .venv/bin/activate && {command}"],
        cwd=checkout,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as consumer:
        assert consumer.process.stdout is not None
        lines = Lines(consumer.process.stdout)
        lines.expect(r"^consumer: holding image_generation revision 1 \(6 models\)")
        lines.expect(r"^consumer: following changes \(connected=True\)")
        assert consumer.stop(signal.SIGTERM, timeout=30) == 0, lines.seen


def _walk_through(checkout: Path) -> list[str]:
    """The write workflow's two blocks, each in the second terminal (virtualenv active)."""
    outputs = []
    for block in _blocks("Changing the reference")[1:3]:
        script = f"source .venv/bin/activate\nset -x\n{block}"
        result = run_group(["bash", "-euo", "pipefail", "-c", script], cwd=checkout, env=_env(), timeout=180)
        assert result.returncode == 0, f"{block}\n{result.stdout}\n{result.stderr[-3000:]}"
        outputs.append(result.stdout)
    return outputs


def test_write_walk_through_as_typed_twice(checkout: Path) -> None:
    """Create my-clip, then delete it; twice, so no step depends on a change id or revision."""
    start = _blocks("Changing the reference")[0]
    assert "make run" in start
    service = Service(start.strip(), checkout, checkout / "make-run-keys.log")
    try:
        first = _walk_through(checkout)
        assert re.search(r"^applied \d+: clip revision 2$", first[0], flags=re.MULTILINE), first[0]
        assert re.search(r"^applied \d+: clip revision 3$", first[1], flags=re.MULTILINE), first[1]
        second = _walk_through(checkout)
        assert re.search(r"^applied \d+: clip revision 4$", second[0], flags=re.MULTILINE), second[0]
        assert re.search(r"^applied \d+: clip revision 5$", second[1], flags=re.MULTILINE), second[1]
        assert '"my-clip"' not in (checkout / "var" / "primary" / "clip.json").read_text()
        ids = [
            int(m) for out in first + second for m in re.findall(r"^applied (\d+):", out, flags=re.MULTILINE)
        ]
        assert len(set(ids)) == 4, ids
        service.ctrl_c()
    finally:
        service.group.kill()
    after = run_group(
        ["bash", "-c", "source .venv/bin/activate && hmr status --base-path var/primary"],
        cwd=checkout,
        env=_env(),
        timeout=60,
    )
    assert after.returncode == 2
    assert after.stderr.strip() == (
        "hmr status: no service is running under var/primary: var/primary/.hmr/nats.url is absent "
        "(`hmr serve --base-path var/primary` writes it while it runs)"
    )


def test_makefile_help_setup_and_bench_as_the_readme_says() -> None:
    help_text = run_group(["make", "help"], cwd=REPO_ROOT, env=_env(), timeout=60)
    assert help_text.returncode == 0
    for target in ("setup", "run", "test", "lint", "bench", "contracts", "clean"):
        assert re.search(rf"^  {target}\s+\S", help_text.stdout, flags=re.MULTILINE), help_text.stdout
    makefile = (REPO_ROOT / "Makefile").read_text()
    setup_recipe = makefile[makefile.index("$(STAMP): pyproject.toml") : makefile.index("\nsetup:")]
    assert "--quiet" not in setup_recipe
    dry = run_group(
        ["make", "-n", "-o", ".venv/.installed", "bench", "ARGS=--quick --no-ref"],
        cwd=REPO_ROOT,
        env=_env(),
        timeout=60,
    )
    assert dry.stdout.strip().endswith("bench/run.py --quick --no-ref"), dry.stdout
    assert "bench/run.py --help" in (REPO_ROOT / "README.md").read_text()
