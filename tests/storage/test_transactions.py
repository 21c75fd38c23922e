"""A partition's transactions from its manifest: each flush's entry, the
last stable offset, the aborted-transaction index."""

from twisted.trial import unittest

from kafscale.metadata.interfaces import PartitionState, SegmentRef
from kafscale.protocol.records import iter_batches
from kafscale.storage.transactions import AbortedIndex, Marker, last_stable_offset, slice_transactions
from tests.support.records import build_batch


def entry(base, last, aborted=(), open_=()):
    return SegmentRef(base, last, 0, 10, last - base + 1, f"k{base}", aborted=aborted, open=open_)


def state(*entries):
    return PartitionState("t", 0, 1, 0, entries[-1].last_offset + 1 if entries else 0, entries, ())


def transactional(producer_id):
    [batch] = iter_batches(build_batch([(None, b"v", [])], producer=(producer_id, 0, 0), transactional=True))
    return batch


class SliceTransactionsTests(unittest.SynchronousTestCase):
    def test_first_batches_open_and_markers_close(self):
        before = state(entry(0, 4, open_=((7, 2),)))
        aborted, open_ = slice_transactions(before, [
            (5, transactional(8)), (6, transactional(7)), (7, Marker(7, 0, commit=False)),
            (8, transactional(9)), (9, Marker(9, 0, commit=True)), (10, transactional(9)),
        ])
        self.assertEqual(aborted, ((7, 2, 7),))
        self.assertEqual(open_, ((8, 5), (9, 10)))

    def test_marker_of_a_transaction_with_no_records_here(self):
        self.assertEqual(slice_transactions(state(), [(0, Marker(7, 0, commit=False))]), ((), ()))

    def test_last_stable_offset(self):
        self.assertEqual(last_stable_offset(state()), 0)
        self.assertEqual(last_stable_offset(state(entry(0, 9))), 10)
        self.assertEqual(last_stable_offset(state(entry(0, 9, open_=((7, 4), (8, 2))))), 2)


class AbortedIndexTests(unittest.SynchronousTestCase):
    def test_overlapping(self):
        index = AbortedIndex([entry(0, 9, aborted=((1, 0, 3),)), entry(10, 19, aborted=((2, 5, 12), (3, 14, 15)))])
        index.add([(4, 30, 40)])
        self.assertEqual(index.overlapping(0, 100), [(1, 0), (2, 5), (3, 14), (4, 30)])
        self.assertEqual(index.overlapping(4, 13), [(2, 5)])
        self.assertEqual(index.overlapping(16, 29), [])
        self.assertEqual(index.overlapping(35, 35), [(4, 30)])
