"""Reconciliation on a real embedded metadata store and local object store:
the partitions served follow the topics and the cluster view."""

import os
import tempfile

from twisted.internet import reactor
from twisted.trial.unittest import TestCase

from kafscale.config import BrokerConfig
from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.view import SoleBroker
from kafscale.partition_logs import PartitionLogs
from kafscale.protocol.records import iter_batches
from kafscale.reconciler import Reconciler
from kafscale.storage.cache import SegmentCache
from kafscale.storage.errors import NotOwner
from kafscale.storage.flusher import Flusher, FlushSettings
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.partition_log import BufferBudget
from kafscale.topics import Topics
from tests.support.records import build_batch
from tests.support.waiting import eventually


class SteeredView(SoleBroker):
    """A broker alone whose assignment and health the test sets, standing
    for what a cluster's view would say."""

    elsewhere = frozenset()
    """(topic, partition) pairs assigned to another broker."""
    healthy_now = True
    acquiring = 0
    most_acquiring = 0

    async def acquire(self, topic, partition):
        self.acquiring += 1
        self.most_acquiring = max(self.most_acquiring, self.acquiring)
        try:
            return await super().acquire(topic, partition)
        finally:
            self.acquiring -= 1

    def assignee(self, topic, partition):
        return self.node_id + 1 if (topic, partition) in self.elsewhere else self.node_id

    def healthy(self):
        return self.healthy_now


class ReconcilerTests(TestCase):
    async def setUp(self):
        directory = tempfile.mkdtemp(prefix="kafscale-reconciler-")
        self.store = EmbeddedMetadataStore(os.path.join(directory, "metadata.sqlite"))
        self.store.startService()
        self.addCleanup(self.store.stopService)
        objects = LocalObjectStore(os.path.join(directory, "objects"))
        self.addCleanup(objects.close)
        cache = SegmentCache(1 << 20)
        self.view = SteeredView(self.store, 0, "127.0.0.1", 9092)
        self.topics = Topics(self.store, objects, cache, default_partitions=1)
        flusher = Flusher(node_id=0, objects=objects, metadata=self.store, settings=FlushSettings(), reactor=reactor)
        self.logs = PartitionLogs(self.topics, self.view, metadata=self.store, objects=objects, cache=cache,
                                  budget=BufferBudget(1 << 20), flusher=flusher, config=BrokerConfig(),
                                  reactor=reactor)
        self.reconciler = Reconciler(self.topics, self.logs, self.view)
        await self.store.create_topic("before", 2)
        await self.topics.load()
        await self.reconciler.start()
        self.addCleanup(self.reconciler.hand_over_all)
        self.addCleanup(self.reconciler.stop)
        self.addCleanup(self.topics.stop)

    def epochs(self):
        return {key: partition_log.leader_epoch for key, partition_log in self.logs.items()}

    async def test_takes_every_partition_and_follows_the_topics(self):
        self.assertEqual(self.epochs(), {("before", 0): 1, ("before", 1): 1})
        await self.topics.create("added", 1, {})
        self.assertEqual(self.epochs()[("added", 0)], 1)
        await self.topics.add_partitions("added", 2)
        self.assertEqual(self.epochs()[("added", 1)], 1)
        gone = self.logs["before", 0]
        await self.topics.delete("before")
        self.assertEqual(sorted(self.logs), [("added", 0), ("added", 1)])
        self.assertTrue(gone.closed)
        await self.topics.create("before", 1, {})
        self.assertEqual(self.logs["before", 0].topic_id, self.topics["before"].topic_id)

    async def test_a_deposed_log_is_taken_again_at_a_new_epoch(self):
        deposed = self.logs["before", 0]
        # Another writer (a broker that thought itself alone) claims it.
        await self.store.claim_partition("before", 0, 1)
        blob = build_batch([(None, b"late", [])])
        with self.assertRaises(NotOwner):
            await deposed.append(blob, list(iter_batches(blob)))
        await eventually(lambda: self.epochs().get(("before", 0)) == 3, what="taken again at epoch 3")
        self.assertTrue(deposed.closed)

    async def test_hands_over_what_is_assigned_elsewhere(self):
        kept = self.logs["before", 0]
        self.view.elsewhere = frozenset({("before", 1)})
        leaving = self.logs["before", 1]
        await self.reconciler.run()
        self.assertEqual(list(self.logs), [("before", 0)])
        self.assertIs(self.logs["before", 0], kept)
        self.assertTrue(leaving.closed)

    async def test_unhealthy_takes_nothing_and_keeps_what_it_has(self):
        self.view.healthy_now = False
        self.view.elsewhere = frozenset({("before", 1)})
        await self.topics.create("meanwhile", 1, {})
        self.assertEqual(sorted(self.logs), [("before", 0), ("before", 1)])
        self.view.healthy_now = True
        await self.reconciler.run()
        self.assertEqual(sorted(self.logs), [("before", 0), ("meanwhile", 0)])

    async def test_a_topic_change_reconciles_that_topic_alone(self):
        # A full reconciliation would hand before-1 over now.
        self.view.elsewhere = frozenset({("before", 1)})
        await self.topics.create("added", 1, {})
        self.assertEqual(sorted(self.logs), [("added", 0), ("before", 0), ("before", 1)])
        await self.reconciler.run()
        self.assertEqual(sorted(self.logs), [("added", 0), ("before", 0)])

    async def test_a_large_topic_changes_hands_a_turn_at_a_time(self):
        from kafscale.reconciler import PARTITIONS_PER_TURN

        await self.topics.create("wide", 2 * PARTITIONS_PER_TURN + 10, {})
        self.assertEqual(sum(1 for name, _ in self.logs if name == "wide"), 2 * PARTITIONS_PER_TURN + 10)
        self.assertLessEqual(self.view.most_acquiring, PARTITIONS_PER_TURN)

    async def test_handing_over_flushes_first(self):
        blob = build_batch([(None, b"accepted", [])])
        appended = self.logs["before", 0].append(blob, list(iter_batches(blob)))
        await self.reconciler.stop()
        await self.reconciler.hand_over_all()
        self.assertEqual(len(self.logs), 0)
        self.assertEqual(await appended, 0)
        self.assertEqual((await self.store.partition_state("before", 0)).next_offset, 1)
