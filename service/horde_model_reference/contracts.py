"""Export the wire contracts and the settings table from the msgspec Structs.

    python -m horde_model_reference.contracts contracts/           # regenerate contracts/
    python -m horde_model_reference.contracts contracts/ --check   # exit 1 when it is out of date
    python -m horde_model_reference.contracts --settings-table     # print the settings table
    python -m horde_model_reference.contracts --settings-table docs/operators.md   # update it there

`contracts/` gets one JSON Schema (draft 2020-12) per event, reply, record type, category catalog
and write command or reply, and an AsyncAPI 3.0 document of the subjects. Output is deterministic
(sorted keys, two-space indent, a trailing newline), so a test compares it with the committed files.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import json
import sys
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from horde_model_reference import settings as settings_module
from horde_model_reference.bus.events import (
    DEFAULT_SUBJECT_PREFIX,
    CategoryChanged,
    ErrorReply,
    HealthReply,
    Heartbeat,
    Snapshot,
    SnapshotRequest,
)
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.logs import get_logger
from horde_model_reference.records import MODEL_RECORD_TYPE_LOOKUP, GenericModelRecord
from horde_model_reference.settings import ENV_PREFIX, HordeModelReferenceSettings

__all__ = [
    "CONTRACTS_VERSION",
    "EVENT_TYPES",
    "PROCESS_VARIABLES",
    "WriteContracts",
    "asyncapi_document",
    "check",
    "generate",
    "load_write_contracts",
    "main",
    "record_types",
    "replace_settings_table",
    "setting_variables",
    "settings_table",
    "settings_table_block",
    "write_contract_files",
]

_log = get_logger(__name__)

CONTRACTS_VERSION = "1.0.0"
"""Version of the wire contracts (the `v1` in the subject prefix); bump on an incompatible change."""
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
GENERATED_BY = "python -m horde_model_reference.contracts contracts/ (make contracts)"

EVENT_TYPES: tuple[type[msgspec.Struct], ...] = (
    CategoryChanged,
    Heartbeat,
    SnapshotRequest,
    Snapshot,
    ErrorReply,
    HealthReply,
)
"""Every event and reply on the bus (bus/events.py)."""

WRITE_CONTRACTS_MODULE = "horde_model_reference.writes.contracts"
"""Where the write path defines its commands (`COMMAND_TYPES`) and replies (the `WriteReply` union)."""


class WriteContracts(NamedTuple):
    """The write commands by name (the last token of `<prefix>.write.<name>`) and their replies."""

    commands: dict[str, type[msgspec.Struct]]
    replies: tuple[type[msgspec.Struct], ...]

    def types(self) -> list[type[msgspec.Struct]]:
        """Every command and reply Struct, by class name."""
        return sorted({*self.commands.values(), *self.replies}, key=lambda cls: cls.__name__)


PROCESS_VARIABLES: tuple[tuple[str, str, str], ...] = (
    ("AIWORKER_CACHE_HOME", "unset", "Base path fallback: `$AIWORKER_CACHE_HOME/horde_model_reference`."),
    (f"{ENV_PREFIX}LOG_LEVEL", "`INFO`", "`DEBUG`, `INFO`, `WARNING` or `ERROR`."),
    (f"{ENV_PREFIX}LOG_JSON", "when not a TTY", "`1`: JSON log lines; `0`: readable lines."),
)
"""Variables read outside the settings Struct: (name, default, description)."""

_SETTING_NOTES: dict[str, str] = {
    "replicate_mode": "`PRIMARY` owns the canonical files; `REPLICA` follows a primary or GitHub. "
    "`hmr serve` takes its mode from `--mode` (default `PRIMARY`).",
    "offline": "A REPLICA never downloads: it reads the files under the base path only.",
    "primary_api_url": "A REPLICA reads from this primary's HTTP API (GitHub is the fallback).",
    "primary_api_timeout": "Seconds for one request to the primary's API or GitHub.",
    "github_seed_enabled": "A PRIMARY with no catalog yet downloads the legacy files from GitHub once.",
    "github_base_url": "Where the legacy GitHub files are downloaded from.",
    "github_proxy_url_base": "A proxy prefixed to GitHub URLs.",
    "image_github_repo.owner": "Owner of the image reference repository.",
    "image_github_repo.name": "The image reference repository.",
    "image_github_repo.branch": "Branch of the image reference repository.",
    "text_github_repo.owner": "Owner of the text reference repository.",
    "text_github_repo.name": "The text reference repository.",
    "text_github_repo.branch": "Branch of the text reference repository.",
    "provider_timeout_seconds": "Bound on one third-party provider; a slower one shows as `error`.",
    "negative_cache_seconds": "How long a missing category is remembered as missing.",
    "redis.url": "Redis for snapshots: `redis://[:password@]host:6379/0`, or `rediss://...` for TLS "
    "(CA file: `?ssl_ca_certs=/path/ca.pem`). Unset: snapshots over NATS request/reply only.",
    "redis.key_prefix": "Prefix of every Redis key (`<prefix>:snapshot:<category>`).",
    "redis.socket_timeout": "Seconds to wait for a Redis reply.",
    "redis.socket_connect_timeout": "Seconds to wait for a Redis connection.",
    "redis.pool_size": "Connections per process (the pool blocks, never fails, when they are busy).",
    "nats.url": "NATS server(s), comma-separated: `nats://host:4222` or `tls://host:4222`. Consumers "
    "follow the bus when set; `hmr serve` starts an embedded server when unset.",
    "nats.subject_prefix": "Prefix of every subject (`<prefix>.changed.<category>`, ...).",
    "nats.user": "NATS user (with `NATS__PASSWORD`).",
    "nats.password": "NATS password (secret).",
    "nats.token": "NATS token (secret).",
    "nats.creds_file": "Path of a NATS `.creds` file (JWT and nkey seed, decentralised auth).",
    "nats.nkey_seed_file": "Path of a file holding an nkey seed (`SU...`).",
    "nats.tls_ca_file": "CA bundle that verifies the NATS server's certificate (enables TLS).",
    "nats.tls_cert_file": "Client certificate, for servers that verify clients (enables TLS).",
    "nats.tls_key_file": "Key of the client certificate.",
    "nats.request_timeout": "Seconds a consumer waits for a snapshot reply.",
}
"""Descriptions of the settings that have no attribute docstring in settings.py (a docstring wins)."""

_TABLE_BEGIN = "<!-- BEGIN settings-table: generated by `python -m horde_model_reference.contracts --settings-table docs/operators.md` -->"
_TABLE_END = "<!-- END settings-table -->"


# -- JSON Schema --------------------------------------------------------------------------------


def record_types() -> list[type[GenericModelRecord]]:
    """Every record type of a category, by class name."""
    return sorted(set(MODEL_RECORD_TYPE_LOOKUP.values()), key=lambda cls: cls.__name__)


def load_write_contracts() -> WriteContracts | None:
    """The write contracts, or None while the writes package does not exist."""
    try:
        module = importlib.import_module(WRITE_CONTRACTS_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name is not None and WRITE_CONTRACTS_MODULE.startswith(exc.name):
            return None
        raise
    commands = dict(sorted(module.COMMAND_TYPES.items()))
    return WriteContracts(commands, tuple(typing.get_args(module.WriteReply)))


def _tidy(node: Any) -> Any:
    """Docstring descriptions dedented (msgspec copies `__doc__` verbatim)."""
    if isinstance(node, dict):
        return {
            key: inspect.cleandoc(value) if key == "description" and isinstance(value, str) else _tidy(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_tidy(item) for item in node]
    return node


def _schema_file(schema: dict[str, Any], title: str, description: str | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"$schema": JSON_SCHEMA_DIALECT, "$comment": f"Generated by {GENERATED_BY}."}
    document["title"] = title
    if description:
        document["description"] = description
    document.update(_tidy(schema))
    return document


def _catalog_schema(category: MODEL_REFERENCE_CATEGORY) -> dict[str, Any]:
    record_type = MODEL_RECORD_TYPE_LOOKUP[category]
    description = (
        f"The v2 catalog of `{category.value}`: {record_type.__name__} records by catalog key. "
        "This is the `data` of a Snapshot and the file the primary serves."
    )
    record = msgspec.json.schema(record_type)
    catalog = {"type": "object", "additionalProperties": {"$ref": record["$ref"]}, "$defs": record["$defs"]}
    return _schema_file(catalog, f"{category.value} catalog", description)


def _encode(document: Any) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


# -- AsyncAPI -----------------------------------------------------------------------------------


def _message(cls: type[msgspec.Struct] | None, name: str, summary: str | None = None) -> dict[str, Any]:
    """A message whose payload is the schema of `cls` (None: an empty body)."""
    if summary is None:
        summary = (inspect.getdoc(cls) or name).split("\n")[0]
    message: dict[str, Any] = {
        "name": name,
        "title": name,
        "summary": summary,
        "contentType": "application/json",
    }
    if cls is not None:
        message["payload"] = {"$ref": f"#/components/schemas/{cls.__name__}"}
    return message


def _channel(
    address: str | None, messages: Sequence[str], description: str, roles: dict[str, list[str]]
) -> dict[str, Any]:
    channel: dict[str, Any] = {"address": address, "description": description}
    channel["messages"] = {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
    if address and "{category}" in address:
        channel["parameters"] = {"category": {"$ref": "#/components/parameters/category"}}
    channel.update({f"x-{role}": who for role, who in roles.items()})
    return channel


def _operation(
    action: str,
    channel: str,
    messages: Sequence[str],
    summary: str,
    reply: tuple[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"action": action, "channel": {"$ref": f"#/channels/{channel}"}}
    operation["summary"] = summary
    operation["messages"] = [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in messages]
    if reply is not None:
        reply_channel, reply_messages = reply
        operation["reply"] = {
            "address": {
                "location": "$message.header#/replyTo",
                "description": "The request's NATS reply subject (an `_INBOX.>` subject of the requester).",
            },
            "channel": {"$ref": f"#/channels/{reply_channel}"},
            "messages": [{"$ref": f"#/channels/{reply_channel}/messages/{name}"} for name in reply_messages],
        }
    return operation


_CONSUMERS = ["ModelReferenceManager(nats_url=...) (BusConsumer)", "hmr watch"]
_SERVICE = ["hmr serve"]
_WRITERS = ["the hmr write commands", "the HTTP write endpoints", "operators"]


def _event_channels(prefix: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Channels, operations and messages of the events, snapshots and health."""
    messages = {cls.__name__: _message(cls, cls.__name__) for cls in EVENT_TYPES}
    messages["HealthRequest"] = _message(None, "HealthRequest", "An empty body.")
    channels = {
        "changed": _channel(
            f"{prefix}.changed.{{category}}",
            ["CategoryChanged"],
            "Published after a category's new snapshot is stored (Redis first, when configured). "
            "At most once: consumers detect gaps from revisions and heartbeats and resync.",
            {"published-by": _SERVICE, "subscribed-by": _CONSUMERS},
        ),
        "heartbeat": _channel(
            f"{prefix}.heartbeat",
            ["Heartbeat"],
            "Every category's revision and digest, every `--heartbeat-interval` seconds (default 2).",
            {"published-by": _SERVICE, "subscribed-by": _CONSUMERS},
        ),
        "snapshot": _channel(
            f"{prefix}.snapshot.{{category}}",
            ["SnapshotRequest"],
            "Request a category's snapshot (the fallback when Redis is not configured or misses).",
            {"requested-by": _CONSUMERS[:1], "answered-by": _SERVICE},
        ),
        "snapshotReply": _channel(
            None,
            ["Snapshot", "ErrorReply"],
            "The reply to a snapshot request, on the requester's reply subject. ErrorReply `error`: "
            "`unknown_category`, `not_loaded`, `bad_request`, `behind`, `too_large`, `internal`.",
            {},
        ),
        "health": _channel(
            f"{prefix}.health",
            ["HealthRequest"],
            "Ask the service for its health.",
            {"requested-by": ["hmr status", "operators"], "answered-by": _SERVICE},
        ),
        "healthReply": _channel(None, ["HealthReply"], "The reply to a health request.", {}),
    }
    operations = {
        "publishCategoryChanged": _operation(
            "send", "changed", ["CategoryChanged"], "Announce a new revision of a category."
        ),
        "publishHeartbeat": _operation("send", "heartbeat", ["Heartbeat"], "Announce every revision."),
        "answerSnapshot": _operation(
            "receive",
            "snapshot",
            ["SnapshotRequest"],
            "Answer a snapshot request.",
            ("snapshotReply", ["Snapshot", "ErrorReply"]),
        ),
        "answerHealth": _operation(
            "receive",
            "health",
            ["HealthRequest"],
            "Answer a health request.",
            ("healthReply", ["HealthReply"]),
        ),
    }
    return channels, operations, messages


