"""weights.canonical: deriving the shareable component set; the two record fields it reads."""

from __future__ import annotations

import json

import msgspec
import pytest

from horde_model_reference.catalog import decode_record
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.records import (
    DownloadRecord,
    GenericModelRecordConfig,
    ImageGenerationModelRecord,
)
from horde_model_reference.registries import KNOWN_IMAGE_GENERATION_BASELINE
from horde_model_reference.weights.canonical import (
    DEFAULT_MIN_SHARED_MODELS,
    CanonicalComponent,
    CanonicalComponentRegistry,
    CanonicalComponentSource,
    CanonicalDerivationError,
    derive_canonical_registry,
)
from horde_model_reference.weights.kinds import ComponentKind


def _record(
    name: str, downloads: list[dict], embedded: dict[str, str] | None = None
) -> ImageGenerationModelRecord:
    config: dict = {"download": downloads}
    if embedded is not None:
        config["embedded_component_hashes"] = embedded
    wire = {"name": name, "baseline": "flux_1", "nsfw": False, "config": config}
    return msgspec.json.decode(json.dumps(wire), type=ImageGenerationModelRecord)


def _file(name: str, purpose: str | None = None, content_hash: str | None = None) -> dict:
    wire = {"file_name": name, "file_url": f"https://example.invalid/{name}"}
    if purpose is not None:
        wire["file_purpose"] = purpose
    if content_hash is not None:
        wire["content_hash"] = content_hash
    return wire


def _reference() -> dict[str, ImageGenerationModelRecord]:
    return {
        "split-a": _record(
            "split-a", [_file("a.st"), _file("ae.st", "vae", "V1"), _file("te.st", "text_encoder", "T1")]
        ),
        "split-b": _record("split-b", [_file("b.st"), _file("ae.st", "vae", "V1")]),
        "mono-c": _record("mono-c", [_file("c.st")], {"vae": "V1", "text_encoders": "T2", "unet": "U"}),
        "mono-d": _record("mono-d", [_file("d.st")], {"text_encoder": "T2"}),
        "plain": _record("plain", [_file("p.st"), _file("x.st", "vae")]),
    }


# --- the two record fields ------------------------------------------------------------------------


def test_records_decode_and_round_trip_the_component_hash_fields() -> None:
    wire = {
        "name": "m",
        "record_type": "image_generation",
        "baseline": "flux_1",
        "nsfw": False,
        "config": {
            "download": [
                {"file_name": "v.st", "file_url": "u", "file_purpose": "vae", "content_hash": "abc"}
            ],
            "embedded_component_hashes": {"text_encoders": "def"},
        },
    }
    record = decode_record(MODEL_REFERENCE_CATEGORY.image_generation, json.dumps(wire).encode())
    assert record.config.download[0].content_hash == "abc"
    assert record.config.embedded_component_hashes == {"text_encoders": "def"}
    again = json.loads(record.to_json())
    assert again["config"] == wire["config"]
    assert record.model_dump()["config"]["embedded_component_hashes"] == {"text_encoders": "def"}


def test_absent_component_hash_fields_stay_out_of_the_json() -> None:
    record = _record("m", [_file("m.st")])
    assert record.config.embedded_component_hashes is None
    assert record.config.download[0].content_hash is None
    assert json.loads(record.to_json())["config"] == {"download": [_file("m.st")]}


def test_a_wrongly_typed_component_hash_field_is_a_decode_error() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"embedded_component_hashes"):
        _record("m", [], {"vae": 3})  # type: ignore[dict-item]
    with pytest.raises(msgspec.ValidationError, match=r"content_hash"):
        msgspec.json.decode(b'{"file_name": "f", "file_url": "u", "content_hash": 1}', type=DownloadRecord)


# --- derivation -----------------------------------------------------------------------------------


def test_components_shared_by_two_models_are_promoted_with_every_source() -> None:
    registry = derive_canonical_registry(_reference())
    assert [(c.kind, c.content_hash, c.shared_by_model_count) for c in registry.components] == [
        (ComponentKind.TEXT_ENCODERS, "T2", 2),
        (ComponentKind.VAE, "V1", 3),
    ]
    vae = registry.by_hash("V1")
    assert vae is not None
    assert vae.sources == (
        CanonicalComponentSource(
            model_name="split-a",
            kind=ComponentKind.VAE,
            embedded=False,
            file_name="ae.st",
            file_purpose="vae",
        ),
        CanonicalComponentSource(
            model_name="split-b",
            kind=ComponentKind.VAE,
            embedded=False,
            file_name="ae.st",
            file_purpose="vae",
        ),
        CanonicalComponentSource(model_name="mono-c", kind=ComponentKind.VAE, embedded=True),
    )
    assert DEFAULT_MIN_SHARED_MODELS == 2


def test_the_threshold_can_be_changed() -> None:
    assert [
        c.content_hash for c in derive_canonical_registry(_reference(), min_shared_models=1).components
    ] == [
        "T1",
        "T2",
        "V1",
    ]
    assert [
        c.content_hash for c in derive_canonical_registry(_reference(), min_shared_models=3).components
    ] == ["V1"]


