"""Background merging: the plan on its own, then merges of a real
PartitionLog's segments on a real local object store and the embedded
metadata store."""

import os
import tempfile

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import SegmentRef
from kafscale.protocol.records import iter_batches
from kafscale.storage.cache import SegmentCache
from kafscale.storage.flusher import Flusher, FlushSettings
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.merge import MergeService, MergeSettings, Pacer, plan_merges
from kafscale.storage.partition_log import BufferBudget, LogSettings, PartitionLog
from kafscale.storage.retention import drop_segments_below
from kafscale.storage.segment import index_key
from tests.support.holders import RecordingHolder
from tests.support.records import build_batch


def entries(*sizes):
    refs = []
    base = 0
    for size in sizes:
        refs.append(SegmentRef(base, base + 9, 0, size, 10, f"t/0/segment-{base}.kfs"))
        base += 10
    return refs


def always(ref):
    return True


class PlanTests(unittest.SynchronousTestCase):
    def test_small_entries_merge_up_to_the_segment_size(self):
        merges, settled = plan_merges(entries(10, 10, 10, 10, 10), 0, 35, always, quiet=True)
        self.assertEqual(merges, [(0, 3), (3, 5)])
        self.assertEqual(settled, 0)

    def test_large_entries_are_left_and_close_runs(self):
        # 20 is not small under 35 (two of them would not fit together).
        merges, settled = plan_merges(entries(10, 10, 20, 12, 5, 5), 0, 35, always, quiet=False)
        # The closed run [0, 2) merges whole; in the open one 12 > 5 + 5 waits.
        self.assertEqual(merges, [(0, 2), (4, 6)])
        # The next plan looks at what the first merge leaves, too.
        self.assertEqual(settled, 0)

    def test_settled_runs_are_not_planned_again(self):
        merges, settled = plan_merges(entries(30, 10, 30, 10), 0, 35, always, quiet=False)
        # A lone small entry between large ones can never merge; the last
        # run is still open.
        self.assertEqual((merges, settled), ([], 3))
        self.assertEqual(plan_merges(entries(30, 10, 30, 10, 10), 3, 35, always, quiet=False), ([(3, 5)], 3))

    def test_young_entries_wait(self):
        refs = entries(1, 1, 1, 1)
        young = {refs[2].key, refs[3].key}
        merges, settled = plan_merges(refs, 0, 100, lambda ref: ref.key not in young, quiet=False)
        self.assertEqual((merges, settled), ([(0, 2)], 0))

    def test_trickle_rewrites_each_byte_a_few_times(self):
        # Flushes of 1 byte, merged each time: a large run is rewritten only
        # when as many bytes have come after it, like a binary counter.
        sizes = []
        rewritten = 0
        for _ in range(1000):
            sizes.append(1)
            while True:
                merges, _ = plan_merges(entries(*sizes), 0, 4096, always, quiet=False)
                if not merges:
                    break
                for first, stop in reversed(merges):
                    rewritten += sum(sizes[first:stop])
                    sizes[first:stop] = [sum(sizes[first:stop])]
        self.assertLessEqual(len(sizes), 11)
        self.assertLess(rewritten, 1000 * 11)

    def test_a_merge_takes_at_most_max_inputs(self):
        merges, _ = plan_merges(entries(*[1] * 10), 0, 100, always, quiet=True, max_inputs=4)
        self.assertEqual(merges, [(0, 4), (4, 8), (8, 10)])


class PacerTests(unittest.TestCase):
    async def test_requests_and_bytes_are_paced(self):
        clock = task.Clock()
        pacer = Pacer(clock, requests_per_second=10, bytes_per_second=1000)

        def wait(size=0):
            return Deferred.fromCoroutine(pacer.wait(size))

        await wait()
        second = wait(500)
        self.assertFalse(second.called)
        clock.advance(0.1)
        self.assertTrue(second.called)
        third = wait()
        clock.advance(0.5)
        self.assertFalse(third.called)
        clock.advance(0.1)
        self.assertTrue(third.called)


