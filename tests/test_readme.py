"""The README's consumer example runs as written against a real service on real NATS."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import anyio
import pytest

from bus_harness import REPO_ROOT, running_service

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _python_blocks() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


async def test_readme_consumer_example_runs(tmp_path: Path, shared_data: Path, nats_url: str) -> None:
    [example] = _python_blocks()
    assert 'nats_url="nats://127.0.0.1:4222"' in example
    base = tmp_path / "primary"
    shutil.copytree(shared_data / "golden-v2", base)
    script = tmp_path / "example.py"
    script.write_text(example.replace("nats://127.0.0.1:4222", nats_url) + "\nprint('sdxl', len(sdxl))\n")
    async with running_service(base, nats_url=nats_url, subject_prefix="hmr.v1") as service:
        result = await anyio.to_thread.run_sync(
            lambda: subprocess.run(
                [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
            )
        )
        assert result.returncode == 0, result.stderr[-2000:]
        lines = result.stdout.splitlines()
        assert lines[-2] == str(service.revision("image_generation"))
        assert lines[-1].startswith("sdxl ") and int(lines[-1].split()[1]) > 0


def _write_flow_commands() -> list[str]:
    text = (REPO_ROOT / "README.md").read_text()
    section = text[text.index("### Changing the reference") :]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.DOTALL)
    return [line.split("#")[0].strip() for line in blocks[1].splitlines() if line.strip()]


def test_readme_write_workflow_runs(tmp_path: Path, nats_url: str, subject_prefix: str) -> None:
    base = tmp_path / "primary"
    hmr = str(Path(sys.executable).parent / "hmr")
    env = dict(os.environ)
    env.update(
        HORDE_MODEL_REFERENCE_WRITES__REQUESTER_KEYS="alice-key",
        HORDE_MODEL_REFERENCE_WRITES__APPROVER_KEYS="bob-key",
        HORDE_MODEL_REFERENCE_NATS__URL=nats_url,
        HORDE_MODEL_REFERENCE_NATS__SUBJECT_PREFIX=subject_prefix,
    )
    serve = subprocess.Popen(
        [hmr, "serve", "--base-path", str(base), "--seed-from", str(REPO_ROOT / "examples" / "reference")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        outputs = []
        for command in _write_flow_commands():
            args = shlex.split(command.replace("var/primary", str(base)))
            assert args[0] == "hmr"
            for attempt in range(50):
                result = subprocess.run(
                    [hmr, *args[1:]], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
                )
                if (
                    result.returncode == 0
                    or attempt == 49
                    or "no answer" not in result.stderr + result.stdout
                ):
                    break
                time.sleep(0.2)
            assert result.returncode == 0, (command, result.stdout, result.stderr)
            outputs.append(result.stdout)
        assert "clip revision 2" in outputs[3]
        assert "applied" in outputs[4]
        assert '"my-clip"' in (base / "clip.json").read_text()
    finally:
        serve.terminate()
        assert serve.wait(timeout=15) == 0


def test_readme_names_the_two_commands() -> None:
    text = (REPO_ROOT / "README.md").read_text()
    assert "make run" in text and "make test" in text
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, flags=re.MULTILINE) and re.search(
        r"^test:", makefile, flags=re.MULTILINE
    )


def test_readme_quick_start_second_terminal(tmp_path: Path) -> None:
    """`make run`'s service (embedded NATS, example catalog), then the quick start's watch, status, edit."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    run_line = re.search(r"^run:.*\n\t(.*)$", makefile, flags=re.MULTILINE)
    assert run_line is not None
    args = shlex.split(
        run_line.group(1).replace("$(VENV)/bin/", "").replace("$(EXAMPLE)", "examples/reference")
    )
    assert args[:2] == ["hmr", "serve"]
    base = tmp_path / "primary"
    args = [arg.replace("var/primary", str(base)) for arg in args]
    bin_dir = Path(sys.executable).parent
    env = {key: value for key, value in os.environ.items() if not key.startswith("HORDE_MODEL_REFERENCE_")}
    serve = subprocess.Popen(
        [str(bin_dir / "hmr"), *args[1:]],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url_file = base / ".hmr" / "nats.url"
        deadline = time.monotonic() + 30
        while not url_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert url_file.exists(), "hmr serve did not start its embedded NATS"
        hmr = [str(bin_dir / "hmr")]
        status = subprocess.run(
            [*hmr, "status", "--base-path", str(base)], env=env, capture_output=True, text=True, timeout=30
        )
        assert status.returncode == 0, status.stderr
        assert re.search(r"^clip\s+loaded\s+1\s", status.stdout, flags=re.MULTILINE), status.stdout
        watch = subprocess.Popen(
            [*hmr, "watch", "--base-path", str(base), "--count", "1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert watch.stdout is not None
        assert watch.stdout.readline().startswith("watching ")
        catalog = json.loads((base / "clip.json").read_text())
        next(iter(catalog.values()))["description"] = "edited in the quick start"
        (base / "clip.json").write_text(json.dumps(catalog, indent=4))
        line = watch.stdout.readline()
        assert watch.wait(timeout=30) == 0
        assert "changed  clip" in line and "rev=2" in line, line
    finally:
        serve.terminate()
        assert serve.wait(timeout=20) == 0
