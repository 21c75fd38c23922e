"""Heartbeat through real consumers: a member that stops heartbeating is
removed after its session timeout, and a static member restarting within
its session keeps its partitions."""

import os
import signal
import subprocess
import sys
import time

from twisted.trial import unittest

from tests.support.brokers import SOURCE_ROOT, in_thread, start_broker
from tests.support.groups import FAST_REBALANCES, PollingConsumer
from tests.support.topics import create_topic
from tests.support.waiting import eventually


CONSUMER_PROCESS = """
import sys
from confluent_kafka import Consumer
consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2],
                     "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
consumer.subscribe([sys.argv[3]])
while True:
    consumer.poll(0.1)
"""


class SessionTests(unittest.TestCase):
    """confluent-kafka consumers, one of them in a process of its own."""

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "four", partitions=4)

    def consumer(self, group_id, **settings):
        consumer = PollingConsumer(self.bootstrap, group_id, "four", **settings)
        self.addCleanup(in_thread, consumer.close)
        return consumer

    async def test_survivor_takes_all_when_a_member_dies(self):
        survivor = self.consumer("dying")
        env = dict(os.environ, PYTHONPATH=SOURCE_ROOT)
        process = subprocess.Popen([sys.executable, "-c", CONSUMER_PROCESS, self.bootstrap, "dying", "four"], env=env)
        self.addCleanup(lambda: process.poll() is not None or process.kill())
        await eventually(lambda: len(survivor.assigned) == 2, timeout=30)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed = time.monotonic()
        await eventually(lambda: survivor.assigned == {0, 1, 2, 3}, timeout=20)
        # After the dead member's 6 s session, not long after.
        self.assertGreater(time.monotonic() - killed, 5)
        self.assertLess(time.monotonic() - killed, 9)

    async def test_static_member_restart_within_session_keeps_partitions(self):
        one = self.consumer("static", **{"group.instance.id": "one"})
        two = self.consumer("static", **{"group.instance.id": "two"})
        await eventually(lambda: len(one.assigned) == len(two.assigned) == 2, timeout=20)
        kept, revocations = set(two.assigned), one.revocations
        await in_thread(two.close)  # a static member leaves no LeaveGroup behind
        again = self.consumer("static", **{"group.instance.id": "two"})
        await eventually(lambda: again.assigned == kept, timeout=20)
        self.assertEqual(one.revocations, revocations)
        described = self.broker.groups._groups["static"].describe()
        self.assertEqual(described.state, "Stable")
        self.assertEqual(sorted(m.group_instance_id for m in described.members), ["one", "two"])
