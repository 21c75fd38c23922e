"""The embedded metadata store: one SQLite file under the data directory, for
a single broker that needs no etcd.

SQLite runs on a dedicated one-thread pool, never on the reactor thread. The
file is in WAL mode, so another process (the admin CLI) can read and write it
while the broker runs: writes take the lock up front (BEGIN IMMEDIATE) and
wait for it up to ``busy_timeout``, then fail with MetadataUnavailable. With
synchronous=FULL the WAL is synced before a commit returns, so a commit the
broker acknowledged survives a power cut, not only the process being killed
(about half a millisecond more per commit than synchronous=NORMAL).

Other processes' changes are noticed by polling ``PRAGMA data_version``,
which changes only when another connection commits. A ``changes`` table
keeps one counter per area (topics, partitions, groups, brokers, acls,
quotas, broker_configs), bumped by
every write, so a poll can say which areas changed.

A short-lived program uses the store under its own reactor::

    async def main(reactor):
        store = EmbeddedMetadataStore("kafscale-data/metadata.sqlite")
        store.startService()
        try:
            print(await store.topics())
        finally:
            await store.stopService()

    task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
"""

import dataclasses
import json
import os
import sqlite3
import time
import uuid

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import implementer

from kafscale.log import logger
from kafscale.metadata.interfaces import (
    CHANGE_AREAS,
    BrokerInfo,
    CommittedOffset,
    Fenced,
    IMetadataStore,
    IScramCredentialStore,
    InvalidPartitions,
    MetadataError,
    MetadataUnavailable,
    PartitionState,
    ScramCredential,
    SegmentRef,
    TopicExists,
    TopicInfo,
    TransactionConflict,
    UnknownTopic,
    check_continues,
    check_replaces,
)
from kafscale.metadata.manifest import Manifest
from kafscale.metadata.requests import reported
from kafscale.metadata.topic_configs import with_changes
from kafscale.metadata.acls import AclBinding

log = logger("kafscale.metadata.embedded")

SCHEMA_VERSION = 8

SCHEMA = """
CREATE TABLE topics (
    name TEXT PRIMARY KEY,
    topic_id TEXT NOT NULL,
    partitions INTEGER NOT NULL,
    configs TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    replication_factor INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE partitions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    leader_epoch INTEGER NOT NULL,
    log_start_offset INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    epoch_history TEXT NOT NULL,
    revision INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
CREATE TABLE segments (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    base_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
    max_timestamp INTEGER NOT NULL,
    size INTEGER NOT NULL,
    count INTEGER NOT NULL,
    key TEXT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    format INTEGER NOT NULL DEFAULT 1,
    txn TEXT,
    PRIMARY KEY (topic, partition, base_offset)
) WITHOUT ROWID;
CREATE TABLE offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    "offset" INTEGER NOT NULL,
    leader_epoch INTEGER NOT NULL,
    metadata TEXT,
    commit_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
CREATE TABLE groups (
    group_id TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE transactions (
    transactional_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    version INTEGER NOT NULL
);
CREATE TABLE brokers (
    node_id INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    rack TEXT,
    started_ms INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL
);
CREATE TABLE group_configs (
    group_id TEXT PRIMARY KEY,
    configs TEXT NOT NULL
);
CREATE TABLE broker_configs (
    resource TEXT PRIMARY KEY,
    configs TEXT NOT NULL
);
CREATE TABLE scram_credentials (
    user TEXT NOT NULL,
    mechanism TEXT NOT NULL,
    salt BLOB NOT NULL,
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    iterations INTEGER NOT NULL,
    PRIMARY KEY (user, mechanism)
) WITHOUT ROWID;
CREATE TABLE changes (
    area TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
CREATE TABLE acls (
    binding TEXT PRIMARY KEY
);
CREATE TABLE quotas (
    entity TEXT PRIMARY KEY,
    quota_values TEXT NOT NULL
);
"""

