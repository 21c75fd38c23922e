"""Dynamic broker configs through real admin clients: set for every broker
(resource "") or for one (its node id, which wins), described with Kafka's
sources, applied by produce and retention at once, refused where they
cannot change at runtime; and followed by a second broker of one etcd
cluster."""


from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ConfigSource, NewTopic
from kafka.admin import ConfigResource as PyConfigResource
from twisted.trial import unittest

from tests.support.brokers import in_thread, start_broker
from tests.support.clients import result_or_error
from kafscale.handlers.config_resources import ResourceType
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.configs import BROKER, TOPIC, confluent_admin, python_admin, wire_request
from tests.support.etcd_server import etcd_cluster
from tests.support.waiting import eventually

SET, DELETE = AlterConfigOpType.SET, AlterConfigOpType.DELETE
OK = (ErrorCode.NONE, None)
DEFAULT_FOR_ALL = ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value


def changes(name, *configs):
    """A confluent-kafka broker resource with incremental ``configs``: (name, value or None to delete)."""
    return ConfigResource(BROKER, name, incremental_configs=[
        ConfigEntry(config, value, incremental_operation=SET if value is not None else DELETE)
        for config, value in configs])


def alter_every_broker(bootstrap, *configs, validate_only=False):
    """IncrementalAlterConfigs on resource "" (every broker's defaults), as
    Kafka's own admin client sends it (confluent-kafka and kafka-python will
    not name it); ``configs`` as for `changes`. -> (error code, message)."""
    answer = wire_request(bootstrap, ApiKey.INCREMENTAL_ALTER_CONFIGS, 1, {
        "resources": [{"resource_type": ResourceType.BROKER, "resource_name": "", "configs": [
            {"name": name, "config_operation": 0 if value is not None else 1, "value": value}
            for name, value in configs]}], "validate_only": validate_only})["responses"][0]
    return answer["error_code"], answer["error_message"]


def describe_every_broker(bootstrap):
    answer = wire_request(bootstrap, ApiKey.DESCRIBE_CONFIGS, 4, {
        "resources": [{"resource_type": ResourceType.BROKER, "resource_name": "", "configuration_keys": None}],
        "include_synonyms": False, "include_documentation": False})["results"][0]
    return {c["name"]: (c["value"], c["config_source"]) for c in answer["configs"]}


