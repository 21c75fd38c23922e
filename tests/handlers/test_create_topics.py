"""CreateTopics through the admin clients and the wire, and topic
auto-creation (on and off), and the partition limits CreateTopics and
CreatePartitions keep."""

from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import consume, produce, result_or_error
from tests.support.kafkajs import require_kafkajs, run_kafkajs
from tests.support.topics import create_topics
from tests.support.wire import Connection


class CreateTopicsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self)

    async def test_create_and_list(self):
        results = await in_thread(create_topics, self.bootstrap, NewTopic("orders", 3),
                                  NewTopic("audit", 1, config={"retention.ms": "60000"}))
        self.assertEqual(results, {"orders": None, "audit": None})
        self.assertEqual(self.broker.topics["orders"].partitions, 3)
        self.assertEqual(self.broker.topics["audit"].configs, {"retention.ms": "60000"})
        metadata = await in_thread(lambda: AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=10))
        self.assertEqual(sorted(metadata.topics), ["audit", "orders"])
        self.assertEqual(sorted(metadata.topics["orders"].partitions), [0, 1, 2])
        self.assertEqual({p.leader for p in metadata.topics["orders"].partitions.values()}, {0})

    async def test_errors(self):
        await in_thread(create_topics, self.bootstrap, NewTopic("taken", 1))
        results = await in_thread(
            create_topics, self.bootstrap,
            NewTopic("taken", 1),
            NewTopic("bad name!", 1),
            NewTopic("x" * 250, 1),
            NewTopic("..", 1),
            NewTopic("zero", 0),
            NewTopic("unreplicated", 1, replication_factor=0),
            NewTopic("shredded", 1, config={"cleanup.policy": "shred"}),
            NewTopic("unknown-config", 1, config={"no.such.config": "1"}),
            NewTopic("bad-value", 1, config={"retention.ms": "soon"}),
        )
        from confluent_kafka import KafkaError

        self.assertEqual(results, {
            "taken": KafkaError.TOPIC_ALREADY_EXISTS,
            "bad name!": KafkaError.TOPIC_EXCEPTION,
            "x" * 250: KafkaError.TOPIC_EXCEPTION,
            "..": KafkaError.TOPIC_EXCEPTION,
            "zero": KafkaError.INVALID_PARTITIONS,
            "unreplicated": KafkaError.INVALID_REPLICATION_FACTOR,
            "shredded": KafkaError.INVALID_CONFIG,
            "unknown-config": KafkaError.INVALID_CONFIG,
            "bad-value": KafkaError.INVALID_CONFIG,
        })
        self.assertEqual(sorted(self.broker.topics), ["taken"])

    async def test_validate_only_creates_nothing(self):
        results = await in_thread(create_topics, self.bootstrap, NewTopic("dry", 2), validate_only=True)
        self.assertEqual(results, {"dry": None})
        self.assertNotIn("dry", self.broker.topics)

    async def test_error_messages_say_why(self):
        def ask():
            conn = Connection(self.bootstrap)
            try:
                return conn.request(ApiKey.CREATE_TOPICS, 7, {"topics": [
                    {"name": "c", "num_partitions": 1, "replication_factor": 1, "assignments": [],
                     "configs": [{"name": "cleanup.policy", "value": "compact,shred"}]}], "timeout_ms": 1000})
            finally:
                conn.close()

        topic = (await in_thread(ask))["topics"][0]
        self.assertEqual(topic["error_code"], ErrorCode.INVALID_CONFIG)
        self.assertIn("not a list of distinct cleanup policies", topic["error_message"])

    async def test_kafka_python_admin(self):
        from kafka.admin import KafkaAdminClient, NewTopic as KPNewTopic

        def run():
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                admin.create_topics([KPNewTopic("kp-topic", 2, 1)])
                listed = admin.list_topics()
                admin.delete_topics(["kp-topic"])
                return listed
            finally:
                admin.close()

        self.assertIn("kp-topic", await in_thread(run))
        self.assertNotIn("kp-topic", self.broker.topics)

    async def test_auto_creation(self):
        acks = await in_thread(produce, self.bootstrap, "made-on-demand", [(None, b"hello", None, None)])
        self.assertEqual(acks, [(0, 0)])
        self.assertEqual(self.broker.topics["made-on-demand"].partitions, 1)


class AutoCreationOffTests(unittest.TestCase):
    async def test_unknown_topic_stays_unknown(self):
        broker, bootstrap = await start_broker(self, "--auto-create-topics", "false")

        def ask():
            conn = Connection(bootstrap)
            try:
                return conn.request(ApiKey.METADATA, 12, {"topics": [{"name": "nope"}],
                                                          "allow_auto_topic_creation": True})
            finally:
                conn.close()

        topic = (await in_thread(ask))["topics"][0]
        self.assertEqual(topic["error_code"], ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)
        self.assertNotIn("nope", broker.topics)


