"""The `hmr` command's offline subcommands and its errors for bad input."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from horde_model_reference.cli import main

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples" / "reference"


@pytest.fixture(autouse=True)
def _no_bus_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("HORDE_MODEL_REFERENCE_"):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`main()` configures logging for a process; give the other tests theirs back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_show_summarises_the_example_catalog(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--legacy", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "image_generation" in out and "text_generation" in out


def test_show_lists_names_and_prints_a_record(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--legacy", str(EXAMPLES), "--category", "clip"]) == 0
    name = capsys.readouterr().out.split()[0]
    assert main(["show", "--legacy", str(EXAMPLES), "--category", "clip", "--model", name]) == 0
    assert f'"name": "{name}"' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "/nonexistent/catalogs"], 2, "is not a directory"),
        (["show", "--legacy", str(EXAMPLES), "--category", "dalle"], 1, "unknown category 'dalle'"),
        (
            ["show", "--legacy", str(EXAMPLES), "--category", "video_generation"],
            1,
            "no video_generation catalog",
        ),
        (["show", "--legacy", str(EXAMPLES), "--category", "clip", "--model", "nope"], 1, "no model 'nope'"),
        (["status", "--base-path", "/nonexistent/base"], 2, "no service is running under /nonexistent/base"),
        (["watch", "--base-path", "/nonexistent/base"], 2, "no service is running under /nonexistent/base"),
        (["changes", "--base-path", "/nonexistent/base"], 2, "no service is running under /nonexistent/base"),
    ],
)
def test_bad_input_is_a_clear_error(
    args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == code
    assert message in capsys.readouterr().err


def test_an_invalid_setting_stops_the_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HORDE_MODEL_REFERENCE_CACHE_TTL_SECONDS", "soon")
    assert main(["status", "--base-path", "/nonexistent/base"]) == 1
    assert "HORDE_MODEL_REFERENCE_CACHE_TTL_SECONDS" in capsys.readouterr().err
