"""``kafscale-admin brokers`` and ``kafscale-admin cluster`` beside a running
broker, and after it stops."""

import os

from kafscale.metadata.embedded import EmbeddedMetadataStore
from tests.support.admin import AdminCase, EtcdStores, S3Stores
from tests.support.brokers import free_port, in_thread, start_broker
from tests.support.groups import FAST_REBALANCES, consume_in_group
from tests.support.topics import create_topic, produce_segments
from tests.support.waiting import eventually


class ClusterContract:
    broker_args = ("--node-id", "7", "--rack", "rack-a", *FAST_REBALANCES)

    async def test_brokers_list(self):
        await create_topic(self.bootstrap, "owned", 3)
        port = int(self.bootstrap.rpartition(":")[2])
        [row] = await self.admin_json("brokers", "list")
        self.assertEqual((row["node_id"], row["host"], row["port"], row["rack"], row["partitions"]),
                         (7, "127.0.0.1", port, "rack-a", 3))
        self.assertGreaterEqual(row["uptime_s"], 0)
        table = (await self.admin("brokers", "list")).stdout
        self.assertRegex(table, rf"│ +7 │ 127\.0\.0\.1 │ +{port} │ rack-a │ 20\d\d-[^│]+│ [0-9dhms ]+│ +3 │")

    async def test_status(self):
        await create_topic(self.bootstrap, "one", 2)
        await in_thread(produce_segments, self.bootstrap, "one", [[(b"x", 0)]])
        await in_thread(consume_in_group, self.bootstrap, "readers", "one", 1)
        report = await self.admin_json("cluster", "status")
        self.assertEqual((report["metadata_reachable"], report["object_store_reachable"]), (True, True))
        self.assertEqual((report["brokers"], report["topics"], report["partitions"], report["groups"]), (1, 1, 2, 1))
        table = (await self.admin("cluster", "status")).stdout
        self.assertRegex(table, r"│ metadata store │ [^│]+: reachable +│")
        self.assertRegex(table, r"│ object store +│ [^│]+: reachable +│")
        self.assertRegex(table, r"│ partitions +│ 2 +│")



class EmbeddedClusterTests(ClusterContract, AdminCase):
    async def test_without_a_broker(self):
        data_dir = self.mktemp()
        store = EmbeddedMetadataStore(os.path.join(data_dir, "metadata.sqlite"))
        store.startService()
        await store.create_topic("kept", 1)
        await store.stopService()
        self.location = ["--data-dir", data_dir]
        self.assertIn("no live brokers", (await self.admin("brokers", "list")).stdout)
        report = await self.admin_json("cluster", "status")
        self.assertEqual((report["brokers"], report["topics"], report["partitions"]), (0, 1, 1))
        self.assertEqual((await self.admin_json("topics", "describe", "kept"))["partitions"][0]["owner"], None)


class S3ClusterTests(ClusterContract, S3Stores, AdminCase):
    async def test_an_unreachable_bucket(self):
        self.location[self.location.index("--s3-endpoint") + 1] = f"http://127.0.0.1:{free_port()}"
        result = await self.admin("cluster", "status", "--output", "json", exit_code=1)
        self.assertIn('"object_store_reachable": false', result.stdout)
        self.assertIn('"metadata_reachable": true', result.stdout)
        await self.refused("segments", "gc", says="object store: ")


class EtcdClusterTests(ClusterContract, EtcdStores, AdminCase):
    pass


class TwoBrokerClusterTests(EtcdStores, AdminCase):
    async def test_owners_come_from_the_owner_keys(self):
        other, _ = await start_broker(self, *self.etcd, *self.s3)
        await create_topic(self.bootstrap, "spread", 16)

        def owned(broker):
            return {p for (topic, p), log in broker.logs.items() if topic == "spread" and not log.closed}

        await eventually(lambda: len(owned(self.broker)) + len(owned(other)) == 16 and not owned(self.broker) & owned(other),
                         timeout=20, what="the partitions spread over both brokers")
        rows = await self.admin_json("brokers", "list")
        self.assertEqual({row["node_id"]: row["partitions"] for row in rows},
                         {self.broker.view.node_id: len(owned(self.broker)), other.view.node_id: len(owned(other))})
        described = await self.admin_json("topics", "describe", "spread")
        self.assertEqual({p["partition"]: p["owner"] for p in described["partitions"]},
                         {**{p: self.broker.view.node_id for p in owned(self.broker)},
                          **{p: other.view.node_id for p in owned(other)}})