def test_allow_promotes_a_rare_hash_and_deny_excludes_a_frequent_one() -> None:
    registry = derive_canonical_registry(_reference(), allow={"T1"}, deny=["V1"])
    assert [c.content_hash for c in registry.components] == ["T1", "T2"]
    assert registry.by_hash("T1").shared_by_model_count == 1  # type: ignore[union-attr]


def test_deny_wins_over_allow() -> None:
    registry = derive_canonical_registry(_reference(), allow=["V1", "T1"], deny=("V1",))
    assert registry.by_hash("V1") is None
    assert registry.by_hash("T1") is not None


def test_allow_cannot_invent_a_component_no_model_carries() -> None:
    assert derive_canonical_registry(_reference(), allow=["nobody"]).by_hash("nobody") is None


def test_a_model_carrying_a_component_twice_counts_once() -> None:
    both = _record("both", [_file("v.st", "vae", "H")], {"vae": "H"})
    registry = derive_canonical_registry({"both": both}, min_shared_models=2)
    assert registry.components == ()
    (component,) = derive_canonical_registry({"both": both}, min_shared_models=1).components
    assert component.shared_by_model_count == 1
    assert [s.embedded for s in component.sources] == [False, True]


def test_same_hash_of_two_kinds_is_two_components() -> None:
    odd = {"m1": _record("m1", [], {"vae": "H"}), "m2": _record("m2", [], {"text_encoders": "H"})}
    kinds = [c.kind for c in derive_canonical_registry(odd, min_shared_models=1).components]
    assert kinds == [ComponentKind.TEXT_ENCODERS, ComponentKind.VAE]


def test_the_model_name_is_the_reference_key() -> None:
    registry = derive_canonical_registry({"key": _record("other", [], {"vae": "H"})}, min_shared_models=1)
    assert registry.components[0].sources[0].model_name == "key"


def test_for_kind_takes_the_enum_or_its_value() -> None:
    registry = derive_canonical_registry(_reference())
    assert [c.content_hash for c in registry.for_kind(ComponentKind.VAE)] == ["V1"]
    assert [c.content_hash for c in registry.for_kind("text_encoders")] == ["T2"]
    assert registry.for_kind("nothing") == []


def test_an_empty_reference_gives_an_empty_registry() -> None:
    assert derive_canonical_registry({}) == CanonicalComponentRegistry()


def test_the_registry_travels_as_json_and_dumps_like_pydantic() -> None:
    registry = derive_canonical_registry(_reference())
    decoded = msgspec.json.decode(msgspec.json.encode(registry), type=CanonicalComponentRegistry)
    assert decoded == registry
    dumped = registry.model_dump(mode="json")
    assert dumped["components"][1]["sources"][2] == {
        "model_name": "mono-c",
        "kind": "vae",
        "embedded": True,
        "file_name": None,
        "file_purpose": None,
    }
    assert CanonicalComponent.model_validate(dumped["components"][1]) == registry.components[1]


def test_an_unknown_kind_in_json_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="kind"):
        msgspec.json.decode(
            b'{"model_name": "m", "kind": "unet", "embedded": true}', type=CanonicalComponentSource
        )


@pytest.mark.parametrize(
    ("kwargs", "argument", "reason"),
    [
        ({"min_shared_models": 0}, "min_shared_models", "must be an int >= 1"),
        ({"min_shared_models": True}, "min_shared_models", "must be an int >= 1"),
        ({"min_shared_models": "2"}, "min_shared_models", "must be an int >= 1"),
        ({"allow": "V1"}, "allow", "must be a collection of content hashes, not one string"),
        ({"deny": b"V1"}, "deny", "must be a collection of content hashes, not one string"),
        ({"allow": [1]}, "allow", "holds 1, not a content hash string"),
        ({"deny": None}, "deny", "must be a collection of content hashes"),
    ],
)
def test_bad_arguments_are_refused_naming_them(kwargs: dict, argument: str, reason: str) -> None:
    with pytest.raises(CanonicalDerivationError, match=reason) as info:
        derive_canonical_registry(_reference(), **kwargs)
    assert info.value.argument == argument
    assert str(info.value).startswith(f"{argument}=")


def test_a_reference_that_is_not_a_mapping_of_records_is_refused() -> None:
    with pytest.raises(CanonicalDerivationError, match="records=.*must be a mapping"):
        derive_canonical_registry([_reference()["plain"]])  # type: ignore[arg-type]
    with pytest.raises(CanonicalDerivationError, match="entry 'x' is not a model record"):
        derive_canonical_registry({"x": {"name": "x"}})  # type: ignore[dict-item]


def test_records_built_in_python_carry_the_fields_too() -> None:
    config = GenericModelRecordConfig(
        download=(DownloadRecord(file_name="v", file_url="u", file_purpose="vae", content_hash="H"),),
        embedded_component_hashes={"vae": "H"},
    )
    record = ImageGenerationModelRecord(
        name="m", baseline=KNOWN_IMAGE_GENERATION_BASELINE.flux_1, nsfw=False, config=config
    )
    assert derive_canonical_registry({"m": record}, min_shared_models=1).components[0].content_hash == "H"
