"""kill -9 of a broker process with a flush under way, its partitions'
batches in one shared object: during the object's upload, and between the
upload and the commit, on the embedded metadata store and on etcd.
Whatever was acknowledged is there exactly once after the restart; the
idempotent producer's unacknowledged records are retried and stored
once."""

import os
import sqlite3
import uuid

from twisted.trial import unittest

from tests.support.brokers import BrokerProcess, in_thread, s3_args
from tests.support.clients import NumberedProducer, consume
from tests.support.etcd_server import etcd_endpoint, missing_reason
from tests.support.faults import TcpProxy
from tests.support.s3_server import s3_server
from tests.support.topics import create_topic
from tests.support.waiting import eventually

PARTITIONS = 4


class CrashTests(unittest.TestCase):
    """On the embedded metadata store."""

    async def metadata_args(self):
        return []

    async def setUp(self):
        server = s3_server()
        self.proxy = TcpProxy("127.0.0.1", server.port)
        await self.proxy.start()
        self.addCleanup(self.proxy.close)
        args = await s3_args(self)
        args[args.index("--s3-endpoint") + 1] = self.proxy.endpoint
        self.broker = BrokerProcess(*args, *await self.metadata_args())
        await in_thread(self.broker.start)
        self.addCleanup(in_thread, self.broker.stop)
        await create_topic(self.broker.bootstrap, "crash", partitions=PARTITIONS)
        self.producer = NumberedProducer(self.broker.bootstrap, "crash", PARTITIONS).start()
        self.addCleanup(in_thread, self.producer.stop)
        await eventually(lambda: len(self.producer.acked) >= 200, timeout=30)

    async def crash_and_recover(self, fault, repair):
        """Apply ``fault`` (flushes stop part way), kill -9 the broker while
        records wait on it, ``repair``, restart; then check every record."""
        await fault()
        sent = self.producer.sent
        # Records sent since the fault wait on a flush that cannot finish.
        await eventually(lambda: self.producer.sent > sent + 50, timeout=30)
        acked = dict(self.producer.acked)
        await in_thread(self.broker.kill)
        await repair()
        await in_thread(self.broker.start)
        await eventually(lambda: len(self.producer.acked) >= len(acked) + 200, timeout=60)
        await in_thread(self.producer.stop)
        self.assertEqual(self.producer.failed, [])
        for value, position in acked.items():
            self.assertEqual(self.producer.acked[value], position, "an acknowledged record moved")

        got = await in_thread(consume, self.broker.bootstrap, "crash", range(PARTITIONS), len(self.producer.acked),
                              timeout=60)
        seen = {m.value(): (m.partition(), m.offset()) for m in got}
        self.assertEqual(len(seen), len(got), "a record was stored twice")
        for value, position in self.producer.acked.items():
            self.assertEqual(seen.get(value), position, value)
        for partition in range(PARTITIONS):
            offsets = sorted(o for p, o in seen.values() if p == partition)
            self.assertEqual(offsets, list(range(len(offsets))), "a gap in the offsets")

    async def test_kill_during_the_upload(self):
        async def stall():
            self.proxy.stall()

        async def unstall():
            self.proxy.unstall()

        await self.crash_and_recover(stall, unstall)

    async def test_kill_between_the_upload_and_the_commit(self):
        await self.crash_and_recover(*self.commits_held())

    def commits_held(self):
        """-> (hold, release): uploads succeed while held, commits cannot land.
        Here another process holds the metadata store's write lock."""
        lock = sqlite3.connect(os.path.join(self.broker.data_dir, "metadata.sqlite"), isolation_level=None,
                               check_same_thread=False)
        self.addCleanup(lock.close)

        async def hold():
            lock.execute("BEGIN IMMEDIATE")

        async def release():
            lock.execute("ROLLBACK")

        return hold, release


class EtcdCrashTests(CrashTests):
    """On etcd, reached through a proxy that can hold its requests."""

    async def metadata_args(self):
        reason = missing_reason("3.5")
        if reason:
            self.skipTest(reason)
        host, port = etcd_endpoint("3.5").removeprefix("http://").rsplit(":", 1)
        self.etcd_proxy = TcpProxy(host, int(port))
        await self.etcd_proxy.start()
        self.addCleanup(self.etcd_proxy.close)
        return ["--etcd", self.etcd_proxy.endpoint, "--cluster-id", f"crash-{uuid.uuid4().hex[:12]}",
                "--lease-ttl", "2"]

    def commits_held(self):
        # Requests to etcd hang half sent: the commit's transaction never
        # arrives whole, and dies with the process.
        async def hold():
            self.etcd_proxy.stall()

        async def release():
            self.etcd_proxy.unstall()

        return hold, release
