"""Fetch: committed data only, long-polls woken by commits, byte limits,
offsets out of range."""

import time

from confluent_kafka import Consumer, TopicPartition
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from kafscale.protocol.records import iter_batches
from tests.support.brokers import in_thread, s3_args, start_broker
from tests.support.clients import produce
from tests.support.topics import create_topic
from tests.support.waiting import eventually, sleep
from tests.support.wire import Connection


def fetch_request(topic, offset, partition=0, max_wait_ms=0, min_bytes=1, partition_max_bytes=1 << 20,
                  max_bytes=50 << 20, topic_id=None, current_leader_epoch=-1):
    entry = {"topic": topic, "partitions": [{
        "partition": partition, "fetch_offset": offset, "partition_max_bytes": partition_max_bytes,
        "current_leader_epoch": current_leader_epoch}]}
    if topic_id is not None:
        entry["topic_id"] = topic_id
    return {"max_wait_ms": max_wait_ms, "min_bytes": min_bytes, "max_bytes": max_bytes, "topics": [entry]}


def fetch(bootstrap, version, **kwargs):
    conn = Connection(bootstrap)
    try:
        return conn.request(ApiKey.FETCH, version, fetch_request(**kwargs))
    finally:
        conn.close()


class FetchContract:
    async def store_args(self):
        return []

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *await self.store_args())
        await create_topic(self.bootstrap, "events", partitions=2)

    async def produce(self, count, partition=0, size=100):
        messages = [(b"k%d" % i, b"%06d" % i + b"x" * size, None, partition) for i in range(count)]
        return await in_thread(produce, self.bootstrap, "events", messages)

    async def test_long_poll_is_woken_by_a_commit(self):
        started = time.monotonic()
        pending = in_thread(fetch, self.bootstrap, 11, topic="events", offset=0, max_wait_ms=10_000)
        await sleep(0.3)
        await self.produce(1)
        response = await pending
        elapsed = time.monotonic() - started
        partition = response["responses"][0]["partitions"][0]
        self.assertEqual(partition["error_code"], ErrorCode.NONE)
        self.assertEqual(partition["high_watermark"], 1)
        self.assertEqual(len(list(iter_batches(partition["records"]))), 1)
        self.assertLess(elapsed, 5, "the fetch waited out max_wait_ms instead of waking on the commit")

    async def test_long_poll_waits_out_max_wait_without_data(self):
        started = time.monotonic()
        response = await in_thread(fetch, self.bootstrap, 11, topic="events", offset=0, max_wait_ms=400)
        self.assertGreaterEqual(time.monotonic() - started, 0.35)
        partition = response["responses"][0]["partitions"][0]
        self.assertEqual((partition["error_code"], len(partition["records"])), (ErrorCode.NONE, 0))

    async def test_partition_max_bytes_returns_whole_batches(self):
        for _ in range(5):
            await self.produce(10, size=1000)  # five batches of about 10 KB
        response = await in_thread(fetch, self.bootstrap, 11, topic="events", offset=0, partition_max_bytes=25_000)
        batches = list(iter_batches(response["responses"][0]["partitions"][0]["records"]))
        self.assertEqual([b.base_offset for b in batches], [0, 10])
        # the first batch comes even when it alone is larger than the limit
        response = await in_thread(fetch, self.bootstrap, 11, topic="events", offset=15, partition_max_bytes=100)
        batches = list(iter_batches(response["responses"][0]["partitions"][0]["records"]))
        self.assertEqual([b.base_offset for b in batches], [10])

    async def test_versions_before_fetch_sessions(self):
        await self.produce(3)
        for version in (4, 5, 6):
            response = await in_thread(fetch, self.bootstrap, version, topic="events", offset=0)
            partition = response["responses"][0]["partitions"][0]
            self.assertEqual((partition["error_code"], partition["high_watermark"]), (ErrorCode.NONE, 3))
            self.assertEqual([b.base_offset for b in iter_batches(partition["records"])], [0])

    async def test_offset_out_of_range(self):
        await self.produce(3)
        response = await in_thread(fetch, self.bootstrap, 11, topic="events", offset=4)
        partition = response["responses"][0]["partitions"][0]
        self.assertEqual(partition["error_code"], ErrorCode.OFFSET_OUT_OF_RANGE)
        self.assertEqual(partition["high_watermark"], 3)

    async def test_auto_offset_reset_after_out_of_range(self):
        await self.produce(5)

        def consume_from(offset, reset):
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "reset-test",
                                 "auto.offset.reset": reset, "enable.auto.commit": False})
            try:
                consumer.assign([TopicPartition("events", 0, offset)])
                got = []
                deadline = time.monotonic() + 15
                while time.monotonic() < deadline and len(got) < 5:
                    message = consumer.poll(0.5)
                    if message is not None and not message.error():
                        got.append(message.offset())
                        if reset == "latest":
                            break
                return got
            finally:
                consumer.close()

        self.assertEqual(await in_thread(consume_from, 1000, "earliest"), [0, 1, 2, 3, 4])

    async def test_topic_ids_from_v13(self):
        await self.produce(2)
        topic_id = self.broker.topics["events"].topic_id
        response = await in_thread(fetch, self.bootstrap, 16, topic="events", offset=0, topic_id=topic_id)
        topic = response["responses"][0]
        self.assertEqual(topic["topic_id"], topic_id)
        self.assertEqual(topic["partitions"][0]["high_watermark"], 2)
        import uuid

        response = await in_thread(fetch, self.bootstrap, 16, topic="events", offset=0, topic_id=uuid.uuid4())
        self.assertEqual(response["responses"][0]["partitions"][0]["error_code"], ErrorCode.UNKNOWN_TOPIC_ID)

    async def test_stale_and_future_leader_epochs(self):
        await self.produce(1)
        epoch = self.broker.logs[("events", 0)].leader_epoch
        for asked, expected in ((epoch, ErrorCode.NONE), (epoch - 1, ErrorCode.FENCED_LEADER_EPOCH),
                                (epoch + 1, ErrorCode.UNKNOWN_LEADER_EPOCH)):
            response = await in_thread(fetch, self.bootstrap, 11, topic="events", offset=0,
                                       current_leader_epoch=asked)
            self.assertEqual(response["responses"][0]["partitions"][0]["error_code"], expected, asked)

    async def test_reads_after_the_cache_is_gone(self):
        """A segment not in memory is read back from the object store."""
        await self.produce(50, size=2000)
        self.broker.cache.discard(self.broker.logs[("events", 0)].state.segments[0])
        response = await in_thread(fetch, self.bootstrap, 11, topic="events", offset=0)
        batches = list(iter_batches(response["responses"][0]["partitions"][0]["records"]))
        self.assertEqual(sum(b.record_count for b in batches), 50)

    async def test_sessions_are_declined(self):
        body = fetch_request("events", 0)
        body.update(session_id=0, session_epoch=0)  # asks for a new session

        def ask(request_body):
            conn = Connection(self.bootstrap)
            try:
                return conn.request(ApiKey.FETCH, 11, request_body)
            finally:
                conn.close()

        response = await in_thread(ask, body)
        self.assertEqual((response["error_code"], response["session_id"]), (ErrorCode.NONE, 0))
        body.update(session_id=1234, session_epoch=1)
        response = await in_thread(ask, body)
        self.assertEqual(response["error_code"], ErrorCode.FETCH_SESSION_ID_NOT_FOUND)


