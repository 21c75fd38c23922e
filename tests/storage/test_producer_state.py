"""Idempotent producers' state: the sequence rules, epochs, retries and
expiry (through a PartitionLog: tests/storage/test_partition_log.py)."""

from twisted.trial import unittest

from kafscale.storage.errors import InvalidBatch, OutOfOrderSequence, StaleProducerEpoch, StorageUnavailable
from kafscale.storage.producer_state import SEQUENCE_LIMIT, ProducerStates
from tests.support.records import PRODUCER, producer_batch

DAY_MS = 86_400_000


def header(sequence, count=1, epoch=0, producer=PRODUCER):
    return producer_batch(sequence, count, epoch, producer)[1][0]


class ProducerStatesTests(unittest.TestCase):
    """The rules, without a log: offsets are whatever the test commits."""

    def setUp(self):
        self.states = ProducerStates(expiration_ms=DAY_MS)

    def commit(self, first_batch, offset, now_ms=0):
        pending = self.states.admit(first_batch, now_ms)
        self.states.commit(pending, offset, now_ms)

    def assertRefused(self, kind, first_batch):
        self.assertRaises(kind, self.states.admit, first_batch, 0)

    def test_unknown_producer_is_accepted_at_any_sequence(self):
        self.assertIsNone(self.states.original(header(17)))
        self.states.admit(header(17), 0)
        self.assertIn(PRODUCER, self.states)

    def test_next_sequence_follows_the_last_record(self):
        self.commit(header(0, count=3), 100)
        self.assertRefused(OutOfOrderSequence, header(2))
        self.assertRefused(OutOfOrderSequence, header(4))
        self.commit(header(3), 103)

    def test_sequence_wraps_after_int32_max(self):
        self.commit(header(SEQUENCE_LIMIT - 2, count=2), 0)
        self.assertRefused(OutOfOrderSequence, header(1))
        self.commit(header(0, count=2), 2)
        self.assertEqual(self.successResultOf(self.states.original(header(0, count=2))), 2)

    def test_the_last_five_committed_batches_are_recognised(self):
        for sequence in range(7):
            self.commit(header(sequence), 10 + sequence)
        self.assertEqual([self.successResultOf(self.states.original(header(s))) for s in range(2, 7)],
                         [12, 13, 14, 15, 16])
        self.assertIsNone(self.states.original(header(1)))
        self.assertRefused(OutOfOrderSequence, header(1))

    def test_a_batch_with_other_bounds_is_no_duplicate(self):
        self.commit(header(0, count=2), 0)
        self.assertIsNone(self.states.original(header(0, count=1)))
        self.assertRefused(OutOfOrderSequence, header(0, count=1))

    def test_pending_duplicate_fires_with_the_original(self):
        pending = self.states.admit(header(0), 0)
        retry = self.states.original(header(0))
        self.assertNoResult(retry)
        self.states.commit(pending, 55, 0)
        self.assertEqual(self.successResultOf(retry), 55)

    def test_pending_duplicate_fails_with_the_original(self):
        pending = self.states.admit(header(0), 0)
        retry = self.states.original(header(0))
        self.states.roll_back(pending, StorageUnavailable("S3 is down"))
        self.failureResultOf(retry, StorageUnavailable)

    def test_roll_back_lets_the_retry_in(self):
        self.commit(header(0), 0)
        pending = self.states.admit(header(1), 0)
        self.states.roll_back(pending, StorageUnavailable("S3 is down"))
        self.assertIsNone(self.states.original(header(1)))
        self.states.admit(header(1), 0)

    def test_after_a_first_batch_failed_its_retry_comes_next(self):
        failed = self.states.admit(header(0, count=2), 0)
        behind = self.states.admit(header(2), 0)
        for pending in (behind, failed):
            self.states.roll_back(pending, StorageUnavailable("S3 is down"))
        self.assertRefused(OutOfOrderSequence, header(2))
        self.states.admit(header(0, count=2), 0)

    def test_older_epoch_is_fenced(self):
        self.commit(header(0, epoch=3), 0)
        self.assertRefused(StaleProducerEpoch, header(1, epoch=2))
        self.assertRefused(StaleProducerEpoch, header(0, epoch=2))

    def test_newer_epoch_starts_at_zero(self):
        self.commit(header(0, count=5), 0)
        self.assertRefused(OutOfOrderSequence, header(5, epoch=1))
        self.commit(header(0, epoch=1), 5)
        self.assertEqual(self.states.epoch(PRODUCER), 1)
        self.assertIsNone(self.states.original(header(0, count=5)))
        self.assertRefused(StaleProducerEpoch, header(5))

    def test_missing_epoch_or_sequence_is_invalid(self):
        self.assertRefused(InvalidBatch, header(-1))

    def test_idle_producers_expire(self):
        self.commit(header(0, producer=1), 0, now_ms=0)
        self.commit(header(0, producer=2), 1, now_ms=DAY_MS // 2)
        self.commit(header(0, producer=3), 2, now_ms=DAY_MS + 1)
        self.assertNotIn(1, self.states)
        self.assertIn(2, self.states)
        self.assertEqual(len(self.states), 2)
