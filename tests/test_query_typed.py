"""The typed builders (image, text, ControlNet) and queries over the real golden-v2 catalogs."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from horde_model_reference import (
    KNOWN_IMAGE_GENERATION_BASELINE,
    MODEL_REFERENCE_CATEGORY,
    TEXT_BACKENDS,
    ControlNetModelRecord,
    GenericModelRecord,
    ImageGenerationModelRecord,
    TextGenerationModelRecord,
    decode_catalog,
)
from horde_model_reference.query import (
    ControlNetQuery,
    ImageFields,
    ImageGenerationQuery,
    TextModelQuery,
    base_model_name,
    is_quantized_name,
)
from horde_model_reference.query.manager_api import ProviderQueryMixin

C = MODEL_REFERENCE_CATEGORY


def image(name: str, **fields: Any) -> ImageGenerationModelRecord:
    fields.setdefault("baseline", "stable_diffusion_1")
    fields.setdefault("nsfw", False)
    return ImageGenerationModelRecord(name=name, **fields)


def text(name: str) -> TextGenerationModelRecord:
    return TextGenerationModelRecord(name=name, parameters_count=7_000_000_000)


class FakeHost(ProviderQueryMixin):
    """The members ModelReferenceManager provides to the mixin, over fixed data."""

    def __init__(self, data: Mapping[MODEL_REFERENCE_CATEGORY, Mapping[str, GenericModelRecord]]) -> None:
        self._data = data
        self._provider_timeout = 2.0

    def _canonical_records_sync(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        return self._data.get(category)

    async def _canonical_records_async(
        self, category: MODEL_REFERENCE_CATEGORY
    ) -> Mapping[str, GenericModelRecord] | None:
        return self._data.get(category)


# -- image -------------------------------------------------------------------------------------


@pytest.fixture
def images() -> ImageGenerationQuery:
    return ImageGenerationQuery.from_records(
        {
            "sd": image("sd"),
            "xl": image("xl", baseline="stable_diffusion_xl"),
            "xl_nsfw": image("xl_nsfw", baseline="stable_diffusion_xl", nsfw=True),
            "paint": image("paint", inpainting=True),
            "unset": image("unset", inpainting=None),
        }
    )


def test_for_baseline_accepts_alternative_names(images: ImageGenerationQuery) -> None:
    expected = ["xl", "xl_nsfw"]
    assert images.for_baseline("stable_diffusion_xl").names() == expected
    assert images.for_baseline("SDXL").names() == expected
    assert images.for_baseline(KNOWN_IMAGE_GENERATION_BASELINE.stable_diffusion_xl).names() == expected
    assert images.for_baseline("SD1.5").names() == ["sd", "paint", "unset"]
    assert images.for_baseline("not_a_baseline").names() == []
    with pytest.raises(ValueError, match="needs a baseline name"):
        images.for_baseline("")


def test_nsfw_and_inpainting(images: ImageGenerationQuery) -> None:
    assert images.only_nsfw().names() == ["xl_nsfw"]
    assert images.exclude_nsfw().names() == ["sd", "xl", "paint", "unset"]
    assert images.only_inpainting().names() == ["paint"]
    assert images.exclude_inpainting().names() == ["sd", "xl", "xl_nsfw", "unset"]
    assert images.for_baseline("SDXL").exclude_nsfw().names() == ["xl"]


# -- text --------------------------------------------------------------------------------------


@pytest.fixture
def texts() -> TextModelQuery:
    names = [
        "Org/Llama-3-8B-Instruct",
        "koboldcpp/Llama-3-8B-Instruct",
        "aphrodite/Org/Llama-3-8B-Instruct",
        "Org/Llama-3-8B-Instruct-Q4_K_M",
        "TheBloke/Mythomax-L2-13B-GPTQ",
        "Mythomax-L2-13B",
        "unknownbackend/Model",
    ]
    return TextModelQuery.from_records({n: text(n) for n in names})


def test_for_backend_and_backend_variations(texts: TextModelQuery) -> None:
    assert texts.for_backend("koboldcpp").names() == ["koboldcpp/Llama-3-8B-Instruct"]
    assert texts.for_backend(TEXT_BACKENDS.aphrodite).names() == ["aphrodite/Org/Llama-3-8B-Instruct"]
    assert texts.exclude_backend_variations().names() == [
        "Org/Llama-3-8B-Instruct",
        "Org/Llama-3-8B-Instruct-Q4_K_M",
        "TheBloke/Mythomax-L2-13B-GPTQ",
        "Mythomax-L2-13B",
        "unknownbackend/Model",
    ]
    with pytest.raises(
        ValueError, match=r"unknown text backend 'vllm'; known backends: aphrodite, koboldcpp"
    ):
        texts.for_backend("vllm")


def test_quantized(texts: TextModelQuery) -> None:
    assert texts.only_quantized().names() == [
        "Org/Llama-3-8B-Instruct-Q4_K_M",
        "TheBloke/Mythomax-L2-13B-GPTQ",
    ]
    assert texts.exclude_quantized().count() == 5


@pytest.mark.parametrize(
    ("name", "quantized"),
    [
        ("Llama-3-8B-Instruct-Q4_K_M", True),
        ("model-Q5_0", True),
        ("model-q8", True),
        ("model.IQ4_XS.gguf", True),
        ("TheBloke/Model-GPTQ", True),
        ("Model-AWQ", True),
        ("Model-4.65bpw-h6-exl2", True),
        ("Model-EXL2", True),
        ("unsloth/Model-bnb-4bit", True),
        ("Model-int8", True),
        ("Model-GGUF", True),
        ("Llama-3-8B-Instruct", False),
        ("Qwen2.5-7B", False),
        ("zerofata/Q3.5-BlueStar-27B", False),
        ("google/gemma-4-12B-it-qat-q4_0-unquantized", False),
        ("Model-fp16", False),
        ("Squawk-7B", False),
    ],
)
def test_is_quantized_name(name: str, quantized: bool) -> None:
    assert is_quantized_name(name) is quantized


@pytest.mark.parametrize(
    ("name", "base"),
    [
        ("koboldcpp/Org/Llama-3.1-8B-Instruct-Q4_K_M", "Llama-3.1"),
        ("Llama-3-8B-Instruct-Q4_K_M", "Llama-3"),
        ("Mistral-7B-v0.1", "Mistral"),
        ("aphrodite/ReadyArt/Broken-Tutu-24B", "Broken-Tutu"),
        ("Mixtral-8x7B-Instruct", "Mixtral"),
        ("gemma-2-9b-it", "gemma-2"),
        ("7B", "7B"),
    ],
)
def test_base_model_name(name: str, base: str) -> None:
    assert base_model_name(name) == base


def test_group_by_base_model(texts: TextModelQuery) -> None:
    groups = texts.group_by_base_model()
    assert {k: len(v) for k, v in groups.items()} == {"Llama-3": 4, "Mythomax-L2": 2, "Model": 1}


# -- ControlNet --------------------------------------------------------------------------------


def test_controlnet_style() -> None:
    records = {
        "control_canny": ControlNetModelRecord(name="control_canny", controlnet_style="control_canny"),
        "control_canny_sd2": ControlNetModelRecord(
            name="control_canny_sd2", controlnet_style="control_canny"
        ),
        "control_qr_sdxl": ControlNetModelRecord(name="control_qr_xl", controlnet_style="control_qr_xl"),
        "bare": ControlNetModelRecord(name="bare"),
    }
    query = ControlNetQuery.from_records(records)
    assert query.for_style("control_canny").names() == ["control_canny", "control_canny_sd2"]
    assert query.for_style("control_qr_xl").names() == ["control_qr_sdxl"]
    groups = query.group_by_style()
    assert {k: [r.name for r in v] for k, v in groups.items()} == {
        "control_canny": ["control_canny", "control_canny_sd2"],
        "control_qr_xl": ["control_qr_xl"],
    }
    with pytest.raises(ValueError, match="needs a style name"):
        query.for_style("")


# -- real data ---------------------------------------------------------------------------------


def _golden(
    shared_data: Path, category: MODEL_REFERENCE_CATEGORY, file_name: str
) -> dict[str, GenericModelRecord]:
    decoded = decode_catalog(category, (shared_data / "golden-v2" / file_name).read_bytes())
    assert not decoded.issues
    return decoded.records


@pytest.fixture(scope="module")
def golden_host(shared_data: Path) -> FakeHost:
    return FakeHost(
        {
            C.image_generation: _golden(shared_data, C.image_generation, "stable_diffusion.json"),
            C.text_generation: _golden(shared_data, C.text_generation, "text_generation.json"),
            C.controlnet: _golden(shared_data, C.controlnet, "controlnet.json"),
        }
    )


def test_real_image_catalog(golden_host: FakeHost) -> None:
    records = golden_host._data[C.image_generation]
    assert len(records) == 161
    result = (
        golden_host.query(C.image_generation).where(baseline="stable_diffusion_xl").exclude_nsfw().to_list()
    )
    expected = [r for r in records.values() if r.baseline == "stable_diffusion_xl" and not r.nsfw]  # type: ignore[attr-defined]
    assert result == expected and result
    assert golden_host.query_image_generation().for_baseline("SDXL").exclude_nsfw().to_list() == expected
    assert set(golden_host.query_image_generation().distinct("baseline")) == {
        "stable_diffusion_1",
        "stable_diffusion_xl",
        "stable_diffusion_2_768",
        "stable_cascade",
        "flux_1",
    }
    by_size = golden_host.query_image_generation().order_by(ImageFields.size_on_disk_bytes.desc()).to_list()
    sizes = [r.size_on_disk_bytes for r in by_size]
    present = [s for s in sizes if s is not None]
    assert present == sorted(present, reverse=True)
    assert sizes[len(present) :] == [None] * (len(sizes) - len(present))
    assert golden_host.query_image_generation().source_status() == {"horde": "ok"}


def test_real_text_and_controlnet_catalogs(golden_host: FakeHost) -> None:
    texts = golden_host.query_text_generation()
    assert texts.count() == 719
    assert texts.only_quantized().count() == 0
    assert texts.for_backend("koboldcpp").count() == 0, "v2 catalogs have no backend-prefixed names"
    assert texts.where(parameters_count__gte=70_000_000_000).count() > 0
    assert sum(len(v) for v in texts.group_by_base_model().values()) == 719
    controlnet = golden_host.query_controlnet()
    assert controlnet.count() == 18
    assert controlnet.for_style("control_qr_xl").names() == ["control_qr_sdxl"]


def test_warm_canonical_query_is_fast(golden_host: FakeHost) -> None:
    """A loose guard only (the machine is noisy); the real figures are in bench/."""

    def run() -> list[ImageGenerationModelRecord]:
        return (
            golden_host.query(C.image_generation)
            .where(baseline="stable_diffusion_xl")
            .exclude_nsfw()
            .to_list()
        )

    run()
    timings = []
    for _ in range(200):
        start = time.perf_counter()
        run()
        timings.append(time.perf_counter() - start)
    timings.sort()
    assert timings[len(timings) // 2] < 0.001