def records(*values):
    blob = build_batch([(None, value, []) for value in values])
    return blob, list(iter_batches(blob))


class Claiming:
    """A metadata store that lets a successor claim the partition just
    before the next replacement of manifest entries."""

    def __init__(self, store):
        self.store = store
        self.claim_first = False

    async def replace_segments(self, topic, partition, epoch, old, new):
        if self.claim_first:
            await self.store.claim_partition(topic, partition, epoch)
        return await self.store.replace_segments(topic, partition, epoch, old, new)

    def __getattr__(self, name):
        return getattr(self.store, name)


class MergeTests(unittest.TestCase):
    async def setUp(self):
        directory = tempfile.mkdtemp(prefix="kafscale-merge-")
        self.store = EmbeddedMetadataStore(os.path.join(directory, "metadata.sqlite"))
        self.store.startService()
        self.addCleanup(self.store.stopService)
        self.objects = LocalObjectStore(os.path.join(directory, "objects"))
        self.addCleanup(self.objects.close)
        self.metadata = Claiming(self.store)
        self.topic = await self.store.create_topic("t", 1)
        state = await self.store.claim_partition("t", 0, 0)
        self.cache = SegmentCache(64 << 20)
        self.log = PartitionLog(state, topic_id=self.topic.topic_id, metadata=self.metadata, objects=self.objects,
                                cache=self.cache, budget=BufferBudget(64 << 20),
                                settings=LogSettings(segment_bytes=1 << 20), reactor=reactor,
                                holder=RecordingHolder(),
                                flusher=Flusher(node_id=0, objects=self.objects, metadata=self.metadata,
                                                settings=FlushSettings(), reactor=reactor))
        self.service = MergeService({("t", 0): self.log}, MergeSettings(
            delay_ms=0, check_interval_ms=3_600_000, delete_delay_ms=0), clock=reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)

    async def append(self, count):
        for number in range(count):
            await self.log.append(*records(b"record %d" % number, b"and %d" % number))

    async def stored_keys(self):
        return sorted(item.key for item in await self.objects.list("t/"))

    async def merged_keys(self):
        return [key for key in await self.stored_keys() if "-m" in key.rpartition("/")[2]]

    async def read_all(self):
        return [(batch.base_offset, batch.record_count)
                for batch in iter_batches(await self.log.read(0, 64 << 20))]

    async def test_merge_keeps_every_record_and_offset(self):
        await self.append(20)
        before = await self.read_all()
        self.cache.discard(self.log.state.segments[0])  # one input read from the store
        await self.service.run_once()
        state = self.log.state
        self.assertEqual(len(state.segments), 1)
        merged = state.segments[0]
        self.assertEqual((merged.base_offset, merged.last_offset, merged.count, state.next_offset), (0, 39, 40, 40))
        self.assertEqual(await self.store.partition_state("t", 0), state)
        self.assertEqual(await self.read_all(), before)
        # The replaced objects went after their delay (zero here), and the
        # merged segment has its index.
        self.assertEqual(await self.stored_keys(), sorted([merged.key, index_key(merged.key)]))
        # The log goes on after the merge; a cold reader sees the same.
        await self.append(1)
        self.assertEqual(len(self.log.state.segments), 2)
        self.cache.discard(merged)
        self.assertEqual(await self.read_all(), before + [(40, 2)])

    async def test_merge_keeps_the_transactions(self):
        # Producer 7 aborts a transaction, producer 8 leaves one open.
        for producer_id, value in ((7, b"aborted"), (8, b"open")):
            blob = build_batch([(None, value, [])], producer=(producer_id, 0, 0), transactional=True)
            self.assertTrue(self.log.admit_transaction(producer_id, 0, self.log.verification_token(producer_id)))
            await self.log.append(blob, list(iter_batches(blob)))
        await self.log.write_marker(7, 0, commit=False)
        await self.append(1)
        before = (self.log.last_stable_offset, self.log.aborted_transactions(0, 10))
        self.assertEqual(before, (1, [(7, 0)]))
        await self.service.run_once()
        [merged] = self.log.state.segments
        self.assertEqual((merged.aborted, merged.open), (((7, 0, 2),), ((8, 1),)))
        # A new owner knows them from the manifest alone.
        state = await self.store.claim_partition("t", 0, self.log.leader_epoch)
        successor = PartitionLog(state, topic_id=self.topic.topic_id, metadata=self.store, objects=self.objects,
                                 cache=self.cache, budget=BufferBudget(64 << 20), settings=LogSettings(),
                                 reactor=reactor, holder=RecordingHolder(), flusher=self.log.flusher)
        self.assertEqual((successor.last_stable_offset, successor.aborted_transactions(0, 10)), before)

    async def test_merged_segments_merge_again_and_retention_drops_them(self):
        await self.append(4)
        await self.service.run_once()
        await self.append(4)
        await self.service.run_once()
        self.assertEqual([(s.base_offset, s.last_offset) for s in self.log.state.segments], [(0, 15)])
        await drop_segments_below(self.log, 16)
        self.assertEqual(await self.stored_keys(), [])

    async def test_merge_fenced_by_a_new_owner_leaves_the_manifest_intact(self):
        await self.append(5)
        self.metadata.claim_first = True
        await self.service.run_once()
        stored = await self.store.partition_state("t", 0)
        self.assertEqual(stored.leader_epoch, 2)
        self.assertEqual(stored.segments, self.log.state.segments)
        self.assertEqual(len(stored.segments), 5)
        # The merge's own output is gone; the inputs stay.
        self.assertEqual(await self.merged_keys(), [])
        for ref in stored.segments:
            self.assertGreaterEqual(await self.objects.head(ref.key), ref.position + ref.size)

    async def test_merge_after_retention_took_its_inputs_is_dropped(self):
        await self.append(5)
        original = self.store.replace_segments

        async def retention_first(topic, partition, epoch, old, new):
            await self.store.advance_log_start(topic, partition, epoch, 2)
            return await original(topic, partition, epoch, old, new)

        self.store.replace_segments = retention_first
        await self.service.run_once()
        state = await self.store.partition_state("t", 0)
        self.assertEqual((state.log_start_offset, len(state.segments)), (2, 4))
        self.assertEqual(await self.merged_keys(), [])

    async def test_a_reader_on_the_manifest_before_a_merge_reads_on(self):
        await self.append(6)
        before = await self.read_all()
        stale = self.log.state
        await self.service.run_once()
        self.assertEqual(len(self.log.state.segments), 1)
        # A state answered late, from before the merge, whose objects are
        # deleted since (shared objects no manifest names any more: gc's).
        for ref in stale.segments:
            await self.objects.delete(ref.key)
            self.cache.discard_object(ref.key)
        self.log.adopt(stale)
        self.assertEqual(await self.read_all(), before)
        self.assertEqual(len(self.log.state.segments), 1)

    async def test_a_merged_segment_is_as_old_as_its_inputs(self):
        clock = task.Clock()
        clock.advance(1000)
        service = MergeService({("t", 0): self.log}, MergeSettings(
            delay_ms=10_000, check_interval_ms=3_600_000, delete_delay_ms=0), clock=clock)
        # Ages on the fake clock; the pace on the real one, never waiting.
        service.merger.pacer = Pacer(reactor, requests_per_second=1e9, bytes_per_second=1e15)
        service.startService()
        self.addCleanup(service.stopService)
        await self.append(4)
        await service.run_once()
        clock.advance(10)
        await self.append(2)
        await service.run_once()
        self.assertEqual([(s.base_offset, s.last_offset) for s in self.log.state.segments], [(0, 7), (8, 9), (10, 11)])
        # The first merge's inputs are past the delay now; the merged
        # segment with them, so it does not hold back the two after it.
        clock.advance(10)
        await service.run_once()
        self.assertEqual([(s.base_offset, s.last_offset) for s in self.log.state.segments], [(0, 11)])
