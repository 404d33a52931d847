"""Shared plumbing for the benchmarks: rows, the run context, the probe runner, the reference venv.

A benchmark is a module `bench/bench_<name>.py` with a `run(ctx: Context) -> list[Row]` function
and a docstring whose first line describes it (see README.md). Measurements run in probe scripts
(`ours_*.py` with this project's interpreter, `ref_*.py` with the reference's, protocol in
`_probe.py`), either one operation in a fresh process (`Context.run_ours` / `Context.run_ref`) or as
long-lived workers (`Context.ours_worker` / `Context.ref_worker`) that `time_interleaved` alternates
in short blocks. Both sides are measured the same way, in the same run.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from _probe import MARK

ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
REF_VENV = ROOT / ".venv-ref"
REF_PACKAGE = "horde-model-reference"
REF_VERSION = "8.6.2"
REF_REQUIREMENT = f"{REF_PACKAGE}=={REF_VERSION}"
REF_PYTHON_ENV = "HMR_BENCH_REF_PYTHON"
DATA_DIR_ENV = "HMR_BENCH_DATA_DIR"
DEFAULT_DATA_DIR = ROOT.parent / "shared" / "data" / "model-reference"
_REF_STAMP = REF_VENV / ".hmr-bench-ref.json"


class Skip(Exception):
    """Raised by a benchmark that cannot run here (missing data, ...): reported, not a failure."""


class ProbeError(RuntimeError):
    """A probe subprocess failed or printed no result."""


def log(message: str) -> None:
    """Progress messages go to stderr; stdout carries the table only."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- rows


@dataclass
class Row:
    """One measured figure: ours against the baseline.

    Values are in base units (`ns`, `bytes`, ...). `ratio` is how many times better ours is:
    baseline / ours when lower is better (time, memory), ours / baseline when higher is better.
    `goal` is the minimum ratio wanted (None: informational row). `limit` is an absolute goal: the
    most `ours` may be, in the row's unit (for goals such as "p99 under 50 ms" or "no reads at
    all"); a row with both passes only when both hold.
    """

    name: str
    ours: float | None
    baseline: float | None
    unit: str
    goal: float | None = None
    better: Literal["lower", "higher"] = "lower"
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    paired_ratio: float | None = None  # set when measured pairwise (see `TimedResult.row`)
    limit: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.paired_ratio is not None:
            return self.paired_ratio
        if not self.ours or not self.baseline:
            return None
        return self.baseline / self.ours if self.better == "lower" else self.ours / self.baseline

    @property
    def status(self) -> str:
        ratio = self.ratio
        if self.goal is None and self.limit is None:
            return "info"
        if self.limit is not None and (self.ours is None or self.ours > self.limit):
            return "n/a" if self.ours is None else "FAIL"
        if self.goal is None:
            return "pass"
        if ratio is None:
            return "n/a"
        return "pass" if ratio >= self.goal else "FAIL"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ours": self.ours,
            "baseline": self.baseline,
            "unit": self.unit,
            "ratio": self.ratio,
            "better": self.better,
            "goal": self.goal,
            "limit": self.limit,
            "status": self.status,
            "note": self.note,
            "details": self.details,
        }


def ratio_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ns":
        for scale, suffix in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
            if value >= scale:
                return (
                    f"{value / scale:.3g} {suffix}"
                    if value < 100 * scale
                    else f"{value / scale:.0f} {suffix}"
                )
        return f"{value:.0f} ns"
    if unit == "bytes":
        for scale, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
            if value >= scale:
                return (
                    f"{value / scale:.3g} {suffix}"
                    if value < 100 * scale
                    else f"{value / scale:.0f} {suffix}"
                )
        return f"{value:.0f} B"
    return f"{value:.4g} {unit}"


def render_table(sections: Sequence[tuple[str, Sequence[Row], str | None]]) -> str:
    """A plain-text table: one block per benchmark; `sections` is (benchmark, rows, message)."""
    header = ("benchmark", "case", "ours", "baseline", "ratio", "goal", "result", "note")
    lines: list[tuple[str, ...]] = []
    for bench, rows, message in sections:
        if message:
            lines.append((bench, message, "", "", "", "", "", ""))
        for row in rows:
            goals = [] if row.goal is None else [f">= {row.goal:g}x"]
            if row.limit is not None:
                goals.append(f"<= {format_value(row.limit, row.unit)}")
            goal = ", ".join(goals) or "-"
            lines.append(
                (
                    bench,
                    row.name,
                    format_value(row.ours, row.unit),
                    format_value(row.baseline, row.unit),
                    ratio_text(row.ratio),
                    goal,
                    row.status,
                    row.note,
                )
            )
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)
    ]
    right = {2, 3, 4, 5}

    def fmt(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(line) for line in lines)])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


