"""PartitionLog on a real local object store and the embedded metadata
store, with a fault injected at an exact point where a test needs one: group
commit, commits of unknown outcome, fencing by a new owner, failures without
gaps, bounded buffers, close, reads across segments, idempotent producers."""

import os
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.trial import unittest

from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.metadata.interfaces import Fenced, MetadataUnavailable, SegmentRef
from kafscale.protocol.records import assign_offsets, decode_records, iter_batches
from kafscale.storage.cache import SegmentCache
from kafscale.storage.errors import (
    CommitFailed,
    NotOwner,
    OffsetOutOfRange,
    OutOfOrderSequence,
    StaleProducerEpoch,
    StorageUnavailable,
)
from kafscale.storage.flusher import Flusher, FlushSettings
from kafscale.storage.interfaces import ObjectStoreError, ObjectStoreUnavailable
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.object_format import OBJECTS_PREFIX
from kafscale.storage.partition_log import BufferBudget, LogSettings, PartitionLog, fetch_entry
from kafscale.storage.segment import build_segment, segment_keys
from tests.support.faults import Held, Unreliable
from tests.support.holders import RecordingHolder
from tests.support.records import build_batch, producer_batch
from tests.support.waiting import eventually



def next_turn():
    """Let the reactor turn once: a flush asked for starts on the next turn,
    so that the appends made in this one join it."""
    return deferLater(reactor, 0)


def records(*values):
    blob = build_batch([(None, value, []) for value in values])
    return blob, list(iter_batches(blob))


class LogCase(unittest.TestCase):
    """A partition "t"-0 claimed in an embedded store, its segments in a
    local directory; ``self.objects`` can hold uploads and
    ``self.metadata`` can fail commits and reads."""

    async def setUp(self):
        directory = tempfile.mkdtemp(prefix="kafscale-log-")
        self.store = EmbeddedMetadataStore(os.path.join(directory, "metadata.sqlite"))
        self.store.startService()
        self.addCleanup(self.store.stopService)
        self.objects = Held(LocalObjectStore(os.path.join(directory, "objects")))
        self.metadata = Unreliable(self.store)
        self.topic = await self.store.create_topic("t", 1)
        state = await self.store.partition_state("t", 0)
        self.state = await self.store.claim_partition("t", 0, state.leader_epoch)
        self.cache = SegmentCache(64 << 20)
        self.budget = BufferBudget(64 << 20)
        self.holder = RecordingHolder()
        self.fenced = self.holder.deposed_logs
        self.log = self.open_log()

    def open_log(self, state=None, budget=None, clock=reactor, flush=FlushSettings(), **settings):
        """A PartitionLog of "t"-0 with a flusher of its own."""
        return PartitionLog(
            state or self.state, topic_id=self.topic.topic_id, metadata=self.metadata, objects=self.objects,
            cache=self.cache, budget=budget or self.budget, settings=LogSettings(**settings), reactor=clock,
            holder=self.holder, flusher=self.flusher(clock, flush),
        )

    def flusher(self, clock=reactor, settings=FlushSettings()):
        return Flusher(node_id=0, objects=self.objects, metadata=self.metadata, settings=settings, reactor=clock)

    async def assertFailsWith(self, kind, deferred):
        with self.assertRaises(kind):
            await deferred

    async def committed_values(self):
        """The record values of every segment in the store's manifest, in
        offset order, read back from the object store: what a new owner
        would serve."""
        state = await self.store.partition_state("t", 0)
        values = []
        for ref in state.segments:
            segment = await fetch_entry(self.objects, ref)
            for batch in iter_batches(segment.batches):
                view = segment.batches[batch.position: batch.position + batch.size]
                values += [(record.offset, record.value) for record in decode_records(view)]
        return values

    async def fencing_reported(self):
        """The log closed and told its owner, once. (Its producers hear of
        the fencing first, in the same call.)"""
        await eventually(lambda: self.fenced, timeout=1, what="the holder told")
        self.assertEqual(self.fenced, [self.log])
        self.assertTrue(self.log.closed)

    async def claim_elsewhere(self):
        """Another broker claims the partition: a new leader epoch."""
        state = await self.store.partition_state("t", 0)
        return await self.store.claim_partition("t", 0, state.leader_epoch)


