"""Background merging with real processes: a broker on etcd and a moto
bucket merging every few flushes is killed with SIGKILL again and again
while an idempotent producer writes and the broker merges and deletes. No
acknowledged record is lost or stored twice, no manifest entry names a
missing object, and ``segments gc`` finds and removes every orphan. A
running broker's own collector deletes every shared flush object once
merges replaced its slices, while producers write."""

import uuid

from tests.support.admin import AdminCase
from tests.support.brokers import BrokerProcess, in_thread
from tests.support.clients import NumberedProducer, consume
from tests.support.etcd_server import etcd_endpoint, missing_reason
from tests.support.s3_server import s3_server, s3_store
from tests.support.topics import create_topic
from tests.support.waiting import eventually

# Merge at once, every 50 ms, and delete what a merge replaced 100 ms
# later: a kill at any moment is likely to land in a merge or its deletes.
MERGING = ["--merge-delay-ms", "0", "--merge-check-interval-ms", "50", "--merge-delete-delay-ms", "100",
           "--lease-ttl", "2"]


class MergingBroker(AdminCase):
    """A broker on etcd and moto started with ``options``."""

    options = MERGING

    async def setUp(self):
        reason = missing_reason("3.5")
        if reason:
            self.skipTest(reason)
        server = s3_server()
        store = self.s3 = await s3_store(self, server)
        s3 = ["--s3-bucket", store.bucket, "--s3-endpoint", server.endpoint, "--s3-region", "us-east-1"]
        etcd = ["--etcd", etcd_endpoint("3.5"), "--cluster-id", f"merge-{uuid.uuid4().hex[:12]}"]
        self.env = {"AWS_ACCESS_KEY_ID": server.access_key, "AWS_SECRET_ACCESS_KEY": server.secret_key}
        self.broker = BrokerProcess(*etcd, *s3, *self.options, env=self.env)
        self.location = [*etcd, *s3]
        await in_thread(self.broker.start)
        self.addCleanup(lambda: in_thread(self.broker.stop))

    def admin_env(self):
        return self.env

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
        for _ in range(3):
            acked = len(producer.acked)
            await eventually(lambda: len(producer.acked) >= acked + 400, timeout=60, what="records acknowledged")
            await in_thread(self.broker.kill)
            await in_thread(self.broker.start)
        await eventually(lambda: len(producer.acked) >= acked + 800, timeout=60, what="records after restarts")
        await in_thread(producer.stop)
        self.assertEqual(producer.failed, [])
        # Merging caught up: the manifests list a few segments, not a flush each.
        await eventually(lambda: self.merged_to_at_most(3), timeout=30, what="merges caught up")
        await self.check_every_record(producer)

        # The broker stopped, nothing can be in flight: every object no
        # manifest names is an orphan (of a merge or a delete that a kill
        # cut short), and gc removes them all.
        await in_thread(self.broker.stop)
        orphans = sorted(o["key"] for o in (await self.admin_json("segments", "gc", "--grace", "0"))["orphans"])
        report = await self.admin_json("segments", "verify", "--grace", "0", exit_code=1 if orphans else 0)
        # Nothing missing or damaged: only orphans.
        self.assertEqual(sorted((p["problem"], p["key"]) for p in report["problems"]),
                         [("orphan", key) for key in orphans])
        gc = await self.admin_json("segments", "gc", "--grace", "0", "--execute")
        self.assertEqual(sorted(o["key"] for o in gc["orphans"]), orphans)
        self.assertEqual((await self.admin_json("segments", "verify", "--grace", "0"))["problems"], [])
        await in_thread(self.broker.start)
        await self.check_every_record(producer)


class SharedObjectCollectionTests(MergingBroker):
    # Merging as above, and the collector every 200 ms for objects older
    # than 2 s: far longer than an upload and its commit take here.
    options = [*MERGING, "--gc-interval-ms", "200", "--gc-grace-ms", "2000"]

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
