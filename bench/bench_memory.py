"""memory: bytes the decoded records of a real catalog hold (issue 2; goal: ours <= 1/3 of the reference).

Each side decodes each catalog in a fresh subprocess: the decoder is built and used once, then
`tracemalloc` snapshots are taken around one more decode after `gc.collect()`, while the result is
held (see `_probe.measure_retained`). The figure is the snapshot difference, i.e. what the records
keep alive. Ours runs on Python 3.11, the reference on 3.12 (object sizes differ little between
them). The ratio is baseline / ours, so the goal "at most one third" is a ratio >= 3.
"""

from __future__ import annotations

from _common import GOLDEN_CATALOGS, Context, Row, log

GOAL = 3.0


def run(ctx: Context) -> list[Row]:
    rows = []
    for category, file_name, expected in GOLDEN_CATALOGS:
        job = {"category": category, "path": str(ctx.golden(file_name))}
        log(f"memory: {category}, ours")
        ours = ctx.run_ours("ours_decode.py", "memory", **job)
        ref = None
        if ctx.ref.available:
            log(f"memory: {category}, ref")
            ref = ctx.run_ref("ref_decode.py", "memory", **job)
        for side, result in (("ours", ours), ("ref", ref)):
            if result is not None and result["records"] != expected:
                raise RuntimeError(
                    f"{side} decoded {result['records']} {category} records, expected {expected}"
                )
        details = {"records": expected, "ours": ours, "baseline": ref}
        details["ours_bytes_per_record"] = ours["retained_bytes"] / expected
        if ref is not None:
            details["baseline_bytes_per_record"] = ref["retained_bytes"] / expected
            note = (
                f"{ours['retained_bytes'] / expected:.0f} vs {ref['retained_bytes'] / expected:.0f} B/record"
            )
        else:
            note = ctx.ref.message
        rows.append(
            Row(
                name=f"{category} ({expected} records)",
                ours=ours["retained_bytes"],
                baseline=None if ref is None else ref["retained_bytes"],
                unit="bytes",
                goal=GOAL,
                note=note,
                details=details,
            )
        )
    return rows
