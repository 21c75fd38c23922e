import os
import signal
import sqlite3
import sys

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.trial import unittest

import kafscale
from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import MetadataUnavailable, TopicExists
from kafscale.metadata.acls import ResourceType
from tests.support.metadata_contract import (
    NOTIFY_WITHIN,
    MetadataStoreContract,
    acl,
    next_change,
    segment,
    shared_slice,
)
from tests.support.waiting import sleep

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(kafscale.__file__)))

# A short-lived program using the store, as the admin CLI does; the path is argv[1].
PROGRAM = """
import os, signal, sys
from twisted.internet import task
from twisted.internet.defer import Deferred
from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import SegmentRef

async def main(reactor):
    store = EmbeddedMetadataStore(sys.argv[1])
    store.startService()
    try:
%s
    finally:
        await store.stopService()

task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
"""


class _Output(ProcessProtocol):
    def __init__(self):
        self.ended = Deferred()
        self.output = []

    def outReceived(self, data):
        self.output.append(data)

    errReceived = outReceived

    def processEnded(self, reason):
        self.ended.callback((b"".join(self.output).decode(errors="replace"), reason.value))


async def run_program(path, body):
    """Run PROGRAM with ``body`` in a new Python process; -> (output, the
    ProcessDone or ProcessTerminated it ended with)."""
    indented = "\n".join("        " + line for line in body.strip().splitlines())
    protocol = _Output()
    path_entries = [PROJECT_ROOT, os.environ.get("PYTHONPATH")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path_entries)))
    reactor.spawnProcess(protocol, sys.executable, [sys.executable, "-c", PROGRAM % indented, path], env=env)
    return await protocol.ended


class EmbeddedStoreTestCase(unittest.TestCase):
    def setUp(self):
        self.path = os.path.join(self.mktemp(), "metadata.sqlite")

    async def make_store(self, **options):
        store = EmbeddedMetadataStore(self.path, **options)
        store.startService()
        self.addCleanup(lambda: store.stopService() if store.running else None)
        return store


class EmbeddedMetadataStoreContractTests(MetadataStoreContract, EmbeddedStoreTestCase):
    pass


