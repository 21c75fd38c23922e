"""``kafscale-admin topics`` through click's CliRunner, on the stores of a
running broker: the embedded store with a local directory, and moto S3.
"""

from kafscale.storage.segment import topic_prefix
from tests.support.admin import AdminCase, EtcdStores, S3Stores
from tests.support.brokers import in_thread
from tests.support.clients import produce
from tests.support.topics import create_topic, produce_segments
from tests.support.waiting import eventually


class TopicsContract:
    async def test_create_list_and_produce(self):
        result = await self.admin("topics", "create", "orders", "--partitions", "3", "--config", "retention.ms=60000")
        self.assertIn("created topic orders with 3 partitions", result.stdout)
        # The broker notices the store's change and claims the partitions.
        await eventually(lambda: len([key for key in self.broker.logs if key[0] == "orders"]) == 3,
                         what="the broker claims orders")
        acks = await in_thread(produce, self.bootstrap, "orders", [(b"k", b"v", None, 2)])
        self.assertEqual(acks, [(2, 0)])

        listed = await self.admin_json("topics", "list")
        self.assertEqual([(t["name"], t["partitions"], t["configs"]) for t in listed],
                         [("orders", 3, {"retention.ms": "60000"})])
        self.assertEqual(listed[0]["topic_id"], str(self.broker.topics["orders"].topic_id))
        table = (await self.admin("topics", "list")).stdout
        self.assertRegex(table, r"│ orders +│ +3 │ [0-9a-f-]{36} │ retention\.ms=60000 │ 20\d\d-")

    async def test_describe(self):
        await create_topic(self.bootstrap, "described", 2)
        await in_thread(produce_segments, self.bootstrap, "described", [[(b"a", 0), (b"b", 0)], [(b"c", 0)]])
        document = await self.admin_json("topics", "describe", "described")
        self.assertEqual(document["topic_id"], str(self.broker.topics["described"].topic_id))
        first, second = document["partitions"]
        log = self.broker.logs["described", 0]
        self.assertEqual(first, {
            "partition": 0, "owner": self.broker.view.node_id, "leader_epoch": log.leader_epoch, "log_start_offset": 0,
            "high_watermark": 3, "segments": 2, "bytes": sum(s.size for s in log.state.segments),
        })
        self.assertEqual((second["high_watermark"], second["segments"], second["bytes"]), (0, 0, 0))
        table = (await self.admin("topics", "describe", "described")).stdout
        self.assertIn("configs: defaults", table)
        self.assertRegex(table, rf"│ +0 │ +{self.broker.view.node_id} │ +{log.leader_epoch} │ +0 │ +3 │ +2 │ +\d+ │")
        await self.refused("topics", "describe", "nowhere", says="no topic 'nowhere'")

    async def test_alter_config(self):
        await create_topic(self.bootstrap, "tuned", **{"retention.ms": "60000"})
        result = await self.admin("topics", "alter-config", "tuned", "--set", "retention.bytes=1048576",
                                  "--set", "segment.bytes=65536", "--delete", "retention.ms")
        self.assertIn("topic tuned configs: retention.bytes=1048576, segment.bytes=65536", result.stdout)
        await eventually(lambda: self.broker.topics["tuned"].configs == {"retention.bytes": "1048576",
                                                                          "segment.bytes": "65536"},
                         what="the broker sees the new configs")
        await self.refused("topics", "alter-config", "tuned", "--set", "cleanup.policy=shred",
                           says="cleanup.policy: 'shred' is not a list of distinct cleanup policies")
        await self.refused("topics", "alter-config", "tuned", "--delete", "no.such", says="unknown topic config")
        await self.refused("topics", "alter-config", "missing", "--set", "retention.ms=1", says="no topic 'missing'")
        usage = await self.admin("topics", "alter-config", "tuned", "--set", "retention.ms", exit_code=2)
        self.assertIn("'retention.ms' is not NAME=VALUE", usage.stderr)
        self.assertEqual((await self.broker.metadata.topics())["tuned"].configs,
                         {"retention.bytes": "1048576", "segment.bytes": "65536"})

    async def test_add_partitions(self):
        await create_topic(self.bootstrap, "growing")
        result = await self.admin("topics", "add-partitions", "growing", "--total", "4")
        self.assertIn("topic growing now has 4 partitions", result.stdout)
        await eventually(lambda: ("growing", 3) in self.broker.logs, what="the broker claims growing-3")
        await self.refused("topics", "add-partitions", "growing", "--total", "2",
                           says="topic growing has 4 partitions: --total must be more")
        await self.refused("topics", "add-partitions", "missing", "--total", "2", says="no topic 'missing'")

    async def test_delete_removes_the_objects(self):
        await create_topic(self.bootstrap, "doomed")
        await in_thread(produce_segments, self.bootstrap, "doomed", [[(b"x", 0)], [(b"y", 0)]])
        prefix = topic_prefix("doomed", self.broker.topics["doomed"].topic_id)
        # Format-1 segments (as brokers wrote them before shared objects) go
        # with the topic; shared objects are garbage collection's.
        for base in (0, 1):
            await self.broker.objects.put(f"{prefix}0/segment-{base:020d}-1-0.kfs", b"old")
        result = await self.admin("topics", "delete", "doomed")
        self.assertIn("deleted topic doomed and its 2 objects", result.stdout)
        self.assertEqual(await self.broker.objects.list(prefix), [])
        await eventually(lambda: "doomed" not in self.broker.topics, what="the broker forgets doomed")
        self.assertNotIn(("doomed", 0), self.broker.logs)
        await self.refused("topics", "delete", "doomed", says="no topic 'doomed'")

    async def test_create_refusals(self):
        await create_topic(self.bootstrap, "taken")
        await self.refused("topics", "create", "taken", says="topic 'taken' already exists")
        await self.refused("topics", "create", "bad/name", says="has characters other than")
        await self.refused("topics", "create", "compacted", "-c", "cleanup.policy=shred",
                           says="is not a list of distinct cleanup policies")
        usage = await self.admin("topics", "create", "zero", "--partitions", "0", exit_code=2)
        self.assertIn("--partitions", usage.stderr)
        self.assertEqual(sorted(await self.broker.metadata.topics()), ["taken"])


class EmbeddedTopicsTests(TopicsContract, AdminCase):
    async def test_a_wrong_data_dir_is_one_line(self):
        self.location = ["--data-dir", self.mktemp()]
        await self.refused("topics", "list", says="no metadata store at")


class S3TopicsTests(TopicsContract, S3Stores, AdminCase):
    pass


class EtcdTopicsTests(TopicsContract, EtcdStores, AdminCase):
    pass
