"""Every API refuses what the principal may not do, with Kafka's error
codes, through both admin clients and the producer and consumer; and what
ACLs allow is allowed. Until SASL lands every connection is
User:ANONYMOUS, which the ACLs here name."""

from confluent_kafka import Consumer, KafkaError, Producer, TopicCollection, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)
from confluent_kafka import ConsumerGroupTopicPartitions
from kafka.admin import KafkaAdminClient
from kafka.admin import NewPartitions as KafkaPythonNewPartitions
from kafka.admin import NewTopic as KafkaPythonNewTopic
from kafka.admin import ConfigResource as KafkaPythonConfigResource
from kafka.admin import ConfigResourceType
from kafka import errors as kafka_python_errors
from twisted.trial import unittest

from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from kafscale.metadata.acls import Operation, PatternType, ResourceType
from tests.support.acls import allow, deny, grant
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import result_or_error
from tests.support.groups import find, heartbeat, join, leave, sync
from tests.support.wire import Connection

TOPIC_DENIED = KafkaError.TOPIC_AUTHORIZATION_FAILED
GROUP_DENIED = KafkaError.GROUP_AUTHORIZATION_FAILED
CLUSTER_DENIED = KafkaError.CLUSTER_AUTHORIZATION_FAILED


def code_of(outcome):
    """The error code of an admin future's outcome, None for a success."""
    outcome = result_or_error(outcome)
    return outcome.code() if isinstance(outcome, KafkaError) else None


