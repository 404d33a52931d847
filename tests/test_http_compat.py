"""Compatibility: today's library (horde-model-reference 8.6.2, its own `HTTPBackend`) reads our server.

The reference runs on Python 3.12 in the project-local `.venv-ref` that the benchmarks build and
reuse (`bench/_common.ensure_ref_venv`); without a Python 3.12 the test is skipped with the
reason. Our server is `hmr serve`'s supervisor over the real golden-v2 catalogs, served by
`serve_http` on 127.0.0.1. The reference reads every category through its backend (the JSON it
gets must equal the catalog), validates them with its own pydantic records through its manager
(every record, every field), and reads the legacy files of image and text generation.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.catalog import decode_catalog
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor
from horde_model_reference.http import HttpEndpoint, serve_http
from horde_model_reference.legacy import to_legacy_stable_diffusion, to_legacy_text_db
from horde_model_reference.supervisor import ServiceConfig
from horde_model_reference.supervisor.testing import running_service

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.slow]

BENCH_DIR = Path(__file__).resolve().parent.parent / "bench"

_PROBE = r"""
import json, os, sys, tempfile
url, cache = sys.argv[1], sys.argv[2]
os.environ.update({
    "AIWORKER_CACHE_HOME": cache,
    "HORDE_MODEL_REFERENCE_REPLICATE_MODE": "REPLICA",
    "HORDE_MODEL_REFERENCE_PRIMARY_API_URL": url,
    "HORDE_MODEL_REFERENCE_ENABLE_GITHUB_FALLBACK": "false",
})
from horde_model_reference import ModelReferenceManager, ReplicateMode
from horde_model_reference.backends.github_backend import GitHubBackend
from horde_model_reference.backends.http_backend import HTTPBackend
from horde_model_reference.meta_consts import MODEL_REFERENCE_CATEGORY

backend = HTTPBackend(
    primary_api_url=url,
    github_backend=GitHubBackend(base_path=cache),
    enable_github_fallback=False,
    retry_max_attempts=1,
)
out = {"backend": {}, "manager": {}, "legacy": {}}
for category in MODEL_REFERENCE_CATEGORY:
    out["backend"][category.value] = backend.fetch_category(category, force_refresh=True)
manager = ModelReferenceManager(backend=backend, replicate_mode=ReplicateMode.REPLICA)
for category, records in manager.get_all_model_references().items():
    out["manager"][category.value] = {
        key: record.model_dump(mode="json", exclude_none=True, by_alias=True) for key, record in records.items()
    }
for category in (MODEL_REFERENCE_CATEGORY.image_generation, MODEL_REFERENCE_CATEGORY.text_generation):
    legacy = backend.get_legacy_json(category, redownload=True)
    out["legacy"][category.value] = sorted(legacy) if legacy is not None else None
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="session")
def ref_python() -> Path:
    """The reference's interpreter in `.venv-ref` (built once by the bench helper, then reused)."""
    if str(BENCH_DIR) not in sys.path:
        sys.path.insert(0, str(BENCH_DIR))
    import _common  # type: ignore[import-not-found]  # bench/_common.py: the `.venv-ref` builder

    status = _common.ensure_ref_venv()
    if status.python is None:
        pytest.skip(f"the reference implementation is not available: {status.message}")
    return Path(status.python)


async def _run_reference(python: Path, url: str, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "ref_http_backend_probe.py"
    script.write_text(_PROBE)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["LOGURU_LEVEL"] = "ERROR"
    cache = tmp_path / "ref-cache"
    cache.mkdir()
    with anyio.fail_after(300):
        done = await anyio.run_process([str(python), str(script), url, str(cache)], env=env, check=False)
    stdout = done.stdout.decode()
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, f"reference probe failed:\n{done.stderr.decode()[-4000:]}"
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


async def test_reference_http_backend_reads_every_category(
    tmp_path: Path, shared_data: Path, nats_url: str, subject_prefix: str, ref_python: Path
) -> None:
    golden = shared_data / "golden-v2"
    base = tmp_path / "base"
    shutil.copytree(golden, base)
    config = ServiceConfig(data_dir=str(tmp_path / "data"), nats_url=nats_url, subject_prefix=subject_prefix)
    async with (
        running_service(config, FileSystemBackend(base)) as supervisor,
        anyio.create_task_group() as tg,
    ):
        endpoint: HttpEndpoint = await tg.start(serve_http, supervisor, "127.0.0.1", 0)
        result = await _run_reference(ref_python, f"{endpoint.url}/api", tmp_path)
        tg.cancel_scope.cancel()

    checked = 0
    for category in MODEL_REFERENCE_CATEGORY:
        file = golden / get_category_descriptor(category).v2_filename
        fetched = result["backend"][category.value]
        if not file.is_file():
            assert fetched is None, category  # absent here: the reference sees a 404, not an error
            continue
        catalog = json.loads(file.read_bytes())
        assert fetched == catalog, category  # the same JSON, every record and field

        # its manager validated every record with its own pydantic classes (it keys them by name)
        validated = result["manager"][category.value]
        assert len(validated) == len(catalog), category
        for key, record in catalog.items():
            theirs = validated[record["name"]]
            for field, value in record.items():
                assert theirs[field] == value, (category, key, field)
            checked += 1
    assert checked == 161 + 719 + 18 + 6 + 2 + 2 + 2 + 1 + 1 + 1

    image = decode_catalog("image_generation", (golden / "stable_diffusion.json").read_bytes()).records
    text = decode_catalog("text_generation", (golden / "text_generation.json").read_bytes()).records
    assert result["legacy"]["image_generation"] == sorted(json.loads(to_legacy_stable_diffusion(image)))
    assert result["legacy"]["text_generation"] == sorted(json.loads(to_legacy_text_db(text)))
