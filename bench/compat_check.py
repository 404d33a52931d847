"""The real-client check: horde-sdk's and horde-engine's model-reference code, this project against 8.6.2.

Builds two Python 3.12 virtualenvs next to `.venv-ref` (the benchmarks' baseline, found the same
way: see `_common.find_ref_python`), once, and reuses them while their stamp matches:

* `.venv-compat`: this project (installed from the working tree) in place of horde-model-reference,
  then the current horde-sdk from PyPI with `--no-deps` and its other dependencies;
* `.venv-compat-ref`: horde-model-reference 8.6.2 and the same horde-sdk.

Both also get horde-engine (`ENGINE`, `--no-deps`: its torch/ComfyUI stack is not needed) and
loguru, so the probe can run hordelib's own torch-free modules (`compat_probe_weights.py`).

Then runs `compat_probe.py` in each, offline, on the v2 catalogs of `../shared/data/model-reference`
(copied to a temporary `AIWORKER_CACHE_HOME`), and compares the two JSON documents key by key.
Exit status 0 when they match, 1 when they differ, 2 when the check cannot run here (no Python
3.12, no data, no package index): the reason is printed.

    python bench/compat_check.py [--sdk-version X.Y.Z] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import DEFAULT_DATA_DIR, REF_REQUIREMENT, ROOT, find_ref_python

OURS_VENV = ROOT / ".venv-compat"
REF_VENV = ROOT / ".venv-compat-ref"
PROBE = Path(__file__).resolve().parent / "compat_probe.py"
SDK = "horde-sdk"
ENGINE = "horde-engine==7.12.0"
"""The hordelib release whose weight-helper imports this drop-in provides (docs/consumers.md)."""
CANNOT_RUN = 2
CATALOG_DIR = "golden-v2"


class CannotRun(Exception):
    """The check cannot run here; the message says why."""


class ProbeFailed(Exception):
    """The probe itself crashed in one of the venvs (a failure of the check, not a skip)."""


def _run(cmd: list[str], *, timeout: float = 1200, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-8:])
        raise CannotRun(f"`{' '.join(cmd[:6])} ...` failed:\n{tail}")
    return proc.stdout


def _pip(venv: Path, *args: str) -> str:
    return _run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *args,
        ]
    )


def _sdk_dependencies(venv: Path) -> list[str]:
    """horde-sdk's declared requirements (markers applied), without horde-model-reference."""
    code = (
        "import importlib.metadata as m, json\n"
        "from packaging.requirements import Requirement\n"
        f"reqs = [Requirement(r) for r in m.requires({SDK!r}) or []]\n"
        "print(json.dumps([str(r) for r in reqs if r.marker is None or r.marker.evaluate({'extra': ''})]))\n"
    )
    _pip(venv, "packaging")
    requirements: list[str] = json.loads(_run([str(venv / "bin" / "python"), "-c", code]))
    return [r for r in requirements if not r.replace("_", "-").lower().startswith("horde-model-reference")]


def _stamp(venv: Path) -> Path:
    return venv / ".hmr-compat.json"


def build_venv(venv: Path, python: str, reference: str, sdk: str) -> None:
    """Create `venv` with `reference` (a requirement or this tree) and `sdk`, unless its stamp matches.

    This tree is reinstalled on every run (the venv itself is reused), so the check sees the code as it is.
    """
    wanted = {"reference": reference, "sdk": sdk, "engine": ENGINE, "python": os.path.realpath(python)}
    try:
        ready = json.loads(_stamp(venv).read_text()) == wanted
    except (OSError, ValueError):
        ready = False
    if not ready:
        print(f"compat: building {venv.name} ({reference}, {sdk}) ...", file=sys.stderr, flush=True)
        _run([python, "-m", "venv", "--clear", str(venv)])
        _pip(venv, "--upgrade", "pip")
        _pip(venv, reference)
        _pip(venv, "--no-deps", sdk)
        _pip(venv, *_sdk_dependencies(venv))
        _pip(venv, "--no-deps", ENGINE)
        _pip(venv, "loguru")
        _stamp(venv).write_text(json.dumps(wanted))
    elif reference == str(ROOT):
        _pip(venv, "--no-deps", "--force-reinstall", reference)
        _pip(venv, reference)


def _data_home(data_dir: Path) -> Path:
    catalogs = data_dir / CATALOG_DIR
    if not catalogs.is_dir():
        raise CannotRun(f"no catalogs at {catalogs} (set HMR_BENCH_DATA_DIR to the model-reference data)")
    home = Path(tempfile.mkdtemp(prefix="hmr-compat-"))
    shutil.copytree(catalogs, home / "horde_model_reference")
    return home


def run_probe(venv: Path, data_dir: Path) -> dict[str, Any]:
    """The probe's JSON from `venv`, reading a fresh copy of the catalogs offline."""
    home = _data_home(data_dir)
    try:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "AIWORKER_CACHE_HOME": str(home),
            "HORDE_MODEL_REFERENCE_OFFLINE": "true",
            "HORDE_MODEL_REFERENCE_MAKE_FOLDERS": "false",
            "AI_HORDE_MODEL_META_LARGE_MODELS": "",
            "PYTHONHASHSEED": "0",
            "LOGURU_LEVEL": "ERROR",
        }
        try:
            out = _run([str(venv / "bin" / "python"), str(PROBE)], timeout=600, env=env)
        except CannotRun as exc:
            raise ProbeFailed(f"{venv.name}: {exc}") from None
        result: dict[str, Any] = json.loads(out)
        return result
    finally:
        shutil.rmtree(home, ignore_errors=True)


def compare(ours: dict[str, Any], ref: dict[str, Any]) -> list[str]:
    """One line per key whose values differ (or that only one side has)."""
    lines = []
    for key in sorted(set(ours) | set(ref)):
        if ours.get(key, "<missing>") != ref.get(key, "<missing>"):
            lines.append(
                f"{key}:\n    ours: {json.dumps(ours.get(key, '<missing>'))[:400]}\n"
                f"    8.6.2: {json.dumps(ref.get(key, '<missing>'))[:400]}"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Build, run, compare; print the verdict."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sdk-version", default=os.environ.get("HMR_COMPAT_SDK_VERSION"), help="default: latest"
    )
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("HMR_BENCH_DATA_DIR") or DEFAULT_DATA_DIR)
    )
    args = parser.parse_args(argv)
    sdk = f"{SDK}=={args.sdk_version}" if args.sdk_version else SDK
    try:
        python, how = find_ref_python()
        if python is None:
            raise CannotRun(f"no Python 3.12 for horde-sdk: {how}")
        build_venv(REF_VENV, python, REF_REQUIREMENT, sdk)
        build_venv(OURS_VENV, python, str(ROOT), sdk)
        ref = run_probe(REF_VENV, args.data_dir)
        ours = run_probe(OURS_VENV, args.data_dir)
    except (CannotRun, subprocess.TimeoutExpired, OSError) as exc:
        print(f"compat: cannot run: {exc}")
        return CANNOT_RUN
    except ProbeFailed as exc:
        print(f"compat: FAILED: the probe crashed in {exc}")
        return 1
    differences = compare(ours, ref)
    errors = sorted(k for k, v in ours.items() if isinstance(v, dict) and set(v) == {"error", "message"})
    print(
        f"compat: {len(ours)} results, {len(differences)} differ from {REF_REQUIREMENT}; errors here: {errors}"
    )
    for line in differences:
        print(line)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
