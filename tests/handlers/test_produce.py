"""Produce through real clients, against both object stores: what is
acknowledged is durable, byte-exact, and readable by any client."""

import os
import shutil
import struct
import threading

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
from confluent_kafka import KafkaError as ClientError
from confluent_kafka import Producer
from crc32c import crc32c
from kafka import KafkaConsumer
from kafka import TopicPartition as PyTopicPartition
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from kafscale.protocol.records import Compression, iter_batches
from kafscale.storage.partition_log import fetch_entry
from tests.support.brokers import in_thread, s3_args, start_broker
from tests.support.clients import consume, produce
from tests.support.records import build_batch
from tests.support.topics import create_topic, fetch_at, produce_request
from tests.support.wire import Connection


class ProduceContract:
    """Run against a local-directory store and against S3 (moto)."""

    async def store_args(self):
        return []

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *await self.store_args())

    async def test_confluent_round_trip_is_byte_exact(self):
        await create_topic(self.bootstrap, "exact", **{"max.message.bytes": str(2 << 20)})
        big = os.urandom(1 << 20)
        sent = [
            (b"key", b"value", [("h1", b"v1"), ("h2", b"")], 0),
            (None, b"no key", None, 0),
            (b"tombstone", None, None, 0),
            (b"", b"", [("empty", None)], 0),
            (b"big", big, None, 0),
        ]
        acks = await in_thread(produce, self.bootstrap, "exact", sent, **{"message.max.bytes": 2 << 20})
        self.assertEqual([offset for _, offset in acks], [0, 1, 2, 3, 4])
        got = await in_thread(consume, self.bootstrap, "exact", [0], len(sent),
                              **{"fetch.max.bytes": 4 << 20, "max.partition.fetch.bytes": 4 << 20})
        self.assertEqual(
            [(m.key(), m.value(), m.headers() or None) for m in got],
            [(k, v, [(n, x) for n, x in h] if h else None) for k, v, h, _ in sent],
        )

    async def test_kafka_python_round_trip(self):
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition

        def round_trip():
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
            futures = [producer.send("kp", key=b"k%d" % i, value=b"v%d" % i, headers=[("n", b"%d" % i)])
                       for i in range(50)]
            offsets = [f.get(timeout=20).offset for f in futures]
            producer.close()
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, consumer_timeout_ms=3000)
            consumer.assign([TopicPartition("kp", 0)])
            consumer.seek_to_beginning()
            records = [(r.offset, r.key, r.value, r.headers) for r in consumer]
            consumer.close()
            return offsets, records

        offsets, records = await in_thread(round_trip)
        self.assertEqual(offsets, list(range(50)))
        self.assertEqual(records, [(i, b"k%d" % i, b"v%d" % i, [("n", b"%d" % i)]) for i in range(50)])

    async def test_compressed_batches_pass_through_untouched(self):
        for codec, expected in (("gzip", Compression.GZIP), ("snappy", Compression.SNAPPY),
                                ("lz4", Compression.LZ4), ("zstd", Compression.ZSTD)):
            topic = f"compressed-{codec}"
            sent = [(b"k%d" % i, b"value %d " % i * 20, None, 0) for i in range(200)]
            await in_thread(produce, self.bootstrap, topic, sent, **{"compression.type": codec})
            got = await in_thread(consume, self.bootstrap, topic, [0], len(sent))
            self.assertEqual([(m.key(), m.value()) for m in got], [(k, v) for k, v, _, _ in sent])
            segment_ref = self.broker.logs[(topic, 0)].state.segments[0]
            segment = await fetch_entry(self.broker.objects, segment_ref)
            codecs = {batch.compression for batch in iter_batches(segment.batches)}
            self.assertEqual(codecs, {expected}, codec)

    async def test_two_producers_many_partitions(self):
        """100 000 messages over 6 partitions from 2 concurrent producers: no
        loss, no duplicate, order kept, offsets contiguous from 0."""
        await create_topic(self.bootstrap, "busy", partitions=6)
        per_producer = 50_000

        def send(name):
            messages = [(None, b"%s-%d" % (name, i), None, i % 6) for i in range(per_producer)]
            return produce(self.bootstrap, "busy", messages, **{"batch.size": 1 << 20})

        acks = await in_thread(lambda: _parallel(send, [b"a", b"b"]))
        self.assertEqual(sum(map(len, acks)), 2 * per_producer)
        got = await in_thread(consume, self.bootstrap, "busy", range(6), 2 * per_producer, timeout=60)
        self.assertEqual(len(got), 2 * per_producer)
        for partition in range(6):
            mine = [m for m in got if m.partition() == partition]
            self.assertEqual([m.offset() for m in mine], list(range(len(mine))))
            for producer_name in (b"a", b"b"):
                sequence = [int(m.value().split(b"-")[1]) for m in mine if m.value().startswith(producer_name)]
                self.assertEqual(sequence, sorted(sequence))
        self.assertEqual(len({m.value() for m in got}), 2 * per_producer)

    async def test_acks_zero_gets_no_answer_and_is_still_stored(self):
        await create_topic(self.bootstrap, "fire-and-forget")
        batch = build_batch([(b"k", b"fire", [])])

        def send():
            conn = Connection(self.bootstrap)
            try:
                conn.send(ApiKey.PRODUCE, 9, produce_request("fire-and-forget", batch, acks=0))
                after = conn.send(ApiKey.API_VERSIONS, 3, {})
                return after, conn.receive(ApiKey.API_VERSIONS, 3)[0]
            finally:
                conn.close()

        sent, answered = await in_thread(send)
        self.assertEqual(answered, sent)  # the first answer on the wire is ApiVersions'
        got = await in_thread(consume, self.bootstrap, "fire-and-forget", [0], 1)
        self.assertEqual([m.value() for m in got], [b"fire"])

    async def test_corrupt_batch_is_refused_and_the_broker_carries_on(self):
        await create_topic(self.bootstrap, "careful")
        batch = bytearray(build_batch([(b"k", b"value", [])]))
        batch[-1] ^= 0xFF  # a record byte: the CRC no longer matches

        def send():
            conn = Connection(self.bootstrap)
            try:
                return conn.request(ApiKey.PRODUCE, 9, produce_request("careful", bytes(batch)))
            finally:
                conn.close()

        response = await in_thread(send)
        partition = response["responses"][0]["partition_responses"][0]
        self.assertEqual(partition["error_code"], ErrorCode.CORRUPT_MESSAGE)
        acks = await in_thread(produce, self.bootstrap, "careful", [(None, b"fine", None, 0)])
        self.assertEqual(acks, [(0, 0)])

    async def test_batch_over_max_message_bytes(self):
        await create_topic(self.bootstrap, "small", **{"max.message.bytes": "2000"})

        def send():
            producer = Producer({"bootstrap.servers": self.bootstrap, "message.max.bytes": 1 << 20,
                                 "retries": 0})
            errors = []
            producer.produce("small", value=b"x" * 5000, on_delivery=lambda e, m: errors.append(e))
            producer.flush(20)
            return errors

        errors = await in_thread(send)
        self.assertEqual([e.code() for e in errors], [ClientError.MSG_SIZE_TOO_LARGE])
        self.assertEqual(self.broker.logs[("small", 0)].high_watermark, 0)

    async def test_unknown_partition(self):
        await create_topic(self.bootstrap, "one")

        def send():
            conn = Connection(self.bootstrap)
            try:
                return conn.request(ApiKey.PRODUCE, 9, produce_request("one", build_batch([(b"k", b"v", [])]),
                                                                        partition=7))
            finally:
                conn.close()

        response = await in_thread(send)
        self.assertEqual(response["responses"][0]["partition_responses"][0]["error_code"],
                         ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)

    async def test_kcat_produces_and_consumes(self):
        kcat = shutil.which("kcat")
        if kcat is None:
            raise unittest.SkipTest("kcat is not installed (Debian package kcat)")
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"".join(b"line %d\n" % i for i in range(100)))
        out, err, code = await getProcessOutputAndValue(
            kcat, ["-P", "-b", self.bootstrap, "-t", "by-kcat", "-l", path], env=os.environ)
        self.assertEqual(code, 0, err)
        out, err, code = await getProcessOutputAndValue(
            kcat, ["-C", "-b", self.bootstrap, "-t", "by-kcat", "-o", "beginning", "-c", "100", "-e",
                   "-f", "%o:%s\n"], env=os.environ)
        self.assertEqual(code, 0, err)
        self.assertEqual(out.splitlines(), [b"%d:line %d" % (i, i) for i in range(100)])


