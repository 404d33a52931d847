"""`horde_model_reference.licensing` (upstream 8.6.2's licensing records) and `data_merger.PopularModelResult`."""

from __future__ import annotations

from datetime import date

import msgspec
import pytest

from horde_model_reference.integrations import popularity
from horde_model_reference.licensing import (
    LICENSE_DATA_SCHEMA_VERSION,
    NOASSERTION,
    LicenseAssignment,
    LicensedAsset,
    LicensedAssetKind,
    LicenseDefinition,
    LicenseEvidence,
    LicenseObligation,
    LicensingRecordMetadata,
    LicensingValueError,
    ModelLicensing,
    PermissionStatus,
    aggregate_permission_statuses,
    license_expression_identifiers,
    unknown_model_licensing,
)

# Written by upstream horde-model-reference 8.6.2 (pydantic) in a Python 3.12 venv
# (`pip install horde-model-reference==8.6.2`): each is `record.model_dump_json()` of a record
# built with upstream's classes (the model licensing: "MIT OR Apache-2.0" with one evidence, dates
# 2024-05-06/07 and a NOASSERTION override for "vae.safetensors"; the asset: a custom node under
# "GPL-3.0-only WITH Classpath-exception-2.0"; `unknown` is `unknown_model_licensing()`).
UPSTREAM_DEFINITION = (
    '{"license_id":"LicenseRef-CreativeML-OpenRAIL-M","name":"CreativeML Open RAIL-M","spdx_identifier":null,'
    '"canonical_url":"https://huggingface.co/spaces/CompVis/stable-diffusion-license",'
    '"commercial_use":"allowed_with_conditions","redistribution":"allowed_with_conditions",'
    '"obligations":["include_license","responsible_use_restrictions"],"restrictions":["No harmful use"],'
    '"notes":null,"deprecated":false,"metadata":{"revision":3,"created_at":1700000000,"created_by":"123",'
    '"updated_at":1700000500,"updated_by":"456"}}'
)
UPSTREAM_DEFAULT_DEFINITION = (
    '{"license_id":"MIT","name":"MIT","spdx_identifier":null,"canonical_url":"https://opensource.org/license/mit",'
    '"commercial_use":"allowed","redistribution":"allowed","obligations":[],"restrictions":[],"notes":null,'
    '"deprecated":false,"metadata":{"revision":1,"created_at":null,"created_by":null,"updated_at":null,'
    '"updated_by":null}}'
)
UPSTREAM_MODEL = (
    '{"license_expression":"MIT OR Apache-2.0","license_ids":["MIT","Apache-2.0"],"commercial_use":"allowed",'
    '"redistribution":"allowed_with_conditions","obligations":["attribution"],"attribution":"Example Org",'
    '"evidence":[{"source":"https://example.org/LICENSE","description":"model card","checked_at":"2024-05-06"}],'
    '"reviewed_by":"789","reviewed_at":"2024-05-07","notes":"dual licensed","files":{"vae.safetensors":'
    '{"license_expression":"NOASSERTION","license_ids":[],"commercial_use":"unknown","redistribution":"unknown",'
    '"obligations":[],"attribution":null,"evidence":[],"reviewed_by":null,"reviewed_at":null,"notes":null}}}'
)
UPSTREAM_ASSET = (
    '{"asset_kind":"custom_node","asset_identifier":"comfyui-foo","display_name":"Foo nodes",'
    '"source_url":"https://github.com/example/foo","version":"1.2.3","locations":["custom_nodes/foo"],'
    '"related_assets":["software_component:bar"],"licensing":{"license_expression":'
    '"GPL-3.0-only WITH Classpath-exception-2.0","license_ids":["GPL-3.0-only WITH Classpath-exception-2.0"],'
    '"commercial_use":"allowed","redistribution":"allowed_with_conditions","obligations":["disclose_source",'
    '"share_alike"],"attribution":null,"evidence":[],"reviewed_by":null,"reviewed_at":null,"notes":null},'
    '"notes":null,"metadata":{"revision":1,"created_at":null,"created_by":null,"updated_at":null,'
    '"updated_by":null}}'
)
UPSTREAM_UNKNOWN = (
    '{"license_expression":"NOASSERTION","license_ids":[],"commercial_use":"unknown","redistribution":"unknown",'
    '"obligations":[],"attribution":null,"evidence":[],"reviewed_by":null,"reviewed_at":null,'
    '"notes":"No reviewed licensing conclusion is currently available.","files":{}}'
)


