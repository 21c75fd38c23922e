"""Compaction with real processes: a broker on etcd and a moto bucket,
compacting a keyed topic every few flushes, is killed with SIGKILL again and
again while an idempotent producer updates a few hundred keys. Afterwards
the log holds exactly the latest acknowledged value of every key at the
offset it was acknowledged at, no manifest entry names a missing object,
and ``segments gc`` finds and removes every orphan the kills left."""

import uuid

from tests.support.admin import AdminCase
from tests.support.brokers import BrokerProcess, in_thread
from tests.support.clients import NumberedProducer, consume
from tests.support.etcd_server import etcd_endpoint, missing_reason
from tests.support.s3_server import s3_server, s3_store
from tests.support.topics import create_topic
from tests.support.waiting import eventually

# Merge and compact at once, every 50 ms, and delete what they replaced
# 100 ms later: a kill at any moment is likely to land in a compaction or
# its deletes.
COMPACTING = ["--merge-delay-ms", "0", "--merge-check-interval-ms", "50", "--merge-delete-delay-ms", "100",
              "--lease-ttl", "2"]
KEYS = 300


class CompactionCrashTests(AdminCase):
    async def setUp(self):
        reason = missing_reason("3.5")
        if reason:
            self.skipTest(reason)
        server = s3_server()
        store = await s3_store(self, server)
        s3 = ["--s3-bucket", store.bucket, "--s3-endpoint", server.endpoint, "--s3-region", "us-east-1"]
        etcd = ["--etcd", etcd_endpoint("3.5"), "--cluster-id", f"compaction-{uuid.uuid4().hex[:12]}"]
        self.env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
        self.broker = BrokerProcess(*etcd, *s3, *COMPACTING, env=self.env)
        self.location = [*etcd, *s3]
        await in_thread(self.broker.start)
        self.addCleanup(lambda: in_thread(self.broker.stop))

    def admin_env(self):
        return self.env

    async def dirty_bytes(self):
        rows = await self.admin_json("topics", "describe", "table")
        return sum(row["dirty_bytes"] for row in rows["partitions"])

    async def test_kill_during_compaction_loses_nothing(self):
        await create_topic(self.broker.bootstrap, "table", partitions=2, **{
            "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01", "segment.ms": "100",
            "delete.retention.ms": "60000"})
        producer = NumberedProducer(self.broker.bootstrap, "table", 2, keys=KEYS, **{"linger.ms": 2}).start()
        self.addCleanup(lambda: in_thread(producer.stop))
        for _ in range(3):
            acked = len(producer.acked)
            await eventually(lambda: len(producer.acked) >= acked + 700, timeout=60, what="records acknowledged")
            await in_thread(self.broker.kill)
            await in_thread(self.broker.start)
        await eventually(lambda: len(producer.acked) >= acked + 1400, timeout=60, what="records after restarts")
        await in_thread(producer.stop)
        self.assertEqual(producer.failed, [])
        await eventually(lambda: self.dirty_bytes_are(0), timeout=30, what="compaction caught up")
        await self.check_latest_values(producer)

        # The broker stopped, nothing can be in flight: every object no
        # manifest names is an orphan of a compaction or a delete that a
        # kill cut short, and gc removes them all.
        await in_thread(self.broker.stop)
        orphans = sorted(o["key"] for o in (await self.admin_json("segments", "gc", "--grace", "0"))["orphans"])
        report = await self.admin_json("segments", "verify", "--grace", "0", exit_code=1 if orphans else 0)
        self.assertEqual(sorted((p["problem"], p["key"]) for p in report["problems"]),
                         [("orphan", key) for key in orphans])
        gc = await self.admin_json("segments", "gc", "--grace", "0", "--execute")
        self.assertEqual(sorted(o["key"] for o in gc["orphans"]), orphans)
        self.assertEqual((await self.admin_json("segments", "verify", "--grace", "0"))["problems"], [])
        await in_thread(self.broker.start)
        await self.check_latest_values(producer)

    async def dirty_bytes_are(self, count):
        return await self.dirty_bytes() == count

    async def check_latest_values(self, producer):
        # The latest acknowledged value of each key, where it was acknowledged.
        newest = {}
        for value, (partition, offset) in producer.acked.items():
            key = b"k%d" % (int(value.split(b"-")[1]) % KEYS)
            if key not in newest or newest[key][1:] < (partition, offset):
                newest[key] = (value, partition, offset)
        got = await in_thread(consume, self.broker.bootstrap, "table", range(2), KEYS, timeout=60)
        found = {}
        for message in got:
            self.assertNotIn(message.key(), found, "a key was kept twice")
            found[message.key()] = (message.value(), message.partition(), message.offset())
        self.assertEqual(found, newest)
