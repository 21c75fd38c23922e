"""Turns: a long loop lets the reactor run other work every so many items."""

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from kafscale.turns import Turns


class TurnsTests(unittest.SynchronousTestCase):
    def test_every_nth_item_waits_for_the_reactor(self):
        clock = task.Clock()
        turns = Turns(clock, every=3)

        async def loop(done):
            for item in range(7):
                await turns.tick()
                done.append(item)

        done = []
        looping = Deferred.fromCoroutine(loop(done))
        # The third tick waits for a turn of the reactor.
        self.assertEqual(done, [0, 1])
        self.assertEqual(len(clock.getDelayedCalls()), 1)
        # A Clock runs the turns that fall due while it advances.
        clock.advance(0)
        self.assertEqual(done, list(range(7)))
        self.assertIsNone(self.successResultOf(looping))
