"""CreatePartitions through confluent-kafka and kafka-python: topics grow,
never shrink, and the new partitions are served at once."""

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewPartitions
from kafka.admin import KafkaAdminClient
from kafka.errors import InvalidPartitionsError, UnknownTopicOrPartitionError
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import consume, produce, result_or_error
from tests.support.topics import create_topic
from tests.support.wire import Connection


def grow(bootstrap, *requests, validate_only=False):
    """-> {topic: None or the KafkaError}"""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_partitions(list(requests), validate_only=validate_only, request_timeout=15)
    return {name: result_or_error(future) for name, future in futures.items()}


class CreatePartitionsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)
        await create_topic(self.bootstrap, "growing", 2)

    async def test_new_partitions_are_served_at_once(self):
        self.assertEqual(await in_thread(grow, self.bootstrap, NewPartitions("growing", 4)), {"growing": None})
        self.assertEqual(self.broker.topics["growing"].partitions, 4)
        self.assertEqual((await self.broker.metadata.topics())["growing"].partitions, 4)
        self.assertEqual(sorted(p for _, p in self.broker.logs), [0, 1, 2, 3])
        acks = await in_thread(produce, self.bootstrap, "growing", [(b"k", b"in three", None, 3)])
        self.assertEqual(acks, [(3, 0)])
        messages = await in_thread(consume, self.bootstrap, "growing", [3], 1)
        self.assertEqual([m.value() for m in messages], [b"in three"])

    async def test_errors(self):
        await create_topic(self.bootstrap, "other", 3)
        results = await in_thread(
            grow, self.bootstrap,
            NewPartitions("growing", 1), NewPartitions("other", 3), NewPartitions("missing", 5),
        )
        self.assertEqual({name: error.code() for name, error in results.items()}, {
            "growing": KafkaError.INVALID_PARTITIONS,
            "other": KafkaError.INVALID_PARTITIONS,
            "missing": KafkaError.UNKNOWN_TOPIC_OR_PART,
        })
        self.assertIn("has 2 partitions: it can grow, not go to 1", results["growing"].str())
        assigned = await in_thread(grow, self.bootstrap, NewPartitions("growing", 3, [[5]]))
        self.assertEqual(assigned["growing"].code(), KafkaError.INVALID_REPLICA_ASSIGNMENT)
        self.assertIn("not live: [5]", assigned["growing"].str())
        self.assertEqual(self.broker.topics["growing"].partitions, 2)
        self.assertEqual(self.broker.topics["other"].partitions, 3)

    async def test_assignments_naming_live_brokers(self):
        # As librdkafka's own tests grow topics on a one-broker cluster.
        results = await in_thread(grow, self.bootstrap, NewPartitions("growing", 4, [[0], [0]]))
        self.assertEqual(results, {"growing": None})
        self.assertEqual(self.broker.topics["growing"].partitions, 4)
        acks = await in_thread(produce, self.bootstrap, "growing", [(b"k", b"in three", None, 3)])
        self.assertEqual(acks, [(3, 0)])

    async def test_validate_only_changes_nothing(self):
        results = await in_thread(grow, self.bootstrap, NewPartitions("growing", 5), validate_only=True)
        self.assertEqual(results, {"growing": None})
        results = await in_thread(grow, self.bootstrap, NewPartitions("growing", 1), validate_only=True)
        self.assertEqual(results["growing"].code(), KafkaError.INVALID_PARTITIONS)
        self.assertEqual(self.broker.topics["growing"].partitions, 2)
        self.assertEqual(len(self.broker.logs), 2)

    async def test_kafka_python(self):
        admin = await in_thread(KafkaAdminClient, bootstrap_servers=self.bootstrap)
        self.addCleanup(in_thread, admin.close)
        await in_thread(admin.create_partitions, {"growing": 3})
        self.assertEqual(self.broker.topics["growing"].partitions, 3)
        with self.assertRaises(InvalidPartitionsError):
            await in_thread(admin.create_partitions, {"growing": 2})
        with self.assertRaises(UnknownTopicOrPartitionError):
            await in_thread(admin.create_partitions, {"missing": 2})
        await in_thread(admin.create_partitions, {"growing": 6}, validate_only=True)
        self.assertEqual(self.broker.topics["growing"].partitions, 3)

    async def test_every_version_and_repeated_topics(self):
        def ask(version):
            connection = Connection(self.bootstrap)
            try:
                return connection.request(ApiKey.CREATE_PARTITIONS, version, {
                    "topics": [{"name": "growing", "count": 3 + version, "assignments": None},
                               {"name": "twice", "count": 2, "assignments": None},
                               {"name": "twice", "count": 3, "assignments": None}],
                    "timeout_ms": 5000, "validate_only": False,
                })["results"]
            finally:
                connection.close()

        for version in range(4):
            results = await in_thread(ask, version)
            self.assertEqual([r["error_code"] for r in results],
                             [ErrorCode.NONE, ErrorCode.INVALID_REQUEST, ErrorCode.INVALID_REQUEST])
            self.assertEqual(self.broker.topics["growing"].partitions, 3 + version)