class PartitionLogTests(LogCase):
    async def test_appends_during_a_flush_share_the_next_one(self):
        gate = self.objects.hold()
        first = self.log.append(*records(b"a"))
        await next_turn()  # the flush starts, held at its upload
        rest = [self.log.append(*records(b"%d" % i)) for i in range(10)]
        gate.callback(None)
        self.assertEqual(await first, 0)
        self.assertEqual([await d for d in rest], list(range(1, 11)))
        self.assertEqual([(s.base_offset, s.last_offset) for s in self.log.state.segments], [(0, 0), (1, 10)])

    async def test_failed_upload_fails_its_producers_and_leaves_no_gap(self):
        gate = self.objects.hold()
        failed = self.log.append(*records(b"lost"))
        gate.errback(ObjectStoreUnavailable("S3 is down"))
        with self.assertRaises(StorageUnavailable):
            await failed
        self.assertEqual(await self.log.append(*records(b"kept")), 0)
        self.assertEqual(self.log.high_watermark, 1)

    async def test_a_retried_flush_never_reuses_a_key(self):
        self.metadata.refusals = [MetadataUnavailable("etcd is down")]
        with self.assertRaises(CommitFailed):
            await self.log.append(*records(b"first try"))
        self.assertEqual(await self.log.append(*records(b"second try")), 0)
        stored = [o.key for o in await self.objects.list(OBJECTS_PREFIX)]
        self.assertEqual(len(stored), 2)
        committed = self.log.state.segments[0].key
        self.assertIn(committed, stored)
        data = await self.log.read(0, 1 << 20)
        self.assertIn(b"second try", bytes(data))

    async def test_reads_run_across_segments(self):
        for value in (b"one", b"two", b"three"):
            await self.log.append(*records(value))
        self.assertEqual(len(self.log.state.segments), 3)
        batches = list(iter_batches(await self.log.read(0, 1 << 20)))
        self.assertEqual([b.base_offset for b in batches], [0, 1, 2])
        # a byte limit stops at a batch boundary, never inside one
        one_batch = batches[0].size
        batches = list(iter_batches(await self.log.read(0, one_batch + 10)))
        self.assertEqual([b.base_offset for b in batches], [0])

    async def test_segments_of_format_1_stay_readable(self):
        # As a broker before multi-partition objects wrote them: a .kfs and
        # its .index per partition and flush.
        blob, batches = records(b"old", b"older")
        patched, _ = assign_offsets(blob, batches, 0, self.state.leader_epoch)
        kfs, index, info = build_segment([patched], 0)
        keys = segment_keys("t", self.topic.topic_id, 0, 0, self.state.leader_epoch, 0)
        await self.objects.put(keys.kfs, kfs)
        await self.objects.put(keys.index, index)
        state = await self.store.commit_segment("t", 0, self.state.leader_epoch, 0, SegmentRef(
            0, info.last_offset, info.max_timestamp, info.size, info.count, keys.kfs))
        self.log = self.open_log(state)
        self.assertEqual(await self.log.append(*records(b"new")), 2)
        self.assertEqual([s.format for s in self.log.state.segments], [1, 2])
        data = bytes(await self.log.read(0, 1 << 20))
        self.assertEqual([b.base_offset for b in iter_batches(data)], [0, 2])
        self.assertIn(b"older", data)
        # a reader of large segments uses the index, and copes without it
        ranged = self.open_log(self.log.state, whole_segment_limit=0)
        self.cache.discard(self.log.state.segments[0])
        self.assertIn(b"older", bytes(await ranged.read(0, 1 << 20)))
        await self.objects.delete(keys.index)
        self.assertIn(b"older", bytes(await ranged.read(0, 1 << 20)))

    async def test_offsets_outside_the_log(self):
        await self.log.append(*records(b"only"))
        with self.assertRaises(OffsetOutOfRange):
            await self.log.read(2, 100)
        self.assertEqual(len(await self.log.read(1, 100)), 0)

    async def test_close_flushes_then_refuses(self):
        gate = self.objects.hold()
        pending = self.log.append(*records(b"last"))
        closing = self.log.close()
        gate.callback(None)
        await closing
        self.assertEqual(await pending, 0)
        with self.assertRaises(NotOwner):
            self.log.append(*records(b"late"))

    async def test_prefetch_loads_the_segment_a_read_will_want(self):
        await self.log.append(*records(b"cold"))
        key = self.log.state.segments[0]
        self.cache.discard(key)
        self.log.prefetch(5)  # beyond the log: nothing to load
        self.assertNotIn(key, self.cache)
        self.log.prefetch(0)
        await eventually(lambda: key in self.cache, timeout=1, what="the prefetch")


