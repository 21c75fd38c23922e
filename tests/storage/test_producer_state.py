"""Idempotent producers' state: the sequence rules alone, then through a
PartitionLog on a real local object store and embedded metadata store,
including failed flushes, commits of unknown outcome and a new owner that
rebuilds the state from the log."""

import os
import tempfile

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from kafscale.metadata.embedded import EmbeddedMetadataStore
from kafscale.protocol.errors import ErrorCode, KafkaError
from kafscale.protocol.records import iter_batches
from kafscale.storage.cache import SegmentCache
from kafscale.storage.interfaces import ObjectStoreError
from kafscale.storage.local import LocalObjectStore
from kafscale.storage.partition_log import BufferBudget, LogSettings, PartitionLog
from kafscale.storage.producer_state import SEQUENCE_LIMIT, ProducerStates
from kafscale.storage.segment import read_segment
from tests.support.faults import Held, Unreliable
from tests.support.records import build_batch

PRODUCER = 4242
DAY_MS = 86_400_000


def batch(sequence, count=1, epoch=0, producer=PRODUCER):
    """(blob, batches) of one idempotent batch of ``count`` records."""
    blob = build_batch([(b"k", b"v%d" % i, []) for i in range(count)], producer=(producer, epoch, sequence))
    return blob, list(iter_batches(blob))


def plain_batch():
    """(blob, batches) of a batch without a producer id."""
    blob = build_batch([(b"k", b"plain", [])])
    return blob, list(iter_batches(blob))


def header(sequence, count=1, epoch=0, producer=PRODUCER):
    return batch(sequence, count, epoch, producer)[1][0]


