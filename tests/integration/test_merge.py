"""Background merging with real processes: a broker on etcd and a moto
bucket merging every few flushes is killed with SIGKILL again and again
while an idempotent producer writes and the broker merges and deletes. No
acknowledged record is lost or stored twice, no manifest entry names a
missing object, and ``segments gc`` finds and removes every orphan. A
running broker's own collector deletes every shared flush object once
merges replaced its slices, while producers write."""

from tests.support.brokers import in_thread
from tests.support.clients import NumberedProducer, consume
from tests.support.crashes import REWRITING, KilledBrokerCase
from tests.support.topics import create_topic
from tests.support.waiting import eventually


class MergingBroker(KilledBrokerCase):
    """A broker on etcd and moto merging every few flushes."""

    async def manifest_sizes(self):
        rows = await self.admin_json("topics", "describe", "merged")
        return [row["segments"] for row in rows["partitions"]]

    async def merged_to_at_most(self, count):
        return all(size <= count for size in await self.manifest_sizes())

    async def check_every_record(self, producer):
        got = await in_thread(consume, self.broker.bootstrap, "merged", range(2), len(producer.acked), timeout=60)
        seen = {m.value(): (m.partition(), m.offset()) for m in got}
        self.assertEqual(len(seen), len(got), "a record was stored twice")
        for value, position in producer.acked.items():
            self.assertEqual(seen.get(value), position, value)


class MergeCrashTests(MergingBroker):
    async def test_kill_during_merges_and_deletes_loses_nothing(self):
        await create_topic(self.broker.bootstrap, "merged", partitions=2)
        producer = NumberedProducer(self.broker.bootstrap, "merged", 2, **{"linger.ms": 2}).start()
        self.addCleanup(lambda: in_thread(producer.stop))
        await self.kill_while_producing(producer, 400)
        # Merging caught up: the manifests list a few segments, not a flush each.
        await eventually(lambda: self.merged_to_at_most(3), timeout=30, what="merges caught up")
        await self.check_every_record(producer)

        await self.assertOnlyOrphansThenCollect()
        await self.check_every_record(producer)


class SharedObjectCollectionTests(MergingBroker):
    # Merging as above, and the collector every 200 ms for objects older
    # than 2 s: far longer than an upload and its commit take here.
    options = [*REWRITING, "--gc-interval-ms", "200", "--gc-grace-ms", "2000"]

    async def shared_objects(self):
        return [item.key for item in await self.s3.list("~objects/")]

    async def test_shared_objects_go_once_merged_while_producers_write(self):
        await create_topic(self.broker.bootstrap, "merged", partitions=2)
        producer = NumberedProducer(self.broker.bootstrap, "merged", 2, **{"linger.ms": 2}).start()
        self.addCleanup(lambda: in_thread(producer.stop))
        await eventually(lambda: len(producer.acked) >= 1500, timeout=60, what="records acknowledged")
        await in_thread(producer.stop)
        self.assertEqual(producer.failed, [])
        await eventually(lambda: self.merged_to_at_most(3), timeout=30, what="merges caught up")
        # Every flush's object went, though the collector ran all along.
        await eventually(lambda: self.no_shared_objects(), timeout=30, what="shared objects collected")
        await self.check_every_record(producer)
        self.assertEqual((await self.admin_json("segments", "verify", "--grace", "0"))["problems"], [])

    async def no_shared_objects(self):
        return await self.shared_objects() == []
