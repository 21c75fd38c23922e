"""DescribeConfigs, AlterConfigs and IncrementalAlterConfigs through
confluent-kafka's AdminClient, kafka-python's KafkaAdminClient and the
bare wire (for what neither client shows: documentation, error messages)."""

from confluent_kafka import KafkaError
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewTopic,
)
from kafka.admin import ConfigResource as PyConfigResource
from kafka.admin import KafkaAdminClient
from twisted.trial import unittest

from kafscale.handlers.config_resources import ResourceType
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread, start_broker
from tests.support.clients import result_or_error
from tests.support.wire import Connection

TOPIC = ConfigResource.Type.TOPIC
BROKER = ConfigResource.Type.BROKER


def confluent_admin(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


async def python_admin(test, bootstrap):
    admin = await in_thread(KafkaAdminClient, bootstrap_servers=bootstrap, request_timeout_ms=10000)
    test.addCleanup(in_thread, admin.close)
    return admin


def wire_request(bootstrap, api_key, version, body):
    connection = Connection(bootstrap)
    try:
        return connection.request(api_key, version, body)
    finally:
        connection.close()


class ConfigsTestCase(unittest.TestCase):
    async def setUp(self):
        self.broker, self.bootstrap = await start_broker(self, "--node-id", "3", "--num-partitions", "2")
        self.admin = confluent_admin(self.bootstrap)

        def create():
            futures = self.admin.create_topics([
                NewTopic("plain", 1),
                NewTopic("tuned", 1, config={"retention.ms": "60000", "segment.bytes": "4096"}),
            ])
            for future in futures.values():
                future.result(20)

        await in_thread(create)

    def describe(self, resource):
        return result_or_error(self.admin.describe_configs([resource])[resource])

    def incremental(self, resource, validate_only=False):
        return result_or_error(
            self.admin.incremental_alter_configs([resource], validate_only=validate_only)[resource])


class DescribeConfigsTests(ConfigsTestCase):
    async def test_topic_configs_with_sources_and_synonyms(self):
        configs = await in_thread(self.describe, ConfigResource(TOPIC, "tuned"))
        for name in ("retention.ms", "retention.bytes", "max.message.bytes", "segment.bytes", "cleanup.policy",
                     "message.timestamp.type", "min.insync.replicas"):
            self.assertIn(name, configs)
        retention = configs["retention.ms"]
        self.assertEqual(retention.value, "60000")
        self.assertEqual(retention.source, ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
        self.assertFalse(retention.is_read_only)
        self.assertFalse(retention.is_sensitive)
        self.assertEqual(
            [(s.name, s.value, s.source) for s in retention.synonyms.values()],
            [("retention.ms", "60000", ConfigSource.DYNAMIC_TOPIC_CONFIG.value),
             ("log.retention.ms", "604800000", ConfigSource.DEFAULT_CONFIG.value)],
        )
        policy = configs["cleanup.policy"]
        self.assertEqual((policy.value, policy.source, policy.is_default),
                         ("delete", ConfigSource.DEFAULT_CONFIG.value, True))

    async def test_broker_configs_are_static_and_read_only(self):
        configs = await in_thread(self.describe, ConfigResource(BROKER, "3"))
        self.assertEqual(configs["broker.id"].value, "3")
        self.assertEqual(configs["broker.id"].source, ConfigSource.STATIC_BROKER_CONFIG.value)
        self.assertEqual(configs["num.partitions"].value, "2")
        self.assertEqual(configs["log.retention.ms"].value, "604800000")
        self.assertEqual(configs["log.retention.ms"].source, ConfigSource.DEFAULT_CONFIG.value)
        self.assertTrue(all(entry.is_read_only for entry in configs.values()))

    async def test_kafka_python_filters(self):
        admin = await python_admin(self, self.bootstrap)
        modified = await in_thread(admin.describe_configs, [PyConfigResource("TOPIC", "tuned")])
        self.assertEqual(sorted(modified["topic"]["tuned"]), ["retention.ms", "segment.bytes"])
        everything = await in_thread(
            admin.describe_configs,
            [PyConfigResource("TOPIC", "plain", ["retention.bytes"]), PyConfigResource("BROKER", "3")],
            include_synonyms=True, config_filter="all")
        retention = everything["topic"]["plain"]["retention.bytes"]
        self.assertEqual((retention["value"], retention["config_source"]), ("-1", "DEFAULT_CONFIG"))
        self.assertEqual(retention["synonyms"],
                         [{"name": "log.retention.bytes", "value": "-1", "source": "DEFAULT_CONFIG"}])
        self.assertEqual(list(everything["topic"]["plain"]), ["retention.bytes"])
        self.assertEqual(everything["broker"]["3"]["socket.request.max.bytes"]["value"], "104857600")

    async def test_documentation_and_types_when_asked(self):
        def ask(include_documentation):
            return wire_request(self.bootstrap, ApiKey.DESCRIBE_CONFIGS, 4, {
                "resources": [{"resource_type": ResourceType.TOPIC, "resource_name": "plain",
                               "configuration_keys": ["retention.ms", "cleanup.policy"]}],
                "include_synonyms": False, "include_documentation": include_documentation,
            })["results"][0]["configs"]

        documented = await in_thread(ask, True)
        self.assertEqual([c["name"] for c in documented], ["retention.ms", "cleanup.policy"])
        self.assertIn("-1 keeps it forever", documented[0]["documentation"])
        self.assertEqual([c["config_type"] for c in documented], [5, 7])  # LONG, LIST
        self.assertEqual(documented[0]["synonyms"], [])
        self.assertIsNone((await in_thread(ask, False))[0]["documentation"])

    async def test_unknown_resources(self):
        unknown = await in_thread(self.describe, ConfigResource(TOPIC, "missing"))
        self.assertEqual(unknown.code(), KafkaError.UNKNOWN_TOPIC_OR_PART)

        def ask():
            return wire_request(self.bootstrap, ApiKey.DESCRIBE_CONFIGS, 1, {"resources": [
                {"resource_type": ResourceType.TOPIC, "resource_name": "missing", "configuration_keys": None},
                {"resource_type": ResourceType.BROKER, "resource_name": "7", "configuration_keys": None},
                {"resource_type": ResourceType.BROKER, "resource_name": "", "configuration_keys": None},
                {"resource_type": 8, "resource_name": "3", "configuration_keys": None},
            ], "include_synonyms": False})["results"]

        results = await in_thread(ask)
        self.assertEqual([r["error_code"] for r in results], [
            ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, ErrorCode.INVALID_REQUEST, ErrorCode.NONE,
            ErrorCode.INVALID_REQUEST,
        ])
        self.assertIn("ask broker 7", results[1]["error_message"])
        self.assertEqual(results[2]["configs"], [])


class IncrementalAlterConfigsTests(ConfigsTestCase):
    async def test_set_and_delete_apply_atomically(self):
        resource = ConfigResource(TOPIC, "tuned", incremental_configs=[
            ConfigEntry("retention.bytes", "1000000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE),
        ])
        self.assertIsNone(await in_thread(self.incremental, resource))
        self.assertEqual(self.broker.topics["tuned"].configs, {"segment.bytes": "4096", "retention.bytes": "1000000"})
        stored = await self.broker.metadata.topics()
        self.assertEqual(stored["tuned"].configs, {"segment.bytes": "4096", "retention.bytes": "1000000"})
        # The partition log follows the new settings at once.
        resource = ConfigResource(TOPIC, "tuned", incremental_configs=[
            ConfigEntry("segment.bytes", "65536", incremental_operation=AlterConfigOpType.SET)])
        self.assertIsNone(await in_thread(self.incremental, resource))
        self.assertEqual(self.broker.logs["tuned", 0].settings.segment_bytes, 65536)

    async def test_compaction_is_refused_saying_why(self):
        for operation, value in [(AlterConfigOpType.SET, "compact"), (AlterConfigOpType.APPEND, "compact")]:
            resource = ConfigResource(TOPIC, "plain", incremental_configs=[
                ConfigEntry("cleanup.policy", value, incremental_operation=operation)])
            error = await in_thread(self.incremental, resource)
            self.assertEqual(error.code(), KafkaError.INVALID_CONFIG)
            self.assertIn("compacted topics are not supported", error.str())
        self.assertEqual(self.broker.topics["plain"].configs, {})

    async def test_invalid_changes_change_nothing(self):
        cases = [
            ("no.such.config", "1", AlterConfigOpType.SET, "unknown topic config"),
            ("retention.ms", "soon", AlterConfigOpType.SET, "not a whole number"),
            ("segment.bytes", "10", AlterConfigOpType.SET, "below the minimum 1024"),
            ("min.insync.replicas", "2", AlterConfigOpType.SET, "object store"),
            ("retention.ms", "5", AlterConfigOpType.APPEND, "not a list"),
            ("cleanup.policy", "delete", AlterConfigOpType.SUBTRACT, "only delete is supported"),
        ]
        for name, value, operation, why in cases:
            resource = ConfigResource(TOPIC, "tuned", incremental_configs=[
                ConfigEntry("retention.bytes", "1", incremental_operation=AlterConfigOpType.SET),
                ConfigEntry(name, value, incremental_operation=operation),
            ])
            error = await in_thread(self.incremental, resource)
            self.assertEqual(error.code(), KafkaError.INVALID_CONFIG, name)
            self.assertIn(why, error.str())
        self.assertEqual(self.broker.topics["tuned"].configs, {"retention.ms": "60000", "segment.bytes": "4096"})

    async def test_validate_only_changes_nothing(self):
        resource = ConfigResource(TOPIC, "plain", incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
        self.assertIsNone(await in_thread(self.incremental, resource, True))
        self.assertEqual(self.broker.topics["plain"].configs, {})
        invalid = ConfigResource(TOPIC, "plain", incremental_configs=[
            ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)])
        self.assertEqual((await in_thread(self.incremental, invalid, True)).code(), KafkaError.INVALID_CONFIG)

    async def test_unknown_topic_and_static_broker(self):
        missing = ConfigResource(TOPIC, "missing", incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
        self.assertEqual((await in_thread(self.incremental, missing)).code(), KafkaError.UNKNOWN_TOPIC_OR_PART)
        broker = ConfigResource(BROKER, "3", incremental_configs=[
            ConfigEntry("num.partitions", "5", incremental_operation=AlterConfigOpType.SET)])
        error = await in_thread(self.incremental, broker)
        self.assertEqual(error.code(), KafkaError.INVALID_REQUEST)
        self.assertIn("broker configs are static", error.str())

    async def test_kafka_python(self):
        admin = await python_admin(self, self.bootstrap)
        result = await in_thread(admin.alter_configs, [
            PyConfigResource("TOPIC", "plain", {"retention.ms": "120000", "cleanup.policy": ("APPEND", "delete")}),
        ])
        self.assertEqual(result, {"topic": {"plain": "OK"}})
        self.assertEqual(self.broker.topics["plain"].configs, {"retention.ms": "120000", "cleanup.policy": "delete"})
        refused = await in_thread(admin.alter_configs, [
            PyConfigResource("TOPIC", "plain", {"cleanup.policy": "compact"}),
            PyConfigResource("TOPIC", "tuned", {"no.such.config": "1"}),
        ], raise_on_unknown=False)
        self.assertIn("InvalidConfigurationError", refused["topic"]["plain"])
        self.assertIn("compacted topics are not supported", refused["topic"]["plain"])
        self.assertIn("unknown topic config 'no.such.config'", refused["topic"]["tuned"])
        dry = await in_thread(admin.alter_configs, [PyConfigResource("TOPIC", "plain", {"retention.ms": "1"})],
                              validate_only=True)
        self.assertEqual(dry, {"topic": {"plain": "OK"}})
        self.assertEqual(self.broker.topics["plain"].configs["retention.ms"], "120000")
        await in_thread(admin.reset_configs, [PyConfigResource("TOPIC", "plain", ["retention.ms"])])
        self.assertEqual(self.broker.topics["plain"].configs, {"cleanup.policy": "delete"})


class AlterConfigsTests(ConfigsTestCase):
    async def test_replaces_every_topic_config(self):
        resource = ConfigResource(TOPIC, "tuned", set_config={"retention.bytes": "2048"})
        self.assertIsNone(await in_thread(lambda: result_or_error(self.admin.alter_configs([resource])[resource])))
        self.assertEqual(self.broker.topics["tuned"].configs, {"retention.bytes": "2048"})

    async def test_kafka_python_legacy_keeps_what_it_resends(self):
        admin = await python_admin(self, self.bootstrap)
        result = await in_thread(admin.alter_configs, [PyConfigResource("TOPIC", "tuned", {"retention.ms": "1000"})],
                                 incremental=False)
        self.assertEqual(result, {"topic": {"tuned": "OK"}})
        # kafka-python re-sends the other modified configs, as AlterConfigs needs.
        self.assertEqual(self.broker.topics["tuned"].configs, {"retention.ms": "1000", "segment.bytes": "4096"})

    async def test_errors(self):
        def ask(validate_only):
            return wire_request(self.bootstrap, ApiKey.ALTER_CONFIGS, 2, {"resources": [
                {"resource_type": ResourceType.TOPIC, "resource_name": "plain",
                 "configs": [{"name": "cleanup.policy", "value": "compact"}]},
                {"resource_type": ResourceType.TOPIC, "resource_name": "tuned",
                 "configs": [{"name": "retention.ms", "value": "1"}, {"name": "retention.ms", "value": "2"}]},
                {"resource_type": ResourceType.TOPIC, "resource_name": "missing", "configs": []},
                {"resource_type": ResourceType.BROKER, "resource_name": "3",
                 "configs": [{"name": "no.such.setting", "value": "1"}]},
                {"resource_type": ResourceType.TOPIC, "resource_name": "plain2", "configs": []},
            ], "validate_only": validate_only})["responses"]

        for validate_only in (True, False):
            responses = await in_thread(ask, validate_only)
            self.assertEqual([r["error_code"] for r in responses], [
                ErrorCode.INVALID_CONFIG, ErrorCode.INVALID_REQUEST, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                ErrorCode.INVALID_CONFIG, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            ])
        self.assertIn("named more than once", responses[1]["error_message"])
        self.assertEqual(self.broker.topics["tuned"].configs, {"retention.ms": "60000", "segment.bytes": "4096"})
