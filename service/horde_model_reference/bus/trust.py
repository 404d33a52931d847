"""What a consumer checks before it installs anything the bus told it.

- Every message (change event, heartbeat) must carry a valid signature when public keys are
  configured (`bus.signing`); otherwise it is refused.
- A delta is patched only when the patched catalog's records digest equals the event's
  `records_digest` (the service computes it over the raw JSON of every record; see
  `records_digest`), and only when the event says the catalog changed (`digest` differs from
  `previous_digest`).
- A snapshot is installed only when its bytes hash to its digest, its signature is valid (when
  keys are configured), its digest equals the one announced for its revision by the latest event or
  heartbeat, and, unsigned, its revision is not absurdly ahead of the last heartbeat's.
- A revision only an event announced (no heartbeat confirmed it) is chased a bounded number of
  times, then given up (the next heartbeat says what to fetch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import msgspec

from horde_model_reference.bus.events import CategoryChanged, Event, Heartbeat
from horde_model_reference.bus.signing import SignatureError, Verifier
from horde_model_reference.bus.snapshot_store import StoredSnapshot
from horde_model_reference.catalog import catalog_digest
from horde_model_reference.categories import MODEL_REFERENCE_CATEGORY
from horde_model_reference.errors import ModelReferenceError
from horde_model_reference.logs import get_logger

__all__ = [
    "MAX_REVISION_LEAD",
    "MAX_UNSERVED_ATTEMPTS",
    "BusTrust",
    "CatalogRejectedError",
    "record_hashes",
    "records_digest",
]

MAX_REVISION_LEAD = 1000
"""An unsigned snapshot more revisions than this ahead of the last heartbeat (or of the revision
held) is refused: a crashed service skips about 100, a forged event claims millions."""
MAX_UNSERVED_ATTEMPTS = 4
"""How often a revision no heartbeat confirmed is asked for again (with backoff) before giving up."""

_log = get_logger(__name__)
_CATEGORIES = frozenset(category.value for category in MODEL_REFERENCE_CATEGORY)
_MAX_UNSERVED_KEYS = 256
"""Revisions being chased at once (each forged event may claim a new one)."""
_RAW_CATALOG = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encode_name = msgspec.json.Encoder().encode
_format = msgspec.json.format


class CatalogRejectedError(ModelReferenceError):
    """A delta or snapshot that failed verification: it is not installed."""

    def __init__(self, category: str, revision: int, reason: str) -> None:
        self.category = category
        self.revision = revision
        self.reason = reason
        super().__init__(f"{category} revision {revision} refused: {reason}")


def record_hashes(raw_records: Mapping[str, bytes | msgspec.Raw]) -> dict[str, bytes]:
    """sha256 of each record's raw JSON with its whitespace normalised, by record name.

    Normalised because a record the service sees unchanged (equal once decoded) is not in the delta,
    yet the file around it may have been re-indented: its hash must not change with the layout.
    """
    return {name: hashlib.sha256(_format(raw, indent=0)).digest() for name, raw in raw_records.items()}


def records_digest(hashes: Mapping[str, bytes]) -> str:
    """The records digest of a catalog: sha256 over its record names (sorted) and record hashes.

    Unlike the catalog digest (over the exact bytes, layout included) a consumer can compute it
    after patching a delta: it depends only on each record's JSON, which deltas carry verbatim.
    """
    digest = hashlib.sha256()
    for name in sorted(hashes):
        digest.update(_encode_name(name))
        digest.update(hashes[name])
    return digest.hexdigest()


def catalog_records_digest(raw_records: Mapping[str, bytes | msgspec.Raw]) -> str:
    """The records digest of a catalog decoded as `{name: raw JSON}` (what the service publishes)."""
    return records_digest(record_hashes(raw_records))


@dataclass(frozen=True, slots=True)
class _Held:
    revision: int
    digest: str
    hashes: dict[str, bytes]


class BusTrust:
    """A consumer's verification state: accepted keys, announcements, and the held record hashes.

    Used by the one writer of the consumer (the sync task or the NATS callback it hands over to).
    """

    def __init__(self, verifier: Verifier | None = None) -> None:
        self.verifier = verifier or Verifier()
        self._held: dict[str, _Held] = {}
        self._announced: dict[str, tuple[int, str]] = {}
        self._heartbeat: dict[str, int] = {}
        self._unserved: dict[tuple[str, int], int] = {}
        self._newest_service: tuple[str, float] | None = None
        """The id and start time of the latest-started service whose signed heartbeat was seen."""
        self._replays = 0

    @property
    def signed(self) -> bool:
        """Whether signatures are required."""
        return self.verifier.enabled

    def check_message(self, subject: str, payload: bytes, headers: Mapping[str, str] | None) -> str | None:
        """The signing key id of a message; raises `SignatureError` (see `Verifier.check`)."""
        return self.verifier.check_payload(f"message on {subject}", payload, headers)

    def note(self, event: Event) -> bool:
        """Remember what a (checked) change event or heartbeat says a category's revision and digest
        are; False when the consumer must drop it (a replayed heartbeat, see `_replayed`).

        A snapshot of that revision must then have that digest; a heartbeat's revision is also the
        one unsigned snapshots may not run far ahead of.
        """
        if isinstance(event, CategoryChanged):
            if event.category in _CATEGORIES:
                self._announced[event.category] = (event.revision, event.digest)
        elif isinstance(event, Heartbeat):
            if self._replayed(event):
                return False
            for name, state in event.categories.items():
                if name in _CATEGORIES:  # names an outsider made up are not remembered
                    self._announced[name] = (state.revision, state.digest)
                    self._heartbeat[name] = state.revision
        return True

    def _replayed(self, heartbeat: Heartbeat) -> bool:
        """Signed: a heartbeat of a service instance that started before the newest one seen.

        Its signature is valid, but a restarted service always starts later: an older instance's
        heartbeat (announcing its old revisions) is a replay, which would make the consumer go back.
        """
        if not self.signed:
            return False
        newest = self._newest_service
        if newest is None or heartbeat.service_id == newest[0] or heartbeat.started_at >= newest[1]:
            if newest is None or heartbeat.started_at >= newest[1]:
                self._newest_service = (heartbeat.service_id, heartbeat.started_at)
            return False
        self._replays += 1
        if self._replays <= 10 or self._replays % 100 == 0:
            _log.warning(
                "bus_heartbeat_replay_refused",
                service_id=heartbeat.service_id,
                started_at=heartbeat.started_at,
                newest_service_id=newest[0],
                newest_started_at=newest[1],
                refused=self._replays,
            )
        return True

    def signature_ok(self, snapshot: StoredSnapshot, source: str) -> bool:
        """Whether a stored snapshot's signature is acceptable (logged when not: fetch it elsewhere)."""
        try:
            self.verifier.check_snapshot(
                snapshot.category, snapshot.revision, snapshot.digest, snapshot.signature
            )
        except SignatureError as exc:
            _log.warning(
                "bus_snapshot_signature_refused",
                category=snapshot.category,
                revision=snapshot.revision,
                source=source,
                reason=exc.reason,
                key_id=exc.key_id,
            )
            return False
        return True

    def check_snapshot(
        self, snapshot: StoredSnapshot, held_revision: int | None, min_revision: int = 0
    ) -> dict[str, bytes]:
        """Verify a snapshot fetched asking for at least `min_revision`; returns its record hashes.
        Raises `CatalogRejectedError`.

        CPU-bound (hashes the bytes): run it in a worker thread for large catalogs.
        """
        category, revision = snapshot.category, snapshot.revision
        try:
            self.verifier.check_snapshot(category, revision, snapshot.digest, snapshot.signature)
        except SignatureError as exc:
            raise CatalogRejectedError(category, revision, f"{exc.reason} (key {exc.key_id})") from None
        if revision < min_revision:
            # Every source answers "behind" or nothing then: an older one is a replay.
            raise CatalogRejectedError(
                category, revision, f"older than the revision {min_revision} asked for"
            )
        actual = catalog_digest(snapshot.data)
        if actual != snapshot.digest:
            raise CatalogRejectedError(category, revision, f"bytes hash to {actual}, not {snapshot.digest}")
        announced = self._announced.get(category)
        if announced is not None and announced[0] == revision and announced[1] != snapshot.digest:
            raise CatalogRejectedError(
                category, revision, f"digest {snapshot.digest} differs from the announced {announced[1]}"
            )
        if not self.signed:
            known = [r for r in (self._heartbeat.get(category), held_revision) if r is not None]
            if known and revision > max(known) + MAX_REVISION_LEAD:
                raise CatalogRejectedError(
                    category,
                    revision,
                    f"unsigned and {revision - max(known)} revisions ahead of the last heartbeat or held "
                    f"revision {max(known)} (at most {MAX_REVISION_LEAD})",
                )
        try:
            return record_hashes(_RAW_CATALOG.decode(snapshot.data))
        except msgspec.DecodeError as exc:
            raise CatalogRejectedError(category, revision, f"not a JSON object of records: {exc}") from None

    def check_delta(
        self, event: CategoryChanged, held_revision: int, held_digest: str, held_raw: bytes | None = None
    ) -> dict[str, bytes]:
        """The record hashes after patching `event` onto the held catalog, when they match its
        records digest. Raises `CatalogRejectedError` (the caller fetches a snapshot instead).

        `held_raw`: the held catalog's bytes, when known, for a catalog installed without this
        object (its record hashes are then computed once, if the bytes match `held_digest`)."""
        category, revision = event.category, event.revision
        if event.digest == event.previous_digest:
            raise CatalogRejectedError(category, revision, "the event's digest equals its previous digest")
        if event.records_digest is None:
            raise CatalogRejectedError(
                category, revision, "the event has no records digest to verify against"
            )
        held = self._held.get(category)
        if held is None or held.revision != held_revision or held.digest != held_digest:
            held = self._hashes_of(category, held_revision, held_digest, held_raw)
        if held is None:
            raise CatalogRejectedError(category, revision, "the held catalog's record hashes are unknown")
        hashes = dict(held.hashes)
        for name in event.removed:
            hashes.pop(name, None)
        hashes.update(record_hashes(event.records or {}))
        patched = records_digest(hashes)
        if patched != event.records_digest:
            raise CatalogRejectedError(
                category,
                revision,
                f"patched records digest {patched} differs from the event's {event.records_digest}",
            )
        return hashes

    def _hashes_of(self, category: str, revision: int, digest: str, raw: bytes | None) -> _Held | None:
        if raw is None or catalog_digest(raw) != digest:
            return None
        try:
            held = _Held(revision, digest, record_hashes(_RAW_CATALOG.decode(raw)))
        except msgspec.DecodeError:
            return None
        self._held[category] = held
        return held

    def keep(self, category: str, revision: int, digest: str, hashes: dict[str, bytes]) -> None:
        """Remember the record hashes of the catalog just installed (for the next delta)."""
        self._held[category] = _Held(revision, digest, hashes)

    def may_chase(self, category: str, revision: int) -> bool:
        """Whether a failed fetch of at least `revision` should be retried aiming that high.

        A revision a heartbeat confirmed is chased until it arrives; one only an event announced
        gets `MAX_UNSERVED_ATTEMPTS` attempts (a forged event may claim any revision).
        """
        if revision <= self._heartbeat.get(category, 0):
            return True
        if category not in _CATEGORIES:
            return False
        key = (category, revision)
        count = self._unserved.get(key, 0) + 1
        if count > MAX_UNSERVED_ATTEMPTS:
            self.served(category)
            return False
        if key not in self._unserved and len(self._unserved) >= _MAX_UNSERVED_KEYS:
            del self._unserved[next(iter(self._unserved))]  # ever-new forged revisions: drop the oldest
        self._unserved[key] = count
        return True

    def served(self, category: str) -> None:
        """Forget the attempts counted for `category` (a snapshot was installed, or the chase ended)."""
        for key in [k for k in self._unserved if k[0] == category]:
            del self._unserved[key]
