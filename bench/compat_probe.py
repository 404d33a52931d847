"""Run horde-sdk's model-reference code paths offline and print what they return, as JSON.

Runs inside a compat virtualenv (see compat_check.py) where `horde_model_reference` is either this
project or PyPI's 8.6.2, with the current horde-sdk. Reads the catalogs under
`$AIWORKER_CACHE_HOME/horde_model_reference` with `HORDE_MODEL_REFERENCE_OFFLINE=true` (no network).
Each step's result (or the exception it raised) goes into one JSON document on stdout, so the two
runs can be compared key by key.
"""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
import uuid
from collections.abc import Callable
from typing import Any

RESULTS: dict[str, Any] = {}


def step(name: str, fn: Callable[[], Any]) -> Any:
    """Record `fn()`'s JSON-ready result under `name`; an exception is recorded by type and message."""
    try:
        value = fn()
    except Exception as exc:
        RESULTS[name] = {"error": type(exc).__name__, "message": str(exc)[:300]}
        print(f"compat_probe: {name} raised {type(exc).__name__}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return None
    RESULTS[name] = value
    return value


def _sorted(values: Any) -> list[str]:
    return sorted(str(v) for v in values)


def main() -> None:
    """Run every step and print the results."""
    from horde_sdk.utils.image_utils import get_first_pass_image_resolution_by_baseline
    from horde_sdk.worker.model_meta import ImageModelLoadResolver

    from horde_model_reference.meta_consts import (
        KNOWN_IMAGE_GENERATION_BASELINE,
        MODEL_REFERENCE_CATEGORY,
        get_baseline_native_resolution,
    )
    from horde_model_reference.model_reference_manager import ModelReferenceManager

    baselines = list(KNOWN_IMAGE_GENERATION_BASELINE)
    step("baselines", lambda: [b.value for b in baselines])
    step("categories", lambda: [c.value for c in MODEL_REFERENCE_CATEGORY])
    for b in baselines:
        step(f"native_resolution[{b.value}]", lambda b=b: get_baseline_native_resolution(b))
    step(
        "first_pass_resolution",
        lambda: {
            b.value: list(get_first_pass_image_resolution_by_baseline(1536, 1024, b)) for b in baselines
        },
    )

    # The SDK's own default path: a manager built with PrefetchStrategy.ASYNC, its deferred handle awaited.
    built: list[ImageModelLoadResolver] = []
    step("resolver_default_init", lambda: built.append(ImageModelLoadResolver()) or "ok")
    resolver = built[0] if built else ImageModelLoadResolver(model_reference_manager=ModelReferenceManager())
    step("all_model_names", lambda: _sorted(resolver.resolve_all_model_names()))
    step("sfw", lambda: _sorted(resolver.resolve_all_sfw_model_names()))
    step("nsfw", lambda: _sorted(resolver.resolve_all_nsfw_model_names()))
    step("inpainting", lambda: _sorted(resolver.resolve_all_inpainting_models()))
    step(
        "by_baseline",
        lambda: {b.value: _sorted(resolver.resolve_all_models_of_baseline(b)) for b in baselines},
    )
    step("by_baseline_str", lambda: _sorted(resolver.resolve_all_models_of_baseline("stable_diffusion_xl")))
    step("newest_10", lambda: resolver.resolve_newest_n_model_names(10))
    step(
        "meta_instructions",
        lambda: _sorted(
            resolver.resolve_meta_instructions(
                ["all sdxl models", "all sd15 models", "all sd21 models", "all inpainting models"],
                client=None,  # type: ignore[arg-type]  # only top/bottom-N instructions use the client
            )
        ),
    )
    step("without_large", lambda: _sorted(resolver.remove_large_models(resolver.resolve_all_model_names())))

    manager = resolver._model_reference_manager
    _data_model(manager)
    _feature_flags(manager)
    _conversion(manager)
    import compat_probe_weights  # beside this script, so on sys.path when run as one

    compat_probe_weights.run(step, manager)
    print(json.dumps(RESULTS, indent=1, sort_keys=True, default=str))


def _data_model(manager: Any) -> None:
    """The data-model names horde-engine and horde-worker-reGen read (same values on both sides)."""
    import horde_model_reference as root
    from horde_model_reference import meta_consts as mc
    from horde_model_reference.model_reference_records import (
        ImageGenerationModelRecord,
        TextGenerationModelRecord,
        get_record_type_for_category,
    )
    from horde_model_reference.text_backend_names import get_model_name_variants, strip_backend_prefix

    categories = list(mc.MODEL_REFERENCE_CATEGORY)
    step(
        "classification",
        lambda: {str(c): [str(v.domain), str(v.purpose)] for c, v in mc.MODEL_CLASSIFICATION_LOOKUP.items()},
    )
    step("github_image_categories", lambda: _sorted(mc.github_image_model_reference_categories))
    step("category_folders", lambda: {c.value: root.category_folder(c) for c in categories})
    step(
        "descriptors",
        lambda: {
            c.value: [
                (d := mc.get_category_descriptor(c)).github_source,
                d.has_legacy_format,
                d.managed_elsewhere,
                d.filename_override,
                d.legacy_filename_override,
            ]
            for c in categories
        },
    )
    step("record_types", lambda: {c.value: get_record_type_for_category(c).__name__ for c in categories})
    step(
        "filenames",
        lambda: {
            c.value: str(root.horde_model_reference_paths.get_model_reference_filename(c)) for c in categories
        },
    )
    step("name_variants", lambda: get_model_name_variants("ReadyArt/Broken-Tutu-24B"))
    step("strip_prefix", lambda: strip_backend_prefix("koboldcpp/Broken-Tutu-24B"))
    step(
        "text_record",
        lambda: [
            (t := TextGenerationModelRecord(name="a/b", parameters=7)).parameters_count,
            t.model_dump()["parameters_count"],
            t.model_dump(by_alias=True)["parameters"],
            t.model_copy(update={"nsfw": True}).nsfw,
        ],
    )

    def records_view() -> dict[str, Any]:
        records = manager.get_model_reference(mc.MODEL_REFERENCE_CATEGORY.image_generation)
        view = {}
        for name, record in sorted(records.items()):
            assert isinstance(record, ImageGenerationModelRecord)
            dumped = record.model_dump(mode="json")
            view[name] = [
                dumped["baseline"],
                dumped["nsfw"],
                dumped["inpainting"],
                [d["file_name"] for d in dumped["config"]["download"]],
                record.model_copy(update={"nsfw": not record.nsfw}).nsfw,
                str(record.model_classification.purpose),
            ]
        return view

    step("image_records", records_view)


def _feature_flags(manager: Any) -> None:
    from horde_sdk.generation_parameters.image.object_models import ImageGenerationFeatureFlags
    from horde_sdk.worker.feature_flags import ImageWorkerFeatureFlags, PerBaselineFeatureFlags

    from horde_model_reference.meta_consts import KNOWN_IMAGE_GENERATION_BASELINE

    b = KNOWN_IMAGE_GENERATION_BASELINE
    per_baseline = PerBaselineFeatureFlags(
        hires_fix_map={b.stable_diffusion_1: True, b.stable_diffusion_xl: True, b.flux_1: False},
        tiling_map={b.stable_diffusion_1: True, "a_baseline_nobody_knows": True},
        loras_map={b.stable_diffusion_1: True},
    )
    step("per_baseline", lambda: json.loads(per_baseline.model_dump_json()))
    worker = step(
        "worker_flags",
        lambda: ImageWorkerFeatureFlags(
            image_generation_feature_flags=ImageGenerationFeatureFlags(
                baselines=[b.stable_diffusion_1, b.stable_diffusion_xl, b.flux_1, "a_baseline_nobody_knows"],
                hires_fix=True,
                tiling=True,
                schedulers=["normal", "karras"],
                samplers=["k_euler"],
                source_processing=["txt2img"],
            ),
            per_baseline_feature_flags=per_baseline,
        ).model_dump(mode="json"),
    )
    if worker is None:
        return
    flags = ImageWorkerFeatureFlags.model_validate(worker)
    for baseline in ("stable_diffusion_1", "stable_diffusion_xl", "flux_1", "a_baseline_nobody_knows"):
        requested = ImageGenerationFeatureFlags(
            baselines=[baseline],
            hires_fix=True,
            tiling=True,
            schedulers=["normal"],
            samplers=["k_euler"],
            source_processing=["txt2img"],
        )
        step(
            f"capable[{baseline}]",
            lambda requested=requested: [
                flags.is_capable_of_features(requested),
                _sorted(flags.reasons_not_capable_of_features(requested)),
            ],
        )


def _conversion(manager: Any) -> None:
    from horde_sdk.ai_horde_api.apimodels import (
        ImageGenerateJobPopPayload,
        ImageGenerateJobPopResponse,
        ImageGenerateJobPopSkippedStatus,
    )
    from horde_sdk.worker.dispatch.ai_horde.image.convert import convert_image_job_pop_response_to_parameters

    from horde_model_reference.meta_consts import MODEL_REFERENCE_CATEGORY

    names = sorted(manager.get_model_reference(MODEL_REFERENCE_CATEGORY.image_generation))
    picks = [*names[:: max(1, len(names) // 12)], "A model that is not in the reference"]
    job_id = uuid.UUID("00000000-0000-4000-8000-000000000001")
    for model in picks:
        for hires in (False, True):
            response = ImageGenerateJobPopResponse(
                ids=[job_id],
                payload=ImageGenerateJobPopPayload(
                    prompt="a cat in a hat###blurry", seed="42", width=1536, height=1024, hires_fix=hires
                ),
                skipped=ImageGenerateJobPopSkippedStatus(),
                model=model,
                r2_uploads=[f"https://not.a.real.url.internal/upload/{job_id}"],
            )
            step(
                f"convert[{model}][hires={hires}]",
                lambda response=response: json.loads(
                    convert_image_job_pop_response_to_parameters(response, manager).model_dump_json()
                ),
            )


if __name__ == "__main__":
    asyncio.set_event_loop(None)
    main()
