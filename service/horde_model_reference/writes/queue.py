"""The change queue, persisted in SQLite: one row per change, one transaction per command.

`<data_dir>/writes/queue.sqlite3` (WAL journal, `synchronous=FULL`: a committed transaction
survives a crash) holds every change and the id counters. A transaction (`BEGIN IMMEDIATE`: one
writer across threads and processes, others wait up to `_BUSY_SECONDS`) runs a function on a
`QueueState` that reads and writes single rows, and commits only when the function returned: a
command that moves many changes (approve a batch, reserve a batch for apply) is one atomic step,
and a crash leaves all of it or none of it. A proposal writes one row, whatever the queue holds;
a listing reads one page (SQL `LIMIT`/`OFFSET`, indexes on status, batch and requester).

A `queue.json` left by an earlier version (one document rewritten per transaction) is imported
once, in one transaction, then renamed `queue.json.migrated`.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import msgspec

from horde_model_reference.logs import get_logger
from horde_model_reference.writes.contracts import Change, ChangeStatus
from horde_model_reference.writes.errors import ChangeNotFoundError, ChangeStateError, WriteError

__all__ = ["ChangeFilter", "ChangeQueue", "QueueCorruptError", "QueueState"]

T = TypeVar("T")
_log = get_logger(__name__)
_BUSY_SECONDS = 60.0
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Change)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS changes (change_id INTEGER PRIMARY KEY, status TEXT NOT NULL,"
    " category TEXT NOT NULL, name TEXT NOT NULL, requested_by TEXT NOT NULL, batch_id INTEGER,"
    " body BLOB NOT NULL)",
    "CREATE INDEX IF NOT EXISTS changes_status ON changes (status)",
    "CREATE INDEX IF NOT EXISTS changes_batch ON changes (batch_id)",
    "CREATE INDEX IF NOT EXISTS changes_requester ON changes (requested_by, status)",
    "INSERT OR IGNORE INTO counters VALUES ('next_change_id', 1), ('next_batch_id', 1), ('migrated', 0)",
)


class QueueCorruptError(WriteError):
    """The queue database (or a legacy document) cannot be read (the service refuses to guess)."""

    code = "internal"

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"write queue {str(path)!r} cannot be read: {reason}")


class _LegacyDocument(msgspec.Struct, kw_only=True):
    """`queue.json` of earlier versions (a pending change had no `status` there)."""

    version: int = 1
    next_change_id: int = 1
    next_batch_id: int = 1
    changes: list[dict[str, msgspec.Raw]] = []


class ChangeFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which changes to list; None means any."""

    statuses: frozenset[ChangeStatus] | None = None
    category: str | None = None
    batch_id: int | None = None
    name: str | None = None
    requester: str | None = None

    def matches(self, change: Change) -> bool:
        """Whether `change` passes every constraint."""
        return not (
            (self.statuses is not None and change.status not in self.statuses)
            or (self.category is not None and change.category != self.category)
            or (self.batch_id is not None and change.batch_id != self.batch_id)
            or (self.name is not None and change.name != self.name)
            or (self.requester is not None and change.requested_by != self.requester)
        )

    def sql(self) -> tuple[str, list[Any]]:
        """The SQL `WHERE` clause (or "") and its parameters."""
        terms: list[str] = []
        params: list[Any] = []
        if self.statuses is not None:
            terms.append(f"status IN ({', '.join('?' * len(self.statuses))})")
            params += sorted(status.value for status in self.statuses)
        for column, value in (
            ("category", self.category),
            ("batch_id", self.batch_id),
            ("name", self.name),
            ("requested_by", self.requester),
        ):
            if value is not None:
                terms.append(f"{column} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(terms) if terms else ""), params


class QueueState:
    """The queue inside one transaction: reads and writes single rows."""

    def __init__(self, connection: sqlite3.Connection, path: Path) -> None:
        self._db = connection
        self._path = path

    def _counter(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        value = int(row[0])
        self._db.execute("UPDATE counters SET value = ? WHERE name = ?", (value + 1, name))
        return value

    def _decode(self, body: bytes) -> Change:
        try:
            return _DECODER.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise QueueCorruptError(self._path, f"a change cannot be decoded: {exc}") from None

    def new_change_id(self) -> int:
        """The next change id (never reused, even after a purge)."""
        return self._counter("next_change_id")

    def new_batch_id(self) -> int:
        """The next batch id."""
        return self._counter("next_batch_id")

    def find(self, change_id: int) -> Change | None:
        """The change `change_id`, or None."""
        row = self._db.execute("SELECT body FROM changes WHERE change_id = ?", (change_id,)).fetchone()
        return self._decode(row[0]) if row is not None else None

    def get(self, change_id: int) -> Change:
        """The change `change_id`; raises `ChangeNotFoundError`."""
        change = self.find(change_id)
        if change is None:
            raise ChangeNotFoundError(change_id)
        return change

    def expect(self, change_ids: Iterable[int], status: ChangeStatus) -> list[Change]:
        """The changes, each of which must be in `status` (raises `ChangeStateError` naming the first that is not)."""
        changes = [self.get(change_id) for change_id in change_ids]
        for change in changes:
            if change.status is not status:
                raise ChangeStateError(change.change_id, change.status.value, status.value)
        return changes

    def put(self, change: Change) -> Change:
        """Store `change` (new or replacing the one with its id)."""
        self._db.execute(
            "INSERT OR REPLACE INTO changes VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                change.change_id,
                change.status.value,
                change.category,
                change.name,
                change.requested_by,
                change.batch_id,
                _ENCODER.encode(change),
            ),
        )
        return change

    def remove(self, change_id: int) -> None:
        """Drop a change from the queue."""
        self._db.execute("DELETE FROM changes WHERE change_id = ?", (change_id,))

    def select(self, where: ChangeFilter, *, offset: int = 0, limit: int | None = None) -> list[Change]:
        """The changes matching `where`, by id (`limit` of them from `offset`)."""
        clause, params = where.sql()
        page = " LIMIT ? OFFSET ?" if limit is not None or offset else ""
        if page:
            params += [-1 if limit is None else limit, offset]
        rows = self._db.execute(f"SELECT body FROM changes{clause} ORDER BY change_id{page}", params)
        return [self._decode(row[0]) for row in rows]

    def page(self, where: ChangeFilter, *, offset: int, limit: int, max_bytes: int) -> list[Change]:
        """Up to `limit` changes matching `where` from `offset`, by id, whose JSON stays within
        `max_bytes` (one at least): rows are read one at a time, never the whole selection."""
        clause, params = where.sql()
        rows = self._db.execute(
            f"SELECT body FROM changes{clause} ORDER BY change_id LIMIT ? OFFSET ?", [*params, limit, offset]
        )
        items: list[Change] = []
        size = 0
        for (body,) in rows:
            size += len(body)
            if items and size > max_bytes:
                break
            items.append(self._decode(body))
        return items

    def count(self, where: ChangeFilter) -> int:
        """How many changes match `where`."""
        clause, params = where.sql()
        return int(self._db.execute(f"SELECT COUNT(*) FROM changes{clause}", params).fetchone()[0])


class ChangeQueue:
    """The persisted queue in `directory`; safe to share between tasks, threads and processes."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / "queue.sqlite3"
        self.legacy_path = self.directory / "queue.json"
        self._thread_lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    async def transact(self, operation: Callable[[QueueState], T]) -> T:
        """Run `operation` on the current state in one transaction; commit when it returns."""
        return await anyio.to_thread.run_sync(self.transact_sync, operation)

    def transact_sync(self, operation: Callable[[QueueState], T]) -> T:
        """Blocking variant of `transact` (runs in the caller's thread)."""
        return self._run(operation, "BEGIN IMMEDIATE")

    async def read(self, operation: Callable[[QueueState], T]) -> T:
        """Run `operation` on a consistent snapshot (reads never wait for a writer)."""
        return await anyio.to_thread.run_sync(self._run, operation, "BEGIN")

    def close(self) -> None:
        """Close the database connection (a later call opens it again)."""
        with self._thread_lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _run(self, operation: Callable[[QueueState], T], begin: str) -> T:
        with self._thread_lock:
            db = self._connection()
            try:
                db.execute(begin)
            except sqlite3.DatabaseError as exc:
                raise QueueCorruptError(self.path, str(exc)) from None
            try:
                result = operation(QueueState(db, self.path))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return result

    def _connection(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        self.directory.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            legacy = self.legacy_path.exists()
            if legacy:
                self._migrate(db)
            db.execute("COMMIT")
        except (sqlite3.DatabaseError, QueueCorruptError) as exc:
            db.close()
            if isinstance(exc, QueueCorruptError):
                raise
            raise QueueCorruptError(self.path, str(exc)) from None
        if legacy:  # after the commit: a crash before this rename imports nothing twice
            # Another process that opened the queue at the same time may have renamed it first.
            with contextlib.suppress(FileNotFoundError):
                self.legacy_path.rename(self.legacy_path.with_name("queue.json.migrated"))
        self._db = db
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Import a legacy `queue.json` (inside the schema transaction) unless it was imported already."""
        migrated = db.execute("SELECT value FROM counters WHERE name = 'migrated'").fetchone()[0]
        if not migrated:
            try:
                legacy = msgspec.json.decode(self.legacy_path.read_bytes(), type=_LegacyDocument)
                changes = [
                    _DECODER.decode(_ENCODER.encode({"status": msgspec.Raw(b'"pending"'), **raw}))
                    for raw in legacy.changes
                ]
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise QueueCorruptError(self.legacy_path, str(exc)) from None
            state = QueueState(db, self.path)
            for change in changes:
                state.put(change)
            db.execute(
                "UPDATE counters SET value = CASE name WHEN 'next_change_id' THEN ? WHEN 'next_batch_id'"
                " THEN ? ELSE 1 END",
                (legacy.next_change_id, legacy.next_batch_id),
            )
            _log.info("write_queue_migrated", source=str(self.legacy_path), changes=len(changes))