# What takes a file of an earlier schema version to the next one.
MIGRATIONS = {
    # Version 2: manifest entries may name a slice of a multi-partition object.
    1: (
        "ALTER TABLE segments ADD COLUMN position INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE segments ADD COLUMN format INTEGER NOT NULL DEFAULT 1",
    ),
    # Version 3: users' SCRAM credentials.
    2: (
        "CREATE TABLE scram_credentials (user TEXT NOT NULL, mechanism TEXT NOT NULL, salt BLOB NOT NULL,"
        " stored_key BLOB NOT NULL, server_key BLOB NOT NULL, iterations INTEGER NOT NULL,"
        " PRIMARY KEY (user, mechanism)) WITHOUT ROWID",
    ),
    # Version 4: transactions, and each entry's part of the aborted-transaction index.
    3: (
        "ALTER TABLE segments ADD COLUMN txn TEXT",
        "CREATE TABLE transactions (transactional_id TEXT PRIMARY KEY, state TEXT NOT NULL,"
        " version INTEGER NOT NULL)",
    ),
    # Version 5: ACLs and client quotas.
    4: (
        "CREATE TABLE acls (binding TEXT PRIMARY KEY)",
        "CREATE TABLE quotas (entity TEXT PRIMARY KEY, quota_values TEXT NOT NULL)",
        "INSERT OR IGNORE INTO changes VALUES ('acls', 0)",
        "INSERT OR IGNORE INTO changes VALUES ('quotas', 0)",
    ),
    # Version 6: topics keep the replication factor they were created with.
    5: ("ALTER TABLE topics ADD COLUMN replication_factor INTEGER NOT NULL DEFAULT 1",),
    # Version 7: configs set on groups.
    6: ("CREATE TABLE group_configs (group_id TEXT PRIMARY KEY, configs TEXT NOT NULL)",),
    # Version 8: dynamic broker configs.
    7: (
        "CREATE TABLE broker_configs (resource TEXT PRIMARY KEY, configs TEXT NOT NULL)",
        "INSERT OR IGNORE INTO changes VALUES ('broker_configs', 0)",
    ),
}

# A registered broker refreshes its heartbeat this often, and counts as live
# for this long after the last one.
HEARTBEAT_MS = 2_000
BROKER_TTL_MS = 10_000

WAL_SIZE_LIMIT = 16 << 20

# SQLite errors that mean "not now" rather than "never".
_RETRIABLE_ERRORS = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_CANTOPEN")

_SEGMENT_COLUMNS = "base_offset, last_offset, max_timestamp, size, count, key, position, format, txn"
_SEGMENT_FIELDS = tuple(_SEGMENT_COLUMNS.split(", "))


def _segment_row(ref):
    """The column values of ``ref``: txn holds its transaction fields, as
    JSON, NULL when it has none."""
    txn = None
    if ref.aborted or ref.open:
        txn = json.dumps({"aborted": ref.aborted, "open": ref.open}, separators=(",", ":"))
    return (ref.base_offset, ref.last_offset, ref.max_timestamp, ref.size, ref.count, ref.key, ref.position,
            ref.format, txn)


def _segment_of_row(row):
    *fields, txn = row
    if txn is None:
        return SegmentRef(*fields)
    value = json.loads(txn)
    return SegmentRef(*fields, tuple(tuple(entry) for entry in value["aborted"]),
                      tuple(tuple(entry) for entry in value["open"]))