def with_kafka_python(bootstrap, work):
    """``work(admin)`` with a kafka-python admin client; -> its result, or
    the class of the Kafka error it raised."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        return work(admin)
    except kafka_python_errors.KafkaError as e:
        return type(e)
    finally:
        admin.close()


class NothingAllowedTests(unittest.TestCase):
    """A broker that enforces ACLs and has none for ANONYMOUS: every API
    refuses it."""

    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--authorizer", "acl")
        await self.broker.topics.create("orders", 2, {})
        self.admin = AdminClient({"bootstrap.servers": self.bootstrap})

    async def test_confluent_topic_apis(self):
        def refusals():
            admin = self.admin
            return {
                "create": code_of(admin.create_topics([NewTopic("fresh", 1)])["fresh"]),
                "delete": code_of(admin.delete_topics(["orders"])["orders"]),
                "partitions": code_of(admin.create_partitions([NewPartitions("orders", 3)])["orders"]),
                "describe": code_of(admin.describe_topics(TopicCollection(["orders"])).get("orders")),
                "configs": code_of(list(admin.describe_configs(
                    [ConfigResource("TOPIC", "orders")]).values())[0]),
                "alter": code_of(list(admin.incremental_alter_configs([ConfigResource(
                    "TOPIC", "orders", incremental_configs=[ConfigEntry(
                        "retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])]).values())[0]),
            }

        self.assertEqual(await in_thread(refusals), {
            "create": TOPIC_DENIED, "delete": TOPIC_DENIED, "partitions": TOPIC_DENIED, "describe": TOPIC_DENIED,
            "configs": TOPIC_DENIED, "alter": TOPIC_DENIED,
        })
        self.assertIn("orders", self.broker.topics)
        self.assertNotIn("fresh", self.broker.topics)

    async def test_confluent_cluster_and_group_apis(self):
        await self.broker.groups.commit_offsets("billing", "", None, -1, {})

        def refusals():
            admin = self.admin
            cluster = admin.describe_cluster(include_authorized_operations=True).result(20)
            return cluster.authorized_operations, {
                "broker configs": code_of(list(admin.describe_configs(
                    [ConfigResource("BROKER", str(self.broker.view.node_id))]).values())[0]),
                "alter broker configs": code_of(list(admin.incremental_alter_configs([ConfigResource(
                    "BROKER", str(self.broker.view.node_id), incremental_configs=[ConfigEntry(
                        "log.retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])]
                ).values())[0]),
                "groups": [g.group_id for g in admin.list_consumer_groups().result(20).valid],
                "describe group": code_of(admin.describe_consumer_groups(["billing"])["billing"]),
                "delete group": code_of(admin.delete_consumer_groups(["billing"])["billing"]),
                "fetch offsets": code_of(list(admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions("billing")]).values())[0]),
                "commit offsets": code_of(list(admin.alter_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions("billing", [TopicPartition("orders", 0, 1)])]).values())[0]),
                "group configs": code_of(list(admin.describe_configs(
                    [ConfigResource("GROUP", "billing")]).values())[0]),
                "alter group configs": code_of(list(admin.incremental_alter_configs([ConfigResource(
                    "GROUP", "billing", incremental_configs=[ConfigEntry(
                        "consumer.session.timeout.ms", "50000", incremental_operation=AlterConfigOpType.SET)])]
                ).values())[0]),
            }

        cluster_operations, refused = await in_thread(refusals)
        self.assertFalse(cluster_operations)
        self.assertEqual(refused, {
            "broker configs": CLUSTER_DENIED, "alter broker configs": CLUSTER_DENIED, "groups": [],
            "describe group": GROUP_DENIED,
            "delete group": GROUP_DENIED, "fetch offsets": GROUP_DENIED, "commit offsets": GROUP_DENIED,
            "group configs": GROUP_DENIED, "alter group configs": GROUP_DENIED,
        })

    async def test_kafka_python_admin_apis(self):
        # kafka-python's describe_configs drops the errors it is answered: not asked here.
        def refusals():
            return {
                "topics": with_kafka_python(self.bootstrap, lambda a: a.list_topics()),
                "create": with_kafka_python(self.bootstrap, lambda a: a.create_topics(
                    [KafkaPythonNewTopic("fresh", 1, 1)])),
                "delete": with_kafka_python(self.bootstrap, lambda a: a.delete_topics(["orders"])),
                "partitions": with_kafka_python(self.bootstrap, lambda a: a.create_partitions(
                    {"orders": KafkaPythonNewPartitions(3)})),
                "alter": with_kafka_python(self.bootstrap, lambda a: a.alter_configs(
                    [KafkaPythonConfigResource(ConfigResourceType.TOPIC, "orders", {"retention.ms": "1000"})],
                    raise_on_unknown=False)),
                "describe group": with_kafka_python(self.bootstrap, lambda a: a.describe_groups(["billing"])),
                "delete group": with_kafka_python(self.bootstrap, lambda a: a.delete_groups(["billing"])),
            }

        outcomes = await in_thread(refusals)
        self.assertEqual(outcomes.pop("topics"), [])
        self.assertIn("TopicAuthorizationFailedError", outcomes.pop("alter")["topic"]["orders"])
        self.assertEqual(outcomes, {
            "create": kafka_python_errors.TopicAuthorizationFailedError,
            "delete": kafka_python_errors.TopicAuthorizationFailedError,
            "partitions": kafka_python_errors.TopicAuthorizationFailedError,
            "describe group": kafka_python_errors.GroupAuthorizationFailedError,
            "delete group": kafka_python_errors.GroupAuthorizationFailedError,
        })

    async def test_producer_and_consumer(self):
        def outcomes():
            plain = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": False,
                              "message.timeout.ms": 5000})
            delivered = []
            plain.produce("orders", b"v", on_delivery=lambda e, m: delivered.append(e and e.code()))
            plain.flush(10)
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "billing",
                                 "auto.offset.reset": "earliest"})
            try:
                consumer.subscribe(["orders"])
                message = consumer.poll(10)
            finally:
                consumer.close()
            return delivered, message.error().code() if message is not None and message.error() else None

        delivered, consumed = await in_thread(outcomes)
        self.assertEqual(delivered, [TOPIC_DENIED])
        self.assertEqual(consumed, GROUP_DENIED)

    async def test_each_api_on_the_wire(self):
        def answers():
            connection = Connection(self.bootstrap)
            try:
                fetched = connection.request(ApiKey.FETCH, 11, {
                    "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20,
                    "isolation_level": 0, "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [],
                    "rack_id": "", "topics": [{"topic": "orders", "partitions": [
                        {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
                         "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}]})
                epochs = connection.request(ApiKey.OFFSET_FOR_LEADER_EPOCH, 4, {
                    "replica_id": -1, "topics": [{"topic": "orders", "partitions": [
                        {"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}]})
                producer_id = connection.request(ApiKey.INIT_PRODUCER_ID, 4, {
                    "transactional_id": None, "transaction_timeout_ms": 1000, "producer_id": -1,
                    "producer_epoch": -1})
                transactional = connection.request(ApiKey.INIT_PRODUCER_ID, 4, {
                    "transactional_id": "tx", "transaction_timeout_ms": 1000, "producer_id": -1,
                    "producer_epoch": -1})
                offsets = connection.request(ApiKey.LIST_OFFSETS, 7, {
                    "replica_id": -1, "isolation_level": 0, "topics": [{"name": "orders", "partitions": [
                        {"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
                deleted = connection.request(ApiKey.DELETE_RECORDS, 2, {
                    "timeout_ms": 1000, "topics": [{"name": "orders", "partitions": [
                        {"partition_index": 0, "offset": 0}]}]})
                metadata = connection.request(ApiKey.METADATA, 12, {
                    "topics": [{"name": "orders", "topic_id": None}, {"name": "unknown", "topic_id": None}],
                    "allow_auto_topic_creation": True, "include_topic_authorized_operations": True})
                return {
                    "fetch": fetched["responses"][0]["partitions"][0]["error_code"],
                    "offsets": offsets["topics"][0]["partitions"][0]["error_code"],
                    "records": deleted["topics"][0]["partitions"][0]["error_code"],
                    "epochs": epochs["topics"][0]["partitions"][0]["error_code"],
                    "producer id": producer_id["error_code"],
                    "transactional": transactional["error_code"],
                    "metadata": [t["error_code"] for t in metadata["topics"]],
                    "find": find(connection, 3, ["billing"])[0][1],
                    "join": join(connection, 5, "billing", "member")["error_code"],
                    "sync": sync(connection, 3, "billing", "member", 1)["error_code"],
                    "heartbeat": heartbeat(connection, 3, "billing", "member", 1),
                    "leave": leave(connection, 3, "billing", "member")["error_code"],
                }
            finally:
                connection.close()

        self.assertEqual(await in_thread(answers), {
            "fetch": ErrorCode.TOPIC_AUTHORIZATION_FAILED, "offsets": ErrorCode.TOPIC_AUTHORIZATION_FAILED,
            "records": ErrorCode.TOPIC_AUTHORIZATION_FAILED, "epochs": ErrorCode.TOPIC_AUTHORIZATION_FAILED,
            "producer id": ErrorCode.CLUSTER_AUTHORIZATION_FAILED,
            "transactional": ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
            "metadata": [ErrorCode.TOPIC_AUTHORIZATION_FAILED] * 2,
            "find": ErrorCode.GROUP_AUTHORIZATION_FAILED, "join": ErrorCode.GROUP_AUTHORIZATION_FAILED,
            "sync": ErrorCode.GROUP_AUTHORIZATION_FAILED, "heartbeat": ErrorCode.GROUP_AUTHORIZATION_FAILED,
            "leave": ErrorCode.GROUP_AUTHORIZATION_FAILED,
        })
        self.assertNotIn("unknown", self.broker.topics)


def deliver(bootstrap, topic):
    """Produce one record with confluent-kafka; -> its error code, or None."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "message.timeout.ms": 5000,
                         "allow.auto.create.topics": True})
    delivered = []
    producer.produce(topic, b"v", on_delivery=lambda error, message: delivered.append(error and error.code()))
    producer.flush(10)
    return delivered[0]


