"""The real-client check (`make compat`): horde-sdk and horde-engine see the same here as with 8.6.2.

Runs bench/compat_check.py, which builds two Python 3.12 virtualenvs (this package, and PyPI's
horde-model-reference 8.6.2, each with the current horde-sdk and horde-engine 7.12.0), runs the
SDK's model-reference code paths offline in both (ImageModelLoadResolver, feature-flag checks,
image parameter conversion) and horde-engine's weight helpers (its annotator provider, standalone
VAE planner and content-hash probe; hashing, sidecars, layout, annotators, canonical components
and downloads against a local HTTP server) and compares the results. Skips, saying why, where no Python 3.12, no package index or no
../shared data is available.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "bench" / "compat_check.py"
CANNOT_RUN = 2


@pytest.mark.slow
def test_horde_sdk_reads_the_reference_as_with_8_6_2(shared_data: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(CHECK), "--data-dir", str(shared_data)],
        capture_output=True,
        text=True,
        timeout=3000,
        check=False,
    )
    if proc.returncode == CANNOT_RUN:
        pytest.skip(proc.stdout.strip() or proc.stderr.strip()[-500:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "0 differ" in proc.stdout
