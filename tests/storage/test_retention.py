"""Retention: which segments go, and a broker that drops them (manifest
first, objects after) so that consumers below the log start reset; and
topic deletion's cleanup of the bucket."""

import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka import KafkaError as ClientError
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial import unittest

from kafscale.metadata.interfaces import PartitionState, SegmentRef
from kafscale.protocol.errors import ErrorCode
from kafscale.storage.retention import RetentionService, retention_start
from kafscale.storage.segment import topic_prefix
from tests.support.brokers import in_thread, s3_args, start_broker
from tests.support.clients import consume
from tests.support.topics import create_topic, fetch_at, produce_segments
from tests.support.waiting import eventually, sleep

HOUR_MS = 3_600_000


def first_error(bootstrap, topic, offset, reset):
    """Consume from ``offset`` with auto.offset.reset=``reset``: -> the first
    message or error the consumer reports."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "retention-tests",
                         "enable.auto.commit": False, "auto.offset.reset": reset})
    try:
        consumer.assign([TopicPartition(topic, 0, offset)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None:
                return message
        raise AssertionError("the consumer reported nothing")
    finally:
        consumer.close()


def segment(base, last, max_timestamp, size):
    return SegmentRef(base, last, max_timestamp, size, last - base + 1, f"t/x/0/segment-{base:020d}-1.kfs")


def state(log_start, *segments):
    return PartitionState("t", 0, 1, log_start, segments[-1].last_offset + 1 if segments else log_start,
                          tuple(segments), ((1, 0),))


class RetentionStartTests(unittest.TestCase):
    NOW = 1_800_000_000_000

    def setUp(self):
        self.segments = [
            segment(0, 9, self.NOW - 3 * HOUR_MS, 1000),
            segment(10, 19, self.NOW - 2 * HOUR_MS, 1000),
            segment(20, 29, self.NOW - HOUR_MS, 1000),
            segment(30, 39, self.NOW, 1000),
        ]

    def start(self, log_start=0, **configs):
        return retention_start(state(log_start, *self.segments), configs, self.NOW)

    def test_defaults_keep_a_week(self):
        self.assertEqual(self.start(), 0)

    def test_retention_ms_drops_segments_whose_newest_record_is_older(self):
        self.assertEqual(self.start(**{"retention.ms": str(90 * 60_000)}), 20)
        self.assertEqual(self.start(**{"retention.ms": "0"}), 30)
        self.assertEqual(self.start(**{"retention.ms": "-1"}), 0)

    def test_retention_ms_stops_at_the_first_segment_to_keep(self):
        # A segment with a future timestamp holds back the ones after it.
        self.segments[1] = segment(10, 19, self.NOW + HOUR_MS, 1000)
        self.assertEqual(self.start(**{"retention.ms": "1000"}), 10)

    def test_retention_bytes_keeps_at_least_that_much(self):
        self.assertEqual(self.start(**{"retention.bytes": "2000"}), 20)
        self.assertEqual(self.start(**{"retention.bytes": "2500"}), 10)
        self.assertEqual(self.start(**{"retention.bytes": "1"}), 30)
        self.assertEqual(self.start(**{"retention.bytes": "0"}), 40)
        self.assertEqual(self.start(**{"retention.bytes": "-1"}), 0)

    def test_either_limit_drops(self):
        self.assertEqual(self.start(**{"retention.ms": str(150 * 60_000), "retention.bytes": "3000"}), 10)

    def test_never_below_the_log_start(self):
        self.assertEqual(self.start(15), 15)
        self.assertEqual(self.start(15, **{"retention.ms": str(150 * 60_000)}), 15)
        self.assertEqual(self.start(15, **{"retention.bytes": "2000"}), 20)
        self.assertEqual(retention_start(state(7), {"retention.ms": "0"}, self.NOW), 7)


class _SlowLog:
    """A partition log whose log-start advance waits for the test."""

    closed = False
    log_start_offset = 0

    def __init__(self):
        self.state = state(0, segment(0, 9, 0, 10), segment(10, 19, 0, 10))
        self.advancing = Deferred()
        self.asked = []

    def advance_log_start(self, new_start):
        self.asked.append(new_start)
        return self.advancing


class _FailingOnceLog(_SlowLog):
    """A partition log whose state cannot be read the first time, as if a
    bug met it; advancing its start succeeds at once."""

    def __init__(self):
        super().__init__()
        self._state = self.__dict__.pop("state")
        self.reads = 0

    def __getattr__(self, name):
        if name != "state":
            raise AttributeError(name)
        self.reads += 1
        if self.reads == 1:
            raise RuntimeError("a bug met on the first pass")
        return self._state

    def advance_log_start(self, new_start):
        self.asked.append(new_start)
        return succeed([])


class _Topic:
    configs = {"retention.ms": "1000"}


class RetentionServiceTests(unittest.TestCase):
    def setUp(self):
        self.clock = Clock()
        self.clock.advance(100)
        self.log = _SlowLog()
        self.service = RetentionService({("t", 0): self.log}, {"t": _Topic()}, 5, clock=self.clock)

    def test_passes_run_every_interval(self):
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.addCleanup(self.log.advancing.callback, [])
        self.clock.advance(4.9)
        self.assertEqual(self.log.asked, [])
        self.clock.advance(0.1)
        self.assertEqual(self.log.asked, [20])

    def test_stopping_waits_for_the_running_pass(self):
        self.service.startService()
        self.clock.advance(5)
        stopped = self.service.stopService()
        self.assertNoResult(stopped)
        self.log.advancing.callback([])
        self.successResultOf(stopped)
        self.clock.advance(50)
        self.assertEqual(self.log.asked, [20])

    def test_a_failed_pass_is_logged_and_the_next_one_retries(self):
        failing = _FailingOnceLog()
        self.service.logs = {("t", 0): failing, ("t", 1): self.log}
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.log.advancing.callback([])
        self.clock.advance(5)
        self.assertEqual((failing.asked, self.log.asked), ([], [20]), "one partition's failure stopped the pass")
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.clock.advance(5)
        self.assertEqual(failing.asked, [20], "no pass came after the failed one")

    def test_a_pass_that_fails_outright_is_retried(self):
        topics = self.service.topics

        class FailingOnce:
            calls = 0

            def get(self, name):
                self.calls += 1
                if self.calls == 1:
                    raise RuntimeError("a bug met outside any partition")
                return topics.get(name)

        self.service.topics = FailingOnce()
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.log.advancing.callback([])
        self.clock.advance(5)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.clock.advance(5)
        self.assertEqual(self.log.asked, [20], "no pass came after the failed one")


class RetentionContract:
    """Run against a local-directory store and against S3 (moto)."""

    async def store_args(self):
        return []

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(
            self, "--retention-check-interval-ms", "50", *await self.store_args())

    async def assertKept(self, kept):
        """``kept`` are the slices of shared objects left in the manifest.
        (Retention drops manifest entries; the objects they named, which
        other partitions' slices may share, are garbage collection's.)"""
        for ref in kept:
            self.assertEqual(ref.format, 2)
            self.assertGreaterEqual(await self.broker.objects.head(ref.key), ref.position + ref.size)

    async def test_expired_segments_leave_the_manifest_then_the_bucket(self):
        await create_topic(self.bootstrap, "aging", **{"retention.ms": str(HOUR_MS)})
        now = int(time.time() * 1000)
        await in_thread(produce_segments, self.bootstrap, "aging", [
            [(b"a", now - 3 * HOUR_MS), (b"b", now - 3 * HOUR_MS)],
            [(b"c", now - 2 * HOUR_MS)],
            [(b"d", now - 2 * HOUR_MS), (b"e", now)],
        ])
        partition_log = self.broker.logs["aging", 0]
        await eventually(lambda: partition_log.log_start_offset == 3, what="log start 3")
        stored = await self.broker.metadata.partition_state("aging", 0)
        self.assertEqual((stored.log_start_offset, stored.next_offset), (3, 5))
        self.assertEqual([s.base_offset for s in stored.segments], [3])
        await self.assertKept(stored.segments)

        fetched = await in_thread(fetch_at, self.bootstrap, "aging", 0)
        self.assertEqual((fetched["error_code"], fetched["log_start_offset"]), (ErrorCode.OFFSET_OUT_OF_RANGE, 3))
        refused = await in_thread(first_error, self.bootstrap, "aging", 0, "error")
        self.assertEqual(refused.error().code(), ClientError._AUTO_OFFSET_RESET)
        reset = await in_thread(first_error, self.bootstrap, "aging", 0, "earliest")
        self.assertEqual((reset.offset(), reset.value()), (3, b"d"))

    async def test_retention_bytes_keeps_the_newest_segments(self):
        await create_topic(self.bootstrap, "sized", **{"retention.bytes": "1"})
        await in_thread(produce_segments, self.bootstrap, "sized",
                        [[(b"x" * 100, 0)], [(b"y" * 100, 0)], [(b"z" * 100, 0)]])
        await eventually(lambda: self.broker.logs["sized", 0].log_start_offset == 2, what="log start 2")
        kept = self.broker.logs["sized", 0].state.segments
        self.assertEqual([s.base_offset for s in kept], [2])
        await self.assertKept(kept)
        messages = await in_thread(consume, self.bootstrap, "sized", [0], 1, **{"auto.offset.reset": "earliest"})
        self.assertEqual([(m.offset(), m.value()) for m in messages], [(2, b"z" * 100)])

    async def test_a_new_retention_applies_on_the_next_pass(self):
        await create_topic(self.bootstrap, "kept")
        old = int(time.time() * 1000) - 2 * HOUR_MS
        await in_thread(produce_segments, self.bootstrap, "kept", [[(b"1", old)], [(b"2", old)], [(b"3", 0)]])
        await sleep(0.2)
        self.assertEqual(self.broker.logs["kept", 0].log_start_offset, 0)

        def alter():
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            resource = ConfigResource(ConfigResource.Type.TOPIC, "kept", incremental_configs=[
                ConfigEntry("retention.ms", str(HOUR_MS), incremental_operation=AlterConfigOpType.SET)])
            admin.incremental_alter_configs([resource])[resource].result(20)

        await in_thread(alter)
        await eventually(lambda: self.broker.logs["kept", 0].log_start_offset == 2, what="log start 2")
        kept = self.broker.logs["kept", 0].state.segments
        self.assertEqual([s.base_offset for s in kept], [2])
        await self.assertKept(kept)

    async def test_deleted_topic_objects_vanish_and_a_new_incarnation_starts_empty(self):
        await create_topic(self.bootstrap, "reborn")
        await in_thread(produce_segments, self.bootstrap, "reborn", [[(b"old-1", 0)], [(b"old-2", 0)]])
        old = self.broker.topics["reborn"]
        # As a broker before shared objects wrote them: format-1 segments
        # under the topic's prefix, which go with the topic.
        await self.broker.objects.put(f"{topic_prefix('reborn', old.topic_id)}0/segment-0-1-0.kfs", b"old")

        def delete():
            admin = AdminClient({"bootstrap.servers": self.bootstrap})
            admin.delete_topics(["reborn"])["reborn"].result(20)

        await in_thread(delete)
        await create_topic(self.bootstrap, "reborn")
        await in_thread(produce_segments, self.bootstrap, "reborn", [[(b"new", 0)]])

        async def gone():
            return not await self.broker.objects.list(topic_prefix("reborn", old.topic_id))

        await eventually(gone, what="the old incarnation's objects are gone")
        messages = await in_thread(consume, self.bootstrap, "reborn", [0], 1)
        self.assertEqual([(m.offset(), m.value()) for m in messages], [(0, b"new")])


class LocalStoreRetentionTests(RetentionContract, unittest.TestCase):
    pass


class S3RetentionTests(RetentionContract, unittest.TestCase):
    async def store_args(self):
        return await s3_args(self)