class InDoubtCommitTests(LogCase):
    """A commit whose answer is an error may have been applied all the same:
    the log finds out before it acknowledges or writes again."""

    async def test_a_commit_applied_but_unanswered_is_acknowledged_once(self):
        self.metadata.lose_answers = 1
        self.assertEqual(await self.log.append(*records(b"a")), 0)
        self.assertEqual(await self.log.append(*records(b"b")), 1)
        self.assertEqual(self.log.high_watermark, 2)
        self.assertEqual(await self.committed_values(), [(0, b"a"), (1, b"b")])

    async def test_a_commit_not_applied_fails_retriably_and_its_offset_is_reused(self):
        self.metadata.refusals = [MetadataUnavailable("etcd is down")]
        await self.assertFailsWith(CommitFailed, self.log.append(*records(b"lost")))
        self.assertFalse(self.log.closed)
        self.assertEqual(self.log.high_watermark, 0)
        self.assertEqual(await self.log.append(*records(b"retried")), 0)
        self.assertEqual(await self.committed_values(), [(0, b"retried")])
        self.assertEqual(self.budget.used, 0)

    async def test_an_outcome_the_store_cannot_tell_is_learnt_before_the_next_write(self):
        # Applied, answered with a timeout, and the read that would tell fails too.
        self.metadata.lose_answers = 1
        self.metadata.failing_reads = 1
        await self.assertFailsWith(CommitFailed, self.log.append(*records(b"a")))
        self.assertEqual(self.log.high_watermark, 0)
        # The next flush re-reads the state first: it finds "a" committed
        # and refuses its batches (they may repeat "a") instead of writing
        # at an offset that is taken.
        await self.assertFailsWith(CommitFailed, self.log.append(*records(b"a again")))
        self.assertEqual(self.log.high_watermark, 1)
        self.assertEqual(len(await self.objects.list(OBJECTS_PREFIX)), 1)
        self.assertEqual(await self.log.append(*records(b"b")), 1)
        self.assertEqual(await self.committed_values(), [(0, b"a"), (1, b"b")])
        self.assertFalse(self.log.closed)

    async def test_an_outcome_learnt_unapplied_leaves_no_gap(self):
        self.metadata.refusals = [MetadataUnavailable("timed out")]
        self.metadata.failing_reads = 1
        await self.assertFailsWith(CommitFailed, self.log.append(*records(b"lost")))
        self.assertEqual(await self.log.append(*records(b"next")), 0)
        self.assertEqual(await self.committed_values(), [(0, b"next")])

    async def test_fenced_at_its_own_epoch_is_a_race_not_a_new_owner(self):
        self.metadata.refusals = [Fenced("t", 0, self.state.leader_epoch, 0)]
        await self.assertFailsWith(CommitFailed, self.log.append(*records(b"raced")))
        self.assertFalse(self.log.closed)
        self.assertEqual(self.fenced, [])
        self.assertEqual(await self.log.append(*records(b"next")), 0)

    async def test_the_read_after_an_unknown_outcome_can_reveal_a_new_owner(self):
        self.metadata.refusals = [MetadataUnavailable("timed out")]
        await self.claim_elsewhere()
        await self.assertFailsWith(NotOwner, self.log.append(*records(b"a")))
        await self.fencing_reported()

    async def test_idempotent_retry_after_a_landed_commit_gets_the_original_offset(self):
        await self.log.append(*producer_batch(0))
        self.metadata.lose_answers = 1
        self.metadata.failing_reads = 1
        await self.assertFailsWith(CommitFailed, self.log.append(*producer_batch(1)))
        # The resync loads the landed batch into the producers' state.
        await self.assertFailsWith(CommitFailed, self.log.append(*records(b"plain")))
        self.assertEqual(await self.log.append(*producer_batch(1)), 1)
        self.assertEqual(self.log.high_watermark, 2)


