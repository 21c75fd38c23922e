"""Collecting shared flush objects: two partitions of a real local object
store and the embedded metadata store share each flush's object; the
collector deletes an object only once neither names it."""

import os
import tempfile

from twisted.internet import reactor, task
from twisted.internet.defer import gatherResults
from twisted.trial import unittest

from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.storage.cache import SegmentCache
from kafscale.storage.flusher import Flusher, FlushSettings
from kafscale.storage.gc import CollectorSettings, SharedObjectCollector
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.merge import MergeService, MergeSettings
from kafscale.storage.object_format import OBJECTS_PREFIX
from kafscale.storage.partition_log import BufferBudget, LogSettings, PartitionLog
from kafscale.storage.retention import drop_segments_below
from tests.support.holders import RecordingHolder
from tests.support.records import build_batch
from kafscale.protocol.records import iter_batches


class View:
    """The two facts of an IClusterView the collector asks."""

    def __init__(self, node_id, controller_id):
        self.node_id = node_id
        self._controller = controller_id

    def controller_id(self):
        return self._controller


class SharedObjectCollectorTests(unittest.TestCase):
    async def setUp(self):
        directory = tempfile.mkdtemp(prefix="kafscale-gc-")
        self.store = EmbeddedMetadataStore(os.path.join(directory, "metadata.sqlite"))
        self.store.startService()
        self.addCleanup(self.store.stopService)
        self.objects = LocalObjectStore(os.path.join(directory, "objects"))
        self.addCleanup(self.objects.close)
        topic = await self.store.create_topic("t", 2)
        flusher = Flusher(node_id=0, objects=self.objects, metadata=self.store, settings=FlushSettings(),
                          reactor=reactor)
        self.logs = {}
        for partition in (0, 1):
            state = await self.store.claim_partition("t", partition, 0)
            self.logs["t", partition] = PartitionLog(
                state, topic_id=topic.topic_id, metadata=self.store, objects=self.objects,
                cache=SegmentCache(64 << 20), budget=BufferBudget(64 << 20),
                settings=LogSettings(segment_bytes=1 << 20), reactor=reactor, holder=RecordingHolder(),
                flusher=flusher)
        self.clock = task.Clock()

    def collector(self, grace_ms=0, view=View(1, 1)):
        # The collector's clock is at least the real time the objects were written.
        self.clock.advance(max(0.0, reactor.seconds() - self.clock.seconds()))
        return SharedObjectCollector(self.objects, self.store, view, CollectorSettings(grace_ms=grace_ms),
                                     clock=self.clock)

    async def append_to_both(self, rounds):
        for number in range(rounds):
            blob = build_batch([(None, b"record %d" % number, [])])
            # Appended together, both partitions go into one flush's object.
            await gatherResults([log.append(blob, list(iter_batches(blob))) for log in self.logs.values()])

    async def shared_objects(self):
        return sorted(item.key for item in await self.objects.list(OBJECTS_PREFIX))

    async def merge(self, partition):
        service = MergeService({("t", partition): self.logs["t", partition]}, MergeSettings(
            delay_ms=0, check_interval_ms=3_600_000, delete_delay_ms=0), clock=reactor)
        service.startService()
        try:
            await service.run_once()
        finally:
            await service.stopService()

    async def test_an_object_goes_once_no_partition_names_it(self):
        await self.append_to_both(3)
        written = await self.shared_objects()
        self.assertEqual(len(written), 3)
        for partition in (0, 1):
            self.assertEqual({ref.key for ref in self.logs["t", partition].state.segments}, set(written))
        # Partition 0's slices are merged away; partition 1 still reads them.
        await self.merge(0)
        self.assertEqual(await self.collector().collect(), [])
        self.assertEqual(await self.shared_objects(), written)
        await self.merge(1)
        self.assertEqual(sorted(await self.collector().collect()), written)
        self.assertEqual(await self.shared_objects(), [])
        # Every record is still there, in the merged segments.
        for log in self.logs.values():
            self.assertEqual([batch.base_offset for batch in iter_batches(await log.read(0, 1 << 20))], [0, 1, 2])

    async def test_retention_and_topic_deletion_free_objects_too(self):
        await self.append_to_both(2)
        written = await self.shared_objects()
        await drop_segments_below(self.logs["t", 0], 2)
        self.assertEqual(await self.collector().collect(), [])
        await drop_segments_below(self.logs["t", 1], 1)
        self.assertEqual(await self.collector().collect(), written[:1])
        for log in self.logs.values():
            await log.close()
        await self.store.delete_topic("t")
        self.assertEqual(await self.collector().collect(), written[1:])

    async def test_objects_younger_than_the_grace_period_stay(self):
        await self.append_to_both(2)
        await self.merge(0)
        await self.merge(1)
        written = await self.shared_objects()
        self.assertEqual(len(written), 2)
        self.assertEqual(await self.collector(grace_ms=60_000).collect(), [])
        self.clock.advance(60)
        self.assertEqual(await self.collector(grace_ms=60_000).collect(), written)

    async def test_only_the_controller_collects(self):
        await self.append_to_both(2)
        await self.merge(0)
        await self.merge(1)
        written = await self.shared_objects()
        self.assertEqual(len(written), 2)
        for view in (View(2, 1), View(None, 1)):
            collector = self.collector(view=view)
            collector.startService()
            self.clock.advance(collector.settings.interval_ms / 1000)
            await collector.stopService()
            self.assertEqual(await self.shared_objects(), written)
        collector = self.collector(view=View(1, 1))
        collector.startService()
        self.clock.advance(collector.settings.interval_ms / 1000)
        await collector.stopService()
        self.assertEqual(await self.shared_objects(), [])
