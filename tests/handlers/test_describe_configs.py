"""DescribeConfigs through confluent-kafka's AdminClient, kafka-python's
KafkaAdminClient and the bare wire (for what neither client shows:
documentation, error messages)."""

from confluent_kafka import KafkaError
from confluent_kafka.admin import ConfigResource, ConfigSource
from kafka.admin import ConfigResource as PyConfigResource

from kafscale.handlers.config_resources import ResourceType
from kafscale.protocol.errors import ErrorCode
from kafscale.protocol.messages import ApiKey
from tests.support.brokers import in_thread
from tests.support.configs import BROKER, TOPIC, ConfigsTestCase, python_admin, wire_request


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

    async def test_broker_configs_static_but_for_the_dynamic_ones(self):
        configs = await in_thread(self.describe, ConfigResource(BROKER, "3"))
        self.assertEqual(configs["broker.id"].value, "3")
        self.assertEqual(configs["broker.id"].source, ConfigSource.STATIC_BROKER_CONFIG.value)
        self.assertEqual(configs["num.partitions"].value, "2")
        self.assertEqual(configs["log.retention.ms"].value, "604800000")
        self.assertEqual(configs["log.retention.ms"].source, ConfigSource.DEFAULT_CONFIG.value)
        self.assertEqual(sorted(name for name, entry in configs.items() if not entry.is_read_only), [
            "compression.gzip.level", "compression.lz4.level", "compression.type", "compression.zstd.level",
            "log.message.timestamp.after.max.ms", "log.message.timestamp.before.max.ms",
            "log.message.timestamp.type", "log.retention.bytes", "log.retention.ms", "message.max.bytes"])

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