class PartitionLimitTests(unittest.TestCase):
    """A topic, and the cluster, hold a bounded number of partitions:
    CreateTopics (validate_only too) and CreatePartitions past them are
    refused as Kafka refuses them."""

    async def test_default_limit_refuses_a_count_no_broker_can_hold(self):
        _, bootstrap = await start_broker(self)

        def validate():
            # Beyond what client libraries let one ask for.
            conn = Connection(bootstrap)
            try:
                return conn.request(ApiKey.CREATE_TOPICS, 5, {
                    "topics": [{"name": "huge", "num_partitions": 2**31 - 1, "replication_factor": -1}],
                    "timeout_ms": 10000, "validate_only": True})
            finally:
                conn.close()

        answer = (await in_thread(validate))["topics"][0]
        self.assertEqual(answer["error_code"], ErrorCode.INVALID_PARTITIONS)
        self.assertIn("a topic may have at most 10000", answer["error_message"])

    async def test_limits_per_topic_and_in_all(self):
        broker, bootstrap = await start_broker(self, "--max-partitions-per-topic", "4", "--max-partitions", "6")
        results = await in_thread(create_topics, bootstrap, NewTopic("wide", 5), validate_only=True)
        self.assertEqual(results, {"wide": KafkaError.INVALID_PARTITIONS})
        self.assertEqual(await in_thread(create_topics, bootstrap, NewTopic("first", 4)), {"first": None})
        results = await in_thread(create_topics, bootstrap, NewTopic("second", 3), NewTopic("third", 2))
        self.assertEqual(results, {"second": KafkaError.POLICY_VIOLATION, "third": None})

        def grow():
            admin = AdminClient({"bootstrap.servers": bootstrap})
            futures = admin.create_partitions([NewPartitions("first", 5), NewPartitions("third", 3)],
                                              request_timeout=15)
            return {name: result_or_error(future) for name, future in futures.items()}

        results = await in_thread(grow)
        self.assertEqual({name: error.code() for name, error in results.items()},
                         {"first": KafkaError.INVALID_PARTITIONS, "third": KafkaError.POLICY_VIOLATION})
        self.assertIn("may hold at most 6", results["third"].str())
        self.assertEqual({name: info.partitions for name, info in broker.topics.items()}, {"first": 4, "third": 2})


# How Kafka tooling creates its topics, out of the box: (name, partitions,
# replication factor, configs). Kafka Connect's distributed worker and
# Schema Registry keep their state in compacted topics; Strimzi's KafkaTopic
# examples ask for replicas 3 and Strimzi clusters commonly run with
# min.insync.replicas=2.
COMPACTED = {"cleanup.policy": "compact"}
TOOLING_TOPICS = [
    ("connect-configs", 1, 3, COMPACTED),
    ("connect-offsets", 25, 3, COMPACTED),
    ("connect-status", 5, 3, COMPACTED),
    ("_schemas", 1, 3, COMPACTED),
    ("strimzi-topic", 1, 3, {"retention.ms": "7200000", "segment.bytes": "1073741824", "min.insync.replicas": "2"}),
]