class FencingTests(LogCase):
    """A new owner's claim fails this owner's next commit with Fenced: every
    write it holds fails, the log closes and says so."""

    async def test_a_new_owner_fails_every_pending_append_and_closes_the_log(self):
        woken = []
        self.log.add_listener(lambda: woken.append(True))
        gate = self.objects.hold()
        flushing = self.log.append(*records(b"in flight"))
        await next_turn()
        behind = [self.log.append(*records(b"behind %d" % i)) for i in range(3)]
        new_state = await self.claim_elsewhere()
        gate.callback(None)
        for deferred in [flushing, *behind]:
            await self.assertFailsWith(NotOwner, deferred)
        await self.fencing_reported()
        self.assertTrue(woken)
        self.assertEqual(self.budget.used, 0)
        with self.assertRaises(NotOwner):
            self.log.append(*records(b"late"))
        with self.assertRaises(NotOwner):
            self.log.check_offset(0)
        # Nothing of the deposed owner reached the manifest.
        self.assertEqual(await self.store.partition_state("t", 0), new_state)

    async def test_fencing_rolls_back_the_producers_and_fails_retries_waiting_on_them(self):
        # One batch per flush, so that the idempotent batches wait behind
        # the failing flush instead of joining it.
        self.log = self.open_log(segment_bytes=1)
        await self.log.append(*producer_batch(0, producer=9))  # the producers' state is loaded
        gate = self.objects.hold()
        flushing = self.log.append(*records(b"plain"))
        pending = [self.log.append(*producer_batch(0)), self.log.append(*producer_batch(0, producer=7))]
        retries = [self.log.append(*producer_batch(0)), self.log.append(*producer_batch(0, producer=7))]
        await self.claim_elsewhere()
        gate.callback(None)
        for deferred in [flushing, *pending]:
            await self.assertFailsWith(NotOwner, deferred)
        # Rolled back, not left pending: the retries fail with them, now.
        for retry in retries:
            self.failureResultOf(retry, NotOwner)
        await self.fencing_reported()

    async def test_an_advance_of_the_log_start_finds_the_new_owner(self):
        await self.log.append(*records(b"a"))
        await self.claim_elsewhere()
        with self.assertRaises(NotOwner):
            await self.log.advance_log_start(1)
        await self.fencing_reported()

    async def test_a_broker_in_doubt_of_its_hold_takes_no_writes_but_serves_reads(self):
        await self.log.append(*records(b"a"))
        self.holder.holding = False
        with self.assertRaises(NotOwner):
            self.log.append(*records(b"b"))
        self.assertIn(b"a", bytes(await self.log.read(0, 1 << 20)))
        self.holder.holding = True
        self.assertEqual(await self.log.append(*records(b"b")), 1)


class FailedUploadTests(LogCase):
    async def test_a_failed_flush_fails_every_batch_behind_it_and_leaves_no_gap(self):
        gate = self.objects.hold()
        failed = self.log.append(*records(b"lost"))
        await next_turn()
        behind = [self.log.append(*records(b"b")), self.log.append(*records(b"c"))]
        gate.errback(ObjectStoreUnavailable("S3 is down"))
        await self.assertFailsWith(StorageUnavailable, failed)
        # Committed, the batches behind it would overtake its producer's
        # retry of it.
        for deferred in behind:
            await self.assertFailsWith(StorageUnavailable, deferred)
        self.assertEqual(self.budget.used, 0)
        self.assertEqual(await self.log.append(*records(b"lost")), 0)
        self.assertEqual(await self.log.append(*records(b"b")), 1)
        self.assertEqual(await self.committed_values(), [(0, b"lost"), (1, b"b")])
        self.assertFalse(self.log.closed)