@implementer(IMetadataStore, IScramCredentialStore)
class EmbeddedMetadataStore(Service):
    """IMetadataStore on a SQLite file at ``path`` (created if missing),
    telling ``requests`` (an IMetadataRequests, if any) of every call.

    The attributes marked "database thread only" are touched only by the
    pool's single thread, which serialises all use of the connection. A
    store that could not open its file (say another process held the lock
    too long) tries again on the next call.
    """

    def __init__(self, path, reactor=None, busy_timeout=5.0, poll_interval=0.5, requests=None):
        if reactor is None:
            from twisted.internet import reactor
        self.path = path
        self.requests = requests
        self._reactor = reactor
        self._busy_timeout = busy_timeout
        self._poll_interval = poll_interval
        self._subscribers = []
        self._pool = None
        self._poller = None
        # Database thread only:
        self._db = None
        self._data_version = None
        self._seen = {}  # area -> change counter this connection has accounted for
        self._pending = {}  # area -> counter bumped by the open transaction
        self._unseen = set()  # areas changed by others, not yet reported
        self._manifests = {}  # (topic, partition) -> (revision, segments)
        self._own_brokers = set()
        self._last_heartbeat_ms = 0

    # Lifetime

    def startService(self):
        super().startService()
        self._pool = ThreadPool(1, 1, name=f"metadata {self.path}")
        self._pool.start()
        self._submit(self._connection).addErrback(
            lambda failure: log.failure("Cannot open metadata store {path}", failure, path=self.path)
        )
        self._poller = LoopingCall(self._poll)
        self._poller.clock = self._reactor
        self._poller.start(self._poll_interval, now=False)

    def stopService(self):
        super().stopService()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self):
        if self._poller.running:
            self._poller.stop()
        try:
            await self._submit(self._close)
        except Exception:
            log.failure("Closing metadata store {path} failed", path=self.path)
        # The pool is idle now, so joining its thread does not wait.
        self._pool.stop()

    def subscribe(self, callback):
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def _poll(self):
        return Deferred.fromCoroutine(self._report_changes())

    async def _report_changes(self):
        try:
            changed = await self._submit(self._changes, self._now_ms())
        except Exception:
            log.failure("Polling metadata store {path} failed", path=self.path)
            return
        if not changed:
            return
        for callback in list(self._subscribers):
            try:
                callback(changed)
            except Exception:
                log.failure("Metadata change subscriber {callback!r} failed", callback=callback)

    # Topics

    def create_topic(self, name, partitions, configs=None, replication_factor=1):
        return self._write(
            self._create_topic, name, partitions, dict(configs or {}), uuid.uuid4(), self._now_ms(),
            replication_factor,
        )

    def delete_topic(self, name):
        return self._write(self._delete_topic, name)

    def topics(self):
        return self._read(self._topics)

    def alter_topic_configs(self, name, set=None, delete=()):
        return self._write(self._alter_topic_configs, name, dict(set or {}), tuple(delete))

    def add_partitions(self, name, total):
        return self._write(self._add_partitions, name, total)

    # Partitions

    def partition_state(self, topic, partition):
        return self._read(self._partition_state, topic, partition)

    def claim_partition(self, topic, partition, expected_epoch):
        return self._write(self._claim_partition, topic, partition, expected_epoch)

    def commit_segment(self, topic, partition, epoch, expected_next_offset, segment):
        return self._write(self._commit_segment, topic, partition, epoch, expected_next_offset, segment)

    def commit_segments(self, commits):
        return self._write(self._commit_segments, tuple(commits))

    def advance_log_start(self, topic, partition, epoch, new_log_start):
        return self._write(self._advance_log_start, topic, partition, epoch, new_log_start)

    def replace_segments(self, topic, partition, epoch, old, new):
        return self._write(self._replace_segments, topic, partition, epoch, tuple(old), tuple(new))

    # Consumer groups

    def commit_offsets(self, group_id, offsets):
        return self._write(self._commit_offsets, group_id, dict(offsets))

    def fetch_offsets(self, group_id, partitions=None):
        wanted = None if partitions is None else frozenset(partitions)
        return self._read(self._fetch_offsets, group_id, wanted)

    def delete_offsets(self, group_id, partitions):
        return self._write(self._delete_offsets, group_id, tuple(partitions))

    def group_configs(self, group_id):
        return self._read(self._group_configs, group_id)

    def alter_group_configs(self, group_id, set=None, delete=()):
        return self._write(self._alter_group_configs, group_id, dict(set or {}), tuple(delete))

    def broker_configs(self):
        return self._read(self._broker_configs)

    def alter_broker_configs(self, resource, set=None, delete=()):
        return self._write(self._alter_broker_configs, resource, dict(set or {}), tuple(delete))

    def save_group(self, group_id, state):
        return self._write(self._save_group, group_id, json.dumps(state))

    def load_group(self, group_id):
        return self._read(self._load_group, group_id)

    def groups(self):
        return self._read(self._groups)

    def delete_group(self, group_id):
        return self._write(self._delete_group, group_id)

    # Transactions

    def load_transaction(self, transactional_id):
        return self._read(self._load_transaction, transactional_id)

    def save_transaction(self, transactional_id, state, expected_version):
        return self._write(self._save_transaction, transactional_id, json.dumps(state), expected_version)

    def transactions(self):
        return self._read(self._transactions)

    def delete_transaction(self, transactional_id, expected_version):
        return self._write(self._delete_transaction, transactional_id, expected_version)

    # ACLs and client quotas

    def acls(self):
        return self._read(self._acls)

    def create_acls(self, bindings):
        return self._write(self._create_acls, tuple(bindings))

    def delete_acls(self, filters):
        return self._write(self._delete_acls, tuple(filters))

    def client_quotas(self):
        return self._read(self._client_quotas)

    def alter_client_quotas(self, alterations):
        return self._write(self._alter_client_quotas, tuple((entity, dict(changes)) for entity, changes in alterations))

    # Brokers

    def register_broker(self, info):
        return self._write(self._register_broker, info, self._now_ms())

    def brokers(self):
        return self._read(self._brokers, self._now_ms())

    # SCRAM credentials

    def set_scram_credential(self, user, credential):
        return self._write(self._set_scram_credential, user, credential)

    def delete_scram_credential(self, user, mechanism):
        return self._write(self._delete_scram_credential, user, mechanism)

    def scram_credentials(self, user=None):
        return self._read(self._scram_credentials, user)

    # Running work on the database thread

    def _now_ms(self):
        return int(self._reactor.seconds() * 1000)

    def _read(self, function, *args):
        return reported(self.requests, function.__name__.lstrip("_"),
                        self._run(self._in_transaction, "BEGIN", function, *args))

    def _write(self, function, *args):
        return reported(self.requests, function.__name__.lstrip("_"),
                        self._run(self._in_transaction, "BEGIN IMMEDIATE", function, *args))

    def _run(self, function, *args):
        if not self.running:
            return fail(MetadataUnavailable(f"metadata store {self.path} is stopped"))
        return self._submit(function, *args)

    def _submit(self, function, *args):
        return deferToThreadPool(self._reactor, self._pool, self._translating_errors, function, *args)

    def _translating_errors(self, function, *args):
        try:
            return function(*args)
        except sqlite3.OperationalError as e:
            if (e.sqlite_errorname or "").startswith(_RETRIABLE_ERRORS):
                raise MetadataUnavailable(f"metadata store {self.path}: {e}") from e
            raise MetadataError(f"metadata store {self.path}: {e}") from e
        except sqlite3.DatabaseError as e:
            raise MetadataError(f"metadata store {self.path}: {e}") from e

    # Everything below runs on the database thread.

    def _connection(self):
        if self._db is None:
            self._open()
        return self._db

    def _open(self):
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._use_wal(db)
            db.execute("PRAGMA synchronous=FULL")
            # After a checkpoint the write-ahead log shrinks back to this
            # size rather than staying at its largest. Deleted rows (a
            # merge's replaced segments, retention's) leave pages that later
            # writes reuse, so the file stays near its live data's size.
            db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
            db.execute("BEGIN IMMEDIATE")
            (version,) = db.execute("PRAGMA user_version").fetchone()
            if version == 0:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.executemany("INSERT INTO changes VALUES (?, 0)", [(area,) for area in CHANGE_AREAS])
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise MetadataError(f"metadata store {self.path}: unknown schema version {version}")
            else:
                # A file written by an earlier version: bring it up to date.
                for old in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[old]:
                        db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            db.execute("COMMIT")
            self._seen = dict(db.execute("SELECT area, version FROM changes"))
            (self._data_version,) = db.execute("PRAGMA data_version").fetchone()
        except BaseException:
            db.close()
            raise
        self._db = db

    def _use_wal(self, db):
        # Switching a new file to WAL does not wait for a busy database, and
        # two processes may open a new file at once: retry until the timeout.
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                (mode,) = db.execute("PRAGMA journal_mode=WAL").fetchone()
                break
            except sqlite3.OperationalError as e:
                if e.sqlite_errorname != "SQLITE_BUSY" or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if mode != "wal":
            raise MetadataError(f"metadata store {self.path}: cannot use WAL mode (got {mode})")

    def _close(self):
        if self._db is None:
            return
        try:
            if self._own_brokers:
                self._in_transaction("BEGIN IMMEDIATE", self._deregister_own_brokers)
        finally:
            self._db.close()
            self._db = None

    def _in_transaction(self, begin, function, *args):
        db = self._connection()
        db.execute(begin)
        try:
            result = function(db, *args)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            self._pending.clear()
            raise
        self._seen.update(self._pending)
        self._pending.clear()
        return result

    def _bump(self, db, area):
        """Count a change to ``area`` in the open transaction; -> the new
        counter, which also serves as a revision number (it never repeats)."""
        (version,) = db.execute(
            "UPDATE changes SET version = version + 1 WHERE area = ? RETURNING version", (area,)
        ).fetchone()
        if version - 1 != self._pending.get(area, self._seen[area]):
            self._unseen.add(area)
        self._pending[area] = version
        return version

    def _changes(self, now_ms):
        """-> the areas others changed since the last call; also keeps this
        store's broker registrations alive."""
        db = self._connection()
        if self._own_brokers and now_ms - self._last_heartbeat_ms >= HEARTBEAT_MS:
            placeholders = ",".join("?" * len(self._own_brokers))
            db.execute(
                f"UPDATE brokers SET heartbeat_ms = ? WHERE node_id IN ({placeholders})",
                (now_ms, *self._own_brokers),
            )
            self._last_heartbeat_ms = now_ms
        (data_version,) = db.execute("PRAGMA data_version").fetchone()
        if data_version != self._data_version:
            self._data_version = data_version
            for area, version in db.execute("SELECT area, version FROM changes"):
                if version != self._seen.get(area):
                    self._unseen.add(area)
                    self._seen[area] = version
        changed = frozenset(self._unseen)
        self._unseen.clear()
        return changed

    def _create_topic(self, db, name, partitions, configs, topic_id, now_ms, replication_factor):
        if partitions < 1:
            raise InvalidPartitions(f"{name}: a topic needs at least one partition, not {partitions}")
        if db.execute("SELECT 1 FROM topics WHERE name = ?", (name,)).fetchone():
            raise TopicExists(name)
        info = TopicInfo(name, topic_id, partitions, configs, now_ms, replication_factor)
        db.execute("INSERT INTO topics VALUES (?, ?, ?, ?, ?, ?)", _topic_row(info))
        self._insert_partitions(db, name, range(partitions))
        self._bump(db, "topics")
        return info

    def _insert_partitions(self, db, topic, partitions):
        revision = self._bump(db, "partitions")
        db.executemany(
            "INSERT INTO partitions VALUES (?, ?, 0, 0, 0, '[]', ?)",
            [(topic, partition, revision) for partition in partitions],
        )

    def _delete_topic(self, db, name):
        info = self._topic(db, name)
        db.execute("DELETE FROM topics WHERE name = ?", (name,))
        db.execute("DELETE FROM partitions WHERE topic = ?", (name,))
        db.execute("DELETE FROM segments WHERE topic = ?", (name,))
        db.execute("DELETE FROM offsets WHERE topic = ?", (name,))
        for partition in range(info.partitions):
            self._manifests.pop((name, partition), None)
        self._bump(db, "topics")
        self._bump(db, "partitions")
        self._bump(db, "groups")
        return info

    def _topics(self, db):
        return {row[0]: _topic_info(row) for row in db.execute("SELECT * FROM topics")}

    def _topic(self, db, name):
        row = db.execute("SELECT * FROM topics WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise UnknownTopic(name)
        return _topic_info(row)

    def _alter_topic_configs(self, db, name, updates, deletions):
        info = self._topic(db, name)
        configs = with_changes(info.configs, updates, deletions)
        db.execute("UPDATE topics SET configs = ? WHERE name = ?", (json.dumps(configs), name))
        self._bump(db, "topics")
        return dataclasses.replace(info, configs=configs)

    def _add_partitions(self, db, name, total):
        info = self._topic(db, name)
        if total <= info.partitions:
            raise InvalidPartitions(f"{name} has {info.partitions} partitions; cannot grow to {total}")
        db.execute("UPDATE topics SET partitions = ? WHERE name = ?", (total, name))
        self._insert_partitions(db, name, range(info.partitions, total))
        self._bump(db, "topics")
        return dataclasses.replace(info, partitions=total)

    def _partition_state(self, db, topic, partition):
        row = db.execute(
            "SELECT leader_epoch, log_start_offset, next_offset, epoch_history, revision"
            " FROM partitions WHERE topic = ? AND partition = ?",
            (topic, partition),
        ).fetchone()
        if row is None:
            raise UnknownTopic(f"{topic}-{partition}")
        leader_epoch, log_start_offset, next_offset, epoch_history, revision = row
        # The revision changes with every change to the partition, by any
        # process, so an unchanged one proves the cached manifest current.
        cached = self._manifests.get((topic, partition))
        if cached is not None and cached[0] == revision:
            segments = cached[1]
        else:
            segments = Manifest(
                _segment_of_row(segment)
                for segment in db.execute(
                    f"SELECT {_SEGMENT_COLUMNS} FROM segments"
                    " WHERE topic = ? AND partition = ? ORDER BY base_offset",
                    (topic, partition),
                )
            )
            self._manifests[topic, partition] = (revision, segments)
        history = tuple(tuple(entry) for entry in json.loads(epoch_history))
        return PartitionState(
            topic, partition, leader_epoch, log_start_offset, next_offset, segments, history
        )

    def _store_partition_state(self, db, state):
        revision = self._bump(db, "partitions")
        db.execute(
            "UPDATE partitions SET leader_epoch = ?, log_start_offset = ?, next_offset = ?,"
            " epoch_history = ?, revision = ? WHERE topic = ? AND partition = ?",
            (
                state.leader_epoch,
                state.log_start_offset,
                state.next_offset,
                json.dumps(state.epoch_history),
                revision,
                state.topic,
                state.partition,
            ),
        )
        self._manifests[state.topic, state.partition] = (revision, state.segments)
        return state

    def _claim_partition(self, db, topic, partition, expected_epoch):
        state = self._partition_state(db, topic, partition)
        if state.leader_epoch != expected_epoch:
            raise Fenced(topic, partition, state.leader_epoch, state.next_offset)
        return self._store_partition_state(db, state.claimed())

    def _commit_segment(self, db, topic, partition, epoch, expected_next_offset, segment):
        check_continues(topic, partition, expected_next_offset, segment)
        state = self._partition_state(db, topic, partition)
        if state.leader_epoch != epoch or state.next_offset != expected_next_offset:
            raise Fenced(topic, partition, state.leader_epoch, state.next_offset)
        self._insert_segments(db, topic, partition, [segment])
        return self._store_partition_state(db, state.with_segment(segment))

    def _insert_segments(self, db, topic, partition, refs):
        db.executemany(
            f"INSERT INTO segments (topic, partition, {_SEGMENT_COLUMNS})"
            f" VALUES (?, ?, {', '.join('?' * len(_SEGMENT_FIELDS))})",
            [(topic, partition, *_segment_row(ref)) for ref in refs],
        )

    def _replace_segments(self, db, topic, partition, epoch, old, new):
        check_replaces(topic, partition, old, new)
        state = self._partition_state(db, topic, partition)
        if state.leader_epoch != epoch:
            raise Fenced(topic, partition, state.leader_epoch, state.next_offset)
        replaced = state.with_replaced(old, new)
        db.execute(
            "DELETE FROM segments WHERE topic = ? AND partition = ? AND base_offset BETWEEN ? AND ?",
            (topic, partition, old[0].base_offset, old[-1].base_offset),
        )
        self._insert_segments(db, topic, partition, new)
        return self._store_partition_state(db, replaced)

    def _commit_segments(self, db, commits):
        for commit in commits:
            check_continues(commit.topic, commit.partition, commit.expected_next_offset, commit.segment)
        results = []
        for commit in commits:
            try:
                results.append(self._commit_segment(db, commit.topic, commit.partition, commit.epoch,
                                                    commit.expected_next_offset, commit.segment))
            except (Fenced, UnknownTopic) as refused:
                results.append(refused)
        return results

    def _advance_log_start(self, db, topic, partition, epoch, new_log_start):
        state = self._partition_state(db, topic, partition)
        if state.leader_epoch != epoch:
            raise Fenced(topic, partition, state.leader_epoch, state.next_offset)
        advanced, removed = state.with_log_start(new_log_start)
        if advanced is state:
            return state, []
        if removed:
            db.execute(
                "DELETE FROM segments WHERE topic = ? AND partition = ? AND base_offset <= ?",
                (topic, partition, removed[-1].base_offset),
            )
        return self._store_partition_state(db, advanced), removed

    def _commit_offsets(self, db, group_id, offsets):
        db.executemany(
            "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (group_id, topic, partition, c.offset, c.leader_epoch, c.metadata, c.commit_ms)
                for (topic, partition), c in offsets.items()
            ],
        )
        self._bump(db, "groups")

    def _fetch_offsets(self, db, group_id, wanted):
        rows = db.execute(
            'SELECT topic, partition, "offset", leader_epoch, metadata, commit_ms'
            " FROM offsets WHERE group_id = ?",
            (group_id,),
        )
        offsets = {(topic, partition): CommittedOffset(*rest) for topic, partition, *rest in rows}
        if wanted is None:
            return offsets
        return {key: committed for key, committed in offsets.items() if key in wanted}

    def _delete_offsets(self, db, group_id, partitions):
        deleted = db.executemany(
            "DELETE FROM offsets WHERE group_id = ? AND topic = ? AND partition = ?",
            [(group_id, topic, partition) for topic, partition in partitions],
        ).rowcount
        if deleted:
            self._bump(db, "groups")

    def _group_configs(self, db, group_id):
        row = db.execute("SELECT configs FROM group_configs WHERE group_id = ?", (group_id,)).fetchone()
        return {} if row is None else json.loads(row[0])

    def _alter_group_configs(self, db, group_id, updates, deletions):
        return self._alter_configs(db, "group_configs", "group_id", group_id, updates, deletions, "groups")

    def _broker_configs(self, db):
        return {resource: json.loads(configs)
                for resource, configs in db.execute("SELECT resource, configs FROM broker_configs")}

    def _alter_broker_configs(self, db, resource, updates, deletions):
        return self._alter_configs(db, "broker_configs", "resource", resource, updates, deletions, "broker_configs")

    def _alter_configs(self, db, table, column, name, updates, deletions, area):
        """Set ``updates`` and remove ``deletions`` in the configs ``table``
        keeps for ``name`` (its row goes with the last of them), and tell
        ``area``'s subscribers. -> the configs after."""
        row = db.execute(f"SELECT configs FROM {table} WHERE {column} = ?", (name,)).fetchone()
        configs = with_changes({} if row is None else json.loads(row[0]), updates, deletions)
        if configs:
            db.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?)", (name, json.dumps(configs)))
        else:
            db.execute(f"DELETE FROM {table} WHERE {column} = ?", (name,))
        self._bump(db, area)
        return configs

    def _save_group(self, db, group_id, state):
        db.execute("INSERT OR REPLACE INTO groups VALUES (?, ?)", (group_id, state))
        self._bump(db, "groups")

    def _load_group(self, db, group_id):
        row = db.execute("SELECT state FROM groups WHERE group_id = ?", (group_id,)).fetchone()
        return None if row is None else json.loads(row[0])

    def _groups(self, db):
        rows = db.execute("SELECT group_id FROM groups UNION SELECT group_id FROM offsets ORDER BY 1")
        return [group_id for (group_id,) in rows]

    def _delete_group(self, db, group_id):
        deleted = db.execute("DELETE FROM groups WHERE group_id = ?", (group_id,)).rowcount
        deleted += db.execute("DELETE FROM offsets WHERE group_id = ?", (group_id,)).rowcount
        if deleted:
            self._bump(db, "groups")
        return deleted > 0

    def _set_scram_credential(self, db, user, credential):
        db.execute("INSERT OR REPLACE INTO scram_credentials VALUES (?, ?, ?, ?, ?, ?)",
                   (user, credential.mechanism, credential.salt, credential.stored_key, credential.server_key,
                    credential.iterations))

    def _delete_scram_credential(self, db, user, mechanism):
        return db.execute("DELETE FROM scram_credentials WHERE user = ? AND mechanism = ?",
                          (user, mechanism)).rowcount > 0

    def _scram_credentials(self, db, user):
        query = "SELECT user, mechanism, salt, stored_key, server_key, iterations FROM scram_credentials"
        rows = db.execute(query, ()) if user is None else db.execute(query + " WHERE user = ?", (user,))
        users = {}
        for name, mechanism, *rest in rows:
            users.setdefault(name, {})[mechanism] = ScramCredential(mechanism, *rest)
        return users if user is None else users.get(user, {})

    def _load_transaction(self, db, transactional_id):
        row = db.execute("SELECT state, version FROM transactions WHERE transactional_id = ?",
                         (transactional_id,)).fetchone()
        return None if row is None else (json.loads(row[0]), row[1])

    def _save_transaction(self, db, transactional_id, state, expected_version):
        row = db.execute("SELECT version FROM transactions WHERE transactional_id = ?",
                         (transactional_id,)).fetchone()
        version = 0 if row is None else row[0]
        if version != expected_version:
            raise TransactionConflict(f"transaction {transactional_id!r} is at version {version},"
                                      f" not {expected_version}")
        db.execute("INSERT OR REPLACE INTO transactions VALUES (?, ?, ?)", (transactional_id, state, version + 1))
        return version + 1

    def _delete_transaction(self, db, transactional_id, expected_version):
        deleted = db.execute("DELETE FROM transactions WHERE transactional_id = ? AND version = ?",
                             (transactional_id, expected_version))
        return deleted.rowcount == 1

    def _transactions(self, db):
        rows = db.execute("SELECT transactional_id, state, version FROM transactions")
        return {transactional_id: (json.loads(state), version) for transactional_id, state, version in rows}

    def _acls(self, db):
        return [AclBinding.from_json(json.loads(row)) for (row,) in db.execute("SELECT binding FROM acls")]

    def _create_acls(self, db, bindings):
        db.executemany("INSERT OR IGNORE INTO acls VALUES (?)", [(_acl_row(binding),) for binding in bindings])
        self._bump(db, "acls")

    def _delete_acls(self, db, filters):
        stored = self._acls(db)
        matched = [[binding for binding in stored if acl_filter.matches(binding)] for acl_filter in filters]
        doomed = {binding for found in matched for binding in found}
        db.executemany("DELETE FROM acls WHERE binding = ?", [(_acl_row(binding),) for binding in doomed])
        if doomed:
            self._bump(db, "acls")
        return matched

    def _client_quotas(self, db):
        return {_quota_entity(entity): json.loads(values)
                for entity, values in db.execute("SELECT entity, quota_values FROM quotas")}

    def _alter_client_quotas(self, db, alterations):
        for entity, changes in alterations:
            key = json.dumps([list(pair) for pair in entity])
            row = db.execute("SELECT quota_values FROM quotas WHERE entity = ?", (key,)).fetchone()
            values = {} if row is None else json.loads(row[0])
            for name, value in changes.items():
                if value is None:
                    values.pop(name, None)
                else:
                    values[name] = value
            if values:
                db.execute("INSERT OR REPLACE INTO quotas VALUES (?, ?)", (key, json.dumps(values)))
            else:
                db.execute("DELETE FROM quotas WHERE entity = ?", (key,))
        self._bump(db, "quotas")

    def _register_broker(self, db, info, now_ms):
        db.execute(
            "INSERT OR REPLACE INTO brokers VALUES (?, ?, ?, ?, ?, ?)",
            (info.node_id, info.host, info.port, info.rack, info.started_ms, now_ms),
        )
        self._own_brokers.add(info.node_id)
        self._bump(db, "brokers")

    def _deregister_own_brokers(self, db):
        placeholders = ",".join("?" * len(self._own_brokers))
        db.execute(f"DELETE FROM brokers WHERE node_id IN ({placeholders})", tuple(self._own_brokers))
        self._own_brokers.clear()
        self._bump(db, "brokers")

    def _brokers(self, db, now_ms):
        rows = db.execute(
            "SELECT node_id, host, port, rack, started_ms FROM brokers"
            " WHERE heartbeat_ms >= ? ORDER BY node_id",
            (now_ms - BROKER_TTL_MS,),
        )
        return [BrokerInfo(*row) for row in rows]


def _acl_row(binding):
    return json.dumps(binding.to_json(), sort_keys=True)


def _quota_entity(text):
    return tuple(tuple(pair) for pair in json.loads(text))


def _topic_row(info):
    return (info.name, str(info.topic_id), info.partitions, json.dumps(info.configs), info.created_ms,
            info.replication_factor)


def _topic_info(row):
    name, topic_id, partitions, configs, created_ms, replication_factor = row
    return TopicInfo(name, uuid.UUID(topic_id), partitions, json.loads(configs), created_ms, replication_factor)