def deliver(bootstrap, topic, size):
    """Produce one record of ``size`` bytes; -> its error code, or None."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": False, "message.timeout.ms": 10000,
                         "message.max.bytes": 10 << 20, "compression.type": "none"})
    delivered = []
    producer.produce(topic, b"x" * size, on_delivery=lambda error, message: delivered.append(error and error.code()))
    producer.flush(15)
    return delivered[0]


class DynamicBrokerConfigsTests(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--node-id", "3", "--retention-check-interval-ms", "50")
        self.admin = confluent_admin(self.bootstrap)

        def create():
            futures = self.admin.create_topics([NewTopic("plain", 1), NewTopic("tuned", 1, config={
                "retention.ms": "60000", "max.message.bytes": "4000000"})])
            for future in futures.values():
                future.result(20)

        await in_thread(create)

    def alter(self, resource):
        return result_or_error(self.admin.incremental_alter_configs([resource])[resource])

    def alter_all(self, *configs, validate_only=False):
        return in_thread(alter_every_broker, self.bootstrap, *configs, validate_only=validate_only)

    def describe_all(self):
        return in_thread(describe_every_broker, self.bootstrap)

    def describe(self, resource):
        return result_or_error(self.admin.describe_configs([resource])[resource])

    async def test_defaults_for_every_broker_then_for_this_one(self):
        self.assertEqual(await self.alter_all(("log.retention.ms", "3600000"), ("message.max.bytes", "200000")), OK)
        self.assertEqual(await self.describe_all(), {"log.retention.ms": ("3600000", DEFAULT_FOR_ALL),
                                                     "message.max.bytes": ("200000", DEFAULT_FOR_ALL)})
        self.assertIsNone(await in_thread(self.alter, changes("3", ("message.max.bytes", "100000"))))

        this = await in_thread(self.describe, ConfigResource(BROKER, "3"))
        self.assertEqual((this["log.retention.ms"].value, this["log.retention.ms"].source),
                         ("3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value))
        self.assertFalse(this["log.retention.ms"].is_read_only)
        size = this["message.max.bytes"]
        self.assertEqual((size.value, size.source), ("100000", ConfigSource.DYNAMIC_BROKER_CONFIG.value))
        self.assertTrue(this["num.partitions"].is_read_only)
        described = await in_thread(wire_request, self.bootstrap, ApiKey.DESCRIBE_CONFIGS, 4, {
            "resources": [{"resource_type": ResourceType.TOPIC, "resource_name": "plain",
                           "configuration_keys": ["max.message.bytes"]}],
            "include_synonyms": True, "include_documentation": False})
        (entry,) = described["results"][0]["configs"]
        self.assertEqual([(s["value"], s["source"]) for s in entry["synonyms"]], [
            ("100000", ConfigSource.DYNAMIC_BROKER_CONFIG.value), ("200000", DEFAULT_FOR_ALL),
            ("1048588", ConfigSource.DEFAULT_CONFIG.value)])

        # Topics without a value of their own take the broker's; the others keep theirs.
        plain = await in_thread(self.describe, ConfigResource(TOPIC, "plain"))
        self.assertEqual((plain["retention.ms"].value, plain["retention.ms"].source),
                         ("3600000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value))
        self.assertEqual((plain["max.message.bytes"].value, plain["max.message.bytes"].source),
                         ("100000", ConfigSource.DYNAMIC_BROKER_CONFIG.value))
        tuned = await in_thread(self.describe, ConfigResource(TOPIC, "tuned"))
        self.assertEqual(tuned["retention.ms"].value, "60000")

        # Produce follows at once: plain's limit is now 100000 bytes, tuned's its own.
        self.assertEqual(await in_thread(deliver, self.bootstrap, "plain", 150000), KafkaError.MSG_SIZE_TOO_LARGE)
        self.assertIsNone(await in_thread(deliver, self.bootstrap, "tuned", 150000))

        # Deleting the broker's own value uncovers the default for every broker, then Kafka's.
        self.assertIsNone(await in_thread(self.alter, changes("3", ("message.max.bytes", None))))
        self.assertIsNone(await in_thread(deliver, self.bootstrap, "plain", 150000))
        self.assertEqual(await self.alter_all(("message.max.bytes", None), ("log.retention.ms", None)), OK)
        self.assertEqual(await self.describe_all(), {})
        self.assertEqual(await self.broker.metadata.broker_configs(), {})
        plain = await in_thread(self.describe, ConfigResource(TOPIC, "plain"))
        self.assertEqual((plain["retention.ms"].value, plain["retention.ms"].source),
                         ("604800000", ConfigSource.DEFAULT_CONFIG.value))

    async def test_retention_takes_a_new_default(self):
        for _ in range(3):
            self.assertIsNone(await in_thread(deliver, self.bootstrap, "plain", 100))
        partition_log = self.broker.logs[("plain", 0)]
        self.assertEqual(partition_log.state.log_start_offset, 0)
        self.assertEqual(await self.alter_all(("log.retention.bytes", "0")), OK)
        await eventually(lambda: partition_log.state.log_start_offset == 3, what="retention drops plain's records")

    async def test_refused_as_kafka_refuses(self):
        admin = await python_admin(self, self.bootstrap)
        static = await in_thread(admin.alter_configs, [PyConfigResource("BROKER", "3", {"num.partitions": "5"})],
                                 raise_on_unknown=False)
        self.assertIn("Cannot update these configs dynamically: num.partitions", static["broker"]["3"])
        code, message = await self.alter_all(("log.retention.ms", "soon"))
        self.assertEqual(code, ErrorCode.INVALID_CONFIG)
        self.assertIn("not a whole number", message)
        cases = [
            (changes("3", ("no.such.config", "1")), KafkaError.INVALID_CONFIG, "unknown broker config"),
            (changes("3", ("auto.create.topics.enable", "false")), KafkaError.INVALID_REQUEST,
             "Cannot update these configs dynamically"),
        ]
        for resource, code, why in cases:
            error = await in_thread(self.alter, resource)
            self.assertEqual(error.code(), code, why)
            self.assertIn(why, error.str())
        self.assertEqual(await self.broker.metadata.broker_configs(), {})

    async def test_validate_only_changes_nothing(self):
        self.assertEqual(await self.alter_all(("log.retention.ms", "1000"), validate_only=True), OK)
        resource = changes("3", ("log.retention.ms", "1000"))
        outcome = await in_thread(lambda: result_or_error(
            self.admin.incremental_alter_configs([resource], validate_only=True)[resource]))
        self.assertIsNone(outcome)
        self.assertEqual(await self.broker.metadata.broker_configs(), {})


class DynamicBrokerConfigsAcrossBrokersTests(unittest.TestCase):
    async def test_a_default_set_through_one_broker_holds_on_another(self):
        cluster = etcd_cluster("configs")
        first, first_bootstrap = await start_broker(self, *cluster)
        second, _ = await start_broker(self, *cluster)
        self.assertEqual(await in_thread(alter_every_broker, first_bootstrap, ("log.retention.ms", "3600000")), OK)
        await eventually(lambda: second.broker_configs.topic_defaults() == {"retention.ms": "3600000"},
                         what="the second broker follows the default")