class FailureOrderTests(LogCase):
    """A failed flush tells the callers of every append it fails, before
    their producers hear of it, so that they take nothing more from those
    producers: their later requests must not overtake the retries."""

    async def test_every_failed_append_is_told_first(self):
        log = self.open_log(max_buffer_bytes=1)
        told = []

        def append(value):
            def on_failure():
                self.assertNoResult(appended)
                told.append(value)

            appended = log.append(*records(value), on_failure=on_failure)
            return appended

        gate = self.objects.hold()
        flushing = append(b"flushing")
        await next_turn()
        buffered = append(b"buffered")
        held = append(b"held")
        self.assertTrue(log.holding)
        gate.errback(ObjectStoreUnavailable("S3 is down"))
        for deferred in (flushing, buffered, held):
            await self.assertFailsWith(StorageUnavailable, deferred)
        self.assertEqual(sorted(told), [b"buffered", b"flushing", b"held"])
        self.assertFalse(log.holding)
        self.assertEqual(self.budget.used, 0)
        self.assertEqual(await log.append(*records(b"flushing")), 0)

    async def test_a_slow_store_fails_nothing(self):
        gate = self.objects.hold()
        log = self.open_log(max_buffer_bytes=1)
        flushing = log.append(*records(b"0"))
        await next_turn()
        waiting = [log.append(*records(b"%d" % i)) for i in range(1, 20)]
        gate.callback(None)
        self.assertEqual([await flushing, *[await d for d in waiting]], list(range(20)))


class BufferBoundsTests(LogCase):
    async def test_a_full_partition_holds_appends_in_arrival_order(self):
        blob, batches = records(b"x" * 100)
        log = self.open_log(max_buffer_bytes=2 * len(blob))
        gate = self.objects.hold()
        flushing = log.append(blob, batches)
        self.assertIsNone(log.until_admitted())
        await next_turn()  # taken by the flush: no longer buffered
        buffered = [log.append(blob, batches), log.append(blob, batches)]
        self.assertIsNone(log.until_admitted())
        held = [log.append(*records(b"held %d" % i)) for i in range(3)]
        admitted = log.until_admitted()
        self.assertNoResult(admitted)
        self.assertEqual(self.budget.used, 3 * len(blob))
        gate.callback(None)
        self.assertEqual([await flushing, *[await d for d in buffered]], [0, 1, 2])
        await admitted
        self.assertEqual([await d for d in held], [3, 4, 5])
        self.assertEqual(self.budget.used, 0)
        self.assertEqual([value for _, value in await self.committed_values()][3:],
                         [b"held 0", b"held 1", b"held 2"])

    async def test_a_batch_larger_than_the_buffer_goes_alone(self):
        log = self.open_log(max_buffer_bytes=10)
        self.assertEqual(await log.append(*records(b"x" * 100)), 0)

    async def test_the_broker_budget_holds_every_partition_in_turn_and_is_given_back(self):
        blob, batches = records(b"x" * 100)
        other_topic = await self.store.create_topic("u", 1)
        other_state = await self.store.partition_state("u", 0)
        other_state = await self.store.claim_partition("u", 0, other_state.leader_epoch)
        budget = BufferBudget(2 * len(blob))
        log = self.open_log(budget=budget)
        other = PartitionLog(
            other_state, topic_id=other_topic.topic_id, metadata=self.metadata,
            objects=self.objects, cache=self.cache, budget=budget, settings=LogSettings(), reactor=reactor,
            holder=RecordingHolder(), flusher=log.flusher,
        )
        first_gate = self.objects.hold()
        first = log.append(blob, batches)  # holds budget while its upload waits
        second = other.append(blob, batches)
        await next_turn()  # one flush takes both
        held_here = log.append(blob, batches)
        held_there = other.append(blob, batches)
        # The partition that waited first gets room first.
        self.assertEqual(budget.used, 2 * len(blob))
        self.assertNoResult(log.until_admitted())
        self.assertNoResult(other.until_admitted())
        first_gate.callback(None)
        self.assertEqual([await first, await second, await held_here, await held_there], [0, 0, 1, 1])
        self.assertEqual(budget.used, 0)

    async def test_a_closing_log_flushes_what_it_holds(self):
        blob, batches = records(b"x" * 100)
        log = self.open_log(max_buffer_bytes=len(blob))
        gate = self.objects.hold()
        flushing = log.append(blob, batches)
        await next_turn()
        buffered = log.append(blob, batches)
        held = log.append(blob, batches)
        closing = Deferred.fromCoroutine(log.close())
        gate.callback(None)
        await closing
        self.assertEqual([await flushing, await buffered, await held], [0, 1, 2])
        self.assertEqual(self.budget.used, 0)

    async def test_a_new_owner_fails_what_is_held(self):
        blob, batches = records(b"x" * 100)
        log = self.open_log(max_buffer_bytes=len(blob))
        gate = self.objects.hold()
        flushing = log.append(blob, batches)
        await next_turn()
        buffered = log.append(blob, batches)
        held = log.append(blob, batches)
        await self.claim_elsewhere()
        gate.callback(None)
        for deferred in (flushing, buffered, held):
            await self.assertFailsWith(NotOwner, deferred)
        self.assertEqual(self.budget.used, 0)


