"""Compaction with real processes: a broker on etcd and a moto bucket,
compacting a keyed topic every few flushes, is killed with SIGKILL again and
again while an idempotent producer updates a few hundred keys. Afterwards
the log holds exactly the latest acknowledged value of every key at the
offset it was acknowledged at, no manifest entry names a missing object,
and ``segments gc`` finds and removes every orphan the kills left."""

from tests.support.brokers import in_thread
from tests.support.clients import NumberedProducer, consume
from tests.support.crashes import KilledBrokerCase
from tests.support.topics import create_topic
from tests.support.waiting import eventually

KEYS = 300


class CompactionCrashTests(KilledBrokerCase):
    """A broker on etcd and moto merging and compacting every few flushes."""

    async def dirty_bytes(self):
        rows = await self.admin_json("topics", "describe", "table")
        return sum(row["dirty_bytes"] for row in rows["partitions"])

    async def test_kill_during_compaction_loses_nothing(self):
        await create_topic(self.broker.bootstrap, "table", partitions=2, **{
            "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01", "segment.ms": "100",
            "delete.retention.ms": "60000"})
        producer = NumberedProducer(self.broker.bootstrap, "table", 2, keys=KEYS, **{"linger.ms": 2}).start()
        self.addCleanup(lambda: in_thread(producer.stop))
        await self.kill_while_producing(producer, 700)
        await eventually(lambda: self.dirty_bytes_are(0), timeout=30, what="compaction caught up")
        await self.check_latest_values(producer)

        await self.assertOnlyOrphansThenCollect()
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
