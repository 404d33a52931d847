"""The service's snapshot replies are checked before they are believed: a `NotModified` only when it
names what the consumer holds, at least the revision it asked for, and (with trusted keys) carries
the service's signature; a reply for another category never; "not loaded" is a failure when an
event announced a revision. A forged responder on a real NATS server must not hold a consumer back
on old data, nor install one category's data as another's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import msgspec
import nats
import pytest
from nats.aio.msg import Msg

from horde_model_reference.bus.events import (
    ErrorReply,
    Event,
    NotModified,
    SnapshotRequest,
    Subjects,
    encode_event,
)
from horde_model_reference.bus.jetstream_sources import Fetched, SnapshotSources
from horde_model_reference.bus.signing import (
    generate_private_key_pem,
    load_signer,
    public_key_text,
    sign_snapshot,
)
from horde_model_reference.bus.trust import BusTrust, Verifier
from horde_model_reference.errors import BackendError

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

PEM = generate_private_key_pem()
SIGNER = load_signer(key_pem=PEM.decode())
HELD = (3, "d" * 64)

Answer = Callable[[SnapshotRequest], Event]


@asynccontextmanager
async def answering(nats_url: str, subjects: Subjects, answer: Answer) -> AsyncIterator[nats.NATS]:
    """A client whose responder on `<prefix>.snapshot.clip` answers `answer(request)`."""
    nc = await nats.connect(nats_url, connect_timeout=10)

    async def respond(msg: Msg) -> None:
        await msg.respond(encode_event(answer(msgspec.json.decode(msg.data, type=SnapshotRequest))))

    sub = await nc.subscribe(subjects.snapshot("clip"), cb=respond)
    await nc.flush(timeout=10)
    try:
        yield nc
    finally:
        await sub.unsubscribe()
        await nc.close()


def sources(subjects: Subjects, *, trusted: tuple[str, ...] = ()) -> SnapshotSources:
    trust = BusTrust(Verifier(trusted))
    return SnapshotSources(
        subjects,
        request_timeout=10.0,
        jetstream=False,
        redis=None,
        breaker_seconds=30.0,
        stats={"snapshots_nats": 0, "not_modified": 0, "snapshot_bytes": 0},
        accept=trust.signature_ok if trusted else None,
    )


def not_modified(revision: int, digest: str, *, signed: bool = False) -> NotModified:
    signature = sign_snapshot(SIGNER, "clip", revision, digest) if signed else None
    return NotModified(category="clip", revision=revision, digest=digest, signature=signature)


async def fetch_or_none(
    nats_url: str, subjects: Subjects, answer: Answer, *, min_revision: int, **kw: object
) -> Fetched | None:
    chain = sources(subjects, **kw)  # type: ignore[arg-type]
    async with answering(nats_url, subjects, answer) as nc:
        chain.attach(nc)
        return await chain.fetch("clip", min_revision=min_revision, held=HELD)


async def fetch(
    nats_url: str, subjects: Subjects, answer: Answer, *, min_revision: int, **kw: object
) -> Fetched:
    found = await fetch_or_none(nats_url, subjects, answer, min_revision=min_revision, **kw)
    assert found is not None
    return found


async def test_a_not_modified_below_the_revision_asked_for_is_a_failure(
    nats_url: str, subject_prefix: str
) -> None:
    subjects = Subjects(subject_prefix)
    with pytest.raises(BackendError, match="below the one required"):
        await fetch(nats_url, subjects, lambda _: not_modified(*HELD), min_revision=5)


async def test_a_not_modified_for_other_data_is_a_failure(nats_url: str, subject_prefix: str) -> None:
    subjects = Subjects(subject_prefix)
    with pytest.raises(BackendError, match="does not match the one held"):
        await fetch(nats_url, subjects, lambda _: not_modified(4, "e" * 64), min_revision=0)


async def test_a_genuine_not_modified_is_believed(nats_url: str, subject_prefix: str) -> None:
    subjects = Subjects(subject_prefix)
    found = await fetch(nats_url, subjects, lambda _: not_modified(*HELD), min_revision=3)
    assert found.snapshot is None and found.source == "service"


async def test_with_trusted_keys_only_a_signed_not_modified_is_believed(
    nats_url: str, subject_prefix: str
) -> None:
    subjects = Subjects(subject_prefix)
    keys = (public_key_text(PEM),)
    with pytest.raises(BackendError, match="signature"):
        await fetch(nats_url, subjects, lambda _: not_modified(*HELD), min_revision=0, trusted=keys)
    other = load_signer(key_pem=generate_private_key_pem().decode())
    forged = NotModified(
        category="clip", revision=3, digest=HELD[1], signature=sign_snapshot(other, "clip", *HELD)
    )
    with pytest.raises(BackendError, match="signature"):
        await fetch(nats_url, subjects, lambda _: forged, min_revision=0, trusted=keys)
    found = await fetch(
        nats_url, subjects, lambda _: not_modified(*HELD, signed=True), min_revision=0, trusted=keys
    )
    assert found.snapshot is None


async def test_a_reply_for_another_category_is_a_failure(nats_url: str, subject_prefix: str) -> None:
    subjects = Subjects(subject_prefix)
    other = NotModified(category="lora", revision=HELD[0], digest=HELD[1])
    with pytest.raises(BackendError, match="another category"):
        await fetch(nats_url, subjects, lambda _: other, min_revision=0)


async def test_not_loaded_fails_a_fetch_an_event_announced(nats_url: str, subject_prefix: str) -> None:
    subjects = Subjects(subject_prefix)
    not_loaded = ErrorReply(error="not_loaded", message="category 'clip' is not loaded yet", category="clip")
    assert await fetch_or_none(nats_url, subjects, lambda _: not_loaded, min_revision=0) is None
    with pytest.raises(BackendError, match="not_loaded"):
        await fetch_or_none(nats_url, subjects, lambda _: not_loaded, min_revision=4)
