"""Produce through real clients, against both object stores: what is
acknowledged is durable, byte-exact, and readable by any client."""

import os
import shutil
import threading

from confluent_kafka import KafkaError as ClientError
from confluent_kafka import Producer
from twisted.internet.utils import getProcessOutputAndValue
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from kafscale.protocol.records import Compression, iter_batches
from kafscale.storage.partition_log import fetch_entry
from tests.support.brokers import in_thread, s3_args, start_broker
from tests.support.clients import consume, produce
from tests.support.records import build_batch
from tests.support.topics import create_topic, produce_request
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


class S3ProduceTests(ProduceContract, unittest.TestCase):
    async def store_args(self):
        return await s3_args(self)


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
