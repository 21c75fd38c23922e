"""ListOffsets: earliest, latest, max timestamp and by time agree with what
was produced."""

import resource
import threading
import time

from confluent_kafka import Consumer, TopicPartition
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.records import bomb_batch
from tests.support.topics import create_topic, produce_request
from tests.support.wire import Connection

BASE_TIME = 1_700_000_000_000


def list_offsets(bootstrap, timestamp, topic="timed", partition=0, version=7, current_leader_epoch=-1):
    conn = Connection(bootstrap)
    try:
        body = {"replica_id": -1, "isolation_level": 0, "topics": [{"name": topic, "partitions": [
            {"partition_index": partition, "timestamp": timestamp, "current_leader_epoch": current_leader_epoch}]}]}
        return conn.request(ApiKey.LIST_OFFSETS, version, body)["topics"][0]["partitions"][0]
    finally:
        conn.close()


class ListOffsetsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)
        await create_topic(self.bootstrap, "timed")

    async def produce_at(self, times):
        from confluent_kafka import Producer

        def send():
            producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 0})
            for i, timestamp in enumerate(times):
                producer.produce("timed", value=b"%d" % i, timestamp=timestamp)
                producer.flush(10)  # one batch, one segment each
        await in_thread(send)

    async def test_empty_partition(self):
        self.assertEqual((await in_thread(list_offsets, self.bootstrap, -2))["offset"], 0)
        self.assertEqual((await in_thread(list_offsets, self.bootstrap, -1))["offset"], 0)
        answer = await in_thread(list_offsets, self.bootstrap, BASE_TIME)
        self.assertEqual((answer["offset"], answer["timestamp"]), (-1, -1))

    async def test_earliest_latest_and_by_time(self):
        times = [BASE_TIME + 1000 * i for i in range(10)]
        await self.produce_at(times)
        self.assertEqual((await in_thread(list_offsets, self.bootstrap, -2))["offset"], 0)
        latest = await in_thread(list_offsets, self.bootstrap, -1)
        self.assertEqual((latest["error_code"], latest["offset"]), (ErrorCode.NONE, 10))
        self.assertEqual(latest["leader_epoch"], self.broker.logs[("timed", 0)].leader_epoch)
        for target, expected in ((BASE_TIME - 5, 0), (BASE_TIME + 3000, 3), (BASE_TIME + 3500, 4),
                                 (BASE_TIME + 9000, 9)):
            answer = await in_thread(list_offsets, self.bootstrap, target)
            self.assertEqual((answer["offset"], answer["timestamp"]), (expected, times[expected]), target)
        answer = await in_thread(list_offsets, self.bootstrap, BASE_TIME + 9001)
        self.assertEqual((answer["offset"], answer["timestamp"]), (-1, -1))

    async def test_max_timestamp(self):
        await self.produce_at([BASE_TIME, BASE_TIME + 50_000, BASE_TIME + 10])
        answer = await in_thread(list_offsets, self.bootstrap, -3, version=7)
        self.assertEqual((answer["offset"], answer["timestamp"]), (1, BASE_TIME + 50_000))

    async def test_by_time_within_a_batch(self):
        """The first record at or after the time, not the batch's first."""
        from confluent_kafka import Producer

        def send():
            producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 100})
            for i in range(20):
                producer.produce("timed", value=b"%d" % i, timestamp=BASE_TIME + i)
            producer.flush(10)
        await in_thread(send)
        answer = await in_thread(list_offsets, self.bootstrap, BASE_TIME + 7)
        self.assertEqual((answer["offset"], answer["timestamp"]), (7, BASE_TIME + 7))

    async def test_confluent_offsets_for_times(self):
        await self.produce_at([BASE_TIME + 1000 * i for i in range(5)])

        def lookup():
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "t"})
            try:
                found = consumer.offsets_for_times([TopicPartition("timed", 0, BASE_TIME + 2500)], timeout=10)
                low, high = consumer.get_watermark_offsets(TopicPartition("timed", 0), timeout=10)
                return found[0].offset, low, high
            finally:
                consumer.close()

        self.assertEqual(await in_thread(lookup), (3, 0, 5))

    async def test_unknown_partition_and_stale_epoch(self):
        answer = await in_thread(list_offsets, self.bootstrap, -1, partition=3)
        self.assertEqual(answer["error_code"], ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        epoch = self.broker.logs[("timed", 0)].leader_epoch
        answer = await in_thread(list_offsets, self.bootstrap, -1, current_leader_epoch=epoch - 1)
        self.assertEqual(answer["error_code"], ErrorCode.FENCED_LEADER_EPOCH)

    async def test_unreadable_segment_is_a_storage_error(self):
        """A segment the object store cannot give back fails its partition
        with KAFKA_STORAGE_ERROR, as Fetch does; the connection stays."""
        await self.produce_at([BASE_TIME, BASE_TIME + 1000])
        for ref in self.broker.logs[("timed", 0)].state.segments:
            self.broker.cache.discard(ref)
            await self.broker.objects.delete(ref.key)
        conn = Connection(self.bootstrap)
        self.addCleanup(conn.close)
        body = {"replica_id": -1, "isolation_level": 0, "topics": [{"name": "timed", "partitions": [
            {"partition_index": 0, "timestamp": BASE_TIME + 500, "current_leader_epoch": -1}]}]}
        [answer] = (await in_thread(conn.request, ApiKey.LIST_OFFSETS, 7, body))["topics"][0]["partitions"]
        self.assertEqual((answer["error_code"], answer["offset"]), (ErrorCode.KAFKA_STORAGE_ERROR, -1))
        body["topics"][0]["partitions"][0]["timestamp"] = -1
        [answer] = (await in_thread(conn.request, ApiKey.LIST_OFFSETS, 7, body))["topics"][0]["partitions"]
        self.assertEqual((answer["error_code"], answer["offset"]), (ErrorCode.NONE, 2))


def longest_round_trip(bootstrap, stop):
    """Ask ApiVersions on its own connection until ``stop`` is set. -> the
    longest round trip in seconds."""
    conn = Connection(bootstrap)
    longest = 0.0
    try:
        while not stop.is_set():
            started = time.monotonic()
            conn.request(ApiKey.API_VERSIONS, 3, {})
            longest = max(longest, time.monotonic() - started)
    finally:
        conn.close()
    return longest


class DecompressionBombTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)
        await create_topic(self.bootstrap, "bombed")

    async def test_lookup_by_time_in_a_bomb_costs_bounded_memory_and_stalls_nobody(self):
        # 32 KiB of zstd that expand to 1 GiB; the record after the zeros
        # can only be found by decompressing them.
        def produce():
            conn = Connection(self.bootstrap)
            try:
                return conn.request(ApiKey.PRODUCE, 9, produce_request("bombed", bomb_batch(1 << 30, BASE_TIME)))
            finally:
                conn.close()

        produced = await in_thread(produce)
        self.assertEqual(produced["responses"][0]["partition_responses"][0]["error_code"], ErrorCode.NONE)
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        stop = threading.Event()
        pinging = in_thread(longest_round_trip, self.bootstrap, stop)
        try:
            answer = await in_thread(list_offsets, self.bootstrap, BASE_TIME + 5, topic="bombed")
        finally:
            stop.set()
        longest = await pinging
        growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
        self.assertEqual((answer["error_code"], answer["offset"]), (ErrorCode.CORRUPT_MESSAGE, -1))
        self.assertLess(growth_mib, 64, "the lookup decompressed the batch whole")
        self.assertLess(longest, 1.0, "the lookup stalled other connections")
