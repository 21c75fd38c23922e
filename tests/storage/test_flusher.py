"""The broker's Flusher on a real local object store and the embedded
metadata store: one object per flush whatever the partition count, each
partition committed (and fenced) on its own, the window and size knobs,
slices read alone."""

import os
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.trial import unittest

from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.protocol.records import iter_batches
from kafscale.storage.cache import SegmentCache
from kafscale.storage.errors import NotOwner
from kafscale.storage.flusher import Flusher, FlushSettings
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.object_format import OBJECTS_PREFIX, read_object
from kafscale.storage.partition_log import BufferBudget, LogSettings, PartitionLog
from tests.storage.test_partition_log import records
from tests.support.faults import Held
from tests.support.holders import RecordingHolder


class Counting:
    """An object store that records its PUTs and ranged GETs."""

    def __init__(self, store):
        self.store = store
        self.puts = []
        self.gets = []

    def put(self, key, data):
        self.puts.append(key)
        return self.store.put(key, data)

    def get(self, key, start=None, end=None):
        self.gets.append((key, start, end))
        return self.store.get(key, start, end)

    def __getattr__(self, name):
        return getattr(self.store, name)


class FlusherTestCase(unittest.TestCase):
    partitions = 3

    async def setUp(self):
        directory = tempfile.mkdtemp(prefix="kafscale-flusher-")
        self.store = EmbeddedMetadataStore(os.path.join(directory, "metadata.sqlite"))
        self.store.startService()
        self.addCleanup(self.store.stopService)
        self.objects = Counting(Held(LocalObjectStore(os.path.join(directory, "objects"))))
        self.topic = await self.store.create_topic("t", self.partitions)
        self.cache = SegmentCache(64 << 20)
        self.clock = reactor
        self.flusher = self.make_flusher()
        self.logs = [await self.claim(partition) for partition in range(self.partitions)]

    def make_flusher(self, **settings):
        return Flusher(node_id=7, objects=self.objects, metadata=self.store, settings=FlushSettings(**settings),
                       reactor=self.clock)

    async def claim(self, partition, flusher=None):
        state = await self.store.partition_state("t", partition)
        state = await self.store.claim_partition("t", partition, state.leader_epoch)
        return PartitionLog(state, topic_id=self.topic.topic_id, metadata=self.store, objects=self.objects,
                            cache=self.cache, budget=BufferBudget(64 << 20), settings=LogSettings(),
                            reactor=reactor, holder=RecordingHolder(), flusher=flusher or self.flusher)


class FlusherTests(FlusherTestCase):
    async def test_one_object_per_flush_for_every_partition(self):
        gate = self.objects.store.hold()
        first = self.logs[0].append(*records(b"first"))
        await deferLater(reactor, 0)  # the flush starts, held at its upload
        # While the first flush uploads, every partition buffers: the next
        # flush takes them all into one object.
        rest = [log.append(*records(b"%d-%d" % (p, i))) for i in range(3) for p, log in enumerate(self.logs)]
        gate.callback(None)
        self.assertEqual(await first, 0)
        self.assertEqual([await d for d in rest], [1, 0, 0, 2, 1, 1, 3, 2, 2])
        self.assertEqual(len(self.objects.puts), 2)
        self.assertTrue(all(key.startswith(OBJECTS_PREFIX + "") and "-7-" in key for key in self.objects.puts))
        data = await self.objects.get(self.objects.puts[1])
        _, directory = read_object(data, self.objects.puts[1])
        self.assertEqual([(s.topic, s.partition, s.base_offset, s.last_offset) for s in directory],
                         [("t", 0, 1, 3), ("t", 1, 0, 2), ("t", 2, 0, 2)])
        for log, entry in zip(self.logs, directory):
            ref = log.state.segments[-1]
            self.assertEqual((ref.key, ref.position, ref.size, ref.format), (self.objects.puts[1], entry.position,
                                                                            entry.size, 2))

    async def test_a_fenced_partition_fails_alone(self):
        gate = self.objects.store.hold()
        blocker = self.logs[0].append(*records(b"blocker"))
        kept = self.logs[0].append(*records(b"kept"))
        fenced = self.logs[1].append(*records(b"fenced"))
        other = self.logs[2].append(*records(b"other"))
        # A new owner claims partition 1 while the flush is under way.
        await self.store.claim_partition("t", 1, self.logs[1].leader_epoch)
        gate.callback(None)
        self.assertEqual([await blocker, await kept, await other], [0, 1, 0])
        with self.assertRaises(NotOwner):
            await fenced
        self.assertTrue(self.logs[1].closed)
        self.assertFalse(self.logs[0].closed or self.logs[2].closed)
        self.assertEqual((await self.store.partition_state("t", 1)).next_offset, 0)

    async def test_reads_come_from_the_fresh_object_then_from_its_slice_alone(self):
        for ack in [log.append(*records(b"value-%d" % p)) for p, log in enumerate(self.logs)]:
            await ack
        for p, log in enumerate(self.logs):
            self.assertIn(b"value-%d" % p, bytes(await log.read(0, 1 << 20)))
        self.assertEqual(self.objects.gets, [])
        ref = self.logs[1].state.segments[0]
        self.cache.discard_object(ref.key)
        self.assertIn(b"value-1", bytes(await self.logs[1].read(0, 1 << 20)))
        self.assertEqual(self.objects.gets, [(ref.key, ref.position, ref.position + ref.size)])

    async def test_close_waits_for_every_batch_of_its_partition(self):
        gate = self.objects.store.hold()
        first = self.logs[0].append(*records(b"a"))
        second = self.logs[0].append(*records(b"b"))
        closing = Deferred.fromCoroutine(self.logs[0].close())
        self.assertNoResult(closing)
        gate.callback(None)
        await closing
        self.assertEqual([await first, await second], [0, 1])
        self.assertEqual(self.logs[0].high_watermark, 2)