def _assignment(**changes: object) -> LicenseAssignment:
    fields: dict[str, object] = {
        "license_expression": "MIT",
        "license_ids": ("MIT",),
        "commercial_use": PermissionStatus.ALLOWED,
        "redistribution": PermissionStatus.ALLOWED,
    }
    fields.update(changes)
    return LicenseAssignment(**fields)  # type: ignore[arg-type]


def _definition(**changes: object) -> LicenseDefinition:
    fields: dict[str, object] = {
        "license_id": "MIT",
        "name": "MIT License",
        "canonical_url": "https://opensource.org/license/mit",
        "commercial_use": "allowed",
        "redistribution": "allowed",
    }
    fields.update(changes)
    return LicenseDefinition(**fields)  # type: ignore[arg-type]


# --- enums and constants --------------------------------------------------------------------


def test_enum_values_are_upstreams() -> None:
    assert [s.value for s in PermissionStatus] == [
        "allowed",
        "allowed_with_conditions",
        "prohibited",
        "unknown",
    ]
    assert [o.value for o in LicenseObligation] == [
        "attribution",
        "include_license",
        "share_alike",
        "disclose_source",
        "network_source_disclosure",
        "responsible_use_restrictions",
        "other",
    ]
    assert [k.value for k in LicensedAssetKind] == ["software_component", "custom_node", "other"]
    assert str(PermissionStatus.UNKNOWN) == "unknown"
    assert LICENSE_DATA_SCHEMA_VERSION == 1
    assert NOASSERTION == "NOASSERTION"


# --- construction and defaults --------------------------------------------------------------


def test_definition_defaults() -> None:
    definition = _definition()
    assert definition.spdx_identifier is None
    assert definition.obligations == ()
    assert definition.restrictions == ()
    assert definition.notes is None
    assert definition.deprecated is False
    assert definition.metadata == LicensingRecordMetadata()
    assert definition.metadata.revision == 1
    assert definition.metadata.created_at is None


def test_assignment_defaults_and_frozen() -> None:
    assignment = _assignment()
    assert assignment.obligations == ()
    assert assignment.evidence == ()
    assert assignment.attribution is None
    assert assignment.reviewed_at is None
    with pytest.raises(AttributeError):
        assignment.notes = "changed"  # type: ignore[misc]
    assert hash(assignment) == hash(_assignment())


def test_construction_converts_values_as_pydantic_does() -> None:
    assignment = _assignment(
        commercial_use="allowed_with_conditions",
        license_ids=["MIT"],
        obligations=["attribution"],
        evidence=[{"source": "https://example.org", "checked_at": "2024-05-06"}],
        reviewed_at="2024-05-07",
    )
    assert assignment.commercial_use is PermissionStatus.ALLOWED_WITH_CONDITIONS
    assert assignment.license_ids == ("MIT",)
    assert assignment.obligations == (LicenseObligation.ATTRIBUTION,)
    assert assignment.evidence == (
        LicenseEvidence(source="https://example.org", checked_at=date(2024, 5, 6)),
    )
    assert assignment.reviewed_at == date(2024, 5, 7)
    assert _definition(metadata={"revision": 2}).metadata == LicensingRecordMetadata(revision=2)


def test_model_licensing_file_overrides() -> None:
    override = unknown_model_licensing()
    model = ModelLicensing(
        license_expression="MIT",
        license_ids=("MIT",),
        commercial_use="allowed",
        redistribution="allowed",
        files={"vae.safetensors": _assignment(license_expression="Apache-2.0", license_ids=["Apache-2.0"])},
    )
    assert model.assignment_for_file("vae.safetensors").license_expression == "Apache-2.0"
    assert model.assignment_for_file("model.safetensors") is model
    assert isinstance(override, LicenseAssignment)


