"""The project's own example reference (examples/reference, legacy layout) converts cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from horde_model_reference import MODEL_REFERENCE_CATEGORY, decode_catalog, get_category_descriptor
from horde_model_reference.legacy import convert_legacy, convert_legacy_directory, legacy_projection
from horde_model_reference.records import ImageGenerationModelRecord, TextGenerationModelRecord

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "reference"
C = MODEL_REFERENCE_CATEGORY
COUNTS = {
    C.image_generation: 6,
    C.controlnet: 3,
    C.clip: 1,
    C.blip: 1,
    C.esrgan: 2,
    C.gfpgan: 1,
    C.codeformer: 1,
    C.safety_checker: 1,
    C.miscellaneous: 1,
    C.text_generation: 6,
}


@pytest.mark.parametrize("category", COUNTS, ids=lambda c: c.value)
def test_example_converts_with_no_issue_and_no_warning(category: MODEL_REFERENCE_CATEGORY) -> None:
    filename = get_category_descriptor(category).legacy_filename
    assert filename is not None
    with capture_logs() as logs:
        catalog = convert_legacy(category, (EXAMPLES / filename).read_bytes(), source=filename)
    assert catalog.issues == ()
    assert [entry for entry in logs if entry["log_level"] != "debug"] == []
    assert len(catalog.records) == COUNTS[category]


def test_example_directory() -> None:
    result = convert_legacy_directory(EXAMPLES)
    assert set(result) == set(COUNTS)
    for category, data in result.items():
        assert decode_catalog(category, data, strict=True).issues == ()


def test_example_image_generation_is_varied() -> None:
    records = convert_legacy(C.image_generation, (EXAMPLES / "stable_diffusion.json").read_bytes()).records
    image = [r for r in records.values() if isinstance(r, ImageGenerationModelRecord)]
    assert len(image) == 6
    assert {r.baseline for r in image} == {
        "stable_diffusion_1",
        "stable_diffusion_2_768",
        "stable_diffusion_xl",
        "flux_1",
    }
    assert {r.nsfw for r in image} == {True, False}
    assert sum(bool(r.inpainting) for r in image) == 1
    assert len({r.style for r in image}) >= 3


def test_example_projection_round_trips() -> None:
    for category in (C.image_generation, C.text_generation):
        filename = get_category_descriptor(category).legacy_filename
        assert filename is not None
        records = convert_legacy(category, (EXAMPLES / filename).read_bytes()).records
        again = convert_legacy(category, legacy_projection(category, records)[filename]).records
        assert again == records
    text = convert_legacy(C.text_generation, (EXAMPLES / "models.csv").read_bytes()).records
    assert all(isinstance(r, TextGenerationModelRecord) and r.text_model_group for r in text.values())