def fetch_error(bootstrap, topic):
    connection = Connection(bootstrap)
    try:
        fetched = connection.request(ApiKey.FETCH, 11, {
            "replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
            "session_id": 0, "session_epoch": -1, "forgotten_topics_data": [], "rack_id": "",
            "topics": [{"topic": topic, "partitions": [
                {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
                 "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}]})
        return fetched["responses"][0]["partitions"][0]["error_code"]
    finally:
        connection.close()


def metadata(bootstrap, *topics, auto_create=False):
    """Metadata v12 with authorized operations: -> {name: (error, operations)}, all topics when none named."""
    connection = Connection(bootstrap)
    try:
        answer = connection.request(ApiKey.METADATA, 12, {
            "topics": [{"name": name, "topic_id": None} for name in topics] if topics else None,
            "allow_auto_topic_creation": auto_create, "include_topic_authorized_operations": True})
        return {t["name"]: (t["error_code"], t["topic_authorized_operations"]) for t in answer["topics"]}
    finally:
        connection.close()


def bits(*operations):
    return sum(1 << operation for operation in operations)


class AllowedByAclTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--authorizer", "acl")
        for name in ("orders", "orders-eu", "payments"):
            await self.broker.topics.create(name, 1, {})

    async def test_write_without_read(self):
        await grant(self.broker, allow(ResourceType.TOPIC, "orders", Operation.WRITE))
        self.assertIsNone(await in_thread(deliver, self.bootstrap, "orders"))
        self.assertEqual(await in_thread(fetch_error, self.bootstrap, "orders"), ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        # WRITE implies DESCRIBE: the topic is listed, with what may be done to it.
        self.assertEqual(await in_thread(metadata, self.bootstrap),
                         {"orders": (ErrorCode.NONE, bits(Operation.WRITE, Operation.DESCRIBE))})

    async def test_deny_beats_allow(self):
        await grant(self.broker, [*allow(ResourceType.TOPIC, "*", Operation.ALL),
                                  *deny(ResourceType.TOPIC, "orders", Operation.READ)])
        self.assertIsNone(await in_thread(deliver, self.bootstrap, "orders"))
        self.assertEqual(await in_thread(fetch_error, self.bootstrap, "orders"), ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        self.assertEqual(await in_thread(fetch_error, self.bootstrap, "payments"), ErrorCode.NONE)

    async def test_prefixed_acls(self):
        await grant(self.broker, allow(ResourceType.TOPIC, "orders", Operation.WRITE, Operation.READ,
                                       pattern_type=PatternType.PREFIXED))
        self.assertIsNone(await in_thread(deliver, self.bootstrap, "orders-eu"))
        self.assertEqual(await in_thread(fetch_error, self.bootstrap, "orders-eu"), ErrorCode.NONE)
        self.assertEqual(await in_thread(fetch_error, self.bootstrap, "payments"), ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        self.assertEqual(sorted(await in_thread(metadata, self.bootstrap)), ["orders", "orders-eu"])

    async def test_acls_of_other_hosts_and_principals_do_not_apply(self):
        await grant(self.broker, [*allow(ResourceType.TOPIC, "orders", Operation.ALL, host="10.1.2.3"),
                                  *allow(ResourceType.TOPIC, "orders", Operation.ALL, principal="User:alice"),
                                  *allow(ResourceType.TOPIC, "payments", Operation.READ, host="127.0.0.1"),
                                  *deny(ResourceType.TOPIC, "payments", Operation.ALL, host="10.1.2.3")])
        self.assertEqual(await in_thread(fetch_error, self.bootstrap, "orders"), ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        self.assertEqual(await in_thread(fetch_error, self.bootstrap, "payments"), ErrorCode.NONE)

    async def test_auto_creation_needs_create(self):
        await grant(self.broker, allow(ResourceType.TOPIC, "*", Operation.DESCRIBE, Operation.WRITE))
        self.assertEqual(await in_thread(metadata, self.bootstrap, "fresh", auto_create=True),
                         {"fresh": (ErrorCode.TOPIC_AUTHORIZATION_FAILED, -(2**31))})
        self.assertNotIn("fresh", self.broker.topics)
        await grant(self.broker, allow(ResourceType.CLUSTER, "kafka-cluster", Operation.CREATE))
        (error, _), = (await in_thread(metadata, self.bootstrap, "fresh", auto_create=True)).values()
        self.assertEqual(error, ErrorCode.NONE)
        self.assertIn("fresh", self.broker.topics)

    async def test_created_topics_configs_need_describe_configs(self):
        """KIP-525's answer: a creator without DESCRIBE_CONFIGS learns the
        topic's id but not its configs, partitions or replication factor."""
        await grant(self.broker, allow(ResourceType.TOPIC, "new-", Operation.CREATE,
                                       pattern_type=PatternType.PREFIXED))
        await grant(self.broker, allow(ResourceType.TOPIC, "new-open", Operation.DESCRIBE_CONFIGS))

        def create(name):
            connection = Connection(self.bootstrap)
            try:
                [answer] = connection.request(ApiKey.CREATE_TOPICS, 7, {"topics": [
                    {"name": name, "num_partitions": 2, "replication_factor": 1, "assignments": [],
                     "configs": [{"name": "retention.ms", "value": "60000"}]}],
                    "timeout_ms": 10000, "validate_only": False})["topics"]
                return answer
            finally:
                connection.close()

        hidden = await in_thread(create, "new-hidden")
        self.assertEqual((hidden["error_code"], hidden["topic_config_error_code"]),
                         (ErrorCode.NONE, ErrorCode.TOPIC_AUTHORIZATION_FAILED))
        self.assertEqual((hidden["num_partitions"], hidden["replication_factor"], hidden["configs"]), (-1, -1, None))
        self.assertEqual(hidden["topic_id"], self.broker.topics["new-hidden"].topic_id)
        self.assertIn("new-hidden", self.broker.topics)
        shown = await in_thread(create, "new-open")
        self.assertEqual((shown["error_code"], shown["topic_config_error_code"]), (ErrorCode.NONE, ErrorCode.NONE))
        self.assertEqual((shown["num_partitions"], shown["replication_factor"]), (2, 1))
        self.assertIn({"name": "retention.ms", "value": "60000"},
                      [{"name": c["name"], "value": c["value"]} for c in shown["configs"]])

    async def test_group_acls_let_a_consumer_in(self):
        await grant(self.broker, [*allow(ResourceType.TOPIC, "orders", Operation.READ, Operation.WRITE),
                                  *allow(ResourceType.GROUP, "billing", Operation.READ)])
        self.assertIsNone(await in_thread(deliver, self.bootstrap, "orders"))

        def consume():
            consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "billing",
                                 "auto.offset.reset": "earliest", "enable.auto.commit": False})
            try:
                consumer.subscribe(["orders"])
                message = consumer.poll(20)
                consumer.commit(message, asynchronous=False)
                return message.value()
            finally:
                consumer.close()

        self.assertEqual(await in_thread(consume), b"v")

    async def test_group_configs_need_their_operations(self):
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        group = ConfigResource("GROUP", "billing")
        altered = ConfigResource("GROUP", "billing", incremental_configs=[ConfigEntry(
            "consumer.session.timeout.ms", "50000", incremental_operation=AlterConfigOpType.SET)])

        def outcomes():
            described = result_or_error(admin.describe_configs([group])[group])
            alter = code_of(list(admin.incremental_alter_configs([altered]).values())[0])
            return (described if isinstance(described, KafkaError) else described["consumer.session.timeout.ms"].value,
                    alter)

        await grant(self.broker, allow(ResourceType.GROUP, "billing", Operation.DESCRIBE_CONFIGS))
        described, alter = await in_thread(outcomes)
        self.assertEqual((described, alter), ("45000", GROUP_DENIED))
        self.assertEqual(await self.broker.metadata.group_configs("billing"), {})
        await grant(self.broker, allow(ResourceType.GROUP, "billing", Operation.ALTER_CONFIGS))
        self.assertEqual(await in_thread(outcomes), ("45000", None))
        self.assertEqual(await in_thread(outcomes), ("50000", None))


class BrokerOptionsTests(unittest.TestCase):
    async def test_super_users_may_do_everything(self):
        broker, bootstrap = await start_broker(self, "--authorizer", "acl", "--super-users", "User:admin;User:ANONYMOUS")
        await grant(broker, deny(ResourceType.TOPIC, "*", Operation.ALL))
        self.assertIsNone(await in_thread(deliver, bootstrap, "fresh"))
        self.assertEqual(await in_thread(fetch_error, bootstrap, "fresh"), ErrorCode.NONE)

    async def test_allow_everyone_if_no_acl_found(self):
        broker, bootstrap = await start_broker(self, "--authorizer", "acl", "--allow-everyone-if-no-acl-found", "true")
        self.assertIsNone(await in_thread(deliver, bootstrap, "orders"))
        # An ACL on the topic, even another principal's, ends the free-for-all there.
        await grant(broker, allow(ResourceType.TOPIC, "orders", Operation.READ, principal="User:alice"))
        self.assertEqual(await in_thread(fetch_error, bootstrap, "orders"), ErrorCode.TOPIC_AUTHORIZATION_FAILED)
        self.assertIsNone(await in_thread(deliver, bootstrap, "payments"))
