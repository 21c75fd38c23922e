"""Topics on a real embedded metadata store and local object store: every
change validated in one place and refused with a domain error, and the
subscribers (the broker's reconciliation) run before a change returns."""

import os
import tempfile

from twisted.trial.unittest import TestCase

from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import InvalidPartitions, TopicExists, UnknownTopic
from kafscale.metadata.topic_configs import InvalidConfig, InvalidTopicName
from kafscale.storage.cache import SegmentCache
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.segment import topic_prefix
from kafscale.topics import InvalidReplicationFactor, InvalidTopicRequest, ReplicaAssignmentRefused, Topics
from tests.support.waiting import eventually


class TopicsTests(TestCase):
    async def setUp(self):
        directory = tempfile.mkdtemp(prefix="kafscale-topics-")
        self.path = os.path.join(directory, "metadata.sqlite")
        self.store = self.start_store()
        self.objects = LocalObjectStore(os.path.join(directory, "objects"))
        self.addCleanup(self.objects.close)
        self.topics = Topics(self.store, self.objects, SegmentCache(1 << 20), default_partitions=3)
        self.addCleanup(self.topics.stop)
        await self.topics.load()
        self.seen_by_subscriber = []
        self.scopes = []
        self.topics.subscribe(lambda names: (self.seen_by_subscriber.append(dict(self.topics)),
                                             self.scopes.append(names)))

    def start_store(self):
        store = EmbeddedMetadataStore(self.path)
        store.startService()
        self.addCleanup(store.stopService)
        return store

    async def assertRefused(self, kind, message, change):
        with self.assertRaises(kind) as raised:
            await change
        self.assertIn(message, str(raised.exception))

    async def test_create_then_the_subscribers_run(self):
        info = await self.topics.create("orders", -1, {"retention.ms": "60000"})
        self.assertEqual((info.partitions, info.configs), (3, {"retention.ms": "60000"}))
        self.assertEqual((self.topics["orders"], self.topics.by_id(info.topic_id)), (info, info))
        self.assertEqual(self.seen_by_subscriber, [{"orders": info}])
        self.assertEqual(await self.store.topics(), {"orders": info})

    async def test_a_write_takes_up_its_topic_without_reading_them_all(self):
        await self.store.create_topic("present", 1)
        await self.topics.refresh()
        reads = []
        read_all = self.store.topics
        self.patch(self.store, "topics", lambda: reads.append(1) or read_all())
        for name in ("a", "b"):
            await self.topics.create(name, 1, {})
        await self.topics.add_partitions("a", 2)
        await self.topics.delete("b")
        self.assertEqual(reads, [])
        self.assertEqual(self.scopes, [None, {"a"}, {"b"}, {"a"}, {"b"}])
        self.assertEqual(dict(self.topics), await read_all())

    async def test_create_refusals_in_order(self):
        await self.topics.create("taken", 1, {})
        cases = [
            (InvalidTopicName, "illegal", self.topics.create(".", 0, {"x": "y"}, replication_factor=0)),
            (InvalidTopicRequest, "must be -1", self.topics.create("fine", 2, {}, assignments=[[0]])),
            (ReplicaAssignmentRefused, "not live: [7]",
             self.topics.create("fine", -1, {}, replication_factor=-1, assignments=[[0], [7]],
                                live_brokers={0})),
            (ReplicaAssignmentRefused, "as many replicas",
             self.topics.create("fine", -1, {}, assignments=[[0], [0, 1]], live_brokers={0, 1})),
            (ReplicaAssignmentRefused, "more than once",
             self.topics.create("fine", -1, {}, assignments=[[0, 0]], live_brokers={0})),
            (InvalidReplicationFactor, "at least 1", self.topics.create("fine", 1, {}, replication_factor=0)),
            (InvalidReplicationFactor, "at least 1", self.topics.create("fine", 1, {}, replication_factor=-2)),
            (InvalidTopicName, "characters other than", self.topics.create("a b", 1, {})),
            (InvalidPartitions, "at least 1", self.topics.create("fine", 0, {"x": "y"})),
            (InvalidConfig, "cleanup.policy", self.topics.create("fine", 1, {"cleanup.policy": "shred"})),
            (TopicExists, "topic 'taken' already exists", self.topics.create("taken", 1, {})),
        ]
        for kind, message, change in cases:
            await self.assertRefused(kind, message, change)
        self.assertEqual(list(await self.store.topics()), ["taken"])

    async def test_replication_factor_is_kept_whatever_the_brokers(self):
        three = await self.topics.create("connect-configs", 1, {}, replication_factor=3)
        self.assertEqual(three.replication_factor, 3)
        self.assertEqual(self.topics["connect-configs"].replication_factor, 3)
        self.assertEqual((await self.topics.create("defaulted", 1, {})).replication_factor, 1)
        # An assignment naming live brokers gives the counts; placement stays the brokers'.
        assigned = await self.topics.create("assigned", -1, {}, assignments=[[0, 1], [1, 0]], live_brokers={0, 1})
        self.assertEqual((assigned.partitions, assigned.replication_factor), (2, 2))
        self.assertEqual((await self.store.topics())["assigned"], assigned)

    async def test_validate_only_writes_nothing(self):
        self.assertIsNone(await self.topics.create("dry", 5, {}, replication_factor=1, validate_only=True))
        await self.topics.create("growing", 1, {})
        self.assertIsNone(await self.topics.add_partitions("growing", 4, validate_only=True))
        self.assertIsNone(await self.topics.alter_configs("growing", {"retention.ms": "1"}, [], validate_only=True))
        self.assertEqual(await self.store.topics(), {"growing": self.topics["growing"]})
        self.assertEqual((self.topics["growing"].partitions, self.topics["growing"].configs), (1, {}))

    async def test_add_partitions(self):
        await self.topics.create("growing", 2, {})
        await self.assertRefused(UnknownTopic, "no topic 'nope'", self.topics.add_partitions("nope", 3))
        await self.assertRefused(ReplicaAssignmentRefused, "2 replica lists for 1 new partitions",
                                 self.topics.add_partitions("growing", 3, assignments=[[0], [0]], live_brokers={0}))
        await self.assertRefused(ReplicaAssignmentRefused, "not live: [4]",
                                 self.topics.add_partitions("growing", 3, assignments=[[4]], live_brokers={0}))
        self.assertEqual(self.topics["growing"].partitions, 2)
        await self.assertRefused(InvalidPartitions, "has 2 partitions: it can grow, not go to 2",
                                 self.topics.add_partitions("growing", 2))
        await self.topics.add_partitions("growing", 3, assignments=[[0]], live_brokers={0})
        info = await self.topics.add_partitions("growing", 5)
        self.assertEqual((info.partitions, self.topics["growing"].partitions), (5, 5))
        self.assertEqual(self.seen_by_subscriber[-1]["growing"].partitions, 5)

    async def test_alter_configs(self):
        await self.topics.create("tuned", 1, {"retention.ms": "1000", "segment.bytes": "4096"})
        await self.assertRefused(UnknownTopic, "no topic 'nope'", self.topics.alter_configs("nope", {}, []))
        await self.assertRefused(InvalidConfig, "whole number",
                                 self.topics.alter_configs("tuned", {"retention.ms": "soon"}, []))
        await self.topics.alter_configs("tuned", {"retention.bytes": "2048"}, ["retention.ms"])
        self.assertEqual(self.topics["tuned"].configs, {"segment.bytes": "4096", "retention.bytes": "2048"})

    async def test_delete_removes_the_objects_in_the_background(self):
        info = await self.topics.create("doomed", 1, {})
        key = topic_prefix("doomed", info.topic_id) + "0/segment.kfs"
        await self.objects.put(key, b"data")
        self.assertEqual(await self.topics.delete("doomed"), info)
        self.assertNotIn("doomed", self.topics)
        await eventually(lambda: self.objects.list(topic_prefix("doomed", info.topic_id)).addCallback(
            lambda items: items == []), what="the topic's objects gone")
        await self.assertRefused(UnknownTopic, "no topic 'doomed'", self.topics.delete("doomed"))

    async def test_created_automatically_or_by_someone_else(self):
        made = await self.topics.create_automatically("on-demand")
        self.assertEqual((made.partitions, made.configs), (3, {}))
        # Another writer of the store (a second broker, kafscale-admin) got
        # there first: its topic will do.
        theirs = await self.start_store().create_topic("theirs", 7)
        self.assertEqual(await self.topics.create_automatically("theirs"), theirs)

    async def test_follows_the_store(self):
        other = self.start_store()
        created = await other.create_topic("from-elsewhere", 2)
        await eventually(lambda: self.topics.get("from-elsewhere") == created, what="the topic loaded")
        await eventually(lambda: self.seen_by_subscriber and "from-elsewhere" in self.seen_by_subscriber[-1],
                         what="the subscribers told")
