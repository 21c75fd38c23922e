"""Producer ids: unique per node, never going backwards, within int64."""

from twisted.trial import unittest

from kafscale.storage.producer_ids import COUNTER_BITS, ID_EPOCH_MS, NODE_BITS, ProducerIdGenerator


class SteppedClock:
    def __init__(self, ms):
        self.ms = ms

    def __call__(self):
        return self.ms / 1000


def fields(producer_id):
    """(milliseconds, node, counter) of an id."""
    return (producer_id >> (NODE_BITS + COUNTER_BITS), (producer_id >> COUNTER_BITS) & (NODES - 1),
            producer_id & (PER_MILLISECOND - 1))


NODES = 1 << NODE_BITS
PER_MILLISECOND = 1 << COUNTER_BITS


class ProducerIdGeneratorTests(unittest.TestCase):
    def setUp(self):
        self.clock = SteppedClock(ID_EPOCH_MS + 5000)
        self.ids = ProducerIdGenerator(self.clock)

    def test_layout(self):
        self.assertEqual(fields(self.ids.next_id(3)), (5000, 3, 0))
        self.assertEqual(fields(self.ids.next_id(3)), (5000, 3, 1))
        self.clock.ms += 7
        self.assertEqual(fields(self.ids.next_id(NODES + 3)), (5007, 3, 0))
        # the node ids a cluster allocates (1001 and up) keep bits of their own
        self.assertEqual(fields(self.ids.next_id(1001)), (5007, 1001, 1))

    def test_clock_going_back_keeps_counting(self):
        first = self.ids.next_id(1)
        self.clock.ms -= 1000
        second = self.ids.next_id(1)
        self.assertGreater(second, first)
        self.assertEqual(fields(second), (5000, 1, 1))

    def test_counter_wrap_moves_to_the_next_millisecond_without_waiting(self):
        drawn = [self.ids.next_id(1) for _ in range(PER_MILLISECOND * 3)]
        self.assertEqual(drawn, sorted(set(drawn)))
        self.assertEqual(fields(drawn[-1]), (5002, 1, PER_MILLISECOND - 1))
        self.clock.ms += 1
        # The clock now reads 5001, behind the ids: they keep going up.
        self.assertEqual(fields(self.ids.next_id(1)), (5003, 1, 0))

    def test_ids_fit_in_int64(self):
        self.clock.ms = ID_EPOCH_MS + (1 << 41) - 1
        self.assertEqual(self.ids.next_id(NODES - 1), (1 << 63) - PER_MILLISECOND)
        self.clock.ms += 1
        self.assertRaises(OverflowError, self.ids.next_id, 0)
