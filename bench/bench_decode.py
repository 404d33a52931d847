"""decode: time to decode a real golden-v2 catalog into records (issue 2; goal >= 10x faster).

Ours: `horde_model_reference.decode_catalog(category, bytes)` (msgspec). Baseline: the
reference's pydantic records on the same bytes, the faster of `TypeAdapter.validate_json` and its
manager's `json.loads` + `model_validate` per record (see ref_decode.py). Each side is one
long-lived worker process; `time_interleaved` alternates them in short blocks. The figure is the
median time of one full decode; the ratio is the median of the per-block ratios.

A `floor` row per catalog times msgspec merely reading the same bytes (a Struct holding only
`name` per record, every other value skipped) against the same baseline: the highest ratio any
decoder built on msgspec could reach on these files, with no record built at all.
"""

from __future__ import annotations

import contextlib

from _common import GOLDEN_CATALOGS, Context, Row, TimedCase, time_interleaved

GOAL = 10.0


def run(ctx: Context) -> list[Row]:
    catalogs = [{"category": c, "path": str(ctx.golden(file_name))} for c, file_name, _ in GOLDEN_CATALOGS]
    with contextlib.ExitStack() as stack:
        ours = stack.enter_context(ctx.ours_worker("ours_decode.py"))
        ref = ctx.ref_worker("ref_decode.py")
        if ref is not None:
            stack.enter_context(ref)
        loaded = {"ours": ours.call("load", catalogs=catalogs)}
        if ref is not None:
            loaded["ref"] = ref.call("load", catalogs=catalogs)
        for side, answer in loaded.items():
            for category, _, expected in GOLDEN_CATALOGS:
                if answer["records"][category] != expected:
                    raise RuntimeError(
                        f"{side} decoded {answer['records'][category]} {category} records, not {expected}"
                    )

        ref_strategies = loaded["ref"]["strategies"] if ref else []
        cases = [
            TimedCase(
                name=f"{category}{suffix} ({expected} records)",
                ours={s: {"category": category} for s in strategies},
                ref={s: {"category": category} for s in ref_strategies},
            )
            for category, _, expected in GOLDEN_CATALOGS
            for suffix, strategies in (("", loaded["ours"]["strategies"]), (" floor", ["scan_floor"]))
        ]
        results = time_interleaved(ctx, "decode", ours, ref, cases)

    note = "" if ctx.ref.available else ctx.ref.message
    floor_note = "msgspec reading the bytes, no records: the most any msgspec decoder could reach"
    return [
        result.row(goal=None, note=floor_note)
        if result.case.name.split(" (")[0].endswith(" floor")
        else result.row(goal=GOAL, note=note)
        for result in results
    ]
