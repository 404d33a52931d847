"""Probe: the reference implementation's FastAPI service (horde-model-reference 8.6.2) as deployed.

Run with the Python of the reference's HTTP venv (see bench_http.py): it needs the `service`
extra (fastapi[standard], hence uvicorn with uvloop and httptools when they install):

    ref_http_server.py <golden-v2 dir> <work dir> <port>

The golden-v2 catalogs are copied to `<work dir>/horde_model_reference/` (the reference's PRIMARY
layout under `AIWORKER_CACHE_HOME`), and the app is served as its docs run it: one uvicorn
process, default loop and HTTP implementation, no access log. Runs until terminated.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def main() -> None:
    golden, work, port = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    base = work / "horde_model_reference"
    base.mkdir(parents=True, exist_ok=True)
    for file in golden.glob("*.json"):
        shutil.copy(file, base / file.name)
    os.environ.update(
        {
            "AIWORKER_CACHE_HOME": str(work),
            "HORDE_MODEL_REFERENCE_REPLICATE_MODE": "PRIMARY",
            "LOGURU_LEVEL": "WARNING",
        }
    )
    import uvicorn
    from horde_model_reference.service.app import app

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