class LocalStoreFetchTests(FetchContract, unittest.TestCase):
    pass


class S3FetchTests(FetchContract, unittest.TestCase):
    async def store_args(self):
        return await s3_args(self)


class FetchBoundsTests(unittest.TestCase):
    """What one fetch may cost: bounded in time, bytes and work."""

    async def start(self, *args):
        self.broker, self.bootstrap = await start_broker(self, *args)
        await create_topic(self.bootstrap, "events", partitions=2)

    async def produce(self, count, partition=0, size=100):
        messages = [(b"k%d" % i, b"%06d" % i + b"x" * size, None, partition) for i in range(count)]
        return await in_thread(produce, self.bootstrap, "events", messages)

    def count_reads(self, partition):
        partition_log = self.broker.logs[("events", partition)]
        counted = [0]
        read = partition_log.read

        def counting_read(*args, **kwargs):
            counted[0] += 1
            return read(*args, **kwargs)

        partition_log.read = counting_read
        return counted

    async def test_parked_fetch_ends_with_its_connection(self):
        await self.start()
        partition_log = self.broker.logs[("events", 0)]
        conn = Connection(self.bootstrap)
        await in_thread(conn.send, ApiKey.FETCH, 11, fetch_request("events", 0, max_wait_ms=60_000))
        await eventually(lambda: partition_log._listeners)
        conn.close()
        await eventually(lambda: not partition_log._listeners)

    async def test_max_wait_is_bounded(self):
        await self.start("--fetch-max-wait-ms", "200")
        started = time.monotonic()
        response = await in_thread(fetch, self.bootstrap, 11, topic="events", offset=0, max_wait_ms=600_000)
        self.assertLess(time.monotonic() - started, 5)
        self.assertEqual(response["responses"][0]["partitions"][0]["records"], b"")

    async def test_a_commit_rereads_only_the_partitions_that_committed(self):
        await self.start()
        reads = [self.count_reads(0), self.count_reads(1)]
        body = fetch_request("events", 0, max_wait_ms=20_000, min_bytes=3000)
        body["topics"][0]["partitions"].append({"partition": 1, "fetch_offset": 0, "partition_max_bytes": 1 << 20,
                                               "current_leader_epoch": -1})

        def ask():
            conn = Connection(self.bootstrap, timeout=30)
            try:
                return conn.request(ApiKey.FETCH, 11, body)
            finally:
                conn.close()

        pending = in_thread(ask)
        await eventually(lambda: reads[0][0] == 1 and reads[1][0] == 1)
        for _ in range(3):
            await self.produce(1, partition=1)
        await eventually(lambda: reads[1][0] == 4)
        self.assertEqual(reads[0][0], 1)
        await self.produce(1, partition=0, size=5000)
        response = await pending
        partitions = response["responses"][0]["partitions"]
        self.assertEqual([sum(b.record_count for b in iter_batches(p["records"])) for p in partitions], [1, 3])
        self.assertEqual((reads[0][0], reads[1][0]), (2, 4))

    async def test_broker_caps_the_bytes_of_one_fetch(self):
        await self.start("--fetch-max-bytes", "25000")
        for _ in range(5):
            await self.produce(10, size=1000)  # five batches of about 10 KB
        response = await in_thread(fetch, self.bootstrap, 11, topic="events", offset=0, max_bytes=50 << 20)
        batches = list(iter_batches(response["responses"][0]["partitions"][0]["records"]))
        self.assertEqual([b.base_offset for b in batches], [0, 10])

    async def test_prefetch_stays_within_the_fetch_budget(self):
        await self.start()
        segments = []
        for partition in (0, 1):
            await self.produce(50, partition=partition, size=2000)
            segment = self.broker.logs[("events", partition)].state.segments[0]
            self.broker.cache.discard(segment)
            segments.append(segment)
        body = fetch_request("events", 0, max_bytes=30_000)
        body["topics"][0]["partitions"].append({"partition": 1, "fetch_offset": 0, "partition_max_bytes": 1 << 20,
                                               "current_leader_epoch": -1})

        def ask():
            conn = Connection(self.bootstrap)
            try:
                return conn.request(ApiKey.FETCH, 11, body)
            finally:
                conn.close()

        response = await in_thread(ask)
        partitions = response["responses"][0]["partitions"]
        self.assertGreater(len(partitions[0]["records"]), 0)
        self.assertEqual(partitions[1]["records"], b"")
        self.assertIn(segments[0], self.broker.cache)
        self.assertNotIn(segments[1], self.broker.cache)

    async def test_a_fetch_over_many_partitions_lets_other_work_in(self):
        from twisted.internet import reactor

        from kafscale.handlers import common
        from kafscale.handlers import fetch as fetch_handler
        from kafscale.handlers.dispatch import Request
        from kafscale.protocol.messages import request_codec

        self.patch(common, "ENTRIES_PER_TURN", 2)
        self.broker, self.bootstrap = await start_broker(self)
        await create_topic(self.bootstrap, "wide", partitions=6)
        events = []
        for partition in range(6):
            partition_log = self.broker.logs[("wide", partition)]

            def reading(*args, read=partition_log.read, partition=partition, **kwargs):
                events.append(partition)
                return read(*args, **kwargs)

            partition_log.read = reading
        body = fetch_request("wide", 0)
        body["topics"][0]["partitions"] = [{"partition": p, "fetch_offset": 0, "partition_max_bytes": 1 << 20,
                                            "current_leader_epoch": -1} for p in range(6)]
        codec = request_codec(ApiKey.FETCH, 11)
        body, _ = codec.decode(codec.encode(body))
        reactor.callLater(0, events.append, "other work")
        broker = self.broker
        await fetch_handler.handle(Request(
            ApiKey.FETCH, 11, 1, "t", body, "127.0.0.1", topics=broker.topics, logs=broker.logs, view=broker.view,
            groups=broker.groups, config=broker.config, clock=broker.reactor, rewriter=broker.rewriter))
        self.assertEqual(events, ["other work", 0, 1, 2, 3, 4, 5])
