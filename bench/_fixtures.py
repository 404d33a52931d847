"""Harness-side helpers for the manager, query and propagation benchmarks (standard library only).

- `catalog_copy`: a temporary directory holding COPIES of the golden-v2 catalogs, made at run time
  (the repository never holds data), removed on exit;
- `percentile`: linear-interpolated percentiles of a small sample;
- `paired_ratio`: the median of per-pair ratios, with its p25-p75 spread.
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from _common import Context, Skip

__all__ = ["catalog_copy", "copy_catalogs", "golden_dir", "paired_ratio", "percentile"]


def golden_dir(ctx: Context) -> Path:
    """The golden-v2 directory; `Skip` when the real data is not on this machine."""
    return ctx.golden("stable_diffusion.json").parent


def copy_catalogs(source: Path, dest: Path) -> Path:
    """Copy every `*.json` catalog of `source` into `dest` (created); returns `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted(source.glob("*.json"))
    if not files:
        raise Skip(f"no catalogs in {source}")
    for path in files:
        shutil.copyfile(path, dest / path.name)
    return dest


@contextlib.contextmanager
def catalog_copy(ctx: Context, prefix: str) -> Iterator[Path]:
    """A temporary directory (removed on exit) with a fresh copy of the golden-v2 catalogs."""
    source = golden_dir(ctx)
    with tempfile.TemporaryDirectory(prefix=f"hmr-bench-{prefix}-") as tmp:
        yield copy_catalogs(source, Path(tmp) / "catalogs")


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) of `values`, interpolating linearly between ranks."""
    if not values:
        raise ValueError("percentile of an empty sample")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def paired_ratio(pairs: Sequence[tuple[float, float]]) -> tuple[float, list[float]]:
    """Median of `baseline / ours` over (ours, baseline) pairs, and the p25/p50/p75 of those ratios."""
    ratios = sorted(baseline / ours for ours, baseline in pairs)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return statistics.median(ratios), quartiles
