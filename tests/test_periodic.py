"""PeriodicService: passes every interval, never overlapping, a failing
pass logged and followed by the next, a stop waiting for the running pass."""

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from kafscale.periodic import PeriodicService


class Passes(PeriodicService):
    name = "passes"

    def __init__(self, clock):
        super().__init__(10, clock)
        self.started = 0
        self.held = None
        self.fail = False

    async def run_pass(self):
        self.started += 1
        if self.fail:
            raise RuntimeError("this pass breaks")
        if self.held is not None:
            await self.held


class PeriodicServiceTests(unittest.SynchronousTestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.service = Passes(self.clock)
        self.service.startService()

    def test_a_pass_every_interval_never_two_at_once(self):
        self.assertEqual(self.service.started, 0)
        self.service.held = Deferred()
        self.clock.advance(10)
        self.assertEqual(self.service.started, 1)
        # The next is due, but none starts while one runs.
        self.clock.advance(10)
        self.assertEqual(self.service.started, 1)
        held, self.service.held = self.service.held, None
        held.callback(None)
        self.clock.advance(10)
        self.assertEqual(self.service.started, 2)
        self.successResultOf(self.service.stopService())

    def test_a_failing_pass_is_logged_and_the_next_comes(self):
        self.service.fail = True
        self.clock.advance(10)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.service.fail = False
        self.clock.advance(10)
        self.assertEqual(self.service.started, 2)
        self.successResultOf(self.service.stopService())

    def test_stopping_waits_for_the_running_pass(self):
        self.service.held = Deferred()
        self.clock.advance(10)
        stopped = self.service.stopService()
        self.assertNoResult(stopped)
        self.service.held.callback(None)
        self.successResultOf(stopped)
        self.clock.advance(100)
        self.assertEqual(self.service.started, 1)