class EmbeddedMetadataStoreTests(EmbeddedStoreTestCase):
    async def test_another_process_creates_a_topic(self):
        store = await self.make_store()
        changed = next_change(store)
        self.assertEqual(await store.topics(), {})
        body = 'await store.create_topic("from-cli", 2, {"retention.ms": "1000"})'
        output, ended = await run_program(self.path, body)
        self.assertEqual(ended.exitCode, 0, output)
        areas = await changed.addTimeout(NOTIFY_WITHIN, reactor)
        self.assertIn("topics", areas)
        info = (await store.topics())["from-cli"]
        self.assertEqual((info.partitions, info.configs), (2, {"retention.ms": "1000"}))

    async def test_commit_survives_the_process_being_killed(self):
        store = await self.make_store()
        await store.create_topic("events", 1)
        body = """
await store.claim_partition("events", 0, 0)
await store.commit_segment("events", 0, 1, 0, SegmentRef(0, 9, 0, 1000, 10, "events/0/segment.kfs"))
os.kill(os.getpid(), signal.SIGKILL)
"""
        output, ended = await run_program(self.path, body)
        self.assertEqual(ended.signal, signal.SIGKILL, output)
        await store.stopService()
        state = await (await self.make_store()).partition_state("events", 0)
        self.assertEqual((state.leader_epoch, state.next_offset), (1, 10))
        self.assertEqual([s.key for s in state.segments], ["events/0/segment.kfs"])

    async def test_commits_are_synced_before_they_return(self):
        # A power cut cannot be staged in a test; what decides whether one
        # rolls a returned commit back is the store connection's sync level.
        store = await self.make_store()
        await store.topics()

        def synchronous():
            return store._connection().execute("PRAGMA synchronous").fetchone()[0]

        self.assertEqual(await store._run(synchronous), 2, "not synchronous=FULL: the WAL is not synced at commit")

    async def test_own_changes_are_not_reported(self):
        store = await self.make_store()
        reported = []
        store.subscribe(reported.append)
        await store.create_topic("events", 1)
        await store.claim_partition("events", 0, 0)
        await store.save_group("readers", {})
        await sleep(3 * store._poll_interval)
        self.assertEqual(reported, [])

    async def test_change_followed_by_own_change_is_reported(self):
        store = await self.make_store()
        other = await self.make_store()
        changed = next_change(store)
        await store.topics()
        await other.create_topic("theirs", 1)
        # Ours bumps the same counter before the next poll can look.
        await store.create_topic("ours", 1)
        areas = await changed.addTimeout(NOTIFY_WITHIN, reactor)
        self.assertEqual(areas, frozenset({"topics", "partitions"}))

    async def test_opening_a_new_file_another_process_holds(self):
        # Another process opening the new file at the same moment holds a
        # lock while the store switches it to WAL; the switch must wait.
        os.makedirs(os.path.dirname(self.path))
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        reactor.callLater(0.2, other.execute, "ROLLBACK")
        store = await self.make_store()
        await store.create_topic("events", 1)
        self.assertEqual(list(await store.topics()), ["events"])

    async def test_store_that_could_not_open_tries_again(self):
        os.makedirs(os.path.dirname(self.path))
        other = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(other.close)
        other.execute("BEGIN IMMEDIATE")
        store = await self.make_store(busy_timeout=0.1)
        with self.assertRaises(MetadataUnavailable):
            await store.topics()
        self.assertEqual(len(self.flushLoggedErrors(MetadataUnavailable)), 1)
        other.execute("ROLLBACK")
        self.assertEqual(await store.topics(), {})

    async def test_locked_database_is_unavailable(self):
        store = await self.make_store(busy_timeout=0.1)
        await store.topics()
        locker = sqlite3.connect(self.path, isolation_level=None)
        self.addCleanup(locker.close)
        self.assertEqual(locker.execute("PRAGMA journal_mode").fetchone(), ("wal",))
        locker.execute("BEGIN IMMEDIATE")
        with self.assertRaises(MetadataUnavailable):
            await store.create_topic("events", 1)
        self.assertEqual(await store.topics(), {})
        locker.execute("ROLLBACK")
        await store.create_topic("events", 1)
        with self.assertRaises(TopicExists):
            await store.create_topic("events", 1)

    async def test_manifest_of_many_segments(self):
        store = await self.make_store()
        await store.create_topic("events", 1)
        await store.claim_partition("events", 0, 0)
        for base in range(0, 300, 3):
            await store.commit_segment("events", 0, 1, base, segment(base, base + 2))
        restarted = await self.make_store()
        state = await restarted.partition_state("events", 0)
        self.assertEqual(len(state.segments), 100)
        self.assertEqual(state.segments, tuple(sorted(state.segments)))
        self.assertEqual(state, await store.partition_state("events", 0))

    async def test_file_of_schema_version_1_is_migrated(self):
        store = await self.make_store()
        await store.create_topic("events", 1, replication_factor=3)
        await store.claim_partition("events", 0, 0)
        await store.commit_segment("events", 0, 1, 0, segment(0, 9))
        await store.stopService()
        # The segments table as the first version of the store wrote it.
        db = sqlite3.connect(self.path, isolation_level=None)
        db.executescript("""
            BEGIN;
            CREATE TABLE old (topic TEXT NOT NULL, partition INTEGER NOT NULL, base_offset INTEGER NOT NULL,
                last_offset INTEGER NOT NULL, max_timestamp INTEGER NOT NULL, size INTEGER NOT NULL,
                count INTEGER NOT NULL, key TEXT NOT NULL, PRIMARY KEY (topic, partition, base_offset))
                WITHOUT ROWID;
            INSERT INTO old SELECT topic, partition, base_offset, last_offset, max_timestamp, size, count, key
                FROM segments;
            DROP TABLE segments;
            ALTER TABLE old RENAME TO segments;
            DROP TABLE scram_credentials;
            DROP TABLE transactions;
            DROP TABLE acls;
            DROP TABLE quotas;
            DELETE FROM changes WHERE area IN ('acls', 'quotas');
            DROP TABLE group_configs;
            DROP TABLE broker_configs;
            DELETE FROM changes WHERE area = 'broker_configs';
            ALTER TABLE topics DROP COLUMN replication_factor;
            PRAGMA user_version=1;
            COMMIT;
        """)
        db.close()
        reopened = await self.make_store()
        state = await reopened.partition_state("events", 0)
        self.assertEqual(state.segments, (segment(0, 9),))
        # Topics of before the replication factor was kept report 1.
        self.assertEqual((await reopened.topics())["events"].replication_factor, 1)
        entry = shared_slice(10, 19, position=400)
        state = await reopened.commit_segment("events", 0, 1, 10, entry)
        self.assertEqual(state.segments, (segment(0, 9), entry))
        await reopened.create_acls([acl(ResourceType.TOPIC, "events")])
        self.assertEqual(await reopened.acls(), [acl(ResourceType.TOPIC, "events")])
        await reopened.alter_group_configs("readers", {"share.auto.offset.reset": "earliest"})
        self.assertEqual(await reopened.group_configs("readers"), {"share.auto.offset.reset": "earliest"})
        await reopened.alter_broker_configs("", {"log.retention.ms": "1000"})
        self.assertEqual(await reopened.broker_configs(), {"": {"log.retention.ms": "1000"}})
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA user_version").fetchone(), (8,))
        self.assertEqual(await reopened.scram_credentials(), {})
        self.assertEqual(await reopened.transactions(), {})