class CloseTests(LogCase):
    async def test_close_flushes_at_once_rather_than_after_the_window(self):
        # The window runs on a clock that never advances: only close flushes.
        log = self.open_log(clock=Clock(), flush=FlushSettings(interval_ms=60_000))
        pending = log.append(*records(b"lingering"))
        self.assertNoResult(pending)
        await log.close()
        self.assertEqual(self.successResultOf(pending), 0)
        self.assertEqual(await self.committed_values(), [(0, b"lingering")])

    async def test_close_waits_for_the_flush_in_progress_and_the_one_behind(self):
        gate = self.objects.hold()
        flushing = self.log.append(*records(b"a"))
        await next_turn()
        behind = self.log.append(*records(b"b"))
        closing = Deferred.fromCoroutine(self.log.close())
        self.assertNoResult(closing)
        gate.callback(None)
        await closing
        self.assertEqual([self.successResultOf(flushing), self.successResultOf(behind)], [0, 1])
        self.assertTrue(self.log.closed)
        self.assertEqual(self.fenced, [])
        self.assertEqual(await self.committed_values(), [(0, b"a"), (1, b"b")])


class IdempotentProducerTests(LogCase):
    """Batches of idempotent producers: retries answered with the original's
    offset, failures that roll the producers back, and a new owner that
    rebuilds their state from the log."""

    async def claim(self, **settings):
        """A new owner's PartitionLog, with a cache of its own."""
        state = await self.store.partition_state("t", 0)
        state = await self.store.claim_partition("t", 0, state.leader_epoch)
        return PartitionLog(
            state, topic_id=self.topic.topic_id, metadata=self.metadata, objects=self.objects,
            cache=SegmentCache(64 << 20), budget=BufferBudget(64 << 20), settings=LogSettings(**settings),
            reactor=reactor, holder=RecordingHolder(), flusher=self.flusher(),
        )

    async def stored_batches(self, partition_log):
        """(base offset, base sequence) of every committed batch, read back
        from the object store."""
        found = []
        for ref in partition_log.state.segments:
            segment = await fetch_entry(self.objects, ref)
            found += [(b.base_offset, b.base_sequence) for b in iter_batches(segment.batches)]
        return found

    async def test_retry_of_a_committed_batch_gets_the_original_offset(self):
        self.assertEqual(await self.log.append(*producer_batch(0, count=3)), 0)
        self.assertEqual(await self.log.append(*producer_batch(3)), 3)
        self.assertEqual(await self.log.append(*producer_batch(0, count=3)), 0)
        self.assertEqual(await self.log.append(*producer_batch(3)), 3)
        self.assertEqual(self.log.high_watermark, 4)
        self.assertEqual(await self.stored_batches(self.log), [(0, 0), (3, 3)])

    async def test_retry_of_a_pending_batch_waits_for_the_original(self):
        gate = self.objects.hold()
        first = self.log.append(*producer_batch(0, count=2))
        retry = self.log.append(*producer_batch(0, count=2))
        self.assertNoResult(retry)
        gate.callback(None)
        self.assertEqual([await first, await retry], [0, 0])
        self.assertEqual(self.log.high_watermark, 2)

    async def test_sequence_and_epoch_errors(self):
        await self.log.append(*producer_batch(0))
        await self.assertFailsWith(OutOfOrderSequence, self.log.append(*producer_batch(2)))
        self.assertEqual(await self.log.append(*producer_batch(0, epoch=1)), 1)
        await self.assertFailsWith(StaleProducerEpoch, self.log.append(*producer_batch(1)))
        await self.assertFailsWith(OutOfOrderSequence, self.log.append(*producer_batch(4, epoch=2)))
        self.assertEqual(await self.log.append(*producer_batch(1, epoch=1)), 2)
        self.assertEqual(self.log.high_watermark, 3)

    async def test_failed_flush_rolls_back_and_fails_every_batch_behind(self):
        # Load the (empty) producer state and let that flush finish, so the
        # next flush holds exactly the next append.
        await self.log.append(*producer_batch(0, producer=9))
        await deferLater(reactor, 0)
        gate = self.objects.hold()
        failing = self.log.append(*producer_batch(0))
        await next_turn()  # the flush starts, held at its upload
        behind = self.log.append(*producer_batch(1))
        other = self.log.append(*producer_batch(0, producer=7))
        plain = self.log.append(*records(b"plain"))
        gate.errback(ObjectStoreError("S3 is down"))
        await self.assertFailsWith(StorageUnavailable, failing)
        await self.assertFailsWith(StorageUnavailable, behind)
        # Other producers' batches behind fail too: none overtakes a retry.
        await self.assertFailsWith(StorageUnavailable, other)
        await self.assertFailsWith(StorageUnavailable, plain)
        # A batch sent before the producer heard of the failure must wait
        # for the retries of the failed ones.
        await self.assertFailsWith(OutOfOrderSequence, self.log.append(*producer_batch(2)))
        self.assertEqual(await self.log.append(*producer_batch(0)), 1)
        self.assertEqual(await self.log.append(*producer_batch(1)), 2)
        self.assertEqual(await self.stored_batches(self.log), [(0, 0), (1, 0), (2, 1)])

    async def test_commit_that_landed_despite_an_error_is_a_success(self):
        self.metadata.lose_answers = 1
        self.assertEqual(await self.log.append(*producer_batch(0, count=2)), 0)
        self.assertEqual(await self.log.append(*producer_batch(2)), 2)
        self.assertEqual(self.log.high_watermark, 3)

    async def test_commit_of_unknown_outcome_is_found_before_the_next_write(self):
        self.metadata.lose_answers = 1
        self.metadata.failing_reads = 1
        await self.assertFailsWith(CommitFailed, self.log.append(*producer_batch(0, count=2)))
        # The retry reaches the buffer, but the next flush learns first that
        # the batch is committed: the retry is refused, and its own retry
        # gets the original offset.
        await self.assertFailsWith(CommitFailed, self.log.append(*producer_batch(0, count=2)))
        self.assertEqual(await self.log.append(*producer_batch(0, count=2)), 0)
        self.assertEqual(self.log.high_watermark, 2)
        self.assertEqual(await self.stored_batches(self.log), [(0, 0)])

    async def test_new_owner_rebuilds_the_state_from_the_log(self):
        await self.log.append(*producer_batch(0, count=2))
        await self.log.append(*producer_batch(0, producer=7))
        await self.log.append(*producer_batch(2))
        await self.log.close()
        successor = await self.claim()
        retry = successor.append(*producer_batch(2))
        self.assertNoResult(retry)  # waits for the rebuild
        self.assertEqual(await retry, 3)
        self.assertEqual(await successor.append(*producer_batch(0, producer=7)), 2)
        await self.assertFailsWith(OutOfOrderSequence, successor.append(*producer_batch(4)))
        self.assertEqual(await successor.append(*producer_batch(3)), 4)
        self.assertEqual(successor.high_watermark, 5)

    async def test_rebuild_reads_a_bounded_tail(self):
        for sequence in range(3):
            await self.log.append(*producer_batch(sequence))
        await self.log.close()
        successor = await self.claim(producer_scan_segments=2)
        # Sequence 0 is in the third segment from the end: beyond the
        # window, its retry is no longer known as a duplicate.
        self.assertEqual(await successor.append(*producer_batch(1)), 1)
        await self.assertFailsWith(OutOfOrderSequence, successor.append(*producer_batch(0)))

    async def test_rebuild_failure_fails_the_waiting_batches_retriably(self):
        await self.log.append(*producer_batch(0))
        await self.log.close()
        successor = await self.claim()
        for segment in successor.state.segments:
            await self.objects.delete(segment.key)
        await self.assertFailsWith(StorageUnavailable, successor.append(*producer_batch(1)))
        self.assertEqual(successor.high_watermark, 1)