class WindowTests(FlusherTestCase):
    """The flush window on a clock of its own."""

    async def setUp(self):
        await super().setUp()
        self.clock = Clock()
        self.flusher = self.make_flusher(interval_ms=250, flush_bytes=4096)
        self.logs = [await self.claim(partition) for partition in range(self.partitions)]

    async def test_a_window_gathers_every_partition(self):
        acks = [log.append(*records(b"x")) for log in self.logs]
        self.clock.advance(0.2)
        acks += [log.append(*records(b"y")) for log in self.logs]
        for ack in acks:
            self.assertNoResult(ack)
        self.assertEqual(self.objects.puts, [])
        self.clock.advance(0.05)
        self.assertEqual([await ack for ack in acks], [0, 0, 0, 1, 1, 1])
        self.assertEqual(len(self.objects.puts), 1)

    async def test_enough_bytes_flush_before_the_window_ends(self):
        blob, batches = records(b"z" * 5000)
        appended = self.logs[1].append(blob, batches)
        self.clock.advance(0)
        self.assertEqual(await appended, 0)
        self.assertEqual(len(self.objects.puts), 1)

    async def test_close_does_not_wait_for_the_window(self):
        pending = self.logs[2].append(*records(b"last"))
        closing = Deferred.fromCoroutine(self.logs[2].close())
        self.clock.advance(0)
        await closing
        self.assertEqual(await pending, 0)


class ManyPartitionsTests(unittest.TestCase):
    """More partitions than one etcd transaction holds still make one PUT."""

    async def test_hundreds_of_partitions_one_put(self):
        directory = tempfile.mkdtemp(prefix="kafscale-flusher-")
        store = EmbeddedMetadataStore(os.path.join(directory, "metadata.sqlite"))
        store.startService()
        self.addCleanup(store.stopService)
        objects = Counting(Held(LocalObjectStore(os.path.join(directory, "objects"))))
        topic = await store.create_topic("wide", 300)
        flusher = Flusher(node_id=1, objects=objects, metadata=store, settings=FlushSettings(), reactor=reactor)
        logs = []
        for partition in range(300):
            state = await store.claim_partition("wide", partition, 0)
            logs.append(PartitionLog(state, topic_id=topic.topic_id, metadata=store, objects=objects,
                                     cache=SegmentCache(64 << 20), budget=BufferBudget(64 << 20),
                                     settings=LogSettings(), reactor=reactor, holder=RecordingHolder(),
                                     flusher=flusher))
        gate = objects.store.hold()
        first = logs[0].append(*records(b"first"))
        await deferLater(reactor, 0)
        acks = [log.append(*records(b"%d" % p)) for p, log in enumerate(logs)]
        gate.callback(None)
        await first
        self.assertEqual([await ack for ack in acks], [1] + [0] * 299)
        self.assertEqual(len(objects.puts), 2)
        for p in (0, 150, 299):
            data = bytes(await logs[p].read(logs[p].state.segments[-1].base_offset, 1 << 20))
            self.assertEqual([b.base_offset for b in iter_batches(data)], [1 if p == 0 else 0])
