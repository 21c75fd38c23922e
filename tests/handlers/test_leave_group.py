"""LeaveGroup through real consumers: confluent-kafka, kafka-python and
aiokafka members share a topic's partitions, and the survivor takes them
all as soon as the other leaves."""

import time

from twisted.trial import unittest

from tests.support.brokers import in_thread, start_broker
from tests.support.groups import FAST_REBALANCES, PollingConsumer
from tests.support.topics import create_topic
from tests.support.waiting import eventually


class ConfluentLeaveTests(unittest.TestCase):
    """confluent-kafka consumers."""

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "four", partitions=4)

    def consumer(self, group_id, **settings):
        consumer = PollingConsumer(self.bootstrap, group_id, "four", **settings)
        self.addCleanup(in_thread, consumer.close)
        return consumer

    async def test_two_members_split_and_the_survivor_takes_all_on_leave(self):
        one, two = self.consumer("split"), self.consumer("split")
        await eventually(lambda: len(one.assigned) == len(two.assigned) == 2, timeout=20)
        self.assertEqual(one.assigned | two.assigned, {0, 1, 2, 3})
        await in_thread(two.close)
        waited = await eventually(lambda: one.assigned == {0, 1, 2, 3}, timeout=20)
        self.assertLess(waited, 3)  # LeaveGroup: no session timeout to wait for


class PythonClientMembershipTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "four", partitions=4)

    async def test_kafka_python_members_split_and_rebalance_on_leave(self):
        from kafka import KafkaConsumer

        def consumer():
            return KafkaConsumer("four", bootstrap_servers=self.bootstrap, group_id="kp",
                                 session_timeout_ms=6000, heartbeat_interval_ms=500)

        def poll_until(consumers, wanted, timeout=20):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                for c in consumers:
                    c.poll(timeout_ms=50)
                sizes = [len(c.assignment()) for c in consumers]
                if sizes == wanted:
                    return
            raise AssertionError(f"assignment sizes {sizes}, not {wanted}")

        def run():
            one = consumer()
            two = consumer()
            try:
                poll_until([one, two], [2, 2])
                self.assertEqual({p.partition for p in one.assignment() | two.assignment()}, {0, 1, 2, 3})
            finally:
                two.close()
            try:
                poll_until([one], [4])
            finally:
                one.close()

        await in_thread(run)

    async def test_aiokafka_members_split_and_rebalance_on_leave(self):
        import asyncio

        from aiokafka import AIOKafkaConsumer

        async def run():
            def consumer():
                return AIOKafkaConsumer("four", bootstrap_servers=self.bootstrap, group_id="aio",
                                        session_timeout_ms=6000, heartbeat_interval_ms=500)

            async def until(condition):
                async with asyncio.timeout(20):
                    while not condition():
                        await asyncio.sleep(0.05)

            one, two = consumer(), consumer()
            await one.start()
            await two.start()
            try:
                await until(lambda: len(one.assignment()) == len(two.assignment()) == 2)
            finally:
                await two.stop()
            try:
                await until(lambda: len(one.assignment()) == 4)
            finally:
                await one.stop()

        await in_thread(asyncio.run, run())
