"""OffsetFetch: several groups in one request, a broker that is not the
coordinator, and confluent-kafka, kafka-python and aiokafka consumers that
commit, close, and are followed by a member resuming exactly where they
stopped."""

import asyncio
import time

from twisted.trial import unittest

from kafscale.metadata.interfaces import BrokerInfo
from kafscale.protocol.errors import ErrorCode
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import produce
from tests.support.groups import FAST_CONSUMER, FAST_REBALANCES
from tests.support.offsets import OffsetsWireTestCase, commit, commit_errors, fetch_offsets
from tests.support.topics import create_topic


class OffsetFetchTests(OffsetsWireTestCase):
    async def test_fetch_batched_groups(self):
        def run():
            connection = self.connection()
            commit(connection, 9, "one", self.topic, [(0, 1, -1, "")])
            commit(connection, 9, "two", self.topic, [(2, 2, -1, "")])
            for version in (8, 9):
                fetched = fetch_offsets(connection, version, {"one": None, "two": [(self.topic, [1, 2])], "none": None})
                self.assertEqual(fetched, {
                    "one": (ErrorCode.NONE, {("t", 0): (1, -1, "", ErrorCode.NONE)}),
                    "two": (ErrorCode.NONE, {("t", 1): (-1, -1, "", ErrorCode.NONE),
                                             ("t", 2): (2, -1, "", ErrorCode.NONE)}),
                    "none": (ErrorCode.NONE, {}),
                })

        await in_thread(run)

    async def test_not_the_coordinator(self):
        self.patch(self.broker.view, "coordinator_for", lambda group_id: BrokerInfo(7, "127.0.0.1", 1, None, 0))
        self.patch(self.broker.view, "coordinates", lambda group_id: False)

        def run():
            connection = self.connection()
            self.assertEqual(commit_errors(commit(connection, 9, "g", self.topic, [(0, 1, -1, "")])),
                             [(0, ErrorCode.NOT_COORDINATOR)])
            # v1 has no group-level error: every partition carries it.
            self.assertEqual(fetch_offsets(connection, 1, {"g": [(self.topic, [0])]}),
                             {"g": (ErrorCode.NONE, {("t", 0): (-1, -1, "", ErrorCode.NOT_COORDINATOR)})})
            self.assertEqual(fetch_offsets(connection, 7, {"g": [(self.topic, [0])]}), {"g": (ErrorCode.NOT_COORDINATOR, {})})
            self.assertEqual(fetch_offsets(connection, 8, {"g": None}), {"g": (ErrorCode.NOT_COORDINATOR, {})})

        await in_thread(run)


def values(count, start=0):
    return [(None, f"m{n}".encode(), None, n % 4) for n in range(start, start + count)]


class ResumeTests(unittest.TestCase):
    """A consumer reads everything, commits and closes; more is produced;
    the next member of the group reads exactly the new records."""

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *FAST_REBALANCES)
        await create_topic(self.bootstrap, "resume", partitions=4)
        await in_thread(produce, self.bootstrap, "resume", values(40))

    async def check_resume(self, consume_and_commit):
        first = await in_thread(consume_and_commit, 40)
        self.assertEqual(sorted(first), sorted(f"m{n}".encode() for n in range(40)))
        committed = await self.broker.groups.fetch_offsets("resume-group")
        self.assertEqual({key: c.offset for key, c in committed.items()}, {("resume", p): 10 for p in range(4)})
        await in_thread(produce, self.bootstrap, "resume", values(20, start=40))
        second = await in_thread(consume_and_commit, 20)
        self.assertEqual(sorted(second), sorted(f"m{n}".encode() for n in range(40, 60)))

    async def test_confluent_kafka(self):
        from confluent_kafka import Consumer

        def consume_and_commit(count):
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "resume-group",
                                 "auto.offset.reset": "earliest", "enable.auto.commit": False, **FAST_CONSUMER})
            consumer.subscribe(["resume"])
            received = []
            deadline = time.monotonic() + 20
            try:
                while len(received) < count and time.monotonic() < deadline:
                    message = consumer.poll(0.1)
                    if message is not None and not message.error():
                        received.append(message.value())
                # Anything beyond ``count`` would show up here.
                received.extend(m.value() for m in consumer.consume(100, 0.5) if not m.error())
                consumer.commit(asynchronous=False)
            finally:
                consumer.close()
            return received

        await self.check_resume(consume_and_commit)

    async def test_kafka_python(self):
        from kafka import KafkaConsumer

        def consume_and_commit(count):
            consumer = KafkaConsumer("resume", bootstrap_servers=self.bootstrap, group_id="resume-group",
                                     auto_offset_reset="earliest", enable_auto_commit=False,
                                     session_timeout_ms=6000, heartbeat_interval_ms=500)
            received = []
            deadline = time.monotonic() + 20
            try:
                while len(received) < count + 1 and time.monotonic() < deadline:
                    for records in consumer.poll(timeout_ms=200).values():
                        received.extend(r.value for r in records)
                    if len(received) >= count:
                        deadline = min(deadline, time.monotonic() + 0.5)
                consumer.commit()
            finally:
                consumer.close()
            return received

        await self.check_resume(consume_and_commit)

    async def test_aiokafka(self):
        from aiokafka import AIOKafkaConsumer

        async def consume_and_commit(count):
            consumer = AIOKafkaConsumer("resume", bootstrap_servers=self.bootstrap, group_id="resume-group",
                                        auto_offset_reset="earliest", enable_auto_commit=False,
                                        session_timeout_ms=6000, heartbeat_interval_ms=500)
            await consumer.start()
            received = []
            try:
                async with asyncio.timeout(20):
                    while len(received) < count:
                        for records in (await consumer.getmany(timeout_ms=200)).values():
                            received.extend(r.value for r in records)
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    received.extend(r.value for r in records)
                await consumer.commit()
            finally:
                await consumer.stop()
            return received

        await self.check_resume(lambda count: asyncio.run(consume_and_commit(count)))