def test_licensed_asset_key() -> None:
    asset = LicensedAsset(
        asset_kind="software_component",
        asset_identifier="comfyui",
        display_name="ComfyUI",
        licensing=_assignment(),
    )
    assert asset.asset_kind is LicensedAssetKind.SOFTWARE_COMPONENT
    assert asset.asset_key == "software_component:comfyui"
    assert asset.metadata.revision == 1


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: LicenseEvidence(source=""), "source"),
        (lambda: _definition(license_id=""), "license_id"),
        (lambda: _definition(name=""), "name"),
        (lambda: _definition(canonical_url=""), "canonical_url"),
        (lambda: _assignment(license_expression="", license_ids=()), "license_expression"),
        (
            lambda: LicensedAsset(
                asset_kind="other", asset_identifier="", display_name="x", licensing=_assignment()
            ),
            "asset_identifier",
        ),
        (
            lambda: LicensedAsset(
                asset_kind="other", asset_identifier="x", display_name="", licensing=_assignment()
            ),
            "display_name",
        ),
    ],
)
def test_empty_text_is_refused(build: object, field: str) -> None:
    with pytest.raises(LicensingValueError, match=f"{field}: must not be empty") as info:
        build()  # type: ignore[operator]
    assert info.value.field == field
    assert info.value.value == ""


def test_revision_below_one_is_refused() -> None:
    with pytest.raises(LicensingValueError, match=r"revision: must be at least 1 \(got 0\)"):
        LicensingRecordMetadata(revision=0)


def test_bad_enum_value_is_refused_naming_it() -> None:
    with pytest.raises(LicensingValueError, match="commercial_use.*'sometimes'") as info:
        _assignment(commercial_use="sometimes")
    assert isinstance(info.value, ValueError)
    with pytest.raises(LicensingValueError, match="obligations.*'pay'"):
        _assignment(obligations=["pay"])
    with pytest.raises(LicensingValueError, match="asset_kind.*'plugin'"):
        LicensedAsset(asset_kind="plugin", asset_identifier="x", display_name="x", licensing=_assignment())


def test_bad_date_is_refused_naming_it() -> None:
    with pytest.raises(LicensingValueError, match="reviewed_at.*'yesterday'"):
        _assignment(reviewed_at="yesterday")


@pytest.mark.parametrize(
    ("license_id", "reason"),
    [
        ("MIT AND BSD-3-Clause", "one atomic SPDX identifier"),
        (" MIT", "one atomic SPDX identifier"),
        ("(MIT)", "one atomic SPDX identifier"),
        ("a/b", "is not a license identifier"),
        ("MIT AND", "invalid SPDX expression"),
        ("NOASSERTION", "NOASSERTION is a conclusion"),
    ],
)
def test_definition_license_id_must_be_atomic(license_id: str, reason: str) -> None:
    with pytest.raises(LicensingValueError, match=reason) as info:
        _definition(license_id=license_id)
    assert info.value.field == "license_id"
    assert info.value.value == license_id
    assert repr(license_id) in str(info.value)


@pytest.mark.parametrize(
    "license_id", ["MIT", "LicenseRef-CreativeML-OpenRAIL-M", "GPL-2.0+", "Apache 2.0", "GPL-2.0 WITH X"]
)
def test_definition_accepts_what_upstream_accepts(license_id: str) -> None:
    assert _definition(license_id=license_id).license_id == license_id


def test_license_ids_must_match_the_expression() -> None:
    with pytest.raises(LicensingValueError, match=r"license_ids: must be exactly the identifiers") as info:
        _assignment(license_expression="MIT OR Apache-2.0", license_ids=("MIT",))
    assert info.value.value == ("MIT",)
    with pytest.raises(LicensingValueError, match="license_ids"):
        _assignment(license_expression="MIT", license_ids=())
    with pytest.raises(LicensingValueError, match="license_ids"):
        _assignment(license_expression="MIT", license_ids=("mit",))
    same = _assignment(license_expression="mit and MIT and mit", license_ids=("MIT", "mit", "MIT"))
    assert same.license_ids == ("MIT", "mit", "MIT")


