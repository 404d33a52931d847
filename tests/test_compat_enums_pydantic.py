"""The enums behave as the StrEnums they replace inside consumers' own pydantic models.

horde-sdk types fields as `KNOWN_IMAGE_GENERATION_BASELINE | str`, `list[...]` of it and
`dict[KNOWN_IMAGE_GENERATION_BASELINE | str, bool]` (feature flags), validates and dumps them to
JSON: the same values, keys and schema as with upstream's `strenum.StrEnum`.
"""

from __future__ import annotations

import json

import pytest

from horde_model_reference.meta_consts import (
    KNOWN_IMAGE_GENERATION_BASELINE as BASELINE,
)
from horde_model_reference.meta_consts import (
    MODEL_REFERENCE_CATEGORY as CATEGORY,
)
from horde_model_reference.meta_consts import (
    TEXT_BACKENDS,
)

pydantic = pytest.importorskip("pydantic")


class Flags(pydantic.BaseModel):
    baseline: BASELINE = BASELINE.infer
    baselines: list[BASELINE | str] = pydantic.Field(default_factory=list)
    per_baseline: dict[BASELINE | str, bool] | None = None
    category: CATEGORY | None = None
    backend: TEXT_BACKENDS | None = None


def test_members_and_strings_validate_to_the_same_values() -> None:
    flags = Flags(
        baseline="stable_diffusion_xl",
        baselines=[BASELINE.stable_diffusion_1, "flux_1", "someone_elses_baseline"],
        per_baseline={BASELINE.stable_diffusion_1: True, "stable_diffusion_xl": False},
        category="image_generation",
        backend="koboldcpp",
    )
    assert flags.baseline is BASELINE.stable_diffusion_xl
    assert flags.baselines == ["stable_diffusion_1", "flux_1", "someone_elses_baseline"]
    assert flags.per_baseline is not None
    assert flags.per_baseline[BASELINE.stable_diffusion_xl] is False
    assert flags.per_baseline["stable_diffusion_1"] is True
    assert flags.category is CATEGORY.image_generation
    assert flags.backend is TEXT_BACKENDS.koboldcpp


def test_json_dump_uses_the_plain_values_as_values_and_keys() -> None:
    flags = Flags(
        baselines=[BASELINE.flux_1], per_baseline={BASELINE.stable_cascade: True}, category=CATEGORY.lora
    )
    dumped = json.loads(flags.model_dump_json())
    assert dumped == {
        "baseline": "infer",
        "baselines": ["flux_1"],
        "per_baseline": {"stable_cascade": True},
        "category": "lora",
        "backend": None,
    }
    assert flags.model_dump(mode="json") == dumped
    assert Flags.model_validate_json(flags.model_dump_json()) == flags


def test_schema_lists_the_members() -> None:
    schema = Flags.model_json_schema()
    assert schema["$defs"]["KNOWN_IMAGE_GENERATION_BASELINE"]["enum"] == [b.value for b in BASELINE]
    assert "image_generation" in schema["$defs"]["MODEL_REFERENCE_CATEGORY"]["enum"]


def test_a_closed_enum_field_rejects_an_unknown_value() -> None:
    with pytest.raises(pydantic.ValidationError):
        Flags(category="not_a_category")
    with pytest.raises(pydantic.ValidationError):
        Flags(backend="not_a_backend")


def test_a_baseline_field_refuses_an_unlisted_value_as_upstream() -> None:
    with pytest.raises(pydantic.ValidationError, match="baseline"):
        Flags(baseline="baseline_from_a_newer_catalog")
    # the `| str` fields horde-sdk uses keep it as a plain string
    assert Flags(baselines=["baseline_from_a_newer_catalog"]).baselines == ["baseline_from_a_newer_catalog"]


def test_members_as_dict_keys_in_plain_python() -> None:
    table = {BASELINE.stable_diffusion_1: 512, "stable_diffusion_xl": 1024}
    assert table["stable_diffusion_1"] == 512
    assert table[BASELINE.stable_diffusion_xl] == 1024
    assert json.dumps({BASELINE.flux_1: 1}) == '{"flux_1": 1}'
    assert sorted([BASELINE.stable_diffusion_xl, "anima", BASELINE.flux_1]) == [
        "anima",
        "flux_1",
        "stable_diffusion_xl",
    ]
