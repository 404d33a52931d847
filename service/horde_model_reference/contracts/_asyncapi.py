"""The AsyncAPI 3.0 document of the bus: subjects, who publishes, subscribes and answers."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import msgspec

from horde_model_reference.bus.events import DEFAULT_SUBJECT_PREFIX
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.contracts._schemas import (
    CONTRACTS_VERSION,
    EVENT_TYPES,
    GENERATED_BY,
    WriteContracts,
    _tidy,
    record_types,
)

__all__ = ["asyncapi_document"]


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
            "Request a category's snapshot (the last fallback, after JetStream and Redis), naming the "
            "revision and digest held and a deadline.",
            {"requested-by": _CONSUMERS[:1], "answered-by": _SERVICE},
        ),
        "snapshotReply": _channel(
            None,
            ["Snapshot", "NotModified", "ErrorReply"],
            "The reply to a snapshot request, on the requester's reply subject (none once its deadline "
            "passed; NotModified when the revision and digest held are current). ErrorReply `error`: "
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
            ("snapshotReply", ["Snapshot", "NotModified", "ErrorReply"]),
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
