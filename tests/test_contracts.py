"""contracts/: generated from the Structs, current, and valid for real events from a running service."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from horde_model_reference import contracts
from horde_model_reference.backends.filesystem import FileSystemBackend
from horde_model_reference.bus.events import SnapshotRequest
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY, get_category_descriptor
from horde_model_reference.cli import seed_base_path
from horde_model_reference.records import record_type_for
from horde_model_reference.supervisor import ServiceConfig
from horde_model_reference.supervisor.testing import running_service

REPO_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = REPO_ROOT / "contracts"
EXAMPLES = REPO_ROOT / "examples" / "reference"


def _load(relative: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((CONTRACTS / relative).read_text())
    return document


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_committed_contracts_are_current() -> None:
    problems = contracts.check(CONTRACTS)
    assert not problems, "contracts/ is out of date: run `make contracts`\n" + "\n".join(problems)


def test_every_event_record_category_and_write_type_has_a_schema() -> None:
    files = set(contracts.generate())
    expected = {f"schemas/events/{cls.__name__}.json" for cls in contracts.EVENT_TYPES}
    expected |= {f"schemas/records/{cls.__name__}.json" for cls in contracts.record_types()}
    expected |= {f"schemas/catalogs/{category.value}.json" for category in MODEL_REFERENCE_CATEGORY}
    writes = contracts.load_write_contracts()
    expected |= {f"schemas/writes/{cls.__name__}.json" for cls in (writes.types() if writes else [])}
    assert expected <= files
    assert {"asyncapi.json", "README.md"} <= files


def test_generation_is_deterministic() -> None:
    assert contracts.generate() == contracts.generate()


def test_every_ref_in_the_asyncapi_document_resolves() -> None:
    document = _load("asyncapi.json")
    assert document["asyncapi"] == "3.0.0"
    refs = set(_refs(document))
    assert refs
    for ref in refs:
        _resolve(document, ref)
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert {
        "hmr.v1.changed.{category}",
        "hmr.v1.heartbeat",
        "hmr.v1.snapshot.{category}",
        "hmr.v1.health",
    } <= addresses
    writes = contracts.load_write_contracts()
    for name, command in (writes.commands if writes else {}).items():
        (channel,) = [c for c in document["channels"].values() if c["address"] == f"hmr.v1.write.{name}"]
        assert list(channel["messages"]) == [command.__name__]


def test_every_schema_is_a_valid_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for relative in contracts.generate():
        if relative.startswith("schemas/"):
            jsonschema.Draft202012Validator.check_schema(_load(relative))


def test_the_check_command_reports_a_stale_file(tmp_path: Path) -> None:
    contracts.write_contract_files(tmp_path)
    assert contracts.main([str(tmp_path), "--check"]) == 0
    (tmp_path / "schemas" / "events" / "Heartbeat.json").write_text("{}\n")
    (tmp_path / "schemas" / "events" / "Old.json").write_text("{}\n")
    assert contracts.check(tmp_path) == [
        "changed: schemas/events/Heartbeat.json",
        "extra: schemas/events/Old.json",
    ]
    assert contracts.main([str(tmp_path), "--check"]) == 1
    contracts.write_contract_files(tmp_path)
    assert contracts.check(tmp_path) == []


# -- real events from a running service ---------------------------------------------------------


class _Schemas:
    """Validators over the committed schema files."""

    def __init__(self) -> None:
        self._jsonschema = pytest.importorskip("jsonschema")

    def validate(self, relative: str, instance: Any) -> None:
        self._jsonschema.Draft202012Validator(_load(relative)).validate(instance)

    def rejects(self, relative: str, instance: Any) -> bool:
        return not self._jsonschema.Draft202012Validator(_load(relative)).is_valid(instance)


@pytest.mark.anyio
@pytest.mark.integration
async def test_real_events_and_replies_validate_against_the_schemas(
    tmp_path: Path, nats_url: str, subject_prefix: str
) -> None:
    schemas = _Schemas()
    base = tmp_path / "base"
    base.mkdir()
    seed_base_path(base, EXAMPLES)
    config = ServiceConfig(
        data_dir=str(tmp_path / "data"),
        nats_url=nats_url,
        subject_prefix=subject_prefix,
        poll_interval=0.05,
        heartbeat_interval=0.2,
        categories=("image_generation", "text_generation", "controlnet"),
    )
    nc = await nats.connect(nats_url, connect_timeout=3)
    try:
        changed = await nc.subscribe(f"{subject_prefix}.changed.>")
        heartbeats = await nc.subscribe(f"{subject_prefix}.heartbeat")
        await nc.flush()
        async with running_service(config, FileSystemBackend(base)):
            events = [json.loads((await changed.next_msg(timeout=5)).data) for _ in range(3)]
            heartbeat = json.loads((await heartbeats.next_msg(timeout=5)).data)
            request = msgspec.json.encode(SnapshotRequest(min_revision=1))
            snapshot = json.loads(
                (await nc.request(f"{subject_prefix}.snapshot.image_generation", request, timeout=3)).data
            )
            error = json.loads((await nc.request(f"{subject_prefix}.snapshot.no_such", b"", timeout=3)).data)
            health = json.loads((await nc.request(f"{subject_prefix}.health", b"", timeout=3)).data)
    finally:
        await nc.close()

    for event in events:
        schemas.validate("schemas/events/CategoryChanged.json", event)
        assert event["records"], "the first load of a small catalog carries its records"
        record_type = record_type_for(event["category"])
        for record in event["records"].values():
            schemas.validate(f"schemas/records/{record_type.__name__}.json", record)
    assert {event["category"] for event in events} == set(config.categories or ())
    schemas.validate("schemas/events/Heartbeat.json", heartbeat)
    schemas.validate("schemas/events/SnapshotRequest.json", json.loads(request))
    schemas.validate("schemas/events/Snapshot.json", snapshot)
    assert snapshot["type"] == "snapshot" and snapshot["revision"] == 1
    schemas.validate("schemas/catalogs/image_generation.json", snapshot["data"])
    schemas.validate("schemas/events/ErrorReply.json", error)
    assert error["error"] == "unknown_category"
    schemas.validate("schemas/events/HealthReply.json", health)
    assert set(health["categories"]) == set(config.categories or ())

    # The schemas are not vacuous: a wrong type or a missing required field is refused.
    assert schemas.rejects("schemas/events/CategoryChanged.json", event | {"revision": "1"})
    assert schemas.rejects(
        "schemas/events/Heartbeat.json", {k: v for k, v in heartbeat.items() if k != "categories"}
    )
    assert schemas.rejects("schemas/events/Snapshot.json", snapshot | {"type": "heartbeat"})
    some_record = next(iter(snapshot["data"].values()))
    assert schemas.rejects("schemas/catalogs/image_generation.json", {"x": some_record | {"nsfw": "no"}})


def test_the_real_catalogs_validate_against_the_catalog_schemas(shared_data: Path) -> None:
    schemas = _Schemas()
    validated = 0
    for category in MODEL_REFERENCE_CATEGORY:
        path = shared_data / "golden-v2" / get_category_descriptor(category).v2_filename
        if path.is_file():
            schemas.validate(f"schemas/catalogs/{category.value}.json", json.loads(path.read_bytes()))
            validated += 1
    assert validated >= 10