def _write_channels(
    prefix: str, writes: WriteContracts
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """One channel and one operation per write command, and the shared reply channel."""
    replies = [cls.__name__ for cls in writes.replies]
    messages = {cls.__name__: _message(cls, cls.__name__) for cls in writes.types()}
    channels: dict[str, Any] = {
        "writeReply": _channel(
            None, replies, "The reply to a write command (refusals carry a stable code).", {}
        )
    }
    operations: dict[str, Any] = {}
    for name, cls in writes.commands.items():
        channels[f"write.{name}"] = _channel(
            f"{prefix}.write.{name}",
            [cls.__name__],
            f"The `{name}` write command, answered by the primary only.",
            {"requested-by": _WRITERS, "answered-by": _SERVICE},
        )
        operations[f"answerWrite.{name}"] = _operation(
            "receive",
            f"write.{name}",
            [cls.__name__],
            f"Answer the `{name}` command.",
            ("writeReply", replies),
        )
    return channels, operations, messages


def asyncapi_document(writes: WriteContracts | None = None) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the bus, seen from `hmr serve` (the application it describes)."""
    prefix = DEFAULT_SUBJECT_PREFIX
    channels, operations, messages = _event_channels(prefix)
    write_types = writes.types() if writes is not None else []
    if writes is not None:
        for part, extra in zip(
            (channels, operations, messages), _write_channels(prefix, writes), strict=True
        ):
            part.update(extra)
    _, schemas = msgspec.json.schema_components(
        [*EVENT_TYPES, *record_types(), *write_types], ref_template="#/components/schemas/{name}"
    )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "horde-model-reference bus",
            "version": CONTRACTS_VERSION,
            "description": (
                "The AI-Horde model reference on NATS: change events, heartbeats, snapshots, health and "
                f"writes, JSON encoded. Subject prefix `{prefix}` (configurable: "
                f"HORDE_MODEL_REFERENCE_NATS__SUBJECT_PREFIX). Generated by {GENERATED_BY}."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "A NATS server or cluster (tls://... with TLS). Credentials: user/password, "
                "token, nkey seed or creds file (see docs/operators.md).",
                "security": [
                    {"$ref": f"#/components/securitySchemes/{scheme}"}
                    for scheme in ("userPassword", "token", "nkey", "tls")
                ],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "schemas": _tidy(schemas),
            "messages": messages,
            "parameters": {
                "category": {
                    "description": "A model reference category.",
                    "enum": sorted(category.value for category in MODEL_REFERENCE_CATEGORY),
                }
            },
            "securitySchemes": {
                "userPassword": {"type": "userPassword", "description": "NATS user and password."},
                "token": {"type": "apiKey", "in": "password", "description": "NATS token."},
                "nkey": {
                    "type": "asymmetricEncryption",
                    "description": "NATS nkey seed, or a .creds file (JWT signed with an nkey).",
                },
                "tls": {"type": "X509", "description": "TLS client certificate (mutual TLS)."},
            },
        },
    }


# -- generation ---------------------------------------------------------------------------------


def _struct_schema(cls: type[msgspec.Struct]) -> bytes:
    return _encode(_schema_file(msgspec.json.schema(cls), cls.__name__))


def generate() -> dict[str, bytes]:
    """Every contract file: relative path -> bytes."""
    files: dict[str, bytes] = {}
    for cls in EVENT_TYPES:
        files[f"schemas/events/{cls.__name__}.json"] = _struct_schema(cls)
    for record in record_types():
        files[f"schemas/records/{record.__name__}.json"] = _struct_schema(record)
    for category in MODEL_REFERENCE_CATEGORY:
        files[f"schemas/catalogs/{category.value}.json"] = _encode(_catalog_schema(category))
    writes = load_write_contracts()
    for cls in writes.types() if writes is not None else []:
        files[f"schemas/writes/{cls.__name__}.json"] = _struct_schema(cls)
    files["asyncapi.json"] = _encode(asyncapi_document(writes))
    files["README.md"] = _index(sorted(files)).encode()
    return dict(sorted(files.items()))


def _index(paths: Sequence[str]) -> str:
    lines = [
        "# Wire contracts",
        "",
        f"Generated by `{GENERATED_BY}` from the msgspec Structs; do not edit.",
        "`tests/test_contracts.py` fails when these files differ from a fresh generation.",
        "",
        "- `asyncapi.json`: AsyncAPI 3.0 document of the subjects, who publishes, subscribes and answers.",
        "- `schemas/events/`: JSON Schema (draft 2020-12) of every event and reply on the bus.",
        "- `schemas/records/`: JSON Schema of every record type.",
        "- `schemas/catalogs/`: JSON Schema of each category's v2 catalog (a Snapshot's `data`).",
        "- `schemas/writes/`: JSON Schema of the write commands and their replies (when present).",
        "",
        "Files:",
        "",
    ]
    lines += [f"- `{path}`" for path in paths]
    return "\n".join(lines) + "\n"


def _existing(out_dir: Path) -> set[str]:
    if not out_dir.is_dir():
        return set()
    return {path.relative_to(out_dir).as_posix() for path in out_dir.rglob("*") if path.is_file()}


def check(out_dir: Path) -> list[str]:
    """The files of `out_dir` that differ from a fresh generation (missing, changed or extra)."""
    fresh = generate()
    problems = [f"missing: {p}" for p in fresh if not (out_dir / p).is_file()]
    problems += [
        f"changed: {p}" for p in fresh if (out_dir / p).is_file() and (out_dir / p).read_bytes() != fresh[p]
    ]
    problems += [f"extra: {p}" for p in sorted(_existing(out_dir) - set(fresh))]
    return problems


def write_contract_files(out_dir: Path) -> list[str]:
    """Write every contract file under `out_dir` and delete stale ones; returns the paths changed."""
    fresh = generate()
    changed = []
    for relative, data in fresh.items():
        target = out_dir / relative
        if target.is_file() and target.read_bytes() == data:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        changed.append(relative)
    for stale in sorted(_existing(out_dir) - set(fresh)):
        (out_dir / stale).unlink()
        changed.append(stale)
    _log.debug("contracts_written", out_dir=str(out_dir), files=len(fresh), changed=len(changed))
    return changed


# -- settings table -----------------------------------------------------------------------------


def _attribute_docs() -> dict[str, dict[str, str]]:
    """Attribute docstrings of settings.py: class name -> field -> docstring."""
    tree = ast.parse(inspect.getsource(settings_module))
    docs: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        fields = docs.setdefault(node.name, {})
        for previous, current in zip(node.body, node.body[1:], strict=False):
            if (
                isinstance(previous, ast.AnnAssign)
                and isinstance(previous.target, ast.Name)
                and isinstance(current, ast.Expr)
                and isinstance(current.value, ast.Constant)
                and isinstance(current.value.value, str)
            ):
                fields[previous.target.id] = inspect.cleandoc(current.value.value)
    return docs


def _type_name(info: msgspec.inspect.Type) -> str:
    if isinstance(info, msgspec.inspect.UnionType):
        kinds = [_type_name(t) for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
        return " or ".join(kinds)
    if isinstance(info, msgspec.inspect.EnumType):
        return " or ".join(f"`{member.value}`" for member in info.cls)
    simple = {
        msgspec.inspect.StrType: "string",
        msgspec.inspect.BoolType: "bool",
        msgspec.inspect.IntType: "integer",
        msgspec.inspect.FloatType: "number",
    }
    return simple.get(type(info), type(info).__name__)


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{getattr(value, 'value', value)}`"


def setting_variables() -> Iterator[tuple[str, str, str, str]]:
    """(variable, type, default, description) of every setting; nested groups joined with `__`."""
    docs = _attribute_docs()

    def walk(
        struct: msgspec.inspect.StructType, path: tuple[str, ...]
    ) -> Iterator[tuple[str, str, str, str]]:
        for field in struct.fields:
            here = (*path, field.name)
            if isinstance(field.type, msgspec.inspect.StructType):
                yield from walk(field.type, here)
                continue
            own = next(
                (docs.get(c.__name__, {}).get(field.name) for c in struct.cls.__mro__ if c.__name__ in docs),
                None,
            )
            description = own or _SETTING_NOTES.get(".".join(here), "")
            variable = ENV_PREFIX + "__".join(part.upper() for part in here)
            yield variable, _type_name(field.type), _default(field.default), " ".join(description.split())

    root = msgspec.inspect.type_info(HordeModelReferenceSettings)
    assert isinstance(root, msgspec.inspect.StructType)
    yield from walk(root, ())


def settings_table() -> str:
    """The Markdown tables of every setting and of the variables read outside the settings Struct."""
    lines = ["| variable | type | default | what it does |", "|---|---|---|---|"]
    lines += [f"| `{v}` | {t} | {d} | {text} |" for v, t, d, text in setting_variables()]
    lines += [
        "",
        "Read outside the settings Struct:",
        "",
        "| variable | default | what it does |",
        "|---|---|---|",
    ]
    lines += [f"| `{name}` | {default} | {text} |" for name, default, text in PROCESS_VARIABLES]
    return "\n".join(lines) + "\n"


def replace_settings_table(path: Path) -> bool:
    """Replace the generated block of `path` with a fresh table; True when the file changed."""
    text = path.read_text()
    start, end = text.find(_TABLE_BEGIN), text.find(_TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"{path} has no settings table markers ({_TABLE_BEGIN!r} ... {_TABLE_END!r})")
    fresh = text[: start + len(_TABLE_BEGIN)] + "\n\n" + settings_table() + "\n" + text[end:]
    if fresh == text:
        return False
    path.write_text(fresh)
    return True


def settings_table_block(text: str) -> str | None:
    """The table between the markers of a document's text, or None when there are no markers."""
    start, end = text.find(_TABLE_BEGIN), text.find(_TABLE_END)
    if start < 0 or end < start:
        return None
    return text[start + len(_TABLE_BEGIN) : end].strip() + "\n"


# -- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `python -m horde_model_reference.contracts`."""
    parser = argparse.ArgumentParser(
        prog="python -m horde_model_reference.contracts", description=__doc__.split("\n")[0]
    )
    parser.add_argument("out_dir", nargs="?", help="directory to write the contracts into (e.g. contracts/)")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when OUT_DIR differs from a fresh generation"
    )
    parser.add_argument(
        "--settings-table",
        nargs="?",
        const="-",
        metavar="MARKDOWN",
        help="print the settings table, or replace the generated block of MARKDOWN with it",
    )
    args = parser.parse_args(argv)
    if args.settings_table is not None:
        if args.settings_table == "-":
            sys.stdout.write(settings_table())
        elif replace_settings_table(Path(args.settings_table)):
            print(f"updated the settings table in {args.settings_table}")
    if args.out_dir is None:
        if args.settings_table is None:
            parser.error("give OUT_DIR and/or --settings-table")
        return 0
    out_dir = Path(args.out_dir)
    if args.check:
        problems = check(out_dir)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("contracts are out of date: run `make contracts`", file=sys.stderr)
        return 1 if problems else 0
    changed = write_contract_files(out_dir)
    print(f"{len(changed)} contract file(s) updated in {out_dir}" if changed else f"{out_dir} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
