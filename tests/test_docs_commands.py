"""Everything the docs show runs: `sh` and `python` blocks are executed, `console` blocks name real files.

The commands run from a scratch workspace that links the repository's examples/, contracts/,
tests/ and .venv, with the virtualenv first on PATH, next to the `hmr serve` the operators page
starts (its block is run here, not copied).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ProcessGroup, run_group, wait_for
from horde_model_reference.contracts import settings_table, settings_table_block

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCS = ("docs/operators.md", "docs/consumers.md", "docs/contributors.md", "deploy/README.md")
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
_REPO_PATH = re.compile(r"(?<![\w/.-])((?:deploy|docs|examples|contracts)/[\w./-]*\w)")

pytestmark = pytest.mark.integration


def _blocks(language: str) -> list[tuple[str, int, str]]:
    """(doc, index, code) of every block fenced with `language`, in document order."""
    found = []
    for doc in DOCS:
        for index, match in enumerate(_FENCE.finditer((REPO_ROOT / doc).read_text())):
            if match[1] == language:
                found.append((doc, index, match[2]))
    return found


def _is_serve(code: str) -> bool:
    return code.strip().startswith("hmr serve")


SH_BLOCKS = [block for block in _blocks("sh") if not _is_serve(block[2])]
PYTHON_BLOCKS = _blocks("python")


def _env(workspace: Path, nats_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HORDE_MODEL_REFERENCE_", "HMR_TEST_"))}
    env["PATH"] = (
        f"{workspace / '.venv' / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    )
    env["VIRTUAL_ENV"] = str(workspace / ".venv")
    env["HORDE_MODEL_REFERENCE_LOG_LEVEL"] = "WARNING"
    if nats_url:
        env["HORDE_MODEL_REFERENCE_NATS__URL"] = nats_url
    return env


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch directory that sees the repository's files but writes var/ of its own."""
    root = tmp_path_factory.mktemp("docs-workspace")
    for name in ("examples", "contracts", "tests", "docs", "deploy", "pyproject.toml"):
        (root / name).symlink_to(REPO_ROOT / name)
    venv = Path(sys.executable).parent.parent
    (root / ".venv").symlink_to(venv)
    return root


@pytest.fixture(scope="module")
def service(workspace: Path) -> Iterator[str]:
    """The operators page's `hmr serve` block, running; yields its (embedded) NATS URL."""
    serves = {code.strip() for _, _, code in _blocks("sh") if _is_serve(code)}
    assert len(serves) == 1, serves
    (command,) = serves
    url_file = workspace / "var" / "primary" / ".hmr" / "nats.url"
    with ProcessGroup(
        shlex.split(command),
        cwd=workspace,
        env=_env(workspace),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as serve:
        try:
            wait_for(lambda: url_file.is_file() or serve.process.poll() is not None, 60, f"`{command}`")
        finally:
            if not url_file.is_file():
                serve.kill()
        assert url_file.is_file(), f"`{command}` did not start: {serve.process.communicate()[1][-2000:]}"
        yield url_file.read_text().strip()
        code = serve.stop(signal.SIGTERM)
        stderr = serve.process.communicate()[1]
    assert code == 0, f"`{command}` did not stop cleanly: {stderr[-2000:]}"


@pytest.mark.parametrize(("doc", "index", "code"), SH_BLOCKS, ids=[f"{d}#{i}" for d, i, _ in SH_BLOCKS])
def test_sh_block_runs(doc: str, index: int, code: str, workspace: Path, service: str) -> None:
    result = run_group(
        ["bash", "-euo", "pipefail", "-c", code], cwd=workspace, env=_env(workspace), timeout=120
    )
    assert result.returncode == 0, (
        f"{doc} block {index} failed:\n{code}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )


@pytest.mark.parametrize(
    ("doc", "index", "code"), PYTHON_BLOCKS, ids=[f"{d}#{i}" for d, i, _ in PYTHON_BLOCKS]
)
def test_python_block_runs(doc: str, index: int, code: str, workspace: Path, service: str) -> None:
    script = workspace / f"snippet_{Path(doc).stem}_{index}.py"
    script.write_text(code)
    result = run_group(
        [sys.executable, str(script)], cwd=workspace, env=_env(workspace, service), timeout=120
    )
    assert result.returncode == 0, f"{doc} block {index} failed:\n{code}\n{result.stderr[-2000:]}"
    assert result.stdout.strip(), f"{doc} block {index} printed nothing"


def test_every_doc_has_runnable_blocks_and_the_serve_command() -> None:
    assert {doc for doc, _, _ in SH_BLOCKS} >= {
        "docs/operators.md",
        "docs/consumers.md",
        "docs/contributors.md",
    }
    assert len(PYTHON_BLOCKS) >= 3
    assert any(_is_serve(code) for _, _, code in _blocks("sh"))


def test_console_blocks_and_links_name_files_that_exist() -> None:
    for doc in DOCS:
        text = (REPO_ROOT / doc).read_text()
        for match in _FENCE.finditer(text):
            if match[1] == "console":
                created = {line.split()[2] for line in match[2].splitlines() if line.startswith("cp ")}
                for path in set(_REPO_PATH.findall(match[2])) - created:
                    assert (REPO_ROOT / path).exists(), f"{doc}: {path}"
        for target in _LINK.findall(text):
            if "://" not in target:
                assert ((REPO_ROOT / doc).parent / target).exists(), f"{doc}: broken link {target}"


def test_the_settings_table_in_operators_md_is_current() -> None:
    block = settings_table_block((REPO_ROOT / "docs" / "operators.md").read_text())
    assert block == settings_table(), (
        "docs/operators.md's settings table is out of date: run "
        "`python -m horde_model_reference.contracts --settings-table docs/operators.md`"
    )