def test_noassertion_rules() -> None:
    unknown = {"commercial_use": "unknown", "redistribution": "unknown"}
    assert _assignment(license_expression=NOASSERTION, license_ids=(), **unknown).license_ids == ()
    with pytest.raises(LicensingValueError, match="NOASSERTION must not reference") as info:
        _assignment(license_expression=NOASSERTION, license_ids=("NOASSERTION",), **unknown)
    assert info.value.field == "license_ids"
    with pytest.raises(LicensingValueError, match=r"commercial_use='unknown' \(got 'allowed'\)"):
        _assignment(license_expression=NOASSERTION, license_ids=(), redistribution="unknown")
    with pytest.raises(LicensingValueError, match=r"redistribution='unknown' \(got 'prohibited'\)"):
        _assignment(
            license_expression=NOASSERTION,
            license_ids=(),
            commercial_use="unknown",
            redistribution="prohibited",
        )
    combined = _assignment(license_expression="NOASSERTION AND MIT", license_ids=("MIT", "NOASSERTION"))
    assert combined.commercial_use is PermissionStatus.ALLOWED


# --- SPDX expressions (pinned against upstream's license-expression 30.4.4, validate=False) ---


@pytest.mark.parametrize(
    ("expression", "identifiers"),
    [
        ("MIT", {"MIT"}),
        ("MIT AND Apache-2.0", {"MIT", "Apache-2.0"}),
        ("mit and apache-2.0", {"mit", "apache-2.0"}),
        ("MIT Or BSD", {"MIT", "BSD"}),
        ("(MIT OR Apache-2.0) AND BSD-3-Clause", {"MIT", "Apache-2.0", "BSD-3-Clause"}),
        ("GPL-2.0 with Classpath-exception-2.0", {"GPL-2.0 WITH Classpath-exception-2.0"}),
        ("MIT OR (Apache-2.0 WITH X)", {"MIT", "Apache-2.0 WITH X"}),
        ("MIT WITH X AND Y", {"MIT WITH X", "Y"}),
        ("MIT WITH X Y", {"MIT WITH X Y"}),
        ("Apache 2.0 OR MIT", {"Apache 2.0", "MIT"}),
        ("GPL\t2.0", {"GPL 2.0"}),
        ("MIT\u00a0BSD", {"MIT BSD"}),
        ("MIT ANDX", {"MIT ANDX"}),
        ("  ((MIT))\n", {"MIT"}),
        ("MIT AND MIT", {"MIT"}),
        ("MIT AND (BSD OR (X AND Y))", {"MIT", "BSD", "X", "Y"}),
        ("open-rail++ OR a:b OR x.y OR _ OR \u00e4", {"open-rail++", "a:b", "x.y", "_", "\u00e4"}),
    ],
)
def test_expression_identifiers(expression: str, identifiers: set[str]) -> None:
    assert license_expression_identifiers(expression) == identifiers


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "   ",
        "AND",
        "MIT AND",
        "MIT AND OR BSD",
        "(MIT",
        "MIT)",
        "()",
        "MIT ()",
        "(AND MIT)",
        "(MIT OR)",
        "MIT (BSD)",
        "(MIT) BSD",
        "MIT WITH",
        "WITH MIT",
        "MIT WITH A WITH B",
        "(MIT AND BSD) WITH X",
        "MIT WITH (X)",
        "MIT & BSD",
        "MIT,Apache",
        "a/b",
        "MIT AND a/b",
        # upstream's parser tolerates a dangling operator after a chain of the same one; refused here
        "MIT AND BSD AND",
    ],
)
def test_bad_expressions_are_refused(expression: str) -> None:
    with pytest.raises(LicensingValueError, match="invalid SPDX expression") as info:
        license_expression_identifiers(expression)
    assert info.value.value == expression
    with pytest.raises(LicensingValueError, match="license_expression") as record_info:
        _assignment(license_expression=expression)
    assert record_info.value.value == expression


