"""manager: warm ModelReferenceManager.get_model and the first full load (goals >= 200x (issue 14), >= 5x).

Both sides read their own temporary COPY of the golden-v2 catalogs (made at run time). Ours:
`ModelReferenceManager(backend=FileSystemBackend(dir), prefetch_strategy=PrefetchStrategy.SYNC)`.
Baseline: the reference's `ModelReferenceManager(base_path=dir, offline=True,
prefetch_strategy=PrefetchStrategy.SYNC)`, the mode that reads local v2 files and never downloads
(`LocalReadOnlyBackend`).

- warm `get_model(category, name)`: one long-lived worker per side, alternated in short blocks
  (`time_interleaved`); the ratio is the median of the per-block ratios;
- first full load: a fresh process per measurement, ours and the reference alternating (who goes
  first alternates too); each process times the construction plus `get_all_model_references()`
  (every category decoded), and apart from it the package import. The ratio is the median of the
  per-pair ratios. Both sides must load the same record counts.
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
from pathlib import Path
from typing import Any

from _common import Context, Row, TimedCase, log, time_interleaved
from _fixtures import catalog_copy, copy_catalogs, golden_dir, paired_ratio

GET_MODEL_GOAL = 200.0
FIRST_LOAD_GOAL = 5.0
CASES = (
    ("image_generation", "AlbedoBase XL (SDXL)"),
    ("text_generation", "aetherwiing/MN-12B-Starcannon-v3"),
)


def _check_counts(ours: dict[str, int], ref: dict[str, int], what: str) -> None:
    if ours != ref:
        raise RuntimeError(f"{what}: ours loaded {ours}, the reference {ref}")


def _warm_get_model(ctx: Context) -> list[Row]:
    with contextlib.ExitStack() as stack:
        ours_dir = stack.enter_context(catalog_copy(ctx, "manager-ours"))
        ours = stack.enter_context(ctx.ours_worker("ours_manager.py"))
        ref = ctx.ref_worker("ref_manager.py")
        loaded: dict[str, Any] = {"ours": ours.call("load", path=str(ours_dir))}
        if ref is not None:
            stack.enter_context(ref)
            ref_dir = stack.enter_context(catalog_copy(ctx, "manager-ref"))
            loaded["ref"] = ref.call("load", path=str(ref_dir))
            _check_counts(loaded["ours"]["records"], loaded["ref"]["records"], "warm get_model")
        cases = [
            TimedCase(
                name=f"get_model warm, {category}",
                ours={s: {"category": category, "name": name} for s in loaded["ours"]["strategies"]},
                ref={s: {"category": category, "name": name} for s in loaded["ref"]["strategies"]}
                if ref
                else {},
            )
            for category, name in CASES
        ]
        results = time_interleaved(ctx, "manager get_model", ours, ref, cases)
    note = "" if ctx.ref.available else ctx.ref.message
    return [
        result.row(goal=GET_MODEL_GOAL, note=note, details={"model": name})
        for result, (_, name) in zip(results, CASES, strict=True)
    ]


def _first_load(ctx: Context) -> list[Row]:
    runs = 2 if ctx.quick else 6
    source = golden_dir(ctx)
    ours_runs: list[dict[str, Any]] = []
    ref_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hmr-bench-first-load-") as tmp:
        for run in range(runs):
            log(f"manager first load: run {run + 1}/{runs}")
            sides = [("ours", ours_runs)]
            if ctx.ref.available:
                sides.append(("ref", ref_runs))
            if run % 2:
                sides.reverse()
            for side, into in sides:
                directory = copy_catalogs(source, Path(tmp) / f"{side}-{run}")  # a fresh copy per process
                runner = ctx.run_ours if side == "ours" else ctx.run_ref
                into.append(runner(f"{side}_manager.py", "first_load", path=str(directory)))
    expected = ours_runs[0]["records"]
    for answer in ours_runs + ref_runs:
        _check_counts(expected, answer["records"], "first load")
    total_records = sum(expected.values())
    name = f"first full load ({len(expected)} categories, {total_records} records)"

    def med(values: list[dict[str, Any]], *keys: str) -> float:
        return statistics.median(sum(v[k] for k in keys) for v in values)

    details: dict[str, Any] = {"runs": runs, "records": expected, "ours": ours_runs, "baseline": ref_runs}
    if not ref_runs:
        return [
            Row(name, med(ours_runs, "load_ns"), None, "ns", goal=FIRST_LOAD_GOAL, note=ctx.ref.message),
            Row("import + first full load", med(ours_runs, "import_ns", "load_ns"), None, "ns"),
        ]
    pairs = list(zip(ours_runs, ref_runs, strict=True))
    load_ratio, load_q = paired_ratio([(o["load_ns"], r["load_ns"]) for o, r in pairs])
    both = [(o["import_ns"] + o["load_ns"], r["import_ns"] + r["load_ns"]) for o, r in pairs]
    total_ratio, total_q = paired_ratio(both)
    details.update(load_ratio_quartiles=load_q, import_and_load_ratio_quartiles=total_q)
    return [
        Row(
            name,
            med(ours_runs, "load_ns"),
            med(ref_runs, "load_ns"),
            "ns",
            goal=FIRST_LOAD_GOAL,
            note=f"construct + get_all_model_references, import excluded; {runs} fresh processes per side; "
            f"pairs p25-p75 {load_q[0]:.2f}-{load_q[2]:.2f}x",
            details=details,
            paired_ratio=load_ratio,
        ),
        Row(
            "import + first full load",
            med(ours_runs, "import_ns", "load_ns"),
            med(ref_runs, "import_ns", "load_ns"),
            "ns",
            note=f"import alone: ours {med(ours_runs, 'import_ns') / 1e6:.0f} ms, "
            f"reference {med(ref_runs, 'import_ns') / 1e6:.0f} ms; pairs p25-p75 "
            f"{total_q[0]:.2f}-{total_q[2]:.2f}x",
            paired_ratio=total_ratio,
        ),
    ]


def run(ctx: Context) -> list[Row]:
    return _warm_get_model(ctx) + _first_load(ctx)