# ------------------------------------------------------------------------------------------- probes


def _probe_env(*, ref: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["LOGURU_LEVEL"] = "WARNING"  # the reference logs its settings at DEBUG on import
    env.setdefault("PYTHONHASHSEED", "0")
    if ref:
        env.pop("PYTHONPATH", None)  # never let this project's sources shadow the reference's
        env.pop("VIRTUAL_ENV", None)
    return env


def _result_of(script: str, line: str) -> dict[str, Any]:
    result = json.loads(line.removeprefix(MARK))
    if not isinstance(result, dict):
        raise ProbeError(f"{script} answered {result!r}")
    if "error" in result:
        raise ProbeError(f"{script} failed:\n{result['error']}")
    return result


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_probe(
    python: str | Path, script: str, op: str, args: dict[str, Any], *, ref: bool, timeout: float = 600
) -> dict[str, Any]:
    """Run one operation of `bench/<script>` in a fresh process under `python`; returns its result."""
    cmd = [str(python), str(BENCH_DIR / script), json.dumps({"op": op, **args})]
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_probe_env(ref=ref),
            cwd=ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ProbeError(f"{script} timed out after {timeout:g} s") from exc
    answers = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode != 0 or not answers:
        raise ProbeError(f"{script} ({python}) exited with {proc.returncode}:\n{_tail(proc.stderr)}")
    return _result_of(script, answers[-1])


class Worker:
    """A probe script kept running (`--serve`) to answer many requests: see `_probe.serve`."""

    def __init__(self, python: str | Path, script: str, *, ref: bool, timeout: float = 300) -> None:
        self.script, self.timeout = script, timeout
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            [str(python), str(BENCH_DIR / script), "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            bufsize=1,
            env=_probe_env(ref=ref),
            cwd=ROOT,
        )
        self._answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if line.startswith(MARK):
                self._answers.put(line)
        self._answers.put(None)

    def call(self, op: str, **args: Any) -> dict[str, Any]:
        """Send one request and wait for its answer."""
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
            self._proc.stdin.flush()
            line = self._answers.get(timeout=self.timeout)
        except (BrokenPipeError, queue.Empty):
            line = None
        if line is None:
            self._stop()
            stderr = ""
            if not self._stderr.closed:
                self._stderr.seek(0)
                stderr = self._stderr.read()
            self.close()
            raise ProbeError(f"{self.script} worker died or hung on {op!r}:\n{_tail(stderr)}")
        return _result_of(self.script, line)

    def close(self) -> None:
        self._stop()
        self._stderr.close()

    def _stop(self) -> None:
        if self._proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self._proc.stdin is not None
                self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class TimedCase:
    """One thing to time on both sides: the `time` request arguments for each strategy.

    `ours` and `ref` map a strategy name to the arguments of the probe's `time` operation; the
    baseline is the reference's fastest strategy (the most conservative comparison).
    """

    name: str
    ours: dict[str, dict[str, Any]]
    ref: dict[str, dict[str, Any]]


@dataclass
class TimedResult:
    case: TimedCase
    ours: dict[str, list[float]]  # strategy -> the median of each block (ns)
    ref: dict[str, list[float]]
    # "ours:<strategy>" / "ref:<strategy>" -> per block, the median time to free one result (ns)
    frees: dict[str, list[float]] = field(default_factory=dict)

    def best(self, side: Literal["ours", "ref"]) -> str | None:
        blocks = self.ours if side == "ours" else self.ref
        return min(blocks, key=lambda s: median(blocks[s])) if blocks else None

    def row(self, *, goal: float | None, details: dict[str, Any] | None = None, note: str = "") -> Row:
        """A row: medians over blocks; the ratio is the median of the per-block (paired) ratios."""
        ours_best, ref_best = self.best("ours"), self.best("ref")
        assert ours_best is not None
        ours = median(self.ours[ours_best])
        info: dict[str, Any] = {
            "blocks": len(self.ours[ours_best]),
            "ours_strategy": ours_best,
            "ours_block_medians_ns": self.ours,
            "free_result_median_ns": {key: median(values) for key, values in self.frees.items()},
        }
        if ref_best is None:
            return Row(
                self.case.name, ours, None, "ns", goal=goal, note=note, details={**info, **(details or {})}
            )
        ratios = sorted(r / o for o, r in zip(self.ours[ours_best], self.ref[ref_best], strict=True))
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
        info.update(
            baseline_strategy=ref_best,
            baseline_by_strategy_ns={s: median(v) for s, v in self.ref.items()},
            baseline_block_medians_ns=self.ref,
            block_ratios=ratios,
            ratio_quartiles=quartiles,
        )
        spread = f"blocks p25-p75 {quartiles[0]:.1f}-{quartiles[2]:.1f}x"
        return Row(
            self.case.name,
            ours,
            median(self.ref[ref_best]),
            "ns",
            goal=goal,
            note=f"ref {ref_best}; {spread}" + (f"; {note}" if note else ""),
            details={**info, **(details or {})},
            paired_ratio=median(ratios),
        )


def time_interleaved(
    ctx: Context, name: str, ours: Worker, ref: Worker | None, cases: Sequence[TimedCase]
) -> list[TimedResult]:
    """Time every case on both sides in `ctx.blocks` short blocks, alternating who goes first.

    Each block asks each worker for a short `time_calls` run (`ctx.timing`) per strategy and keeps
    its median, so ours and the baseline are measured seconds apart, many times over: a slow
    patch of the shared machine then shows as one odd block, which the medians ignore.
    """
    results = [
        TimedResult(case, {s: [] for s in case.ours}, {s: [] for s in case.ref} if ref else {})
        for case in cases
    ]
    for block in range(ctx.blocks):
        if block % max(1, ctx.blocks // 4) == 0:
            log(f"{name}: block {block + 1}/{ctx.blocks}")
        for result in results:
            sides: list[tuple[str, Worker, dict[str, dict[str, Any]], dict[str, list[float]]]] = [
                ("ours", ours, result.case.ours, result.ours)
            ]
            if ref is not None:
                sides.append(("ref", ref, result.case.ref, result.ref))
            if block % 2:
                sides.reverse()
            for side, worker, strategies, into in sides:
                for strategy, args in strategies.items():
                    timing = worker.call("time", strategy=strategy, timing=ctx.timing, **args)
                    into[strategy].append(timing["median_ns"])
                    if "free_median_ns" in timing:
                        result.frees.setdefault(f"{side}:{strategy}", []).append(timing["free_median_ns"])
    return results


# --------------------------------------------------------------------------------- reference venv


def _interpreter_version(python: str | Path) -> tuple[int, int] | None:
    """(major, minor) of a working interpreter with venv and ensurepip, else None."""
    code = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"
    try:
        proc = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    major, _, minor = proc.stdout.strip().partition(".")
    try:
        return int(major), int(minor)
    except ValueError:
        return None


def _candidates() -> Iterator[str]:
    """Places a Python 3.12 may be, best first (a pyenv shim on PATH may not work: try on)."""
    on_path = shutil.which("python3.12")
    if on_path:
        yield on_path
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    yield from sorted(
        glob.glob(os.path.join(pyenv_root, "versions", "3.12*", "bin", "python3.12")), reverse=True
    )
    uv = shutil.which("uv")
    if uv:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            proc = subprocess.run(
                [uv, "python", "find", "3.12"], capture_output=True, text=True, timeout=30, check=False
            )
            if proc.returncode == 0 and proc.stdout.strip():
                yield proc.stdout.strip()
    yield from ("/usr/local/bin/python3.12", "/usr/bin/python3.12", "/opt/homebrew/bin/python3.12")


def find_ref_python() -> tuple[str | None, str]:
    """The interpreter for the reference venv and how it was chosen (or why none was found)."""
    override = os.environ.get(REF_PYTHON_ENV)
    if override:
        version = _interpreter_version(override)
        if version is None or version < (3, 12):
            return None, f"{REF_PYTHON_ENV}={override} is not a working Python >= 3.12 with venv"
        return override, f"{REF_PYTHON_ENV}={override}"
    tried: list[str] = []
    for candidate in _candidates():
        if candidate in tried:
            continue
        tried.append(candidate)
        if _interpreter_version(candidate) == (3, 12):
            return candidate, candidate
    return None, (
        f"no working Python 3.12 found (tried: {', '.join(tried) or 'nothing'}); "
        f"set {REF_PYTHON_ENV}=/path/to/python3.12"
    )


def _ref_python_path() -> Path:
    return REF_VENV / "bin" / "python"


def _installed_ref_version() -> str | None:
    python = _ref_python_path()
    if not python.exists():
        return None
    code = f"import importlib.metadata as m; print(m.version({REF_PACKAGE!r}))"
    try:
        proc = subprocess.run(
            [str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def _read_stamp() -> dict[str, Any]:
    try:
        value = json.loads(_REF_STAMP.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@contextlib.contextmanager
def _ref_lock() -> Iterator[None]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    with open(RESULTS_DIR / ".ref-venv.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class RefStatus:
    python: Path | None
    message: str

    @property
    def available(self) -> bool:
        return self.python is not None


def ensure_ref_venv() -> RefStatus:
    """Create `.venv-ref` with Python 3.12 and the reference, once; reuse it when it is ready."""
    with _ref_lock():
        override = os.environ.get(REF_PYTHON_ENV)
        stamp = _read_stamp()
        same_base = not override or stamp.get("base_python") == os.path.realpath(override)
        if (
            stamp.get("requirement") == REF_REQUIREMENT
            and same_base
            and _installed_ref_version() == REF_VERSION
        ):
            return RefStatus(
                _ref_python_path(), f"{REF_REQUIREMENT} in {REF_VENV.name} (Python {stamp['python']})"
            )

        base, how = find_ref_python()
        if base is None:
            return RefStatus(None, f"baseline skipped: {how}")
        version = _interpreter_version(base)
        log(f"creating {REF_VENV.name} with {base} and installing {REF_REQUIREMENT} (once) ...")
        steps = [
            [base, "-m", "venv", "--clear", str(REF_VENV)],
            [
                str(_ref_python_path()),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                REF_REQUIREMENT,
            ],
        ]
        for step in steps:
            try:
                proc = subprocess.run(step, capture_output=True, text=True, timeout=900, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return RefStatus(None, f"baseline skipped: {' '.join(step[:3])} failed: {exc}")
            if proc.returncode != 0:
                tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
                return RefStatus(None, f"baseline skipped: `{' '.join(step[:4])} ...` failed: {tail}")
        installed = _installed_ref_version()
        if installed != REF_VERSION:
            return RefStatus(
                None, f"baseline skipped: {REF_VENV.name} has {REF_PACKAGE} {installed}, not {REF_VERSION}"
            )
        python_version = f"{version[0]}.{version[1]}" if version else "?"
        _REF_STAMP.write_text(
            json.dumps(
                {
                    "requirement": REF_REQUIREMENT,
                    "base_python": os.path.realpath(override or base),
                    "python": python_version,
                }
            )
        )
        log(f"{REF_VENV.name} ready ({how})")
        return RefStatus(
            _ref_python_path(), f"{REF_REQUIREMENT} in {REF_VENV.name} (Python {python_version})"
        )


# ------------------------------------------------------------------------------------------ context


@dataclass
class Context:
    """What a benchmark gets: settings, the data, and the two probe runners."""

    quick: bool = False
    use_ref: bool = True
    data_dir: Path = field(default_factory=lambda: Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR))
    _ref: RefStatus | None = None

    @property
    def blocks(self) -> int:
        """How many interleaved blocks `time_interleaved` runs (each a few tenths of a second)."""
        return 3 if self.quick else 15

    @property
    def timing(self) -> dict[str, Any]:
        """Keyword arguments for `_probe.time_calls`: one block's worth of samples."""
        if self.quick:
            return {"warmups": 1, "min_repeats": 3, "max_repeats": 50, "budget_s": 0.03}
        return {"warmups": 2, "min_repeats": 5, "max_repeats": 200, "budget_s": 0.1}

    @property
    def ref(self) -> RefStatus:
        """The reference venv (created on first use), or why there is no baseline."""
        if self._ref is None:
            if not self.use_ref:
                self._ref = RefStatus(None, "baseline skipped: --no-ref")
            else:
                self._ref = ensure_ref_venv()
        return self._ref

    @property
    def ref_if_checked(self) -> RefStatus | None:
        """The reference status if a benchmark asked for it (without creating the venv)."""
        return self._ref

    def golden(self, file_name: str) -> Path:
        """A golden-v2 catalog file; `Skip` when the real data is not on this machine."""
        path = self.data_dir / "golden-v2" / file_name
        if not path.is_file():
            raise Skip(f"real data not found at {path} (set {DATA_DIR_ENV})")
        return path

    def run_ours(self, script: str, op: str, **args: Any) -> dict[str, Any]:
        """One operation of a probe in a fresh process with this project's interpreter."""
        return run_probe(sys.executable, script, op, args, ref=False)

    def run_ref(self, script: str, op: str, **args: Any) -> dict[str, Any]:
        """One operation of a probe in a fresh process with the reference's interpreter."""
        return run_probe(self._ref_python(), script, op, args, ref=True)

    def ours_worker(self, script: str) -> Worker:
        """A long-lived probe with this project's interpreter (use as a context manager)."""
        return Worker(sys.executable, script, ref=False)

    def ref_worker(self, script: str) -> Worker | None:
        """A long-lived probe with the reference's interpreter, or None without a baseline."""
        return Worker(self._ref_python(), script, ref=True) if self.ref.available else None

    def _ref_python(self) -> Path:
        if self.ref.python is None:
            raise RuntimeError(self.ref.message)
        return self.ref.python


# The real catalogs the decode and memory benchmarks use: (category, golden-v2 file, records).
GOLDEN_CATALOGS: tuple[tuple[str, str, int], ...] = (
    ("image_generation", "stable_diffusion.json", 161),
    ("text_generation", "text_generation.json", 719),
)