# --- aggregate_permission_statuses and unknown_model_licensing ---------------------------------


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ((), PermissionStatus.UNKNOWN),
        ((PermissionStatus.ALLOWED,), PermissionStatus.ALLOWED),
        (
            (PermissionStatus.ALLOWED, PermissionStatus.ALLOWED_WITH_CONDITIONS),
            PermissionStatus.ALLOWED_WITH_CONDITIONS,
        ),
        ((PermissionStatus.ALLOWED_WITH_CONDITIONS, PermissionStatus.UNKNOWN), PermissionStatus.UNKNOWN),
        ((PermissionStatus.UNKNOWN, PermissionStatus.PROHIBITED), PermissionStatus.PROHIBITED),
        ((PermissionStatus.PROHIBITED, PermissionStatus.ALLOWED), PermissionStatus.PROHIBITED),
        (("allowed", "allowed"), PermissionStatus.ALLOWED),
    ],
)
def test_aggregate_is_conservative(
    statuses: tuple[PermissionStatus, ...], expected: PermissionStatus
) -> None:
    assert aggregate_permission_statuses(statuses) is expected
    assert aggregate_permission_statuses(iter(statuses)) is expected


def test_aggregate_refuses_a_non_status() -> None:
    with pytest.raises(ValueError, match="'sometimes'"):
        aggregate_permission_statuses(("allowed", "sometimes"))


def test_unknown_model_licensing() -> None:
    unknown = unknown_model_licensing()
    assert isinstance(unknown, ModelLicensing)
    assert unknown.license_expression == NOASSERTION
    assert unknown.license_ids == ()
    assert unknown.commercial_use is PermissionStatus.UNKNOWN
    assert unknown.redistribution is PermissionStatus.UNKNOWN
    assert unknown.notes == "No reviewed licensing conclusion is currently available."
    assert unknown.files == {}
    assert unknown_model_licensing(note="Awaiting review").notes == "Awaiting review"
    assert unknown_model_licensing(note="").notes == unknown.notes


# --- JSON and the pydantic-style methods ----------------------------------------------------


@pytest.mark.parametrize(
    ("document", "record_type"),
    [
        (UPSTREAM_DEFINITION, LicenseDefinition),
        (UPSTREAM_DEFAULT_DEFINITION, LicenseDefinition),
        (UPSTREAM_MODEL, ModelLicensing),
        (UPSTREAM_ASSET, LicensedAsset),
        (UPSTREAM_UNKNOWN, ModelLicensing),
    ],
)
def test_upstream_documents_decode_and_encode_identically(document: str, record_type: type) -> None:
    record = msgspec.json.decode(document, type=record_type)
    assert msgspec.json.encode(record).decode() == document
    assert record.model_dump_json() == document
    assert record_type.model_validate_json(document) == record
    assert record_type.model_validate(record.model_dump()) == record


def test_upstream_documents_decode_to_equal_values() -> None:
    model = ModelLicensing.model_validate_json(UPSTREAM_MODEL)
    assert model == ModelLicensing(
        license_expression="MIT OR Apache-2.0",
        license_ids=("MIT", "Apache-2.0"),
        commercial_use=PermissionStatus.ALLOWED,
        redistribution=PermissionStatus.ALLOWED_WITH_CONDITIONS,
        obligations=(LicenseObligation.ATTRIBUTION,),
        attribution="Example Org",
        evidence=(
            LicenseEvidence(
                source="https://example.org/LICENSE", description="model card", checked_at=date(2024, 5, 6)
            ),
        ),
        reviewed_by="789",
        reviewed_at=date(2024, 5, 7),
        notes="dual licensed",
        files={
            "vae.safetensors": LicenseAssignment(
                license_expression=NOASSERTION, commercial_use="unknown", redistribution="unknown"
            )
        },
    )
    assert ModelLicensing.model_validate_json(UPSTREAM_UNKNOWN) == unknown_model_licensing()
    definition = LicenseDefinition.model_validate_json(UPSTREAM_DEFINITION)
    assert definition.metadata == LicensingRecordMetadata(
        revision=3, created_at=1700000000, created_by="123", updated_at=1700000500, updated_by="456"
    )
    assert definition.obligations == (
        LicenseObligation.INCLUDE_LICENSE,
        LicenseObligation.RESPONSIBLE_USE_RESTRICTIONS,
    )
    asset = LicensedAsset.model_validate_json(UPSTREAM_ASSET)
    assert asset.asset_key == "custom_node:comfyui-foo"
    assert asset.licensing.license_ids == ("GPL-3.0-only WITH Classpath-exception-2.0",)


