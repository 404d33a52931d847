"""Run the benchmarks: print a table, write bench/results/latest.json.

    python bench/run.py                  # all benchmarks (what `make bench` runs)
    python bench/run.py --only decode    # a subset (repeatable, or comma-separated)
    python bench/run.py --list           # the registered benchmarks
    python bench/run.py --quick          # one short round: a smoke test, not figures to quote
    python bench/run.py --no-ref         # ours only, no baseline venv

A benchmark is any module `bench/bench_<name>.py` with `run(ctx) -> list[Row]` (see README.md).
Exits 0 when every benchmark ran, whether or not its goals were met (the table says); 1 when a
benchmark crashed; 2 on a usage error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import platform
import socket
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import BENCH_DIR, REF_REQUIREMENT, RESULTS_DIR, Context, Row, Skip, log, render_table


def registered() -> list[str]:
    """Benchmark names, from the files `bench/bench_<name>.py`, sorted."""
    return sorted(path.stem.removeprefix("bench_") for path in BENCH_DIR.glob("bench_*.py"))


def load(name: str) -> ModuleType:
    module = importlib.import_module(f"bench_{name}")
    if not callable(getattr(module, "run", None)):
        raise TypeError(f"bench/bench_{name}.py has no run(ctx) function")
    return module


def describe(module: ModuleType) -> str:
    return (module.__doc__ or "").strip().splitlines()[0] if module.__doc__ else ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="run only these benchmarks"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--quick", action="store_true", help="one short round (smoke test)")
    parser.add_argument("--no-ref", action="store_true", help="skip the baseline (no reference venv)")
    parser.add_argument(
        "--json", type=Path, default=RESULTS_DIR / "latest.json", help="where to write the results (JSON)"
    )
    args = parser.parse_args(argv)
    known = registered()
    selected = [name.strip() for value in args.only for name in value.split(",") if name.strip()]
    unknown = [name for name in selected if name not in known]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(known)}")
    args.selected = [name for name in known if name in selected] if selected else known
    return args


def machine() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        for name in args.selected:
            print(f"{name:12}  {describe(load(name))}")
        return 0

    ctx = Context(quick=args.quick, use_ref=not args.no_ref)
    load_before = _load()
    started = time.perf_counter()
    sections: list[tuple[str, list[Row], str | None]] = []
    results: dict[str, Any] = {}
    crashed = False
    for name in args.selected:
        began = time.perf_counter()
        entry: dict[str, Any] = {"status": "ok", "rows": [], "message": None}
        rows: list[Row] = []
        message = None
        try:
            module = load(name)
            entry["description"] = describe(module)
            rows = list(module.run(ctx))
        except Skip as exc:
            message = f"skipped: {exc}"
            entry.update(status="skipped", message=str(exc))
        except Exception as exc:  # a crash: report it, run the others, exit non-zero
            crashed = True
            message = f"CRASHED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            entry.update(status="crashed", message=traceback.format_exc())
            log(f"{name} crashed:\n{traceback.format_exc()}")
        entry["rows"] = [row.to_json() for row in rows]
        entry["elapsed_s"] = round(time.perf_counter() - began, 2)
        results[name] = entry
        sections.append((name, rows, message))

    ref = ctx.ref_if_checked
    payload = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else argv,
        "quick": args.quick,
        "selected": args.selected,
        "machine": {**machine(), "load_average_before": load_before, "load_average_after": _load()},
        "ours": {"python": platform.python_version(), "executable": sys.executable},
        "reference": {
            "requirement": REF_REQUIREMENT,
            "available": bool(ref and ref.available),
            "python": str(ref.python) if ref and ref.python else None,
            "message": ref.message if ref else None,
        },
        "ratio": "how many times better ours is: baseline/ours when lower is better (time, memory)",
        "elapsed_s": round(time.perf_counter() - started, 2),
        "benchmarks": results,
    }
    write_json(args.json, payload)

    print()
    if ref is not None:
        print(f"baseline: {ref.message}" if ref.available else ref.message)
    print(f"ours: this checkout on Python {platform.python_version()}")
    loads = payload["machine"]
    print(
        f"machine: {os.cpu_count()} cores, 1-min load average {_fmt_load(loads['load_average_before'])} before, "
        f"{_fmt_load(loads['load_average_after'])} after (above ~0.5 the machine is busy: expect noisier figures)"
    )
    print("ratio = how many times better ours is (baseline / ours), measured in this run\n")
    print(render_table(sections))
    print(f"\nwrote {_shown(args.json)} in {payload['elapsed_s']:.1f} s")
    return 1 if crashed else 0


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _fmt_load(value: float | None) -> str:
    return "?" if value is None else f"{value:.2f}"


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
