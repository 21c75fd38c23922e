"""DeleteRecords through confluent-kafka and kafka-python: the log start
moves, whole segments below it leave the manifest (their objects, shared
with other partitions, are garbage collection's to delete)."""

from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from kafka.admin import KafkaAdminClient
from kafka.errors import OffsetOutOfRangeError, UnknownTopicOrPartitionError
from kafka.structs import TopicPartition as PyTopicPartition
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, s3_args, start_broker
from tests.support.clients import consume
from tests.support.topics import create_topic, fetch_at, produce_segments
from tests.support.wire import Connection


def delete_records(bootstrap, *partitions):
    """-> {(topic, partition): low watermark or the KafkaError}"""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.delete_records([TopicPartition(t, p, offset) for t, p, offset in partitions])
    results = {}
    for tp, future in futures.items():
        try:
            results[tp.topic, tp.partition] = future.result(20).low_watermark
        except KafkaException as e:
            results[tp.topic, tp.partition] = e.args[0]
    return results


class DeleteRecordsContract:
    """Run against a local-directory store and against S3 (moto)."""

    async def store_args(self):
        return []

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, *await self.store_args())
        await create_topic(self.bootstrap, "ledger", 2)
        # Segments [0..1], [2..3], [4..5] in partition 0.
        await in_thread(produce_segments, self.bootstrap, "ledger",
                        [[(b"%d" % (2 * i), 0), (b"%d" % (2 * i + 1), 0)] for i in range(3)])
        self.log = self.broker.logs["ledger", 0]
        self.assertEqual([s.base_offset for s in self.log.state.segments], [0, 2, 4])

    async def test_whole_segments_below_the_offset_go(self):
        dropped, kept = self.log.state.segments[0], self.log.state.segments[1:]
        results = await in_thread(delete_records, self.bootstrap, ("ledger", 0, 3))
        self.assertEqual(results, {("ledger", 0): 3})
        stored = await self.broker.metadata.partition_state("ledger", 0)
        self.assertEqual((stored.log_start_offset, [s.base_offset for s in stored.segments]), (3, [2, 4]))
        self.assertEqual(stored.segments, kept)
        self.assertNotIn(dropped, self.broker.cache)
        # Other partitions' slices may share its object: it stays.
        self.assertGreaterEqual(await self.broker.objects.head(dropped.key), dropped.position + dropped.size)

        below = await in_thread(fetch_at, self.bootstrap, "ledger", 2)
        self.assertEqual((below["error_code"], below["log_start_offset"]), (ErrorCode.OFFSET_OUT_OF_RANGE, 3))
        messages = await in_thread(consume, self.bootstrap, "ledger", [0], 3, **{"auto.offset.reset": "earliest"})
        self.assertEqual([m.offset() for m in messages], [3, 4, 5])

    async def test_to_the_high_watermark_and_below_the_start(self):
        results = await in_thread(delete_records, self.bootstrap, ("ledger", 0, -1), ("ledger", 1, -1))
        self.assertEqual(results, {("ledger", 0): 6, ("ledger", 1): 0})
        self.assertEqual(self.log.state.segments, ())
        self.assertEqual((await self.broker.metadata.partition_state("ledger", 0)).segments, ())
        # Offsets at or below the log start change nothing.
        self.assertEqual(await in_thread(delete_records, self.bootstrap, ("ledger", 0, 2)), {("ledger", 0): 6})

    async def test_errors(self):
        results = await in_thread(delete_records, self.bootstrap, ("ledger", 0, 7), ("ledger", 5, 0))
        self.assertEqual({key: error.code() for key, error in results.items()}, {
            ("ledger", 0): KafkaError.OFFSET_OUT_OF_RANGE,
            ("ledger", 5): KafkaError._UNKNOWN_PARTITION,  # librdkafka knows from Metadata
        })
        self.assertEqual(self.log.log_start_offset, 0)

    async def test_kafka_python(self):
        admin = await in_thread(KafkaAdminClient, bootstrap_servers=self.bootstrap)
        self.addCleanup(in_thread, admin.close)
        result = await in_thread(admin.delete_records, {PyTopicPartition("ledger", 0): 4})
        self.assertEqual(result[PyTopicPartition("ledger", 0)]["low_watermark"], 4)
        self.assertEqual(self.log.log_start_offset, 4)
        with self.assertRaises(OffsetOutOfRangeError):
            await in_thread(admin.delete_records, {PyTopicPartition("ledger", 0): 99})
        with self.assertRaises(UnknownTopicOrPartitionError):
            await in_thread(admin.delete_records, {PyTopicPartition("nowhere", 0): 1})

    async def test_every_version(self):
        def ask(version, offset):
            connection = Connection(self.bootstrap)
            try:
                return connection.request(ApiKey.DELETE_RECORDS, version, {"timeout_ms": 5000, "topics": [
                    {"name": "ledger", "partitions": [{"partition_index": 0, "offset": offset},
                                                      {"partition_index": 5, "offset": 0}]},
                    {"name": "unknown", "partitions": [{"partition_index": 0, "offset": 0}]},
                ]})["topics"]
            finally:
                connection.close()

        for version in range(3):
            topics = await in_thread(ask, version, version + 1)
            self.assertEqual(topics[0]["partitions"], [
                {"partition_index": 0, "low_watermark": version + 1, "error_code": ErrorCode.NONE},
                {"partition_index": 5, "low_watermark": -1, "error_code": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}])
            self.assertEqual(topics[1]["partitions"][0]["error_code"], ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)


class LocalStoreDeleteRecordsTests(DeleteRecordsContract, unittest.TestCase):
    pass


class S3DeleteRecordsTests(DeleteRecordsContract, unittest.TestCase):
    async def store_args(self):
        return await s3_args(self)