class ToolingTopicsTests(unittest.TestCase):
    """Topics created as Kafka Connect, Schema Registry and Strimzi create
    theirs (replication factor 3, their configs) are created, keep what was
    asked, and work for produce and consume, through confluent-kafka,
    kafka-python and kafkajs."""

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--group-initial-rebalance-delay-ms", "0")

    def assert_created_as_asked(self, prefix):
        for name, partitions, factor, configs in TOOLING_TOPICS:
            info = self.broker.topics[prefix + name]
            self.assertEqual((info.partitions, info.replication_factor, info.configs), (partitions, factor, configs))

    async def assert_metadata_names_the_owner_only(self, prefix):
        metadata = await in_thread(lambda: AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=10))
        for name, partitions, _, _ in TOOLING_TOPICS:
            described = metadata.topics[prefix + name].partitions
            self.assertEqual(len(described), partitions)
            self.assertEqual({(p.leader, tuple(p.replicas), tuple(p.isrs)) for p in described.values()},
                             {(0, (0,), (0,))})

    async def test_confluent_kafka(self):
        topics = [NewTopic("c-" + name, partitions, replication_factor=factor, config=configs)
                  for name, partitions, factor, configs in TOOLING_TOPICS]
        results = await in_thread(create_topics, self.bootstrap, *topics)
        self.assertEqual(set(results.values()), {None})
        self.assert_created_as_asked("c-")
        await self.assert_metadata_names_the_owner_only("c-")
        for name, partitions, _, _ in TOOLING_TOPICS:
            last = partitions - 1
            acks = await in_thread(produce, self.bootstrap, "c-" + name, [(b"k", b"to " + name.encode(), None, last)])
            self.assertEqual(acks, [(last, 0)])
            got = await in_thread(consume, self.bootstrap, "c-" + name, [last], 1)
            self.assertEqual([m.value() for m in got], [b"to " + name.encode()])

    async def test_kafka_python(self):
        from kafka import KafkaConsumer, KafkaProducer, TopicPartition
        from kafka.admin import KafkaAdminClient
        from kafka.admin import NewTopic as PyNewTopic

        def run():
            admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
            try:
                admin.create_topics([PyNewTopic("kp-" + name, partitions, factor, topic_configs=configs)
                                     for name, partitions, factor, configs in TOOLING_TOPICS])
                described = admin.describe_topics(["kp-" + name for name, *_ in TOOLING_TOPICS])
            finally:
                admin.close()
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
            offsets = [producer.send("kp-" + name, key=b"k", value=name.encode(), partition=partitions - 1)
                       .get(timeout=20).offset for name, partitions, *_ in TOOLING_TOPICS]
            producer.close()
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, consumer_timeout_ms=3000)
            consumer.assign([TopicPartition("kp-" + name, partitions - 1) for name, partitions, *_ in TOOLING_TOPICS])
            consumer.seek_to_beginning()
            values = sorted(r.value for r in consumer)
            consumer.close()
            return described, offsets, values

        described, offsets, values = await in_thread(run)
        self.assert_created_as_asked("kp-")
        self.assertEqual({(p["leader_id"], tuple(p["replica_nodes"]), tuple(p["isr_nodes"]))
                          for topic in described for p in topic["partitions"]}, {(0, (0,), (0,))})
        self.assertEqual(offsets, [0] * len(TOOLING_TOPICS))
        self.assertEqual(values, sorted(name.encode() for name, *_ in TOOLING_TOPICS))

    async def test_kafkajs(self):
        require_kafkajs()
        created = await in_thread(run_kafkajs, {
            "bootstrap": self.bootstrap,
            "create": [{"topic": "js-" + name, "numPartitions": partitions, "replicationFactor": factor,
                        "configEntries": [{"name": k, "value": v} for k, v in configs.items()]}
                       for name, partitions, factor, configs in TOOLING_TOPICS],
            "describe": ["js-strimzi-topic"],
        })
        self.assertTrue(created["created"])
        self.assert_created_as_asked("js-")
        self.assertEqual({(p["leader"], tuple(p["replicas"]), tuple(p["isr"]))
                          for topic in created["metadata"] for p in topic["partitions"]}, {(0, (0,), (0,))})
        self.assertEqual(created["configs"]["js-strimzi-topic"]["min.insync.replicas"], "2")
        for name in ("connect-configs", "strimzi-topic"):
            result = await in_thread(run_kafkajs, {
                "bootstrap": self.bootstrap,
                "produce": {"topic": "js-" + name,
                            "messages": [{"key": "k1", "value": "v1"}, {"key": "k2", "value": "v2"}]},
                "consume": {"topic": "js-" + name, "count": 2, "group": "js-group-" + name},
            })
            self.assertEqual([r["errorCode"] for r in result["produced"]], [0])
            self.assertEqual([m["value"] for m in result["consumed"]], ["v1", "v2"])

    async def test_create_topics_answers_with_what_was_kept(self):
        def ask(validate_only):
            conn = Connection(self.bootstrap)
            try:
                return conn.request(ApiKey.CREATE_TOPICS, 7, {"topics": [
                    {"name": "answered", "num_partitions": 2, "replication_factor": 3, "assignments": [],
                     "configs": [{"name": "min.insync.replicas", "value": "2"}]},
                    {"name": "placed", "num_partitions": -1, "replication_factor": -1,
                     "assignments": [{"partition_index": 0, "broker_ids": [0]},
                                     {"partition_index": 1, "broker_ids": [0]}], "configs": []},
                    {"name": "misplaced", "num_partitions": -1, "replication_factor": -1,
                     "assignments": [{"partition_index": 0, "broker_ids": [0, 9]}], "configs": []},
                ], "timeout_ms": 10000, "validate_only": validate_only})["topics"]
            finally:
                conn.close()

        for validate_only in (True, False):
            answered, placed, misplaced = await in_thread(ask, validate_only)
            self.assertEqual((answered["error_code"], answered["num_partitions"], answered["replication_factor"]),
                             (ErrorCode.NONE, 2, 3))
            configs = {c["name"]: (c["value"], c["config_source"]) for c in answered["configs"]}
            self.assertEqual(configs["min.insync.replicas"], ("2", 1))  # DYNAMIC_TOPIC_CONFIG
            self.assertEqual(configs["flush.ms"], (str(2**63 - 1), 5))  # DEFAULT_CONFIG
            self.assertEqual((placed["error_code"], placed["num_partitions"], placed["replication_factor"]),
                             (ErrorCode.NONE, 2, 1))
            self.assertEqual(misplaced["error_code"], ErrorCode.INVALID_REPLICA_ASSIGNMENT)
            self.assertIn("not live: [9]", misplaced["error_message"])
        self.assertEqual(sorted(self.broker.topics), ["answered", "placed"])