class LocalStoreProduceTests(ProduceContract, unittest.TestCase):
    pass


class RewritingTests(unittest.TestCase):
    """What a topic's message.timestamp.type and compression.type make the
    broker do to produced batches, as consumers of every client see it."""

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)

    async def stored_batches(self, topic):
        return [batch for _, batch in await in_thread(fetched_batches, self.bootstrap, topic)]

    async def test_log_append_time_is_what_consumers_see(self):
        await create_topic(self.bootstrap, "stamped", **{"message.timestamp.type": "LogAppendTime"})
        before = int(self.broker.reactor.seconds() * 1000)
        delivered = []

        def send():
            producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 20})
            for i in range(5):
                # Producer timestamps far in the past: the broker's replaces them.
                producer.produce("stamped", value=b"v%d" % i, timestamp=1_000 + i,
                                 on_delivery=lambda error, message: delivered.append(message.timestamp()))
            producer.flush(20)

        await in_thread(send)
        after = int(self.broker.reactor.seconds() * 1000)
        # librdkafka reports the broker's log_append_time_ms from the answer.
        self.assertEqual({kind for kind, _ in delivered}, {TIMESTAMP_LOG_APPEND_TIME})
        (stamp,) = {timestamp for _, timestamp in delivered}
        self.assertTrue(before <= stamp <= after, (before, stamp, after))

        got = await in_thread(consume, self.bootstrap, "stamped", [0], 5)
        self.assertEqual([m.value() for m in got], [b"v%d" % i for i in range(5)])
        self.assertEqual({m.timestamp() for m in got}, {(TIMESTAMP_LOG_APPEND_TIME, stamp)})

        def kafka_python():
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, consumer_timeout_ms=3000)
            consumer.assign([PyTopicPartition("stamped", 0)])
            consumer.seek_to_beginning()
            records = [(r.timestamp_type, r.timestamp) for r in consumer]
            consumer.close()
            return records

        self.assertEqual(await in_thread(kafka_python), [(1, stamp)] * 5)
        (batch,) = await self.stored_batches("stamped")
        self.assertTrue(batch.log_append_time)
        self.assertEqual((batch.first_timestamp, batch.max_timestamp), (1_000, stamp))

    async def test_create_time_bounds_refuse_far_timestamps(self):
        await create_topic(self.bootstrap, "bounded", **{"message.timestamp.before.max.ms": "3600000",
                                                         "message.timestamp.after.max.ms": "3600000"})

        def send(timestamp):
            conn = Connection(self.bootstrap)
            try:
                batch = build_batch([(b"k", b"v", [])], first_timestamp=timestamp)
                return conn.request(ApiKey.PRODUCE, 9, produce_request("bounded", batch))
            finally:
                conn.close()

        now = int(self.broker.reactor.seconds() * 1000)
        for timestamp, code in ((now - 7_200_000, ErrorCode.INVALID_TIMESTAMP), (now + 7_200_000,
                                ErrorCode.INVALID_TIMESTAMP), (now, ErrorCode.NONE)):
            answer = (await in_thread(send, timestamp))["responses"][0]["partition_responses"][0]
            self.assertEqual(answer["error_code"], code, timestamp)
        self.assertEqual(self.broker.logs["bounded", 0].high_watermark, 1)

    async def test_broker_recompresses_in_the_topics_codec(self):
        sent = [(b"k%d" % i, b"value %d " % i * 20, None, 0) for i in range(100)]
        for codec, expected in (("zstd", Compression.ZSTD), ("lz4", Compression.LZ4),
                                ("snappy", Compression.SNAPPY), ("gzip", Compression.GZIP),
                                ("uncompressed", Compression.NONE)):
            topic = f"recompressed-{codec}"
            await create_topic(self.bootstrap, topic, **{"compression.type": codec})
            # Whatever the producer used, batches are stored in the topic's codec.
            producer_codec = "none" if codec != "uncompressed" else "gzip"
            await in_thread(produce, self.bootstrap, topic, sent, **{"compression.type": producer_codec})
            got = await in_thread(consume, self.bootstrap, topic, [0], len(sent))
            self.assertEqual([(m.key(), m.value()) for m in got], [(k, v) for k, v, _, _ in sent], codec)
            self.assertEqual({batch.compression for batch in await self.stored_batches(topic)}, {expected}, codec)

            def kafka_python():
                consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, consumer_timeout_ms=3000)
                consumer.assign([PyTopicPartition(topic, 0)])
                consumer.seek_to_beginning()
                records = [(r.key, r.value) for r in consumer]
                consumer.close()
                return records

            self.assertEqual(await in_thread(kafka_python), [(k, v) for k, v, _, _ in sent], codec)

    async def test_a_body_that_does_not_decompress_is_refused(self):
        await create_topic(self.bootstrap, "strict", **{"compression.type": "zstd"})
        batch = bytearray(build_batch([(b"k", b"v" * 200, [])] * 3, compression=Compression.GZIP))
        batch[70:80] = b"\xff" * 10
        struct.pack_into(">I", batch, 17, crc32c(bytes(batch[21:])))

        def send():
            conn = Connection(self.bootstrap)
            try:
                return conn.request(ApiKey.PRODUCE, 9, produce_request("strict", bytes(batch)))
            finally:
                conn.close()

        answer = (await in_thread(send))["responses"][0]["partition_responses"][0]
        self.assertEqual(answer["error_code"], ErrorCode.CORRUPT_MESSAGE)
        self.assertEqual(self.broker.logs["strict", 0].high_watermark, 0)


class S3ProduceTests(ProduceContract, unittest.TestCase):
    async def store_args(self):
        return await s3_args(self)


def fetched_batches(bootstrap, topic):
    """The batches a fetch from the start of partition 0 answers, as
    (offset, BatchInfo): what any consumer receives on the wire."""
    return [(batch.base_offset, batch) for batch in iter_batches(bytes(fetch_at(bootstrap, topic, 0)["records"]))]


def _parallel(function, arguments):
    results = [None] * len(arguments)

    def run(index, argument):
        results[index] = function(argument)

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(arguments)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