def test_model_dump_json_mode_gives_strings() -> None:
    model = ModelLicensing.model_validate_json(UPSTREAM_MODEL)
    dumped = model.model_dump(mode="json")
    assert dumped["reviewed_at"] == "2024-05-07"
    assert dumped["evidence"][0]["checked_at"] == "2024-05-06"
    assert dumped["commercial_use"] == "allowed"
    assert dumped == msgspec.json.decode(UPSTREAM_MODEL)
    python = model.model_dump()
    assert python["reviewed_at"] == date(2024, 5, 7)
    assert python["license_ids"] == ["MIT", "Apache-2.0"]
    assert set(ModelLicensing.model_fields) == set(msgspec.json.decode(UPSTREAM_MODEL))


def test_decoding_refuses_unknown_fields_and_bad_values() -> None:
    with pytest.raises(msgspec.ValidationError, match="unknown field `license`"):
        LicenseDefinition.model_validate_json(UPSTREAM_DEFAULT_DEFINITION[:-1] + ',"license":"x"}')
    bad_override = UPSTREAM_MODEL.replace('"license_ids":[],', '"license_ids":["MIT"],')
    with pytest.raises(msgspec.ValidationError, match=r"NOASSERTION must not reference.*\$\.files"):
        ModelLicensing.model_validate_json(bad_override)
    with pytest.raises(msgspec.ValidationError, match=r"'sometimes'.*\$\.redistribution"):
        ModelLicensing.model_validate_json(
            UPSTREAM_UNKNOWN.replace('"redistribution":"unknown"', '"redistribution":"sometimes"')
        )
    with pytest.raises(msgspec.ValidationError, match=r"revision: must be at least 1.*\$\.metadata"):
        LicenseDefinition.model_validate_json(
            UPSTREAM_DEFAULT_DEFINITION.replace('"revision":1', '"revision":0')
        )


def test_round_trip_of_records_built_here() -> None:
    asset = LicensedAsset(
        asset_kind=LicensedAssetKind.CUSTOM_NODE,
        asset_identifier="nodes",
        display_name="Nodes",
        locations=["custom_nodes/nodes"],
        licensing=_assignment(evidence=[LicenseEvidence(source="README", checked_at=date(2025, 1, 2))]),
        metadata=LicensingRecordMetadata(revision=2, updated_by="1"),
    )
    assert LicensedAsset.model_validate_json(asset.model_dump_json()) == asset
    assert msgspec.json.decode(msgspec.json.encode(asset), type=LicensedAsset) == asset
    copied = asset.model_copy(update={"notes": "checked"})
    assert copied.notes == "checked"
    assert copied.licensing == asset.licensing


# --- PopularModelResult ---------------------------------------------------------------------


def test_popular_model_result_resolves_to_the_managers_type() -> None:
    from horde_model_reference.integrations.data_merger import (
        CombinedModelStatistics,
        PopularModelResult,
        UsageStats,
        WorkerSummary,
    )

    assert PopularModelResult is popularity.PopularModel
    assert CombinedModelStatistics is popularity.ModelUsage
    assert UsageStats is popularity.UsageStats
    assert WorkerSummary is popularity.WorkerSummary
    assert {f.name for f in msgspec.structs.fields(PopularModelResult)} == {"name", "record", "stats"}
