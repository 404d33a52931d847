"""Units of trust on the bus: signatures and keys, the reply guard, records digests, `hmr keygen`."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
import structlog

from horde_model_reference.bus.connection import nats_auth_from_settings
from horde_model_reference.bus.events import CategoryChanged, CategoryState, Heartbeat
from horde_model_reference.bus.replies import ReplyGuard, UnsafeReplyError
from horde_model_reference.bus.signing import (
    SIGNATURE_HEADER,
    KeyFileError,
    SignatureError,
    Verifier,
    generate_private_key_pem,
    load_signer,
    load_verifier,
    public_key_text,
    sign_payload,
    sign_snapshot,
)
from horde_model_reference.bus.snapshot_store import StoredSnapshot
from horde_model_reference.bus.trust import (
    MAX_UNSERVED_ATTEMPTS,
    BusTrust,
    CatalogRejectedError,
    catalog_records_digest,
    records_digest,
)
from horde_model_reference.catalog import catalog_digest
from horde_model_reference.cli.keys import write_private_key
from horde_model_reference.cli.main import main
from horde_model_reference.errors import SettingsError
from horde_model_reference.settings import load_settings

PEM = generate_private_key_pem()
OTHER = generate_private_key_pem()
SIGNER = load_signer(key_pem=PEM.decode())
PUBLIC = public_key_text(PEM)
CATALOG = b'{"a": {"name": "a", "v": 1},\n "b": {"name": "b", "v": 2}}'
_RAW = msgspec.json.Decoder(dict[str, msgspec.Raw])


# -- signatures and keys --------------------------------------------------------------------


def test_a_signed_payload_verifies_and_anything_else_is_refused() -> None:
    assert SIGNER is not None
    verifier = Verifier([PUBLIC])
    headers = sign_payload(SIGNER, b"payload")
    assert headers is not None
    assert verifier.check_payload("event", b"payload", headers) == SIGNER.key_id
    with pytest.raises(SignatureError, match="bad signature"):
        verifier.check_payload("event", b"payload!", headers)
    with pytest.raises(SignatureError, match="unsigned"):
        verifier.check_payload("event", b"payload", None)
    stranger = load_signer(key_pem=OTHER.decode())
    with pytest.raises(SignatureError, match="not accepted") as refused:
        verifier.check_payload("event", b"payload", sign_payload(stranger, b"payload"))
    assert stranger is not None and refused.value.key_id == stranger.key_id
    garbage = {SIGNATURE_HEADER: f"{SIGNER.key_id}:***"}
    with pytest.raises(SignatureError, match="bad signature"):
        verifier.check_payload("event", b"payload", garbage)


def test_without_keys_nothing_is_required_and_nothing_is_signed() -> None:
    assert Verifier().check_payload("event", b"x", None) is None
    assert not Verifier().enabled
    assert sign_payload(None, b"x") is None
    assert sign_snapshot(None, "clip", 1, "d") is None
    assert load_signer() is None


def test_a_snapshot_signature_covers_category_revision_and_digest() -> None:
    signature = sign_snapshot(SIGNER, "clip", 3, "abc")
    verifier = Verifier([PUBLIC])
    assert verifier.check_snapshot("clip", 3, "abc", signature)
    for category, revision, digest in (("blip", 3, "abc"), ("clip", 4, "abc"), ("clip", 3, "abd")):
        with pytest.raises(SignatureError):
            verifier.check_snapshot(category, revision, digest, signature)


def test_two_keys_rotate_and_a_third_is_refused() -> None:
    new = public_key_text(OTHER)
    rotating = load_verifier(f"{PUBLIC}, {new}")
    assert len(rotating.key_ids) == 2
    assert rotating.check_payload("event", b"x", sign_payload(load_signer(key_pem=OTHER.decode()), b"x"))
    third = public_key_text(generate_private_key_pem())
    with pytest.raises(SettingsError, match="at most 2"):
        load_verifier([PUBLIC, new, third])


@pytest.mark.parametrize("text", ["jwLdYUMdOuSg", "ed25519:short", "ed25519:!!!!", "rsa:AAAA"])
def test_a_malformed_public_key_names_the_setting(text: str) -> None:
    with pytest.raises(SettingsError, match="NATS__TRUSTED_KEYS"):
        Verifier([text])


def test_a_bad_private_key_is_refused_without_showing_it(tmp_path: Path) -> None:
    secret = "-----BEGIN PRIVATE KEY-----\nTOPSECRETTOPSECRET\n-----END PRIVATE KEY-----\n"
    with pytest.raises(SettingsError, match="NATS__SIGNING_KEY=") as caught:
        load_signer(key_pem=secret)
    assert "TOPSECRET" not in str(caught.value)
    path = tmp_path / "key.pem"
    path.write_text(secret)
    with pytest.raises(SettingsError, match="SIGNING_KEY_FILE") as caught:
        load_signer(key_file=str(path))
    assert "TOPSECRET" not in str(caught.value)
    with pytest.raises(SettingsError, match="readable key file"):
        load_signer(key_file=str(tmp_path / "missing.pem"))


def test_the_signer_never_shows_its_key() -> None:
    assert SIGNER is not None
    body = PEM.decode().splitlines()[1]
    assert body not in repr(SIGNER) and body not in str(SIGNER)
    assert SIGNER.public_key == PUBLIC


def test_the_settings_carry_keys_and_the_inbox_prefix(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "HORDE_MODEL_REFERENCE_NATS__TRUSTED_KEYS": f"{PUBLIC},{public_key_text(OTHER)}",
            "HORDE_MODEL_REFERENCE_NATS__SIGNING_KEY_FILE": str(tmp_path / "k.pem"),
            "HORDE_MODEL_REFERENCE_NATS__INBOX_PREFIX": "_INBOX.consumer",
        }
    )
    auth = nats_auth_from_settings(settings.nats)
    assert auth.trusted_keys == (PUBLIC, public_key_text(OTHER))
    assert auth.signing_key_file == str(tmp_path / "k.pem")
    assert auth.inbox_prefix == "_INBOX.consumer"


# -- the reply guard ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    ["_INBOX.abc", "_INBOX.abc.1", "_INBOX.consumer.x.y"],
)
def test_inbox_replies_are_allowed(reply: str) -> None:
    ReplyGuard.for_service("hmr.v1").check(reply)


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("hmr.v1.changed.image_generation", "own subjects"),
        ("hmr.v1.heartbeat", "own subjects"),
        ("hmr.v1", "own subjects"),
        ("hmr.v1.snapshot.clip", "own subjects"),
        ("other.subject", "inbox subjects only"),
        ("_INBOXX.a", "inbox subjects only"),
        ("_INBOX", "inbox subjects only"),
        ("_INBOX.>", "wildcard"),
        ("_INBOX.a b", "whitespace"),
        ("", "empty"),
    ],
)
def test_every_other_reply_subject_is_refused(reply: str, reason: str) -> None:
    with pytest.raises(UnsafeReplyError, match=reason):
        ReplyGuard.for_service("hmr.v1").check(reply)


def test_a_configured_inbox_prefix_is_allowed_and_long_subjects_are_cut_in_errors() -> None:
    guard = ReplyGuard.for_service("hmr.v1", "MYBOX")
    guard.check("MYBOX.1")
    guard.check("_INBOX.1")
    with pytest.raises(UnsafeReplyError) as caught:
        guard.check("x" * 5000)
    assert len(str(caught.value)) < 300


# -- records digests and the consumer's checks ----------------------------------------------


def test_the_records_digest_ignores_layout_and_order_but_not_content() -> None:
    compact = b'{"b":{"name":"b","v":2},"a":{"name":"a","v":1}}'
    assert catalog_records_digest(_RAW.decode(CATALOG)) == catalog_records_digest(_RAW.decode(compact))
    changed = b'{"a": {"name": "a", "v": 1}, "b": {"name": "b", "v": 3}}'
    assert catalog_records_digest(_RAW.decode(CATALOG)) != catalog_records_digest(_RAW.decode(changed))
    assert records_digest({}) == records_digest({})


def _trust_holding(data: bytes, *, revision: int = 1, keys: tuple[str, ...] = ()) -> BusTrust:
    trust = BusTrust(Verifier(keys))
    snapshot = StoredSnapshot(
        "clip",
        revision,
        catalog_digest(data),
        data,
        sign_snapshot(SIGNER, "clip", revision, catalog_digest(data)),
    )
    trust.keep("clip", revision, snapshot.digest, trust.check_snapshot(snapshot, None))
    return trust


def _delta(
    new: bytes, *, names: list[str], removed: tuple[str, ...] = (), **overrides: object
) -> CategoryChanged:
    raw = _RAW.decode(new)
    fields: dict[str, object] = {
        "category": "clip",
        "revision": 2,
        "digest": catalog_digest(new),
        "previous_digest": catalog_digest(CATALOG),
        "changed": names,
        "removed": list(removed),
        "records": {name: raw[name] for name in names},
        "records_digest": catalog_records_digest(raw),
    }
    fields.update(overrides)
    return CategoryChanged(**fields)  # type: ignore[arg-type]


def test_a_delta_is_accepted_only_when_the_patched_records_match() -> None:
    trust = _trust_holding(CATALOG)
    new = b'{"a": {"name": "a", "v": 1}, "b": {"name": "b", "v": 3}}'
    good = _delta(new, names=["b"])
    hashes = trust.check_delta(good, 1, catalog_digest(CATALOG))
    assert records_digest(hashes) == good.records_digest
    removal = _delta(b'{"a": {"name": "a", "v": 1}}', names=[], removed=("b",))
    trust.check_delta(removal, 1, catalog_digest(CATALOG))
    cases = {
        "differs from the event's": _delta(new, names=["b"], records_digest="0" * 64),
        "no records digest": _delta(new, names=["b"], records_digest=None),
        "equals its previous digest": _delta(new, names=["b"], digest=catalog_digest(CATALOG)),
    }
    for reason, event in cases.items():
        with pytest.raises(CatalogRejectedError, match=reason):
            trust.check_delta(event, 1, catalog_digest(CATALOG))
    with pytest.raises(CatalogRejectedError, match="unknown"):
        trust.check_delta(good, 5, catalog_digest(CATALOG))


def test_a_snapshot_must_hash_to_its_digest_match_its_announcement_and_stay_near_the_heartbeat() -> None:
    trust = BusTrust()
    digest = catalog_digest(CATALOG)
    with pytest.raises(CatalogRejectedError, match="bytes hash to"):
        trust.check_snapshot(StoredSnapshot("clip", 1, "0" * 64, CATALOG), None)
    trust.note(CategoryChanged(category="clip", revision=7, digest="f" * 64, previous_digest=None))
    with pytest.raises(CatalogRejectedError, match="differs from the announced"):
        trust.check_snapshot(StoredSnapshot("clip", 7, digest, CATALOG), None)
    trust.check_snapshot(StoredSnapshot("clip", 8, digest, CATALOG), None)
    trust.note(
        Heartbeat(service_id="s", started_at=0, sent_at=0, categories={"clip": CategoryState(8, digest)})
    )
    with pytest.raises(CatalogRejectedError, match="revisions ahead"):
        trust.check_snapshot(StoredSnapshot("clip", 10**9, digest, CATALOG), 8)
    with pytest.raises(CatalogRejectedError, match="not a JSON object"):
        trust.check_snapshot(StoredSnapshot("clip", 9, catalog_digest(b"[1]"), b"[1]"), 8)


def test_a_signed_consumer_refuses_unsigned_snapshots_but_not_far_ahead_signed_ones() -> None:
    trust = _trust_holding(CATALOG, keys=(PUBLIC,))
    digest = catalog_digest(CATALOG)
    with pytest.raises(CatalogRejectedError, match="unsigned"):
        trust.check_snapshot(StoredSnapshot("clip", 2, digest, CATALOG), 1)
    far = StoredSnapshot("clip", 10**6, digest, CATALOG, sign_snapshot(SIGNER, "clip", 10**6, digest))
    trust.check_snapshot(far, 1)
    assert not trust.signature_ok(StoredSnapshot("clip", 2, digest, CATALOG), "redis")


def test_made_up_categories_and_revisions_do_not_grow_the_trust_state() -> None:
    trust = BusTrust()
    trust.note(
        Heartbeat(
            service_id="s",
            started_at=0,
            sent_at=0,
            categories={f"made-up-{n}": CategoryState(1, "d") for n in range(1000)},
        )
    )
    assert not trust._announced and not trust._heartbeat
    assert not trust.may_chase("made-up", 5)
    for revision in range(10_000):
        trust.may_chase("clip", 10**9 + revision)
    assert len(trust._unserved) <= 256


def test_an_unconfirmed_revision_is_chased_a_bounded_number_of_times() -> None:
    trust = BusTrust()
    assert all(trust.may_chase("clip", 10**9) for _ in range(MAX_UNSERVED_ATTEMPTS))
    assert not trust.may_chase("clip", 10**9)
    assert trust.may_chase("clip", 10**9)  # counted afresh for the next forged event
    trust.note(
        Heartbeat(service_id="s", started_at=0, sent_at=0, categories={"clip": CategoryState(50, "d")})
    )
    assert all(trust.may_chase("clip", 50) for _ in range(3 * MAX_UNSERVED_ATTEMPTS))


# -- hmr keygen -----------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """`main()` configures logging for the process: give the other tests theirs back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def test_keygen_writes_a_private_key_for_the_owner_only_and_prints_the_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    path = tmp_path / "service.pem"
    assert main(["keygen", str(path)]) == 0
    public = capsys.readouterr().out.strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert public == public_key_text(path.read_bytes())
    signer = load_signer(key_file=str(path))
    assert signer is not None and Verifier([public]).check_payload("x", b"p", sign_payload(signer, b"p"))
    assert main(["keygen", str(path)]) == 1
    assert "exists already" in capsys.readouterr().err
    assert main(["keygen", "--public", str(path)]) == 0
    assert capsys.readouterr().out.strip() == public
    with pytest.raises(KeyFileError, match="exists already"):
        write_private_key(path)
    assert write_private_key(path, force=True) != public
    assert main(["keygen", str(tmp_path / "missing" / "k.pem")]) == 1


def test_a_snapshot_older_than_asked_for_is_a_replay() -> None:
    trust = BusTrust()
    digest = catalog_digest(CATALOG)
    with pytest.raises(CatalogRejectedError, match="older than the revision 5"):
        trust.check_snapshot(StoredSnapshot("clip", 4, digest, CATALOG), 3, 5)
    trust.check_snapshot(StoredSnapshot("clip", 5, digest, CATALOG), 3, 5)


def _beat(service_id: str, started_at: float) -> Heartbeat:
    return Heartbeat(
        service_id=service_id,
        started_at=started_at,
        sent_at=started_at + 1,
        categories={"clip": CategoryState(1, "d")},
    )


def test_a_signed_consumer_drops_heartbeats_of_a_service_older_than_the_newest_seen() -> None:
    signed = BusTrust(Verifier([PUBLIC]))
    assert signed.note(_beat("old", 100.0))
    assert signed.note(_beat("new", 200.0))  # a restarted service starts later
    assert signed.note(_beat("new", 200.0))
    assert not signed.note(_beat("old", 100.0))  # a replayed heartbeat of the earlier instance
    unsigned = BusTrust()
    assert unsigned.note(_beat("new", 200.0)) and unsigned.note(_beat("old", 100.0))