class ProducerStatesTests(unittest.TestCase):
    """The rules, without a log: offsets are whatever the test commits."""

    def setUp(self):
        self.states = ProducerStates(expiration_ms=DAY_MS)

    def commit(self, first_batch, offset, now_ms=0):
        pending = self.states.admit(first_batch, now_ms)
        self.states.commit(pending, offset, now_ms)

    def assertRefused(self, code, first_batch):
        with self.assertRaises(KafkaError) as raised:
            self.states.admit(first_batch, 0)
        self.assertEqual(raised.exception.code, code)

    def test_unknown_producer_is_accepted_at_any_sequence(self):
        self.assertIsNone(self.states.original(header(17)))
        self.states.admit(header(17), 0)
        self.assertIn(PRODUCER, self.states)

    def test_next_sequence_follows_the_last_record(self):
        self.commit(header(0, count=3), 100)
        self.assertRefused(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, header(2))
        self.assertRefused(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, header(4))
        self.commit(header(3), 103)

    def test_sequence_wraps_after_int32_max(self):
        self.commit(header(SEQUENCE_LIMIT - 2, count=2), 0)
        self.assertRefused(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, header(1))
        self.commit(header(0, count=2), 2)
        self.assertEqual(self.successResultOf(self.states.original(header(0, count=2))), 2)

    def test_the_last_five_committed_batches_are_recognised(self):
        for sequence in range(7):
            self.commit(header(sequence), 10 + sequence)
        self.assertEqual([self.successResultOf(self.states.original(header(s))) for s in range(2, 7)],
                         [12, 13, 14, 15, 16])
        self.assertIsNone(self.states.original(header(1)))
        self.assertRefused(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, header(1))

    def test_a_batch_with_other_bounds_is_no_duplicate(self):
        self.commit(header(0, count=2), 0)
        self.assertIsNone(self.states.original(header(0, count=1)))
        self.assertRefused(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, header(0, count=1))

    def test_pending_duplicate_fires_with_the_original(self):
        pending = self.states.admit(header(0), 0)
        retry = self.states.original(header(0))
        self.assertNoResult(retry)
        self.states.commit(pending, 55, 0)
        self.assertEqual(self.successResultOf(retry), 55)

    def test_pending_duplicate_fails_with_the_original(self):
        pending = self.states.admit(header(0), 0)
        retry = self.states.original(header(0))
        self.states.roll_back(pending, KafkaError(ErrorCode.KAFKA_STORAGE_ERROR))
        self.assertEqual(self.failureResultOf(retry, KafkaError).value.code, ErrorCode.KAFKA_STORAGE_ERROR)

    def test_roll_back_lets_the_retry_in(self):
        self.commit(header(0), 0)
        pending = self.states.admit(header(1), 0)
        self.states.roll_back(pending, KafkaError(ErrorCode.KAFKA_STORAGE_ERROR))
        self.assertIsNone(self.states.original(header(1)))
        self.states.admit(header(1), 0)

    def test_after_a_first_batch_failed_its_retry_comes_next(self):
        failed = self.states.admit(header(0, count=2), 0)
        behind = self.states.admit(header(2), 0)
        for pending in (behind, failed):
            self.states.roll_back(pending, KafkaError(ErrorCode.KAFKA_STORAGE_ERROR))
        self.assertRefused(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, header(2))
        self.states.admit(header(0, count=2), 0)

    def test_older_epoch_is_fenced(self):
        self.commit(header(0, epoch=3), 0)
        self.assertRefused(ErrorCode.INVALID_PRODUCER_EPOCH, header(1, epoch=2))
        self.assertRefused(ErrorCode.INVALID_PRODUCER_EPOCH, header(0, epoch=2))

    def test_newer_epoch_starts_at_zero(self):
        self.commit(header(0, count=5), 0)
        self.assertRefused(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, header(5, epoch=1))
        self.commit(header(0, epoch=1), 5)
        self.assertEqual(self.states.epoch(PRODUCER), 1)
        self.assertIsNone(self.states.original(header(0, count=5)))
        self.assertRefused(ErrorCode.INVALID_PRODUCER_EPOCH, header(5))

    def test_missing_epoch_or_sequence_is_invalid(self):
        self.assertRefused(ErrorCode.INVALID_RECORD, header(-1))

    def test_idle_producers_expire(self):
        self.commit(header(0, producer=1), 0, now_ms=0)
        self.commit(header(0, producer=2), 1, now_ms=DAY_MS // 2)
        self.commit(header(0, producer=3), 2, now_ms=DAY_MS + 1)
        self.assertNotIn(1, self.states)
        self.assertIn(2, self.states)
        self.assertEqual(len(self.states), 2)


class PartitionLogProducerTests(unittest.TestCase):
    async def setUp(self):
        directory = tempfile.mkdtemp(prefix="kafscale-producers-")
        self.store = EmbeddedMetadataStore(os.path.join(directory, "metadata.db"))
        self.store.startService()
        self.addCleanup(self.store.stopService)
        self.objects = Held(LocalObjectStore(os.path.join(directory, "objects")))
        self.metadata = Unreliable(self.store)
        self.topic = await self.store.create_topic("t", 1)
        self.log = await self.claim()

    async def claim(self, **settings):
        """A new owner's PartitionLog, with a cache of its own."""
        state = await self.store.partition_state("t", 0)
        state = await self.store.claim_partition("t", 0, state.leader_epoch)
        return PartitionLog(
            state, topic_id=self.topic.topic_id, metadata=self.metadata, objects=self.objects,
            cache=SegmentCache(64 << 20), budget=BufferBudget(64 << 20), settings=LogSettings(**settings),
            reactor=reactor,
        )

    async def assertFailsWith(self, code, deferred):
        with self.assertRaises(KafkaError) as raised:
            await deferred
        self.assertEqual(raised.exception.code, code)

    async def stored_batches(self, partition_log):
        """(base offset, base sequence) of every committed batch, read back
        from the object store."""
        found = []
        for ref in partition_log.state.segments:
            segment = read_segment(await self.objects.get(ref.key), ref.key)
            found += [(b.base_offset, b.base_sequence) for b in iter_batches(segment.batches)]
        return found

    async def test_retry_of_a_committed_batch_gets_the_original_offset(self):
        self.assertEqual(await self.log.append(*batch(0, count=3)), 0)
        self.assertEqual(await self.log.append(*batch(3)), 3)
        self.assertEqual(await self.log.append(*batch(0, count=3)), 0)
        self.assertEqual(await self.log.append(*batch(3)), 3)
        self.assertEqual(self.log.high_watermark, 4)
        self.assertEqual(await self.stored_batches(self.log), [(0, 0), (3, 3)])

    async def test_retry_of_a_pending_batch_waits_for_the_original(self):
        gate = self.objects.hold()
        first = self.log.append(*batch(0, count=2))
        retry = self.log.append(*batch(0, count=2))
        self.assertNoResult(retry)
        gate.callback(None)
        self.assertEqual([await first, await retry], [0, 0])
        self.assertEqual(self.log.high_watermark, 2)

    async def test_sequence_and_epoch_errors(self):
        await self.log.append(*batch(0))
        await self.assertFailsWith(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, self.log.append(*batch(2)))
        self.assertEqual(await self.log.append(*batch(0, epoch=1)), 1)
        await self.assertFailsWith(ErrorCode.INVALID_PRODUCER_EPOCH, self.log.append(*batch(1)))
        await self.assertFailsWith(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, self.log.append(*batch(4, epoch=2)))
        self.assertEqual(await self.log.append(*batch(1, epoch=1)), 2)
        self.assertEqual(self.log.high_watermark, 3)

    async def test_failed_flush_rolls_back_and_fails_the_batches_behind(self):
        # Load the (empty) producer state and let that flush finish, so the
        # next flush holds exactly the next append.
        await self.log.append(*batch(0, producer=9))
        await deferLater(reactor, 0)
        gate = self.objects.hold()
        failing = self.log.append(*batch(0))
        behind = self.log.append(*batch(1))
        other = self.log.append(*batch(0, producer=7))
        plain = self.log.append(*plain_batch())
        gate.errback(ObjectStoreError("S3 is down"))
        await self.assertFailsWith(ErrorCode.KAFKA_STORAGE_ERROR, failing)
        await self.assertFailsWith(ErrorCode.KAFKA_STORAGE_ERROR, behind)
        # Other producers' batches go on with the next flush.
        self.assertEqual([await other, await plain], [1, 2])
        # A batch sent before the producer heard of the failure must wait
        # for the retries of the failed ones.
        await self.assertFailsWith(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, self.log.append(*batch(2)))
        self.assertEqual(await self.log.append(*batch(0)), 3)
        self.assertEqual(await self.log.append(*batch(1)), 4)
        self.assertEqual(await self.stored_batches(self.log), [(0, 0), (1, 0), (2, -1), (3, 0), (4, 1)])

    async def test_commit_that_landed_despite_an_error_is_a_success(self):
        self.metadata.lose_answers = 1
        self.assertEqual(await self.log.append(*batch(0, count=2)), 0)
        self.assertEqual(await self.log.append(*batch(2)), 2)
        self.assertEqual(self.log.high_watermark, 3)

    async def test_commit_of_unknown_outcome_is_found_before_the_next_write(self):
        self.metadata.lose_answers = 1
        self.metadata.failing_reads = 1
        await self.assertFailsWith(ErrorCode.REQUEST_TIMED_OUT, self.log.append(*batch(0, count=2)))
        # The retry reaches the buffer, but the next flush learns first that
        # the batch is committed: the retry is refused, and its own retry
        # gets the original offset.
        await self.assertFailsWith(ErrorCode.REQUEST_TIMED_OUT, self.log.append(*batch(0, count=2)))
        self.assertEqual(await self.log.append(*batch(0, count=2)), 0)
        self.assertEqual(self.log.high_watermark, 2)
        self.assertEqual(await self.stored_batches(self.log), [(0, 0)])

    async def test_new_owner_rebuilds_the_state_from_the_log(self):
        await self.log.append(*batch(0, count=2))
        await self.log.append(*batch(0, producer=7))
        await self.log.append(*batch(2))
        await self.log.close()
        successor = await self.claim()
        retry = successor.append(*batch(2))
        self.assertNoResult(retry)  # waits for the rebuild
        self.assertEqual(await retry, 3)
        self.assertEqual(await successor.append(*batch(0, producer=7)), 2)
        await self.assertFailsWith(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, successor.append(*batch(4)))
        self.assertEqual(await successor.append(*batch(3)), 4)
        self.assertEqual(successor.high_watermark, 5)

    async def test_rebuild_reads_a_bounded_tail(self):
        for sequence in range(3):
            await self.log.append(*batch(sequence))
        await self.log.close()
        successor = await self.claim(producer_scan_segments=2)
        # Sequence 0 is in the third segment from the end: beyond the
        # window, its retry is no longer known as a duplicate.
        self.assertEqual(await successor.append(*batch(1)), 1)
        await self.assertFailsWith(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER, successor.append(*batch(0)))

    async def test_rebuild_failure_fails_the_waiting_batches_retriably(self):
        await self.log.append(*batch(0))
        await self.log.close()
        successor = await self.claim()
        for segment in successor.state.segments:
            await self.objects.delete(segment.key)
        await self.assertFailsWith(ErrorCode.KAFKA_STORAGE_ERROR, successor.append(*batch(1)))
        self.assertEqual(successor.high_watermark, 1)
